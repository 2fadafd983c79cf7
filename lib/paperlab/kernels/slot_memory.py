"""Slot memory scan: the two-pass recurrent write of a Trellis-style KV memory.

A fixed memory of ``m`` slots holds a key memory ``M_K`` and a value memory ``M_V``
(both ``m x d``). Each incoming pair ``(k_t, v_t)`` is written in two passes
(Karami et al., arXiv:2512.23852, the structure of the two-pass compression; the
constant step size and gate are this book's simplification)::

    s   = softmax(M_K k_t / tau)                     slot weights from the key memory
    M_K <- gamma M_K + eta s (k_t - M_K^T s)^T       pass 1: one gradient step on
                                                     0.5 ||k_t - M_K^T s||^2
    s'  = softmax(M_K k_t / tau)                     slot weights from the updated M_K
    M_V <- gamma M_V + eta s' (v_t - M_V^T s')^T     pass 2: the same for the value

With ``error_term=False`` the bracket is just ``k_t`` (``v_t``): the write becomes a
Hebbian sum of outer products, as in linear attention.

The recurrence is nonlinear (the slot weights depend on the memory), so it cannot be
written as a cumulative sum or a matrix product over time: it is a sequential loop,
which is why it lives in a Numba kernel. The linear-attention state of the chapter's
baseline is a single matrix product ``phi(K)^T V``; NumPy already computes it at full
speed, so it has no kernel here.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from paperlab.kernels import BenchCase
from paperlab.validation import check_array, check_float

__all__ = [
    "slot_memory_scan",
    "slot_memory_scan_reference",
    "benchmarks",
]


def _check_inputs(keys, values, key_memory, value_memory, eta, gamma, inv_temperature):
    """Validate the scan's inputs; return C-contiguous arrays of one float dtype."""
    keys = check_array("keys", keys, ndim=2)
    if keys.dtype not in (np.float32, np.float64):
        raise TypeError(f"keys must have dtype float32 or float64, got {keys.dtype}")
    n_tokens, d = keys.shape
    values = check_array("values", values, shape=(n_tokens, d), dtype=keys.dtype)
    key_memory = check_array(
        "key_memory", key_memory, ndim=2, shape=(None, d), dtype=keys.dtype
    )
    if key_memory.shape[0] == 0:
        raise ValueError("key_memory must have at least one slot (row)")
    value_memory = check_array(
        "value_memory", value_memory, shape=key_memory.shape, dtype=keys.dtype
    )
    eta = check_float("eta", eta, minimum=0.0)
    gamma = check_float("gamma", gamma, minimum=0.0, maximum=1.0)
    inv_temperature = check_float("inv_temperature", inv_temperature, minimum=0.0)
    return (
        np.ascontiguousarray(keys),
        np.ascontiguousarray(values),
        np.ascontiguousarray(key_memory),
        np.ascontiguousarray(value_memory),
        eta,
        gamma,
        inv_temperature,
    )


@numba.njit(cache=True)
def _slot_weights(memory, x, inv_temperature, out):
    """``out = softmax(inv_temperature * memory @ x)``, shifted by the max logit."""
    m, d = memory.shape
    top = -np.inf
    for i in range(m):
        acc = 0.0
        for j in range(d):
            acc += memory[i, j] * x[j]
        out[i] = acc * inv_temperature
        if out[i] > top:
            top = out[i]
    total = 0.0
    for i in range(m):
        out[i] = math.exp(out[i] - top)
        total += out[i]
    for i in range(m):
        out[i] /= total


@numba.njit(cache=True)
def _write(memory, s, target, eta, gamma, error_term, residual):
    """``memory <- gamma memory + eta s (target - memory^T s)^T`` (or Hebbian)."""
    m, d = memory.shape
    for j in range(d):
        recon = 0.0
        if error_term:
            for i in range(m):
                recon += memory[i, j] * s[i]
        residual[j] = target[j] - recon
    for i in range(m):
        step = eta * s[i]
        for j in range(d):
            memory[i, j] = gamma * memory[i, j] + step * residual[j]


@numba.njit(cache=True)
def _scan(keys, values, key_memory, value_memory, eta, gamma, inv_t, error_term):
    m, d = key_memory.shape
    s = np.empty(m, dtype=keys.dtype)
    residual = np.empty(d, dtype=keys.dtype)
    for t in range(keys.shape[0]):
        _slot_weights(key_memory, keys[t], inv_t, s)
        _write(key_memory, s, keys[t], eta, gamma, error_term, residual)
        _slot_weights(key_memory, keys[t], inv_t, s)
        _write(value_memory, s, values[t], eta, gamma, error_term, residual)
    return key_memory, value_memory


def slot_memory_scan(
    keys,
    values,
    key_memory,
    value_memory,
    eta: float,
    gamma: float,
    inv_temperature: float,
    error_term: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Write a stream of key-value pairs into a slot memory, token by token (Numba).

    Parameters
    ----------
    keys, values : ndarray of shape (n_tokens, d), float32 or float64
        The stream ``k_1..k_T`` and ``v_1..v_T``.
    key_memory, value_memory : ndarray of shape (m, d)
        The memory before the stream, ``M_K`` and ``M_V``; not modified.
    eta : float
        Step size of the online gradient step, at least 0.
    gamma : float
        Forget gate in [0, 1]; 1 keeps everything.
    inv_temperature : float
        ``1 / tau``, the scale of the slot-weight logits, at least 0.
    error_term : bool
        ``True`` writes the reconstruction error (delta rule); ``False`` writes the
        raw key and value (Hebbian ablation).

    Returns
    -------
    key_memory, value_memory : ndarray of shape (m, d)
        The memory after the last token, in the dtype of ``keys``.

    Raises
    ------
    TypeError, ValueError
        If the shapes, dtypes or scalars are invalid.
    """
    keys, values, mk, mv, eta, gamma, inv_t = _check_inputs(
        keys, values, key_memory, value_memory, eta, gamma, inv_temperature
    )
    if not isinstance(error_term, bool):
        raise TypeError(f"error_term must be a bool, got {type(error_term).__name__}")
    return _scan(keys, values, mk.copy(), mv.copy(), eta, gamma, inv_t, error_term)


def _softmax_list(logits: list[float]) -> list[float]:
    top = max(logits)
    weights = [math.exp(z - top) for z in logits]
    total = sum(weights)
    return [w / total for w in weights]


def slot_memory_scan_reference(
    keys,
    values,
    key_memory,
    value_memory,
    eta: float,
    gamma: float,
    inv_temperature: float,
    error_term: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python loops computing exactly what :func:`slot_memory_scan` computes."""
    keys, values, mk, mv, eta, gamma, inv_t = _check_inputs(
        keys, values, key_memory, value_memory, eta, gamma, inv_temperature
    )
    memories = [mk.tolist(), mv.tolist()]
    m, d = mk.shape
    for k, v in zip(keys.tolist(), values.tolist(), strict=True):
        for memory, target in zip(memories, (k, v), strict=True):
            key_mem = memories[0]
            logits = [
                inv_t * sum(key_mem[i][j] * k[j] for j in range(d)) for i in range(m)
            ]
            s = _softmax_list(logits)
            recon = [
                sum(memory[i][j] * s[i] for i in range(m)) if error_term else 0.0
                for j in range(d)
            ]
            for i in range(m):
                for j in range(d):
                    memory[i][j] = gamma * memory[i][j] + eta * s[i] * (
                        target[j] - recon[j]
                    )
    return (
        np.asarray(memories[0], dtype=keys.dtype),
        np.asarray(memories[1], dtype=keys.dtype),
    )


def _numpy_scan(keys, values, key_memory, value_memory, eta, gamma, inv_t):
    """The same recurrence with NumPy vector operations inside the token loop."""
    mk, mv = key_memory.copy(), value_memory.copy()
    for k, v in zip(keys, values, strict=True):
        for memory, target in ((mk, k), (mv, v)):
            logits = inv_t * (mk @ k)
            s = np.exp(logits - logits.max())
            s /= s.sum()
            residual = target - memory.T @ s
            memory *= gamma
            memory += eta * np.outer(s, residual)
    return mk, mv


def benchmarks() -> list[BenchCase]:
    """The chapter's memory: 2048 tokens, d = 32, m = 16 slots (float64)."""
    n_tokens, d, m = 2048, 32, 16
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((n_tokens, d))
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    values = rng.standard_normal((n_tokens, d)) / np.sqrt(d)
    mk = rng.standard_normal((m, d)) / np.sqrt(d)
    mv = np.zeros((m, d))
    args = (keys, values, mk, mv, 0.5, 0.999, 5.0)
    return [
        BenchCase(
            name="slot_memory_scan",
            size=f"T={n_tokens}, d={d}, m={m}",
            kernel=lambda: slot_memory_scan(*args),
            reference=lambda: slot_memory_scan_reference(*args),
            numpy=lambda: _numpy_scan(*args),
        )
    ]

"""Client-side SGD of federated matrix factorisation, one client after another.

In federated matrix factorisation every client holds one user's vector ``p`` and that
user's interactions; the server holds the item matrix ``Q``. In a round, each client
downloads ``Q``, runs a few epochs of logistic-loss SGD over its positive items and
sampled negatives, keeps its new ``p`` and uploads only how its local copy of the item
rows moved, ``delta = Q_local - Q``. For one training pair ``(i, y)`` with score
``s = p . q_i`` the loss is ``-y log sigma(s) - (1 - y) log(1 - sigma(s))``, whose
gradient in ``s`` is ``g = sigma(s) - y``, so with L2 weight ``reg`` the step is

    p   <- p   - lr * (g * q_i + reg * p)
    q_i <- q_i - lr * (g * p   + reg * q_i)    (both with the values before the step).

Each positive item is followed by its negatives, in the order given. The negatives
are drawn by the caller and passed in, so the kernel, its reference and any rerun give
the same numbers.

The loop is sequential: every step reads the vectors the previous step wrote, so it
cannot be vectorised; there is no NumPy formulation of the same computation (a
batched gradient would be a different algorithm). :func:`federated_round` runs all
clients of a round in one compiled call and sums their item updates.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from paperlab.kernels import BenchCase
from paperlab.validation import check_array, check_float

__all__ = [
    "local_mf_sgd",
    "local_mf_sgd_reference",
    "federated_round",
    "federated_round_reference",
    "benchmarks",
]


# ------------------------------------------------------------------ validation


def _check_items(item_mat) -> np.ndarray:
    item_mat = check_array("item_mat", item_mat, ndim=2, dtype=np.float64, finite=True)
    return np.ascontiguousarray(item_mat)


def _check_index(name: str, value, ndim: int, n_items: int) -> np.ndarray:
    arr = check_array(name, value, ndim=ndim)
    if arr.size == 0:
        return np.ascontiguousarray(arr.astype(np.int64))
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer item ids, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n_items:
        raise ValueError(f"{name} must hold item ids in [0, {n_items})")
    return np.ascontiguousarray(arr.astype(np.int64))


def _check_rates(lr, reg) -> tuple[float, float]:
    lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
    reg = check_float("reg", reg, minimum=0.0)
    return lr, reg


def _check_client(user_vec, item_mat, pos, neg):
    item_mat = _check_items(item_mat)
    n_items, dim = item_mat.shape
    user_vec = check_array(
        "user_vec", user_vec, shape=(dim,), dtype=np.float64, finite=True
    )
    pos = _check_index("pos", pos, 1, n_items)
    neg = _check_index("neg", neg, 3, n_items)
    if neg.shape[1] != pos.shape[0]:
        raise ValueError(
            f"neg must have shape (n_epochs, {pos.shape[0]}, n_neg) to match pos, "
            f"got {neg.shape}"
        )
    return np.array(user_vec), item_mat, pos, neg


def _check_round(user_mat, item_mat, pos_ptr, pos_items, neg_items):
    item_mat = _check_items(item_mat)
    n_items, dim = item_mat.shape
    user_mat = check_array("user_mat", user_mat, ndim=2, dtype=np.float64, finite=True)
    if user_mat.shape[1] != dim:
        raise ValueError(
            f"user_mat must have {dim} columns like item_mat, got {user_mat.shape}"
        )
    n_users = user_mat.shape[0]
    pos_ptr = check_array("pos_ptr", pos_ptr, shape=(n_users + 1,))
    if not np.issubdtype(pos_ptr.dtype, np.integer):
        raise TypeError(f"pos_ptr must hold integers, got dtype {pos_ptr.dtype}")
    pos_items = _check_index("pos_items", pos_items, 1, n_items)
    if (
        pos_ptr[0] != 0
        or pos_ptr[-1] != pos_items.shape[0]
        or np.any(np.diff(pos_ptr) < 0)
    ):
        raise ValueError(
            "pos_ptr must rise from 0 to len(pos_items) (CSR row pointers)"
        )
    neg_items = _check_index("neg_items", neg_items, 3, n_items)
    if neg_items.shape[1] != pos_items.shape[0]:
        raise ValueError(
            f"neg_items must have shape (n_epochs, {pos_items.shape[0]}, n_neg), "
            f"got {neg_items.shape}"
        )
    return (
        np.array(user_mat),
        item_mat,
        np.ascontiguousarray(pos_ptr.astype(np.int64)),
        pos_items,
        neg_items,
    )


# --------------------------------------------------------------- the kernels


@numba.njit(cache=True)
def _sgd_step(p, q, label, lr, reg):
    """One logistic-loss step on ``p`` and ``q`` in place."""
    score = 0.0
    for k in range(p.size):
        score += p[k] * q[k]
    grad = 1.0 / (1.0 + math.exp(-score)) - label
    for k in range(p.size):
        pk, qk = p[k], q[k]
        p[k] = pk - lr * (grad * qk + reg * pk)
        q[k] = qk - lr * (grad * pk + reg * qk)


@numba.njit(cache=True)
def _client_sgd(p, item_mat, local, touched, pos, neg, lr, reg):
    """Run one client's epochs; ``local`` holds its item copies, ``touched`` flags."""
    for e in range(neg.shape[0]):
        for j in range(pos.shape[0]):
            i = pos[j]
            if not touched[i]:
                local[i, :] = item_mat[i, :]
                touched[i] = True
            _sgd_step(p, local[i], 1.0, lr, reg)
            for m in range(neg.shape[2]):
                n = neg[e, j, m]
                if not touched[n]:
                    local[n, :] = item_mat[n, :]
                    touched[n] = True
                _sgd_step(p, local[n], 0.0, lr, reg)


@numba.njit(cache=True)
def _local_core(user_vec, item_mat, pos, neg, lr, reg):
    local = np.empty_like(item_mat)
    touched = np.zeros(item_mat.shape[0], dtype=np.bool_)
    _client_sgd(user_vec, item_mat, local, touched, pos, neg, lr, reg)
    delta = np.zeros_like(item_mat)
    for i in range(item_mat.shape[0]):
        if touched[i]:
            delta[i, :] = local[i, :] - item_mat[i, :]
    return user_vec, delta


@numba.njit(cache=True)
def _round_core(user_mat, item_mat, pos_ptr, pos_items, neg_items, lr, reg):
    local = np.empty_like(item_mat)
    touched = np.zeros(item_mat.shape[0], dtype=np.bool_)
    total = np.zeros_like(item_mat)
    for u in range(user_mat.shape[0]):
        lo, hi = pos_ptr[u], pos_ptr[u + 1]
        _client_sgd(
            user_mat[u],
            item_mat,
            local,
            touched,
            pos_items[lo:hi],
            neg_items[:, lo:hi, :],
            lr,
            reg,
        )
        for i in range(item_mat.shape[0]):
            if touched[i]:
                for k in range(item_mat.shape[1]):
                    total[i, k] += local[i, k] - item_mat[i, k]
                touched[i] = False
    return user_mat, total


def local_mf_sgd(user_vec, item_mat, pos, neg, lr: float, reg: float = 0.0):
    """One client's local training: updated user vector and its item update.

    Parameters
    ----------
    user_vec : array_like of float, shape (dim,)
        The client's user vector ``p`` (not modified).
    item_mat : array_like of float, shape (n_items, dim)
        The item matrix ``Q`` downloaded from the server (not modified).
    pos : array_like of int, shape (n_pos,)
        The client's positive item ids, visited in this order every epoch.
    neg : array_like of int, shape (n_epochs, n_pos, n_neg)
        Negative item ids: ``neg[e, j]`` follow ``pos[j]`` in epoch ``e``.
    lr : float
        SGD step size, positive.
    reg : float
        L2 weight, non-negative.

    Returns
    -------
    user_vec : ndarray of float64, shape (dim,)
        ``p`` after the epochs.
    item_delta : ndarray of float64, shape (n_items, dim)
        ``Q_local - Q``: zero in every row the client never touched.
    """
    user_vec, item_mat, pos, neg = _check_client(user_vec, item_mat, pos, neg)
    lr, reg = _check_rates(lr, reg)
    return _local_core(user_vec, item_mat, pos, neg, lr, reg)


def federated_round(
    user_mat, item_mat, pos_ptr, pos_items, neg_items, lr: float, reg: float = 0.0
):
    """Every client's local training in one round, and the sum of their updates.

    Client ``u`` runs :func:`local_mf_sgd` on ``user_mat[u]`` with positives
    ``pos_items[pos_ptr[u]:pos_ptr[u + 1]]`` and the matching slice of ``neg_items``,
    all starting from the same ``item_mat``.

    Parameters
    ----------
    user_mat : array_like of float, shape (n_users, dim)
        One user vector per client (not modified).
    item_mat : array_like of float, shape (n_items, dim)
        The server's item matrix (not modified).
    pos_ptr : array_like of int, shape (n_users + 1,)
        CSR row pointers into ``pos_items``.
    pos_items : array_like of int, shape (n_pos_total,)
        Every client's positive item ids, client after client.
    neg_items : array_like of int, shape (n_epochs, n_pos_total, n_neg)
        Negatives for every positive and epoch.
    lr, reg : float
        As in :func:`local_mf_sgd`.

    Returns
    -------
    user_mat : ndarray of float64, shape (n_users, dim)
        The clients' user vectors after the round.
    delta_sum : ndarray of float64, shape (n_items, dim)
        The sum over clients of ``Q_local - Q``.
    """
    args = _check_round(user_mat, item_mat, pos_ptr, pos_items, neg_items)
    lr, reg = _check_rates(lr, reg)
    return _round_core(*args, lr, reg)


# ------------------------------------------------------------ the references


def local_mf_sgd_reference(user_vec, item_mat, pos, neg, lr: float, reg: float = 0.0):
    """Plain-Python :func:`local_mf_sgd` on lists of floats (for the tests)."""
    user_vec, item_mat, pos, neg = _check_client(user_vec, item_mat, pos, neg)
    lr, reg = _check_rates(lr, reg)
    p = [float(x) for x in user_vec]
    local: dict[int, list[float]] = {}
    for e in range(neg.shape[0]):
        for j in range(pos.shape[0]):
            pairs = [(int(pos[j]), 1.0)] + [(int(n), 0.0) for n in neg[e, j]]
            for item, label in pairs:
                q = local.setdefault(item, [float(x) for x in item_mat[item]])
                score = sum(a * b for a, b in zip(p, q, strict=True))
                grad = 1.0 / (1.0 + math.exp(-score)) - label
                for k in range(len(p)):
                    pk, qk = p[k], q[k]
                    p[k] = pk - lr * (grad * qk + reg * pk)
                    q[k] = qk - lr * (grad * pk + reg * qk)
    delta = np.zeros_like(item_mat)
    for item, q in local.items():
        delta[item] = np.array(q) - item_mat[item]
    return np.array(p), delta


def federated_round_reference(
    user_mat, item_mat, pos_ptr, pos_items, neg_items, lr: float, reg: float = 0.0
):
    """Plain-Python :func:`federated_round`: the reference, client by client."""
    user_mat, item_mat, pos_ptr, pos_items, neg_items = _check_round(
        user_mat, item_mat, pos_ptr, pos_items, neg_items
    )
    total = np.zeros_like(item_mat)
    for u in range(user_mat.shape[0]):
        lo, hi = int(pos_ptr[u]), int(pos_ptr[u + 1])
        user_mat[u], delta = local_mf_sgd_reference(
            user_mat[u], item_mat, pos_items[lo:hi], neg_items[:, lo:hi], lr, reg
        )
        total += delta
    return user_mat, total


# ------------------------------------------------------------- benchmarks


def _bench_round(n_users: int, n_items: int, dim: int, n_pos: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    user_mat = rng.normal(0.0, 0.1, size=(n_users, dim))
    item_mat = rng.normal(0.0, 0.1, size=(n_items, dim))
    pos_items = rng.integers(0, n_items, size=n_users * n_pos)
    pos_ptr = np.arange(0, n_users * n_pos + 1, n_pos)
    neg_items = rng.integers(0, n_items, size=(2, pos_items.size, 4))
    return user_mat, item_mat, pos_ptr, pos_items, neg_items


def benchmarks() -> list[BenchCase]:
    """One federated round: 300 clients, 24 positives each, 2 epochs, 4 negatives."""
    args = _bench_round(300, 500, 16, 24)
    return [
        BenchCase(
            name="federated_round",
            size="300 clients x 24 pos x 2 epochs x (1+4), n_items=500, dim=16",
            kernel=lambda: federated_round(*args, 0.05, 1e-3),
            reference=lambda: federated_round_reference(*args, 0.05, 1e-3),
        )
    ]

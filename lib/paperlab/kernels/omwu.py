"""Multiplicative-weights dynamics on a symmetric preference game, step by step.

One policy ``pi`` over ``n`` responses plays against itself in the preference game ``P``
(``P[a, b]`` is the probability that response ``a`` is preferred to response ``b``).
At step ``t`` the payoff vector is ``g_t = P @ pi_t`` and the logits ``l_t = log pi_t``
move by

    l_{t+1} = (l_t + eta * d_t) / (1 + eta * tau),    then renormalised,

where ``d_t = 2 g_t - g_{t-1}`` for the optimistic update (OMWU; ``g_{-1} = g_0``) and
``d_t = g_t`` for plain multiplicative weights (MWU). ``tau > 0`` adds a KL penalty
toward the uniform policy (the proximal mirror-descent step of the regularised game;
the uniform reference's log-probability is a constant that renormalisation removes).
After each step the logits are shifted so that ``logsumexp(l) = 0``: ``l`` is then
exactly ``log pi``, which keeps probabilities as small as ``exp(-700)`` representable.

Every step also records the duality gap of the unregularised game,
``2 * max_a (P pi_t)_a - 1`` (Chen et al., arXiv:2512.24818, the NLHF gap; the identity
uses ``P + P^T = 1``).

The loop is sequential in ``t``: each step needs the previous one, so it cannot be
vectorised over time. At ``n`` of ten or so NumPy's per-call overhead dominates each
step; the Numba loop avoids it (``make bench`` prints the measured speed-ups).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from paperlab.kernels import BenchCase
from paperlab.validation import check_array, check_float, check_int

__all__ = [
    "omwu_run",
    "omwu_run_reference",
    "omwu_run_numpy",
    "benchmarks",
]


def _check_inputs(
    P: np.ndarray, eta: float, n_iters: int, tau: float, log_pi0: np.ndarray | None
) -> tuple[np.ndarray, float, int, float, np.ndarray]:
    """Validate the arguments shared by every implementation."""
    P = check_array("P", P, ndim=2, dtype=np.float64, finite=True, min_size=1)
    n = P.shape[0]
    if P.shape != (n, n):
        raise ValueError(f"P must be square, got shape {P.shape}")
    eta = check_float("eta", eta, minimum=0.0, strict_minimum=True)
    n_iters = check_int("n_iters", n_iters, minimum=0)
    tau = check_float("tau", tau, minimum=0.0)
    if log_pi0 is None:
        log_pi0 = np.zeros(n)
    log_pi0 = check_array("log_pi0", log_pi0, shape=(n,), dtype=np.float64, finite=True)
    return np.ascontiguousarray(P), eta, n_iters, tau, np.ascontiguousarray(log_pi0)


@numba.njit(cache=True)
def _normalise_logits(logits):
    """Shift ``logits`` in place so that their log-sum-exp is zero."""
    top = logits.max()
    total = 0.0
    for a in range(logits.size):
        total += math.exp(logits[a] - top)
    shift = top + math.log(total)
    for a in range(logits.size):
        logits[a] -= shift


@numba.njit(cache=True)
def _payoffs(P, logits, pi, out):
    """``out = P @ pi`` with ``pi = exp(logits)``; return ``2 * max(out) - 1``."""
    n = logits.size
    for b in range(n):
        pi[b] = math.exp(logits[b])
    best = -np.inf
    for a in range(n):
        acc = 0.0
        for b in range(n):
            acc += P[a, b] * pi[b]
        out[a] = acc
        if acc > best:
            best = acc
    return 2.0 * best - 1.0


@numba.njit(cache=True)
def _run_kernel(P, eta, n_iters, tau, optimistic, log_pi0):
    n = log_pi0.size
    gaps = np.empty(n_iters + 1)
    log_pi = np.empty((n_iters + 1, n))
    logits = log_pi0.copy()
    _normalise_logits(logits)
    pi = np.empty(n)
    g = np.empty(n)
    g_prev = np.empty(n)
    denom = 1.0 + eta * tau
    for t in range(n_iters + 1):
        log_pi[t] = logits
        gaps[t] = _payoffs(P, logits, pi, g)
        if t == n_iters:
            break
        if t == 0:
            g_prev[:] = g
        for a in range(n):
            step = 2.0 * g[a] - g_prev[a] if optimistic else g[a]
            logits[a] = (logits[a] + eta * step) / denom
        _normalise_logits(logits)
        g_prev[:] = g
    return gaps, log_pi


def omwu_run(
    P: np.ndarray,
    eta: float,
    n_iters: int,
    tau: float = 0.0,
    optimistic: bool = True,
    log_pi0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``n_iters`` steps of (optimistic) multiplicative weights, self-play (Numba).

    Parameters
    ----------
    P : ndarray of shape (n, n)
        Preference matrix, ``P[a, b] = Pr(a preferred to b)``.
    eta : float
        Step size, > 0.
    n_iters : int
        Number of updates, >= 0.
    tau : float
        KL-regularisation strength toward the uniform policy, >= 0 (0: none).
    optimistic : bool
        ``True`` for OMWU (step along ``2 g_t - g_{t-1}``), ``False`` for MWU.
    log_pi0 : ndarray of shape (n,), optional
        Initial logits (any shift); uniform when omitted.

    Returns
    -------
    gaps : ndarray of shape (n_iters + 1,)
        Duality gap ``2 max_a (P pi_t)_a - 1`` of every iterate ``t = 0..n_iters``.
    log_pi : ndarray of shape (n_iters + 1, n)
        Log-probabilities of every iterate.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type, shape or range, or ``P`` is not finite.
    """
    P, eta, n_iters, tau, log_pi0 = _check_inputs(P, eta, n_iters, tau, log_pi0)
    return _run_kernel(P, eta, n_iters, tau, bool(optimistic), log_pi0)


def omwu_run_reference(
    P: np.ndarray,
    eta: float,
    n_iters: int,
    tau: float = 0.0,
    optimistic: bool = True,
    log_pi0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python loops computing exactly what :func:`omwu_run` computes."""
    P, eta, n_iters, tau, log_pi0 = _check_inputs(P, eta, n_iters, tau, log_pi0)
    n = P.shape[0]
    rows = P.tolist()
    gaps = np.empty(n_iters + 1)
    log_pi = np.empty((n_iters + 1, n))

    def normalised(logits: list[float]) -> list[float]:
        top = max(logits)
        shift = top + math.log(sum(math.exp(x - top) for x in logits))
        return [x - shift for x in logits]

    logits = normalised(log_pi0.tolist())
    g_prev: list[float] = []
    for t in range(n_iters + 1):
        log_pi[t] = logits
        pi = [math.exp(x) for x in logits]
        g = [sum(p_ab * p_b for p_ab, p_b in zip(row, pi, strict=True)) for row in rows]
        gaps[t] = 2.0 * max(g) - 1.0
        if t == n_iters:
            break
        if t == 0:
            g_prev = g
        step = [
            2.0 * x - y if optimistic else x for x, y in zip(g, g_prev, strict=True)
        ]
        logits = normalised(
            [
                (x + eta * s) / (1.0 + eta * tau)
                for x, s in zip(logits, step, strict=True)
            ]
        )
        g_prev = g
    return gaps, log_pi


def omwu_run_numpy(
    P: np.ndarray,
    eta: float,
    n_iters: int,
    tau: float = 0.0,
    optimistic: bool = True,
    log_pi0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The same dynamics with one NumPy call per operation (the best NumPy form).

    The time loop cannot be vectorised, so NumPy pays its call overhead several times
    per step; at small ``n`` that overhead is most of the cost.
    """
    P, eta, n_iters, tau, log_pi0 = _check_inputs(P, eta, n_iters, tau, log_pi0)
    gaps = np.empty(n_iters + 1)
    log_pi = np.empty((n_iters + 1, P.shape[0]))
    logits = log_pi0 - np.logaddexp.reduce(log_pi0)
    g_prev = None
    for t in range(n_iters + 1):
        log_pi[t] = logits
        g = P @ np.exp(logits)
        gaps[t] = 2.0 * g.max() - 1.0
        if t == n_iters:
            break
        if g_prev is None:
            g_prev = g
        step = 2.0 * g - g_prev if optimistic else g
        logits = (logits + eta * step) / (1.0 + eta * tau)
        logits = logits - np.logaddexp.reduce(logits)
        g_prev = g
    return gaps, log_pi


def _bench_game(n: int) -> np.ndarray:
    """A fixed preference matrix ``1/2 + A`` with ``A`` skew-symmetric, for timing."""
    rng = np.random.default_rng(0)
    S = rng.standard_normal((n, n))
    A = S - S.T
    return 0.5 + 0.45 * A / np.abs(A).max()


def benchmarks() -> list[BenchCase]:
    """One OMWU run of 20,000 steps on a 16-response game."""
    P = _bench_game(16)
    n_iters = 20_000

    def call(fn):
        return lambda: fn(P, 1.0, n_iters, 0.0, True)

    return [
        BenchCase(
            name="omwu_run",
            size=f"n=16, steps={n_iters}",
            kernel=call(omwu_run),
            reference=call(omwu_run_reference),
            numpy=call(omwu_run_numpy),
        )
    ]

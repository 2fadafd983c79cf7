"""CRMS: sensitivity-aware CPU and memory allocation for containers on one edge server.

Zhang, Huang, Dong and Yao, "Squeezing Edge Performance: A Sensitivity-Aware Container
Management for Heterogeneous Tasks", arXiv 2512.23952.

Each application ``i`` runs in a container with ``c_i`` CPUs and ``m_i`` GB of memory.
Profiling fits its mean processing delay with the paper's model (Sec. III)

    d_i(c, m) = k_i1 (1 - exp(-k_i2 c)) + exp(k_i3 m),   k_i1 < 0, k_i2 > 0,

and we take ``k_i3 < 0`` so that more memory never slows a container down. Requests
arrive at rate ``lambda_i`` and queue as in an M/M/1 system with service rate
``1 / d_i`` (Sec. IV), so the mean sojourn time is ``T_i = d_i / (1 - lambda_i d_i)``.
Power is a static part plus a part that grows with the busy CPUs ``c_i rho_i``
(``rho_i = lambda_i d_i``, a stand-in for the paper's power model). CRMS minimises
``a * mean latency + (1 - a) * power / peak power`` over whole CPU and memory units in
two stages (Sec. V): a continuous relaxation solved as a convex program, then rounding
down and a greedy refinement that moves one unit at a time.

The module also runs a real profiling demo: a child process throttled by SIGSTOP and
SIGCONT in 100 ms periods (an emulated CPU quota), whose LRU cache (the memory limit)
spills to a compressed file. The exhaustive search is in :mod:`paperlab.kernels.crms`.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from paperlab.claims import require
from paperlab.kernels.crms import exhaustive_search
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "APP_NAMES",
    "APP_KAPPAS",
    "VARIANTS",
    "latency_model",
    "profile_app",
    "fit_latency_model",
    "sojourn_time",
    "evaluate",
    "solve_relaxed",
    "refine_greedy",
    "crms",
    "equal_share",
    "proportional_share",
    "random_search",
    "exhaustive_optimum",
    "allocate",
    "make_loads",
    "cache_worker",
    "run_throttled",
    "profile_duty_cycle",
    "Allocation",
    "Fit",
    "DutyProfile",
    "MethodStats",
    "Config",
    "Result",
    "run_experiment",
    "check_claim",
    "plot_profiles",
    "plot_methods",
    "plot_allocation",
]

log = logging.getLogger(__name__)

# Four synthetic applications with the paper's contrasting sensitivities (Sec. III):
# (k1, k2, k3) with CPU in cores, memory in GB and delay in seconds.
APP_NAMES = ("CPU-heavy", "memory-heavy", "light A", "light B")
APP_KAPPAS = np.array(
    [
        [-0.70, 0.55, -0.05],  # like SE-ResNeXt: slows sharply when CPU is cut
        [-0.10, 1.00, -0.45],  # like SSD-MobileNet: needs memory
        [-0.35, 1.50, -0.20],  # like MobileNet v2
        [-0.30, 3.00, -0.25],  # like ResNet v2 at a small input size
    ]
)
CPU_STEP, MEM_STEP = 0.25, 0.25  # allocation grid: CPUs and GB per unit
CPU_CAPACITY, MEM_CAPACITY = 6.0, 4.0  # the server: CPUs and GB
CPU_UNITS, MEM_UNITS = 24, 16  # the server in grid units
PROFILE_CPUS = np.arange(1, 17) * 0.25  # profiling grid, CPUs
PROFILE_MEMS = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 3.0])  # profiling grid, GB
STATIC_POWER, CORE_POWER = 30.0, 12.0  # W idle, W per fully busy core
MAX_UTILISATION = 0.95  # a queue must keep lambda * d below this (stability)
VARIANTS = ("crms", "equal_share", "proportional", "random_search") + (
    "relaxation_only",  # CRMS without stage 2: the relaxed solution rounded down
    "greedy_only",  # CRMS without stage 1: the greedy stage from the equal share
)

# The claim's thresholds (see check_claim).
MIN_ADJ_R2 = 0.98
MIN_QUOTA_SLOWDOWN = 2.0
MIN_LATENCY_CUT = 0.14
MIN_RANDOM_CUT = 0.005
MAX_GAP = 0.02
MIN_SCORING_RATIO = 20.0
MAX_MOVES_PER_APP = 2.0


# ------------------------------------------------------------ the latency model


def latency_model(cpu, mem, kappa) -> np.ndarray:
    """Mean processing delay ``k1 (1 - exp(-k2 cpu)) + exp(k3 mem)`` (Sec. III).

    Parameters
    ----------
    cpu, mem : array_like
        CPUs and memory (GB), broadcast together.
    kappa : array_like, shape (..., 3)
        ``(k1, k2, k3)``, broadcast against ``cpu``.

    Returns
    -------
    ndarray
        Delay in seconds.
    """
    kappa = check_array("kappa", kappa, dtype=np.float64, finite=True)
    if kappa.ndim == 0 or kappa.shape[-1] != 3:
        raise ValueError(f"kappa must have shape (..., 3), got {kappa.shape}")
    cpu = check_array("cpu", cpu, dtype=np.float64)
    mem = check_array("mem", mem, dtype=np.float64)
    return _delay(cpu, mem, kappa)


def _delay(cpu, mem, kappa):
    return kappa[..., 0] * (1.0 - np.exp(-kappa[..., 1] * cpu)) + np.exp(
        kappa[..., 2] * mem
    )


def profile_app(kappa, rng: np.random.Generator, noise: float = 0.03):
    """Synthetic profiling: delay on the CPU x memory grid with multiplicative noise.

    Returns ``(cpu, mem, delay)``, each of shape (96,): 16 CPU levels 0.25 to 4 and
    the memory levels 0.25, 0.5, 1, 1.5, 2 and 3 GB.
    """
    kappa = check_array("kappa", kappa, dtype=np.float64, shape=(3,), finite=True)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    noise = check_float("noise", noise, minimum=0.0, maximum=0.5)
    cpu, mem = (g.ravel() for g in np.meshgrid(PROFILE_CPUS, PROFILE_MEMS))
    delay = _delay(cpu, mem, kappa) * (1.0 + noise * rng.standard_normal(cpu.size))
    return cpu, mem, delay


@dataclass(frozen=True)
class Fit:
    """A fitted latency model and its quality."""

    kappa: np.ndarray  # (k1, k2, k3)
    adj_r2: float  # adjusted R^2 with 3 parameters
    n_points: int


def fit_latency_model(cpu, mem, delay) -> Fit:
    """Fit ``(k1, k2, k3)`` by nonlinear least squares (``scipy.optimize.curve_fit``).

    The fit is bounded to ``k1 <= 0``, ``k2 > 0`` and ``k3 <= 0``, so the fitted delay
    falls (or stays flat) in both resources.

    Parameters
    ----------
    cpu, mem, delay : array_like, shape (n,)
        Profiling points, ``n >= 5``.

    Returns
    -------
    Fit
    """
    from scipy.optimize import curve_fit

    delay = check_array("delay", delay, ndim=1, dtype=np.float64, finite=True)
    n = delay.shape[0]
    if n < 5:
        raise ValueError(f"delay must have at least 5 points, got {n}")
    cpu = check_array("cpu", cpu, dtype=np.float64, shape=(n,), finite=True)
    mem = check_array("mem", mem, dtype=np.float64, shape=(n,), finite=True)

    def model(x, k1, k2, k3):
        return k1 * (1.0 - np.exp(-k2 * x[0])) + np.exp(k3 * x[1])

    kappa, _ = curve_fit(
        model,
        np.vstack((cpu, mem)),
        delay,
        p0=(-0.3, 1.0, -0.3),
        bounds=([-5.0, 1e-3, -20.0], [0.0, 50.0, 0.0]),
        maxfev=20_000,
    )
    residual = delay - model((cpu, mem), *kappa)
    r2 = 1.0 - np.sum(residual**2) / np.sum((delay - delay.mean()) ** 2)
    adj_r2 = 1.0 - (1.0 - r2) * (n - 1) / (n - 3 - 1)
    return Fit(kappa=kappa, adj_r2=float(adj_r2), n_points=n)


# ------------------------------------------------------ queueing, power, cost


def sojourn_time(delay, arrival_rate) -> np.ndarray:
    """M/M/1 sojourn time ``d / (1 - lambda d)`` (Sec. IV); ``inf`` if unstable."""
    delay = check_array("delay", delay, dtype=np.float64)
    arrival_rate = check_array("arrival_rate", arrival_rate, dtype=np.float64)
    if np.any(arrival_rate < 0) or np.any(delay <= 0):
        raise ValueError("delay must be > 0 and arrival_rate >= 0")
    rho = delay * arrival_rate
    with np.errstate(divide="ignore"):
        return np.where(rho < 1.0, delay / np.maximum(1.0 - rho, 0.0), np.inf)


def _peak_power() -> float:
    return STATIC_POWER + CORE_POWER * CPU_CAPACITY


def _costs(cpu, mem, kappas, lam, weight):
    """Each container's share of the objective (Sec. IV), broadcast over grids:
    ``a lambda_i T_i / sum(lambda) + (1 - a) P_core c_i rho_i / P_peak``, and ``inf``
    where the queue would run at or above ``MAX_UTILISATION``. Summed over the
    containers, plus the static power's share, it is the objective."""
    d = _delay(cpu, mem, kappas)
    rho = lam * d
    ok = (d > 0) & (rho < MAX_UTILISATION)
    with np.errstate(divide="ignore", invalid="ignore"):
        latency = d / (1.0 - rho)
        cost = (
            weight * lam * latency / lam.sum()
            + (1.0 - weight) * CORE_POWER * cpu * rho / _peak_power()
        )
    return np.where(ok, cost, np.inf)


def _check_instance(kappas, lam, weight):
    kappas = check_array("kappas", kappas, ndim=2, dtype=np.float64, finite=True)
    if kappas.shape[1] != 3 or kappas.shape[0] < 1:
        raise ValueError(f"kappas must have shape (A, 3), A >= 1, got {kappas.shape}")
    lam = check_array(
        "lam", lam, dtype=np.float64, shape=(kappas.shape[0],), finite=True
    )
    if np.any(lam <= 0):
        raise ValueError("lam must hold positive arrival rates")
    return kappas, lam, check_float("weight", weight, minimum=0.0, maximum=1.0)


@dataclass(frozen=True)
class Metrics:
    """What an allocation achieves."""

    mean_latency: float  # request-weighted mean sojourn time, s (inf if unstable)
    power: float  # W
    objective: float  # a * mean latency + (1 - a) * power / peak power
    max_utilisation: float


def evaluate(cpu, mem, kappas, lam, weight: float) -> Metrics:
    """Mean latency, power and objective of an allocation (no utilisation cap)."""
    kappas, lam, weight = _check_instance(kappas, lam, weight)
    cpu = check_array("cpu", cpu, dtype=np.float64, shape=lam.shape, finite=True)
    mem = check_array("mem", mem, dtype=np.float64, shape=lam.shape, finite=True)
    d = _delay(cpu, mem, kappas)
    rho = lam * d
    latency = float(np.sum(lam * sojourn_time(d, lam)) / lam.sum())
    power = STATIC_POWER + CORE_POWER * float(np.sum(cpu * np.minimum(rho, 1.0)))
    objective = weight * latency + (1.0 - weight) * power / _peak_power()
    return Metrics(latency, power, float(objective), float(rho.max()))


# --------------------------------------------------------------- CRMS stage 1


def _relaxed_cost_and_grad(x, kappas, lam, weight, rho_ext=0.99):
    """Stage-1 objective and gradient; past ``rho_ext`` the queue delay continues as
    its second-order Taylor expansion, so trial points of the solver stay finite."""
    n = lam.shape[0]
    c, m = x[:n], x[n:]
    k1, k2, k3 = kappas.T
    d = _delay(c, m, kappas)
    rho = lam * d
    d_ext = rho_ext / lam
    over = rho > rho_ext
    gap = np.where(over, d - d_ext, 0.0)
    base = np.where(over, d_ext, d)
    slack = 1.0 - lam * base
    latency = (
        base / slack + gap / (1 - rho_ext) ** 2 + lam * gap**2 / (1 - rho_ext) ** 3
    )
    dlatency = np.where(
        over, 1 / (1 - rho_ext) ** 2 + 2 * lam * gap / (1 - rho_ext) ** 3, 1 / slack**2
    )
    share, power = weight * lam / lam.sum(), (1 - weight) * CORE_POWER / _peak_power()
    cost = np.sum(share * latency + power * c * rho)
    dcost_dd = share * dlatency + power * c * lam
    grad_c = dcost_dd * k1 * k2 * np.exp(-k2 * c) + power * rho
    grad_m = dcost_dd * k3 * np.exp(k3 * m)
    return cost, np.concatenate((grad_c, grad_m))


def solve_relaxed(kappas, lam, weight: float):
    """CRMS stage 1: the allocation with continuous CPU and memory (Sec. V-A).

    Minimises the objective with SLSQP (analytic gradient) subject to
    ``sum c <= C``, ``sum m <= M``, ``lambda_i d_i <= MAX_UTILISATION`` and at least
    one grid unit of each resource per container.

    Returns
    -------
    cpu, mem : ndarray, shape (A,)
    n_scored : int
        Objective plus gradient evaluations the solver made.
    """
    from scipy.optimize import minimize

    kappas, lam, weight = _check_instance(kappas, lam, weight)
    n = lam.shape[0]
    k1, k2, k3 = kappas.T

    def stability(x):
        return MAX_UTILISATION - lam * _delay(x[:n], x[n:], kappas)

    def stability_jac(x):
        dc = -lam * k1 * k2 * np.exp(-k2 * x[:n])
        dm = -lam * k3 * np.exp(k3 * x[n:])
        return np.hstack((np.diag(dc), np.diag(dm)))

    budgets = np.zeros((2, 2 * n))
    budgets[0, :n], budgets[1, n:] = -1.0, -1.0
    constraints = [
        {
            "type": "ineq",
            "fun": lambda x: np.array([CPU_CAPACITY, MEM_CAPACITY]) + budgets @ x,
            "jac": lambda x: budgets,
        },
        {"type": "ineq", "fun": stability, "jac": stability_jac},
    ]
    x0 = np.concatenate((np.full(n, CPU_CAPACITY / n), np.full(n, MEM_CAPACITY / n)))
    res = minimize(
        _relaxed_cost_and_grad,
        x0,
        args=(kappas, lam, weight),
        jac=True,
        method="SLSQP",
        bounds=[(CPU_STEP, CPU_CAPACITY)] * n + [(MEM_STEP, MEM_CAPACITY)] * n,
        constraints=constraints,
        options={"ftol": 1e-10, "maxiter": 300},
    )
    if not res.success:
        log.info("stage 1 stopped early (stage 2 repairs it): %s", res.message)
    return res.x[:n], res.x[n:], int(res.nfev + res.njev)


# --------------------------------------------------------------- CRMS stage 2


def refine_greedy(kappas, lam, weight: float, cpu_units, mem_units):
    """CRMS stage 2: move one grid unit at a time while the objective improves.

    Each round looks at each resource in turn and prices, for every container, the
    gain of one more unit and the loss of one unit fewer. It then adds a spare unit to
    the container that gains most, or drops a unit whose removal lowers the objective
    (power), or moves a unit from the container that loses least to the one that
    gains most; it stops when a round changes nothing.

    Parameters
    ----------
    kappas, lam, weight
        The instance: profiles (A, 3), arrival rates (A,), latency weight ``a``.
    cpu_units, mem_units : array_like of int, shape (A,)
        The starting allocation in units, each at least 1, within the budgets.

    Returns
    -------
    cpu_units, mem_units : ndarray of int64
    n_scored : int
        Neighbouring allocations priced (``2 A`` per resource and round).
    n_moves : int
        Units added, dropped or moved.
    """
    kappas, lam, weight = _check_instance(kappas, lam, weight)
    units = [
        check_array(name, u, dtype=np.int64, shape=lam.shape).copy()
        for name, u in (("cpu_units", cpu_units), ("mem_units", mem_units))
    ]
    budgets = (CPU_UNITS, MEM_UNITS)
    if any(np.any(u < 1) or u.sum() > b for u, b in zip(units, budgets, strict=True)):
        raise ValueError("units must be >= 1 per container and within the budgets")

    def costs(u):
        return _costs(u[0] * CPU_STEP, u[1] * MEM_STEP, kappas, lam, weight)

    n_scored = n_moves = 0
    changed = True
    while changed:
        changed = False
        for r in (0, 1):
            base = costs(units)
            up = [u.copy() for u in units]
            up[r] += 1
            down = [u.copy() for u in units]
            down[r] -= 1
            with np.errstate(invalid="ignore"):
                gain, loss = base - costs(up), costs(down) - base
            gain[np.isnan(gain)], loss[np.isnan(loss)] = -np.inf, np.inf
            loss[units[r] <= 1] = np.inf
            n_scored += 2 * lam.shape[0]
            best_in, best_out = int(np.argmax(gain)), int(np.argmin(loss))
            spare = budgets[r] - units[r].sum()
            tol = 1e-12
            if spare > 0 and gain[best_in] > tol:
                units[r][best_in] += 1
            elif loss[best_out] < -tol:
                units[r][best_out] -= 1
            elif best_in != best_out and gain[best_in] - loss[best_out] > tol:
                units[r][best_in] += 1
                units[r][best_out] -= 1
            else:
                continue
            n_moves += 1
            changed = True
    return units[0], units[1], n_scored, n_moves


@dataclass(frozen=True)
class Allocation:
    """CPUs and memory per container, and what computing it cost."""

    cpu: np.ndarray  # CPUs per container
    mem: np.ndarray  # GB per container
    n_scored: int = 0  # allocations (or neighbours) scored
    n_moves: int = 0  # greedy unit moves
    seconds: float = 0.0  # wall time to compute


def _round_down(x, step):
    return np.maximum(np.floor(x / step + 1e-9), 1).astype(np.int64)


def crms(kappas, lam, weight: float, *, relax: bool = True, refine: bool = True):
    """The two-stage CRMS allocation (Sec. V).

    ``relax=False`` starts the greedy stage from the equal share (stage 2 alone);
    ``refine=False`` stops after rounding the relaxed solution down (stage 1 alone).
    """
    kappas, lam, weight = _check_instance(kappas, lam, weight)
    start = time.perf_counter()
    n_scored = n_moves = 0
    if relax:
        cpu, mem, n_scored = solve_relaxed(kappas, lam, weight)
        cpu_units, mem_units = _round_down(cpu, CPU_STEP), _round_down(mem, MEM_STEP)
    else:
        eq = equal_share(lam.shape[0])
        cpu_units, mem_units = (
            _round_down(eq.cpu, CPU_STEP),
            _round_down(eq.mem, MEM_STEP),
        )
    if refine:
        cpu_units, mem_units, scored, n_moves = refine_greedy(
            kappas, lam, weight, cpu_units, mem_units
        )
        n_scored += scored
    return Allocation(
        cpu_units * CPU_STEP,
        mem_units * MEM_STEP,
        n_scored,
        n_moves,
        time.perf_counter() - start,
    )


# ------------------------------------------------------------------ baselines


def equal_share(n_apps: int) -> Allocation:
    """Every container gets the same whole number of units of each resource."""
    n_apps = check_int("n_apps", n_apps, minimum=1, maximum=16)
    cpu = np.floor(CPU_CAPACITY / n_apps / CPU_STEP) * CPU_STEP
    mem = np.floor(MEM_CAPACITY / n_apps / MEM_STEP) * MEM_STEP
    return Allocation(np.full(n_apps, cpu), np.full(n_apps, mem))


def _largest_remainder(weights, total):
    """Integer units >= 1 summing to ``total``, the rest split in proportion."""
    raw = weights / weights.sum() * (total - weights.shape[0])
    units = np.floor(raw).astype(np.int64) + 1
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    units[order[: total - units.sum()]] += 1
    return units


def proportional_share(kappas, lam) -> Allocation:
    """Split both resources in proportion to each container's offered load.

    The load is ``lambda_i d_i`` at the equal share (the CPU time it asks for).
    """
    kappas, lam, _ = _check_instance(kappas, lam, 1.0)
    eq = equal_share(lam.shape[0])
    load = lam * _delay(eq.cpu, eq.mem, kappas)
    cpu = _largest_remainder(load, CPU_UNITS) * CPU_STEP
    mem = _largest_remainder(load, MEM_UNITS) * MEM_STEP
    return Allocation(cpu, mem)


def random_search(kappas, lam, weight: float, rng, n_samples: int = 2000):
    """Best of ``n_samples`` random grid allocations that use every unit.

    Each resource's spare units (beyond one per container) are split by a multinomial
    draw with Dirichlet-distributed shares.
    """
    kappas, lam, weight = _check_instance(kappas, lam, weight)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    n_samples = check_int("n_samples", n_samples, minimum=1)
    start = time.perf_counter()
    n = lam.shape[0]
    draws = []
    for budget in (CPU_UNITS, MEM_UNITS):
        shares = rng.dirichlet(np.ones(n), size=n_samples)
        draws.append(1 + rng.multinomial(budget - n, shares))
    cpu, mem = draws[0] * CPU_STEP, draws[1] * MEM_STEP
    total = _costs(cpu, mem, kappas, lam, weight).sum(axis=1)
    best = int(np.argmin(total))
    return Allocation(cpu[best], mem[best], n_samples, 0, time.perf_counter() - start)


def exhaustive_optimum(kappas, lam, weight: float) -> Allocation:
    """The true optimum on the grid: every feasible allocation scored (Numba kernel)."""
    kappas, lam, weight = _check_instance(kappas, lam, weight)
    start = time.perf_counter()
    n = lam.shape[0]
    cpu_grid = np.arange(1, CPU_UNITS - n + 2) * CPU_STEP
    mem_grid = np.arange(1, MEM_UNITS - n + 2) * MEM_STEP
    table = _costs(
        cpu_grid[None, :, None],
        mem_grid[None, None, :],
        kappas[:, None, None, :],
        lam[:, None, None],
        weight,
    )
    _, cpu_idx, mem_idx, count = exhaustive_search(table, CPU_UNITS, MEM_UNITS)
    return Allocation(
        cpu_grid[cpu_idx], mem_grid[mem_idx], int(count), 0, time.perf_counter() - start
    )


def allocate(variant: str, kappas, lam, weight: float, rng=None, n_samples=2000):
    """The :class:`Allocation` of one method of :data:`VARIANTS` or ``"exhaustive"``
    (``rng`` and ``n_samples`` are for random search)."""
    variant = check_choice("variant", variant, (*VARIANTS, "exhaustive"))
    if variant == "crms":
        return crms(kappas, lam, weight)
    if variant == "relaxation_only":
        return crms(kappas, lam, weight, refine=False)
    if variant == "greedy_only":
        return crms(kappas, lam, weight, relax=False)
    if variant == "equal_share":
        return equal_share(np.asarray(lam).shape[0])
    if variant == "proportional":
        return proportional_share(kappas, lam)
    if variant == "random_search":
        return random_search(kappas, lam, weight, rng, n_samples)
    return exhaustive_optimum(kappas, lam, weight)


def make_loads(kappas, n_scenarios: int, rng, low: float = 0.3, high: float = 0.85):
    """Arrival rates for random load scenarios, shape (n_scenarios, A).

    Each container's utilisation at the equal share is drawn uniformly in
    ``[low, high]``, so every baseline queue is stable.
    """
    kappas, _, _ = _check_instance(kappas, np.ones(len(kappas)), 1.0)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    n_scenarios = check_int("n_scenarios", n_scenarios, minimum=1)
    low = check_float("low", low, minimum=0.0, strict_minimum=True)
    high = check_float("high", high, minimum=low, maximum=MAX_UTILISATION)
    eq = equal_share(kappas.shape[0])
    service = _delay(eq.cpu, eq.mem, kappas)
    return rng.uniform(low, high, size=(n_scenarios, kappas.shape[0])) / service


# ------------------------------------------------ the real profiling demo


def cache_worker(spill_path, slot_bytes, n_blocks, cache_blocks, accesses, spin, seed):
    """Serve requests forever; runs in a child process, so it uses the standard library.

    A request reads ``accesses`` blocks drawn with Zipf-like popularity through an LRU
    cache of ``cache_blocks`` blocks (the memory limit). A miss reads the block's slot
    from the spill file and decompresses it; then ``spin`` steps of arithmetic stand
    for the request's own computation. One line per request goes to stdout: its
    latency in seconds and its cache misses.
    """
    import collections
    import os
    import random
    import sys
    import time
    import zlib

    rng = random.Random(seed)
    weights = [1.0 / (b + 1) for b in range(n_blocks)]
    fd = os.open(spill_path, os.O_RDONLY)
    cache = collections.OrderedDict()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        start = time.perf_counter()
        misses = 0
        for key in rng.choices(range(n_blocks), weights, k=accesses):
            block = cache.get(key)
            if block is None:
                misses += 1
                slot = os.pread(fd, slot_bytes, key * slot_bytes)
                size = int.from_bytes(slot[:4], "little")
                cache[key] = zlib.decompress(slot[4 : 4 + size])
                if len(cache) > cache_blocks:
                    cache.popitem(last=False)
            else:
                cache.move_to_end(key)
        x = 0
        for i in range(spin):
            x = (x * 31 + i) % 1_000_003
        sys.stdout.write(f"{time.perf_counter() - start:.7f} {misses}\n")
        sys.stdout.flush()


def _write_spill(path: str, n_blocks: int, block_bytes: int, seed: int) -> int:
    """Write ``n_blocks`` compressible blocks, one per fixed-size slot; return the slot
    size in bytes (a 4-byte length, then the zlib stream)."""
    import zlib

    rng = np.random.default_rng(seed)
    blobs = [
        zlib.compress(
            rng.integers(97, 105, block_bytes // 16, np.uint8).tobytes() * 16, 1
        )
        for _ in range(n_blocks)
    ]
    slot = 4 + max(len(b) for b in blobs)
    with open(path, "wb") as f:
        for b in blobs:
            f.write(len(b).to_bytes(4, "little") + b + bytes(slot - 4 - len(b)))
    return slot


def _duty_cycle(proc, quota: float, period: float, n_periods: int) -> None:
    """Let ``proc`` run ``quota * period`` of every period, stopped otherwise.

    Late wake-ups of this (parent) process would lengthen the run windows, so each
    window is cut to what keeps the total run time at ``quota`` times the elapsed
    periods, like a CFS quota's accounting.
    """
    t0 = time.perf_counter()
    ran = 0.0
    for k in range(n_periods):
        if quota < 1.0:
            owed = (k + 1) * quota * period - ran
            if owed > 0:
                resumed = time.perf_counter()
                proc.send_signal(signal.SIGCONT)
                time.sleep(owed)
                proc.send_signal(signal.SIGSTOP)
                ran += time.perf_counter() - resumed
        time.sleep(max(0.0, t0 + (k + 1) * period - time.perf_counter()))


def run_throttled(
    spill_path: str,
    slot_bytes: int,
    quota: float,
    cache_blocks: int,
    *,
    period: float = 0.1,
    n_periods: int = 3,
    n_blocks: int = 64,
    accesses: int = 32,
    spin: int = 1500,
    seed: int = 0,
) -> np.ndarray:
    """Start a :func:`cache_worker` child, throttle it for ``n_periods``, kill it.

    Only the child started here is signalled, and it is always killed and reaped.

    Returns
    -------
    latencies : ndarray of float64
        Time each completed request took, in seconds.
    elapsed : float
        Seconds the child was under the quota. One request is in flight at a time, so
        by Little's law its mean response time is ``elapsed / latencies.size``; unlike
        the mean of ``latencies``, this also charges the stop the run ends in.
    """
    quota = check_float("quota", quota, minimum=0.0, maximum=1.0, strict_minimum=True)
    cache_blocks = check_int("cache_blocks", cache_blocks, minimum=1)
    period = check_float("period", period, minimum=0.001, maximum=1.0)
    n_periods = check_int("n_periods", n_periods, minimum=1)
    args = (spill_path, slot_bytes, n_blocks, cache_blocks, accesses, spin, seed)
    source = inspect.getsource(cache_worker) + f"\ncache_worker(*{args!r})\n"
    with subprocess.Popen(
        [sys.executable, "-c", source],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"worker failed to start: {proc.stderr.read()}")
            if quota < 1.0:
                proc.send_signal(signal.SIGSTOP)
            start = time.perf_counter()
            _duty_cycle(proc, quota, period, n_periods)
            elapsed = time.perf_counter() - start
        finally:
            proc.kill()
            output = proc.stdout.read()
            proc.wait()
    lines = [ln.split() for ln in output.splitlines() if ln.count(" ") == 1]
    return np.array([float(a) for a, _ in lines]), elapsed


@dataclass(frozen=True)
class DutyProfile:
    """Real latencies of a throttled worker over quotas and cache sizes."""

    quotas: np.ndarray  # CPU quota per run, fraction of one core
    cache_fraction: np.ndarray  # cached share of the working set
    mean_latency: np.ndarray  # (n_quotas, n_caches), s: run time / requests done
    n_requests: np.ndarray  # (n_quotas, n_caches)
    fit: Fit  # the latency model fitted in units of `scale`
    scale: float  # seconds per model unit (1.25 x the slowest mean latency)

    @property
    def slowdown(self) -> float:
        """Mean latency at the smallest quota over that at the largest (cache mean)."""
        lat = self.mean_latency.mean(axis=1)
        return float(lat[np.argmin(self.quotas)] / lat[np.argmax(self.quotas)])


def profile_duty_cycle(
    quotas=(0.25, 0.5, 1.0),
    cache_blocks=(4, 12, 32),
    *,
    n_periods: int = 3,
    n_blocks: int = 64,
    seed: int = 0,
) -> DutyProfile:
    """Profile a real worker over CPU quotas x cache sizes and fit the latency model.

    The spill file lives in a temporary directory that is removed afterwards. The
    model has no free scale (``d(0, 0) = 1``), so latencies are fitted in units of
    1.25 times the slowest measured mean, and memory as the cached fraction of the
    working set.
    """
    quotas = check_array("quotas", quotas, ndim=1, dtype=np.float64, min_size=2)
    blocks = check_array(
        "cache_blocks", cache_blocks, ndim=1, dtype=np.int64, min_size=2
    )
    n_blocks = check_int("n_blocks", n_blocks, minimum=2)
    if np.any(quotas <= 0) or np.any(quotas > 1):
        raise ValueError("quotas must lie in (0, 1]")
    if np.any(blocks < 1) or np.any(blocks > n_blocks):
        raise ValueError(f"cache_blocks must lie in [1, {n_blocks}]")
    mean = np.zeros((quotas.size, blocks.size))
    count = np.zeros_like(mean, dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        spill = os.path.join(tmp, "spill.bin")
        slot = _write_spill(spill, n_blocks, 65536, seed)
        for j, cache in enumerate(blocks):
            for i, quota in enumerate(quotas):
                lat, elapsed = run_throttled(
                    spill,
                    slot,
                    float(quota),
                    int(cache),
                    n_periods=n_periods,
                    n_blocks=n_blocks,
                    seed=seed,
                )
                if lat.size == 0:
                    raise RuntimeError(f"no request finished at quota {quota}")
                mean[i, j], count[i, j] = elapsed / lat.size, lat.size
    scale = 1.25 * float(mean.max())
    cpu, frac = np.meshgrid(quotas, blocks / n_blocks, indexing="ij")
    fit = fit_latency_model(cpu.ravel(), frac.ravel(), mean.ravel() / scale)
    return DutyProfile(quotas, blocks / n_blocks, mean, count, fit, scale)


# ------------------------------------------------------------ the experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the method under test (one of :data:`VARIANTS`)."""

    variant: str = "crms"  # the method whose numbers check_claim tests
    seed: int = 0  # seeds profiling noise, loads and random search
    n_scenarios: int = 20  # random load scenarios with all four containers
    n_small: int = 3  # three-container instances solved exhaustively
    weight: float = 0.8  # latency weight a of the objective
    noise: float = 0.03  # multiplicative profiling noise (standard deviation)
    n_random: int = 2000  # samples of the random-search baseline
    real_profile: bool = True  # run the SIGSTOP/SIGCONT profiling demo first
    n_periods: int = 3  # 100 ms periods per real profiling run

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        check_int("seed", self.seed, minimum=0)
        check_int("n_scenarios", self.n_scenarios, minimum=1)
        check_int("n_small", self.n_small, minimum=1)
        check_float("weight", self.weight, minimum=0.0, maximum=1.0)
        check_float("noise", self.noise, minimum=0.0, maximum=0.5)
        check_int("n_random", self.n_random, minimum=1)
        if not isinstance(self.real_profile, bool):
            raise TypeError("real_profile must be a bool")
        check_int("n_periods", self.n_periods, minimum=1)


@dataclass(frozen=True)
class MethodStats:
    """One method's results, one entry per scenario."""

    latency: np.ndarray  # request-weighted mean sojourn time, s
    power: np.ndarray  # W
    objective: np.ndarray
    n_scored: np.ndarray  # allocations scored
    n_moves: np.ndarray  # greedy unit moves
    seconds: np.ndarray  # wall time to compute the allocation


@dataclass(frozen=True)
class Result:
    """Everything the claim is about."""

    config: Config
    fits: tuple  # Fit per application (synthetic profiles)
    profiles: tuple = field(repr=False)  # (cpu, mem, delay) per application
    duty: DutyProfile | None  # the real profiling demo
    loads: np.ndarray = field(repr=False)  # (n_scenarios, 4) arrival rates
    methods: dict = field(repr=False)  # name -> MethodStats, four containers
    small: dict = field(repr=False)  # name -> MethodStats, three containers


def _run_method(name, kappas, loads, config, rng):
    """Allocate with method ``name`` in every scenario and score the allocations."""
    allocs = [
        allocate(name, kappas, lam, config.weight, rng, config.n_random)
        for lam in loads
    ]
    metrics = [
        evaluate(a.cpu, a.mem, kappas, lam, config.weight)
        for a, lam in zip(allocs, loads, strict=True)
    ]
    return MethodStats(
        *(np.array([getattr(m, k) for m in metrics]) for k in _METRIC_FIELDS),
        *(np.array([getattr(a, k) for a in allocs]) for k in _COST_FIELDS),
    )


_METRIC_FIELDS = ("mean_latency", "power", "objective")
_COST_FIELDS = ("n_scored", "n_moves", "seconds")


def run_experiment(config: Config) -> Result:
    """Profile, fit, then allocate under random loads with every method.

    1. (``real_profile``) the SIGSTOP/SIGCONT demo, fitted with the model;
    2. synthetic profiling of the four applications with noise, and the fits;
    3. ``n_scenarios`` load scenarios for the four containers: CRMS, the equal share,
       the proportional share, random search, and the variant under test;
    4. ``n_small`` three-container instances: the variant under test and the
       exhaustive optimum.

    Allocations are computed and scored on the exact synthetic profiles.
    """
    check_instance("config", config, Config)
    duty = (
        profile_duty_cycle(n_periods=config.n_periods) if config.real_profile else None
    )
    rng = np.random.default_rng(config.seed)
    profiles = tuple(profile_app(kappa, rng, config.noise) for kappa in APP_KAPPAS)
    fits = tuple(fit_latency_model(*profile) for profile in profiles)
    loads = make_loads(APP_KAPPAS, config.n_scenarios, rng)
    names = ("crms", "equal_share", "proportional", "random_search")
    methods = {}
    for name in dict.fromkeys((*names, config.variant)):
        method_rng = np.random.default_rng([config.seed, 1])
        methods[name] = _run_method(name, APP_KAPPAS, loads, config, method_rng)
        log.info("%s done", name)
    small_loads = make_loads(APP_KAPPAS[:3], config.n_small, rng)
    small_rng = np.random.default_rng([config.seed, 2])
    small = {
        name: _run_method(name, APP_KAPPAS[:3], small_loads, config, small_rng)
        for name in (config.variant, "exhaustive")
    }
    return Result(config, fits, profiles, duty, loads, methods, small)


def check_claim(result: Result) -> None:
    """Check the chapter's claim for the method ``result.config.variant``.

    1. Every synthetic fit has adjusted R^2 >= 0.98; on the real profile (if run) the
       mean latency at the smallest quota is >= 2x that at the full quota.
    2. Over the load scenarios, the method's mean latency is >= 14% below both the
       equal and the proportional share's, at no higher mean power, and its mean
       objective is >= 0.5% below random search's.
    3. On the three-container instances its objective is within 2% of the exhaustive
       optimum while scoring >= 20x fewer allocations, and its greedy stage makes at
       most 2 moves per container (the relaxation lands next to the optimum).

    Raises
    ------
    paperlab.claims.ClaimFailed
        If any part fails; the message gives the numbers.
    """
    check_instance("result", result, Result)
    v = result.config.variant
    worst = min(f.adj_r2 for f in result.fits)
    require(worst >= MIN_ADJ_R2, f"a synthetic fit has adjusted R^2 {worst:.4f}")
    if result.duty is not None:
        slow = result.duty.slowdown
        require(slow >= MIN_QUOTA_SLOWDOWN, f"real quota slowdown only {slow:.2f}x")
    m, methods = result.methods[v], result.methods
    for base in ("equal_share", "proportional"):
        cut = 1.0 - m.latency.mean() / methods[base].latency.mean()
        require(
            cut >= MIN_LATENCY_CUT, f"{v}: mean latency only {cut:.1%} below {base}"
        )
        require(
            m.power.mean() <= methods[base].power.mean(),
            f"{v}: mean power {m.power.mean():.1f} W above {base}'s "
            f"{methods[base].power.mean():.1f} W",
        )
    cut = 1.0 - m.objective.mean() / methods["random_search"].objective.mean()
    require(cut >= MIN_RANDOM_CUT, f"{v}: objective only {cut:.2%} below random search")
    s, opt = result.small[v], result.small["exhaustive"]
    gap = float(np.max(s.objective / opt.objective - 1.0))
    require(gap <= MAX_GAP, f"{v}: {gap:.2%} above the exhaustive optimum")
    ratio = opt.n_scored.mean() / max(s.n_scored.mean(), 1.0)
    require(
        ratio >= MIN_SCORING_RATIO, f"{v}: scores only {ratio:.1f}x fewer allocations"
    )
    moves = max(s.n_moves.max(), m.n_moves.max())
    limit = MAX_MOVES_PER_APP * result.loads.shape[1]
    require(moves <= limit, f"{v}: greedy stage made {moves} moves (> {limit:g})")


# ------------------------------------------------------------------- figures

METHOD_NAMES = {
    "crms": "CRMS",
    "equal_share": "equal share",
    "proportional": "proportional",
    "random_search": "random search",
    "relaxation_only": "stage 1 only",
    "greedy_only": "stage 2 only",
    "exhaustive": "exhaustive",
}


def plot_profiles(result: Result):
    """Figure: synthetic profiles with their fits, and the real throttled worker."""
    from paperlab.plotting import COLORS, label_axes, subplots

    check_instance("result", result, Result)
    n_panels = 2 if result.duty is not None else 1
    fig, axes = subplots(1, n_panels, width=5.0 * n_panels, height=3.6, squeeze=False)
    ax = axes[0, 0]
    grid = np.linspace(0.25, 4.0, 60)
    for color, name, (cpu, mem, delay), fit in zip(
        COLORS[:4], APP_NAMES, result.profiles, result.fits, strict=True
    ):
        at = mem == 1.0
        ax.plot(cpu[at], delay[at], "o", ms=3, color=color)
        ax.plot(
            grid,
            _delay(grid, 1.0, fit.kappa),
            color=color,
            label=f"{name} (adj. $R^2$ {fit.adj_r2:.3f})",
        )
    label_axes(
        ax,
        title="Synthetic profiles at 1 GB (dots) and fits",
        xlabel="CPU allocation (cores)",
        ylabel="processing delay (s)",
    )
    if result.duty is not None:
        ax = axes[0, 1]
        duty = result.duty
        fine = np.linspace(duty.quotas.min(), 1.0, 50)
        for j, frac in enumerate(duty.cache_fraction):
            color = COLORS[j % len(COLORS)]
            ax.plot(
                duty.quotas,
                duty.mean_latency[:, j] * 1e3,
                "o",
                color=color,
                label=f"cache {frac:.0%} of working set",
            )
            model = _delay(fine, frac, duty.fit.kappa) * duty.scale * 1e3
            ax.plot(fine, model, "--", color=color, lw=1)
        label_axes(
            ax,
            title=f"Real throttled worker (fit adj. $R^2$ {duty.fit.adj_r2:.2f})",
            xlabel="CPU quota (fraction of one core)",
            ylabel="mean request latency (ms)",
        )
    return fig


def plot_methods(result: Result):
    """Figure: mean latency and power of each method over the load scenarios."""
    from paperlab.plotting import COLORS, label_axes, subplots

    check_instance("result", result, Result)
    names = list(result.methods)
    x = np.arange(len(names))
    colors = [COLORS[i % len(COLORS)] for i in range(len(names))]
    fig, (left, right) = subplots(1, 2, width=10.0, height=3.6)
    for ax, key, unit in ((left, "latency", "s"), (right, "power", "W")):
        values = [getattr(result.methods[n], key) for n in names]
        means = [v.mean() for v in values]
        bars = ax.bar(x, means, color=colors)
        ax.bar_label(bars, fmt="%.2f" if key == "latency" else "%.1f", fontsize=8)
        ax.set_xticks(x, [METHOD_NAMES[n] for n in names], rotation=15)
        if key == "power":
            ax.set_ylim(STATIC_POWER, max(means) * 1.05)
        label_axes(
            ax,
            title=f"Mean {key} over {len(result.loads)} load scenarios",
            xlabel="allocation method",
            ylabel=f"mean {key} ({unit})",
        )
    return fig


def plot_allocation(lam, weight: float):
    """Figure for the widget: each container's CPUs and memory under three methods.

    Returns ``(figure, metrics)`` with ``metrics`` a dict method name -> Metrics.
    """
    from paperlab.plotting import COLORS, label_axes, subplots

    kappas, lam, weight = _check_instance(APP_KAPPAS, lam, weight)
    allocs = {
        "crms": crms(kappas, lam, weight),
        "equal_share": equal_share(lam.shape[0]),
        "proportional": proportional_share(kappas, lam),
    }
    metrics = {
        n: evaluate(a.cpu, a.mem, kappas, lam, weight) for n, a in allocs.items()
    }
    fig, (left, right) = subplots(1, 2, width=10.0, height=3.8)
    x = np.arange(lam.shape[0])
    for k, (name, alloc) in enumerate(allocs.items()):
        m = metrics[name]
        label = f"{METHOD_NAMES[name]}: {m.mean_latency:.2f} s, {m.power:.0f} W"
        for ax, values in ((left, alloc.cpu), (right, alloc.mem)):
            ax.bar(x + (k - 1) * 0.27, values, width=0.27, color=COLORS[k], label=label)
    for ax, what, unit in ((left, "CPU", "cores"), (right, "Memory", "GB")):
        ax.set_xticks(x, APP_NAMES)
        label_axes(
            ax,
            title=f"{what} per container (latency weight a = {weight:.2f})",
            xlabel="container",
            ylabel=f"{what} allocated ({unit})",
            legend=False,
        )
    left.legend(fontsize=8, loc="upper right")
    return fig, metrics

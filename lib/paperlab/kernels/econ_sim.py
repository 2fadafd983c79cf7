"""A toy learning-based economic simulator: thousands of runs per Monte Carlo study.

Used by the chapter on paired seed evaluation
(:mod:`paperlab.statistical_learning_causality.paired_seed_evaluation`).

``n_agents`` workers choose how many hours ``h`` to work from ``n_actions`` evenly
spaced levels in [0, 1] by epsilon-greedy, single-state Q-learning. Worker ``i`` has
skill ``a_i = 0.05 + 2 v_i^2`` with ``v_i`` drawn uniformly in ``[i/n, (i+1)/n)``
(stratified, so every economy spans the whole range of skills; the square makes most
workers low-skilled). Each step, worker ``i`` earns ``y_i = a_i g_t e_it h_i`` (``g_t``
an economy-wide productivity shock, ``e_it`` a personal one, both uniform around 1),
pays the flat tax ``tax_rate * y_i`` and receives an equal share of all tax collected.
Its reward is ``2 sqrt(c_i) - kappa h_i^2`` with consumption ``c_i``. The outcome of a
run is the mean reward over all workers and over the final ``window`` steps: the run's
welfare.

Every random number comes from a counter-based generator (SplitMix64): the draw used
for a given purpose by worker ``i`` at step ``t`` depends only on the seed and on
``(t, i, purpose)``, never on what the workers did before. Two runs with the same seed
but different tax rates therefore see exactly the same skills, initial Q-values,
shocks and exploration coin flips: the matched realisations that paired seed evaluation
exploits. One 64-bit draw per worker and step supplies three 21-bit uniforms (the
exploration coin, the random action and the personal shock). Only plain arithmetic and
``sqrt`` (correctly rounded in IEEE 754) are used, so the Numba kernel, the Python
reference and the NumPy formulation agree bit for bit.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = [
    "run_econ_sim",
    "run_econ_sim_reference",
    "run_econ_sim_batch",
    "run_econ_sim_numpy",
    "benchmarks",
]

# SplitMix64 constants (Steele, Lea and Flood 2014).
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_SEED_SALT = 0x5851F42D4C957F2D
_MASK64 = (1 << 64) - 1
_TWO_POW_M53 = 1.0 / 9007199254740992.0
_TWO_POW_M21 = 1.0 / 2097152.0

# What each random draw is for; part of the counter, so the streams never overlap.
_N_PURPOSES = 4
_STEP, _AGG, _SKILL, _QINIT = 0, 1, 2, 3

_Q_INIT = 2.0  # optimistic initial Q-value, so every worker tries its options early
_SKILL_LOW = 0.05  # skill of the least able worker
_SKILL_SPAN = 2.0  # skill of the most able worker minus the least able one's
_Q_JITTER = 0.1  # random spread of the initial Q-values (random initialisation)

_U_GOLDEN = np.uint64(_GOLDEN)
_U_MIX1 = np.uint64(_MIX1)
_U_MIX2 = np.uint64(_MIX2)
_U_SALT = np.uint64(_SEED_SALT)
_U30, _U27, _U31, _U11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_U_FIELD_MASK = np.uint64((1 << 21) - 1)


@numba.njit(cache=True)
def _mix64(z):
    z = (z ^ (z >> _U30)) * _U_MIX1
    z = (z ^ (z >> _U27)) * _U_MIX2
    return z ^ (z >> _U31)


@numba.njit(cache=True)
def _draw(state, t, i, purpose, n_agents):
    counter = np.uint64((t * n_agents + i) * _N_PURPOSES + purpose + 1)
    return _mix64(state + counter * _U_GOLDEN)


@numba.njit(cache=True)
def _uniform(state, t, i, purpose, n_agents):
    return np.float64(_draw(state, t, i, purpose, n_agents) >> _U11) * _TWO_POW_M53


@numba.njit(cache=True)
def _field(z, k):
    bits = (z >> np.uint64(21 * k)) & _U_FIELD_MASK
    return np.float64(bits) * _TWO_POW_M21


@numba.njit(cache=True)
def run_econ_sim(
    seed,
    tax_rate,
    n_agents,
    n_steps,
    eps,
    lr,
    window,
    n_actions,
    kappa,
    agg_scale,
    idio_scale,
):
    """Welfare of one run of the toy simulator (Numba kernel).

    Parameters
    ----------
    seed : int
        Non-negative seed; fixes every random draw of the run.
    tax_rate : float
        Flat income tax in [0, 1); revenue is shared equally among the workers.
    n_agents, n_steps : int
        Number of workers and of learning steps.
    eps, lr : float
        Exploration probability and Q-learning step size.
    window : int
        Number of final steps over which the welfare is averaged (``<= n_steps``).
    n_actions : int
        Number of hour levels, evenly spaced in [0, 1] (at least 2).
    kappa : float
        Weight of the disutility of work, ``kappa * h^2``.
    agg_scale, idio_scale : float
        Half-widths of the uniform aggregate and personal productivity shocks
        around 1 (each below 1).

    Returns
    -------
    float
        Mean reward per worker and step over the final ``window`` steps (NaN when
        ``n_agents`` or ``window`` is 0).
    """
    if n_agents == 0 or window == 0:
        return np.nan
    state = _mix64(np.uint64(seed) ^ _U_SALT)
    skill = np.empty(n_agents)
    q = np.empty((n_agents, n_actions))
    for i in range(n_agents):
        v = (i + _uniform(state, 0, i, _SKILL, n_agents)) / n_agents
        skill[i] = _SKILL_LOW + _SKILL_SPAN * v * v
        for a in range(n_actions):
            q[i, a] = _Q_INIT + _Q_JITTER * _uniform(state, a, i, _QINIT, n_agents)
    actions = np.empty(n_agents, dtype=np.int64)
    income = np.empty(n_agents)
    top = n_actions - 1
    total = 0.0
    for t in range(n_steps):
        g = 1.0 + agg_scale * (2.0 * _uniform(state, t, 0, _AGG, n_agents) - 1.0)
        pool = 0.0
        for i in range(n_agents):
            # Both draws are taken every step, explored or not, to keep streams aligned.
            z = _draw(state, t, i, _STEP, n_agents)
            coin = _field(z, 0)
            if coin < eps:
                a = min(int(_field(z, 1) * n_actions), top)
            else:
                a = 0
                for b in range(1, n_actions):
                    if q[i, b] > q[i, a]:
                        a = b
            actions[i] = a
            e = 1.0 + idio_scale * (2.0 * _field(z, 2) - 1.0)
            y = skill[i] * g * e * (a / top)
            income[i] = y
            pool += y
        transfer = tax_rate * pool / n_agents
        for i in range(n_agents):
            a = actions[i]
            h = a / top
            c = (1.0 - tax_rate) * income[i] + transfer
            r = 2.0 * math.sqrt(c) - kappa * h * h
            q[i, a] += lr * (r - q[i, a])
            if t >= n_steps - window:
                total += r
    return total / (window * n_agents)


@numba.njit(cache=True, parallel=True)
def run_econ_sim_batch(
    seeds,
    tax_rate,
    n_agents,
    n_steps,
    eps,
    lr,
    window,
    n_actions,
    kappa,
    agg_scale,
    idio_scale,
):
    """Welfare of one run per seed, seeds spread over the CPU cores (Numba kernel).

    Parameters
    ----------
    seeds : ndarray of int64, shape (n_runs,)
        Non-negative seeds, one run each.
    tax_rate, n_agents, n_steps, eps, lr, window, n_actions, kappa, agg_scale,
    idio_scale
        As in :func:`run_econ_sim`.

    Returns
    -------
    ndarray of float64, shape (n_runs,)
        The welfare of each run.
    """
    out = np.empty(seeds.shape[0])
    for k in numba.prange(seeds.shape[0]):
        out[k] = run_econ_sim(
            seeds[k],
            tax_rate,
            n_agents,
            n_steps,
            eps,
            lr,
            window,
            n_actions,
            kappa,
            agg_scale,
            idio_scale,
        )
    return out


def _mix64_reference(z: int) -> int:
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _draw_reference(state: int, t: int, i: int, purpose: int, n_agents: int) -> int:
    counter = (t * n_agents + i) * _N_PURPOSES + purpose + 1
    return _mix64_reference((state + counter * _GOLDEN) & _MASK64)


def _uniform_reference(
    state: int, t: int, i: int, purpose: int, n_agents: int
) -> float:
    return float(_draw_reference(state, t, i, purpose, n_agents) >> 11) * _TWO_POW_M53


def _field_reference(z: int, k: int) -> float:
    return float((z >> (21 * k)) & ((1 << 21) - 1)) * _TWO_POW_M21


def run_econ_sim_reference(
    seed: int,
    tax_rate: float,
    n_agents: int,
    n_steps: int,
    eps: float,
    lr: float,
    window: int,
    n_actions: int,
    kappa: float,
    agg_scale: float,
    idio_scale: float,
) -> float:
    """Plain-Python reference of :func:`run_econ_sim` (same arguments, same result)."""
    if n_agents == 0 or window == 0:
        return math.nan
    state = _mix64_reference(seed ^ _SEED_SALT)
    skill = []
    for i in range(n_agents):
        v = (i + _uniform_reference(state, 0, i, _SKILL, n_agents)) / n_agents
        skill.append(_SKILL_LOW + _SKILL_SPAN * v * v)
    q = [
        [
            _Q_INIT + _Q_JITTER * _uniform_reference(state, a, i, _QINIT, n_agents)
            for a in range(n_actions)
        ]
        for i in range(n_agents)
    ]
    top = n_actions - 1
    total = 0.0
    for t in range(n_steps):
        u_agg = _uniform_reference(state, t, 0, _AGG, n_agents)
        g = 1.0 + agg_scale * (2.0 * u_agg - 1.0)
        actions, income, pool = [], [], 0.0
        for i in range(n_agents):
            z = _draw_reference(state, t, i, _STEP, n_agents)
            if _field_reference(z, 0) < eps:
                a = min(int(_field_reference(z, 1) * n_actions), top)
            else:
                a = 0
                for b in range(1, n_actions):
                    if q[i][b] > q[i][a]:
                        a = b
            e = 1.0 + idio_scale * (2.0 * _field_reference(z, 2) - 1.0)
            y = skill[i] * g * e * (a / top)
            actions.append(a)
            income.append(y)
            pool += y
        transfer = tax_rate * pool / n_agents
        for i, a in enumerate(actions):
            h = a / top
            c = (1.0 - tax_rate) * income[i] + transfer
            r = 2.0 * math.sqrt(c) - kappa * h * h
            q[i][a] += lr * (r - q[i][a])
            if t >= n_steps - window:
                total += r
    return total / (window * n_agents)


def _mix64_numpy(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> _U30)) * _U_MIX1
    z = (z ^ (z >> _U27)) * _U_MIX2
    return z ^ (z >> _U31)


def _draw_numpy(
    state: np.ndarray, t: int, idx: np.ndarray | int, purpose: int, n_agents: int
) -> np.ndarray:
    counter = np.asarray((t * n_agents + idx) * _N_PURPOSES + purpose + 1, np.uint64)
    return _mix64_numpy(state + counter * _U_GOLDEN)


def _uniform_numpy(
    state: np.ndarray, t: int, idx: np.ndarray | int, purpose: int, n_agents: int
) -> np.ndarray:
    return (_draw_numpy(state, t, idx, purpose, n_agents) >> _U11) * _TWO_POW_M53


def _field_numpy(z: np.ndarray, k: int) -> np.ndarray:
    return ((z >> np.uint64(21 * k)) & _U_FIELD_MASK) * _TWO_POW_M21


def run_econ_sim_numpy(
    seeds,
    tax_rate,
    n_agents,
    n_steps,
    eps,
    lr,
    window,
    n_actions,
    kappa,
    agg_scale,
    idio_scale,
) -> np.ndarray:
    """NumPy formulation of :func:`run_econ_sim_batch`: all seeds and workers at once.

    Only the loop over steps stays in Python; each step is a handful of array
    operations on ``(n_runs, n_agents)`` arrays. Same arguments and result.
    """
    seeds = np.asarray(seeds, dtype=np.int64)
    n_runs = seeds.shape[0]
    state = _mix64_numpy(seeds.astype(np.uint64) ^ _U_SALT)[:, None]
    agents = np.arange(n_agents)
    rows = np.arange(n_runs)[:, None]
    v = (agents + _uniform_numpy(state, 0, agents, _SKILL, n_agents)) / n_agents
    skill = _SKILL_LOW + _SKILL_SPAN * v * v
    q = np.stack(
        [_uniform_numpy(state, a, agents, _QINIT, n_agents) for a in range(n_actions)],
        axis=-1,
    )
    q = _Q_INIT + _Q_JITTER * q
    top = n_actions - 1
    total = np.zeros(n_runs)
    for t in range(n_steps):
        g = 1.0 + agg_scale * (2.0 * _uniform_numpy(state, t, 0, _AGG, n_agents) - 1.0)
        z = _draw_numpy(state, t, agents, _STEP, n_agents)
        explore = _field_numpy(z, 0) < eps
        random_action = np.minimum(
            (_field_numpy(z, 1) * n_actions).astype(np.int64), top
        )
        actions = np.where(explore, random_action, np.argmax(q, axis=-1))
        e = 1.0 + idio_scale * (2.0 * _field_numpy(z, 2) - 1.0)
        income = skill * g * e * (actions / top)
        # A left-to-right sum, as in the kernel, so the results agree to the last bit.
        pool = np.zeros(n_runs)
        for i in range(n_agents):
            pool += income[:, i]
        transfer = tax_rate * pool / n_agents
        h = actions / top
        r = 2.0 * np.sqrt((1.0 - tax_rate) * income + transfer[:, None]) - kappa * h * h
        q_taken = q[rows, agents, actions]
        q[rows, agents, actions] = q_taken + lr * (r - q_taken)
        if t >= n_steps - window:
            for i in range(n_agents):
                total += r[:, i]
    return total / (window * n_agents)


def benchmarks() -> list[BenchCase]:
    """Benchmark case: a batch of runs, kernel against reference and NumPy."""
    # tax, n_agents, n_steps, eps, lr, window, n_actions, kappa, agg, idio
    args = (0.1, 20, 200, 0.2, 0.1, 20, 11, 1.0, 0.2, 0.5)
    seeds = np.arange(48, dtype=np.int64)
    return [
        BenchCase(
            name="run_econ_sim",
            size="batch of 48 runs, agents=20, steps=200",
            kernel=lambda: run_econ_sim_batch(seeds, *args),
            reference=lambda: [run_econ_sim_reference(int(s), *args) for s in seeds],
            numpy=lambda: run_econ_sim_numpy(seeds, *args),
        ),
    ]

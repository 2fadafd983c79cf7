"""Predictive, policy-aware resource control across clusters, against a reactive one.

Punniyamoorthy, Agarwal, Kumar, Mazumder, Kannan and Saha, "AI-Driven Cloud Resource
Optimization for Multi-Cluster Environments", arXiv 2512.24914.

The paper's framework closes a loop over four layers: telemetry from every cluster,
a learning layer that forecasts demand, a policy layer that turns forecasts into
allocations under operational constraints, and feedback that corrects the model and
the decisions from what happened. This module builds that loop in a discrete-time
simulator of three clusters (one-minute intervals, two days):

- **telemetry**: per-cluster arrivals, utilisation, backlog and latency of each
  interval, from a fluid queue (:mod:`paperlab.kernels.fluid_sim`);
- **intelligence**: an online ridge regressor forecasts each cluster's demand
  ``h = d + 1`` intervals ahead from lags of every cluster, the same phase of the
  last surge cycles, and time-of-day harmonics;
- **policy**: each cluster orders the replicas that cover an upper quantile of the
  forecast demand (the quantile that balances replica cost against SLA penalty),
  within per-cluster caps and a replica budget, shifts overflow to clusters with
  headroom while a data-residency share stays local, and scales down only past a
  hysteresis band;
- **feedback**: an exponentially weighted bias and error scale of the forecaster
  correct the next decisions, and shifts into a cluster that then breaches its SLA
  are rolled back for a while.

Replicas only start serving ``d`` intervals after they are ordered, which is why the
reactive baseline (a threshold autoscaler per cluster, like Kubernetes' HPA) lags.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from paperlab import plotting
from paperlab.claims import require
from paperlab.kernels.fluid_sim import simulate_fluid
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
    check_probability,
)

__all__ = [
    "VARIANTS",
    "STEPS_PER_DAY",
    "SURGE_PERIOD",
    "Workload",
    "make_workload",
    "design_matrix",
    "ridge_forecast",
    "last_value_forecast",
    "error_feedback",
    "shift_overflow",
    "ReactiveAutoscaler",
    "PredictiveController",
    "Trace",
    "simulate_control",
    "Metrics",
    "measure",
    "stabilisation_time",
    "cluster_caps",
    "Config",
    "forecasts_for",
    "make_controller",
    "run_variant",
    "Result",
    "run_experiment",
    "check_claim",
    "Emulation",
    "emulate_thread_pools",
    "plot_timeline",
    "plot_summary",
    "plot_emulation",
]

log = logging.getLogger(__name__)

VARIANTS = ("predictive", "last_value", "oracle", "reactive")
STEPS_PER_DAY = 1440  # one-minute intervals
SURGE_PERIOD = 180  # scheduled surges every three hours
N_CLUSTERS = 3

# The workload: three regions eight hours apart.
BASE = (3000.0, 2200.0, 1600.0)  # mean requests per interval
PEAK_MINUTE = (840, 360, 1320)  # minute of the day (UTC) of each diurnal peak
SURGE_OFFSET = (20, 80, 140)  # minute within each 3-hour cycle a surge starts
DAILY_SWING = 0.45  # diurnal amplitude, as a share of the base
SURGE_SIZE = 0.6  # scheduled surge height, as a share of the base
CAP_FACTOR = 2.2  # a cluster's replica cap serves this multiple of its base

# Forecaster features.
LAGS = (0, 1, 2, 5, 10, 30)  # intervals back, for every cluster
CYCLES = (SURGE_PERIOD, 2 * SURGE_PERIOD)  # seasonal lags: one and two cycles back
DAY_HARMONICS = 2
SURGE_HARMONICS = 10

# The claim's thresholds (see check_claim).
MIN_VIOLATION_CUT = 0.30
MIN_STABILISATION_CUT = 0.50
MAX_STD_RATIO = 0.8
MAX_EXTRA_CAPACITY = 0.05


# -------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Workload:
    """Two days of demand for three clusters and the events in it."""

    demand: np.ndarray  # (n_steps, 3) requests arriving per interval
    surge_onsets: tuple[np.ndarray, ...]  # per cluster: intervals a surge starts
    change_step: int  # interval of the unannounced step change
    change_cluster: int  # cluster whose level jumps by 30% then


def _diurnal(steps: np.ndarray) -> np.ndarray:
    """Level of each cluster over the day: base times a cosine around its peak."""
    base = np.array(BASE)
    phase = 2 * np.pi * (steps[:, None] - np.array(PEAK_MINUTE)) / STEPS_PER_DAY
    return base * (1.0 + DAILY_SWING * np.cos(phase))


def _surge_shape(n_steps: int, onsets: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Sum of surges: 3-interval ramp, 15-interval plateau, 6-interval decay."""
    shape = np.concatenate(
        (np.linspace(1 / 3, 1, 3), np.ones(15), np.linspace(5 / 6, 0, 6))
    )
    out = np.zeros(n_steps)
    for onset, height in zip(onsets, heights, strict=True):
        stop = min(n_steps, onset + shape.size)
        out[onset:stop] += height * shape[: stop - onset]
    return out


def _ar_noise(n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """AR(1) multiplicative noise, coefficient 0.9, stationary std 4%."""
    shocks = rng.standard_normal((n_steps, N_CLUSTERS)) * 0.04 * math.sqrt(1 - 0.81)
    return _recursive_average(shocks, 0.9, 1.0)


def _recursive_average(x: np.ndarray, keep: float, gain: float) -> np.ndarray:
    """``y[t] = keep * y[t - 1] + gain * x[t]`` down the rows, from ``y[-1] = 0``."""
    y = np.empty_like(x)
    state = np.zeros(x.shape[1:])
    for t in range(x.shape[0]):
        state = keep * state + gain * x[t]
        y[t] = state
    return y


def _flash_bursts(n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Unannounced bursts: about four per cluster and day, 30-70% of the base, 5-15
    intervals long, starting at full height."""
    out = np.zeros((n_steps, N_CLUSTERS))
    for k in range(N_CLUSTERS):
        starts = np.flatnonzero(rng.random(n_steps) < 4 / STEPS_PER_DAY)
        for start in starts:
            length = int(rng.integers(5, 16))
            out[start : start + length, k] += rng.uniform(0.3, 0.7) * BASE[k]
    return out


def make_workload(seed: int, n_days: int = 2) -> Workload:
    """Draw the demand of three clusters over ``n_days`` days.

    Each cluster's demand is its diurnal level (peaks eight hours apart, as in three
    time zones) times AR(1) noise, plus scheduled surges every three hours (their
    height varies by 10% from one to the next), random flash bursts, and, in a random
    cluster on the last day, an unannounced 30% step up of the level.

    Parameters
    ----------
    seed : int
        Seed of the workload's random draws.
    n_days : int
        Days of one-minute intervals, at least 2 (day 1 trains, the last is scored).

    Returns
    -------
    Workload
    """
    seed = check_int("seed", seed, minimum=0)
    n_days = check_int("n_days", n_days, minimum=2)
    rng = np.random.default_rng(seed)
    n_steps = n_days * STEPS_PER_DAY
    steps = np.arange(n_steps)
    level = _diurnal(steps) * (1.0 + _ar_noise(n_steps, rng))
    change_cluster = int(rng.integers(N_CLUSTERS))
    last_day = (n_days - 1) * STEPS_PER_DAY
    change_step = int(rng.integers(last_day + 300, last_day + 1100))
    level[change_step:, change_cluster] *= 1.3
    onsets = []
    for k in range(N_CLUSTERS):
        starts = np.arange(SURGE_OFFSET[k], n_steps, SURGE_PERIOD)
        heights = SURGE_SIZE * BASE[k] * (1.0 + 0.1 * rng.standard_normal(starts.size))
        level[:, k] += _surge_shape(n_steps, starts, heights)
        onsets.append(starts)
    demand = np.maximum(level + _flash_bursts(n_steps, rng), 0.0)
    return Workload(demand, tuple(onsets), change_step, change_cluster)


def cluster_caps(mu: float) -> np.ndarray:
    """Replica cap of each cluster: enough for ``CAP_FACTOR`` times its base."""
    mu = check_float("mu", mu, minimum=0.0, strict_minimum=True)
    return np.ceil(CAP_FACTOR * np.array(BASE) / mu)


# --------------------------------------------------------------- intelligence


def design_matrix(demand, horizon: int) -> np.ndarray:
    """Features known at interval ``t`` for forecasting interval ``t + horizon``.

    Row ``t`` holds a constant; ``demand[t - lag, k] / scale`` for every lag in
    ``LAGS`` and every cluster ``k`` (``scale`` is the mean demand of the first
    interval; lags before the start repeat the first interval); the demand one and
    two surge cycles before the target, ``demand[t + h - P]``, and before now,
    ``demand[t - P]`` (``P`` = 180 and 360), so the model can add last cycle's change
    to the present level; and sine and cosine harmonics of the target's time of day
    (periods of one day and half a day) and of its place in the three-hour surge
    cycle (ten harmonics). Every entry is known at ``t``.

    Parameters
    ----------
    demand : array_like, shape (n_steps, n_clusters)
    horizon : int
        Intervals ahead, at least 1.

    Returns
    -------
    ndarray of float64, shape (n_steps, 1 + 10 * n_clusters + 24)
    """
    demand = check_array(
        "demand", demand, ndim=2, dtype=np.float64, finite=True, min_size=1
    )
    horizon = check_int("horizon", horizon, minimum=1)
    n_steps = demand.shape[0]
    scale = _scale(demand)
    steps = np.arange(n_steps)
    lagged = [demand[np.maximum(steps - lag, 0)] / scale for lag in LAGS]
    target = steps + horizon
    for period in CYCLES:
        # the target's phase and the current phase, one or two cycles earlier
        lagged.append(demand[np.clip(target - period, 0, steps)] / scale)
        lagged.append(demand[np.maximum(steps - period, 0)] / scale)
    angles = [
        2 * np.pi * m * target / STEPS_PER_DAY for m in range(1, 1 + DAY_HARMONICS)
    ]
    angles += [
        2 * np.pi * j * target / SURGE_PERIOD for j in range(1, 1 + SURGE_HARMONICS)
    ]
    harmonics = [f(a)[:, None] for a in angles for f in (np.sin, np.cos)]
    return np.hstack([np.ones((n_steps, 1)), *lagged, *harmonics])


def _scale(demand: np.ndarray) -> float:
    """Demand unit of the forecaster: mean demand of the first interval."""
    return max(float(demand[0].mean()), 1e-9)


def ridge_forecast(
    demand,
    horizon: int,
    *,
    alpha: float = 1.0,
    half_life: float = 1440.0,
    refit_every: int = 10,
) -> np.ndarray:
    """Online ridge forecasts: ``forecast[s]`` predicts demand at ``s`` from ``s - h``.

    Every ``refit_every`` intervals, at interval ``b``, the weights are refitted on
    all rows whose target is already observed (``t + h <= b``), each weighted by
    ``gamma ** (b - t)`` with ``gamma = 2 ** (-1 / half_life)``:

        W_b = (sum_t w_t x_t x_t^T + alpha I)^{-1} sum_t w_t x_t y_t^T,

    one column per cluster (a multi-output ridge regression on shared features).
    Those weights forecast from the rows ``b .. b + refit_every - 1``. Targets before
    the first fit fall back to the last observed value. Everything is causal: a
    forecast made at ``t`` uses only demand up to ``t``.

    Parameters
    ----------
    demand : array_like, shape (n_steps, n_clusters)
    horizon : int
        Intervals ahead ``h``, at least 1.
    alpha : float
        Ridge penalty, > 0.
    half_life : float
        Intervals after which an old row's weight halves, > 0.
    refit_every : int
        Intervals between refits, at least 1.

    Returns
    -------
    ndarray of float64, shape (n_steps, n_clusters)
    """
    X = design_matrix(demand, horizon)
    demand = np.asarray(demand, dtype=np.float64)
    alpha = check_float("alpha", alpha, minimum=0.0, strict_minimum=True)
    half_life = check_float("half_life", half_life, minimum=0.0, strict_minimum=True)
    refit_every = check_int("refit_every", refit_every, minimum=1)
    n_steps, n_features = X.shape
    scale = _scale(demand)
    Y = demand / scale
    gamma = 2.0 ** (-1.0 / half_life)
    forecast = last_value_forecast(demand, horizon)
    A = np.zeros((n_features, n_features))
    B = np.zeros((n_features, demand.shape[1]))
    seen = 0  # rows 0 .. seen-1 are in A and B
    for start in range(0, n_steps, refit_every):
        new = max(min(start - horizon + 1, n_steps - horizon) - seen, 0)
        rows = slice(seen, seen + new)
        weights = gamma ** (start - np.arange(seen, seen + new))
        decay = gamma**refit_every if start else 1.0
        A = decay * A + (X[rows] * weights[:, None]).T @ X[rows]
        B = decay * B + (X[rows] * weights[:, None]).T @ Y[seen + horizon :][:new]
        seen += new
        if seen < n_features:
            continue
        W = np.linalg.solve(A + alpha * np.eye(n_features), B)
        stop = min(start + refit_every, n_steps - horizon)
        if stop > start:
            forecast[start + horizon : stop + horizon] = X[start:stop] @ W * scale
    return np.maximum(forecast, 0.0)


def last_value_forecast(demand, horizon: int) -> np.ndarray:
    """``forecast[s] = demand[s - h]`` (the first ``h`` rows repeat ``demand[0]``)."""
    demand = check_array("demand", demand, ndim=2, dtype=np.float64, min_size=1)
    horizon = check_int("horizon", horizon, minimum=1)
    steps = np.maximum(np.arange(demand.shape[0]) - horizon, 0)
    return demand[steps].copy()


def error_feedback(demand, forecast, half_life: float = 60.0):
    """Bias and error scale of a forecaster, as known at each interval.

    With errors ``e_s = demand[s] - forecast[s]``, both are exponential moving
    averages with weight ``beta = 1 - 2 ** (-1 / half_life)``:

        bias_t = (1 - beta) bias_{t-1} + beta e_t,
        sigma_t^2 = (1 - beta) sigma_{t-1}^2 + beta e_t^2.

    Parameters
    ----------
    demand, forecast : array_like, shape (n_steps, n_clusters)
    half_life : float
        Intervals, > 0.

    Returns
    -------
    bias, sigma : ndarray of float64, shape (n_steps, n_clusters)
    """
    demand = check_array("demand", demand, ndim=2, dtype=np.float64, finite=True)
    forecast = check_array(
        "forecast", forecast, dtype=np.float64, shape=demand.shape, finite=True
    )
    half_life = check_float("half_life", half_life, minimum=0.0, strict_minimum=True)
    beta = 1.0 - 2.0 ** (-1.0 / half_life)
    errors = demand - forecast
    bias = _recursive_average(errors, 1.0 - beta, beta)
    sigma = np.sqrt(_recursive_average(errors**2, 1.0 - beta, beta))
    return bias, sigma


# --------------------------------------------------------------------- policy


def shift_overflow(load, limit, local_share: float, blocked=None) -> np.ndarray:
    """Move load above each cluster's limit to clusters with headroom, greedily.

    Donors go in order of overflow (largest first); each moves at most
    ``(1 - local_share)`` of its load (the rest must stay local: data residency),
    to receivers in order of headroom (largest first), never past a receiver's
    limit. Blocked clusters receive nothing.

    Parameters
    ----------
    load, limit : array_like, shape (n_clusters,)
        Requests each cluster expects, and requests it can serve.
    local_share : float
        Share of every cluster's load that must stay local, in [0, 1].
    blocked : array_like of bool, shape (n_clusters,), optional

    Returns
    -------
    ndarray of float64, shape (n_clusters, n_clusters)
        ``moves[i, j]``: requests moved from cluster ``i`` to ``j``.
    """
    load = check_array("load", load, ndim=1, dtype=np.float64, finite=True)
    limit = check_array("limit", limit, dtype=np.float64, shape=load.shape, finite=True)
    local_share = check_probability("local_share", local_share)
    if blocked is None:
        blocked = np.zeros(load.shape[0], dtype=bool)
    blocked = check_array("blocked", blocked, dtype=bool, shape=load.shape)
    return _shift(load, limit, local_share, blocked)


def _shift(load, limit, local_share, blocked) -> np.ndarray:
    """:func:`shift_overflow` without the checks (the control loop calls it)."""
    n = load.shape[0]
    moves = np.zeros((n, n))
    overflow = np.maximum(load - limit, 0.0)
    if not overflow.any():
        return moves
    # a handful of clusters: plain Python lists beat NumPy's per-call overhead
    over = overflow.tolist()
    room = np.where(blocked, 0.0, np.maximum(limit - load, 0.0)).tolist()
    movable = ((1.0 - local_share) * np.maximum(load, 0.0)).tolist()
    for i in sorted(range(n), key=lambda c: -over[c]):
        left = min(over[i], movable[i])
        for j in sorted(range(n), key=lambda c: -room[c]):
            if left <= 0.0:
                break
            if j != i and room[j] > 0.0:
                amount = min(left, room[j])
                moves[i, j] = amount
                room[j] -= amount
                left -= amount
    return moves
    headroom = np.where(blocked, 0.0, np.maximum(limit - load, 0.0))
    for i in np.argsort(-overflow, kind="stable"):
        left = min(overflow[i], (1.0 - local_share) * max(load[i], 0.0))
        for j in np.argsort(-headroom, kind="stable"):
            if left <= 0.0:
                break
            amount = min(left, headroom[j]) if j != i else 0.0
            moves[i, j] += amount
            headroom[j] -= amount
            left -= amount
    return moves


@dataclass
class ReactiveAutoscaler:
    """A threshold autoscaler per cluster (Kubernetes HPA-like), no shifting.

    Utilisation is arrivals over active capacity. Above ``up`` the cluster orders
    ``ceil(arrivals / (mu * target))`` replicas, at most once per ``cooldown``
    intervals; below ``down`` for ``cooldown`` intervals in a row it scales down to
    that size. Orders stay within ``[1, cap]``.
    """

    caps: np.ndarray
    mu: float
    up: float = 0.8
    down: float = 0.5
    target: float = 0.65
    cooldown: int = 5
    last_up: np.ndarray = field(init=False)  # interval of each cluster's last scale-up
    low_for: np.ndarray = field(init=False)  # intervals in a row below ``down``

    def __post_init__(self):
        self.caps = check_array("caps", self.caps, ndim=1, dtype=np.float64)
        self.last_up = np.full(self.caps.shape[0], -(10**9))
        self.low_for = np.zeros(self.caps.shape[0], dtype=np.int64)

    def decide(self, t: int, orders: np.ndarray, telemetry: dict):
        """Next orders and routing shares from interval ``t``'s telemetry."""
        arrivals, active = telemetry["routed"], telemetry["active"]
        util = arrivals / np.maximum(active * self.mu, 1e-9)
        desired = np.ceil(arrivals / (self.mu * self.target))
        new = orders.copy()
        up = (util > self.up) & (t - self.last_up >= self.cooldown)
        new[up] = np.maximum(orders[up], desired[up])
        self.last_up[up] = t
        self.low_for = np.where(util < self.down, self.low_for + 1, 0)
        down = self.low_for >= self.cooldown
        new[down] = desired[down]
        self.low_for[down] = 0
        return np.clip(new, 1, self.caps), np.eye(orders.shape[0])


@dataclass
class PredictiveController:
    """The paper's loop: forecast, quantile sizing, shifting, hysteresis, feedback.

    ``upper[t]`` is the demand to cover for the intervals ``t + 1 .. t + 1 + d``
    that an order placed at ``t`` affects: the largest forecast over them plus the
    current bias and ``z`` times the current error scale, where
    ``z = Phi^{-1}(1 - cost_ratio)`` is the newsvendor quantile at which one more
    replica costs as much as the SLA penalty it saves.
    """

    forecast: np.ndarray  # (n_steps, K) forecast[s] of demand at s
    bias: np.ndarray  # (n_steps, K) known at t
    sigma: np.ndarray  # (n_steps, K) known at t
    caps: np.ndarray
    mu: float
    delay: int
    z: float
    local_share: float = 0.6
    budget: float = math.inf
    hysteresis: float = 0.2
    rollback_steps: int = 15
    shifting: bool = True
    blocked_until: np.ndarray = field(init=False)  # no shifts into a cluster before

    ahead: np.ndarray = field(init=False)  # (n_steps, K) forecast part of U[t]
    next_up: np.ndarray = field(init=False)  # (n_steps, K) same for t + 1 alone

    def __post_init__(self):
        self.caps = check_array("caps", self.caps, ndim=1, dtype=np.float64)
        self.blocked_until = np.zeros(self.caps.shape[0])
        self.ahead, self.next_up = self.lookahead()

    def lookahead(self) -> tuple[np.ndarray, np.ndarray]:
        """For every decision time ``t`` at once: the largest forecast over the
        intervals ``t + 1 .. t + 1 + d`` an order placed at ``t`` serves, and the
        forecast for ``t + 1``, each plus the bias and ``z`` error scales known at
        ``t`` (past the end, the last forecast stands in)."""
        last = self.forecast[-1:]
        padded = np.concatenate((self.forecast[1:], last.repeat(self.delay + 1, 0)))
        windows = np.lib.stride_tricks.sliding_window_view(
            padded, self.delay + 1, axis=0
        )[: self.forecast.shape[0]]
        margin = self.bias + self.z * self.sigma
        return windows.max(axis=2) + margin, padded[: self.forecast.shape[0]] + margin

    def upper(self, t: int, observed: np.ndarray) -> np.ndarray:
        """``U[t]``: the demand an order placed at ``t`` must cover, never below the
        demand just observed."""
        return np.maximum(self.ahead[t], observed)

    def size(self, t: int, orders: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Replicas to order: quantile demand plus planned inflow, capped, with a
        hysteresis band for scaling down and a total budget."""
        need = self.upper(t, observed)
        limit = self.caps * self.mu
        inflow = np.zeros_like(need)
        if self.shifting and (need > limit).any():
            no_block = np.zeros(need.shape[0], dtype=bool)
            inflow = _shift(need, limit, self.local_share, no_block).sum(axis=0)
        wanted = (np.minimum(need, limit) + inflow) / self.mu
        # hysteresis: scale up with a margin of half the band, down only past it
        up = wanted > orders
        wanted[up] *= 1.0 + self.hysteresis / 2
        keep = ~up & (wanted >= (1.0 - self.hysteresis) * orders)
        wanted[keep] = orders[keep]
        wanted = np.clip(np.ceil(wanted), 1, self.caps)
        if wanted.sum() > self.budget:
            wanted = np.maximum(np.floor(wanted * self.budget / wanted.sum()), 1)
        return wanted

    def route(self, t: int, next_active: np.ndarray, observed: np.ndarray):
        """Routing shares for interval ``t + 1``: ``shares[i, j]`` of cluster ``i``'s
        demand is served at ``j``."""
        n = next_active.shape[0]
        if not self.shifting or t + 1 >= self.forecast.shape[0]:
            return np.eye(n)
        expected = np.maximum(np.maximum(self.next_up[t], observed), 1e-9)
        moves = _shift(
            expected, next_active * self.mu, self.local_share, self.blocked_until > t
        )
        shares = moves / expected[:, None]
        return shares + np.diag(1.0 - shares.sum(axis=1))

    def feedback(self, t: int, telemetry: dict, sla_breach: np.ndarray) -> None:
        """Roll back shifts into clusters that received traffic and then breached."""
        received = telemetry["routed"] > telemetry["own"] + 1e-9
        self.blocked_until[received & sla_breach] = t + self.rollback_steps

    def decide(self, t: int, orders: np.ndarray, telemetry: dict):
        """Next orders and routing shares from interval ``t``'s telemetry."""
        self.feedback(t, telemetry, telemetry["breach"])
        observed = telemetry["own"]
        new = self.size(t, orders, observed)
        pipeline = telemetry["pipeline"]
        next_active = np.minimum(pipeline.min(axis=0), new) if len(pipeline) else new
        return new, self.route(t, next_active, observed)


# ------------------------------------------------------------------ simulator


@dataclass(frozen=True)
class Trace:
    """What happened in every interval of one controlled run."""

    orders: np.ndarray  # (n_steps, K) replicas wanted after interval t
    active: np.ndarray  # (n_steps, K) replicas serving in interval t
    routed: np.ndarray  # (n_steps, K) requests arriving at each cluster
    backlog: np.ndarray  # (n_steps, K) requests waiting at the end of t
    latency: np.ndarray  # (n_steps, K) seconds: service time plus wait
    drops: np.ndarray  # (n_steps, K) requests dropped
    served: np.ndarray  # (n_steps, K) requests served


def simulate_control(
    demand,
    controller,
    *,
    mu: float,
    delay: int,
    start: int,
    buffer: float = 20_000.0,
    service_seconds: float = 0.2,
    sla_seconds: float = 1.0,
    step_seconds: float = 60.0,
) -> Trace:
    """Run ``controller`` in closed loop over ``demand`` from interval ``start``.

    Each interval ``t``: the replicas that serve are those ordered in every one of
    the last ``d + 1`` decisions, ``active[t] = min(orders[t - 1 - d .. t - 1])``
    (an order needs ``d`` extra intervals to start; a scale-down acts at once);
    demand is routed by the shares decided at ``t - 1``; the fluid queues advance one
    interval; the controller sees the telemetry and decides again. Before ``start``
    every cluster holds the replicas for 65% utilisation of its demand at ``start``.

    Parameters
    ----------
    demand : array_like, shape (n_steps, n_clusters)
    controller : ReactiveAutoscaler or PredictiveController
        Anything with ``decide(t, orders, telemetry) -> (orders, shares)``.
    mu : float
        Requests per replica per interval, > 0.
    delay : int
        Provisioning delay ``d`` in intervals, >= 0.
    start : int
        First controlled interval, in ``[d + 1, n_steps)``.
    buffer : float
        Largest backlog per cluster, in requests.
    service_seconds, sla_seconds, step_seconds : float
        Latency of an unqueued request, the SLA bound, and the interval length.

    Returns
    -------
    Trace
    """
    demand = check_array("demand", demand, ndim=2, dtype=np.float64, finite=True)
    mu = check_float("mu", mu, minimum=0.0, strict_minimum=True)
    delay = check_int("delay", delay, minimum=0)
    n_steps, n = demand.shape
    start = check_int("start", start, minimum=delay + 1, maximum=n_steps - 1)
    if not callable(getattr(controller, "decide", None)):
        raise TypeError("controller must have a decide(t, orders, telemetry) method")
    out = {name: np.zeros((n_steps, n)) for name in Trace.__dataclass_fields__}
    out["orders"][:start] = np.ceil(demand[start] / (0.65 * mu))
    level = np.zeros(n)
    shares = np.eye(n)
    for t in range(start, n_steps):
        out["active"][t] = out["orders"][t - 1 - delay : t].min(axis=0)
        out["routed"][t] = demand[t] @ shares
        backlog, wait, drops = simulate_fluid(
            out["routed"][t : t + 1], out["active"][t : t + 1], mu, buffer, level
        )
        out["backlog"][t], out["drops"][t] = backlog[0], drops[0]
        out["latency"][t] = service_seconds + step_seconds * wait[0]
        out["served"][t] = level + out["routed"][t] - backlog[0] - drops[0]
        level = backlog[0]
        telemetry = {
            "routed": out["routed"][t],
            "own": demand[t],
            "active": out["active"][t],
            "breach": (out["latency"][t] > sla_seconds) | (drops[0] > 0),
            "pipeline": out["orders"][t - delay : t],
        }
        out["orders"][t], shares = controller.decide(t, out["orders"][t - 1], telemetry)
    return Trace(**out)


# -------------------------------------------------------------------- metrics


def stabilisation_time(latency, onsets, band: float, window: int = 30) -> np.ndarray:
    """Intervals from each onset until latency is back in band for good.

    For an onset ``o`` it is ``1 +`` the last interval in ``[o, o + window)`` whose
    latency exceeds ``band``, minus ``o`` (0 when latency never leaves the band).

    Parameters
    ----------
    latency : array_like, shape (n_steps,)
    onsets : array_like of int
    band : float
        Upper edge of the band, in the latency's units.
    window : int
        Intervals searched after each onset, at least 1.

    Returns
    -------
    ndarray of int64, one per onset
    """
    latency = check_array("latency", latency, ndim=1, dtype=np.float64)
    onsets = check_array("onsets", onsets, ndim=1).astype(np.int64)
    band = check_float("band", band)
    window = check_int("window", window, minimum=1)
    times = np.zeros(onsets.shape[0], dtype=np.int64)
    for i, onset in enumerate(onsets):
        late = np.flatnonzero(latency[onset : onset + window] > band)
        times[i] = late[-1] + 1 if late.size else 0
    return times


@dataclass(frozen=True)
class Metrics:
    """The scored numbers of one controlled run (the last day only)."""

    variant: str
    seed: int
    sla_violations: int  # cluster-intervals with latency over the SLA or drops
    stabilisation: float  # mean intervals to settle after scheduled surges
    step_change_stabilisation: int  # intervals to settle after the step change
    latency_std: float  # std of per-interval latency over clusters (s)
    mean_replicas: float  # provisioned replicas, all clusters, per interval
    efficiency: float  # requests served / requests the replicas could serve
    replica_changes: int  # orders that changed a cluster's replica count
    forecast_mae: float  # mean |demand - forecast| / mean demand (nan: none)


def measure(
    trace: Trace,
    workload: Workload,
    variant: str,
    seed: int,
    *,
    mu: float,
    sla_seconds: float = 1.0,
    service_seconds: float = 0.2,
    forecast=None,
) -> Metrics:
    """Score the last day of a run (see :class:`Metrics` for each number).

    Settling times use a band of 1.1 times the service time, searched 30 intervals
    after each scheduled surge on that day and 120 after the step change.

    Parameters
    ----------
    trace : Trace
    workload : Workload
        The workload the trace ran on.
    variant : str
    seed : int
        Labels stored in the result.
    mu : float
        Requests per replica per interval, > 0.
    sla_seconds, service_seconds : float
        The SLA bound and the latency of an unqueued request.
    forecast : array_like, shape (n_steps, n_clusters), optional
        The forecasts the controller used, for their error.

    Returns
    -------
    Metrics
    """
    check_instance("trace", trace, Trace)
    check_instance("workload", workload, Workload)
    mu = check_float("mu", mu, minimum=0.0, strict_minimum=True)
    if forecast is not None:
        forecast = check_array(
            "forecast", forecast, dtype=np.float64, shape=workload.demand.shape
        )
    day = slice(workload.demand.shape[0] - STEPS_PER_DAY, None)
    first = workload.demand.shape[0] - STEPS_PER_DAY
    latency = trace.latency[day]
    breach = (latency > sla_seconds) | (trace.drops[day] > 0)
    band = 1.1 * service_seconds
    settle = [
        stabilisation_time(trace.latency[:, k], onsets[onsets >= first], band)
        for k, onsets in enumerate(workload.surge_onsets)
    ]
    change = stabilisation_time(
        trace.latency[:, workload.change_cluster], [workload.change_step], band, 120
    )
    mae = math.nan
    if forecast is not None:
        error = np.abs(workload.demand[day] - forecast[day]).mean()
        mae = float(error / workload.demand[day].mean())
    return Metrics(
        variant=variant,
        seed=seed,
        sla_violations=int(breach.sum()),
        stabilisation=float(np.concatenate(settle).mean()),
        step_change_stabilisation=int(change[0]),
        latency_std=round(float(latency.std()), 9),  # no float dust for the oracle
        mean_replicas=float(trace.active[day].sum(axis=1).mean()),
        efficiency=float(trace.served[day].sum() / (trace.active[day].sum() * mu)),
        replica_changes=int((np.diff(trace.orders[day], axis=0) != 0).sum()),
        forecast_mae=mae,
    )


# ----------------------------------------------------------------- experiment


@dataclass(frozen=True)
class Config:
    """The experiment: which controller, on which seeds, under which delay."""

    variant: str = "predictive"  # one of VARIANTS; "reactive" is the baseline
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # one two-day workload per seed
    delay: int = 5  # provisioning delay d, in intervals
    mu: float = 50.0  # requests per replica per interval
    cost_ratio: float = 0.002  # replica cost / SLA penalty -> quantile 1 - ratio
    local_share: float = 0.6  # share of each cluster's demand that stays local
    hysteresis: float = 0.2  # dead band for scaling, as a share of the replicas
    shifting: bool = True  # cross-cluster traffic shifts on or off
    warmup: int = 120  # controlled intervals before the scored day
    compare: tuple[str, ...] = ()  # further variants to measure on the same seeds

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        if not isinstance(self.seeds, tuple) or not self.seeds:
            raise ValueError(f"seeds must be a non-empty tuple, got {self.seeds!r}")
        for seed in self.seeds:
            check_int("seeds", seed, minimum=0)
        check_int("delay", self.delay, minimum=0, maximum=60)
        check_float("mu", self.mu, minimum=0.0, strict_minimum=True)
        check_float("cost_ratio", self.cost_ratio, minimum=1e-6, maximum=0.5)
        check_probability("local_share", self.local_share)
        check_probability("hysteresis", self.hysteresis)
        if not isinstance(self.shifting, bool):
            raise TypeError(f"shifting must be a bool, got {self.shifting!r}")
        check_int("warmup", self.warmup, minimum=self.delay + 1, maximum=1000)
        if not isinstance(self.compare, tuple):
            raise TypeError(f"compare must be a tuple, got {self.compare!r}")
        for variant in self.compare:
            check_choice("compare", variant, VARIANTS)


def forecasts_for(variant: str, demand, horizon: int) -> np.ndarray:
    """The forecasts a controller variant uses (the oracle's are the truth)."""
    variant = check_choice("variant", variant, VARIANTS[:3])
    if variant == "predictive":
        return ridge_forecast(demand, horizon)
    if variant == "last_value":
        return last_value_forecast(demand, horizon)
    return check_array("demand", demand, ndim=2, dtype=np.float64).copy()


def make_controller(variant: str, workload: Workload, config: Config):
    """Build controller ``variant`` for one workload; also return its forecasts."""
    variant = check_choice("variant", variant, VARIANTS)
    caps = cluster_caps(config.mu)
    if variant == "reactive":
        return ReactiveAutoscaler(caps, config.mu), None
    forecast = forecasts_for(variant, workload.demand, config.delay + 1)
    bias, sigma = error_feedback(workload.demand, forecast)
    controller = PredictiveController(
        forecast=forecast,
        bias=bias,
        sigma=sigma,
        caps=caps,
        mu=config.mu,
        delay=config.delay,
        z=NormalDist().inv_cdf(1.0 - config.cost_ratio),
        local_share=config.local_share,
        budget=float(0.9 * caps.sum()),
        hysteresis=config.hysteresis,
        shifting=config.shifting,
    )
    return controller, forecast


def run_variant(variant: str, workload: Workload, config: Config):
    """Run one controller variant on one workload; return its trace and forecasts."""
    check_instance("config", config, Config)
    controller, forecast = make_controller(variant, workload, config)
    start = workload.demand.shape[0] - STEPS_PER_DAY - config.warmup
    trace = simulate_control(
        workload.demand, controller, mu=config.mu, delay=config.delay, start=start
    )
    return trace, forecast


@dataclass(frozen=True)
class Result:
    """Per-seed metrics of the configured variant, the baseline and any others."""

    config: Config
    mechanism: tuple[Metrics, ...]  # config.variant, one per seed
    reactive: tuple[Metrics, ...]  # the baseline, one per seed
    others: dict[str, tuple[Metrics, ...]]  # config.compare, one per seed each

    def runs(self, variant: str) -> tuple[Metrics, ...]:
        """The per-seed metrics of ``variant`` (the mechanism, baseline or other)."""
        if variant == self.config.variant:
            return self.mechanism
        if variant == "reactive":
            return self.reactive
        if variant not in self.others:
            raise ValueError(f"variant {variant!r} was not run")
        return self.others[variant]

    def total(self, variant: str, name: str) -> float:
        """Metric ``name`` of ``variant`` summed over seeds."""
        return float(sum(getattr(m, name) for m in self.runs(variant)))

    def mean(self, variant: str, name: str) -> float:
        """Metric ``name`` of ``variant`` averaged over seeds."""
        return self.total(variant, name) / len(self.config.seeds)

    def cut(self, name: str, variant: str | None = None) -> float:
        """Reduction of metric ``name`` against the baseline, pooled over seeds:
        ``1 - sum(variant) / sum(reactive)`` (``variant`` defaults to the
        mechanism)."""
        base = self.total("reactive", name)
        mine = self.total(variant or self.config.variant, name)
        return 1.0 - mine / base if base > 0 else 0.0


def run_experiment(config: Config) -> Result:
    """Run ``config.variant``, the reactive baseline and ``config.compare`` on every
    seed's workload and score the last day."""
    check_instance("config", config, Config)
    variants = tuple(dict.fromkeys((config.variant, "reactive", *config.compare)))
    runs: dict[str, list[Metrics]] = {v: [] for v in variants}
    for seed in config.seeds:
        workload = make_workload(seed)
        for variant in variants:
            trace, forecast = run_variant(variant, workload, config)
            runs[variant].append(
                measure(trace, workload, variant, seed, mu=config.mu, forecast=forecast)
            )
        log.info("seed %d: %s", seed, runs[config.variant][-1])
    others = {v: tuple(runs[v]) for v in config.compare}
    return Result(config, tuple(runs[config.variant]), tuple(runs["reactive"]), others)


def check_claim(result: Result) -> None:
    """Raise ClaimFailed unless the mechanism beats the reactive baseline.

    Pooled over seeds, against the reactive autoscaler: (a) at least 30% fewer
    SLA-violation intervals; (b) at least 50% shorter mean stabilisation after the
    scheduled surges; (c) a mean standard deviation of per-interval latency at most
    0.8 times the baseline's; (d) at most 5% more provisioned replicas on average
    and an efficiency (served / servable requests) at least the baseline's.
    """
    check_instance("result", result, Result)
    name = result.config.variant
    violations = result.cut("sla_violations")
    require(
        violations >= MIN_VIOLATION_CUT,
        f"{name}: {violations:.0%} fewer SLA-violation intervals than reactive, "
        f"need >= {MIN_VIOLATION_CUT:.0%}",
    )
    settle = result.cut("stabilisation")
    require(
        settle >= MIN_STABILISATION_CUT,
        f"{name}: stabilisation {settle:.0%} shorter than reactive, "
        f"need >= {MIN_STABILISATION_CUT:.0%}",
    )
    spread = result.mean(name, "latency_std") / result.mean("reactive", "latency_std")
    require(
        spread <= MAX_STD_RATIO,
        f"{name}: latency std {spread:.2f} times reactive's, need <= {MAX_STD_RATIO}",
    )
    extra = (
        result.mean(name, "mean_replicas") / result.mean("reactive", "mean_replicas")
        - 1.0
    )
    require(
        extra <= MAX_EXTRA_CAPACITY,
        f"{name}: {extra:+.1%} provisioned replicas vs reactive, "
        f"need <= {MAX_EXTRA_CAPACITY:+.0%}",
    )
    efficiency = result.mean(name, "efficiency")
    base_efficiency = result.mean("reactive", "efficiency")
    require(
        efficiency >= base_efficiency,
        f"{name}: efficiency {efficiency:.3f} below reactive's {base_efficiency:.3f}",
    )


# ------------------------------------------------- a real thread-pool replay


@dataclass
class _Pool:
    """One emulated cluster: a request queue and the number of workers allowed."""

    service: float  # seconds one request keeps a worker busy
    allowed: int = 0
    requests: queue.Queue = field(default_factory=queue.Queue)
    done: list = field(default_factory=list)  # (arrival tick, latency seconds)


def _serve(pool: _Pool, index: int, poll: float, stop: threading.Event) -> None:
    """A worker thread: while its index is allowed, take requests and sleep."""
    while not stop.is_set():
        if index >= pool.allowed:
            time.sleep(poll)
            continue
        try:
            tick, arrived = pool.requests.get(timeout=poll)
        except queue.Empty:
            continue
        time.sleep(pool.service)
        pool.done.append((tick, time.perf_counter() - arrived))


@dataclass(frozen=True)
class Emulation:
    """Latency of real requests served by thread pools that replay schedules."""

    tick_seconds: float  # wall seconds standing for one interval
    arrivals: np.ndarray  # (n_ticks,) requests sent per tick
    workers: dict[str, np.ndarray]  # per pool: workers allowed per tick
    p95_ms: dict[str, np.ndarray]  # per pool: p95 latency by arrival tick (ms)
    wall_seconds: float  # how long the replay took


def emulate_thread_pools(
    demand,
    replicas: dict,
    *,
    replicas_per_worker: float = 2.0,
    requests_per_tick: float = 2.0,
    mu: float = 50.0,
    tick_seconds: float = 0.05,
    substeps: int = 5,
) -> Emulation:
    """Replay one cluster's demand and replica schedules on real thread pools.

    Every pool gets the same requests: each interval becomes a tick of
    ``tick_seconds``, a worker thread stands for ``replicas_per_worker`` replicas and
    serves ``requests_per_tick`` requests per tick by sleeping, and
    ``demand * requests_per_tick / (mu * replicas_per_worker)`` requests arrive per
    tick, spread over ``substeps`` moments. All pools run at once, so machine load
    hits them alike; their queues are real ``queue.Queue`` objects.

    Parameters
    ----------
    demand : array_like, shape (n_ticks,)
        Requests per interval of the replayed cluster.
    replicas : dict of str to array_like, shape (n_ticks,)
        Replica schedule of each pool (e.g. one controller's ``active`` column).

    Returns
    -------
    Emulation
    """
    demand = check_array(
        "demand", demand, ndim=1, dtype=np.float64, finite=True, min_size=1
    )
    if not isinstance(replicas, dict) or not replicas:
        raise TypeError("replicas must be a non-empty dict of name to schedule")
    tick_seconds = check_float("tick_seconds", tick_seconds, minimum=0.005, maximum=1.0)
    substeps = check_int("substeps", substeps, minimum=1, maximum=50)
    scale = requests_per_tick / (mu * replicas_per_worker)
    arrivals = np.diff(np.floor(np.cumsum(demand * scale)), prepend=0.0).astype(int)
    workers = {
        name: np.round(
            check_array(name, r, dtype=np.float64, shape=demand.shape)
            / replicas_per_worker
        ).astype(int)
        for name, r in replicas.items()
    }
    pools = {name: _Pool(tick_seconds / requests_per_tick) for name in replicas}
    stop = threading.Event()
    threads = [
        threading.Thread(target=_serve, args=(pools[n], i, tick_seconds / 4, stop))
        for n in pools
        for i in range(int(workers[n].max()))
    ]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    for tick, count in enumerate(arrivals):
        for name, pool in pools.items():
            pool.allowed = int(workers[name][tick])
        for sub in range(substeps):
            batch = count * (sub + 1) // substeps - count * sub // substeps
            for pool in pools.values():
                for _ in range(batch):
                    pool.requests.put((tick, time.perf_counter()))
            wake = start + (tick + (sub + 1) / substeps) * tick_seconds
            time.sleep(max(0.0, wake - time.perf_counter()))
    while any(p.requests.qsize() for p in pools.values()):
        time.sleep(tick_seconds)
    stop.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    p95 = {
        name: _p95_by_tick(pool.done, demand.shape[0]) for name, pool in pools.items()
    }
    return Emulation(tick_seconds, arrivals, workers, p95, wall)


def _p95_by_tick(done: list, n_ticks: int) -> np.ndarray:
    """95th-percentile latency (ms) of the requests that arrived in each tick."""
    out = np.full(n_ticks, np.nan)
    if not done:
        return out
    ticks, latency = np.array(done).T
    for tick in range(n_ticks):
        mine = latency[ticks == tick]
        if mine.size:
            out[tick] = 1e3 * np.percentile(mine, 95)
    return out


# --------------------------------------------------------------------- figures


def plot_timeline(
    workload: Workload,
    traces: dict,
    cluster: int,
    steps,
    *,
    mu: float = 50.0,
    sla_seconds: float = 1.0,
):
    """Demand and provisioned capacity (top) and latency (bottom) of one cluster.

    Parameters
    ----------
    workload : Workload
    traces : dict of str to Trace
        The runs to draw, by variant name.
    cluster : int
    steps : slice
        Intervals to draw.

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_instance("workload", workload, Workload)
    cluster = check_int("cluster", cluster, minimum=0, maximum=N_CLUSTERS - 1)
    fig, (top, bottom) = plotting.subplots(2, 1, width=8.0, height=5.6, sharex=True)
    hours = np.arange(workload.demand.shape[0])[steps] / 60.0
    top.plot(
        hours, workload.demand[steps, cluster], color="black", lw=1.2, label="demand"
    )
    for i, (name, trace) in enumerate(traces.items()):
        color = _color(name, i)
        breaches = int((trace.latency[steps, cluster] > sla_seconds).sum())
        top.step(
            hours,
            trace.active[steps, cluster] * mu,
            where="post",
            color=color,
            label=f"{name} capacity",
        )
        bottom.plot(
            hours,
            trace.latency[steps, cluster],
            color=color,
            label=f"{name}: {breaches} SLA-violation intervals",
        )
    bottom.axhline(sla_seconds, color="grey", ls="--", lw=1, label="SLA")
    bottom.set_yscale("log")
    plotting.label_axes(
        top,
        title=f"Cluster {cluster}: demand and capacity",
        xlabel="time (hours since start)",
        ylabel="requests per minute",
    )
    plotting.label_axes(
        bottom,
        title="Latency of each interval",
        xlabel="time (hours since start)",
        ylabel="latency (s)",
    )
    return fig


def _color(variant: str, index: int) -> str:
    """The book's colour of a variant: blue the mechanism, vermillion the baseline."""
    order = {"predictive": 0, "reactive": 1, "last_value": 3, "oracle": 2}
    return plotting.COLORS[order.get(variant, 4 + index)]


def plot_summary(result: Result):
    """Four bar charts of the scored metrics, one bar per variant, mean over seeds."""
    check_instance("result", result, Result)
    variants = [
        v
        for v in ("reactive", "last_value", "predictive", "oracle")
        if v in (result.config.variant, "reactive", *result.others)
    ]
    panels = (
        ("sla_violations", "SLA-violation intervals per day", "intervals"),
        ("stabilisation", "Settling time after scheduled surges", "intervals"),
        ("latency_std", "Std of per-interval latency", "seconds"),
        ("mean_replicas", "Provisioned replicas (all clusters)", "replicas"),
    )
    fig, axes = plotting.subplots(2, 2, width=8.0, height=5.6)
    for ax, (name, title, unit) in zip(axes.flat, panels, strict=True):
        values = [result.mean(v, name) for v in variants]
        ax.bar(
            range(len(variants)),
            values,
            color=[_color(v, i) for i, v in enumerate(variants)],
        )
        ax.set_xticks(range(len(variants)), [v.replace("_", " ") for v in variants])
        plotting.label_axes(ax, title=title, xlabel="controller", ylabel=unit)
    return fig


def plot_emulation(emulation: Emulation):
    """Workers allowed (top) and measured p95 latency (bottom) of each thread pool."""
    check_instance("emulation", emulation, Emulation)
    fig, (top, bottom) = plotting.subplots(2, 1, width=8.0, height=5.0, sharex=True)
    ticks = np.arange(emulation.arrivals.shape[0])
    need = emulation.arrivals / 2.0
    top.plot(ticks, need, color="black", lw=1.2, label="workers the arrivals need")
    for i, (name, workers) in enumerate(emulation.workers.items()):
        top.step(ticks, workers, where="post", color=_color(name, i), label=name)
        bottom.plot(ticks, emulation.p95_ms[name], color=_color(name, i), label=name)
    ms = emulation.tick_seconds * 1e3
    plotting.label_axes(
        top,
        title="Thread pools replaying the schedules",
        xlabel="tick (one simulated minute)",
        ylabel="worker threads",
    )
    plotting.label_axes(
        bottom,
        title=f"Measured p95 latency (one tick = {ms:.0f} ms)",
        xlabel="tick (one simulated minute)",
        ylabel="latency (ms)",
    )
    return fig

"""A miniature DataFlow engine: causal, tileable computation over time-indexed frames.

Saggese and Smith, "Causify DataFlow: A Framework For High-performance Machine Learning
Stream Computing", arXiv 2512.23977.

A model is a DAG of nodes. Each node maps time-indexed frames (rows are one-minute
bars, axes ``(time, asset, column)``) to a new frame and declares a finite lookback
``W``: its output at bar ``t`` may read its inputs at bars ``t - W + 1 .. t`` only
(point-in-time idempotency). The runner then evaluates the DAG over *tiles* of time
``[t0, t1)``: every node gets its inputs from ``t0 - h`` on, where ``h`` is the
history its descendants need (lookbacks summed along the path to the sinks), and only
outputs on ``[t0, t1)`` are kept. Nodes with infinite memory (an EWMA) or learned state
(an online ridge model) carry an explicit state from one tile to the next. With both,
the concatenated tile outputs equal the output of one batch run: the tilability
property

    f(A[t1 - T : t2] U A[t3 - T : t4])[t1 : t4]
        = f(A[t1 - T : t2])[t1 : t2] U f(A[t3 - T : t4])[t3 : t4].

Every input cell carries a *knowledge time*, the bar at which it became available. A
tile ending at ``t1`` sees only cells known by ``t1 - 1``, so a tile of one bar is a
stream step; :func:`run_stream` feeds bars through a ``queue.Queue`` from a producer
thread to a consumer thread that runs the DAG one bar at a time.
:func:`check_causality` recomputes the DAG on data truncated at chosen bars and raises
:class:`FuturePeekingError` where a value differs from the batch run.

The hot loops (rolling z-score, EWMA over a tile) live in
:mod:`paperlab.kernels.dataflow`.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache, partial

import numpy as np
from scipy.signal import lfilter

from paperlab.claims import require
from paperlab.kernels.dataflow import ewma_tile, rolling_zscore
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "VARIANTS",
    "Panel",
    "make_panel",
    "Node",
    "Dag",
    "make_dag",
    "add_feature",
    "new_sink",
    "run_tile",
    "run_tiles",
    "run_stream",
    "FuturePeekingError",
    "check_causality",
    "max_abs_diff",
    "hit_rate",
    "Config",
    "Result",
    "run_experiment",
    "check_claim",
    "TilingView",
    "explore_tiling",
    "plot_tiling",
    "plot_modes",
    "plot_hit_rates",
]

log = logging.getLogger(__name__)

VARIANTS = ("dataflow", "naive_chunks", "leaky")
ZSCORE_INPUTS = ("ret", "volume", "ret_5m", "volume_5m", "signal")

# The claim's thresholds (see check_claim).
MAX_TILE_DIFF = 1e-9
MAX_HIT_GAP = 0.5  # percentage points
MAX_MEMORY_RATIO = 0.5


# ------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Panel:
    """A synthetic panel of one-minute bars with a knowledge time for every cell."""

    values: np.ndarray = field(repr=False)  # (T, N, 3): ret, volume, signal
    known: np.ndarray = field(repr=False)  # (T, N, 3): bar at which each cell arrives

    @property
    def n_bars(self) -> int:
        """Number of bars ``T``."""
        return int(self.values.shape[0])

    @property
    def n_assets(self) -> int:
        """Number of assets ``N``."""
        return int(self.values.shape[1])

    def assets(self, index) -> Panel:
        """The panel restricted to the assets in ``index`` (a feature tile)."""
        return Panel(self.values[:, index], self.known[:, index])


def make_panel(
    n_bars: int,
    n_assets: int,
    rng: np.random.Generator,
    *,
    latency_max: int = 3,
    signal_strength: float = 0.6,
) -> Panel:
    """Draw a one-factor panel with AR(1) noise and a late-arriving signal.

    Log prices are ``p[t, i] = beta_i F[t] + u[t, i]`` with a random-walk factor ``F``
    and AR(1) noise ``u`` (coefficient 0.9), so returns mean-revert a little. A signal
    ``s[t, i] ~ N(0, 1)`` moves the *next* return by ``signal_strength`` noise units,
    but arrives ``0 .. latency_max`` bars late (uniformly): its knowledge time is
    ``t + latency``. Returns and log volumes are known at their own bar.

    Parameters
    ----------
    n_bars, n_assets : int
        Panel size ``T`` (at least 2) and ``N`` (at least 1).
    rng : numpy.random.Generator
    latency_max : int
        Largest arrival delay of the signal, in bars.
    signal_strength : float
        Effect of the signal on the next return, in units of the noise's scale.

    Returns
    -------
    Panel
    """
    n_bars = check_int("n_bars", n_bars, minimum=2)
    n_assets = check_int("n_assets", n_assets, minimum=1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    latency_max = check_int("latency_max", latency_max, minimum=0)
    signal_strength = check_float("signal_strength", signal_strength, minimum=0.0)
    scale = 1e-3
    beta = rng.uniform(0.5, 1.5, size=n_assets)
    factor = np.cumsum(scale * rng.standard_normal(n_bars))
    shocks = scale * rng.standard_normal((n_bars, n_assets))
    noise = lfilter([1.0], [1.0, -0.9], shocks, axis=0)  # u[t] = 0.9 u[t-1] + e[t]
    signal = rng.standard_normal((n_bars, n_assets))
    ret = np.diff(factor[:, None] * beta + noise, axis=0, prepend=0.0)
    ret[1:] += signal_strength * scale * signal[:-1]
    volume = (
        lfilter(
            [1.0], [1.0, -0.95], 0.3 * rng.standard_normal((n_bars, n_assets)), axis=0
        )
        + np.abs(ret) / scale
    )
    latency = rng.integers(0, latency_max + 1, size=(n_bars, n_assets))
    known = np.broadcast_to(
        np.arange(n_bars, dtype=np.float64)[:, None, None], (n_bars, n_assets, 3)
    ).copy()
    known[:, :, 2] += latency
    return Panel(np.stack((ret, volume, signal), axis=2), known)


# ------------------------------------------------------------------ the nodes


@dataclass(frozen=True)
class Node:
    """One step of the model.

    ``fn(times, *parents)`` returns the node's values on the same rows as its inputs,
    shape ``(rows, N, len(columns))``. A stateful node's ``fn`` is called as
    ``fn(times, *parents, state=..., first=..., save=...)``: ``state`` is what the
    previous tile left (``None`` to start fresh); it returns the values of rows
    ``first:`` and its state after row ``save`` (``None`` when ``save < first``: the
    next tile then starts fresh). ``times`` holds the bar of each input row.
    """

    name: str
    parents: tuple[str, ...]  # node names; "source" and "known" are the raw panel
    columns: tuple[str, ...]  # output column names
    lookback: int  # W: output at t reads parent rows t - W + 1 .. t
    fn: Callable = field(repr=False)
    stateful: bool = False


def asof_signal(times, source, known):
    """Latest signal value whose knowledge time is at most the row's bar (W = 4).

    The signal arrives at most 3 bars late, so the event ``t - 3`` is always known by
    ``t``: the candidates are events ``t - 3 .. t``, and later ones win.
    """
    n = times.shape[0]
    out = np.full(source.shape[:2], np.nan)
    for lag in range(min(3, n - 1), -1, -1):
        arrived = known[: n - lag, :, 2] <= times[lag:, None]
        np.copyto(out[lag:], source[: n - lag, :, 2], where=arrived)
    return out[:, :, None]


def resample_bars(times, source, period: int = 5):
    """Five-minute bars held until the next close: summed return, mean volume.

    The 5-minute bar ``m`` covers the one-minute bars ``[mP, mP + P)``. Row ``t`` shows
    the bar that closed last, at ``c = floor((t + 1) / P) P - 1``; it reads rows
    ``c - P + 1 .. c``, so the lookback is ``2 P - 1``.
    """
    n, n_assets = source.shape[:2]
    offset = int(-times[0] % period)  # first row that opens a bar
    n_full = (n - offset) // period
    rows = source[offset : offset + n_full * period, :, :2]
    bars = rows.reshape(n_full, period, n_assets, 2).sum(axis=1)
    bars[:, :, 1] /= period
    last = (np.arange(n) - offset + 1) // period - 1  # bar closed last at each row
    out = np.full((n, n_assets, 2), np.nan)
    out[last >= 0] = bars[last[last >= 0]]
    return out


def zscore_features(times, source, bars, signal, window: int = 60):
    """Trailing z-score, mean and std of ret, volume, 5-minute bars and signal."""
    x = np.concatenate((source[:, :, :2], bars, signal), axis=2)
    rows, n_assets, n_cols = x.shape
    stats = rolling_zscore(x.reshape(rows, -1), window)
    mean, std, z = (s.reshape(rows, n_assets, n_cols) for s in stats)
    return np.concatenate((z, mean, std), axis=2)


def ewma_features(times, zscores, *, state, first, save, alphas):
    """EWMAs of the z-scores at several smoothing weights, carrying their state."""
    z = zscores[first:, :, : len(ZSCORE_INPUTS)]
    rows, n_assets, n_cols = z.shape
    flat = z.reshape(rows, -1)
    outs, saved = [], []
    for a, alpha in enumerate(alphas):
        start = np.full(flat.shape[1], np.nan) if state is None else state[a]
        y, _ = ewma_tile(flat, alpha, start)
        outs.append(y.reshape(rows, n_assets, n_cols))
        if save >= first:
            saved.append(y[save - first].copy())
    return np.concatenate(outs, axis=2), (saved if save >= first else None)


def stack_features(times, *parents):
    """Concatenate the model's features: z-scores, EWMAs (and any extra column)."""
    first = parents[0][:, :, : len(ZSCORE_INPUTS)]
    return np.concatenate((first, *parents[1:]), axis=2)


def centred_mean(times, zscores, half: int = 2):
    """LEAKY: mean of the z-scored return over bars ``t - 2 .. t + 2`` (future rows).

    It declares a lookback of 3 as if it were causal; within a frame it averages
    whatever rows of the centred window exist, so it reads the future when the frame
    holds it and quietly changes value when it does not.
    """
    z = zscores[:, :, 0]
    n = z.shape[0]
    finite = np.isfinite(z)
    values = np.where(finite, z, 0.0)
    total, count = np.zeros(z.shape), np.zeros(z.shape)
    for k in range(-half, half + 1):  # add row i + k to row i
        lo, hi = max(0, -k), min(n, n - k)
        total[lo:hi] += values[lo + k : hi + k]
        count[lo:hi] += finite[lo + k : hi + k]
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)[:, :, None]


def sign_position(times, prediction, threshold: float = 0.0):
    """Position +1 / -1 on the prediction's sign where it exceeds the threshold."""
    pred = prediction[:, :, :1]
    return np.where(np.abs(pred) > threshold, np.sign(pred), 0.0)  # NaN: no position


# ------------------------------------------------------- the fit/predict node


def _fresh_ridge_state(n_assets: int, n_features: int) -> dict:
    return {"blocks": {}, "coef": np.full((n_assets, n_features), np.nan)}


def _copy_state(state: dict) -> dict:
    """A copy that later updates cannot reach (the arrays are never edited in place)."""
    return {"blocks": dict(state["blocks"]), "coef": state["coef"]}


def _add_pairs(state: dict, x, y, times, refit_every: int) -> None:
    """Add training pairs (features at t - 1, return at t) to their refit blocks.

    A pair completed at bar ``u`` goes to block ``ceil(u / R)``; the refit at bar
    ``k`` (a multiple of ``R``) uses the blocks of pairs completed in ``(k - L, k]``.
    """
    ok = np.isfinite(x).all(axis=2) & np.isfinite(y)
    x = np.where(ok[:, :, None], x, 0.0)
    y = np.where(ok, y, 0.0)
    block = -(-times // refit_every)
    n_assets, n_features = x.shape[1:]
    for b in range(int(block[0]), int(block[-1]) + 1):  # times are sorted
        rows = slice(None) if block[0] == block[-1] else block == b
        if int(b) in state["blocks"]:
            xtx, xty, count = state["blocks"][int(b)]
        else:
            xtx = np.zeros((n_assets, n_features, n_features))
            xty, count = np.zeros((n_assets, n_features)), 0
        xb = x[rows].transpose(1, 0, 2)  # (N, rows, F): one matrix product per asset
        xtx = xtx + xb.transpose(0, 2, 1) @ xb
        xty = xty + (xb.transpose(0, 2, 1) @ y[rows].T[:, :, None])[:, :, 0]
        state["blocks"][int(b)] = (xtx, xty, count + ok[rows].sum(axis=0))


def _refit(state: dict, k: int, refit_every: int, n_blocks: int, lam: float) -> None:
    """Refit each asset's ridge coefficients on the last ``n_blocks`` blocks of pairs.

    Solves ``(X^T X + lam n I) beta = X^T y`` per asset from the blocks' sums, drops
    blocks that left the window, and leaves ``beta`` NaN (no prediction) for an asset
    with fewer than ``2 F`` valid pairs.
    """
    last = k // refit_every
    keep = [b for b in state["blocks"] if b > last - n_blocks]
    state["blocks"] = {b: state["blocks"][b] for b in keep}
    if not keep:
        return
    xtx = sum(state["blocks"][b][0] for b in keep)
    xty = sum(state["blocks"][b][1] for b in keep)
    count = sum(state["blocks"][b][2] for b in keep)
    n_features = xtx.shape[1]
    penalty = lam * np.maximum(count, 1)[:, None, None] * np.eye(n_features)
    coef = np.linalg.solve(xtx + penalty, xty[:, :, None])[:, :, 0]
    state["coef"] = np.where((count >= 2 * n_features)[:, None], coef, np.nan)


def ridge_predict(
    times, features, source, *, state, first, save, refit_every, n_blocks, lam
):
    """Online ridge: refit every ``R`` bars on the last ``L`` bars, predict each bar.

    At bar ``t`` the node (1) adds the pair (features at ``t - 1``, return at ``t``),
    known by ``t``; (2) if ``t`` is a multiple of ``R``, refits each asset's
    coefficients ``(X^T X + lam n I)^{-1} X^T y`` on the pairs completed in
    ``(t - L, t]``; (3) predicts the next return as ``features[t] . coef``. The state
    carried between tiles is the per-block sums ``X^T X``, ``X^T y`` and the current
    coefficients: finite, whatever the history's length.
    """
    state = (
        _fresh_ridge_state(*features.shape[1:]) if state is None else _copy_state(state)
    )
    rows = times.shape[0]
    cuts = {first, rows}
    cuts |= set((first + np.flatnonzero(times[first:] % refit_every == 0)).tolist())
    if first <= save < rows - 1:
        cuts.add(save + 1)
    cuts = sorted(cuts)
    pred = np.full((rows - first, features.shape[1], 1), np.nan)
    saved = None
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        lo = max(a, 1)  # a pair needs the previous row's features
        refit = times[a] % refit_every == 0 and times[a] > 0
        if refit and lo == a:
            _add_pairs(
                state,
                features[a - 1 : a],
                source[a : a + 1, :, 0],
                times[a : a + 1],
                refit_every,
            )
            lo = a + 1
        if refit:
            _refit(state, int(times[a]), refit_every, n_blocks, lam)
        if lo < b:
            _add_pairs(
                state,
                features[lo - 1 : b - 1],
                source[lo:b, :, 0],
                times[lo:b],
                refit_every,
            )
        pred[a - first : b - first, :, 0] = np.einsum(
            "tnf,nf->tn", features[a:b], state["coef"]
        )
        if b - 1 == save:
            saved = state if b == rows else _copy_state(state)
    return pred, saved


# -------------------------------------------------------------------- the DAG


@dataclass(frozen=True)
class Dag:
    """Nodes in topological order; the raw panel enters as "source" and "known"."""

    nodes: tuple[Node, ...]

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique, got {names}")
        for i, n in enumerate(self.nodes):
            for p in n.parents:
                if p not in ("source", "known") and p not in names[:i]:
                    raise ValueError(
                        f"node {n.name!r}: parent {p!r} must come earlier in nodes"
                    )

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @cached_property
    def history(self) -> dict[str, int]:
        """Rows of history each node must produce before a tile's first row.

        ``h(n) = max over children c of h(c) + W_c - 1`` (0 for a sink): the
        lookbacks summed along the longest path below ``n``.
        """
        h = {n.name: 0 for n in self.nodes} | {"source": 0, "known": 0}
        for n in reversed(self.nodes):
            for p in n.parents:
                h[p] = max(h[p], h[n.name] + n.lookback - 1)
        return h


def make_dag(
    leaky: bool = False,
    *,
    zscore_window: int = 60,
    ewma_halflives: tuple[float, ...] = (10.0, 60.0),
    refit_every: int = 500,
    fit_window: int = 5_000,
    ridge_lambda: float = 0.01,
    position_threshold: float = 0.0,
) -> Dag:
    """The chapter's model: as-of signal, 5-minute bars, z-scores, EWMAs, ridge, sign.

    Parameters
    ----------
    leaky : bool
        Add the centred-mean feature (:func:`centred_mean`), which peeks two bars into
        the future.
    zscore_window : int
        Lookback ``W`` of the rolling z-score, at least 2.
    ewma_halflives : tuple of float
        Half-lives in bars of the EWMAs of each z-score.
    refit_every, fit_window : int
        The ridge refits every ``R`` bars on the last ``L`` bars (``L`` a multiple of
        ``R``).
    ridge_lambda : float
        Ridge penalty per training pair.
    position_threshold : float
        Smallest absolute prediction that takes a position.

    Returns
    -------
    Dag
    """
    zscore_window = check_int("zscore_window", zscore_window, minimum=2)
    refit_every = check_int("refit_every", refit_every, minimum=1)
    fit_window = check_int("fit_window", fit_window, minimum=refit_every)
    if fit_window % refit_every:
        raise ValueError("fit_window must be a multiple of refit_every")
    ridge_lambda = check_float("ridge_lambda", ridge_lambda, minimum=0.0)
    threshold = check_float("position_threshold", position_threshold, minimum=0.0)
    halflives = [
        check_float("halflife", h, minimum=0.0, strict_minimum=True)
        for h in ewma_halflives
    ]
    if not halflives:
        raise ValueError("ewma_halflives must name at least one half-life")
    alphas = tuple(1.0 - 0.5 ** (1.0 / h) for h in halflives)
    zcols = tuple(f"{s}_{c}" for s in ("z", "mean", "std") for c in ZSCORE_INPUTS)
    ecols = tuple(f"ewma{h:g}_{c}" for h in halflives for c in ZSCORE_INPUTS)
    extra = ("z_ret_centred",) if leaky else ()
    fcols = zcols[: len(ZSCORE_INPUTS)] + ecols + extra
    ridge = partial(
        ridge_predict,
        refit_every=refit_every,
        lam=ridge_lambda,
        n_blocks=fit_window // refit_every,
    )
    nodes = [
        Node("signal", ("source", "known"), ("signal_asof",), 4, asof_signal),
        Node("bars_5m", ("source",), ("ret_5m", "volume_5m"), 9, resample_bars),
        Node(
            "zscore",
            ("source", "bars_5m", "signal"),
            zcols,
            zscore_window,
            partial(zscore_features, window=zscore_window),
        ),
        Node(
            "ewma",
            ("zscore",),
            ecols,
            1,
            partial(ewma_features, alphas=alphas),
            stateful=True,
        ),
    ]
    if leaky:
        nodes.append(Node("centred", ("zscore",), extra, 3, centred_mean))
    nodes += [
        Node(
            "features",
            ("zscore", "ewma", "centred")[: 3 if leaky else 2],
            fcols,
            1,
            stack_features,
        ),
        Node("ridge", ("features", "source"), ("prediction",), 2, ridge, stateful=True),
        Node(
            "position",
            ("ridge",),
            ("position",),
            1,
            partial(sign_position, threshold=threshold),
        ),
    ]
    return Dag(tuple(nodes))


def add_feature(dag: Dag, node: Node) -> Dag:
    """A copy of ``dag`` with ``node`` inserted before ``features`` and fed to it.

    Raises
    ------
    ValueError
        If ``dag`` has no ``features`` node or already has a node of that name.
    """
    check_instance("node", node, Node)
    names = [n.name for n in dag.nodes]
    if "features" not in names:
        raise ValueError("dag must have a 'features' node")
    i = names.index("features")
    features = dag.nodes[i]
    wired = Node(
        features.name,
        features.parents + (node.name,),
        features.columns + node.columns,
        features.lookback,
        features.fn,
        features.stateful,
    )
    return Dag(dag.nodes[:i] + (node, wired) + dag.nodes[i + 1 :])


# ----------------------------------------------------------------- the runner


def new_sink(dag: Dag, n_bars: int, n_assets: int) -> dict[str, np.ndarray]:
    """Preallocated output arrays, one ``(T, N, C)`` array per node, NaN-filled."""
    return {
        n.name: np.full((n_bars, n_assets, len(n.columns)), np.nan) for n in dag.nodes
    }


def run_tile(
    dag: Dag,
    panel: Panel,
    t0: int,
    t1: int,
    states: dict | None = None,
    *,
    carry: bool = True,
) -> tuple[dict[str, np.ndarray], dict]:
    """Evaluate the DAG on the tile ``[t0, t1)``.

    With ``carry=True`` node ``n`` computes rows ``[t0 - h(n), t1)`` (``h`` from
    :meth:`Dag.history`) from inputs that start ``W - 1`` rows earlier, and stateful
    nodes start from ``states``; cells whose knowledge time is after ``t1 - 1`` are
    masked. With ``carry=False`` (the naive chunked pipeline) every node sees rows
    ``[t0, t1)`` only and starts fresh.

    Returns
    -------
    outputs : dict
        Each node's values on ``[t0, t1)``, shape ``(t1 - t0, N, C)``.
    states : dict
        Stateful nodes' states for a tile starting at ``t1``.
    """
    history = dag.history
    lower = 0 if carry else t0
    out_start = {n: max(lower, t0 - h) if carry else t0 for n, h in history.items()}
    in_start = {
        n.name: max(lower, out_start[n.name] - n.lookback + 1) for n in dag.nodes
    }
    src = min([in_start[n.name] for n in dag.nodes] + [t0])
    known = panel.known[src:t1]
    hidden = known > t1 - 1
    frames = {
        "source": (src, np.where(hidden, np.nan, panel.values[src:t1])),
        "known": (src, np.where(hidden, np.inf, known)),
    }
    states = dict(states or {}) if carry else {}
    new_states = {}
    for n in dag.nodes:
        lo = in_start[n.name]
        times = np.arange(lo, t1)
        args = [frames[p][1][lo - frames[p][0] :] for p in n.parents]
        first = out_start[n.name] - lo
        if n.stateful:
            save = t1 - history[n.name] - 1 - lo
            values, new_states[n.name] = n.fn(
                times, *args, state=states.get(n.name), first=first, save=save
            )
        else:
            values = n.fn(times, *args)[first:]
        frames[n.name] = (out_start[n.name], values)
    outputs = {n.name: frames[n.name][1][t0 - frames[n.name][0] :] for n in dag.nodes}
    return outputs, new_states


def run_tiles(
    dag: Dag,
    panel: Panel,
    tile_len: int,
    *,
    sink: dict | None = None,
    assets=None,
    carry: bool = True,
    start: int = 0,
    stop: int | None = None,
    states: dict | None = None,
) -> dict:
    """Run consecutive tiles of ``tile_len`` bars over ``[start, stop)``.

    Parameters
    ----------
    dag : Dag
    panel : Panel
    tile_len : int
        Bars per tile, at least 1 (``T`` for one batch tile).
    sink : dict, optional
        From :func:`new_sink`; each tile's outputs are written into it.
    assets : array_like of int, optional
        The sink's asset columns that ``panel``'s assets map to (feature tiles).
    carry : bool
        Give every tile its history and carried states (DataFlow), or not (naive).
    start, stop : int
        Bars to run; ``states`` must be those left by a run that ended at ``start``.

    Returns
    -------
    dict
        The stateful nodes' states after the last tile.
    """
    tile_len = check_int("tile_len", tile_len, minimum=1)
    stop = panel.n_bars if stop is None else stop
    stop = check_int("stop", stop, minimum=0, maximum=panel.n_bars)
    start = check_int("start", start, minimum=0, maximum=stop)
    cols = slice(None) if assets is None else np.asarray(assets)
    for t0 in range(start, stop, tile_len):
        t1 = min(t0 + tile_len, stop)
        outputs, states = run_tile(dag, panel, t0, t1, states, carry=carry)
        if sink is not None:
            for name, values in outputs.items():
                sink[name][t0:t1, cols] = values
    return states or {}


def _arrivals(panel: Panel, start: int):
    """Cells grouped by the bar at which they arrive, for bars ``start`` onward."""
    flat_known = panel.known.reshape(-1)
    order = np.argsort(flat_known, kind="stable")
    bars = flat_known[order]
    bounds = np.searchsorted(bars, np.arange(start, panel.n_bars + 1))
    return order, bounds


def run_stream(
    dag: Dag,
    panel: Panel,
    start: int,
    sink: dict,
    states: dict,
    *,
    carry: bool = True,
    queue_size: int = 64,
) -> np.ndarray:
    """Replay bars ``start .. T-1`` through a queue, one DAG step per bar.

    A producer thread puts, for each simulated wall-clock bar ``t``, the cells whose
    knowledge time is ``t`` on a bounded ``queue.Queue``; a consumer thread writes
    them into its own copy of the panel (which starts with only the cells known by
    ``start - 1``) and runs the tile ``[t, t + 1)``. Outputs go to ``sink``.

    Returns
    -------
    ndarray of float64, shape (T - start,)
        Seconds from taking each bar off the queue to its outputs being written.
    """
    start = check_int("start", start, minimum=1, maximum=panel.n_bars)
    seen = panel.known <= start - 1
    buffer = Panel(
        np.where(seen, panel.values, np.nan), np.where(seen, panel.known, np.inf)
    )
    order, bounds = _arrivals(panel, start)
    channel: queue.Queue = queue.Queue(maxsize=queue_size)
    latency = np.zeros(panel.n_bars - start)
    errors: list[BaseException] = []

    def produce() -> None:
        for i, t in enumerate(range(start, panel.n_bars)):
            cells = order[bounds[i] : bounds[i + 1]]
            channel.put((t, cells, panel.values.reshape(-1)[cells]))
        channel.put(None)

    def consume() -> None:
        nonlocal states
        try:
            while (item := channel.get()) is not None:
                t, cells, values = item
                began = time.perf_counter()
                buffer.values.reshape(-1)[cells] = values
                buffer.known.reshape(-1)[cells] = t
                outputs, states = run_tile(dag, buffer, t, t + 1, states, carry=carry)
                for name, out in outputs.items():
                    sink[name][t] = out[0]
                latency[t - start] = time.perf_counter() - began
        except BaseException as err:  # re-raised in the calling thread
            errors.append(err)
            while channel.get() is not None:
                pass

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return latency


# ---------------------------------------------------------- causality checker


class FuturePeekingError(RuntimeError):
    """A node's value at bar ``t`` changes when the data is truncated at ``t``."""


def max_abs_diff(a, b) -> float:
    """Largest absolute difference; ``inf`` where one is NaN and the other is not."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    diff = np.abs(a - b)
    missing = np.isnan(diff)
    if missing.any() and np.any(np.isnan(a[missing]) != np.isnan(b[missing])):
        return math.inf
    return float(np.max(diff, where=~missing, initial=0.0))


def check_causality(
    dag: Dag, panel: Panel, times, *, batch: dict | None = None, tol: float = 1e-9
) -> None:
    """Raise if any node's value at a bar in ``times`` uses data not known by then.

    For each ``t``, the DAG is rerun from bar 0 on the panel truncated at ``t``
    (later bars removed, cells known after ``t`` masked), and every node's row ``t``
    is compared with the batch run on the whole panel.

    Parameters
    ----------
    dag : Dag
    panel : Panel
    times : array_like of int
        Bars to check, in ``[0, T)``.
    batch : dict, optional
        The batch run's outputs (a filled :func:`new_sink`); computed if omitted.
    tol : float
        Largest difference accepted (rounding of running sums).

    Raises
    ------
    FuturePeekingError
        Naming the first node and bar whose values differ by more than ``tol``.
    """
    times = check_array("times", times, ndim=1, dtype=np.int64)
    if times.size and (times.min() < 0 or times.max() >= panel.n_bars):
        raise ValueError(f"times must lie in [0, {panel.n_bars})")
    tol = check_float("tol", tol, minimum=0.0)
    if batch is None:
        batch = new_sink(dag, panel.n_bars, panel.n_assets)
        run_tiles(dag, panel, panel.n_bars, sink=batch)
    for t in np.sort(times):
        truncated = Panel(panel.values[: t + 1], panel.known[: t + 1])
        point, _ = run_tile(dag, truncated, 0, int(t) + 1)
        for n in dag.nodes:
            diff = max_abs_diff(point[n.name][t], batch[n.name][t])
            if diff > tol:
                raise FuturePeekingError(
                    f"node {n.name!r} at bar {t}: value on data known by then differs "
                    f"from the batch value by {diff:.3g}"
                )


def hit_rate(position, returns, start: int = 0, stop: int | None = None) -> float:
    """Percent of bars in ``[start, stop - 1)`` whose position matches the next return.

    Parameters
    ----------
    position : array_like, shape (T, N)
        Positions in {-1, 0, +1}; bars with 0 are not counted.
    returns : array_like, shape (T, N)
        Returns; ``returns[t + 1]`` is the outcome of ``position[t]``.
    start, stop : int
        Bars to score.

    Returns
    -------
    float
        NaN when no position was taken.
    """
    position = check_array("position", position, ndim=2)
    returns = check_array("returns", returns, shape=position.shape)
    stop = position.shape[0] if stop is None else stop
    stop = check_int("stop", stop, minimum=1, maximum=position.shape[0])
    start = check_int("start", start, minimum=0, maximum=stop - 1)
    pos, outcome = position[start : stop - 1], returns[start + 1 : stop]
    taken = pos != 0
    if not taken.any():
        return math.nan
    return float(100.0 * np.mean(np.sign(pos[taken]) == np.sign(outcome[taken])))


# ----------------------------------------------------------------- experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seed and the variant of the experiment."""

    variant: str = "dataflow"  # "dataflow", "naive_chunks" (no history) or "leaky"
    seed: int = 0  # seeds the panel
    n_bars: int = 20_000  # one-minute bars
    n_assets: int = 8
    latency_max: int = 3  # the signal arrives 0..latency_max bars late
    tile_lengths: tuple[int, ...] = (500, 2_000)  # temporal tiles, bars
    n_asset_groups: int = 2  # feature tiles: assets split into this many groups
    stream_bars: int = 3_000  # the last bars are replayed through a queue
    check_times: tuple[int, ...] = (1_000, 2_250, 3_500, 4_750, 6_000)  # checker bars
    zscore_window: int = 60
    ewma_halflives: tuple[float, ...] = (10.0, 60.0)
    refit_every: int = 500
    fit_window: int = 5_000
    ridge_lambda: float = 0.01
    position_threshold: float = 0.0

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, VARIANTS)
        check_int("seed", self.seed, minimum=0)
        check_int("n_bars", self.n_bars, minimum=100)
        check_int("n_assets", self.n_assets, minimum=1)
        check_int("latency_max", self.latency_max, minimum=0, maximum=3)
        if not self.tile_lengths:
            raise ValueError("tile_lengths must name at least one tile length")
        for length in self.tile_lengths:
            check_int("tile_lengths", length, minimum=1, maximum=self.n_bars)
        check_int(
            "n_asset_groups", self.n_asset_groups, minimum=1, maximum=self.n_assets
        )
        check_int("stream_bars", self.stream_bars, minimum=1, maximum=self.n_bars - 1)
        for t in self.check_times:
            check_int("check_times", t, minimum=0, maximum=self.n_bars - 1)

    def dag(self) -> Dag:
        """The model this configuration runs."""
        return make_dag(
            self.variant == "leaky",
            zscore_window=self.zscore_window,
            ewma_halflives=self.ewma_halflives,
            refit_every=self.refit_every,
            fit_window=self.fit_window,
            ridge_lambda=self.ridge_lambda,
            position_threshold=self.position_threshold,
        )

    def panel(self) -> Panel:
        """The synthetic panel this configuration runs on."""
        rng = np.random.default_rng(self.seed)
        return make_panel(self.n_bars, self.n_assets, rng, latency_max=self.latency_max)


@dataclass(frozen=True)
class Result:
    """What one variant measured, mode by mode (every mode against the batch run)."""

    config: Config
    modes: tuple[str, ...]  # "batch", "tiles_<L>", "features_<G>", "stream"
    node_diff: dict  # mode -> node -> max |output - batch output|
    boundary_mismatch: dict  # tile mode -> rows differing after each tile boundary
    peak_bytes: dict  # mode -> peak traced memory, bytes (stream: not traced)
    seconds: dict  # mode -> wall time, s (under tracemalloc, except the stream)
    stream_step_us: float  # median compute time of one stream step, us
    hit_batch: float  # batch backtest's hit rate on the streamed bars, %
    hit_stream: float  # the stream replay's hit rate on the same bars, %
    checker_error: str | None  # message of FuturePeekingError, None if it passed

    @property
    def max_diff(self) -> dict:
        """Mode -> largest difference from the batch run over all nodes."""
        return {m: max(d.values()) for m, d in self.node_diff.items()}

    @property
    def hit_gap(self) -> float:
        """Batch minus stream hit rate on the streamed bars, percentage points."""
        return self.hit_batch - self.hit_stream


def _traced(fn: Callable[[], object]) -> tuple[int, float]:
    """Peak traced memory above the starting level (bytes) and wall time of ``fn``."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    began = time.perf_counter()
    fn()
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] - base
    if not was_tracing:
        tracemalloc.stop()
    return peak, seconds


def _compare(sink: dict, batch: dict, rows=slice(None), tol: float = MAX_TILE_DIFF):
    """Per node the largest difference from batch, and per bar whether any differs.

    A NaN against a number counts as an infinite difference.
    """
    diffs, bad = {}, None
    for name, ref in batch.items():
        out, ref = sink[name][rows], ref[rows]
        diff = np.abs(out - ref)
        missing = np.isnan(diff)
        row_bad = (diff > tol).reshape(diff.shape[0], -1).any(axis=1)
        where = np.nonzero(missing)
        lone = np.isnan(out[where]) != np.isnan(ref[where])
        row_bad[where[0][lone]] = True
        worst = np.max(diff, where=~missing, initial=0.0)
        diffs[name] = math.inf if lone.any() else float(worst)
        bad = row_bad if bad is None else bad | row_bad
    return diffs, bad


def _run_mode(config, dag, panel, mode, carry):
    """Run one mode into a fresh sink; return the sink and extra numbers."""
    sink = new_sink(dag, panel.n_bars, panel.n_assets)
    extra = {}
    if mode.startswith("tiles_") or mode == "batch":
        length = panel.n_bars if mode == "batch" else int(mode.split("_")[1])

        def work():
            run_tiles(dag, panel, length, sink=sink, carry=carry)

    elif mode.startswith("features_"):
        groups = np.array_split(np.arange(panel.n_assets), config.n_asset_groups)

        def work():
            for g in groups:
                run_tiles(
                    dag, panel.assets(g), panel.n_bars, sink=sink, assets=g, carry=carry
                )
    else:
        start = panel.n_bars - config.stream_bars
        states = run_tiles(dag, panel, start, sink=sink, stop=start, carry=carry)
        began = time.perf_counter()
        extra["latency"] = run_stream(dag, panel, start, sink, states, carry=carry)
        extra["peak"], extra["seconds"] = None, time.perf_counter() - began
        return sink, extra
    extra["peak"], extra["seconds"] = _traced(work)
    return sink, extra


def run_experiment(config: Config) -> Result:
    """Run the DAG in every mode and compare each with the batch run.

    Modes: ``batch`` (one tile), ``tiles_<L>`` for each tile length,
    ``features_<G>`` (assets split into ``G`` groups, one batch tile each) and
    ``stream`` (a batch run up to the last ``stream_bars`` bars, then one bar at a
    time through a queue). The ``naive_chunks`` variant runs the same modes without
    history or carried state; the ``leaky`` variant adds the centred-mean feature.
    The batch run is always the DataFlow run of the variant's DAG.

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    dag, panel = config.dag(), config.panel()
    carry = config.variant != "naive_chunks"
    run_tile(dag, panel, 0, min(200, panel.n_bars))  # load the kernels before measuring
    batch, extra = _run_mode(config, dag, panel, "batch", True)
    modes = ["batch", *(f"tiles_{n}" for n in config.tile_lengths)]
    modes += [f"features_{config.n_asset_groups}", "stream"]
    node_diff, mismatch, peak, seconds = {}, {}, {}, {}
    stream_start = panel.n_bars - config.stream_bars
    for mode in modes:
        sink, extra = (
            (batch, extra)
            if mode == "batch"
            else _run_mode(config, dag, panel, mode, carry)
        )
        rows = slice(stream_start, None) if mode == "stream" else slice(None)
        node_diff[mode], bad = _compare(sink, batch, rows)
        peak[mode], seconds[mode] = extra["peak"], extra["seconds"]
        if mode.startswith("tiles_"):
            length = int(mode.split("_")[1])
            starts = np.arange(0, panel.n_bars, length)
            mismatch[mode] = np.add.reduceat(bad, starts)[1:]
        if mode == "stream":
            stream_sink, latency = sink, extra["latency"]
        log.info(
            "%s/%s: max diff %.3g", config.variant, mode, max(node_diff[mode].values())
        )
    returns = panel.values[:, :, 0]
    try:
        check_causality(dag, panel, config.check_times, batch=batch)
        checker_error = None
    except FuturePeekingError as err:
        checker_error = str(err)
    return Result(
        config=config,
        modes=tuple(modes),
        node_diff=node_diff,
        boundary_mismatch=mismatch,
        peak_bytes=peak,
        seconds=seconds,
        stream_step_us=float(np.median(latency) * 1e6),
        hit_batch=hit_rate(batch["position"][:, :, 0], returns, stream_start),
        hit_stream=hit_rate(stream_sink["position"][:, :, 0], returns, stream_start),
        checker_error=checker_error,
    )


def check_claim(result: Result) -> None:
    """Check the chapter's claim on the variant that ``result`` measured.

    1. Every mode (each tile length, the feature tiles and the stream replay) gives
       the batch run's outputs at every node, within ``1e-9``.
    2. The knowledge-time checker passes, and the batch backtest's hit rate on the
       streamed bars is within 0.5 points of the stream replay's.
    3. Peak traced memory with the shortest tiles is below half of the batch run's.

    Raises
    ------
    paperlab.claims.ClaimFailed
        If any part fails; the message names the mode and the numbers.
    """
    check_instance("result", result, Result)
    for mode, diffs in result.node_diff.items():
        for node, diff in diffs.items():  # the first node in DAG order that differs
            require(
                diff < MAX_TILE_DIFF,
                f"{mode}: node {node!r} differs from the batch run by {diff:.3g}",
            )
    require(
        result.checker_error is None,
        f"the causality checker found future peeking: {result.checker_error}",
    )
    require(
        math.isfinite(result.hit_gap) and abs(result.hit_gap) < MAX_HIT_GAP,
        f"batch hit rate {result.hit_batch:.2f}% vs stream replay "
        f"{result.hit_stream:.2f}% on the same bars",
    )
    shortest = f"tiles_{min(result.config.tile_lengths)}"
    ratio = result.peak_bytes[shortest] / result.peak_bytes["batch"]
    require(
        ratio < MAX_MEMORY_RATIO,
        f"{shortest} peaks at {ratio:.0%} of the batch run's memory",
    )


# ------------------------------------------------------------ explore and plots


@dataclass(frozen=True)
class TilingView:
    """One node column of a tiled run next to the batch run (for the widget)."""

    tile_len: int
    carry: bool
    column: str  # the node column shown
    times: np.ndarray = field(repr=False)  # bars shown
    batch: np.ndarray = field(repr=False)  # the column in the batch run, asset 0
    tiled: np.ndarray = field(repr=False)  # the column in the tiled run, asset 0
    mismatch: np.ndarray = field(repr=False)  # bars shown where any node differs
    max_diff: float  # over all nodes, assets and bars
    n_boundaries: int  # tile boundaries in the run
    boundaries_hit: int  # boundaries followed by at least one differing bar


@lru_cache(maxsize=4)
def _batch_reference(seed: int, n_bars: int):
    dag = make_dag()
    panel = make_panel(n_bars, Config.n_assets, np.random.default_rng(seed))
    batch = new_sink(dag, panel.n_bars, panel.n_assets)
    run_tiles(dag, panel, panel.n_bars, sink=batch)
    return dag, panel, batch


def explore_tiling(
    tile_len: int,
    carry: bool = True,
    *,
    seed: int = 0,
    n_bars: int = 6_000,
    window: tuple[int, int] = (3_000, 4_500),
    column: str = "ewma60_ret",
) -> TilingView:
    """Run the causal DAG in tiles of ``tile_len`` bars and compare with batch.

    Parameters
    ----------
    tile_len : int
        Bars per tile, at least 1.
    carry : bool
        Give tiles their history and carried state (DataFlow) or not (naive chunks).
    seed, n_bars : int
        The panel (the batch run is cached per pair).
    window : tuple of int
        Bars ``[a, b)`` to return for plotting.
    column : str
        An output column of the ``ewma`` node.

    Returns
    -------
    TilingView
    """
    tile_len = check_int("tile_len", tile_len, minimum=1)
    dag, panel, batch = _batch_reference(
        check_int("seed", seed, minimum=0), check_int("n_bars", n_bars, minimum=100)
    )
    column = check_choice("column", column, dag.node("ewma").columns)
    a, b = (check_int("window", w, minimum=0, maximum=n_bars) for w in window)
    sink = new_sink(dag, panel.n_bars, panel.n_assets)
    run_tiles(dag, panel, tile_len, sink=sink, carry=bool(carry))
    diffs, bad = _compare(sink, batch)
    starts = np.arange(0, panel.n_bars, tile_len)
    hit = int(np.count_nonzero(np.add.reduceat(bad, starts)[1:]))
    k = dag.node("ewma").columns.index(column)
    return TilingView(
        tile_len=tile_len,
        carry=bool(carry),
        column=column,
        times=np.arange(a, b),
        batch=batch["ewma"][a:b, 0, k],
        tiled=sink["ewma"][a:b, 0, k],
        mismatch=bad[a:b],
        max_diff=max(diffs.values()),
        n_boundaries=len(starts) - 1,
        boundaries_hit=hit,
    )


def plot_tiling(view: TilingView):
    """Figure: batch vs tiled output of one column, differing bars marked."""
    from paperlab.plotting import COLORS, label_axes, subplots

    check_instance("view", view, TilingView)
    fig, ax = subplots(width=8.0, height=3.6)
    ax.plot(view.times, view.batch, color=COLORS[0], lw=2.2, label="batch (one tile)")
    how = "with history" if view.carry else "no history (naive)"
    ax.plot(
        view.times,
        view.tiled,
        color=COLORS[1],
        lw=1.0,
        ls="--",
        label=f"tiles of {view.tile_len} bars, {how}",
    )
    first = view.times[0] + (-view.times[0]) % view.tile_len
    if (view.times[-1] - first) / view.tile_len <= 40:
        for t in range(first, view.times[-1] + 1, view.tile_len):
            ax.axvline(t, color="0.75", lw=0.6, zorder=0)
    both = np.concatenate((view.batch, view.tiled))
    both = both[np.isfinite(both)]
    low, high = (both.min(), both.max()) if both.size else (0.0, 1.0)
    low -= 0.08 * (high - low) + 1e-9
    bad = view.times[view.mismatch]
    ax.plot(
        bad,
        np.full(bad.shape, low - 0.1),
        "|",
        color=COLORS[5],
        ms=8,
        label="bars where some node differs",
    )
    diff = "NaN vs value" if math.isinf(view.max_diff) else f"{view.max_diff:.1e}"
    label_axes(
        ax,
        title=f"{view.boundaries_hit} of {view.n_boundaries} tile boundaries differ; "
        f"max |diff| over all nodes {diff}",
        xlabel="bar (minutes)",
        ylabel=f"{view.column} (z-score units)",
    )
    ax.legend(loc="upper left", fontsize=8, ncol=3)
    return fig


def plot_modes(results: dict):
    """Figure: each mode's largest difference from batch, and peak memory."""
    from paperlab.plotting import COLORS, label_axes, subplots

    fig, (left, right) = subplots(1, 2, width=10.0, height=3.8)
    first = next(iter(results.values()))
    modes = [m for m in first.modes if m != "batch"]
    x = np.arange(len(modes))
    width = 0.8 / len(results)
    cap = 1e3
    for j, (variant, res) in enumerate(results.items()):
        values = [min(res.max_diff[m], cap) for m in modes]
        left.bar(
            x + (j - (len(results) - 1) / 2) * width,
            np.maximum(values, 1e-16),
            width=width,
            color=COLORS[j],
            label=variant,
        )
    left.axhline(MAX_TILE_DIFF, color="0.3", ls="--", lw=1, label="claim: 1e-9")
    left.set_yscale("log")
    left.set_xticks(x, modes)
    label_axes(
        left,
        title="Largest difference from batch (floor: equal; 1e3: NaN)",
        xlabel="run mode",
        ylabel="max |output - batch| (output units)",
    )
    left.legend(fontsize=7, loc="center left")
    traced = [m for m in first.modes if first.peak_bytes[m] is not None]
    base = results.get("dataflow", first)
    mb = [base.peak_bytes[m] / 1e6 for m in traced]
    bars = right.bar(traced, mb, color=COLORS[0])
    right.bar_label(bars, fmt="%.1f", fontsize=8)
    label_axes(
        right,
        title="Peak traced memory (DataFlow runner)",
        xlabel="run mode",
        ylabel="peak intermediate memory (MB)",
    )
    return fig


def plot_hit_rates(results: dict):
    """Figure: batch backtest vs stream replay hit rates on the streamed bars."""
    from paperlab.plotting import COLORS, label_axes, subplots

    fig, ax = subplots(width=6.0, height=3.6)
    names = list(results)
    x = np.arange(len(names))
    for offset, color, attr, label in (
        (-0.2, COLORS[0], "hit_batch", "batch backtest"),
        (0.2, COLORS[1], "hit_stream", "stream replay"),
    ):
        values = [getattr(results[n], attr) for n in names]
        bars = ax.bar(
            x + offset, np.nan_to_num(values), width=0.4, color=color, label=label
        )
        ax.bar_label(
            bars,
            labels=["no position" if math.isnan(v) else f"{v:.1f}" for v in values],
            fontsize=8,
        )
    ax.axhline(50, color="0.3", ls=":", lw=1)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 80)
    label_axes(
        ax,
        title="Sign hit rate on the last bars (not a P&L)",
        xlabel="model variant",
        ylabel="bars with the right sign (%)",
    )
    return fig

"""Kernels of a small causal dataflow engine: the loops every tile and stream step runs.

These are the hot loops behind the DataFlow chapter (Saggese and Smith, arXiv
2512.23977). Both walk a time axis row by row, so their cost is one pass over the data
whatever the tile length.

- :func:`rolling_zscore` keeps compensated running sums over a trailing window: mean,
  standard deviation and z-score of every column, in one pass.
- :func:`ewma_tile` runs an exponentially weighted moving average over one tile,
  starting from the state the previous tile left, and returns the state to carry on.

Conventions shared by both kernels
----------------------------------
Arrays are ``(T, K)`` float64: rows are time steps, columns independent series (assets
times features). NaN marks a value that is missing or not yet known. A trailing window
statistic is defined only where all of its ``window`` values are finite; an EWMA skips
missing inputs and holds its last value.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = [
    "rolling_zscore",
    "rolling_zscore_reference",
    "rolling_zscore_numpy",
    "ewma_tile",
    "ewma_tile_reference",
    "ewma_tile_scipy",
    "benchmarks",
]

# A window whose variance is below this fraction of its mean square counts as constant:
# running sums cannot resolve a smaller variance from rounding noise.
_FLAT = 1e-12


# -------------------------------------------------------------- rolling z-score


@numba.njit(cache=True)
def _add_compensated(total, comp, value):
    """Neumaier's compensated sum: ``total + comp`` tracks the exact running sum."""
    t = total + value
    if abs(total) >= abs(value):
        comp += (total - t) + value
    else:
        comp += (value - t) + total
    return t, comp


@numba.njit(cache=True)
def rolling_zscore(x, window):
    """Trailing-window mean, standard deviation and z-score of every column.

    For row ``t`` and column ``k`` with all of ``x[t - window + 1 : t + 1, k]`` finite,

        mean = S1 / W,  var = (S2 - S1 * mean) / (W - 1),  z = (x[t] - mean) / std,

    where ``S1`` and ``S2`` are running sums of the values and their squares that
    gain the entering row and lose the leaving one. Output at ``t`` depends only on
    rows ``t - W + 1 .. t``: the node has a finite lookback of ``W`` rows.

    Parameters
    ----------
    x : ndarray of float64, shape (T, K)
    window : int
        Window length ``W``, at least 2.

    Returns
    -------
    mean, std, z : ndarray of float64, shape (T, K)
        NaN where the window is not full of finite values; ``z`` is also NaN where the
        window is constant (``var <= 1e-12 * S2 / W``).

    Notes
    -----
    Plain running sums remember the rounding of every value that ever passed through
    them, so a window of zeros after a window of large values would show a spurious
    variance. The sums here are compensated (Neumaier), which keeps them within a few
    ulps of the exact sum of the window's values. ``S2 - S1 * mean`` still cancels when
    the mean is large against the spread: the variance then carries an absolute error
    of about ``1e-16 * S2 / W``.
    """
    n_rows, n_cols = x.shape
    mean = np.full((n_rows, n_cols), np.nan)
    std = np.full((n_rows, n_cols), np.nan)
    z = np.full((n_rows, n_cols), np.nan)
    # one set of sums per column; rows outer so that memory is read in order
    s1, c1 = np.zeros(n_cols), np.zeros(n_cols)
    s2, c2 = np.zeros(n_cols), np.zeros(n_cols)
    count = np.zeros(n_cols, dtype=np.int64)
    for t in range(n_rows):
        for k in range(n_cols):
            v = x[t, k]
            if math.isfinite(v):
                s1[k], c1[k] = _add_compensated(s1[k], c1[k], v)
                s2[k], c2[k] = _add_compensated(s2[k], c2[k], v * v)
                count[k] += 1
            if t >= window:
                old = x[t - window, k]
                if math.isfinite(old):
                    s1[k], c1[k] = _add_compensated(s1[k], c1[k], -old)
                    s2[k], c2[k] = _add_compensated(s2[k], c2[k], -(old * old))
                    count[k] -= 1
            if count[k] == window:
                sum1, sum2 = s1[k] + c1[k], s2[k] + c2[k]
                m = sum1 / window
                var = (sum2 - sum1 * m) / (window - 1)
                if var <= _FLAT * sum2 / window:
                    var = 0.0
                sd = math.sqrt(var)
                mean[t, k] = m
                std[t, k] = sd
                if sd > 0.0:
                    z[t, k] = (v - m) / sd
    return mean, std, z


def rolling_zscore_reference(x, window):
    """Plain-Python :func:`rolling_zscore`: a fresh two-pass statistic per window."""
    x = np.asarray(x, dtype=np.float64)
    n_rows, n_cols = x.shape
    mean = np.full((n_rows, n_cols), np.nan)
    std = np.full((n_rows, n_cols), np.nan)
    z = np.full((n_rows, n_cols), np.nan)
    for k in range(n_cols):
        for t in range(window - 1, n_rows):
            values = [float(v) for v in x[t - window + 1 : t + 1, k]]
            if not all(math.isfinite(v) for v in values):
                continue
            m = sum(values) / window
            var = sum((v - m) ** 2 for v in values) / (window - 1)
            if var <= _FLAT * sum(v * v for v in values) / window:
                var = 0.0
            mean[t, k], std[t, k] = m, math.sqrt(var)
            if var > 0.0:
                z[t, k] = (values[-1] - m) / math.sqrt(var)
    return mean, std, z


def rolling_zscore_numpy(x, window):
    """Vectorised :func:`rolling_zscore` with cumulative sums (for the benchmark)."""
    finite = np.isfinite(x)
    clean = np.where(finite, x, 0.0)
    pad = np.zeros((1, x.shape[1]))
    c1 = np.concatenate((pad, np.cumsum(clean, axis=0)))
    c2 = np.concatenate((pad, np.cumsum(clean * clean, axis=0)))
    cn = np.concatenate((pad, np.cumsum(finite, axis=0)))
    s1 = c1[window:] - c1[:-window]
    s2 = c2[window:] - c2[:-window]
    full = (cn[window:] - cn[:-window]) == window
    m = s1 / window
    var = (s2 - s1 * m) / (window - 1)
    var = np.where(var <= _FLAT * s2 / window, 0.0, var)
    sd = np.sqrt(var)
    head = np.full((window - 1, x.shape[1]), np.nan)
    mean = np.concatenate((head, np.where(full, m, np.nan)))
    std = np.concatenate((head, np.where(full, sd, np.nan)))
    with np.errstate(divide="ignore", invalid="ignore"):
        zz = np.where(full & (sd > 0), (x[window - 1 :] - m) / sd, np.nan)
    return mean, std, np.concatenate((head, zz))


# ------------------------------------------------------------------ EWMA tile


@numba.njit(cache=True)
def ewma_tile(x, alpha, state):
    """Exponentially weighted moving average over one tile, from a carried state.

    For each column, with ``s`` the state (the last output before this tile),

        s = x[t]                        if s is NaN (nothing seen yet),
        s = s + alpha * (x[t] - s)      if x[t] is finite,
        s unchanged                     if x[t] is NaN,

    and ``y[t] = s``. The EWMA has infinite memory, but the recursion makes it
    tileable: run a tile from the state the previous tile ended with and the output
    equals the untiled run exactly, operation for operation.

    Parameters
    ----------
    x : ndarray of float64, shape (T, K)
    alpha : float
        Smoothing weight in (0, 1].
    state : ndarray of float64, shape (K,)
        Output of the row before the tile; NaN where the series has not started.

    Returns
    -------
    y : ndarray of float64, shape (T, K)
    new_state : ndarray of float64, shape (K,)
        The state after the tile's last row (equal to ``y[-1]`` when ``T > 0``).
    """
    n_rows, n_cols = x.shape
    y = np.empty((n_rows, n_cols))
    new_state = state.copy()
    for t in range(n_rows):  # rows outer: the columns' recursions run side by side
        for k in range(n_cols):
            v = x[t, k]
            s = new_state[k]
            if math.isfinite(v):
                if math.isnan(s):
                    s = v
                else:
                    s = s + alpha * (v - s)
            new_state[k] = s
            y[t, k] = s
    return y, new_state


def ewma_tile_reference(x, alpha, state):
    """Plain-Python :func:`ewma_tile`."""
    x = np.asarray(x, dtype=np.float64)
    y = np.empty(x.shape)
    new_state = np.array(state, dtype=np.float64)
    for k in range(x.shape[1]):
        s = float(new_state[k])
        for t in range(x.shape[0]):
            v = float(x[t, k])
            if math.isfinite(v):
                s = v if math.isnan(s) else s + alpha * (v - s)
            y[t, k] = s
        new_state[k] = s
    return y, new_state


def ewma_tile_scipy(x, alpha, state):
    """:func:`ewma_tile` as a linear filter (finite inputs and state only)."""
    from scipy.signal import lfilter

    zi = ((1.0 - alpha) * state)[None, :]
    y, zf = lfilter([alpha], [1.0, alpha - 1.0], x, axis=0, zi=zi)
    return y, zf[0] / (1.0 - alpha)


# ------------------------------------------------------------------ benchmarks


def benchmarks() -> list[BenchCase]:
    """Benchmark cases: each kernel against its Python reference and NumPy/SciPy."""
    rng = np.random.default_rng(0)
    x_z = rng.standard_normal((4_000, 8))
    x_e = rng.standard_normal((100_000, 8))
    state = np.zeros(8)
    return [
        BenchCase(
            name="rolling_zscore",
            size="T=4,000, K=8, W=60",
            kernel=lambda: rolling_zscore(x_z, 60),
            reference=lambda: rolling_zscore_reference(x_z, 60),
            numpy=lambda: rolling_zscore_numpy(x_z, 60),
            bytes_moved=4 * x_z.nbytes,
        ),
        BenchCase(
            name="ewma_tile",
            size="T=100,000, K=8",
            kernel=lambda: ewma_tile(x_e, 0.05, state),
            reference=lambda: ewma_tile_reference(x_e, 0.05, state),
            numpy=lambda: ewma_tile_scipy(x_e, 0.05, state),
            bytes_moved=2 * x_e.nbytes,
        ),
    ]

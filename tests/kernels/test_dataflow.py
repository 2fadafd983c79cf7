"""The dataflow kernels against their plain-Python references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from paperlab.kernels import dataflow as k

SETTINGS = settings(max_examples=40, deadline=None)


def panels(max_rows=60, max_cols=4):
    """(T, K) float64 arrays of moderate values with some NaN cells."""
    values = st.one_of(
        st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
        st.just(np.nan),
    )
    shapes = st.tuples(
        st.integers(min_value=0, max_value=max_rows),
        st.integers(min_value=1, max_value=max_cols),
    )
    return shapes.flatmap(lambda s: arrays(np.float64, s, elements=values))


# ------------------------------------------------------------- rolling z-score


def assert_stats_close(got, want, x, window):
    """Means and variances within the conditioning of running sums; z where stable."""
    mean, std, z = got
    ref_mean, ref_std, ref_z = want
    for a, b in ((mean, ref_mean), (std, ref_std)):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    # mean square of each window: the scale of the rounding in S2 - S1 * mean
    sq = np.nan_to_num(x) ** 2
    csum = np.concatenate((np.zeros((1, x.shape[1])), np.cumsum(sq, axis=0)))
    msq = np.full(x.shape, np.nan)
    if x.shape[0] >= window:
        msq[window - 1 :] = (csum[window:] - csum[:-window]) / window
    ok = ~np.isnan(ref_mean)
    tol = 1e-12 * (msq[ok] + 1.0)
    assert np.all(np.abs(mean[ok] - ref_mean[ok]) <= np.sqrt(tol))
    assert np.all(np.abs(std[ok] ** 2 - ref_std[ok] ** 2) <= tol * window)
    stable = ok & (np.nan_to_num(ref_std) ** 2 > 1e-6 * (np.nan_to_num(msq) + 1.0))
    np.testing.assert_array_equal(np.isnan(z[stable]), np.isnan(ref_z[stable]))
    np.testing.assert_allclose(z[stable], ref_z[stable], rtol=1e-5, atol=1e-5)


@SETTINGS
@given(x=panels(), window=st.integers(min_value=2, max_value=12))
def test_rolling_zscore_matches_reference(x, window):
    got = k.rolling_zscore(x, window)
    assert_stats_close(got, k.rolling_zscore_reference(x, window), x, window)


@SETTINGS
@given(x=panels(), window=st.integers(min_value=2, max_value=12))
def test_rolling_zscore_numpy_formulation_agrees(x, window):
    if x.shape[0] < window:
        return
    mean, std, _ = k.rolling_zscore_numpy(x, window)
    ref_mean, ref_std, _ = k.rolling_zscore_reference(x, window)
    np.testing.assert_array_equal(np.isnan(mean), np.isnan(ref_mean))
    np.testing.assert_array_equal(np.isnan(std), np.isnan(ref_std))
    # cumulative sums carry the rounding of every earlier row: scale by the column's
    # total sum of squares, not the window's
    total = (np.nan_to_num(x) ** 2).sum(axis=0) + 1.0
    ok = ~np.isnan(ref_mean)
    tol = np.broadcast_to(1e-12 * total, x.shape)[ok]
    assert np.all(np.abs(mean[ok] - ref_mean[ok]) <= np.sqrt(tol))
    assert np.all(np.abs(std[ok] ** 2 - ref_std[ok] ** 2) <= tol * window)


def test_rolling_zscore_forgets_large_values():
    x = np.array([[494.0], [529.8348], [0.0], [0.0], [1.0], [2.0]])
    mean, std, z = k.rolling_zscore(x, 2)
    assert std[3, 0] == 0.0 and np.isnan(z[3, 0])
    assert std[5, 0] == pytest.approx(np.sqrt(0.5), rel=1e-15)


def test_rolling_zscore_edge_cases():
    for rows in (0, 1, 2):
        x = np.arange(rows * 2, dtype=np.float64).reshape(rows, 2)
        mean, std, z = k.rolling_zscore(x, 3)
        assert mean.shape == (rows, 2) and np.isnan(mean).all() and np.isnan(z).all()
    x = np.array([[1.0], [2.0], [np.nan], [4.0], [5.0], [6.0]])
    mean, std, z = k.rolling_zscore(x, 2)
    np.testing.assert_allclose(mean[:, 0], [np.nan, 1.5, np.nan, np.nan, 4.5, 5.5])
    np.testing.assert_allclose(std[1, 0], np.sqrt(0.5))
    assert z[1, 0] == pytest.approx(0.5 / np.sqrt(0.5))
    flat = np.full((5, 1), 3.0)
    mean, std, z = k.rolling_zscore(flat, 3)
    assert std[4, 0] == 0.0 and np.isnan(z[4, 0])  # constant window: no z-score


def test_rolling_zscore_depends_only_on_its_window():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 3))
    full = k.rolling_zscore(x, 20)
    tail = k.rolling_zscore(x[150 - 19 :], 20)
    for a, b in zip(full, tail, strict=True):
        np.testing.assert_allclose(a[150:], b[19:], rtol=0, atol=1e-12)


# ------------------------------------------------------------------ EWMA tile


states = arrays(
    np.float64,
    4,
    elements=st.one_of(st.floats(-10, 10, allow_nan=False), st.just(np.nan)),
)


@SETTINGS
@given(
    x=panels(max_cols=4).filter(lambda a: a.shape[1] == 4),
    alpha=st.floats(min_value=0.01, max_value=1.0),
    state=states,
)
def test_ewma_tile_matches_reference(x, alpha, state):
    y, new_state = k.ewma_tile(x, alpha, state)
    ref_y, ref_state = k.ewma_tile_reference(x, alpha, state)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(new_state, ref_state)


@SETTINGS
@given(
    x=panels(max_cols=4).filter(lambda a: a.shape[1] == 4),
    alpha=st.floats(min_value=0.01, max_value=1.0),
    cut=st.integers(min_value=0, max_value=60),
)
def test_ewma_tiles_with_carried_state_equal_one_run(x, alpha, cut):
    cut = min(cut, x.shape[0])
    start = np.full(4, np.nan)
    whole, end = k.ewma_tile(x, alpha, start)
    first, mid = k.ewma_tile(x[:cut], alpha, start)
    second, end2 = k.ewma_tile(x[cut:], alpha, mid)
    np.testing.assert_array_equal(np.concatenate((first, second)), whole)
    np.testing.assert_array_equal(end2, end)


def test_ewma_tile_edge_cases():
    y, state = k.ewma_tile(np.zeros((0, 2)), 0.5, np.array([1.0, np.nan]))
    assert y.shape == (0, 2)
    np.testing.assert_array_equal(state, [1.0, np.nan])
    x = np.array([[np.nan], [2.0], [np.nan], [4.0]])
    y, state = k.ewma_tile(x, 0.5, np.array([np.nan]))
    np.testing.assert_array_equal(y[:, 0], [np.nan, 2.0, 2.0, 3.0])
    assert state[0] == 3.0


def test_ewma_scipy_formulation_agrees():
    rng = np.random.default_rng(1)
    x, state = rng.standard_normal((500, 3)), rng.standard_normal(3)
    y, new_state = k.ewma_tile(x, 0.1, state)
    y2, state2 = k.ewma_tile_scipy(x, 0.1, state)
    np.testing.assert_allclose(y2, y, atol=1e-12)
    np.testing.assert_allclose(state2, new_state, atol=1e-12)


def test_benchmarks_are_registered():
    names = [case.name for case in k.benchmarks()]
    assert names == ["rolling_zscore", "ewma_tile"]

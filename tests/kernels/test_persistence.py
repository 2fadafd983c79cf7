"""The Rips H1 kernel against its plain-Python reference, its NumPy formulation and a
brute-force Betti number computed from ranks of boundary matrices over Z/2."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import BenchCase
from paperlab.kernels.persistence import (
    benchmarks,
    rips_h1_z2,
    rips_h1_z2_numpy,
    rips_h1_z2_reference,
)


def distances(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)


def cloud(seed: int, m: int, dim: int, integer: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if integer:  # many equal distances: exercises tie-breaking
        return rng.integers(0, 3, size=(m, dim)).astype(float)
    return rng.normal(size=(m, dim))


def rank_z2(matrix: np.ndarray) -> int:
    """Rank over the two-element field, by Gaussian elimination."""
    rows = matrix.astype(bool).copy()
    rank = 0
    for col in range(rows.shape[1]):
        pivot = np.flatnonzero(rows[rank:, col])
        if pivot.size == 0:
            continue
        p = rank + pivot[0]
        rows[[rank, p]] = rows[[p, rank]]
        others = np.flatnonzero(rows[:, col])
        others = others[others != rank]
        rows[others] ^= rows[rank]
        rank += 1
        if rank == rows.shape[0]:
            break
    return rank


def betti1_brute_force(dist: np.ndarray, eps: float) -> int:
    """dim H1 of the Rips complex at scale eps: #edges - rank d1 - rank d2."""
    m = dist.shape[0]
    edges = [
        (i, j) for i, j in itertools.combinations(range(m), 2) if dist[i, j] <= eps
    ]
    index = {e: k for k, e in enumerate(edges)}
    triangles = [
        t
        for t in itertools.combinations(range(m), 3)
        if all(pair in index for pair in itertools.combinations(t, 2))
    ]
    d1 = np.zeros((m, len(edges)), bool)
    for k, (i, j) in enumerate(edges):
        d1[i, k] = d1[j, k] = True
    d2 = np.zeros((len(edges), len(triangles)), bool)
    for k, t in enumerate(triangles):
        for pair in itertools.combinations(t, 2):
            d2[index[pair], k] = True
    r1 = rank_z2(d1) if edges else 0
    r2 = rank_z2(d2) if triangles else 0
    return len(edges) - r1 - r2


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    m=st.integers(0, 13),
    dim=st.integers(1, 3),
    integer=st.booleans(),
    truncate=st.booleans(),
)
def test_kernel_matches_reference_and_numpy(seed, m, dim, integer, truncate):
    dist = distances(cloud(seed, m, dim, integer))
    max_eps = float(np.median(dist)) if truncate and m > 1 else math.inf
    expected = rips_h1_z2_reference(dist, max_eps)
    np.testing.assert_allclose(rips_h1_z2(dist, max_eps), expected)
    np.testing.assert_allclose(rips_h1_z2_numpy(dist, max_eps), expected)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(3, 9), quantile=st.floats(0.1, 0.9))
def test_bars_alive_at_a_scale_equal_brute_force_betti1(seed, m, quantile):
    dist = distances(cloud(seed, m, 2, integer=False))
    eps = float(np.quantile(dist[np.triu_indices(m, 1)], quantile))
    bars = rips_h1_z2(dist)
    alive = int(np.sum((bars[:, 0] <= eps) & (bars[:, 1] > eps)))
    assert alive == betti1_brute_force(dist, eps)


@pytest.mark.parametrize("m", [0, 1, 2])
def test_too_few_points_have_no_hole(m):
    out = rips_h1_z2(distances(np.zeros((m, 2)) + np.arange(m)[:, None]))
    assert out.shape == (0, 2)


def test_square_has_one_hole_from_side_to_diagonal():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    np.testing.assert_allclose(rips_h1_z2(distances(square)), [[1.0, math.sqrt(2)]])


def test_circle_has_one_long_hole_and_truncation_keeps_it_open():
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    dist = distances(np.stack([np.cos(angles), np.sin(angles)], axis=1))
    bars = rips_h1_z2(dist)
    assert bars.shape == (1, 2)
    assert bars[0, 0] == pytest.approx(2 * np.sin(np.pi / 24))
    assert bars[0, 1] == pytest.approx(np.sqrt(3), rel=0.05)
    open_bars = rips_h1_z2(dist, 1.0)
    assert open_bars.shape == (1, 2) and np.isinf(open_bars[0, 1])


def test_max_eps_zero_gives_nothing_and_duplicates_are_harmless():
    points = np.array([[0, 0], [0, 0], [1, 0], [1, 1], [0, 1]], float)
    assert rips_h1_z2(distances(points), 0.0).shape == (0, 2)
    np.testing.assert_allclose(rips_h1_z2(distances(points)), [[1.0, math.sqrt(2)]])


@pytest.mark.parametrize(
    "dist, max_eps, error, match",
    [
        (np.zeros((2, 3)), 1.0, ValueError, "square"),
        (np.array([[0.0, np.nan], [np.nan, 0.0]]), 1.0, ValueError, "NaN"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), 1.0, ValueError, "non-negative"),
        (np.array([[0.0, 1.0], [2.0, 0.0]]), 1.0, ValueError, "symmetric"),
        (np.zeros(3), 1.0, ValueError, "dimension"),
        (np.zeros((2, 2)), -1.0, ValueError, "max_eps"),
        (np.zeros((2, 2)), float("nan"), ValueError, "max_eps"),
        (np.zeros((2, 2)), "big", TypeError, "max_eps"),
        ([["a", "b"], ["c", "d"]], 1.0, TypeError, "dist"),
    ],
)
def test_bad_input(dist, max_eps, error, match):
    for fn in (rips_h1_z2, rips_h1_z2_reference, rips_h1_z2_numpy):
        with pytest.raises(error, match=match):
            fn(dist, max_eps)


def test_benchmarks_run_and_agree():
    cases = benchmarks()
    assert cases and all(isinstance(c, BenchCase) for c in cases)
    for case in cases:
        assert "rips_h1_z2" in case.name
        expected = case.kernel()
        np.testing.assert_allclose(case.numpy(), expected)

"""The semiring kernels against their plain-Python references and brute force."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

from paperlab.kernels import semiring as k

SETTINGS = settings(max_examples=40, deadline=None)
VALUES = st.sampled_from([0.0, 1.0, 2.0, -1.5, 0.25, 3.0])


@st.composite
def join_inputs(draw):
    """Two sides of a join: keys in [0, n_keys), groups, values; any semiring."""
    n_keys = draw(st.integers(1, 6))
    n_ga, n_gb = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    n_a, n_b = draw(st.integers(0, 40)), draw(st.integers(0, 40))

    def ints(n, hi):
        drawn = draw(st.lists(st.integers(0, hi - 1), min_size=n, max_size=n))
        return np.array(drawn, dtype=np.int64)

    def vals(n):
        return np.array(draw(st.lists(VALUES, min_size=n, max_size=n)), dtype=float)

    side_a = (ints(n_a, n_keys), ints(n_a, n_ga), vals(n_a))
    side_b = (ints(n_b, n_keys), ints(n_b, n_gb), vals(n_b))
    return (*side_a, *side_b, n_keys, n_gb, n_ga * n_gb)


def _brute_sum_product(keys_a, groups_a, vals_a, keys_b, groups_b, vals_b, n_gb, n_out):
    """Sum-product join by the full key-equality mask (independent of both)."""
    out = np.zeros(n_out)
    hit = np.zeros(n_out, dtype=bool)
    ia, ib = np.nonzero(keys_a[:, None] == keys_b[None, :])
    groups = groups_a[ia] * n_gb + groups_b[ib]
    np.add.at(out, groups, vals_a[ia] * vals_b[ib])
    hit[groups] = True
    return np.flatnonzero(hit), out[hit], ia.shape[0]


@SETTINGS
@given(args=join_inputs(), semiring=st.sampled_from([0, 1, 2]))
def test_sparse_join_aggregate_matches_reference(args, semiring):
    got = k.sparse_join_aggregate(*args, semiring)
    ref = k.sparse_join_aggregate_reference(*args, semiring)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    assert got[2] == ref[2]


@SETTINGS
@given(args=join_inputs())
def test_sparse_join_aggregate_matches_brute_force(args):
    index, vals, madds = k.sparse_join_aggregate(*args, k.SUM_PRODUCT)
    b_index, b_vals, b_pairs = _brute_sum_product(*args[:6], args[7], args[8])
    np.testing.assert_array_equal(index, b_index)
    np.testing.assert_allclose(vals, b_vals, rtol=1e-12, atol=1e-12)
    assert madds == b_pairs


def _side(keys, groups, vals):
    return (
        np.array(keys, dtype=np.int64),
        np.array(groups, dtype=np.int64),
        np.array(vals, dtype=np.float64),
    )


@pytest.mark.parametrize("semiring", [0, 1, 2])
def test_sparse_join_aggregate_edge_cases(semiring):
    empty = _side([], [], [])
    one = _side([0], [0], [2.0])
    for a, b in ((empty, empty), (empty, one), (one, empty)):
        index, vals, madds = k.sparse_join_aggregate(*a, *b, 1, 1, 1, semiring)
        assert index.size == 0 and vals.size == 0 and madds == 0
    index, vals, madds = k.sparse_join_aggregate(*one, *one, 1, 1, 1, semiring)
    expected = {0: 4.0, 1: 2.0, 2: 4.0}[semiring]
    assert index.tolist() == [0] and vals.tolist() == [expected] and madds == 1
    no_match = _side([1], [0], [2.0])
    index, _, madds = k.sparse_join_aggregate(*one, *no_match, 2, 1, 1, semiring)
    assert index.size == 0 and madds == 0


def test_sparse_join_aggregate_propagates_nan_in_sum_product():
    a = _side([0, 0], [0, 1], [math.nan, 1.0])
    b = _side([0], [0], [2.0])
    index, vals, _ = k.sparse_join_aggregate(*a, *b, 1, 1, 2, k.SUM_PRODUCT)
    ref = k.sparse_join_aggregate_reference(*a, *b, 1, 1, 2, k.SUM_PRODUCT)
    assert index.tolist() == [0, 1] and math.isnan(vals[0]) and vals[1] == 2.0
    np.testing.assert_array_equal(vals, ref[1])


# ------------------------------------------------------------ semiring_relax


@st.composite
def graphs(draw, max_nodes=12, max_edges=40):
    n = draw(st.integers(1, max_nodes))
    pairs = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)),
            max_size=max_edges,
            unique=True,
        )
    )
    src = np.array([p[0] for p in pairs], dtype=np.int64)
    dst = np.array([p[1] for p in pairs], dtype=np.int64)
    w = np.array(
        draw(st.lists(st.integers(1, 9), min_size=len(pairs), max_size=len(pairs))),
        dtype=float,
    )
    return n, src, dst, w


@SETTINGS
@given(g=graphs(), source=st.integers(0, 11))
def test_semiring_relax_min_plus_is_shortest_paths(g, source):
    n, src, dst, w = g
    source %= n
    base = np.full((1, n), math.inf)
    base[0, source] = 0.0
    got = k.semiring_relax(base, src, dst, w, k.MIN_PLUS, 100)
    ref = k.semiring_relax_reference(base, src, dst, w, k.MIN_PLUS, 100)
    np.testing.assert_array_equal(got[0], ref[0])
    assert got[1:] == ref[1:] and got[3]
    graph = csr_matrix((w, (src, dst)), shape=(n, n))
    dist = shortest_path(graph, method="D", directed=True, indices=source)
    np.testing.assert_array_equal(got[0][0], dist)


@SETTINGS
@given(g=graphs())
def test_semiring_relax_boolean_is_transitive_closure(g):
    n, src, dst, _ = g
    base = np.zeros((n, n))
    base[src, dst] = 1.0
    ones = np.ones(src.shape[0])
    got = k.semiring_relax(base, src, dst, ones, k.BOOLEAN, 100)
    ref = k.semiring_relax_reference(base, src, dst, ones, k.BOOLEAN, 100)
    np.testing.assert_array_equal(got[0], ref[0])
    assert got[1:] == ref[1:] and got[3]
    reach = base.astype(bool)
    for _ in range(n):  # Warshall by repeated squaring of the path relation
        reach = reach | ((reach.astype(int) @ reach.astype(int)) > 0)
    np.testing.assert_array_equal(got[0], reach.astype(float))


def test_semiring_relax_edge_cases():
    none = np.zeros(0, dtype=np.int64)
    base = np.array([[0.0, math.inf]])
    x, rounds, madds, converged = k.semiring_relax(
        base, none, none, np.zeros(0), k.MIN_PLUS, 10
    )
    assert converged and rounds == 1 and madds == 0
    np.testing.assert_array_equal(x, base)
    empty = np.zeros((0, 3))
    x, rounds, _, converged = k.semiring_relax(empty, none, none, np.zeros(0), 1, 5)
    assert x.shape == (0, 3) and rounds == 1 and converged
    chain = np.array([0, 1, 2], dtype=np.int64), np.array([1, 2, 3], dtype=np.int64)
    base = np.array([[0.0, math.inf, math.inf, math.inf]])
    x, rounds, _, converged = k.semiring_relax(base, *chain, np.ones(3), k.MIN_PLUS, 2)
    assert not converged and rounds == 2 and x[0, 3] == math.inf


def test_semiring_relax_nan_never_converges_and_matches_reference():
    base = np.array([[math.nan, 1.0]])
    src, dst = np.array([0], dtype=np.int64), np.array([1], dtype=np.int64)
    got = k.semiring_relax(base, src, dst, np.ones(1), k.SUM_PRODUCT, 4)
    ref = k.semiring_relax_reference(base, src, dst, np.ones(1), k.SUM_PRODUCT, 4)
    assert got[1:] == ref[1:] == (4, 4, False)
    np.testing.assert_array_equal(got[0], ref[0])


def test_benchmarks_are_registered():
    names = [case.name for case in k.benchmarks()]
    assert names == ["sparse_join_aggregate", "semiring_relax"]

"""The bounded incremental-clustering kernel against its plain-Python reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from paperlab.kernels import coref_cache as k

SETTINGS = settings(max_examples=60, deadline=None)


def mentions(max_n=80, max_d=5):
    """Small mention streams, with repeated rows so cosine ties happen."""
    shape = st.tuples(st.integers(0, max_n), st.integers(1, max_d))
    values = st.sampled_from([-1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 2.0])
    return shape.flatmap(lambda s: arrays(np.float32, s, elements=values))


@SETTINGS
@given(
    X=mentions(),
    c_max=st.integers(1, 6),
    m_max=st.integers(1, 4),
    threshold=st.floats(-1.0, 1.0),
    evict=st.sampled_from([k.EVICT_LRU, k.EVICT_SAES]),
    retain=st.sampled_from([k.RETAIN_RECENT, k.RETAIN_IRP]),
    w=st.tuples(st.floats(-2, 2), st.floats(-2, 2)),
)
def test_kernel_matches_reference(X, c_max, m_max, threshold, evict, retain, w):
    stats = np.array(w)
    labels, peak = k.incremental_cluster_stream(
        X, c_max, m_max, threshold, evict, retain, stats
    )
    ref_labels, ref_peak = k.incremental_cluster_stream_reference(
        X, c_max, m_max, threshold, evict, retain, stats
    )
    np.testing.assert_array_equal(labels, ref_labels)
    assert peak == ref_peak
    # the dual-threshold guarantee, and ids numbered in order of creation
    assert peak <= c_max * m_max
    if X.shape[0]:
        assert labels[0] == 0
        assert np.all(labels <= np.maximum.accumulate(labels))
        assert np.all(np.diff(np.maximum.accumulate(labels)) <= 1)


def test_random_gaussian_streams_match():
    rng = np.random.default_rng(3)
    X = (rng.standard_normal((10, 8))[rng.integers(0, 10, 400)]).astype(np.float32)
    X += 0.5 * rng.standard_normal(X.shape).astype(np.float32)
    for evict in (k.EVICT_LRU, k.EVICT_SAES):
        for retain in (k.RETAIN_RECENT, k.RETAIN_IRP):
            args = (X, 4, 3, 0.5, evict, retain, np.array([0.7, 0.4]))
            a, b = k.incremental_cluster_stream(*args)
            c, d = k.incremental_cluster_stream_reference(*args)
            np.testing.assert_array_equal(a, c)
            assert b == d <= 12


def test_edge_cases():
    stats = np.array([1.0, 1.0])
    empty = np.zeros((0, 3), dtype=np.float32)
    labels, peak = k.incremental_cluster_stream(empty, 2, 2, 0.5, 0, 0, stats)
    assert labels.shape == (0,) and peak == 0
    one = np.ones((1, 3), dtype=np.float32)
    labels, peak = k.incremental_cluster_stream(one, 2, 2, 0.5, 1, 1, stats)
    assert labels.tolist() == [0] and peak == 1
    # a zero vector never joins a cluster (its cosine counts as -1)
    zeros = np.zeros((3, 2), dtype=np.float32)
    labels, _ = k.incremental_cluster_stream(zeros, 5, 5, 0.0, 0, 0, stats)
    assert labels.tolist() == [0, 1, 2]


def test_nan_mention_opens_its_own_cluster_in_both():
    X = np.array([[1, 0], [np.nan, 0], [1, 0.1]], dtype=np.float32)
    stats = np.array([1.0, 1.0])
    labels, _ = k.incremental_cluster_stream(X, 4, 4, 0.5, 0, 0, stats)
    ref, _ = k.incremental_cluster_stream_reference(X, 4, 4, 0.5, 0, 0, stats)
    assert labels.tolist() == ref.tolist() == [0, 1, 0]


def test_policies_drop_what_they_should():
    stats = np.array([1.0, 0.0])  # SAES: evict the cluster with fewest mentions
    a, b, c = np.eye(3, dtype=np.float32)
    X = np.array([a, a, a, b, c, a], dtype=np.float32)
    # LRU evicts a's cluster (oldest) when c arrives, so a's return is a new cluster
    lru, _ = k.incremental_cluster_stream(X, 2, 8, 0.9, k.EVICT_LRU, 0, stats)
    assert lru.tolist() == [0, 0, 0, 1, 2, 3]
    # SAES keeps a (three mentions) and evicts b
    saes, _ = k.incremental_cluster_stream(X, 2, 8, 0.9, k.EVICT_SAES, 0, stats)
    assert saes.tolist() == [0, 0, 0, 1, 2, 0]
    # IRP drops the outlier of a full cluster; keep-recent drops the oldest mention
    Y = np.array([[1, 0.4], [1, 0], [1, 0], [1, 0]], dtype=np.float32)
    for retain in (k.RETAIN_RECENT, k.RETAIN_IRP):
        labels, peak = k.incremental_cluster_stream(Y, 1, 2, 0.5, 0, retain, stats)
        assert labels.tolist() == [0, 0, 0, 0] and peak == 2


@pytest.mark.parametrize("case", k.benchmarks())
def test_benchmark_cases_run(case):
    labels, peak = case.kernel()
    assert peak <= 64 and labels.shape == (20_000,)

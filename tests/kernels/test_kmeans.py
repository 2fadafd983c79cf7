"""Property tests: nearest-centroid kernel against the reference and NumPy."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels.kmeans import (
    kmeans_assign,
    kmeans_assign_numpy,
    kmeans_assign_reference,
)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(0, 30),
    k=st.integers(1, 6),
    d=st.integers(1, 5),
    seed=st.integers(0, 10_000),
)
def test_kernel_matches_reference(n, k, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    C = rng.normal(size=(k, d)).astype(np.float32)
    labels, dist2 = kmeans_assign(X, C)
    ref_labels, ref_dist2 = kmeans_assign_reference(X, C)
    assert np.array_equal(labels, ref_labels)
    assert np.allclose(dist2, ref_dist2, rtol=1e-5, atol=1e-6)
    if n:
        np_labels, _ = kmeans_assign_numpy(X, C)
        chosen = ((X - C[np_labels]) ** 2).sum(1)
        assert np.allclose(chosen, dist2, rtol=1e-4, atol=1e-5)


def test_ties_go_to_the_lowest_index():
    X = np.zeros((1, 2), dtype=np.float32)
    C = np.array([[1, 0], [0, 1], [-1, 0]], dtype=np.float32)
    assert kmeans_assign(X, C)[0].tolist() == [0]

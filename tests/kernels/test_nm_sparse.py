"""The N:M selection and packed matvec kernels agree with their references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import nm_sparse as kn
from paperlab.quantization import pack_bits

PATTERNS = [(1, 2), (1, 4), (2, 4), (3, 4), (4, 8), (2, 8)]


def _pack_rows(codes: np.ndarray, bits: int) -> np.ndarray:
    """Each row packed on its own (rows start on a byte), as the kernel expects."""
    rows, k = codes.shape
    row_bytes = -(-k * bits // 8)
    out = np.zeros((rows, row_bytes), dtype=np.uint8)
    for r in range(rows):
        out[r] = pack_bits(codes[r], bits) if k else out[r]
    return out


@st.composite
def packed_inputs(draw):
    n, m = draw(st.sampled_from(PATTERNS))
    bits = draw(st.integers(2, 8))
    group_size = m * draw(st.integers(1, 4))
    rows = draw(st.integers(0, 5))
    cols = m * draw(st.integers(0, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = cols // m * n
    codes = rng.integers(0, 2**bits, size=(rows, k))
    positions = np.sort(rng.random((rows, cols // m, m)).argsort(axis=2)[:, :, :n])
    positions = positions.reshape(rows, k)
    n_blocks = -(-cols // group_size)
    scales = rng.uniform(0.001, 2.0, size=(rows, n_blocks)).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    values = _pack_rows(codes, bits)
    packed_pos = _pack_rows(positions, kn.index_bits(m))
    return values, packed_pos, scales, x, n, m, bits, group_size


@settings(max_examples=80, deadline=None)
@given(packed_inputs())
def test_nm_matvec_matches_reference_and_numpy(inputs):
    got = kn.nm_matvec(*inputs)
    ref = kn.nm_matvec_reference(*inputs)
    via_numpy = kn.nm_matvec_numpy(*inputs)
    assert got.shape == ref.shape == (inputs[0].shape[0],)
    scale = 1.0 + np.abs(ref).max(initial=0.0)
    np.testing.assert_allclose(got, ref, atol=1e-5 * scale, rtol=1e-5)
    np.testing.assert_allclose(via_numpy, ref, atol=1e-5 * scale, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 6), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_fast_24_int4_path_matches_generic_kernel(rows, n_blocks, seed):
    rng = np.random.default_rng(seed)
    cols = 8 * n_blocks
    codes = rng.integers(0, 16, size=(rows, cols // 2))
    positions = np.sort(rng.random((rows, cols // 4, 4)).argsort(axis=2)[:, :, :2])
    values = _pack_rows(codes, 4)
    packed_pos = _pack_rows(positions.reshape(rows, cols // 2), 2)
    scales = rng.uniform(0.01, 1.0, size=(rows, -(-cols // 8))).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    fast = kn.nm_matvec(values, packed_pos, scales, x, 2, 4, 4, 8)
    generic = kn._matvec_kernel(values, packed_pos, scales, x, 2, 4, 4, 2, 8)
    np.testing.assert_allclose(fast, generic, rtol=1e-6, atol=1e-6)


@st.composite
def weights(draw):
    n, m = draw(st.sampled_from(PATTERNS))
    rows = draw(st.integers(0, 6))
    cols = m * draw(st.integers(0, 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):  # small integers: many ties
        W = rng.integers(-2, 3, size=(rows, cols)).astype(np.float32)
    else:
        W = rng.standard_normal((rows, cols)).astype(np.float32)
    return W, n, m


@settings(max_examples=80, deadline=None)
@given(weights())
def test_nm_select_matches_reference(inputs):
    W, n, m = inputs
    values, positions = kn.nm_select(W, n, m)
    ref_values, ref_positions = kn.nm_select_reference(W, n, m)
    np_values, np_positions = kn._select_numpy(W, n, m)
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(positions, ref_positions)
    np.testing.assert_array_equal(values, np_values)
    np.testing.assert_array_equal(positions, np_positions)


def test_nm_select_keeps_the_largest_magnitudes_of_one_group():
    values, positions = kn.nm_select(np.array([[0.1, -3.0, 2.0, 0.5]]), 2, 4)
    np.testing.assert_array_equal(positions, [[1, 2]])
    np.testing.assert_array_equal(values, np.array([[-3.0, 2.0]], dtype=np.float32))


def test_nm_select_breaks_ties_towards_the_lower_position():
    _, positions = kn.nm_select(np.ones((1, 4)), 2, 4)
    np.testing.assert_array_equal(positions, [[0, 1]])


def test_nm_select_rejects_nan_and_bad_patterns():
    with pytest.raises(ValueError, match="finite"):
        kn.nm_select(np.array([[np.nan, 1.0, 2.0, 3.0]]), 2, 4)
    with pytest.raises(ValueError, match="multiple of m=4"):
        kn.nm_select(np.ones((2, 6)), 2, 4)
    with pytest.raises(ValueError, match="n must be <= 3"):
        kn.nm_select(np.ones((2, 8)), 4, 4)


def test_nm_matvec_rejects_inconsistent_shapes():
    values = np.zeros((2, 2), dtype=np.uint8)
    positions = np.zeros((2, 1), dtype=np.uint8)
    scales = np.ones((2, 1), dtype=np.float32)
    x = np.ones(8, dtype=np.float32)
    kn.nm_matvec(values, positions, scales, x, 2, 4, 4, 8)  # consistent
    with pytest.raises(ValueError, match="values must have shape"):
        kn.nm_matvec(values[:, :1], positions, scales, x, 2, 4, 4, 8)
    with pytest.raises(ValueError, match="scales must have shape"):
        kn.nm_matvec(values, positions, scales[:, :0], x, 2, 4, 4, 8)
    with pytest.raises(ValueError, match="group_size must be a multiple"):
        kn.nm_matvec(values, positions, scales, x, 2, 4, 4, 6)
    with pytest.raises(ValueError, match="x must contain only finite"):
        kn.nm_matvec(values, positions, scales, np.full(8, np.nan), 2, 4, 4, 8)


def test_dense_matvec_matches_reference_and_handles_edges():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((7, 13)).astype(np.float32)
    x = rng.standard_normal(13).astype(np.float32)
    np.testing.assert_allclose(kn.dense_matvec(W, x), kn.dense_matvec_reference(W, x),
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(kn.dense_matvec(W, x), W @ x, rtol=1e-5)
    assert kn.dense_matvec(np.zeros((0, 3)), np.ones(3)).shape == (0,)
    np.testing.assert_array_equal(kn.dense_matvec(np.ones((2, 0)), np.ones(0)), [0, 0])
    assert np.isnan(kn.dense_matvec(np.array([[1.0, np.nan]]), np.ones(2))[0])


def test_index_bits():
    assert [kn.index_bits(m) for m in (2, 3, 4, 5, 8, 16)] == [1, 2, 2, 3, 3, 4]


def test_benchmarks_are_consistent():
    for case in kn.benchmarks():
        if case.name == "nm_select":
            continue  # compared above; its reference is the slowest to run
        got = case.kernel()
        np.testing.assert_allclose(got, case.numpy(), rtol=1e-3, atol=1e-3)

"""The GPTQ column loop and the bit-packing kernels agree with their references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import quantization as kq


def _inverse_cholesky_upper(X: np.ndarray) -> np.ndarray:
    d = X.shape[1]
    H = 2 * X.T @ X + 0.1 * np.eye(d)
    return np.linalg.cholesky(np.linalg.inv(H)).T


@st.composite
def gptq_inputs(draw):
    d_out = draw(st.integers(0, 6))
    d_in = draw(st.integers(0, 10))
    symmetric = draw(st.booleans())
    bits = draw(st.integers(2 if symmetric else 1, 8))
    group_size = draw(st.integers(0, d_in + 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    W = rng.standard_normal((d_out, d_in)) * draw(st.sampled_from([1e-3, 1.0, 50.0]))
    if d_out and d_in and draw(st.booleans()):
        W[rng.integers(d_out)] = 0.0  # an all-zero row
    U = _inverse_cholesky_upper(rng.standard_normal((2 * d_in + 1, d_in)))
    return W, U, bits, group_size, symmetric


@settings(max_examples=80, deadline=None)
@given(gptq_inputs())
def test_gptq_columns_matches_reference(inputs):
    W, U, bits, group_size, symmetric = inputs
    before = W.copy()
    codes, scales, zeros = kq.gptq_columns(W, U, bits, group_size, symmetric)
    ref_codes, ref_scales, ref_zeros = kq.gptq_columns_reference(
        W, U, bits, group_size, symmetric
    )
    np.testing.assert_array_equal(W, before)  # the input is not modified
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_allclose(scales, ref_scales, rtol=1e-12)
    np.testing.assert_array_equal(zeros, ref_zeros)
    assert codes.shape == W.shape
    if codes.size:
        assert codes.min() >= 0 and codes.max() < 2**bits


@settings(max_examples=30, deadline=None)
@given(gptq_inputs())
def test_numpy_gptq_matches_reference(inputs):
    W, U, bits, group_size, symmetric = inputs
    group = W.shape[1] if group_size == 0 else group_size
    if W.shape[1] == 0:
        return
    np.testing.assert_array_equal(
        kq._gptq_numpy(W, U, bits, group, symmetric),
        kq.gptq_columns_reference(W, U, bits, group_size, symmetric)[0],
    )


def test_gptq_columns_feeds_the_error_forward():
    # One row, grid [0, 1] in steps of 1/3 (asymmetric, 2 bits). Column 0: 0.6
    # rounds to code 2 (2/3), error -1/15. Column 1 (0.0) then moves by
    # -(error / U[0, 0]) * U[0, 1] = U[0, 1] / 15 before it is rounded.
    W = np.array([[0.6, 0.0, 1.0]])
    U = np.eye(3)
    U[0, 1] = 0.5  # column 1 becomes 1/30: still code 0
    codes, _, _ = kq.gptq_columns(W, U, bits=2, group_size=0, symmetric=False)
    np.testing.assert_array_equal(codes, [[2, 0, 3]])
    U[0, 1] = 6.0  # column 1 becomes 0.4: code 1, the feedback changed the rounding
    codes, _, _ = kq.gptq_columns(W, U, bits=2, group_size=0, symmetric=False)
    np.testing.assert_array_equal(codes, [[2, 1, 3]])
    np.testing.assert_array_equal(
        codes, kq.gptq_columns_reference(W, U, 2, 0, symmetric=False)[0]
    )


def test_gptq_columns_rejects_bad_inputs():
    W, U = np.ones((2, 3)), np.eye(3)
    with pytest.raises(ValueError, match="Hinv_upper must have shape"):
        kq.gptq_columns(W, np.eye(2), 4)
    with pytest.raises(ValueError, match="positive diagonal"):
        kq.gptq_columns(W, np.diag([1.0, 0.0, 1.0]), 4)
    with pytest.raises(ValueError, match="bits must be >= 2"):
        kq.gptq_columns(W, U, 1, symmetric=True)
    with pytest.raises(ValueError, match="group_size must be >= 0"):
        kq.gptq_columns(W, U, 4, group_size=-1)
    with pytest.raises(ValueError, match="W must contain only finite"):
        kq.gptq_columns(np.array([[np.nan, 0.0, 0.0]]), U, 4)
    with pytest.raises(TypeError, match="symmetric must be a bool"):
        kq.gptq_columns(W, U, 4, symmetric=None)


@settings(max_examples=100, deadline=None)
@given(
    bits=st.integers(1, 16),
    count=st.integers(0, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_pack_and_unpack_match_references(bits, count, seed):
    codes = np.random.default_rng(seed).integers(0, 2**bits, count)
    packed = kq.pack_bits(codes, bits)
    np.testing.assert_array_equal(packed, kq.pack_bits_reference(codes, bits))
    np.testing.assert_array_equal(packed, kq._pack_numpy(codes, bits))
    unpacked = kq.unpack_bits(packed, bits, count)
    np.testing.assert_array_equal(
        unpacked, kq.unpack_bits_reference(packed, bits, count)
    )
    np.testing.assert_array_equal(unpacked, kq._unpack_numpy(packed, bits, count))
    np.testing.assert_array_equal(unpacked, codes)


def test_unpack_reads_arbitrary_bytes_like_the_reference():
    packed = np.random.default_rng(0).integers(0, 256, 15).astype(np.uint8)
    for bits in range(1, 17):
        count = len(packed) * 8 // bits
        if -(-count * bits // 8) != len(packed):
            continue
        np.testing.assert_array_equal(
            kq.unpack_bits(packed, bits, count),
            kq.unpack_bits_reference(packed, bits, count),
        )


def test_multidimensional_codes_are_read_in_c_order():
    codes = np.arange(12).reshape(3, 4) % 8
    np.testing.assert_array_equal(
        kq.pack_bits(codes, 3), kq.pack_bits(codes.ravel(), 3)
    )


def test_benchmarks_run_and_agree():
    cases = {case.name: case for case in kq.benchmarks()}
    assert set(cases) == {"gptq_columns", "pack_bits", "unpack_bits"}
    np.testing.assert_array_equal(
        cases["gptq_columns"].kernel()[0], cases["gptq_columns"].numpy()
    )
    np.testing.assert_array_equal(
        cases["pack_bits"].kernel(), cases["pack_bits"].numpy()
    )
    np.testing.assert_array_equal(
        cases["unpack_bits"].kernel(), cases["unpack_bits"].numpy()
    )

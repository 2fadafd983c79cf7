"""Round-to-nearest and GPTQ quantization, storage accounting and bit packing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab import quantization as quant


def _expanded(qt: quant.QuantizedTensor, per_group: np.ndarray) -> np.ndarray:
    return np.repeat(per_group, qt.group_size, axis=1)[:, : qt.shape[1]]


def _correlated_inputs(seed: int, n: int = 512, d_in: int = 64) -> np.ndarray:
    """Inputs with correlated channels and a few loud ones, like real activations."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in)) @ rng.standard_normal((d_in, d_in))
    X[:, :4] *= 5.0
    return X


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [None, 8, 12])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_rtn_error_is_at_most_half_a_step(bits, group_size, symmetric):
    rng = np.random.default_rng(bits)
    W = rng.standard_normal((17, 40)) * rng.uniform(0.1, 3.0, (17, 1))
    qt = quant.rtn_quantize(W, bits, group_size, symmetric)
    assert qt.codes.shape == W.shape and qt.codes.dtype == np.uint8
    assert qt.codes.max() < 2**bits
    assert qt.scales.shape == (17, -(-40 // qt.group_size))
    assert (qt.zeros is None) == symmetric
    error = np.abs(W - qt.dequantize())
    step = _expanded(qt, qt.scales.astype(np.float64))
    assert np.all(error <= step / 2 * (1 + 1e-6) + 1e-6)
    # The grid is tight: the extreme weight of every row sits at an end of the grid
    # (code 0 is unused by symmetric grids, whose ends are 1 and 2**bits - 1).
    low_end = 1 if symmetric else 0
    ends = (qt.codes == low_end) | (qt.codes == 2**bits - 1)
    assert np.all(ends.any(axis=1))
    if symmetric:
        assert not np.any(qt.codes == 0)


def test_rtn_reproduces_a_weight_on_the_grid_exactly():
    W = np.array([[-3.0, -1.0, 0.0, 2.0, 3.0]])
    qt = quant.rtn_quantize(W, bits=3)
    assert qt.scales[0, 0] == 1.0
    np.testing.assert_array_equal(qt.codes, [[1, 3, 4, 6, 7]])
    np.testing.assert_array_equal(qt.dequantize(), W)
    asym = quant.rtn_quantize(np.array([[0.0, 1.0, 3.0]]), bits=2, symmetric=False)
    np.testing.assert_array_equal(asym.codes, [[0, 1, 3]])
    assert asym.zeros[0, 0] == 0.0


def test_all_zero_rows_survive():
    qt = quant.rtn_quantize(np.zeros((2, 6)), bits=4, group_size=3)
    np.testing.assert_array_equal(qt.dequantize(), 0.0)
    assert np.all(qt.scales == 1.0)


def test_sixteen_bit_codes_use_uint16():
    W = np.random.default_rng(0).standard_normal((3, 5))
    qt = quant.rtn_quantize(W, bits=16, symmetric=False)
    assert qt.codes.dtype == np.uint16
    np.testing.assert_allclose(qt.dequantize(), W, atol=1e-4)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [None, 16, 24])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_gptq_with_identity_hessian_is_rtn(bits, group_size, symmetric):
    W = np.random.default_rng(5).standard_normal((12, 48)).astype(np.float32)
    rtn = quant.rtn_quantize(W, bits, group_size, symmetric)
    gptq = quant.gptq_quantize(W, 7.0 * np.eye(48), bits, group_size, symmetric)
    np.testing.assert_array_equal(gptq.codes, rtn.codes)
    np.testing.assert_array_equal(gptq.scales, rtn.scales)
    if not symmetric:
        np.testing.assert_array_equal(gptq.zeros, rtn.zeros)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bits", [3, 4])
def test_gptq_beats_rtn_on_correlated_inputs(seed, bits):
    X = _correlated_inputs(seed)
    W = np.random.default_rng(100 + seed).standard_normal((32, 64))
    H = quant.gptq_hessian(X)
    rtn = quant.relative_output_error(X, W, quant.rtn_quantize(W, bits).dequantize())
    gptq = quant.relative_output_error(
        X, W, quant.gptq_quantize(W, H, bits).dequantize()
    )
    assert gptq < 0.85 * rtn
    grouped = quant.gptq_quantize(W, H, bits, group_size=16)
    assert quant.relative_output_error(X, W, grouped.dequantize()) < rtn


def test_gptq_zeroes_dead_inputs():
    X = _correlated_inputs(0, d_in=8)
    X[:, 3] = 0.0
    W = np.random.default_rng(1).standard_normal((4, 8))
    qt = quant.gptq_quantize(W, quant.gptq_hessian(X), bits=4)
    np.testing.assert_array_equal(qt.dequantize()[:, 3], 0.0)


def test_relative_output_error_layout():
    X = np.array([[1.0, 0.0], [0.0, 2.0]])
    W = np.array([[1.0, 1.0], [0.0, 1.0], [2.0, 0.0]])  # (d_out=3, d_in=2)
    assert quant.relative_output_error(X, W, W) == 0.0
    W_hat = W.copy()
    W_hat[2, 0] = 0.0
    expected = 2.0 / np.linalg.norm(X @ W.T)
    assert quant.relative_output_error(X, W, W_hat) == pytest.approx(expected)
    with pytest.raises(ValueError, match="W must have shape"):
        quant.relative_output_error(X, W.T, W)


@pytest.mark.parametrize(
    ("bits", "group_size", "symmetric"),
    [(1, 7, False), (2, 7, True), (3, None, True), (3, None, False), (4, 64, True)]
    + [(4, 64, False), (9, 5, True), (9, 5, False)],
)
def test_storage_bits_match_the_packed_arrays(bits, group_size, symmetric):
    W = np.random.default_rng(bits).standard_normal((10, 37))
    qt = quant.rtn_quantize(W, bits, group_size, symmetric)
    packed = quant.pack_bits(qt.codes, bits)
    grids = [qt.scales] + ([] if qt.zeros is None else [qt.zeros])
    side = sum(g.astype(np.float16).nbytes for g in grids)
    stored = packed.nbytes * 8 + side * 8
    # Packing pads only the final byte.
    assert 0 <= stored - qt.storage_bits(scale_bits=16) < 8
    assert qt.storage_bits(32) - qt.storage_bits(16) == 16 * sum(g.size for g in grids)
    assert qt.bits_per_value() == pytest.approx(qt.storage_bits() / W.size)
    np.testing.assert_array_equal(
        quant.unpack_bits(packed, bits, W.size).reshape(W.shape), qt.codes
    )


def test_bits_per_value_of_a_grouped_four_bit_matrix():
    qt = quant.rtn_quantize(np.ones((8, 128)), bits=4, group_size=64)
    assert qt.bits_per_value() == pytest.approx(4 + 16 / 64)
    asym = quant.rtn_quantize(np.ones((8, 128)), bits=4, group_size=64, symmetric=False)
    assert asym.bits_per_value() == pytest.approx(4 + 32 / 64)


@settings(max_examples=80, deadline=None)
@given(
    bits=st.integers(1, 16),
    count=st.integers(0, 70),
    seed=st.integers(0, 2**32 - 1),
)
def test_pack_unpack_round_trip(bits, count, seed):
    codes = np.random.default_rng(seed).integers(0, 2**bits, count)
    packed = quant.pack_bits(codes, bits)
    assert packed.dtype == np.uint8 and len(packed) == -(-count * bits // 8)
    restored = quant.unpack_bits(packed, bits, count)
    assert restored.dtype == (np.uint8 if bits <= 8 else np.uint16)
    np.testing.assert_array_equal(restored, codes)


@pytest.mark.parametrize("bits", range(1, 17))
def test_pack_edge_cases_for_every_width(bits):
    assert quant.pack_bits(np.array([], dtype=np.int64), bits).shape == (0,)
    assert quant.unpack_bits(np.zeros(0, np.uint8), bits, 0).shape == (0,)
    top = np.array([2**bits - 1])
    packed = quant.pack_bits(top, bits)
    assert len(packed) == -(-bits // 8)
    np.testing.assert_array_equal(quant.unpack_bits(packed, bits, 1), top)


def test_pack_layout_is_lsb_first():
    np.testing.assert_array_equal(quant.pack_bits([1, 2, 3], 2), [0b111001])
    np.testing.assert_array_equal(quant.pack_bits([5, 6], 3), [0b110101])
    np.testing.assert_array_equal(quant.pack_bits([0x1FF], 9), [0xFF, 0x01])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: quant.rtn_quantize(np.ones(4), 4), ValueError, "W must have 2"),
        (
            lambda: quant.rtn_quantize(np.ones((2, 2)), 1),
            ValueError,
            "bits must be >= 2",
        ),
        (
            lambda: quant.rtn_quantize(np.ones((2, 2)), 17),
            ValueError,
            "bits must be <=",
        ),
        (
            lambda: quant.rtn_quantize(np.ones((2, 2)), 4, group_size=0),
            ValueError,
            "group_size must be >= 1",
        ),
        (
            lambda: quant.rtn_quantize([[np.nan, 1.0]], 4),
            ValueError,
            "W must contain only finite",
        ),
        (
            lambda: quant.rtn_quantize(np.ones((2, 2)), 4, symmetric=1),
            TypeError,
            "symmetric must be a bool",
        ),
        (
            lambda: quant.gptq_quantize(np.ones((2, 3)), np.eye(2), 4),
            ValueError,
            "H must have shape",
        ),
        (
            lambda: quant.gptq_quantize(np.ones((2, 2)), [[1.0, 2.0], [0.0, 1.0]], 4),
            ValueError,
            "H must be symmetric",
        ),
        (
            lambda: quant.gptq_quantize(np.ones((2, 2)), -np.eye(2), 4),
            ValueError,
            "non-negative diagonal",
        ),
        (
            lambda: quant.gptq_quantize(np.ones((2, 2)), np.eye(2), 4, damp=-1.0),
            ValueError,
            "damp must be >= 0",
        ),
        (
            lambda: quant.pack_bits([4], 2),
            ValueError,
            r"codes must lie in \[0, 2\*\*2\)",
        ),
        (lambda: quant.pack_bits([-1], 2), ValueError, "codes must lie"),
        (lambda: quant.pack_bits([1.0], 2), TypeError, "codes must hold integers"),
        (lambda: quant.pack_bits([1], 0), ValueError, "bits must be >= 1"),
        (
            lambda: quant.unpack_bits(np.zeros(2, np.uint8), 3, 6),
            ValueError,
            r"ceil\(count \* bits / 8\) = 3 bytes, got 2",
        ),
        (
            lambda: quant.unpack_bits(np.zeros(1, np.int32), 3, 2),
            TypeError,
            "packed must have dtype uint8",
        ),
        (
            lambda: quant.QuantizedTensor(
                np.zeros((0, 0), np.uint8), np.ones((0, 1)), None, 4, 1, (0, 0)
            ).bits_per_value(),
            ValueError,
            "empty",
        ),
    ],
)
def test_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("symmetric", [True, False])
def test_rtn_refuses_weights_whose_scale_overflows(symmetric):
    W = np.array([[1e308, -1e308, 0.0, 1.0]])
    with pytest.raises(ValueError, match="scale overflows"):
        quant.rtn_quantize(W, 4, symmetric=symmetric)

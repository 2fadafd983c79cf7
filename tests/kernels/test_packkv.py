"""The PackKV kernels against their plain-Python references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import packkv as k

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def code_blocks(draw, max_tokens=40, max_channels=6):
    n_tokens = draw(st.integers(0, max_tokens))
    n_channels = draw(st.integers(1, max_channels))
    span = draw(st.sampled_from([1, 2, 17, 1000, 2**20]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    codes = rng.integers(-span, span, size=(n_tokens, n_channels)).astype(np.int32)
    if n_tokens and draw(st.booleans()):
        codes[:, 0] = codes[0, 0]  # a constant channel: width 0
    return codes, draw(st.integers(1, 20))


@SETTINGS
@given(code_blocks())
def test_encode_matches_reference_and_roundtrips(block):
    codes, p = block
    stream = k.bitpack_encode(codes, p)
    ref = k.bitpack_encode_reference(codes, p)
    for got, want in zip(stream, ref, strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    np.testing.assert_array_equal(k.bitpack_decode(*stream, len(codes), p), codes)
    np.testing.assert_array_equal(
        k.bitpack_decode_reference(*stream, len(codes), p), codes
    )
    # the stream is exactly as long as the widths say
    sizes = np.minimum(p, len(codes) - p * np.arange(stream[1].shape[0]))
    n_bits = int((stream[2].astype(int).sum(axis=1) * sizes).sum())
    assert stream[0].size == -(-n_bits // 32)


@SETTINGS
@given(code_blocks(), st.integers(0, 2**32 - 1))
def test_fused_products_match_reference(block, seed):
    codes, p = block
    rng = np.random.default_rng(seed)
    scales = rng.uniform(1e-4, 1e-2, len(codes)).astype(np.float32)
    q = rng.standard_normal(codes.shape[1]).astype(np.float32)
    a = rng.random(len(codes)).astype(np.float32)
    stream = k.bitpack_encode(codes, p)
    dense = codes.astype(np.float64) * scales[:, None]
    scores = k.packed_qk_matvec(q, *stream, scales, p)
    out = k.packed_av_matvec(a, *stream, scales, p)
    tol = 1e-5 * (1 + np.abs(dense).max(initial=0)) * (1 + codes.shape[1] + len(codes))
    np.testing.assert_allclose(
        scores, k.packed_qk_matvec_reference(q, *stream, scales, p), atol=tol
    )
    np.testing.assert_allclose(
        out, k.packed_av_matvec_reference(a, *stream, scales, p), atol=tol
    )
    np.testing.assert_allclose(scores, dense @ q, atol=tol)


@SETTINGS
@given(code_blocks(max_tokens=30, max_channels=4))
def test_greedy_repack_matches_reference(block):
    codes, p = block
    order = k.greedy_repack(codes, p)
    np.testing.assert_array_equal(order, k.greedy_repack_reference(codes, p))
    assert sorted(order.tolist()) == list(range(len(codes)))


def test_edge_cases():
    empty = np.zeros((0, 3), dtype=np.int32)
    payload, mins, widths = k.bitpack_encode(empty, 4)
    assert payload.size == 0 and mins.shape == (0, 3)
    assert k.bitpack_decode(payload, mins, widths, 0, 4).shape == (0, 3)
    assert k.greedy_repack(empty, 4).size == 0
    one = np.array([[5, -7]], dtype=np.int32)
    stream = k.bitpack_encode(one, 8)
    assert stream[0].size == 0 and stream[2].tolist() == [[0, 0]]
    np.testing.assert_array_equal(k.bitpack_decode(*stream, 1, 8), one)
    scores = k.packed_qk_matvec([2.0, 1.0], *stream, np.float32([0.5]), 8)
    assert scores.tolist() == [0.5 * (2 * 5 - 7)]


def test_bad_inputs_raise():
    with pytest.raises(TypeError, match="codes must hold integers"):
        k.bitpack_encode(np.ones((2, 2)), 2)
    with pytest.raises(ValueError, match="p must be >= 1"):
        k.bitpack_encode(np.ones((2, 2), dtype=np.int32), 0)
    payload, mins, widths = k.bitpack_encode(np.arange(8).reshape(4, 2), 2)
    with pytest.raises(ValueError, match="mins must have 3 rows"):
        k.bitpack_decode(payload, mins, widths, 6, 2)
    with pytest.raises(TypeError, match="payload must be uint32"):
        k.bitpack_decode(payload.astype(np.int64), mins, widths, 4, 2)
    with pytest.raises(ValueError, match="payload holds"):
        k.bitpack_decode(payload[:0], mins, widths, 4, 2)
    with pytest.raises(ValueError, match="finite"):
        k.packed_qk_matvec([np.nan, 1.0], payload, mins, widths, np.ones(4), 2)
    with pytest.raises(ValueError, match="qvec must have shape"):
        k.packed_qk_matvec([1.0], payload, mins, widths, np.ones(4), 2)

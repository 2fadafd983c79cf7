"""PackKV (arXiv 2512.24449): the stages, bad input and the claim."""

from dataclasses import replace

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.efficient_transformers import packkv_kv_compression as ch
from paperlab.kernels import packkv as kernels


@pytest.fixture(scope="module")
def result():
    """The chapter's default experiment on the synthetic caches (about 1 s)."""
    return ch.run_experiment(ch.Config(lm_windows=0))


def _as_variant(result, variant):
    return replace(result, config=replace(result.config, variant=variant))


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_packkv(result):
    ch.check_claim(result)


def test_claim_fails_for_fixed_width(result):
    with pytest.raises(ClaimFailed, match="fewer than 8%"):
        ch.check_claim(_as_variant(result, "fixed"))


def test_claim_fails_without_repacking(result):
    with pytest.raises(ClaimFailed, match="below 1.5%"):
        ch.check_claim(_as_variant(result, "pack"))


def test_claim_fails_when_k_and_v_orders_differ(result):
    broken = replace(result, permuted_attention_error=result.mismatched_attention_error)
    assert result.mismatched_attention_error > 1e-3
    with pytest.raises(ClaimFailed, match="repacking changed"):
        ch.check_claim(broken)


def test_claim_fails_on_a_broken_error_bound(result):
    with pytest.raises(ClaimFailed, match="half-steps"):
        ch.check_claim(replace(result, bound_ratio=1.5))


def test_fixed_width_bits_match_a_hand_count():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 8))
    codes, _ = ch.quantize_tokens(X, 1 / 16)
    shifted = codes - codes.min(axis=1, keepdims=True)
    width = int(shifted.max()).bit_length()
    assert ch.fixed_width_bits(codes) == -(-32 * 8 * width // 8) * 8 + 32 * 48


# ------------------------------------------------------------- the mechanism


def test_quantization_respects_the_error_bound():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 16)) * np.exp(rng.normal(0, 2, 16))
    for rel in (0.5, 1 / 16, 1 / 256):
        codes, scales = ch.quantize_tokens(X, rel)
        err = np.abs(X - codes * scales.astype(np.float64)[:, None])
        assert np.all(err <= scales[:, None] / 2 * (1 + 1e-6))
        spans = codes.max(axis=1) - codes.min(axis=1)
        assert spans.max() <= round(1 / rel) + 1


def test_constant_token_gets_a_step_of_rel():
    codes, scales = ch.quantize_tokens(np.full((2, 3), 2.0), 0.25)
    assert scales.tolist() == [0.25, 0.25] and codes.tolist() == [[8, 8, 8]] * 2


def test_packed_bits_count_the_stream_and_metadata():
    codes = np.zeros((16, 4), dtype=np.int32)
    codes[:, 1] = np.arange(16)  # one channel needs 4 bits in one pack
    bits = ch.packed_bits(codes, 16)
    # 64 payload bits; 4 minimums at width 1 (one byte); 4 widths at width 3
    # (12 bits, two bytes); the header; one step per token
    assert bits == 64 + 8 + 16 + ch.HEADER_BITS + 16 * ch.SCALE_BITS


def test_repack_order_is_a_permutation_and_groups_alike_tokens():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 3, size=(32, 6))
    base[1::2] += 40  # two interleaved groups of tokens
    order = ch.repack_order(base, base, 16)
    assert sorted(order.tolist()) == list(range(32))
    assert len({int(t) % 2 for t in order[:16]}) == 1  # a pack holds one group
    assert ch.packed_bits(base[order], 16) < ch.packed_bits(base, 16)


def test_same_order_leaves_attention_unchanged_different_orders_do_not():
    rng = np.random.default_rng(3)
    K, V, q = (
        rng.standard_normal((20, 8)),
        rng.standard_normal((20, 8)),
        rng.standard_normal(8),
    )
    perm = rng.permutation(20)
    exact = ch.attention(q, K, V)
    np.testing.assert_allclose(ch.attention(q, K[perm], V[perm]), exact, atol=1e-12)
    assert np.abs(ch.attention(q, K[perm], V[rng.permutation(20)]) - exact).max() > 1e-3
    # an independent softmax attention
    w = np.exp(K @ q / np.sqrt(8))
    np.testing.assert_allclose(exact, (w / w.sum()) @ V, rtol=1e-12)


def test_synthetic_cache_has_outlier_tokens():
    X = ch.make_synthetic_kv(2000, 16, 0.05, np.random.default_rng(4))
    norms = np.linalg.norm(X, axis=1)
    loud = norms > 3 * np.median(norms)
    assert X.dtype == np.float32 and 0.02 < loud.mean() < 0.08


def test_tiny_lm_cache_shape_and_lossless_packing():
    K, V = ch.tiny_lm_kv(2)
    assert K.shape == V.shape == (4, 64, 64)
    codes, scales = ch.quantize_tokens(K[0], 1 / 16)
    order = ch.repack_order(codes, ch.quantize_tokens(V[0], 1 / 16)[0], 16)
    stream = kernels.bitpack_encode(codes[order], 16)
    np.testing.assert_array_equal(kernels.bitpack_decode(*stream, 64, 16), codes[order])


def test_tiny_lm_loss_barely_moves_at_a_fine_step():
    exact = ch.tiny_lm_loss(None, n_windows=8)
    assert abs(ch.tiny_lm_loss(1 / 16, n_windows=8) - exact) < 0.05
    assert ch.tiny_lm_loss(1.0, n_windows=8) > exact + 0.05  # two levels: damage


# ------------------------------------------------------------------ bad input


def test_bad_inputs_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="rel must be > 0"):
        ch.quantize_tokens(np.ones((2, 2)), 0.0)
    with pytest.raises(ValueError, match="finite"):
        ch.quantize_tokens(np.array([[np.nan, 1.0]]), 0.1)
    with pytest.raises(ValueError, match="2 dimension"):
        ch.quantize_tokens(np.ones(3), 0.1)
    with pytest.raises(ValueError, match="outlier_fraction must be <= 1"):
        ch.make_synthetic_kv(10, 8, 1.5, rng)
    with pytest.raises(TypeError, match="rng must be a Generator"):
        ch.make_synthetic_kv(10, 8, 0.1, 0)
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.Config(variant="kivi")
    with pytest.raises(ValueError, match="pack must be <="):
        ch.Config(block=16, pack=32)
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({})
    with pytest.raises(ValueError, match="codes_v must have shape"):
        ch.repack_order(np.ones((4, 2), int), np.ones((3, 2), int), 2)
    with pytest.raises(ValueError, match="scheme must be one of"):
        ch.run_experiment(ch.Config(seeds=(0,), lm_windows=0)).mean_bits("zip")


def test_float_codes_are_refused_not_truncated():
    X = np.random.default_rng(0).standard_normal((16, 8))
    codes, scales = ch.quantize_tokens(X, 1 / 16)
    assert ch.packed_bits(codes, 4) > 0  # int32 codes, as quantize_tokens returns
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        ch.packed_bits(X, 4)
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        ch.packed_bits(codes.astype(float), 4)
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        ch.fixed_width_bits(X)
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        ch.pack_widths(X, 4)
    with pytest.raises(TypeError, match="codes_k must hold integer codes"):
        ch.repack_order(X, codes, 4)
    with pytest.raises(TypeError, match="codes_v must hold integer codes"):
        ch.repack_order(codes, X, 4)
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        ch.dequantize_tokens(X, scales)
    with pytest.raises(ValueError, match="codes must have 2 dimension"):
        ch.packed_bits(codes[0], 4)
    with pytest.raises(ValueError, match="p must be >= 1"):
        ch.packed_bits(codes, 0)

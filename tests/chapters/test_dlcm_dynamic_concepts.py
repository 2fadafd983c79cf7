"""DLCM-lite (arXiv 2512.24617): mechanism, input checks, claim and counter-claims."""

import numpy as np
import pytest
import torch

from paperlab.claims import ClaimFailed
from paperlab.efficient_transformers import dlcm_dynamic_concepts as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's experiment over three seeds (about 10 s)."""
    return ch.run_experiment(ch.Config(n_seeds=3))


def _model(variant="dlcm", seed=0):
    return ch.DLCMLite(12, 16, d_token=8, d_concept=16, variant=variant, seed=seed)


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_dlcm(result):
    ch.check_claim(result)
    assert np.all(result.f1 >= ch.MIN_F1)
    # Boundaries are mostly at word starts, not only numerous enough.
    assert np.all(result.precision >= 0.6)


def test_claim_fails_for_fixed_stride():
    baseline = ch.run_experiment(ch.Config(variant="stride", n_steps=20))
    with pytest.raises(ClaimFailed, match="boundary F1"):
        ch.check_claim(baseline)
    assert np.all(baseline.f1 <= 0.4)
    assert np.all(baseline.compression == 4.0)


def test_claim_fails_when_boundaries_are_not_learned():
    """Without the signal that trains W_q and W_k, boundaries land anywhere."""
    untrained = ch.run_experiment(ch.Config(predict_weight=0.0, n_steps=100))
    with pytest.raises(ClaimFailed, match="boundary F1"):
        ch.check_claim(untrained)
    assert untrained.f1.max() < 0.45


def test_claim_fails_when_the_compression_misses_r():
    """Part (ii) has teeth of its own: the learned boundaries, read with too low a
    threshold, still find the words (F1 passes) but cut far more concepts."""
    over = ch.run_experiment(ch.Config(threshold=0.3))
    assert over.f1.min() >= ch.MIN_F1  # part (i) passes ...
    with pytest.raises(ClaimFailed, match="realised compression"):
        ch.check_claim(over)  # ... part (ii) does not
    assert np.all(over.compression < 0.8 * over.config.target_ratio)


def test_flop_part_is_bookkeeping_any_compression_passes(result):
    """Part (iii) follows from the concept count: even the over-segmenting and the
    stride models satisfy it, so it adds no test of the mechanism."""
    stride = ch.run_experiment(ch.Config(variant="stride", n_steps=20))
    for r in (result, stride):
        assert np.all(np.abs(r.flop_ratio * r.compression - 1) <= ch.MAX_FLOP_ERROR)


def test_result_shapes_and_ranges(result):
    config = result.config
    assert result.losses.shape == (3, config.n_steps)
    assert result.eval_probs.shape == (3, config.n_eval, config.seq_len)
    assert np.all((result.eval_probs >= 0) & (result.eval_probs <= 1))
    assert np.all(result.losses[:, -20:].mean(1) < 0.5 * result.losses[:, 0])
    # The planted words average about four tokens, like the target R.
    assert np.all(np.abs(result.true_compression - 4) < 0.8)


# ------------------------------------------------------------- the mechanism


def test_boundary_probs_match_a_direct_computation():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 5, 3, generator=gen), torch.randn(2, 5, 3, generator=gen)
    p = ch.boundary_probs(q, k).numpy()
    qn, kn = q.numpy(), k.numpy()
    for b in range(2):
        assert p[b, 0] == 1.0
        for t in range(1, 5):
            cos = qn[b, t - 1] @ kn[b, t]
            cos /= np.linalg.norm(qn[b, t - 1]) * np.linalg.norm(kn[b, t])
            assert p[b, t] == pytest.approx((1 - cos) / 2, abs=1e-6)


def test_sharpen_is_monotone_and_fixes_one_half():
    p = torch.tensor([0.1, 0.4, 0.5, 0.6, 0.9])
    s = ch.sharpen(p, 0.2)
    assert torch.all(s[1:] > s[:-1])
    assert float(s[2]) == pytest.approx(0.5)
    assert float(s[0]) < 0.1 and float(s[-1]) > 0.9
    assert torch.allclose(ch.sharpen(p, 1.0), p, atol=1e-6)


def test_mean_pool_against_a_loop():
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(2, 7, 3, generator=gen)
    b = torch.tensor([[1, 0, 0, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0, 1]])
    seg = ch.segment_ids(b)
    pooled = ch.mean_pool(h, seg, 4)
    for row in range(2):
        for j in range(4):
            members = h[row, seg[row] == j]
            want = members.mean(0) if len(members) else torch.zeros(3)
            assert torch.allclose(pooled[row, j], want, atol=1e-6)


def test_concept_visibility_hides_the_open_segment():
    seg = ch.segment_ids(torch.tensor([[1, 0, 1, 0, 0, 1]]))
    mask = ch.concept_visibility(seg, 4)[0].numpy()
    # Token 0-1 (segment 0) see only the start slot; tokens 2-4 also see segment 0.
    assert mask[:2].tolist() == [[True, False, False, False]] * 2
    assert mask[2:5].tolist() == [[True, True, False, False]] * 3
    assert mask[5].tolist() == [True, True, True, False]


def test_future_tokens_do_not_change_past_logits():
    model = _model()
    tokens = torch.randint(0, 12, (3, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(tokens)["logits"]
        for t in (0, 5, 14):
            changed = tokens.clone()
            changed[:, t + 1 :] = (changed[:, t + 1 :] + 5) % 12
            after = model(changed)["logits"]
            assert torch.allclose(before[:, : t + 1], after[:, : t + 1], atol=1e-5)


def test_stride_boundaries_are_fixed():
    model = _model("stride")
    out = model(torch.zeros(2, 16, dtype=torch.int64))
    assert out["b"][0].tolist() == [float(t % 4 == 0) for t in range(16)]


def test_ratio_loss_is_zero_at_the_target():
    p = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]])
    assert float(ch.ratio_loss(p, 4.0, 0.05)) == pytest.approx(0.0, abs=1e-8)
    assert float(ch.ratio_loss(p, 2.0, 0.05)) == pytest.approx(0.0625, abs=1e-6)


def test_predictive_loss_rewards_aligned_neighbours():
    k = torch.eye(6).expand(2, 6, 6)
    aligned = torch.roll(k, shifts=-1, dims=1)  # q_{t-1} equals k_t
    assert float(ch.predictive_loss(aligned, k, 0.1)) < 0.01
    assert float(ch.predictive_loss(k, k, 0.1)) > 5


def test_sample_text_spells_planted_words():
    lexicon = ch.make_lexicon(np.random.default_rng(0))
    tokens, starts = ch.sample_text(lexicon, 50, 40, np.random.default_rng(1))
    assert tokens.shape == starts.shape == (50, 40)
    firsts = set(lexicon.spellings[:, 0].tolist())
    assert set(tokens[starts].tolist()) <= firsts
    # Between two starts lies one whole word, spelled as in the lexicon.
    row = np.flatnonzero(starts[0])
    for a, b in zip(row[:-1], row[1:], strict=True):
        word = int(np.flatnonzero(lexicon.spellings[:, 0] == tokens[0, a])[0])
        assert b - a == lexicon.lengths[word]
        assert tokens[0, a:b].tolist() == lexicon.spellings[word, : b - a].tolist()


def test_boundary_scores_by_hand():
    truth = np.array([[1, 0, 1, 0, 0, 1]], dtype=bool)
    pred = np.array([[1, 0, 1, 1, 0, 0]], dtype=bool)
    precision, recall, f1 = ch.boundary_scores(pred, truth)
    assert (precision, recall) == (0.5, 0.5)
    assert f1 == pytest.approx(0.5)
    assert ch.boundary_scores(np.zeros((1, 6)), truth) == (0.0, 0.0, 0.0)


def test_backbone_flops_count():
    # One layer, d = 2, three positions: dense 24*4*3, attention 4*2*(1+2+3).
    assert ch.backbone_flops(3, 2, 1) == 288 + 48
    assert ch.backbone_flops(3, 2, 2) == 2 * (288 + 48)
    assert ch.backbone_flops(0, 8, 1) == 0


# ------------------------------------------------------------------- bad input


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="variant"):
        ch.Config(variant="chunk")
    with pytest.raises(ValueError, match="target_ratio"):
        ch.Config(target_ratio=0.5)
    with pytest.raises(TypeError, match="n_steps"):
        ch.Config(n_steps=1.5)
    with pytest.raises(ValueError, match="n_symbols"):
        ch.make_lexicon(np.random.default_rng(0), n_symbols=10, n_words=20)
    with pytest.raises(TypeError, match="rng"):
        ch.make_lexicon(0)
    with pytest.raises(ValueError, match="d_token must be divisible"):
        ch.DLCMLite(12, 16, d_token=9, d_concept=16)
    with pytest.raises(ValueError, match="tokens must lie"):
        _model()(torch.full((1, 8), 12, dtype=torch.int64))
    with pytest.raises(ValueError, match="2-d int64"):
        _model()(torch.zeros(8, dtype=torch.int64))
    with pytest.raises(ValueError, match="truth must have the shape"):
        ch.boundary_scores(np.zeros((2, 5)), np.zeros((2, 4)))
    with pytest.raises(TypeError, match="result must be a Result"):
        ch.check_claim({"f1": 1.0})


def test_tensor_helpers_reject_bad_shapes_and_types():
    q = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match="q must have 3 dimensions"):
        ch.boundary_probs(torch.randn(5), torch.randn(5))
    with pytest.raises(ValueError, match="q must have 3 dimensions"):
        ch.boundary_probs(torch.randn(5, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"k must have shape \(2, 5, 3\)"):
        ch.boundary_probs(q, torch.randn(2, 4, 3))
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        ch.boundary_probs(q.numpy(), q.numpy())
    with pytest.raises(TypeError, match="q must be a floating-point tensor"):
        ch.boundary_probs(q.long(), q.long())
    with pytest.raises(ValueError, match="alpha must be > 0"):
        ch.sharpen(torch.rand(4), 0.0)
    with pytest.raises(ValueError, match="b must have 2 dimensions"):
        ch.segment_ids(torch.ones(4))
    with pytest.raises(ValueError, match="seg must have shape"):
        ch.mean_pool(q, torch.zeros(2, 4, dtype=torch.int64), 1)
    with pytest.raises(ValueError, match="seg must lie in 0 .. n_segments - 1 = 0"):
        ch.mean_pool(q, torch.ones(2, 5, dtype=torch.int64), 1)
    with pytest.raises(ValueError, match="seg must have 2 dimensions"):
        ch.concept_visibility(torch.zeros(5, dtype=torch.int64), 3)
    with pytest.raises(ValueError, match="p must have 2 dimensions"):
        ch.ratio_loss(torch.rand(5), 4.0, 0.05)
    with pytest.raises(ValueError, match="target_ratio must be >= 1"):
        ch.ratio_loss(torch.rand(2, 5), 0.5, 0.05)
    with pytest.raises(ValueError, match="k must have shape"):
        ch.predictive_loss(q, torch.randn(2, 5, 4), 0.1)
    with pytest.raises(ValueError, match="tau must be > 0"):
        ch.predictive_loss(q, q, 0.0)

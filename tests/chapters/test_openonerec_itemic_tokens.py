"""OpenOneRec itemic tokens (arXiv 2512.24762): mechanism, bad input and the claim."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from paperlab.claims import ClaimFailed
from paperlab.recommendation_retrieval import openonerec_itemic_tokens as ch
from paperlab.residual_quantization import collision_rate, disambiguate, prefix_purity


@pytest.fixture(scope="module")
def result():
    """The chapter's default experiment (about 5 s of CPU)."""
    return ch.run_experiment(ch.Config())


def _as_variant(result, variant, runs=None):
    """The same measurements, with the claim pointed at another tokenizer."""
    tokenizers = tuple(dict.fromkeys([*result.config.tokenizers, variant]))
    config = ch.Config(variant=variant, tokenizers=tokenizers)
    return ch.Result(config, result.runs if runs is None else runs)


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_rq_kmeans(result):
    ch.check_claim(result)


def test_claim_fails_for_random_codes(result):
    with pytest.raises(ClaimFailed, match="random codes name the fine group"):
        ch.check_claim(_as_variant(result, "random"))


def test_claim_fails_on_cohesion_for_random_codes(result):
    """Granted the purity of RQ codes, random codes still scatter every group."""
    runs = tuple(
        replace(r, purity=1.0) if r.tokenizer == "random" else r for r in result.runs
    )
    with pytest.raises(ClaimFailed, match="under their fine group's prefix"):
        ch.check_claim(_as_variant(result, "random", runs))


def test_claim_fails_on_recall_alone_for_random_codes(result):
    """Even granted perfect purity, random codes miss the Recall@10 gain."""
    runs = tuple(
        replace(r, purity=1.0, cohesion=1.0) if r.tokenizer == "random" else r
        for r in result.runs
    )
    with pytest.raises(ClaimFailed, match="above random"):
        ch.check_claim(_as_variant(result, "random", runs))


def test_claim_fails_without_the_residual_step(result):
    """Codes from k-means on raw embeddings do not name the fine groups."""
    catalogue = ch.make_catalogue(seed=0)
    _, semantic = ch.itemic_codes(
        catalogue.embeddings, (20, 5, 10), "no_residual", seed=0
    )
    purity = prefix_purity(semantic, catalogue.fine, 3)
    cohesion = ch.group_cohesion(semantic, catalogue.fine, 3)
    assert cohesion > 0.9  # it fails on purity alone: everything shares few codes
    fake = ch.SeedResult("no_residual", 0, 1.0, 0.0, purity, cohesion, 1, ())
    runs = (fake, *[r for r in result.runs if r.tokenizer == "random"][:1])
    bad = ch.Result(
        ch.Config(
            variant="no_residual", tokenizers=("no_residual", "random"), n_seeds=1
        ),
        runs,
    )
    with pytest.raises(ClaimFailed, match="fine group"):
        ch.check_claim(bad)


def test_result_numbers_are_consistent(result):
    for run in result.runs:
        assert 0.0 <= run.recall <= 1.0
        assert len(run.losses) == result.config.epochs
        assert run.losses[-1] < run.losses[0]
    rq = result.get("rq_kmeans")
    assert all(r.semantic_collisions > 0.5 for r in rq)  # why a suffix level is needed
    with pytest.raises(KeyError):
        result.get("no_residual")


def test_decode_held_out_repeats_the_experiment(result):
    """Decoding the kept first seed with the trie gives the reported recall."""
    kept = result.first_seed
    for name in result.config.tokenizers:
        codes, _ = ch.itemic_codes(
            kept.catalogue.embeddings, result.config.codebook_sizes, name, kept.seed
        )
        assert np.array_equal(kept.codes[name], codes)
    for run in result.get("rq_kmeans")[:1] + result.get("random")[:1]:
        decoded, targets = ch.decode_held_out(result, run.tokenizer)
        assert decoded.shape == (result.config.n_eval_users, result.config.beam_width)
        assert (decoded == targets[:, None]).any(axis=1).mean() == run.recall
        assert decoded.min() >= 0
    free, _ = ch.decode_held_out(result, "random", constrained=False)
    assert (free < 0).mean() > 0.3  # random codes: most free paths name no item
    with pytest.raises(ValueError, match="tokenizer"):
        ch.decode_held_out(result, "no_residual")


# ------------------------------------------------------------- the mechanism


def test_catalogue_and_sessions_shapes():
    cat = ch.make_catalogue(n_coarse=3, n_fine=2, items_per_fine=4, dim=5, seed=1)
    assert cat.embeddings.shape == (24, 5) and cat.n_fine == 6
    assert np.array_equal(cat.fine, np.repeat(np.arange(6), 4))
    sessions = ch.make_sessions(cat.fine, n_users=50, seq_len=7, p_top=1.0, seed=1)
    assert sessions.shape == (50, 7) and sessions.max() < 24
    # with p_top = 1 every step follows one fixed successor per group
    groups = cat.fine[sessions]
    pairs = {
        (a, b)
        for a, b in zip(groups[:, :-1].ravel(), groups[:, 1:].ravel(), strict=True)
    }
    assert len({a for a, _ in pairs}) == len(pairs)


def test_rq_codes_name_fine_groups_and_random_codes_do_not():
    cat = ch.make_catalogue(seed=0)
    codes, semantic = ch.itemic_codes(cat.embeddings, (20, 5, 10), "rq_kmeans", 0)
    assert collision_rate(codes) == 0.0
    assert prefix_purity(semantic, cat.fine, 3) > 0.9
    assert prefix_purity(semantic, cat.coarse, 1) > 0.9
    rand, _ = ch.itemic_codes(cat.embeddings, (20, 5, 10), "random", 0)
    assert rand.shape == codes.shape and collision_rate(rand) == 0.0
    assert prefix_purity(rand, cat.coarse, 1) < 0.3
    # random codes look pure at full depth only because their prefixes are tiny
    assert ch.group_cohesion(semantic, cat.fine, 3) > 0.9
    assert ch.group_cohesion(rand, cat.fine, 3) < 0.2


def test_group_cohesion_mirrors_purity():
    labels = np.array([0, 0, 1, 1])
    singletons = np.arange(4)[:, None]
    one_code = np.zeros((4, 1), dtype=int)
    assert prefix_purity(singletons, labels, 1) == 1.0
    assert ch.group_cohesion(singletons, labels, 1) == 0.5
    assert prefix_purity(one_code, labels, 1) == 0.5
    assert ch.group_cohesion(one_code, labels, 1) == 1.0


def test_cached_decoding_matches_the_full_forward():
    """prefill + extend give the hidden state that forward gives on the whole
    sequence, so the beam search's cache changes nothing but the cost."""
    torch.manual_seed(0)
    model = ch.ItemicLM(12, 3, 9, d_model=16, n_heads=4).eval()
    tokens = torch.randint(0, 12, (5, 8))
    levels = torch.arange(8).remainder(3).expand(5, -1)
    with torch.no_grad():
        full = model(tokens, [levels])
        hidden, cache = model.prefill(tokens[:, :6], levels[:, :6])
        torch.testing.assert_close(hidden, full[:, 5])
        for t in (6, 7):
            hidden, cache = model.extend(cache, tokens[:, t], levels[:, t])
            torch.testing.assert_close(hidden, full[:, t], atol=1e-5, rtol=1e-5)
        _, cache = model.extend(cache, tokens[:, 0], levels[:, 0])  # 9 = max_len
        with pytest.raises(ValueError, match="max_len"):
            model.extend(cache, tokens[:, 0], levels[:, 0])


def test_tokens_use_one_block_per_level():
    codes = np.array([[0, 2], [1, 0], [1, 1]])
    tokens, levels, vocab = ch.to_tokens(np.array([[2, 0]]), codes)
    assert vocab == 5
    assert tokens.tolist() == [[1, 3, 0, 4]]
    assert levels.tolist() == [[0, 1, 0, 1]]


class _Fixed(torch.nn.Module):
    """A fake model whose next-token log-scores are a fixed table per level."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.as_tensor(table, dtype=torch.float32)

    def prefill(self, tokens, levels):
        return self.extend(None, tokens[:, -1], levels[:, -1])

    def extend(self, cache, tokens, levels):
        n = len(tokens)
        return torch.zeros(n, 1), (torch.zeros(n, 1), torch.zeros(n, 1))

    def logits(self, hidden):
        return self.table.expand(hidden.shape[0], -1)


def test_beam_search_matches_brute_force(monkeypatch):
    """A beam as wide as the catalogue keeps every path: it must rank all items
    by their summed level scores, as an exhaustive search does."""
    rng = np.random.default_rng(3)
    codes, _ = disambiguate(rng.integers(0, 3, size=(12, 2)))
    trie = ch.CodeTrie(codes)
    table = rng.normal(size=trie.vocab_size)
    monkeypatch.setattr(ch, "ItemicLM", _Fixed)
    offsets = np.array([lo for lo, _ in trie.level_tokens])
    # log_softmax over the whole vocabulary shifts every level by the same constant
    score = table[codes + offsets].sum(axis=1)
    expected = np.argsort(-score, kind="stable")
    tokens = np.zeros((2, 3), dtype=np.int64)
    decoded = ch.beam_search(_Fixed(table), tokens, tokens, trie, beam_width=12)
    assert decoded.shape == (2, 12)
    assert decoded[0].tolist() == expected.tolist()
    narrow = ch.beam_search(_Fixed(table), tokens, tokens, trie, beam_width=3)
    assert set(narrow[0]) <= set(range(12)) and len(set(narrow[0])) == 3


def test_unconstrained_beams_can_leave_the_catalogue(monkeypatch):
    codes = np.array([[0, 0], [1, 1]])
    trie = ch.CodeTrie(codes)
    table = np.array([5.0, 0.0, 0.0, 5.0])  # best path (0, 1) is no item
    monkeypatch.setattr(ch, "ItemicLM", _Fixed)
    tokens = np.zeros((1, 2), dtype=np.int64)
    free = ch.beam_search(_Fixed(table), tokens, tokens, trie, 1, constrained=False)
    tied = ch.beam_search(_Fixed(table), tokens, tokens, trie, 1, constrained=True)
    assert free.tolist() == [[-1]]
    assert tied.tolist() == [[0]]


# ---------------------------------------------------------------- bad input


def test_bad_inputs():
    with pytest.raises(ValueError, match="variant"):
        ch.Config(variant="hash")
    with pytest.raises(ValueError, match="tokenizers must include"):
        ch.Config(tokenizers=("rq_kmeans",))
    with pytest.raises(ValueError, match="n_eval_users"):
        ch.Config(n_eval_users=10_000)
    with pytest.raises(TypeError, match="constrained"):
        ch.Config(constrained=1)
    with pytest.raises(ValueError, match="tokenizer"):
        ch.itemic_codes(np.zeros((4, 2)), (2,), "vq_vae")
    with pytest.raises(ValueError, match="codebook_sizes"):
        ch.itemic_codes(np.zeros((4, 2)), (9,), "rq_kmeans")
    with pytest.raises(ValueError, match="unique"):
        ch.CodeTrie(np.array([[0, 1], [0, 1]]))
    with pytest.raises(ValueError, match="items must lie"):
        ch.to_tokens(np.array([[5]]), np.array([[0], [1]]))
    with pytest.raises(ValueError, match="p_top"):
        ch.make_sessions(np.arange(4), p_top=1.5)
    with pytest.raises(TypeError, match="config"):
        ch.run_experiment({"n_seeds": 1})
    with pytest.raises(ValueError, match="d_model"):
        ch.ItemicLM(10, 2, 8, d_model=5, n_heads=2)
    with pytest.raises(ValueError, match="depth"):
        ch.group_cohesion(np.zeros((3, 2), dtype=int), np.zeros(3, dtype=int), 3)
    with pytest.raises(ValueError, match="labels"):
        ch.group_cohesion(np.zeros((3, 2), dtype=int), np.zeros(4, dtype=int), 1)
    with pytest.raises(ValueError, match="no trained models"):
        ch.decode_held_out(ch.Result(ch.Config(), ()), "random")
    with pytest.raises(TypeError, match="result"):
        ch.decode_held_out({}, "random")

"""Factual consistency of explanations (arXiv 2512.24366): metrics, bad input, claim."""

from dataclasses import replace

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.recommendation_retrieval import factual_consistency_explanations as ch


@pytest.fixture(scope="module")
def cache():
    """One MiniLM cache for the whole module (the model loads once)."""
    return ch.EmbeddingCache()


@pytest.fixture(scope="module")
def result(cache):
    """The chapter's default experiment (under a second once MiniLM is loaded)."""
    return ch.run_experiment(ch.Config(), cache)


@pytest.fixture(scope="module")
def bank():
    return ch.sentence_bank()


def _random_triplets(rng, n, k, p_empty=0.2):
    topic = rng.integers(0, len(ch.ASPECTS), size=(n, k))
    sentiment = rng.choice([-1, 1], size=(n, k))
    empty = rng.random((n, k)) < p_empty
    empty[:, 0] = False  # at least one statement per row
    return np.where(empty, -1, topic), np.where(empty, 0, sentiment)


def _label_reference(ht, hs, pt, ps):
    """The judge's rule, written out one pair at a time."""
    n, k = ht.shape
    out = np.zeros((n, k, pt.shape[1]), dtype=np.int64)
    for r in range(n):
        for i in range(k):
            for j in range(pt.shape[1]):
                if ht[r, i] < 0 or ht[r, i] != pt[r, j]:
                    out[r, i, j] = ch.NEUTRAL
                elif hs[r, i] == ps[r, j]:
                    out[r, i, j] = ch.ENTAIL
                else:
                    out[r, i, j] = ch.CONTRADICT
    return out


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_statement_precision(result):
    ch.check_claim(result)


def test_claim_fails_for_similarity_baseline(result, cache):
    baseline = ch.run_experiment(ch.Config(variant="similarity"), cache)
    with pytest.raises(ClaimFailed, match="BERTScore stand-in"):
        ch.check_claim(baseline)


def test_claim_fails_at_text_level(result):
    text = replace(result, config=replace(result.config, variant="text_level"))
    with pytest.raises(ClaimFailed, match="text-level precision"):
        ch.check_claim(text)


def test_claim_fails_when_support_ignores_sentiment(result):
    blind = replace(result, config=replace(result.config, variant="sentiment_blind"))
    with pytest.raises(ClaimFailed, match="sentiment ignored"):
        ch.check_claim(blind)


def test_claim_fails_when_similarity_moves(result):
    """Part 2 needs the similarity to stay flat: a spread-out one fails it."""
    spread = replace(result, similarity=np.linspace(0.9, 0.2, result.rates.size))
    with pytest.raises(ClaimFailed, match="similarity spans"):
        ch.check_claim(spread)


def test_result_numbers_are_consistent(result):
    rates = result.rates
    assert np.all(np.diff(result.precision) < 0)
    assert np.all(np.diff(result.similarity) < 0)  # it moves, just not far
    assert result.extraction_accuracy == pytest.approx(0.95, abs=0.01)
    # with a max over ground-truth statements, neutral ones hide contradictions
    np.testing.assert_allclose(result.coherence, result.precision)
    np.testing.assert_allclose(result.faithful_share.mean(axis=1), 1 - rates, atol=0.03)
    assert result.metric("statement") == pytest.approx(result.precision)
    assert result.spearman["statement"].shape == (result.config.n_bootstrap,)


# ------------------------------------------------------------- the mechanism


def test_sentence_bank_is_complete_and_distinct(bank):
    assert len(bank.texts) == len(set(bank.texts)) == 72
    for a in range(len(ch.ASPECTS)):
        for sign in (-1, 1):
            for style in (0, 1):
                assert bank.ids(a, sign, style).size == 3


def test_reviews_state_the_items_true_sentiments(bank):
    rng = np.random.default_rng(0)
    reviews = ch.make_reviews(bank, 20, 200, rng)
    mask = reviews.mask
    lengths = mask.sum(axis=1)
    assert lengths.min() >= 2 and lengths.max() <= 4
    ids = reviews.sentence_ids[mask]
    np.testing.assert_array_equal(bank.topic[ids], reviews.topic[mask])
    np.testing.assert_array_equal(bank.sentiment[ids], reviews.sentiment[mask])
    assert np.all(bank.style[ids] == 0)
    for r in range(200):
        topics = reviews.topic[r][mask[r]]
        assert len(set(topics)) == topics.size
        truth = reviews.item_sentiment[reviews.item[r], topics]
        np.testing.assert_array_equal(truth, reviews.sentiment[r][mask[r]])
    assert len(reviews.texts(bank)) == 200


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_explanations_plant_what_they_say(bank, p):
    rng = np.random.default_rng(1)
    reviews = ch.make_reviews(bank, 30, 400, rng)
    expl = ch.generate_explanations(bank, reviews, p, rng)
    topic, sentiment = bank.topic[expl.sentence_ids], bank.sentiment[expl.sentence_ids]
    assert np.all(bank.style[expl.sentence_ids] == 1)
    labels = ch.nli_labels(topic, sentiment, reviews.topic, reviews.sentiment)
    best = labels.max(axis=2)
    assert np.all(best[expl.kind == 0] == ch.ENTAIL)
    assert np.all(best[expl.kind == 2] == ch.NEUTRAL)
    assert np.all(labels.min(axis=2)[expl.kind == 1] == ch.CONTRADICT)
    assert np.all(best[expl.kind == 1] != ch.ENTAIL)
    assert np.mean(expl.kind > 0) == pytest.approx(p, abs=0.04)


def test_extraction_error_rate(bank):
    rng = np.random.default_rng(2)
    ids = rng.integers(-1, len(bank.texts), size=(2000, 3))
    ids[:, 0] = np.maximum(ids[:, 0], 0)
    present = ids >= 0
    topic, sentiment = ch.extract_triplets(bank, ids, 0.0, rng)
    np.testing.assert_array_equal(topic[present], bank.topic[ids[present]])
    assert np.all(topic[~present] == -1) and np.all(sentiment[~present] == 0)
    topic, sentiment = ch.extract_triplets(bank, ids, 0.3, rng)
    wrong = (topic != bank.topic[ids]) | (sentiment != bank.sentiment[ids])
    assert wrong[present].mean() == pytest.approx(0.3, abs=0.02)
    assert np.all(topic[~present] == -1) and np.all(sentiment[~present] == 0)


def test_nli_labels_match_pairwise_rule():
    rng = np.random.default_rng(3)
    ht, hs = _random_triplets(rng, 50, 3)
    pt, ps = _random_triplets(rng, 50, 4)
    np.testing.assert_array_equal(
        ch.nli_labels(ht, hs, pt, ps), _label_reference(ht, hs, pt, ps)
    )
    blind = ch.nli_labels(ht, hs, pt, ps, use_sentiment=False)
    np.testing.assert_array_equal(blind, np.abs(_label_reference(ht, hs, pt, ps)))


def test_statement_metrics_match_loops():
    rng = np.random.default_rng(4)
    ht, hs = _random_triplets(rng, 60, 3)
    pt, ps = _random_triplets(rng, 60, 4)
    labels = ch.nli_labels(ht, hs, pt, ps)
    mask = ht >= 0
    prec, coh, text = [], [], []
    for r in range(60):
        rows = [labels[r, i] for i in range(3) if mask[r, i]]
        prec.append(np.mean([any(x == ch.ENTAIL for x in row) for row in rows]))
        coh.append(np.mean([max(row) for row in rows]))
        text.append(float(all(any(x == ch.ENTAIL for x in row) for row in rows)))
    np.testing.assert_allclose(ch.statement_precision(labels, mask), prec)
    np.testing.assert_allclose(ch.statement_coherence(labels, mask), coh)
    np.testing.assert_allclose(ch.text_level_precision(labels, mask), text)
    back = ch.nli_labels(pt, ps, ht, hs)
    recall = ch.statement_recall(back, pt >= 0)
    for r in range(60):
        gt = [j for j in range(4) if pt[r, j] >= 0]
        covered = [
            any(
                ht[r, i] == pt[r, j] and hs[r, i] == ps[r, j]
                for i in range(3)
                if ht[r, i] >= 0
            )
            for j in gt
        ]
        assert recall[r] == pytest.approx(np.mean(covered))


def test_greedy_similarity_matches_loop():
    rng = np.random.default_rng(5)
    vecs = rng.normal(size=(10, 8))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    sim = vecs @ vecs.T
    cand = rng.integers(-1, 10, size=(30, 3))
    ref = rng.integers(-1, 10, size=(30, 4))
    cand[:, 0] = np.maximum(cand[:, 0], 0)
    ref[:, 0] = np.maximum(ref[:, 0], 0)
    got = ch.greedy_similarity_f1(sim, cand, ref)
    for r in range(30):
        c, f = cand[r][cand[r] >= 0], ref[r][ref[r] >= 0]
        p = np.mean([max(sim[i, j] for j in f) for i in c])
        q = np.mean([max(sim[i, j] for i in c) for j in f])
        assert got[r] == pytest.approx(2 * p * q / (p + q))
    assert ch.greedy_similarity_f1(sim, ref, ref) == pytest.approx(np.ones(30))


def test_cache_embeds_each_string_once():
    calls = []

    def fake(texts):
        calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts])

    cache = ch.EmbeddingCache(embedder=fake)
    first = cache(["ab", "abc", "ab"])
    second = cache(["abc", "abcd"])
    assert calls == [["ab", "abc"], ["abcd"]]
    np.testing.assert_allclose(first[0], first[2])
    np.testing.assert_allclose(np.linalg.norm(second, axis=1), 1.0)


def test_minilm_scores_paraphrase_above_flip(cache, bank):
    vecs = cache(
        [
            "The battery easily lasts me a full day.",
            "Its battery lasts all day.",
            "It has a pleasant scent.",
        ]
    )
    sim = vecs @ vecs.T
    assert sim[0, 1] > sim[0, 2] + 0.3


def test_spearman_bootstrap():
    rng = np.random.default_rng(6)
    x = np.arange(50.0)
    assert np.allclose(ch.spearman_bootstrap(x, 2 * x + 1, 5, rng), 1.0)
    assert np.all(np.isnan(ch.spearman_bootstrap(x, np.ones(50), 3, rng)))
    noisy = ch.spearman_bootstrap(x, x + rng.normal(0, 30, 50), 20, rng)
    assert 0 < noisy.mean() < 1


def test_judge_example(cache):
    clean = ch.judge_example(0.0, seed=3, cache=cache)
    assert len(clean["explanation"]) == len(clean["verdict"]) == 3
    assert all(v == "faithful" for v in clean["planted"])
    assert clean["precision"] >= 2 / 3  # all true; a parse error may cost one
    bad = ch.judge_example(1.0, seed=3, cache=cache)
    assert all(k != "faithful" for k in bad["planted"])
    assert bad["precision"] <= 1 / 3
    assert 0 < bad["similarity"] < 1


# ------------------------------------------------------------------ bad input


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.Config(variant="bertscore")
    with pytest.raises(ValueError, match="n_pairs must be >= 3"):
        ch.Config(n_pairs=2)
    with pytest.raises(ValueError, match="hallucination_rates"):
        ch.Config(hallucination_rates=(0.0,))
    with pytest.raises(ValueError, match="hallucination_rates entry must be <= 1"):
        ch.Config(hallucination_rates=(0.0, 1.5))
    with pytest.raises(TypeError, match="seed must be an integer"):
        ch.Config(seed=0.5)


def test_functions_reject_bad_input(bank):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="max_len must be <= 5"):
        ch.make_reviews(bank, 5, 5, rng, max_len=6)
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        ch.make_reviews(bank, 5, 5, 0)
    reviews = ch.make_reviews(bank, 5, 5, rng)
    with pytest.raises(ValueError, match="hallucination_rate must be <= 1"):
        ch.generate_explanations(bank, reviews, 1.2, rng)
    with pytest.raises(ValueError, match="sentence_ids must lie in"):
        ch.extract_triplets(bank, [[0, 72]], 0.0, rng)
    with pytest.raises(ValueError, match="prem_topic must have 2 rows"):
        ch.nli_labels([[0], [1]], [[1], [1]], [[0]], [[1]])
    with pytest.raises(ValueError, match="hyp_mask must be a boolean"):
        ch.statement_precision(np.zeros((2, 3, 4), dtype=int), np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least one statement"):
        ch.statement_precision(np.zeros((1, 2, 2), dtype=int), np.zeros((1, 2), bool))
    with pytest.raises(ValueError, match="sentence_sim must be square"):
        ch.greedy_similarity_f1(np.ones((2, 3)), [[0]], [[0]])
    with pytest.raises(ValueError, match="ref_ids must hold at least one"):
        ch.greedy_similarity_f1(np.eye(3), [[0]], [[-1]])
    with pytest.raises(TypeError, match="not one string"):
        ch.EmbeddingCache(embedder=lambda t: np.ones((len(t), 2)))("text")
    with pytest.raises(TypeError, match="result must be a Result"):
        ch.check_claim({"precision": 1.0})
    with pytest.raises(ValueError, match="metric must hold at least 3"):
        ch.spearman_bootstrap([1.0, 2.0], [1.0, 2.0], 2, rng)

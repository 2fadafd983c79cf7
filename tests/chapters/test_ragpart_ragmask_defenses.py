"""RAGPart & RAGMask (arXiv 2512.24268): mechanism, bad input and the claim."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.recommendation_retrieval import ragpart_ragmask_defenses as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's default experiment: three seeds (a few seconds)."""
    return ch.run_experiment(ch.Config())


@pytest.fixture(scope="module")
def baseline():
    """The same seeds with every defense replaced by the plain retriever."""
    return ch.run_experiment(ch.Config(variant="baseline"))


@pytest.fixture(scope="module")
def small():
    """A small corpus and a briefly trained retriever for unit tests."""
    rng = np.random.default_rng(7)
    corpus = ch.make_corpus(rng, n_docs=300, n_queries=20, n_entities=60)
    emb, _ = ch.train_retriever(corpus, rng, n_steps=30, batch_size=64)
    return corpus, emb


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_the_defenses(result):
    ch.check_claim(result)
    for attack in ch.ATTACKS:
        assert result.asr(attack, "none") >= 0.7


def test_claim_fails_for_the_plain_retriever(baseline):
    with pytest.raises(ClaimFailed, match="does not halve attack success"):
        ch.check_claim(baseline)


def test_claim_fails_when_ragmask_misses_the_trigger_attack(result):
    """A RAGMask that stops only query injection does not meet the claim."""
    seeds = tuple(
        ch.SeedResult(
            s.seed,
            s.recall,
            {**s.asr, "trigger": {**s.asr["trigger"], "ragmask": 0.9}},
            s.threshold,
            s.final_loss,
        )
        for s in result.seeds
    )
    with pytest.raises(ClaimFailed, match="trigger attack"):
        ch.check_claim(ch.Result(result.config, seeds, result.setup))


def test_claim_fails_when_a_defense_costs_utility(result):
    seeds = tuple(
        ch.SeedResult(
            s.seed,
            {**s.recall, "ragpart": s.recall["none"] - 0.1},
            s.asr,
            s.threshold,
            s.final_loss,
        )
        for s in result.seeds
    )
    with pytest.raises(ClaimFailed, match="benign Recall@5"):
        ch.check_claim(ch.Result(result.config, seeds, result.setup))


def test_retriever_learns_the_fragment_property(result):
    corpus, emb = result.setup.corpus, result.setup.emb
    own, other = ch.fragment_alignment(emb, corpus.docs)
    assert own > 0.6 and abs(other) < 0.1


# -------------------------------------------------------------- the mechanism


def test_info_nce_gradient_matches_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((12, 5))
    a, b = rng.integers(0, 12, (6, 4)), rng.integers(0, 12, (6, 4))
    loss, grad = ch.info_nce_loss_and_grad(emb, a, b, 0.2)
    e = torch.tensor(emb, requires_grad=True)

    def z(crops):
        s = e[torch.as_tensor(crops)].sum(dim=1)
        return s / s.norm(dim=1, keepdim=True)

    logits = z(a) @ z(b).T / 0.2
    target = torch.arange(6)
    ce = torch.nn.functional.cross_entropy
    ref = 0.5 * (ce(logits, target) + ce(logits.T, target))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-6)
    np.testing.assert_allclose(grad, e.grad.numpy(), atol=1e-6)


def test_ragpart_matches_brute_force(small):
    corpus, emb = small
    docs = ch.Docs(corpus.docs.tokens[:7], corpus.docs.lengths[:7], corpus.docs.pad)
    queries = corpus.queries[:3]
    got = ch.ragpart_scores(emb, queries, docs, n_fragments=4, subset_size=2)
    q = ch.embed(emb, queries)
    for n in range(7):
        doc = docs.doc(n)
        parts = [doc[j * doc.size // 4 : (j + 1) * doc.size // 4] for j in range(4)]
        frags = [emb[p].sum(0) / np.linalg.norm(emb[p].sum(0)) for p in parts]
        subsets = [
            np.mean([frags[i] for i in s], 0)
            for s in itertools.combinations(range(4), 2)
        ]
        want = np.mean([q @ u / np.linalg.norm(u) for u in subsets], axis=0)
        np.testing.assert_allclose(got[:, n], want, atol=1e-5)


def test_ragpart_with_one_fragment_is_the_plain_retriever(small):
    corpus, emb = small
    np.testing.assert_allclose(
        ch.ragpart_scores(emb, corpus.queries, corpus.docs, 1, 1),
        ch.plain_scores(emb, corpus.queries, corpus.docs),
        atol=1e-5,
    )


def test_ragmask_shift_matches_reembedding(small):
    corpus, emb = small
    docs = ch.Docs(corpus.docs.tokens[:5], corpus.docs.lengths[:5], corpus.docs.pad)
    qv = ch.embed(emb, corpus.queries[:5])
    shifts, masked, drops = ch.ragmask_shifts(emb, qv, docs, n_mask=3)
    for n in range(5):
        doc = docs.doc(n)
        top = np.argsort(-drops[n], kind="stable")[:3]
        # Repeated words tie; the masked set must hold the three largest drops.
        np.testing.assert_allclose(np.sort(drops[n, masked[n]]), np.sort(drops[n, top]))
        kept = np.delete(doc, masked[n])
        full = ch.embed(emb, doc[None])[0] @ qv[n] / np.linalg.norm(qv[n])
        rest = ch.embed(emb, kept[None])[0] @ qv[n] / np.linalg.norm(qv[n])
        assert shifts[n] == pytest.approx(full - rest, abs=1e-5)


def test_ragmask_flags_concentrated_relevance_not_spread_relevance(small):
    corpus, emb = small
    q = corpus.queries[:1]
    poisoned = np.concatenate([q[0], corpus.payload_words[:10]])[None]
    gold = corpus.docs.tokens[corpus.gold[:1]]
    qv = ch.embed(emb, q)
    for tokens, expect_large in ((poisoned, True), (gold, False)):
        docs = ch.Docs(
            tokens.astype(np.int32), np.array([tokens.shape[1]]), corpus.docs.pad
        )
        shift = ch.ragmask_shifts(emb, qv, docs, n_mask=2)[0][0]
        assert (shift > 0.2) == expect_large


def test_trigger_search_raises_similarity_and_uses_distinct_words(small):
    corpus, emb = small
    rng = np.random.default_rng(1)
    qvecs = ch.embed(emb, corpus.queries[:3])
    payloads = np.tile(corpus.payload_words[:8], (3, 1))
    trig = ch.trigger_search(emb, qvecs, payloads, 4, rng, n_vocab=corpus.n_vocab)
    assert trig.shape == (3, 4)
    assert all(len(set(row.tolist())) == 4 for row in trig)
    found = np.einsum("bd,bd->b", ch.embed(emb, np.hstack([trig, payloads])), qvecs)
    randoms = rng.integers(0, corpus.n_vocab, (50, 4))
    docs = np.hstack([randoms, np.tile(payloads[0], (50, 1))])
    assert (found > (ch.embed(emb, docs) @ qvecs.T).max(axis=0)).all()


def test_trigger_search_position_is_optimal_after_its_update(small):
    """Brute force: the last position visited holds the best word given the rest."""
    corpus, emb = small
    qvec = ch.embed(emb, corpus.queries[:1])
    payload = corpus.payload_words[None, :6]
    trig = ch.trigger_search(
        emb,
        qvec,
        payload,
        3,
        np.random.default_rng(2),
        n_vocab=corpus.n_vocab,
        n_sweeps=1,
        distinct=False,
    )[0]
    best = max(
        range(corpus.n_vocab),
        key=lambda w: (
            ch.embed(emb, np.concatenate([trig[:2], [w], payload[0]])[None])[0]
            @ qvec[0]
        ),
    )
    assert trig[2] == best


def test_attack_success_rate_by_hand():
    scores = np.array([[0.9, 0.8, 0.95, 0.1], [0.9, 0.8, 0.1, 0.7]])
    owner = np.array([0, 1])
    assert ch.attack_success_rate(scores, owner, 2, top_k=1) == 0.5
    assert ch.attack_success_rate(scores, owner, 2, top_k=3) == 1.0


def test_fragment_bounds_are_contiguous_and_balanced():
    bounds = ch.fragment_bounds(np.array([30, 14, 3]), 5)
    np.testing.assert_array_equal(bounds[0], [0, 6, 12, 18, 24, 30])
    np.testing.assert_array_equal(bounds[1], [0, 2, 5, 8, 11, 14])
    assert (np.diff(bounds, axis=1) >= 0).all() and (bounds[:, -1] == [30, 14, 3]).all()


def test_corpus_has_one_gold_document_per_query(small):
    corpus, _ = small
    pairs = set(zip(corpus.topic.tolist(), corpus.entity.tolist(), strict=True))
    assert len(pairs) == len(corpus.docs)
    for query, gold in zip(corpus.queries, corpus.gold, strict=True):
        assert query[0] == corpus.entity[gold]
        assert set(query[1:]) <= set(corpus.docs.doc(gold).tolist())
    assert not np.isin(corpus.docs.tokens, corpus.payload_words).any()


# ------------------------------------------------------------------ bad input


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.Config(variant="none")
    with pytest.raises(ValueError, match="subset_size must be <= 5"):
        ch.Config(subset_size=6)
    with pytest.raises(TypeError, match="seeds must be a non-empty tuple"):
        ch.Config(seeds=[0, 1])
    with pytest.raises(ValueError, match="calib_quantile must be <= 1"):
        ch.Config(calib_quantile=1.5)
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({"seeds": (0,)})


def test_bad_arguments_are_rejected(small):
    corpus, emb = small
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="entity_repeats must be < doc_len"):
        ch.make_corpus(rng, doc_len=5, entity_repeats=5)
    with pytest.raises(TypeError, match="rng must be a Generator"):
        ch.make_corpus(0)
    with pytest.raises(ValueError, match="subset_size must be <= 2"):
        ch.ragpart_scores(emb, corpus.queries, corpus.docs, 2, 3)
    with pytest.raises(ValueError, match="scores must have n_benign"):
        ch.attack_success_rate(np.zeros((1, 3)), np.array([0]), 1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ch.info_nce_loss_and_grad(emb, corpus.queries, corpus.queries, 0.0)
    with pytest.raises(ValueError, match="attack must be one of"):
        ch.poison(None, ch.Config(), "hotflip", rng)

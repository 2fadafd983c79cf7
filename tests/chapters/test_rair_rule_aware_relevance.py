"""RAIR rule-aware relevance benchmark (arXiv 2512.24943): rules, subsets, claim."""

from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score

from paperlab.claims import ClaimFailed
from paperlab.recommendation_retrieval import rair_rule_aware_relevance as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's default experiment with the real MiniLM embedder (about 8 s)."""
    return ch.run_experiment(ch.Config())


@pytest.fixture(scope="module")
def random_result():
    """The same benchmark with hard and visual subsets sampled at random."""
    return ch.run_experiment(ch.Config(variant="random"))


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_rule_aware_subsets(result):
    ch.check_claim(result)


def test_claim_fails_for_randomly_sampled_subsets(random_result):
    with pytest.raises(ClaimFailed, match="visual subset"):
        ch.check_claim(random_result)


def test_random_hard_subset_alone_also_fails(result, random_result):
    """Keep the rule-built visual subset, take the random hard one: part 5 fails."""
    subsets = dict(result.subsets, hard=random_result.subsets["hard"])
    mixed = replace(result, subsets=subsets)
    with pytest.raises(ClaimFailed, match="hard subset"):
        ch.check_claim(mixed)


def test_claim_fails_when_rule_annotators_slip_often():
    config = ch.Config(n_pairs=4000, rule_slip=0.45, n_tune=500)
    bad = ch.run_experiment(config, embed_fn=_hash_embed)
    with pytest.raises(ClaimFailed, match="kappa"):
        ch.check_claim(bad)


def test_subsets_have_their_stated_properties(result):
    cat = result.catalogue
    q = cat.queries[result.pairs[:, 0]]
    general_cats = np.bincount(q[result.subsets["general"], 0], minlength=30)
    assert general_cats.max() <= result.config.n_per_category
    assert not cat.head[q[result.subsets["hard"], 0]].any()
    # visual pairs: hiding the attributes missing from the title changes the label
    vis = result.subsets["visual"]
    it = cat.items[result.pairs[vis, 1]]
    text_only = np.where(cat.in_title[result.pairs[vis, 1]], it, -1)
    assert np.all(ch.rule_labels(q[vis], text_only) != result.labels[vis])
    assert result.relabel_identical


# ------------------------------------------------------------- the mechanism


def test_rule_labels_on_hand_made_pairs():
    query = np.array(
        [
            [0, 1, -1, 2, -1, -1],  # category and brand ok, colour wrong -> partial
            [0, 1, 4, -1, -1, -1],  # model wrong -> weak
            [1, -1, -1, -1, -1, -1],  # category wrong -> irrelevant
            [0, 1, 3, 2, -1, -1],  # everything named matches -> exact
            [0, 9, -1, 7, -1, -1],  # brand and colour wrong: core rule wins -> weak
        ]
    )
    item = np.tile([0, 1, 3, 5, 0, 0], (5, 1))
    item[3, 3] = 2
    np.testing.assert_array_equal(ch.rule_labels(query, item), [2, 1, 0, 3, 1])


def test_rule_labels_match_a_brute_force_rule_chain():
    rng = np.random.default_rng(0)
    q = rng.integers(-1, 3, size=(500, 6))
    q[:, 0] = rng.integers(0, 3, size=500)
    it = rng.integers(0, 3, size=(500, 6))

    def chain(qa, ia):
        wrong = [a >= 0 and a != b for a, b in zip(qa, ia, strict=True)]
        if wrong[0]:
            return 0
        if wrong[1] or wrong[2]:
            return 1
        return 2 if any(wrong[3:]) else 3

    expected = [chain(a, b) for a, b in zip(q, it, strict=True)]
    np.testing.assert_array_equal(ch.rule_labels(q, it), expected)


def test_unknown_item_attributes_never_count_against_it():
    q = np.array([[0, 1, 2, 3, 0, 1]])
    it = np.array([[0, -1, -1, -1, -1, -1]])
    assert ch.rule_labels(q, it)[0] == 3


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 300)
    preds = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 4, 300))
    assert ch.macro_f1(labels, preds, levels="all") == pytest.approx(
        f1_score(labels, preds, labels=[0, 1, 2, 3], average="macro", zero_division=0)
    )
    # on a subset holding only some levels: average over those present in labels
    some = labels >= 1
    assert ch.macro_f1(labels[some], preds[some]) == pytest.approx(
        f1_score(labels[some], preds[some], labels=[1, 2, 3], average="macro")
    )
    assert ch.cohen_kappa(labels, preds) == pytest.approx(
        cohen_kappa_score(labels, preds)
    )
    assert ch.binary_accuracy(labels, preds) == pytest.approx(
        np.mean((labels >= 2) == (preds >= 2))
    )
    assert ch.confusion_matrix(labels, preds).sum() == 300


def test_macro_f1_ignores_levels_absent_from_the_labels():
    labels = np.array([1, 1, 2, 2, 2])
    assert ch.macro_f1(labels, labels) == pytest.approx(1.0)
    assert ch.macro_f1(labels, labels, levels="all") == pytest.approx(0.5)
    # predicting an absent level still costs recall on the level the pair has
    preds = np.array([0, 1, 2, 2, 3])
    f1_weak, f1_partial = 2 * 1 / (1 + 2), 2 * 2 / (2 + 3)
    assert ch.macro_f1(labels, preds) == pytest.approx((f1_weak + f1_partial) / 2)


def test_visual_subset_holds_only_weak_and_partial_pairs(result):
    assert set(np.unique(result.labels_of("visual")).tolist()) <= {1, 2}
    assert result.score("rule_image", "visual")[1] > 0.9


def test_probe_calls_are_public_and_match_the_hard_subset(result):
    held_out = np.ones(len(result.pairs), dtype=bool)
    held_out[np.concatenate(list(result.subsets.values()))] = False
    tune = np.flatnonzero(held_out)[: result.config.n_tune]
    probes = ch.probe_calls(result.catalogue, result.pairs, result.labels, tune)
    assert probes.shape == (len(result.pairs), 2) and probes.dtype == bool
    # the hard subset's pairs are ones the probes disagree on (tuned on other pairs
    # than run_experiment's, so allow a small share of changed calls)
    hard = result.subsets["hard"]
    assert np.mean(probes[hard, 0] != probes[hard, 1]) > 0.8


def test_binary_accuracy_bounds_four_level_accuracy():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 200)
    preds = rng.integers(0, 4, 200)
    assert ch.binary_accuracy(labels, preds) >= np.mean(labels == preds)


def test_thresholds_reproduce_label_frequencies():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 4000)
    scores = labels + rng.normal(0, 0.3, 4000)
    cuts = ch.thresholds_by_quantiles(scores, labels)
    assert np.all(np.diff(cuts) >= 0)
    predicted = np.searchsorted(cuts, scores, side="right")
    np.testing.assert_allclose(
        np.bincount(predicted, minlength=4), np.bincount(labels, minlength=4), atol=3
    )


def test_parser_misses_tail_aliases_and_image_fills_visual_fields():
    config = ch.Config(n_pairs=1000)
    cat = ch.make_catalogue(config, np.random.default_rng(4))
    text, image = ch.parse_titles(cat, False), ch.parse_titles(cat, True)
    tail_alias = cat.alias & ~cat.head[cat.items[:, 0]]
    assert tail_alias.any()
    assert np.all(text[tail_alias, 1] == len(cat.brand_names))
    assert np.all(text[~cat.in_title[:, 3], 3] == -1)
    assert np.all(image[:, 3] >= 0)  # every image shows the colour
    read_right = image[:, 3] == cat.items[:, 3]
    assert 0.8 < read_right.mean() < 1.0


def test_embedding_scores_embed_each_string_once():
    calls = []

    def counting(texts):
        calls.append(list(texts))
        return _hash_embed(texts)

    pairs = np.array([[0, 0], [0, 1], [1, 1], [1, 1]])
    scores = ch.embedding_scores(
        ["red mug", "red mug"], ["red mug", "blue lamp"], pairs, counting
    )
    assert len(calls) == 1 and sorted(calls[0]) == ["blue lamp", "red mug"]
    assert scores[0] == pytest.approx(1.0) and scores[1] < 1.0


def test_free_annotators_agree_less_than_rule_annotators():
    rng = np.random.default_rng(5)
    q = rng.integers(-1, 3, size=(2000, 6))
    q[:, 0] = 0
    it = rng.integers(0, 3, size=(2000, 6))
    it[:, 0] = np.where(rng.random(2000) < 0.85, 0, 1)
    rules = ch.annotate(q, it, "rules", 2, 0.05, rng)
    free = ch.annotate(q, it, "free", 2, 0.05, rng)
    assert np.mean(rules[0] == ch.rule_labels(q, it)) == pytest.approx(0.95, abs=0.02)
    assert ch.cohen_kappa(*rules) > ch.cohen_kappa(*free) + 0.2


# ---------------------------------------------------------------- bad input


def test_bad_config_values():
    with pytest.raises(ValueError, match="variant"):
        ch.Config(variant="shuffled")
    with pytest.raises(ValueError, match="name_probs"):
        ch.Config(name_probs=(1.0, 0.5))
    with pytest.raises(ValueError, match="n_head_categories"):
        ch.Config(n_head_categories=30)
    with pytest.raises(TypeError, match="seed"):
        ch.Config(seed=1.5)
    with pytest.raises(ValueError, match="alias_prob"):
        ch.Config(alias_prob=1.5)


def test_bad_arrays():
    with pytest.raises(ValueError, match="query_attrs"):
        ch.rule_labels(np.zeros((3, 5)), np.zeros((3, 6)))
    with pytest.raises(ValueError, match="item_attrs"):
        ch.rule_labels(np.zeros((3, 6)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="levels in 0..3"):
        ch.macro_f1([0, 1, 4], [0, 1, 2])
    with pytest.raises(ValueError, match="levels"):
        ch.macro_f1([0, 1], [0, 1], levels="four")
    with pytest.raises(TypeError, match="integer levels"):
        ch.binary_accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="at least one"):
        ch.cohen_kappa([], [])
    with pytest.raises(ValueError, match="protocol"):
        ch.annotate(np.zeros((2, 6)), np.zeros((2, 6)), "vote", 2, 0.1, None)
    with pytest.raises(TypeError, match="config"):
        ch.run_experiment({"seed": 0})
    with pytest.raises(ValueError, match="pairs"):
        ch.lexical_scores(["a"], ["b"], np.array([[0, 3]]))


def test_bad_probe_call_input(result):
    cat, pairs, labels = result.catalogue, result.pairs, result.labels
    with pytest.raises(TypeError, match="catalogue"):
        ch.probe_calls("catalogue", pairs, labels, [0, 1])
    with pytest.raises(ValueError, match="labels"):
        ch.probe_calls(cat, pairs, labels[:-1], [0, 1])
    with pytest.raises(ValueError, match="tune"):
        ch.probe_calls(cat, pairs, labels, [])
    with pytest.raises(ValueError, match="tune"):
        ch.probe_calls(cat, pairs, labels, [0, len(pairs)])
    with pytest.raises(TypeError, match="tune"):
        ch.probe_calls(cat, pairs, labels, [0.5, 1.5])


def test_bad_subset_or_model_names(result):
    with pytest.raises(ValueError, match="subset"):
        result.score("lexical", "tail")
    with pytest.raises(ValueError, match="model"):
        result.score("gpt5", "general")


def _hash_embed(texts):
    """A cheap stand-in for MiniLM: hashed bags of words, L2-normalised."""
    out = np.zeros((len(texts), 128))
    for row, text in enumerate(texts):
        for word in text.split():
            out[row, sum(map(ord, word)) % 128] += 1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)

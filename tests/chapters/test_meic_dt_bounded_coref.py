"""MEIC-DT bounded coreference (arXiv 2512.24711): mechanism, bad input and claim."""

import itertools

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.recommendation_retrieval import meic_dt_bounded_coref as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's default experiment (under a second)."""
    return ch.run_experiment(ch.Config())


def _as_variant(result, variant):
    """The same measurements, with the claim pointed at another policy."""
    config = ch.Config(variant=variant)
    return ch.Result(
        config, result.saes_weights, result.thresholds, result.f1, result.peak_kept
    )


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_the_mechanism(result):
    ch.check_claim(result)


def test_claim_fails_for_the_lru_baseline(result):
    with pytest.raises(ClaimFailed, match="above LRU"):
        ch.check_claim(_as_variant(result, "lru_recent"))


def test_claim_fails_when_the_budget_is_broken(result):
    peaks = dict(result.peak_kept, saes_irp=result.peak_kept["saes_irp"] + 1)
    broken = ch.Result(
        result.config, result.saes_weights, result.thresholds, result.f1, peaks
    )
    with pytest.raises(ClaimFailed, match="over the budget"):
        ch.check_claim(broken)


def test_both_parts_of_the_mechanism_contribute(result):
    ours = result.mean_f1("saes_irp")
    assert ours > result.mean_f1("saes_recent")  # IRP replaced by truncation
    assert ours > result.mean_f1("lru_irp")  # eviction without statistics
    assert result.mean_f1("unbounded") > ours


def test_budget_holds_and_unbounded_does_not(result):
    budget = result.config.c_max * result.config.m_max
    for v in ch.BOUNDED:
        assert result.peak_kept[v].max() <= budget
    assert result.peak_kept["unbounded"].min() == result.config.n_mentions


def test_saes_weights_favour_frequent_recent_clusters(result):
    w_count, w_age = result.saes_weights
    assert w_count > 0 and w_age > 0


# ------------------------------------------------------------- the mechanism


def test_make_document_shapes_zipf_and_bursts():
    doc = ch.make_document(np.random.default_rng(0), n_mentions=5000, burst_prob=0.5)
    assert doc.X.shape == (5000, 16) and doc.X.dtype == np.float32
    counts = np.bincount(doc.entities, minlength=40)
    assert counts[0] > counts[10] > 0  # popularity falls with rank
    repeats = np.mean(doc.entities[1:] == doc.entities[:-1])
    assert 0.5 < repeats < 0.75  # 0.5 from bursts plus chance repeats


def _brute_scores(gold, pred):
    """MUC, B-cubed and CEAF-e F1 by direct loops and permutations (tiny inputs)."""
    n = len(gold)
    K = [set(np.flatnonzero(gold == g)) for g in np.unique(gold)]
    R = [set(np.flatnonzero(pred == p)) for p in np.unique(pred)]

    def muc_side(key, response):
        num = sum(len(k) - sum(1 for r in response if k & r) for k in key)
        den = sum(len(k) - 1 for k in key)
        return num / den if den else 0.0

    def f1(p, r):
        return 2 * p * r / (p + r) if p + r else 0.0

    muc = f1(muc_side(R, K), muc_side(K, R))
    b3r = sum(len(k & r) ** 2 / len(k) for k in K for r in R) / n
    b3p = sum(len(k & r) ** 2 / len(r) for k in K for r in R) / n
    best = 0.0
    small, large = (K, R) if len(K) <= len(R) else (R, K)
    for perm in itertools.permutations(range(len(large)), len(small)):
        sim = sum(
            2 * len(small[i] & large[j]) / (len(small[i]) + len(large[j]))
            for i, j in enumerate(perm)
        )
        best = max(best, sim)
    return muc, f1(b3p, b3r), f1(best / len(R), best / len(K))


def test_metrics_match_brute_force():
    rng = np.random.default_rng(5)
    for _ in range(25):
        n = int(rng.integers(2, 9))
        gold = rng.integers(0, 4, n)
        pred = rng.integers(0, 4, n) * 7  # ids need not be contiguous
        want = _brute_scores(gold, pred)
        got = (
            ch.muc(gold, pred)[2],
            ch.b_cubed(gold, pred)[2],
            ch.ceaf_e(gold, pred)[2],
        )
        np.testing.assert_allclose(got, want, atol=1e-12)
        assert ch.conll_f1(gold, pred) == pytest.approx(100 * np.mean(want))


def test_metrics_known_values():
    gold = np.array([0, 0, 0, 1, 1])
    assert ch.conll_f1(gold, gold) == pytest.approx(100.0)
    # splitting the 3-mention entity in two loses one of its two links
    pred = np.array([0, 0, 2, 1, 1])
    p, r, _ = ch.muc(gold, pred)
    assert p == pytest.approx(1.0) and r == pytest.approx(2 / 3)


def test_fit_saes_weights_recovers_a_planted_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 2))
    y = rng.random(4000) < 1 / (1 + np.exp(-(0.3 + 1.5 * X[:, 0] - 0.8 * X[:, 1])))
    w = ch.fit_saes_weights(X, y.astype(float), ridge=0.0)
    np.testing.assert_allclose(w, [1.5, 0.8], atol=0.2)


def test_gold_cluster_features_labels():
    ent = np.array([0, 1, 0, 2, 2, 2, 1, 0, 0, 0, 0])
    feats, labels = ch.gold_cluster_features(ent, horizon=2, stride=5)
    # t=0: entity 0 (count 1, age 0), needed at t=2; t=5: 0 (count 2, age 3),
    # 1 (1, 4), 2 (3, 0), with the next two mentions 1 and 0
    np.testing.assert_allclose(np.expm1(feats), [[1, 0], [2, 3], [1, 4], [3, 0]])
    assert labels.tolist() == [1.0, 1.0, 1.0, 0.0]


def test_unbounded_stream_finds_well_separated_entities():
    doc = ch.make_document(np.random.default_rng(2), noise=0.1, n_mentions=400)
    labels, peak = ch.cluster_stream(doc.X, "unbounded", 0.7)
    assert ch.conll_f1(doc.entities, labels) > 99.0 and peak == 400


# ------------------------------------------------------------------ bad input


def test_bad_inputs_raise():
    X = np.ones((5, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.cluster_stream(X, "fifo", 0.5)
    with pytest.raises(ValueError, match="threshold must be <= 1.0"):
        ch.cluster_stream(X, "saes_irp", 1.5)
    with pytest.raises(ValueError, match="c_max must be >= 1"):
        ch.cluster_stream(X, "saes_irp", 0.5, c_max=0)
    with pytest.raises(TypeError, match="m_max must be an integer"):
        ch.cluster_stream(X, "saes_irp", 0.5, m_max=2.5)
    with pytest.raises(ValueError, match="X must contain only finite"):
        ch.cluster_stream(np.full((2, 2), np.nan), "saes_irp", 0.5)
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.Config(variant="unbounded")
    with pytest.raises(ValueError, match="burst_prob must be <= 0.99"):
        ch.Config(burst_prob=1.0)
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        ch.make_document(0)
    with pytest.raises(ValueError, match="both classes"):
        ch.fit_saes_weights(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="pred must have shape"):
        ch.conll_f1(np.zeros(3, dtype=int), np.zeros(4, dtype=int))
    with pytest.raises(TypeError, match="gold must hold integers"):
        ch.muc(np.zeros(3), np.zeros(3, dtype=int))
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({})


def test_budget_sweep_and_plots(result):
    grid = ch.budget_sweep(result, c_values=(2, 8), m_values=(1, 4), n_docs=1)
    assert grid.f1["saes_irp"].shape == (2, 2)
    assert grid.peak_kept["saes_irp"][1, 1] <= 32
    with pytest.raises(ValueError, match="c_max must be one of"):
        ch.plot_budget(grid, 3, 4)
    import matplotlib.pyplot as plt

    plt.close(ch.plot_budget(grid, 8, 4))
    plt.close(ch.plot_results(result))

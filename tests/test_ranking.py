"""Tests of paperlab.ranking against scikit-learn's implementations."""

import numpy as np
import pytest
from sklearn.metrics import ndcg_score, top_k_accuracy_score

from paperlab.ranking import hit_rate_at_k, ndcg_at_k, rank_of_targets, recall_at_k


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 5, 10])
def test_metrics_match_sklearn(seed, k):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(40, 30))
    targets = rng.integers(0, 30, size=40)
    ranks = rank_of_targets(scores, targets)
    onehot = np.zeros_like(scores)
    onehot[np.arange(40), targets] = 1.0
    assert ndcg_at_k(ranks, k) == pytest.approx(ndcg_score(onehot, scores, k=k))
    expected = top_k_accuracy_score(targets, scores, k=k, labels=np.arange(30))
    assert recall_at_k(ranks, k) == pytest.approx(expected)
    assert hit_rate_at_k(ranks, k) == recall_at_k(ranks, k)


def test_rank_counts_ties_against_the_target():
    scores = np.zeros((2, 4))
    assert rank_of_targets(scores, np.array([0, 3])).tolist() == [3, 3]


def test_rank_excludes_history_but_never_the_target():
    scores = np.array([[5.0, 4.0, 3.0, 2.0]])
    exclude = np.array([[True, True, True, False]])
    assert rank_of_targets(scores, np.array([3]), exclude).tolist() == [0]
    assert rank_of_targets(scores, np.array([2]), exclude).tolist() == [0]


def test_ndcg_of_top_and_second_rank():
    assert ndcg_at_k(np.array([0]), 10) == 1.0
    assert ndcg_at_k(np.array([1]), 10) == pytest.approx(1 / np.log2(3))
    assert ndcg_at_k(np.array([10]), 10) == 0.0


@pytest.mark.parametrize(
    ("scores", "targets", "match"),
    [
        (np.zeros(3), np.array([0]), "scores"),
        (np.zeros((2, 3)), np.array([0]), "targets"),
        (np.zeros((1, 3)), np.array([3]), "targets must lie"),
        (np.full((1, 3), np.nan), np.array([0]), "NaN"),
        (np.zeros((1, 3)), np.array([0.5]), "targets"),
    ],
)
def test_rank_rejects_bad_input(scores, targets, match):
    with pytest.raises(ValueError, match=match):
        rank_of_targets(scores, targets)


@pytest.mark.parametrize("scores", [np.ones((1, 3), dtype=bool), np.ones((1, 3)) * 1j])
def test_rank_rejects_non_real_scores(scores):
    with pytest.raises(TypeError, match="scores must be real"):
        rank_of_targets(scores, np.array([0]))


def test_metrics_reject_bad_ranks_and_k():
    with pytest.raises(ValueError, match="k"):
        recall_at_k(np.array([0]), 0)
    with pytest.raises(ValueError, match="at least one"):
        ndcg_at_k(np.array([], dtype=int), 5)
    with pytest.raises(ValueError, match=">= 0"):
        ndcg_at_k(np.array([-1]), 5)

"""Ranking metrics for recommendation and retrieval: rank, Recall@K, HR@K, NDCG@K.

The chapters of part 1 score a whole catalogue (or a whole corpus) per query and ask
where the held-out item lands. With one relevant item per query, as in leave-last-out
next-item evaluation, Recall@K and the hit rate HR@K are the same number: the share of
queries whose item ranks in the top K. NDCG@K with one relevant item is
``1 / log2(rank + 2)`` when the 0-based rank is below K and 0 otherwise (the ideal DCG
is 1). The tests check both against ``sklearn.metrics.ndcg_score`` and
``top_k_accuracy_score`` on random scores.

Ties are broken pessimistically: an item tied with the target counts as ranked above
it, so a model that scores everything equally gets the worst rank, not the best.
"""

from __future__ import annotations

import numpy as np

from paperlab.validation import check_array, check_int

__all__ = ["hit_rate_at_k", "ndcg_at_k", "rank_of_targets", "recall_at_k"]


def rank_of_targets(
    scores: np.ndarray, targets: np.ndarray, exclude: np.ndarray | None = None
) -> np.ndarray:
    """0-based rank of each query's target item among all items, higher score first.

    Parameters
    ----------
    scores : numpy.ndarray
        Shape ``(n_queries, n_items)``, the model's score for every item.
    targets : numpy.ndarray
        Shape ``(n_queries,)``, integer index of the held-out item per query.
    exclude : numpy.ndarray, optional
        Boolean mask of shape ``(n_queries, n_items)``: items not to rank (for example
        those already in the user's history). The target itself is never excluded.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_queries,)``, int64: how many candidate items score at least as high
        as the target (ties count against it), so 0 is the top of the list.

    Raises
    ------
    ValueError
        On shape mismatch, NaN scores or target indices out of range.
    """
    scores = check_array("scores", scores, ndim=2)
    if scores.dtype == bool or not (
        np.issubdtype(scores.dtype, np.floating)
        or np.issubdtype(scores.dtype, np.integer)
    ):
        raise TypeError(f"scores must be real numbers, got dtype {scores.dtype}")
    n_queries, n_items = scores.shape
    if np.isnan(scores).any():
        raise ValueError("scores must not contain NaN")
    targets = np.asarray(targets)
    if targets.shape != (n_queries,) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(
            f"targets must be integers of shape ({n_queries},), "
            f"got {targets.dtype} of shape {targets.shape}"
        )
    if n_queries and (targets.min() < 0 or targets.max() >= n_items):
        raise ValueError(f"targets must lie in [0, {n_items}), got values outside")
    rows = np.arange(n_queries)
    target_scores = scores[rows, targets]
    at_least = scores >= target_scores[:, None]
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=bool)
        if exclude.shape != scores.shape:
            raise ValueError(
                f"exclude must have shape {scores.shape}, got {exclude.shape}"
            )
        at_least &= ~exclude
        at_least[rows, targets] = True
    return at_least.sum(axis=1).astype(np.int64) - 1


def _check_ranks(ranks: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or not np.issubdtype(ranks.dtype, np.integer):
        raise ValueError(f"ranks must be a 1-D integer array, got {ranks.dtype}")
    if ranks.size == 0:
        raise ValueError("ranks must hold at least one query, got none")
    if ranks.min() < 0:
        raise ValueError("ranks are 0-based and must be >= 0")
    return ranks, check_int("k", k, minimum=1)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Share of queries whose single relevant item ranks in the top ``k``.

    Parameters
    ----------
    ranks : numpy.ndarray
        0-based ranks, e.g. from :func:`rank_of_targets`.
    k : int
        List length, at least 1.

    Returns
    -------
    float
        Recall@K in [0, 1]; equal to HR@K with one relevant item per query.
    """
    ranks, k = _check_ranks(ranks, k)
    return float(np.mean(ranks < k))


def hit_rate_at_k(ranks: np.ndarray, k: int) -> float:
    """HR@K, the name sequential-recommendation papers use for :func:`recall_at_k`."""
    return recall_at_k(ranks, k)


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """Mean NDCG@K over queries with one relevant item each.

    Parameters
    ----------
    ranks : numpy.ndarray
        0-based ranks of the relevant item.
    k : int
        Cut-off, at least 1.

    Returns
    -------
    float
        Mean of ``1 / log2(rank + 2)`` for ranks below ``k`` (0 otherwise).
    """
    ranks, k = _check_ranks(ranks, k)
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(gains.mean())

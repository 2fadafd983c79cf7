"""Kernel of the sequential-interaction generator shared by part 1's chapters.

:func:`sample_sessions` walks every user's category Markov chain step by step (each step
depends on the previous category, so the walk does not vectorise across time), picks an
item inside the category by popularity and replaces the interaction by a uniformly
random item with probability ``p_noise``. All randomness comes in as pre-drawn uniform
numbers, so the kernel and its plain-Python reference produce identical logs and the
caller's ``numpy.random.Generator`` alone fixes the result.
"""

from __future__ import annotations

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = ["benchmarks", "sample_sessions", "sample_sessions_reference"]


@numba.njit(cache=True)
def _draw(cdf, lo, hi, u):
    """First index in ``[lo, hi)`` whose cumulative weight exceeds ``u`` (else hi-1)."""
    a, b = lo, hi - 1
    while a < b:
        mid = (a + b) // 2
        if cdf[mid] > u:
            b = mid
        else:
            a = mid + 1
    return a


@numba.njit(cache=True)
def sample_sessions(
    trans_cdf, span_of_step, first_category, cat_offsets, cat_items, item_cdf, p_noise,
    uniforms,
):  # fmt: skip
    """Sample item and category sequences from a span-dependent category chain.

    Parameters
    ----------
    trans_cdf : float64[S, C, C]
        Row-wise cumulative transition probabilities of the category chain in each
        time span (each row ends at 1).
    span_of_step : int32[U, L]
        Time span of every interaction.
    first_category : int32[U]
        Category of each user's first interaction.
    cat_offsets : int64[C + 1]
        Items of category ``c`` are ``cat_items[cat_offsets[c]:cat_offsets[c + 1]]``.
    cat_items : int32[n_items]
        Item ids grouped by category.
    item_cdf : float64[n_items]
        Cumulative popularity inside each category's block (each block ends at 1).
    p_noise : float
        Probability that an interaction is replaced by a uniformly random item.
    uniforms : float64[U, L, 3]
        Pre-drawn uniform numbers in [0, 1): next category, item, noise decision.

    Returns
    -------
    items, categories : int32[U, L]
        The item of every interaction and the category the chain was in. A noise item
        keeps the chain's category in ``categories`` (the chain continues from it).
    """
    n_users, seq_len = span_of_step.shape
    n_items = cat_items.shape[0]
    items = np.empty((n_users, seq_len), dtype=np.int32)
    cats = np.empty((n_users, seq_len), dtype=np.int32)
    for u in range(n_users):
        cat = first_category[u]
        for t in range(seq_len):
            if t > 0:
                row = trans_cdf[span_of_step[u, t], cat]
                cat = _draw(row, 0, row.shape[0], uniforms[u, t, 0])
            cats[u, t] = cat
            if uniforms[u, t, 2] < p_noise:
                pick = int(uniforms[u, t, 1] * n_items)
                items[u, t] = cat_items[min(pick, n_items - 1)]
            else:
                lo, hi = cat_offsets[cat], cat_offsets[cat + 1]
                items[u, t] = cat_items[_draw(item_cdf, lo, hi, uniforms[u, t, 1])]
    return items, cats


def _draw_reference(cdf, lo, hi, u):
    for index in range(lo, hi):
        if cdf[index] > u:
            return index
    return hi - 1


def sample_sessions_reference(
    trans_cdf, span_of_step, first_category, cat_offsets, cat_items, item_cdf, p_noise,
    uniforms,
):  # fmt: skip
    """Plain-Python :func:`sample_sessions` (linear search instead of bisection)."""
    n_users, seq_len = span_of_step.shape
    n_items = len(cat_items)
    items = np.empty((n_users, seq_len), dtype=np.int32)
    cats = np.empty((n_users, seq_len), dtype=np.int32)
    for u in range(n_users):
        cat = int(first_category[u])
        for t in range(seq_len):
            if t > 0:
                row = trans_cdf[span_of_step[u, t], cat]
                cat = _draw_reference(row, 0, len(row), uniforms[u, t, 0])
            cats[u, t] = cat
            if uniforms[u, t, 2] < p_noise:
                pick = int(uniforms[u, t, 1] * n_items)
                items[u, t] = cat_items[min(pick, n_items - 1)]
            else:
                lo, hi = cat_offsets[cat], cat_offsets[cat + 1]
                index = _draw_reference(item_cdf, lo, hi, uniforms[u, t, 1])
                items[u, t] = cat_items[index]
    return items, cats


def random_session_inputs(
    n_users: int, seq_len: int, n_cats: int, n_items: int, n_spans: int, seed: int
):
    """Random valid inputs for :func:`sample_sessions` (tests and benchmarks)."""
    rng = np.random.default_rng(seed)
    trans = rng.random((n_spans, n_cats, n_cats)) + 1e-3
    trans_cdf = np.cumsum(trans / trans.sum(axis=2, keepdims=True), axis=2)
    trans_cdf[..., -1] = 1.0
    item_cat = np.sort(rng.integers(0, n_cats, n_items))
    item_cat[:n_cats] = np.arange(n_cats)
    item_cat.sort()
    cat_items = np.argsort(item_cat, kind="stable").astype(np.int32)
    counts = np.bincount(item_cat, minlength=n_cats)
    cat_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    weights = rng.random(n_items) + 1e-3
    item_cdf = np.empty(n_items)
    for c in range(n_cats):
        block = weights[cat_offsets[c] : cat_offsets[c + 1]]
        item_cdf[cat_offsets[c] : cat_offsets[c + 1]] = np.cumsum(block / block.sum())
        item_cdf[cat_offsets[c + 1] - 1] = 1.0
    spans = rng.integers(0, n_spans, (n_users, seq_len)).astype(np.int32)
    first = rng.integers(0, n_cats, n_users).astype(np.int32)
    uniforms = rng.random((n_users, seq_len, 3))
    return trans_cdf, spans, first, cat_offsets, cat_items, item_cdf, 0.2, uniforms


def benchmarks() -> list[BenchCase]:
    """3,000 users x 20 steps, 12 categories, 400 items (the TASIF chapter's size)."""
    args = random_session_inputs(3000, 20, 12, 400, 12, seed=0)
    sample_sessions(*args)
    return [
        BenchCase(
            name="sample_sessions",
            size="users=3000, steps=20, categories=12, items=400",
            kernel=lambda: sample_sessions(*args),
            reference=lambda: sample_sessions_reference(*args),
        )
    ]

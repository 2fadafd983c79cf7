"""Kernel of bounded incremental clustering for coreference (the MEIC-DT chapter).

Luo et al., "MEIC-DT: Memory-Efficient Incremental Clustering for Long-Text
Coreference Resolution with Dual-Threshold Constraints", arXiv 2512.24711.

Mentions arrive one at a time, in reading order, and each decision depends on the
cache left by the previous one, so the loop cannot be vectorised over mentions.
:func:`incremental_cluster_stream` runs the whole stream in one compiled pass.

The cache
---------
The cache holds at most ``c_max`` live clusters (the first threshold) and, per
cluster, at most ``m_max`` kept mentions (the second threshold). A cluster's score for
a mention is the cosine between the mention and the mean of the cluster's *kept*
mentions, so the scorer never reads more than ``c_max * m_max`` mention vectors.
Besides its kept mentions, each live cluster carries three constant-size statistics:
how many mentions it has received, when it last received one, and the running sum of
all of them (its full centroid, used by the retention rule).

Policies
--------
``evict_code`` chooses which live cluster leaves when a new cluster needs a slot:

- ``EVICT_LRU`` (0): the cluster whose last mention is oldest;
- ``EVICT_SAES`` (1): the cluster with the lowest keep score
  ``stats[0] * log(1 + count) - stats[1] * log(1 + age)``, where ``age`` is the
  number of mentions since its last one.

``retain_code`` chooses which mention a full cluster drops when it receives one more:

- ``RETAIN_RECENT`` (0): the oldest kept mention (keep the most recent ``m_max``);
- ``RETAIN_IRP`` (1): the candidate farthest (squared Euclidean) from the cluster's
  full centroid (keep the ``m_max`` most central ones).

Ties go to the lowest slot or the earliest mention. Both functions below perform the
same floating-point operations in the same order, so they return identical labels.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = [
    "EVICT_LRU",
    "EVICT_SAES",
    "RETAIN_RECENT",
    "RETAIN_IRP",
    "incremental_cluster_stream",
    "incremental_cluster_stream_reference",
    "benchmarks",
]

EVICT_LRU = 0
EVICT_SAES = 1
RETAIN_RECENT = 0
RETAIN_IRP = 1


@numba.njit(cache=True)
def _best_slot(x, x_norm2, kept_sum, kept_len, active, n_slots):
    """Slot of highest cosine to ``x`` among live clusters, and that cosine."""
    best, best_cos = -1, -np.inf
    for s in range(n_slots):
        if not active[s] or kept_len[s] == 0:
            continue
        dot, norm2 = 0.0, 0.0
        for j in range(x.shape[0]):
            dot += x[j] * kept_sum[s, j]
            norm2 += kept_sum[s, j] * kept_sum[s, j]
        denom = math.sqrt(x_norm2 * norm2)
        cos = dot / denom if denom > 0.0 else -1.0
        if cos > best_cos:
            best, best_cos = s, cos
    return best, best_cos


@numba.njit(cache=True)
def _victim_slot(active, count, last, n_slots, t, evict_code, stats):
    """The live cluster to evict (see the module docstring for the policies)."""
    victim, worst = -1, np.inf
    for s in range(n_slots):
        if not active[s]:
            continue
        if evict_code == EVICT_LRU:
            score = float(last[s])
        else:
            age = float(t - last[s])
            score = stats[0] * math.log(1.0 + count[s]) - stats[1] * math.log(1.0 + age)
        if score < worst:
            victim, worst = s, score
    return victim


@numba.njit(cache=True)
def _drop_position(X, s, t, kept, kept_len, full_sum, count, retain_code):
    """Which of the kept mentions and the new mention ``t`` (position ``kept_len``)
    to drop when slot ``s`` is full."""
    n_kept = kept_len[s]
    if retain_code == RETAIN_RECENT:
        drop, oldest = 0, kept[s, 0]
        for p in range(1, n_kept):
            if kept[s, p] < oldest:
                drop, oldest = p, kept[s, p]
        return drop
    d = X.shape[1]
    drop, far = -1, -1.0
    for p in range(n_kept + 1):
        i = kept[s, p] if p < n_kept else t
        dist = 0.0
        for j in range(d):
            diff = float(X[i, j]) - full_sum[s, j] / count[s]
            dist += diff * diff
        if dist > far:
            drop, far = p, dist
    return drop


@numba.njit(cache=True)
def incremental_cluster_stream(
    X, c_max, m_max, threshold, evict_code, retain_code, stats
):
    """Cluster a mention stream with at most ``c_max`` clusters of ``m_max`` mentions.

    Parameters
    ----------
    X : ndarray of float32, shape (n, d)
        Mention vectors in reading order.
    c_max : int
        Most live clusters in the cache (at least 1; ``>= n`` means unbounded).
    m_max : int
        Most kept mentions per cluster (at least 1; ``>= n`` means unbounded).
    threshold : float
        A mention joins its best cluster when their cosine is at least this, else it
        opens a new cluster.
    evict_code, retain_code : int
        Policies, see the module docstring.
    stats : ndarray of float64, shape (2,)
        SAES weights ``(w_count, w_age)`` (unused by LRU).

    Returns
    -------
    labels : ndarray of int32, shape (n,)
        Cluster id of each mention, numbered in order of creation.
    peak_kept : int
        Most mention vectors held in the cache at any time.
    """
    n, d = X.shape
    n_slots = max(1, min(c_max, n))
    cap = max(1, min(m_max, n))
    labels = np.empty(n, dtype=np.int32)
    kept = np.zeros((n_slots, cap + 1), dtype=np.int64)
    kept_len = np.zeros(n_slots, dtype=np.int64)
    kept_sum = np.zeros((n_slots, d))
    full_sum = np.zeros((n_slots, d))
    count = np.zeros(n_slots, dtype=np.int64)
    last = np.zeros(n_slots, dtype=np.int64)
    cluster_id = np.zeros(n_slots, dtype=np.int64)
    active = np.zeros(n_slots, dtype=np.bool_)
    n_active, next_id, total_kept, peak = 0, 0, 0, 0
    x = np.empty(d)
    for t in range(n):
        x_norm2 = 0.0
        for j in range(d):
            x[j] = X[t, j]
            x_norm2 += x[j] * x[j]
        s, cos = _best_slot(x, x_norm2, kept_sum, kept_len, active, n_slots)
        if s < 0 or not cos >= threshold:
            if n_active < n_slots:
                s = n_active
                n_active += 1
            else:
                s = _victim_slot(active, count, last, n_slots, t, evict_code, stats)
                total_kept -= kept_len[s]
            active[s] = True
            kept_len[s], count[s] = 0, 0
            for j in range(d):
                kept_sum[s, j] = 0.0
                full_sum[s, j] = 0.0
            cluster_id[s] = next_id
            next_id += 1
        labels[t] = cluster_id[s]
        count[s] += 1
        last[s] = t
        for j in range(d):
            full_sum[s, j] += x[j]
        if kept_len[s] < cap:
            kept[s, kept_len[s]] = t
            kept_len[s] += 1
            total_kept += 1
            for j in range(d):
                kept_sum[s, j] += x[j]
        else:
            p = _drop_position(X, s, t, kept, kept_len, full_sum, count, retain_code)
            if p < kept_len[s]:
                old = kept[s, p]
                for j in range(d):
                    kept_sum[s, j] += x[j] - float(X[old, j])
                for q in range(p, kept_len[s] - 1):
                    kept[s, q] = kept[s, q + 1]
                kept[s, kept_len[s] - 1] = t
        if total_kept > peak:
            peak = total_kept
    return labels, peak


def _reference_victim(active, count, last, t, evict_code, stats):
    victim, worst = -1, math.inf
    for s, live in enumerate(active):
        if not live:
            continue
        if evict_code == EVICT_LRU:
            score = float(last[s])
        else:
            age = float(t - last[s])
            score = stats[0] * math.log(1.0 + count[s]) - stats[1] * math.log(1.0 + age)
        if score < worst:
            victim, worst = s, score
    return victim


def incremental_cluster_stream_reference(
    X, c_max, m_max, threshold, evict_code, retain_code, stats
):
    """Plain-Python :func:`incremental_cluster_stream` (same arguments and results)."""
    X = np.asarray(X)
    n, d = X.shape
    rows = [[float(v) for v in row] for row in X]
    n_slots, cap = max(1, min(c_max, n)), max(1, min(m_max, n))
    labels = [0] * n
    kept = [[] for _ in range(n_slots)]
    kept_sum = [[0.0] * d for _ in range(n_slots)]
    full_sum = [[0.0] * d for _ in range(n_slots)]
    count, last, ids = [0] * n_slots, [0] * n_slots, [0] * n_slots
    active = [False] * n_slots
    n_active = next_id = total_kept = peak = 0
    for t, x in enumerate(rows):
        x_norm2 = 0.0
        for v in x:
            x_norm2 += v * v
        s, best_cos = -1, -math.inf
        for c in range(n_slots):
            if not active[c] or not kept[c]:
                continue
            dot = norm2 = 0.0
            for j in range(d):
                dot += x[j] * kept_sum[c][j]
                norm2 += kept_sum[c][j] * kept_sum[c][j]
            denom = math.sqrt(x_norm2 * norm2)
            cos = dot / denom if denom > 0.0 else -1.0
            if cos > best_cos:
                s, best_cos = c, cos
        if s < 0 or not best_cos >= threshold:
            if n_active < n_slots:
                s, n_active = n_active, n_active + 1
            else:
                s = _reference_victim(active, count, last, t, evict_code, stats)
                total_kept -= len(kept[s])
            active[s], kept[s], count[s] = True, [], 0
            kept_sum[s], full_sum[s] = [0.0] * d, [0.0] * d
            ids[s], next_id = next_id, next_id + 1
        labels[t] = ids[s]
        count[s] += 1
        last[s] = t
        for j in range(d):
            full_sum[s][j] += x[j]
        if len(kept[s]) < cap:
            kept[s].append(t)
            total_kept += 1
            for j in range(d):
                kept_sum[s][j] += x[j]
        else:
            candidates = kept[s] + [t]
            if retain_code == RETAIN_RECENT:
                drop = candidates.index(min(kept[s]))
            else:
                dists = []
                for i in candidates:
                    dist = 0.0
                    for j in range(d):
                        diff = rows[i][j] - full_sum[s][j] / count[s]
                        dist += diff * diff
                    dists.append(dist)
                drop = dists.index(max(dists))
            if drop < len(kept[s]):
                old = kept[s].pop(drop)
                for j in range(d):
                    kept_sum[s][j] += x[j] - rows[old][j]
                kept[s].append(t)
        peak = max(peak, total_kept)
    return np.array(labels, dtype=np.int32), peak


def benchmarks() -> list[BenchCase]:
    """Benchmark: one 20,000-mention stream under a 16 x 4 cache (SAES + IRP).

    No NumPy formulation exists: every decision depends on the cache state left by
    the previous mention.
    """
    rng = np.random.default_rng(0)
    protos = rng.standard_normal((60, 16))
    entities = rng.integers(0, 60, size=20_000)
    X = (protos[entities] + 0.6 * rng.standard_normal((20_000, 16))).astype(np.float32)
    stats = np.array([1.0, 0.5])
    args = (X, 16, 4, 0.6, EVICT_SAES, RETAIN_IRP, stats)
    return [
        BenchCase(
            name="incremental_cluster_stream",
            size="n=20,000 mentions, d=16, c_max=16, m_max=4",
            kernel=lambda: incremental_cluster_stream(*args),
            reference=lambda: incremental_cluster_stream_reference(*args),
        )
    ]

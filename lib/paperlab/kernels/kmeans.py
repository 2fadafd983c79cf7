"""Nearest-centroid assignment, the inner loop of k-means and of RQ-Kmeans.

:func:`kmeans_assign` finds, for every row of ``X``, the closest row of ``C`` in
squared Euclidean distance, one row at a time, without building the ``n x k`` distance
matrix that the NumPy formulation (``|x|^2 - 2 x.c + |c|^2``) materialises.
"""

from __future__ import annotations

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = [
    "benchmarks",
    "kmeans_assign",
    "kmeans_assign_numpy",
    "kmeans_assign_reference",
]


@numba.njit(cache=True)
def kmeans_assign(X, C):
    """Index of the nearest centroid and the squared distance to it, per row.

    Parameters
    ----------
    X : float32[n, d]
        Points.
    C : float32[k, d]
        Centroids, ``k >= 1``.

    Returns
    -------
    labels : int32[n]
        Nearest centroid (the lowest index among ties).
    dist2 : float32[n]
        Squared Euclidean distance to it.
    """
    n, d = X.shape
    k = C.shape[0]
    labels = np.empty(n, dtype=np.int32)
    dist2 = np.empty(n, dtype=np.float32)
    for i in range(n):
        best = np.inf
        best_j = 0
        for j in range(k):
            acc = 0.0
            for t in range(d):
                diff = X[i, t] - C[j, t]
                acc += diff * diff
            if acc < best:
                best = acc
                best_j = j
        labels[i] = best_j
        dist2[i] = best
    return labels, dist2


def kmeans_assign_reference(X, C):
    """Plain-Python :func:`kmeans_assign`."""
    n = len(X)
    labels = np.empty(n, dtype=np.int32)
    dist2 = np.empty(n, dtype=np.float32)
    for i in range(n):
        best, best_j = float("inf"), 0
        for j in range(len(C)):
            acc = 0.0
            for t in range(len(X[i])):
                diff = float(X[i][t]) - float(C[j][t])
                acc += diff * diff
            if acc < best:
                best, best_j = acc, j
        labels[i], dist2[i] = best_j, best
    return labels, dist2


def kmeans_assign_numpy(X, C):
    """The usual NumPy formulation through the full ``n x k`` distance matrix."""
    dist = (X * X).sum(1)[:, None] - 2.0 * X @ C.T + (C * C).sum(1)[None, :]
    labels = dist.argmin(axis=1).astype(np.int32)
    return labels, np.maximum(dist[np.arange(len(X)), labels], 0.0)


def benchmarks() -> list[BenchCase]:
    """1,000 points x 32 dims against 20 centroids (one RQ-Kmeans level)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 32)).astype(np.float32)
    C = rng.normal(size=(20, 32)).astype(np.float32)
    kmeans_assign(X, C)
    return [
        BenchCase(
            name="kmeans_assign",
            size="n=1000, d=32, k=20",
            kernel=lambda: kmeans_assign(X, C),
            reference=lambda: kmeans_assign_reference(X, C),
            numpy=lambda: kmeans_assign_numpy(X, C),
        )
    ]

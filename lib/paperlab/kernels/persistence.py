"""Persistent homology of Vietoris-Rips filtrations: one-dimensional holes over Z/2.

Given the pairwise distances of a small point cloud (tens of landmarks), the
Vietoris-Rips filtration adds an edge between two points when the scale ``eps``
reaches their distance and a triangle when it reaches the longest of its three edges.
A one-dimensional hole (an H1 class) is *born* at the length of the edge that closes a
loop and *dies* at the diameter of the triangle that fills it in. The list of
(birth, death) pairs is the H1 persistence diagram; long bars are the loops of the
shape (one for a circle, two for a torus, none for a disc).

The computation is the standard column reduction of the edge-triangle boundary matrix
over the two-element field: every triangle column is added (XOR) to earlier columns
with the same lowest edge until its lowest edge is new (a pair) or it vanishes. Here
each column is a row of bits packed into 64-bit words, so one addition is a few XORs.
Before the reduction, triangles that are the last face of a tetrahedron to enter are
dropped: their boundary is the sum of the three earlier faces' boundaries, so their
column would vanish (all three implementations do this, so the timings compare like
with like; see ``_sorted_triangles``).

Functions
---------
rips_h1_z2
    The Numba kernel (with input checks).
rips_h1_z2_reference
    The same computation in plain Python, one set per column.
rips_h1_z2_numpy
    Vectorised enumeration and sorting, then the reduction on packed NumPy rows.
"""

from __future__ import annotations

import itertools
import math

import numba
import numpy as np

from paperlab.kernels import BenchCase
from paperlab.validation import check_array, check_float

__all__ = [
    "rips_h1_z2",
    "rips_h1_z2_reference",
    "rips_h1_z2_numpy",
    "benchmarks",
]

_ONE = np.uint64(1)


def _check_inputs(dist, max_eps) -> tuple[np.ndarray, float]:
    """Validate a distance matrix and a maximal scale; return them as float64."""
    dist = check_array("dist", dist, ndim=2, dtype=np.float64)
    if dist.shape[0] != dist.shape[1]:
        raise ValueError(f"dist must be a square matrix, got shape {dist.shape}")
    if np.isnan(dist).any():
        raise ValueError("dist must not contain NaN")
    if (dist < 0).any():
        raise ValueError("dist must be non-negative")
    if not np.allclose(dist, dist.T):
        raise ValueError("dist must be symmetric")
    if isinstance(max_eps, float) and math.isinf(max_eps) and max_eps > 0:
        return np.ascontiguousarray(dist), math.inf
    max_eps = check_float("max_eps", max_eps, minimum=0.0)
    return np.ascontiguousarray(dist), max_eps


# ----------------------------------------------------------------------------------
# The Numba kernel
# ----------------------------------------------------------------------------------


@numba.njit(cache=True)
def _sorted_edges(dist, max_eps):
    """Edges (i < j, length <= max_eps) sorted by length, ties in (i, j) order."""
    m = dist.shape[0]
    count = 0
    for i in range(m):
        for j in range(i + 1, m):
            if dist[i, j] <= max_eps:
                count += 1
    ei = np.empty(count, np.int64)
    ej = np.empty(count, np.int64)
    length = np.empty(count, np.float64)
    k = 0
    for i in range(m):
        for j in range(i + 1, m):
            if dist[i, j] <= max_eps:
                ei[k] = i
                ej[k] = j
                length[k] = dist[i, j]
                k += 1
    order = np.argsort(length, kind="mergesort")
    return ei[order], ej[order], length[order]


@numba.njit(cache=True)
def _sorted_triangles(m, ei, ej):
    """Triangles as rows of three edge ranks, highest rank first, in filtration order.

    A triangle enters the filtration with its longest edge, which is its edge of
    highest rank, so sorting by that rank (ties: the order of enumeration, i < j < k
    lexicographic) gives a valid filtration order.

    Triangles whose column is sure to reduce to zero are left out: if a fourth
    vertex ``v`` makes the three other faces of the tetrahedron ``t + v`` all enter
    before ``t``, the boundary of ``t`` is the sum of theirs, so ``t`` closes no
    loop. With ``(u, w)`` the longest edge of ``t`` and ``x`` its third vertex, that
    happens when the edges from ``v`` to ``u``, ``w`` and ``x`` are all shorter
    (lower rank) than ``(u, w)`` and ``v < x`` (the face ``u w v`` then comes first
    among the faces sharing the longest edge).
    """
    rank = -np.ones((m, m), np.int64)
    for r in range(ei.shape[0]):
        rank[ei[r], ej[r]] = r
        rank[ej[r], ei[r]] = r
    capacity = m * (m - 1) * (m - 2) // 6
    tri = np.empty((capacity, 3), np.int64)
    t = 0
    for i in range(m):
        for j in range(i + 1, m):
            if rank[i, j] < 0:
                continue
            for k in range(j + 1, m):
                if rank[i, k] < 0 or rank[j, k] < 0:
                    continue
                a, b, c = rank[i, j], rank[i, k], rank[j, k]
                hi = max(a, max(b, c))
                if hi == a:
                    u, w, x = i, j, k
                elif hi == b:
                    u, w, x = i, k, j
                else:
                    u, w, x = j, k, i
                cleared = False
                for v in range(x):
                    if v == u or v == w:
                        continue
                    ru, rw, rx = rank[v, u], rank[v, w], rank[v, x]
                    if 0 <= ru < hi and 0 <= rw < hi and 0 <= rx < hi:
                        cleared = True
                        break
                if cleared:
                    continue
                lo = min(a, min(b, c))
                tri[t, 0] = hi
                tri[t, 1] = a + b + c - hi - lo
                tri[t, 2] = lo
                t += 1
    tri = tri[:t]
    order = np.argsort(tri[:, 0], kind="mergesort")
    return tri[order]


@numba.njit(cache=True)
def _negative_edges(m, ei, ej):
    """Mark the edges that join two components (union-find in filtration order)."""
    parent = np.arange(m)
    negative = np.zeros(ei.shape[0], np.bool_)
    for r in range(ei.shape[0]):
        a = ei[r]
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        b = ej[r]
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        if a != b:
            parent[max(a, b)] = min(a, b)
            negative[r] = True
    return negative


@numba.njit(cache=True)
def _top_bit_of_word(word):
    """Position (0..63) of the highest set bit of a non-zero word, by halving."""
    position = 0
    for shift in (32, 16, 8, 4, 2, 1):
        if word >> np.uint64(shift):
            word >>= np.uint64(shift)
            position += shift
    return position


@numba.njit(cache=True)
def _highest_bit(column, top_word):
    """Index of the highest set bit at or below word ``top_word``; -1 if none."""
    for w in range(top_word, -1, -1):
        if column[w] != 0:
            return w * 64 + _top_bit_of_word(column[w])
    return -1


@numba.njit(cache=True)
def _reduce(n_edges, tri):
    """Z/2 column reduction; returns, per edge, the triangle that kills it (or -1)."""
    n_words = (n_edges + 63) // 64
    stored = np.zeros((n_edges, n_words), np.uint64)
    killer = -np.ones(n_edges, np.int64)
    column = np.zeros(n_words, np.uint64)
    for t in range(tri.shape[0]):
        low = tri[t, 0]
        if killer[low] < 0:
            # The first triangle with this lowest edge pairs at once (no additions).
            for e in range(3):
                r = tri[t, e]
                stored[low, r // 64] ^= _ONE << np.uint64(r % 64)
            killer[low] = t
            continue
        for w in range(low // 64 + 1):
            column[w] = 0
        for e in range(3):
            r = tri[t, e]
            column[r // 64] ^= _ONE << np.uint64(r % 64)
        while low >= 0 and killer[low] >= 0:
            for w in range(low // 64 + 1):
                column[w] ^= stored[low, w]
            low = _highest_bit(column, low // 64)
        if low >= 0:
            for w in range(low // 64 + 1):
                stored[low, w] = column[w]
            killer[low] = t
    return killer


@numba.njit(cache=True)
def _rips_h1_pairs(dist, max_eps):
    m = dist.shape[0]
    ei, ej, length = _sorted_edges(dist, max_eps)
    tri = _sorted_triangles(m, ei, ej)
    killer = _reduce(ei.shape[0], tri)
    negative = _negative_edges(m, ei, ej)
    pairs = np.empty((ei.shape[0], 2), np.float64)
    count = 0
    for r in range(ei.shape[0]):
        if negative[r]:
            continue
        birth = length[r]
        death = np.inf if killer[r] < 0 else length[tri[killer[r], 0]]
        if death > birth:
            pairs[count, 0] = birth
            pairs[count, 1] = death
            count += 1
    return pairs[:count]


def _sort_pairs(pairs: np.ndarray) -> np.ndarray:
    """Sort (birth, death) rows by birth, then death."""
    if pairs.shape[0] == 0:
        return pairs.reshape(0, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def rips_h1_z2(dist, max_eps=math.inf) -> np.ndarray:
    """H1 persistence pairs of the Vietoris-Rips filtration, over Z/2 (Numba kernel).

    Parameters
    ----------
    dist : array_like, shape (m, m)
        Symmetric matrix of non-negative pairwise distances (no NaN).
    max_eps : float
        Largest scale of the filtration; edges longer than it are left out, and a
        hole still open at ``max_eps`` is reported with death ``inf``.

    Returns
    -------
    numpy.ndarray, shape (k, 2)
        One row ``(birth, death)`` per hole of positive persistence, sorted by birth
        then death; ``death`` is ``inf`` for a hole that never closes.

    Raises
    ------
    ValueError
        If ``dist`` is not square, symmetric, non-negative and free of NaN, or
        ``max_eps`` is negative or NaN.
    TypeError
        If ``dist`` is not numeric or ``max_eps`` is not a real number.
    """
    dist, max_eps = _check_inputs(dist, max_eps)
    return _sort_pairs(_rips_h1_pairs(dist, max_eps))


# ----------------------------------------------------------------------------------
# Plain-Python reference
# ----------------------------------------------------------------------------------


def rips_h1_z2_reference(dist, max_eps=math.inf) -> np.ndarray:
    """Plain-Python :func:`rips_h1_z2`: lists, sets and a dictionary of pivots.

    Same arguments, result and errors as :func:`rips_h1_z2`.
    """
    dist, max_eps = _check_inputs(dist, max_eps)
    m = dist.shape[0]
    d = dist.tolist()
    edges = sorted(
        (d[i][j], i, j)
        for i, j in itertools.combinations(range(m), 2)
        if d[i][j] <= max_eps
    )
    rank = {}
    for r, (_, i, j) in enumerate(edges):
        rank[i, j] = rank[j, i] = r
    triangles = []
    for i, j, k in itertools.combinations(range(m), 3):
        if (i, j) in rank and (i, k) in rank and (j, k) in rank:
            boundary = {rank[i, j], rank[i, k], rank[j, k]}
            if not _is_last_face_reference(rank, (i, j, k), max(boundary), m):
                triangles.append((max(boundary), len(triangles), boundary))
    triangles.sort()

    killer = {}
    reduced = {}
    for low, _, boundary in triangles:
        column = set(boundary)
        while column and low in reduced:
            column ^= reduced[low]
            low = max(column) if column else -1
        if column:
            reduced[low] = column
            killer[low] = max(edges[r][0] for r in boundary)

    parent = list(range(m))

    def root(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    pairs = []
    for r, (length, i, j) in enumerate(edges):
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
            continue
        death = killer.get(r, math.inf)
        if death > length:
            pairs.append((length, death))
    return _sort_pairs(np.array(pairs, dtype=np.float64).reshape(-1, 2))


def _is_last_face_reference(rank: dict, triangle: tuple, top: int, m: int) -> bool:
    """Whether some tetrahedron has ``triangle`` as its last face to enter."""
    u, w, x = next(
        (p, q, o) for p, q, o in itertools.permutations(triangle) if rank[p, q] == top
    )
    for v in range(x):
        if v in (u, w):
            continue
        ranks = [rank.get((v, y), -1) for y in (u, w, x)]
        if all(0 <= r < top for r in ranks):
            return True
    return False


# ----------------------------------------------------------------------------------
# NumPy formulation
# ----------------------------------------------------------------------------------


def rips_h1_z2_numpy(dist, max_eps=math.inf) -> np.ndarray:
    """:func:`rips_h1_z2` with vectorised enumeration and NumPy-row XOR reduction.

    Edges and triangles are enumerated and sorted with array operations; the
    reduction, which is sequential, adds packed ``uint64`` rows with
    :func:`numpy.bitwise_xor`. Same arguments, result and errors.
    """
    dist, max_eps = _check_inputs(dist, max_eps)
    m = dist.shape[0]
    iu, ju = np.triu_indices(m, 1)
    keep = dist[iu, ju] <= max_eps
    iu, ju = iu[keep], ju[keep]
    order = np.argsort(dist[iu, ju], kind="stable")
    ei, ej, length = iu[order], ju[order], dist[iu, ju][order]
    n_edges = ei.size
    rank = -np.ones((m, m), np.int64)
    rank[ei, ej] = np.arange(n_edges)
    rank[ej, ei] = np.arange(n_edges)

    i, j, k = (np.asarray(x, np.int64).ravel() for x in _triples(m))
    rij, rik, rjk = rank[i, j], rank[i, k], rank[j, k]
    ok = (rij >= 0) & (rik >= 0) & (rjk >= 0)
    i, j, k, rij, rik, rjk = (x[ok] for x in (i, j, k, rij, rik, rjk))
    tri = np.sort(np.stack([rij, rik, rjk], axis=1), axis=1)[:, ::-1]
    tri = tri[~_last_faces_numpy(rank, i, j, k, rij, rik, tri[:, 0])]
    tri = tri[np.argsort(tri[:, 0], kind="stable")]

    n_words = max((n_edges + 63) // 64, 1)
    stored = np.zeros((n_edges, n_words), np.uint64)
    killer = -np.ones(n_edges, np.int64)
    bit_of = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))
    for t in range(tri.shape[0]):
        column = np.zeros(n_words, np.uint64)
        for r in tri[t]:
            column[r // 64] ^= bit_of[r % 64]
        low = int(tri[t, 0])
        while low >= 0 and killer[low] >= 0:
            np.bitwise_xor(column, stored[low], out=column)
            nonzero = np.flatnonzero(column)
            low = -1 if nonzero.size == 0 else _top_bit(column, int(nonzero[-1]))
        if low >= 0:
            stored[low] = column
            killer[low] = t

    negative = _union_find_negative(m, ei, ej)
    death = np.full(n_edges, np.inf)
    killed = killer >= 0
    death[killed] = length[tri[killer[killed], 0]]
    keep = ~negative & (death > length)
    return _sort_pairs(np.stack([length[keep], death[keep]], axis=1))


def _triples(m: int):
    """Index arrays of all i < j < k."""
    if m < 3:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    combos = np.array(list(itertools.combinations(range(m), 3)), np.int64)
    return combos[:, 0], combos[:, 1], combos[:, 2]


def _last_faces_numpy(rank, i, j, k, rij, rik, top) -> np.ndarray:
    """Vectorised ``_is_last_face_reference`` over all triangles at once."""
    u = np.where(rij == top, i, np.where(rik == top, i, j))
    w = np.where(rij == top, j, k)
    x = np.where(rij == top, k, np.where(rik == top, j, i))
    v = np.arange(rank.shape[0])[:, None]
    shorter = [(rank[v, y] >= 0) & (rank[v, y] < top) for y in (u, w, x)]
    ok = shorter[0] & shorter[1] & shorter[2] & (v < x) & (v != u) & (v != w)
    return ok.any(axis=0)


def _union_find_negative(m: int, ei: np.ndarray, ej: np.ndarray) -> np.ndarray:
    """Mark the edges that join two components, in filtration order."""
    parent = list(range(m))
    negative = np.zeros(ei.size, bool)
    for r, (i, j) in enumerate(zip(ei.tolist(), ej.tolist(), strict=True)):
        while parent[i] != i:
            i = parent[i]
        while parent[j] != j:
            j = parent[j]
        if i != j:
            parent[max(i, j)] = min(i, j)
            negative[r] = True
    return negative


def _top_bit(column: np.ndarray, word: int) -> int:
    """Index of the highest set bit of ``column``, whose top non-zero word is given."""
    return word * 64 + int(column[word]).bit_length() - 1


# ----------------------------------------------------------------------------------
# Benchmarks
# ----------------------------------------------------------------------------------


def _benchmark_distances(kind: str, m: int, seed: int) -> np.ndarray:
    """Distances between ``m`` noisy points on a flat torus in R^4 or in a disc."""
    rng = np.random.default_rng(seed)
    if kind == "torus":
        angles = rng.uniform(0.0, 2 * np.pi, size=(m, 2))
        points = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
    else:
        radius = np.sqrt(rng.uniform(0.0, 1.0, m))
        angle = rng.uniform(0.0, 2 * np.pi, m)
        points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    points += rng.normal(scale=0.05, size=points.shape)
    return np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)


def benchmarks() -> list[BenchCase]:
    """Two cases: a full filtration on 100 torus landmarks, and the chapter's use.

    The chapter filters 80 landmarks of each neuron cluster up to half their
    diameter; a disc-shaped cloud is its slowest case.
    """
    torus = _benchmark_distances("torus", 100, seed=0)
    disc = _benchmark_distances("disc", 80, seed=0)
    disc_eps = 0.5 * float(disc.max())
    return [
        BenchCase(
            name="rips_h1_z2",
            size="100 landmarks (torus), full filtration (161,700 triangles)",
            kernel=lambda: rips_h1_z2(torus),
            reference=lambda: rips_h1_z2_reference(torus),
            numpy=lambda: rips_h1_z2_numpy(torus),
        ),
        BenchCase(
            name="rips_h1_z2 (chapter)",
            size="80 landmarks (disc), filtration up to 0.5 x diameter",
            kernel=lambda: rips_h1_z2(disc, disc_eps),
            reference=lambda: rips_h1_z2_reference(disc, disc_eps),
            numpy=lambda: rips_h1_z2_numpy(disc, disc_eps),
        ),
    ]

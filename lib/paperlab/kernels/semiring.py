"""Kernels of a semiring sum-product engine: a sparse join-aggregate and a fixpoint.

These are the loops behind the Hojabr chapter (Shaikhha, arXiv 2512.23925), whose
intermediate language expresses joins, aggregations, tensor contractions and recursion
as one operation over semiring-valued relations. Sparse relations are lists of
``(key, group, value)`` entries whose keys are small integers (dictionary-encoded
domains), so NumPy cannot express the join without materialising every matching pair.

- :func:`sparse_join_aggregate` joins two sparse relations on one integer key,
  multiplies matching values with the semiring's product and adds the products into
  groups with the semiring's sum (a join followed by a group-by, or a sparse
  matrix-vector / matrix-matrix product, in one pass).
- :func:`semiring_relax` iterates ``X <- B (+) X (x) E`` over a sparse edge list until
  nothing changes: breadth-first reachability in the Boolean semiring, Bellman-Ford
  shortest paths in the min-plus semiring.

Semirings are named by small integers:

====  ===========  ==========  ==========  ======  =====
id    name         sum         product     zero    one
====  ===========  ==========  ==========  ======  =====
0     sum_product  ``a + b``   ``a * b``   0       1
1     boolean      ``max``     ``min``     0       1
2     min_plus     ``min``     ``a + b``   inf     0
====  ===========  ==========  ==========  ======  =====

Boolean values are stored as the floats 0.0 and 1.0, so one float64 code path serves
all three semirings.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = [
    "SUM_PRODUCT",
    "BOOLEAN",
    "MIN_PLUS",
    "SEMIRING_IDS",
    "semiring_zero",
    "sparse_join_aggregate",
    "sparse_join_aggregate_reference",
    "semiring_relax",
    "semiring_relax_reference",
    "benchmarks",
]

SUM_PRODUCT = 0
BOOLEAN = 1
MIN_PLUS = 2
SEMIRING_IDS = {"sum_product": SUM_PRODUCT, "boolean": BOOLEAN, "min_plus": MIN_PLUS}


@numba.njit(cache=True, inline="always")
def _zero(semiring):
    return math.inf if semiring == MIN_PLUS else 0.0


@numba.njit(cache=True, inline="always")
def _add(semiring, a, b):
    if semiring == SUM_PRODUCT:
        return a + b
    if semiring == BOOLEAN:
        return b if b > a else a
    return b if b < a else a


@numba.njit(cache=True, inline="always")
def _mul(semiring, a, b):
    if semiring == SUM_PRODUCT:
        return a * b
    if semiring == BOOLEAN:
        return b if b < a else a
    return a + b


def semiring_zero(semiring: int) -> float:
    """The additive identity of semiring ``semiring`` (``inf`` for min-plus, else 0)."""
    return math.inf if semiring == MIN_PLUS else 0.0


def _py_add(semiring, a, b):
    if semiring == SUM_PRODUCT:
        return a + b
    if semiring == BOOLEAN:
        return b if b > a else a
    return b if b < a else a


def _py_mul(semiring, a, b):
    if semiring == SUM_PRODUCT:
        return a * b
    if semiring == BOOLEAN:
        return b if b < a else a
    return a + b


# ------------------------------------------------------------ join-aggregate


@numba.njit(cache=True)
def sparse_join_aggregate(
    keys_a,
    groups_a,
    vals_a,
    keys_b,
    groups_b,
    vals_b,
    n_keys,
    n_groups_b,
    n_out,
    semiring,
):
    """Join two sparse relations on an integer key and aggregate into groups.

    Computes, for every output group ``o``,

        out[o] = (+)_{i, j : keys_a[i] = keys_b[j], o = groups_a[i] * n_groups_b
                 + groups_b[j]}  vals_a[i] (x) vals_b[j],

    where (+) and (x) are the semiring's sum and product. Side ``b`` is bucketed by key
    with a counting sort (the build); every entry of side ``a`` then visits its
    bucket (the probe) and accumulates into a dense accumulator over the groups, as
    Gustavson's sparse matrix product does.

    Parameters
    ----------
    keys_a, groups_a : ndarray of int64, shape (n_a,)
        Join key in ``[0, n_keys)`` and group in ``[0, n_out // n_groups_b)``.
    vals_a : ndarray of float64, shape (n_a,)
    keys_b, groups_b : ndarray of int64, shape (n_b,)
        Join key in ``[0, n_keys)`` and group in ``[0, n_groups_b)``.
    vals_b : ndarray of float64, shape (n_b,)
    n_keys : int
        Size of the key domain.
    n_groups_b : int
        Size of side b's group domain (1 when side b keeps no variable).
    n_out : int
        Number of output groups, a multiple of ``n_groups_b``.
    semiring : int
        0 sum-product, 1 Boolean, 2 min-plus.

    Returns
    -------
    out_index : ndarray of int64, shape (m,)
        The groups that received at least one product, increasing.
    out_vals : ndarray of float64, shape (m,)
        Their aggregated values.
    n_madds : int
        Multiply-adds performed: the number of matching pairs.
    """
    n_b = keys_b.shape[0]
    start = np.zeros(n_keys + 1, dtype=np.int64)
    for j in range(n_b):
        start[keys_b[j] + 1] += 1
    for k in range(n_keys):
        start[k + 1] += start[k]
    fill = start[:n_keys].copy()
    order = np.empty(n_b, dtype=np.int64)
    for j in range(n_b):
        k = keys_b[j]
        order[fill[k]] = j
        fill[k] += 1

    acc = np.full(n_out, _zero(semiring))
    touched = np.zeros(n_out, dtype=np.bool_)
    n_madds = 0
    for i in range(keys_a.shape[0]):
        k = keys_a[i]
        lo = start[k]
        hi = start[k + 1]
        base = groups_a[i] * n_groups_b
        va = vals_a[i]
        for p in range(lo, hi):
            j = order[p]
            o = base + groups_b[j]
            acc[o] = _add(semiring, acc[o], _mul(semiring, va, vals_b[j]))
            touched[o] = True
        n_madds += hi - lo
    out_index = np.flatnonzero(touched)
    return out_index, acc[out_index], n_madds


def sparse_join_aggregate_reference(
    keys_a,
    groups_a,
    vals_a,
    keys_b,
    groups_b,
    vals_b,
    n_keys,
    n_groups_b,
    n_out,
    semiring,
):
    """Plain-Python version of :func:`sparse_join_aggregate`: a dictionary hash join.

    Same arguments and results; products are added in the same order, so the results
    are bitwise equal.
    """
    buckets: dict[int, list[int]] = {}
    for j, k in enumerate(keys_b.tolist()):
        buckets.setdefault(k, []).append(j)
    gb, vb = groups_b.tolist(), vals_b.tolist()
    acc: dict[int, float] = {}
    n_madds = 0
    for k, g, va in zip(
        keys_a.tolist(), groups_a.tolist(), vals_a.tolist(), strict=True
    ):
        for j in buckets.get(k, ()):
            o = g * n_groups_b + gb[j]
            term = _py_mul(semiring, va, vb[j])
            acc[o] = _py_add(semiring, acc.get(o, semiring_zero(semiring)), term)
            n_madds += 1
    index = np.array(sorted(acc), dtype=np.int64)
    vals = np.array([acc[o] for o in index.tolist()], dtype=np.float64)
    return index, vals, n_madds


# ------------------------------------------------------------------ fixpoint


@numba.njit(cache=True)
def _all_equal(a, b):
    for r in range(a.shape[0]):
        for t in range(a.shape[1]):
            if a[r, t] != b[r, t]:
                return False
    return True


@numba.njit(cache=True)
def semiring_relax(base, edge_src, edge_dst, edge_w, semiring, max_rounds):
    """Iterate ``X <- B (+) X (x) E`` over a sparse edge list until it stops changing.

    Row ``r`` of ``X`` is one recursion (one source node). A round computes

        X'[r, t] = B[r, t] (+) (+)_{e : dst_e = t} X[r, src_e] (x) w_e

    from the previous ``X`` (Jacobi order, so round ``k`` equals the ``k``-th step of
    the naive fixpoint iteration), skipping edges whose source value is the semiring's
    zero. It stops at the first round that changes nothing, or after ``max_rounds``.

    Parameters
    ----------
    base : ndarray of float64, shape (n_rows, n_nodes)
        ``B``, also the starting ``X``.
    edge_src, edge_dst : ndarray of int64, shape (n_edges,)
        Edge endpoints in ``[0, n_nodes)``.
    edge_w : ndarray of float64, shape (n_edges,)
        Edge values (lengths for min-plus, 1.0 for Boolean).
    semiring : int
        0 sum-product, 1 Boolean, 2 min-plus.
    max_rounds : int
        Most rounds to run.

    Returns
    -------
    x : ndarray of float64, shape (n_rows, n_nodes)
        The last iterate (the least fixpoint when ``converged``).
    rounds : int
        Rounds run, including the last one that changed nothing.
    n_madds : int
        Multiply-adds performed (edges relaxed from a non-zero source).
    converged : bool
        Whether the last round changed nothing.
    """
    zero = _zero(semiring)
    x = base.copy()
    rounds = 0
    n_madds = 0
    converged = False
    while rounds < max_rounds:
        new = base.copy()
        for r in range(x.shape[0]):
            for e in range(edge_src.shape[0]):
                xv = x[r, edge_src[e]]
                if xv == zero:
                    continue
                t = edge_dst[e]
                new[r, t] = _add(semiring, new[r, t], _mul(semiring, xv, edge_w[e]))
                n_madds += 1
        rounds += 1
        if _all_equal(new, x):
            converged = True
            x = new
            break
        x = new
    return x, rounds, n_madds, converged


def semiring_relax_reference(base, edge_src, edge_dst, edge_w, semiring, max_rounds):
    """Plain-Python version of :func:`semiring_relax` (same arguments and results)."""
    zero = semiring_zero(semiring)
    b = base.tolist()
    x = [row[:] for row in b]
    edges = list(
        zip(edge_src.tolist(), edge_dst.tolist(), edge_w.tolist(), strict=True)
    )
    rounds, n_madds, converged = 0, 0, False
    while rounds < max_rounds:
        new = [row[:] for row in b]
        for r, row in enumerate(x):
            for s, t, w in edges:
                if row[s] == zero:
                    continue
                new[r][t] = _py_add(semiring, new[r][t], _py_mul(semiring, row[s], w))
                n_madds += 1
        rounds += 1
        same = all(
            u == v
            for nr, xr in zip(new, x, strict=True)
            for u, v in zip(nr, xr, strict=True)
        )
        x = new
        if same:
            converged = True
            break
    return np.array(x, dtype=np.float64).reshape(base.shape), rounds, n_madds, converged


# ---------------------------------------------------------------- benchmarks


def _numpy_join_sum(
    keys_a, groups_a, vals_a, keys_b, groups_b, vals_b, n_keys, n_gb, n_out
):
    """Sum-product join-aggregate in NumPy: materialise every pair, then bincount."""
    order = np.argsort(keys_b, kind="stable")
    kb = keys_b[order]
    lo = np.searchsorted(kb, keys_a, side="left")
    hi = np.searchsorted(kb, keys_a, side="right")
    counts = hi - lo
    a_idx = np.repeat(np.arange(keys_a.shape[0]), counts)
    offsets = np.arange(a_idx.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    b_idx = order[np.repeat(lo, counts) + offsets]
    out = groups_a[a_idx] * n_gb + groups_b[b_idx]
    return np.bincount(out, weights=vals_a[a_idx] * vals_b[b_idx], minlength=n_out)


def _numpy_relax_minplus(base, edge_src, edge_dst, edge_w, max_rounds):
    """Min-plus fixpoint in NumPy: one ``np.minimum.at`` scatter per round."""
    x = base.copy()
    for _ in range(max_rounds):
        new = base.copy()
        for r in range(x.shape[0]):
            np.minimum.at(new[r], edge_dst, x[r, edge_src] + edge_w)
        if np.array_equal(new, x):
            return new
        x = new
    return x


def benchmarks() -> list[BenchCase]:
    """Benchmark cases: each kernel against its Python reference and NumPy."""
    rng = np.random.default_rng(0)
    n_rows, n_keys, n_groups = 20_000, 100, 500
    keys_a = rng.integers(0, n_keys, n_rows)
    keys_b = rng.integers(0, n_keys, n_rows)
    groups_a = rng.integers(0, n_groups, n_rows)
    groups_b = np.zeros(n_rows, dtype=np.int64)
    vals_a, vals_b = rng.random(n_rows), rng.random(n_rows)
    join_args = (
        keys_a,
        groups_a,
        vals_a,
        keys_b,
        groups_b,
        vals_b,
        n_keys,
        1,
        n_groups,
    )
    cases = [
        BenchCase(
            name="sparse_join_aggregate",
            size="20,000 x 20,000 rows, 100 keys (4,000,000 pairs)",
            kernel=lambda: sparse_join_aggregate(*join_args, SUM_PRODUCT),
            reference=lambda: sparse_join_aggregate_reference(*join_args, SUM_PRODUCT),
            numpy=lambda: _numpy_join_sum(*join_args),
        )
    ]
    n_nodes, n_edges = 50_000, 250_000
    src = rng.integers(0, n_nodes, n_edges)
    dst = rng.integers(0, n_nodes, n_edges)
    w = rng.integers(1, 10, n_edges).astype(np.float64)
    base = np.full((1, n_nodes), np.inf)
    base[0, 0] = 0.0
    cases.append(
        BenchCase(
            name="semiring_relax",
            size="min-plus, 50,000 nodes, 250,000 edges",
            kernel=lambda: semiring_relax(base, src, dst, w, MIN_PLUS, 1_000),
            reference=lambda: semiring_relax_reference(
                base, src, dst, w, MIN_PLUS, 1_000
            ),
            numpy=lambda: _numpy_relax_minplus(base, src, dst, w, 1_000),
        )
    )
    return cases

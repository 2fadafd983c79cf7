"""Kernels of a learned index with a Linear Map router and gapped segments.

These are the loops behind the LMG chapter (Chen and Yao, arXiv 2512.24824): they walk
sorted keys one at a time, so NumPy cannot vectorise them.

- :func:`pla_train` fits error-bounded linear segments with a greedy shrinking cone.
- :func:`lm_route` sends each query through the Linear Map to its segment.
- :func:`lm_lookup` routes, predicts a slot and binary-searches the error window.
- :func:`gapped_insert` inserts keys into gapped segment arrays, shifting elements to
  the nearest gap.
- :func:`sorted_insert_moves` counts the elements a sorted array shifts per insert.

Storage conventions shared by all kernels
-----------------------------------------
Segments live side by side in one flat ``slots`` array. Segment ``s`` owns
``slots[seg_start[s] : seg_start[s] + seg_cap[s]]``; ``occupied`` marks real keys.
A gap holds a copy of the next real key to its right (or a value larger than every key
of the segment), so every segment's slice is sorted and binary search works without
looking at ``occupied``. A segment predicts the local slot of ``key`` as
``floor(seg_icpt[s] + seg_slope[s] * (key - seg_key0[s]) + 1/2)`` and every real key
lies within ``seg_err[s]`` slots of its prediction.

The Linear Map is a list of layers. Layer ``j`` maps a key to the cell
``floor((key - layer_min[j]) * layer_scale[j])`` (clipped to ``[0, layer_size[j])``),
the scaling mapping formula. A cell holds a segment id, or ``-(child + 1)`` to send the
key to child layer ``child``. A segment id ``v`` means the key belongs to segment ``v``
or ``v + 1``; one comparison with ``seg_first[v + 1]`` decides.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = [
    "pla_train",
    "pla_train_reference",
    "lm_route",
    "lm_route_reference",
    "lm_lookup",
    "lm_lookup_reference",
    "gapped_insert",
    "gapped_insert_reference",
    "sorted_insert_moves",
    "sorted_insert_moves_reference",
    "benchmarks",
]


# ---------------------------------------------------------------- PLA training


@numba.njit(cache=True)
def pla_train(keys, eps):
    """Greedy error-bounded piecewise linear fit of rank against key.

    Each segment is anchored at its first key ``x0`` (rank ``y0``) and keeps the
    interval of slopes that predict every key seen so far within ``eps`` of its rank
    (the shrinking cone). A key whose own slope interval misses the cone starts a new
    segment. The slope stored is the middle of the final cone.

    Parameters
    ----------
    keys : ndarray of int64, shape (n,)
        Strictly increasing keys.
    eps : float
        Maximum allowed ``|prediction - rank|``.

    Returns
    -------
    starts : ndarray of int64, shape (n_segments,)
        Index of each segment's first key.
    slopes : ndarray of float64, shape (n_segments,)
        Ranks per key unit; the prediction for a key ``k`` in segment ``s`` is
        ``starts[s] + slopes[s] * (k - keys[starts[s]])``.
    """
    n = keys.shape[0]
    starts = np.empty(n, dtype=np.int64)
    slopes = np.empty(n, dtype=np.float64)
    n_seg = 0
    i = 0
    while i < n:
        x0 = keys[i]
        lo = 0.0
        hi = np.inf
        j = i + 1
        while j < n:
            dx = float(keys[j] - x0)
            dy = float(j - i)
            s_lo = (dy - eps) / dx
            s_hi = (dy + eps) / dx
            if s_lo > hi or s_hi < lo:
                break
            if s_lo > lo:
                lo = s_lo
            if s_hi < hi:
                hi = s_hi
            j += 1
        starts[n_seg] = i
        slopes[n_seg] = 0.0 if j == i + 1 else 0.5 * (lo + hi)
        n_seg += 1
        i = j
    return starts[:n_seg].copy(), slopes[:n_seg].copy()


def pla_train_reference(keys, eps):
    """Plain-Python version of :func:`pla_train` (same arguments and results)."""
    keys = [int(k) for k in keys]
    starts, slopes = [], []
    i, n = 0, len(keys)
    while i < n:
        x0, lo, hi = keys[i], 0.0, math.inf
        j = i + 1
        while j < n:
            dx, dy = float(keys[j] - x0), float(j - i)
            s_lo, s_hi = (dy - eps) / dx, (dy + eps) / dx
            if s_lo > hi or s_hi < lo:
                break
            lo, hi = max(lo, s_lo), min(hi, s_hi)
            j += 1
        starts.append(i)
        slopes.append(0.0 if j == i + 1 else 0.5 * (lo + hi))
        i = j
    return np.array(starts, dtype=np.int64), np.array(slopes, dtype=np.float64)


# ------------------------------------------------------------ Linear Map routing


@numba.njit(cache=True)
def _route_one(key, layer_min, layer_scale, layer_size, layer_offset, cells, seg_first):
    layer = 0
    depth = 0
    while True:
        depth += 1
        c = math.floor((float(key) - layer_min[layer]) * layer_scale[layer])
        if c < 0:
            c = 0
        elif c >= layer_size[layer]:
            c = layer_size[layer] - 1
        v = cells[layer_offset[layer] + c]
        if v < 0:
            layer = -v - 1
            continue
        comps = 0
        if v + 1 < seg_first.shape[0]:
            comps = 1
            if key >= seg_first[v + 1]:
                v += 1
        return v, comps, depth


@numba.njit(cache=True)
def lm_route(
    queries, layer_min, layer_scale, layer_size, layer_offset, cells, seg_first
):
    """Route each query through the Linear Map to the segment that covers it.

    Parameters
    ----------
    queries : ndarray of int64, shape (q,)
    layer_min, layer_scale : ndarray of float64, shape (n_layers,)
        Each layer's scaling mapping formula ``floor((key - min) * scale)``.
    layer_size, layer_offset : ndarray of int64, shape (n_layers,)
        Each layer's number of cells and where its cells start in ``cells``.
    cells : ndarray of int64, shape (n_cells,)
        Segment ids, or ``-(child + 1)`` for cells that hand over to a child layer.
    seg_first : ndarray of int64, shape (n_segments,)
        Each segment's lower key boundary, increasing.

    Returns
    -------
    seg : ndarray of int64, shape (q,)
        The segment of each query: the last ``s`` with ``seg_first[s] <= query``
        (segment 0 for keys below every boundary).
    comps : ndarray of int64, shape (q,)
        Key comparisons spent (0 or 1).
    depth : ndarray of int64, shape (q,)
        Layers visited (scaling-formula evaluations).
    """
    q = queries.shape[0]
    seg = np.empty(q, dtype=np.int64)
    comps = np.empty(q, dtype=np.int64)
    depth = np.empty(q, dtype=np.int64)
    for i in range(q):
        seg[i], comps[i], depth[i] = _route_one(
            queries[i],
            layer_min,
            layer_scale,
            layer_size,
            layer_offset,
            cells,
            seg_first,
        )
    return seg, comps, depth


def _route_one_reference(key, lm, seg_first):
    layer_min, layer_scale, layer_size, layer_offset, cells = lm
    layer, depth = 0, 0
    while True:
        depth += 1
        c = math.floor((float(key) - layer_min[layer]) * layer_scale[layer])
        c = min(max(c, 0), int(layer_size[layer]) - 1)
        v = int(cells[int(layer_offset[layer]) + c])
        if v < 0:
            layer = -v - 1
            continue
        comps = 0
        if v + 1 < len(seg_first):
            comps = 1
            if key >= seg_first[v + 1]:
                v += 1
        return v, comps, depth


def lm_route_reference(
    queries, layer_min, layer_scale, layer_size, layer_offset, cells, seg_first
):
    """Plain-Python version of :func:`lm_route` (same arguments and results)."""
    lm = (layer_min, layer_scale, layer_size, layer_offset, cells)
    out = [_route_one_reference(int(k), lm, seg_first) for k in queries]
    cols = list(zip(*out, strict=True)) if out else [(), (), ()]
    return tuple(np.array(c, dtype=np.int64) for c in cols)


# ------------------------------------------------------------------- lookups


@numba.njit(cache=True)
def _predict(key, s, seg_key0, seg_slope, seg_icpt):
    return np.int64(
        math.floor(seg_icpt[s] + seg_slope[s] * float(key - seg_key0[s]) + 0.5)
    )


@numba.njit(cache=True)
def lm_lookup(
    queries,
    layer_min,
    layer_scale,
    layer_size,
    layer_offset,
    cells,
    seg_first,
    seg_key0,
    seg_slope,
    seg_icpt,
    seg_start,
    seg_cap,
    seg_err,
    slots,
    occupied,
):
    """Find each query's slot: route, predict, then binary-search the error window.

    Arguments are as in :func:`lm_route`, plus the segment models and storage described
    in the module docstring (``seg_key0``, ``seg_slope``, ``seg_icpt`` of shape
    ``(n_segments,)``; ``seg_start``, ``seg_cap``, ``seg_err`` int64 of the same
    shape; ``slots`` int64 and ``occupied`` bool of shape ``(n_slots,)``).

    Returns
    -------
    pos : ndarray of int64, shape (q,)
        Global slot of each query, or -1 when the key is absent.
    comps : ndarray of int64, shape (q,)
        Key comparisons: the Linear Map's plus the last-mile binary search's.
    """
    q = queries.shape[0]
    pos = np.empty(q, dtype=np.int64)
    comps = np.empty(q, dtype=np.int64)
    for i in range(q):
        key = queries[i]
        s, c, _ = _route_one(
            key, layer_min, layer_scale, layer_size, layer_offset, cells, seg_first
        )
        p = _predict(key, s, seg_key0, seg_slope, seg_icpt)
        lo = max(min(p - seg_err[s], seg_cap[s]), 0)
        hi = max(min(p + seg_err[s] + 1, seg_cap[s]), lo)
        base = seg_start[s]
        # upper bound: first slot in [lo, hi) holding a value > key
        a, b = lo, hi
        while a < b:
            m = (a + b) >> 1
            c += 1
            if slots[base + m] <= key:
                a = m + 1
            else:
                b = m
        r = base + a - 1
        if a > lo and occupied[r] and slots[r] == key:
            pos[i] = r
        else:
            pos[i] = -1
        comps[i] = c
    return pos, comps


def _predict_reference(key, s, seg_key0, seg_slope, seg_icpt):
    x = float(seg_icpt[s]) + float(seg_slope[s]) * float(key - int(seg_key0[s]))
    return math.floor(x + 0.5)


def lm_lookup_reference(
    queries,
    layer_min,
    layer_scale,
    layer_size,
    layer_offset,
    cells,
    seg_first,
    seg_key0,
    seg_slope,
    seg_icpt,
    seg_start,
    seg_cap,
    seg_err,
    slots,
    occupied,
):
    """Plain-Python version of :func:`lm_lookup` (same arguments and results)."""
    lm = (layer_min, layer_scale, layer_size, layer_offset, cells)
    pos, comps = [], []
    for key in (int(k) for k in queries):
        s, c, _ = _route_one_reference(key, lm, seg_first)
        p = _predict_reference(key, s, seg_key0, seg_slope, seg_icpt)
        err, cap = int(seg_err[s]), int(seg_cap[s])
        lo = max(min(p - err, cap), 0)
        hi = max(min(p + err + 1, cap), lo)
        base = int(seg_start[s])
        a, b = lo, hi
        while a < b:
            m = (a + b) // 2
            c += 1
            if slots[base + m] <= key:
                a = m + 1
            else:
                b = m
        r = base + a - 1
        found = a > lo and bool(occupied[r]) and int(slots[r]) == key
        pos.append(r if found else -1)
        comps.append(c)
    return np.array(pos, dtype=np.int64), np.array(comps, dtype=np.int64)


# ------------------------------------------------------------------- inserts


@numba.njit(cache=True)
def _note_error(key, local, s, seg_key0, seg_slope, seg_icpt, seg_err):
    e = abs(local - _predict(key, s, seg_key0, seg_slope, seg_icpt))
    if e > seg_err[s]:
        seg_err[s] = e


@numba.njit(cache=True)
def gapped_insert(
    new_keys,
    first,
    layer_min,
    layer_scale,
    layer_size,
    layer_offset,
    cells,
    seg_first,
    seg_key0,
    seg_slope,
    seg_icpt,
    seg_start,
    seg_cap,
    seg_count,
    seg_err,
    slots,
    occupied,
    max_fill,
    out_moves,
    out_comps,
):
    """Insert ``new_keys[first:]`` in order, each at its sorted slot in its segment.

    A key is routed and its slot predicted as in :func:`lm_lookup`; a binary search of
    the error window finds the first slot holding a value >= key. If that slot is a
    gap the key goes there with no move; otherwise the real keys between it and the
    nearest gap (left or right, whichever is closer) shift by one slot. Error bounds
    ``seg_err`` grow to cover every key that moved. A segment without gaps stored
    right after the last key is the no-gap layout: every insert shifts to its end.

    Parameters
    ----------
    new_keys : ndarray of int64, shape (m,)
        Keys absent from the index.
    first : int
        Index of the first key to insert.
    max_fill : float
        Stop before inserting into a segment whose count would exceed
        ``max_fill * seg_cap``: the caller rebuilds that segment and calls again.
    out_moves, out_comps : ndarray of int64, shape (m,)
        Filled with the real keys moved and the key comparisons of each insert.
    Other arguments are as in :func:`lm_lookup`, plus ``seg_count`` (int64, keys per
    segment); ``slots``, ``occupied``, ``seg_count`` and ``seg_err`` are updated.

    Returns
    -------
    int
        Index of the first key not inserted (``m`` when all were inserted).
    """
    for i in range(first, new_keys.shape[0]):
        key = new_keys[i]
        s, c, _ = _route_one(
            key, layer_min, layer_scale, layer_size, layer_offset, cells, seg_first
        )
        cap = seg_cap[s]
        if seg_count[s] + 1 > max_fill * cap:
            return i
        base = seg_start[s]
        pred = _predict(key, s, seg_key0, seg_slope, seg_icpt)
        lo = max(min(pred - seg_err[s], cap), 0)
        hi = max(min(pred + seg_err[s] + 1, cap), lo)
        a, b = lo, hi
        while a < b:
            m = (a + b) >> 1
            c += 1
            if slots[base + m] < key:
                a = m + 1
            else:
                b = m
        p = a
        moves = 0
        if p < cap and not occupied[base + p]:
            dest = p
        else:
            d = 0
            right = -1
            left = -1
            while right < 0 and left < 0:
                if p + d < cap and not occupied[base + p + d]:
                    right = p + d
                elif p - 1 - d >= 0 and not occupied[base + p - 1 - d]:
                    left = p - 1 - d
                d += 1
            if right >= 0:
                for t in range(right, p, -1):
                    slots[base + t] = slots[base + t - 1]
                    _note_error(
                        slots[base + t], t, s, seg_key0, seg_slope, seg_icpt, seg_err
                    )
                occupied[base + right] = True
                moves = right - p
                dest = p
            else:
                for t in range(left, p - 1):
                    slots[base + t] = slots[base + t + 1]
                    _note_error(
                        slots[base + t], t, s, seg_key0, seg_slope, seg_icpt, seg_err
                    )
                occupied[base + left] = True
                moves = p - 1 - left
                dest = p - 1
        slots[base + dest] = key
        occupied[base + dest] = True
        _note_error(key, dest, s, seg_key0, seg_slope, seg_icpt, seg_err)
        t = dest - 1
        while t >= 0 and not occupied[base + t]:
            slots[base + t] = key
            t -= 1
        seg_count[s] += 1
        out_moves[i] = moves
        out_comps[i] = c
    return new_keys.shape[0]


def gapped_insert_reference(
    new_keys,
    first,
    layer_min,
    layer_scale,
    layer_size,
    layer_offset,
    cells,
    seg_first,
    seg_key0,
    seg_slope,
    seg_icpt,
    seg_start,
    seg_cap,
    seg_count,
    seg_err,
    slots,
    occupied,
    max_fill,
    out_moves,
    out_comps,
):
    """Plain-Python version of :func:`gapped_insert` (same arguments and results)."""
    lm = (layer_min, layer_scale, layer_size, layer_offset, cells)

    def note(key, local, s):
        pred = _predict_reference(key, s, seg_key0, seg_slope, seg_icpt)
        seg_err[s] = max(int(seg_err[s]), abs(local - pred))

    for i in range(first, len(new_keys)):
        key = int(new_keys[i])
        s, c, _ = _route_one_reference(key, lm, seg_first)
        cap, base = int(seg_cap[s]), int(seg_start[s])
        if seg_count[s] + 1 > max_fill * cap:
            return i
        pred = _predict_reference(key, s, seg_key0, seg_slope, seg_icpt)
        err = int(seg_err[s])
        lo = max(min(pred - err, cap), 0)
        hi = max(min(pred + err + 1, cap), lo)
        while lo < hi:
            m = (lo + hi) // 2
            c += 1
            lo, hi = (m + 1, hi) if slots[base + m] < key else (lo, m)
        p = lo
        moves = 0
        if p < cap and not occupied[base + p]:
            dest = p
        else:
            right = next((t for t in range(p, cap) if not occupied[base + t]), None)
            left = next(
                (t for t in range(p - 1, -1, -1) if not occupied[base + t]), None
            )
            use_right = right is not None and (
                left is None or right - p <= p - 1 - left
            )
            if use_right:
                slots[base + p + 1 : base + right + 1] = slots[
                    base + p : base + right
                ].copy()
                occupied[base + right] = True
                moved, moves, dest = range(p + 1, right + 1), right - p, p
            else:
                slots[base + left : base + p - 1] = slots[
                    base + left + 1 : base + p
                ].copy()
                occupied[base + left] = True
                moved, moves, dest = range(left, p - 1), p - 1 - left, p - 1
            for t in moved:
                note(int(slots[base + t]), t, s)
        slots[base + dest] = key
        occupied[base + dest] = True
        note(key, dest, s)
        t = dest - 1
        while t >= 0 and not occupied[base + t]:
            slots[base + t] = key
            t -= 1
        seg_count[s] += 1
        out_moves[i], out_comps[i] = moves, c
    return len(new_keys)


# ------------------------------------------------------- sorted-array baseline


@numba.njit(cache=True)
def sorted_insert_moves(present, insert_rank):
    """Elements a sorted array shifts for each insert (a Fenwick tree count).

    Parameters
    ----------
    present : ndarray of bool, shape (N,)
        Which ranks of the final sorted key set are stored before the first insert.
    insert_rank : ndarray of int64, shape (m,)
        Final rank of each inserted key, in insertion order (absent before).

    Returns
    -------
    ndarray of int64, shape (m,)
        For each insert, the number of stored keys larger than it: the elements an
        array insert moves one slot to the right.
    """
    n = present.shape[0]
    tree = np.zeros(n + 1, dtype=np.int64)
    total = 0
    for r in range(n):
        if present[r]:
            total += 1
            j = r + 1
            while j <= n:
                tree[j] += 1
                j += j & -j
    moves = np.empty(insert_rank.shape[0], dtype=np.int64)
    for i in range(insert_rank.shape[0]):
        r = insert_rank[i]
        below = 0
        j = r + 1
        while j > 0:
            below += tree[j]
            j -= j & -j
        moves[i] = total - below
        total += 1
        j = r + 1
        while j <= n:
            tree[j] += 1
            j += j & -j
    return moves


def sorted_insert_moves_reference(present, insert_rank):
    """Plain-Python version of :func:`sorted_insert_moves` (same arguments)."""
    present = [bool(x) for x in present]
    moves = []
    for r in (int(x) for x in insert_rank):
        moves.append(sum(present[r + 1 :]))
        present[r] = True
    return np.array(moves, dtype=np.int64)


# ---------------------------------------------------------------- benchmarks


def _bench_index(n_keys: int, eps: float, gap_every: int, seed: int):
    """A small single-layer index over random keys, with a gap after every
    ``gap_every``-th key, for the benchmarks."""
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, 2**40, size=n_keys + n_keys // 10))[:n_keys]
    starts, slopes = pla_train(keys, eps)
    n_seg = starts.shape[0]
    counts = np.diff(np.append(starts, n_keys))
    caps = counts + counts // gap_every + 1
    seg_start = np.concatenate(([0], np.cumsum(caps)[:-1])).astype(np.int64)
    seg_of_key = np.repeat(np.arange(n_seg), counts)
    local = np.arange(n_keys) - starts[seg_of_key]
    pos = seg_start[seg_of_key] + local + local // gap_every
    slots = np.full(int(caps.sum()), np.iinfo(np.int64).max, dtype=np.int64)
    occupied = np.zeros(slots.shape[0], dtype=np.bool_)
    slots[pos] = keys
    occupied[pos] = True
    slots = np.minimum.accumulate(slots[::-1])[::-1].copy()
    g = caps / counts
    seg_slope = slopes * g
    pred = np.floor(seg_slope[seg_of_key] * (keys - keys[starts][seg_of_key]) + 0.5)
    err = np.zeros(n_seg, dtype=np.int64)
    np.maximum.at(
        err, seg_of_key, np.abs(local + local // gap_every - pred).astype(int)
    )
    first = keys[starts].copy()
    width = float(keys[-1] - keys[0] + 1)
    size = 1 << 18
    lm = (
        np.array([float(keys[0])]),
        np.array([size / width]),
        np.array([size], dtype=np.int64),
        np.array([0], dtype=np.int64),
    )
    cell_of_first = np.clip(np.floor((first - lm[0][0]) * lm[1][0]), 0, size - 1)
    cells = np.maximum(np.searchsorted(cell_of_first, np.arange(size), "left") - 1, 0)
    model = (
        first,
        first,
        seg_slope,
        np.zeros(n_seg),
        seg_start,
        caps.astype(np.int64),
        counts.astype(np.int64),
        err,
    )
    return keys, lm + (cells.astype(np.int64),), model, slots, occupied


def benchmarks() -> list[BenchCase]:
    """Benchmark cases: each kernel against its Python reference and NumPy."""
    rng = np.random.default_rng(0)
    keys_big = np.unique(rng.integers(0, 2**40, size=600_000))[:500_000]
    cases = [
        BenchCase(
            name="pla_train",
            size="n=500,000, eps=32",
            kernel=lambda: pla_train(keys_big, 32.0),
            reference=lambda: pla_train_reference(keys_big, 32.0),
        )
    ]
    keys, lm, model, slots, occupied = _bench_index(200_000, 16.0, 2, seed=1)
    first, _, slope, icpt, start, cap, count, err = model
    queries = rng.choice(keys, size=50_000)
    cases.append(
        BenchCase(
            name="lm_route",
            size="q=50,000 over 200,000 keys",
            kernel=lambda: lm_route(queries, *lm, first),
            reference=lambda: lm_route_reference(queries, *lm, first),
            numpy=lambda: np.searchsorted(first, queries, "right") - 1,
        )
    )
    lookup_args = lm + (first, first, slope, icpt, start, cap, err, slots, occupied)
    cases.append(
        BenchCase(
            name="lm_lookup",
            size="q=50,000 over 200,000 keys",
            kernel=lambda: lm_lookup(queries, *lookup_args),
            reference=lambda: lm_lookup_reference(queries, *lookup_args),
            numpy=lambda: np.searchsorted(keys, queries),
        )
    )
    pool = np.setdiff1d(np.unique(rng.integers(0, 2**40, size=40_000)), keys)
    new_keys = rng.permutation(pool)[:20_000]

    def run_insert(fn):
        state = [a.copy() for a in (count, err, slots, occupied)]
        moves = np.zeros(new_keys.shape[0], dtype=np.int64)
        comps = np.zeros_like(moves)
        return fn(
            new_keys,
            0,
            *lm,
            first,
            first,
            slope,
            icpt,
            start,
            cap,
            state[0],
            state[1],
            state[2],
            state[3],
            1.0,
            moves,
            comps,
        )

    cases.append(
        BenchCase(
            name="gapped_insert",
            size="m=20,000 into 200,000 keys, gap every 2 keys",
            kernel=lambda: run_insert(gapped_insert),
            reference=lambda: run_insert(gapped_insert_reference),
        )
    )
    total = 80_000
    present = np.zeros(total, dtype=np.bool_)
    present[rng.choice(total, size=total - 4_000, replace=False)] = True
    ranks = rng.permutation(np.flatnonzero(~present)).astype(np.int64)
    cases.append(
        BenchCase(
            name="sorted_insert_moves",
            size="m=4,000 into 76,000 keys",
            kernel=lambda: sorted_insert_moves(present, ranks),
            reference=lambda: sorted_insert_moves_reference(present, ranks),
        )
    )
    return cases

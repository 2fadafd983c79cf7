"""LMG: a learned index with a Linear Map router and gapped segments.

Chen and Yao, "LMG Index: A Robust Learned Index for Multi-Dimensional Performance
Balance", arXiv 2512.24824.

The index has two layers. The bottom layer is a list of segments, each a linear model
``rank ~ slope * (key - key0)`` whose prediction is within ``eps`` of every key's true
rank (a piecewise linear approximation, PLA). The top layer is the Linear Map (LM): a
flat array of cells over the key range, addressed by the scaling mapping formula

    SMF(key) = floor((key - min) / (max - min) * L),

each cell naming the segment that covers it. With cells no wider than the narrowest
segment, a cell holds at most one segment boundary, so routing is one SMF evaluation
and at most one comparison. Where segment widths are very skewed, a layer is capped in
size and crowded cells hand over to a child layer (the multi-layer LM). LMG adds gaps:
every segment's slot array is larger than its key count, keys sit at (or near) their
predicted slots with gaps spread between them, and an insert shifts keys only as far
as the nearest gap.

This module builds the index, three baselines (the same index without gaps, a static
index with a sorted delta buffer, and a plain sorted array with binary search), runs a
read-write experiment that counts comparisons and element moves, and checks the
chapter's claim. The hot loops are in :mod:`paperlab.kernels.learned_index`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from paperlab.claims import require
from paperlab.kernels.learned_index import (
    gapped_insert,
    lm_lookup,
    lm_route,
    pla_train,
    sorted_insert_moves,
)
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "DISTRIBUTIONS",
    "VARIANTS",
    "KEY_LIMIT",
    "make_keys",
    "train_segments",
    "rank_errors",
    "LinearMap",
    "build_linear_map",
    "choose_eps",
    "SlotStore",
    "LearnedIndex",
    "DeltaBufferIndex",
    "SortedArrayIndex",
    "make_index",
    "Config",
    "VariantMetrics",
    "Result",
    "run_experiment",
    "check_claim",
    "coefficient_of_variation",
    "ExploreResult",
    "explore_eps",
    "plot_segments",
    "plot_batch_costs",
    "plot_explore",
    "plot_summary",
    "EpsCost",
    "InsertCost",
]

log = logging.getLogger(__name__)

DISTRIBUTIONS = ("uniform", "lognormal", "clustered")
VARIANTS = ("lmg", "lmindex", "delta_buffer", "sorted_array")
VARIANT_NAMES = {
    "lmg": "LMG (gaps)",
    "lmindex": "LMIndex (no gaps)",
    "delta_buffer": "static + delta buffer",
    "sorted_array": "sorted array",
}
KEY_LIMIT = 2**50  # keys stay below 2**53, so float64 holds them exactly
SENTINEL = np.iinfo(np.int64).max  # value of the gaps after a segment's last key
SEGMENT_BYTES = 64  # eight 8-byte numbers per segment (see SlotStore)
CELL_BYTES = 8
LAYER_BYTES = 32

# The claim's thresholds (see check_claim).
MAX_ROUTE_COMPARISONS = 2
MIN_MOVE_REDUCTION = 5.0
MIN_CV_REDUCTION = 2.0
MAX_LOOKUP_FRACTION = 0.5


# ------------------------------------------------------------------- the data


def make_keys(distribution: str, n_keys: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n_keys`` distinct integer keys below :data:`KEY_LIMIT`, sorted.

    Parameters
    ----------
    distribution : {"uniform", "lognormal", "clustered"}
        ``uniform`` over the whole key range; ``lognormal`` with log-scale spread 2
        (most keys crowd near the low end, a long tail reaches far up); ``clustered``
        as 16 Gaussian clusters of random weights and widths spanning six orders of
        magnitude.
    n_keys : int
        Number of keys, at least 1.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int64, shape (n_keys,)
    """
    distribution = check_choice("distribution", distribution, DISTRIBUTIONS)
    n_keys = check_int("n_keys", n_keys, minimum=1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    if distribution == "clustered":
        centers = rng.uniform(0.05, 0.95, size=16) * KEY_LIMIT
        widths = 2.0 ** rng.uniform(20, 40, size=16)
        weights = rng.dirichlet(np.ones(16))
    keys = np.empty(0, dtype=np.int64)
    while keys.shape[0] < n_keys:
        size = 2 * (n_keys - keys.shape[0]) + 16
        if distribution == "uniform":
            draw = rng.uniform(0, KEY_LIMIT, size=size)
        elif distribution == "lognormal":
            draw = np.exp(rng.normal(0.0, 2.0, size=size)) * 2.0**32
        else:
            which = rng.choice(16, size=size, p=weights)
            draw = centers[which] + widths[which] * rng.standard_normal(size)
        draw = draw[(draw >= 0) & (draw < KEY_LIMIT)].astype(np.int64)
        keys = _sorted_unique(np.concatenate((keys, draw)))
    return np.sort(rng.choice(keys, size=n_keys, replace=False))


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` without its hash-table path)."""
    values = np.sort(values)
    if values.shape[0] == 0:
        return values
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def _check_keys(name: str, keys) -> np.ndarray:
    keys = check_array(name, keys, ndim=1)
    if keys.size == 0:
        return keys.astype(np.int64)
    if not np.issubdtype(keys.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {keys.dtype}")
    keys = keys.astype(np.int64, copy=False)
    if keys.size and (keys.min() < 0 or keys.max() >= KEY_LIMIT):
        raise ValueError(f"{name} must lie in [0, 2**50)")
    if keys.size > 1 and np.any(np.diff(keys) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    return keys


# ------------------------------------------------------------ the bottom layer


def train_segments(keys, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Fit error-bounded linear segments to the rank function of ``keys``.

    Every key's predicted rank ``starts[s] + slopes[s] * (key - keys[starts[s]])``
    lies within ``eps`` of its true rank (the segments' error threshold).

    Parameters
    ----------
    keys : array_like of int, shape (n,)
        Strictly increasing keys in ``[0, 2**50)``.
    eps : float
        Error threshold, at least 1.

    Returns
    -------
    starts : ndarray of int64, shape (n_segments,)
        Index of each segment's first key.
    slopes : ndarray of float64, shape (n_segments,)
        Ranks per key unit.
    """
    keys = _check_keys("keys", keys)
    eps = check_float("eps", eps, minimum=1.0)
    # a hair under eps, so rounding in the prediction cannot break the bound
    return pla_train(keys, eps - 1e-6)


def rank_errors(keys, starts, slopes) -> np.ndarray:
    """Absolute difference between each key's predicted and true rank.

    Parameters
    ----------
    keys : array_like of int, shape (n,)
    starts, slopes : array_like, shape (n_segments,)
        As returned by :func:`train_segments`.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    keys = _check_keys("keys", keys)
    starts = check_array("starts", starts, ndim=1, dtype=np.int64)
    slopes = check_array(
        "slopes", slopes, ndim=1, dtype=np.float64, shape=(starts.shape[0],)
    )
    seg = np.searchsorted(starts, np.arange(keys.shape[0]), side="right") - 1
    pred = starts[seg] + slopes[seg] * (keys - keys[starts][seg]).astype(np.float64)
    return np.abs(pred - np.arange(keys.shape[0]))


# ------------------------------------------------------------- the Linear Map


@dataclass(frozen=True)
class LinearMap:
    """The Linear Map: layers of cells addressed by the scaling mapping formula.

    Layer ``j`` sends ``key`` to cell ``floor((key - layer_min[j]) * layer_scale[j])``,
    clipped to ``[0, layer_size[j])``. Its cells are
    ``cells[layer_offset[j] : layer_offset[j] + layer_size[j]]``; a cell holds a
    segment id ``v`` (the key is in segment ``v`` or ``v + 1``) or ``-(child + 1)``.
    """

    layer_min: np.ndarray  # float64, (n_layers,): key at each layer's cell 0
    layer_scale: np.ndarray  # float64, (n_layers,): cells per key unit
    layer_size: np.ndarray  # int64, (n_layers,): cells per layer
    layer_offset: np.ndarray  # int64, (n_layers,): first cell of each layer
    cells: np.ndarray  # int64, (n_cells,)
    seg_first: np.ndarray  # int64, (n_segments,): segment boundaries it routes to

    @property
    def n_layers(self) -> int:
        """Number of layers (1 for a single-layer map)."""
        return int(self.layer_size.shape[0])

    @property
    def n_cells(self) -> int:
        """Total number of cells over all layers."""
        return int(self.cells.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of the cells and the layer headers."""
        return self.n_cells * CELL_BYTES + self.n_layers * LAYER_BYTES

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays the kernels take, in their argument order."""
        return (
            self.layer_min,
            self.layer_scale,
            self.layer_size,
            self.layer_offset,
            self.cells,
            self.seg_first,
        )

    def route(self, queries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment, comparisons and layers visited for each query (see ``lm_route``)."""
        queries = check_array("queries", queries, ndim=1, dtype=np.int64)
        return lm_route(queries, *self.arrays())


def _layer_cells(
    keys: np.ndarray, ids: np.ndarray, base: int, cells_per_segment: float
):
    """Cells of one layer over the boundaries ``keys`` (segment ids ``ids``)."""
    width = float(keys[-1] - keys[0] + 1)
    narrowest = float(np.diff(keys).min()) if keys.shape[0] > 1 else width
    cap = max(2, math.ceil(cells_per_segment * keys.shape[0]))
    size = int(min(cap, math.ceil(width / narrowest) + 1))
    scale = size / width
    cell = np.clip(
        np.floor((keys.astype(np.float64) - float(keys[0])) * scale), 0, size - 1
    ).astype(np.int64)
    last_in_cell = np.full(size, -1, dtype=np.int64)
    np.maximum.at(last_in_cell, cell, ids)
    before = np.concatenate(([-1], np.maximum.accumulate(last_in_cell)[:-1]))
    values = np.maximum(before, base)
    counts = np.bincount(cell, minlength=size)
    return float(keys[0]), scale, size, values, counts, cell


def build_linear_map(seg_first, cells_per_segment: float = 8.0) -> LinearMap:
    """Build the Linear Map over segment boundaries ``seg_first``.

    Each layer gets ``L = ceil(width / narrowest gap between boundaries) + 1`` cells,
    so a cell is no wider than the narrowest segment and holds at most one boundary.
    When segment widths are skewed that ``L`` explodes, so it is capped at
    ``cells_per_segment`` times the boundaries the layer holds; a cell left with two or
    more boundaries points to a child layer built the same way over just those
    boundaries (the multi-layer Linear Map). Each child holds fewer boundaries than
    its parent, so the recursion ends; a boundary sits in one layer per level of its
    path, so the map has at most about ``cells_per_segment`` cells per segment and
    level.

    Parameters
    ----------
    seg_first : array_like of int, shape (n_segments,)
        Strictly increasing segment boundaries (each segment's first key).
    cells_per_segment : float
        Cap on a layer's cells per boundary it holds, at least 1.

    Returns
    -------
    LinearMap
    """
    seg_first = _check_keys("seg_first", seg_first)
    if seg_first.shape[0] == 0:
        raise ValueError("seg_first must have at least 1 element(s), got 0")
    cells_per_segment = check_float("cells_per_segment", cells_per_segment, minimum=1.0)
    mins, scales, sizes, cell_blocks = [], [], [], []
    queue = deque([(0, seg_first.shape[0], 0)])
    while queue:
        lo, hi, base = queue.popleft()
        ids = np.arange(lo, hi, dtype=np.int64)
        kmin, scale, size, values, counts, cell = _layer_cells(
            seg_first[lo:hi], ids, base, cells_per_segment
        )
        for c in np.flatnonzero(counts >= 2):
            if counts[c] == hi - lo:
                raise RuntimeError("Linear Map layer failed to separate boundaries")
            members = ids[cell == c]
            child = len(sizes) + len(queue) + 1  # layers get ids in queue order
            queue.append((int(members[0]), int(members[-1]) + 1, int(values[c])))
            values[c] = -child - 1
        mins.append(kmin)
        scales.append(scale)
        sizes.append(size)
        cell_blocks.append(values)
    sizes_arr = np.array(sizes, dtype=np.int64)
    return LinearMap(
        layer_min=np.array(mins, dtype=np.float64),
        layer_scale=np.array(scales, dtype=np.float64),
        layer_size=sizes_arr,
        layer_offset=np.concatenate(([0], np.cumsum(sizes_arr)[:-1])).astype(np.int64),
        cells=np.concatenate(cell_blocks).astype(np.int64),
        seg_first=seg_first,
    )


def _single_segment_map() -> LinearMap:
    """A Linear Map with one segment: every key routes to segment 0, no comparison."""
    return build_linear_map(np.zeros(1, dtype=np.int64))


# ----------------------------------------------- choosing the error threshold


@dataclass(frozen=True)
class EpsCost:
    """One candidate of the error-threshold search."""

    eps: int  # error threshold tried
    n_segments: int  # segments the PLA needs at this threshold
    lm_cells: int  # cells of the Linear Map over those segments
    index_bytes: int  # segments plus Linear Map, in bytes
    search_comparisons: float  # 1 (routing) + log2(2 eps + 1) (last mile)
    cost: float  # search_comparisons + memory_weight * index_bytes / data_bytes


def choose_eps(
    keys,
    candidates: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256),
    memory_weight: float = 100.0,
    cells_per_segment: float = 8.0,
) -> tuple[int, tuple[EpsCost, ...]]:
    """Pick the error threshold that minimises a lookup-time plus memory cost.

    For each candidate ``eps`` the segments and the Linear Map are built and scored

        cost(eps) = 1 + log2(2 eps + 1) + memory_weight * index_bytes / (8 n),

    the comparisons of one lookup (one in the Linear Map, a binary search over the
    ``2 eps + 1`` slot window) plus the index's size relative to the ``8 n`` bytes of
    keys. With ``memory_weight=100`` an index as large as 1% of the data costs as
    much as one extra comparison.

    Parameters
    ----------
    keys : array_like of int, shape (n,)
        Strictly increasing keys in ``[0, 2**50)``, at least one.
    candidates : tuple of int
        Error thresholds to try, each at least 1.
    memory_weight : float
        Comparisons charged per unit of index-to-data size ratio, at least 0.
    cells_per_segment : float
        Linear Map cap (see :func:`build_linear_map`).

    Returns
    -------
    eps : int
        The cheapest candidate.
    table : tuple of EpsCost
        Every candidate's numbers, in the order given.
    """
    keys = _check_keys("keys", keys)
    if keys.shape[0] == 0:
        raise ValueError("keys must have at least 1 element(s), got 0")
    if not isinstance(candidates, tuple | list) or len(candidates) == 0:
        raise ValueError("candidates must be a non-empty tuple of integers")
    candidates = tuple(check_int("candidates[i]", c, minimum=1) for c in candidates)
    memory_weight = check_float("memory_weight", memory_weight, minimum=0.0)
    rows = []
    for eps in candidates:
        starts, _ = train_segments(keys, eps)
        lm = build_linear_map(keys[starts], cells_per_segment)
        index_bytes = starts.shape[0] * SEGMENT_BYTES + lm.nbytes
        search = 1.0 + math.log2(2 * eps + 1)
        cost = search + memory_weight * index_bytes / (8.0 * keys.shape[0])
        rows.append(
            EpsCost(eps, int(starts.shape[0]), lm.n_cells, index_bytes, search, cost)
        )
    best = min(rows, key=lambda r: r.cost)
    return best.eps, tuple(rows)


# ---------------------------------------------------------------- the slots


def _capacities(
    counts: np.ndarray, rank_err: np.ndarray, gap_ratio: float, max_fill: float
) -> np.ndarray:
    """Slots per segment: ``(count + 2 e) * (1 + gap_ratio)`` for a segment whose rank
    model is off by at most ``e`` (room for the stretched model of :func:`_layout`),
    and always room for one insert below ``max_fill``; no spare slots at all when
    ``gap_ratio`` is 0."""
    if gap_ratio == 0:
        return counts.astype(np.int64)
    caps = np.ceil((counts + 2 * rank_err) * (1 + gap_ratio)).astype(np.int64)
    return np.maximum(caps, np.ceil((counts + 1) / max_fill).astype(np.int64) + 1)


def _layout(keys, starts, slope_rank, gap_ratio, max_fill, gapped, model_weight):
    """Place sorted keys into segment slot arrays; return slots and slot models.

    Packed: key ``i`` of a segment goes to local slot ``i``; spare slots stay at the
    segment's end and the slot model is the rank model. Gapped (LMG): the rank model
    ``r(k)``, off by at most ``e`` on the segment, is stretched over the segment's
    slots, ``slot(k) = g * (r(k) + e)`` with ``g = cap / (count + 2 e)``, so every
    prediction falls inside the array. Key ``i`` aims at the blend
    ``w * slot(k_i) + (1 - w) * g * (i + e)`` of its predicted slot and its
    rank-proportional slot (``w = model_weight``), or the next free slot if an earlier
    key took it. At ``w = 1`` keys sit where the model looks (short searches); at
    ``w = 0`` every key is followed by the same share of gaps, in proportion to local
    key density and so to the inserts expected there (short shifts).

    Returns
    -------
    local_pos : int64 (n,), each key's slot within its segment
    key0, slope, icpt : (n_segments,), the slot models
    err : int64 (n_segments,), max |slot - predicted slot|
    counts, caps : int64 (n_segments,), keys and slots per segment
    """
    n, n_seg = keys.shape[0], starts.shape[0]
    counts = np.diff(np.append(starts, n))
    seg = np.repeat(np.arange(n_seg), counts)
    local = np.arange(n) - starts[seg]
    key0 = keys[starts]
    offset = (keys - key0[seg]).astype(np.float64)
    rank_err = np.maximum.reduceat(np.abs(slope_rank[seg] * offset - local), starts)
    rank_err = np.ceil(rank_err).astype(np.int64)
    caps = _capacities(counts, rank_err, gap_ratio, max_fill)
    if gapped:
        stretch = caps / (counts + 2.0 * rank_err)
        slope, icpt = slope_rank * stretch, rank_err * stretch
    else:
        slope, icpt = slope_rank.astype(np.float64), np.zeros(n_seg)
    exact = icpt[seg] + slope[seg] * offset
    pred = np.floor(exact + 0.5).astype(np.int64)
    if gapped:
        even = stretch[seg] * (local + rank_err[seg])
        aim = np.floor(model_weight * exact + (1 - model_weight) * even + 0.5)
        target = np.clip(aim.astype(np.int64), 0, caps[seg] - 1)
        big = 2 * int(caps.max()) + 2  # restarts the running maximum per segment
        shift = np.maximum.accumulate(target - local + seg * big) - seg * big
        local_pos = np.minimum(local + shift, caps[seg] - counts[seg] + local)
    else:
        local_pos = local
    err = np.maximum.reduceat(np.abs(local_pos - pred), starts)
    return local_pos, key0, slope, icpt, err, counts, caps


def _fill_slots(keys, starts, local_pos, caps, counts, size):
    """Slot and occupancy arrays: keys at their slots, each gap holding the next key
    of its segment (the sentinel after the segment's last key)."""
    n_seg = starts.shape[0]
    slot_start = np.concatenate(([0], np.cumsum(caps)[:-1])).astype(np.int64)
    total = int(caps.sum())
    seg = np.repeat(np.arange(n_seg), counts)
    pos = slot_start[seg] + local_pos
    slots = np.full(size, SENTINEL, dtype=np.int64)
    occupied = np.zeros(size, dtype=np.bool_)
    slots[pos] = keys
    occupied[pos] = True
    slots[:total] = np.minimum.accumulate(slots[:total][::-1])[::-1]
    slot_seg = np.repeat(np.arange(n_seg), caps)
    last = local_pos[starts + counts - 1]
    tail = (np.arange(total) - slot_start[slot_seg]) > last[slot_seg]
    slots[:total][tail] = SENTINEL
    return slots, occupied, slot_start, total


@dataclass
class SlotStore:
    """Segment models and their slot arrays, side by side in one flat array.

    Segment ``s`` owns ``slots[seg_start[s] : seg_start[s] + seg_cap[s]]``, predicts
    local slot ``floor(seg_icpt[s] + seg_slope[s] * (key - seg_key0[s]) + 1/2)`` and
    keeps every key within ``seg_err[s]`` slots of that prediction. A segment rebuilt
    after filling up moves to the end of the array (``used`` marks the end).
    """

    seg_key0: np.ndarray  # int64: key the model's offset is measured from
    seg_slope: np.ndarray  # float64: slots per key unit
    seg_icpt: np.ndarray  # float64: slot predicted for seg_key0
    seg_start: np.ndarray  # int64: first slot of the segment
    seg_cap: np.ndarray  # int64: slots of the segment
    seg_count: np.ndarray  # int64: keys stored
    seg_err: np.ndarray  # int64: max |slot - predicted slot|
    slots: np.ndarray  # int64: keys, and at gaps the next key to the right
    occupied: np.ndarray  # bool: which slots hold keys
    used: int  # slots in use, live or abandoned by a rebuild
    gap_ratio: float  # gaps per key given to a segment when (re)built
    gapped: bool  # spread gaps between keys (LMG) or keep them at the end
    model_weight: float  # LMG: weight of the model's slot in placing a key
    max_fill: float  # fill fraction beyond which a segment is rebuilt

    @classmethod
    def bulk_load(
        cls,
        keys,
        starts,
        slopes,
        *,
        gap_ratio: float,
        gapped: bool,
        model_weight: float,
        max_fill: float,
    ) -> SlotStore:
        """Lay out sorted ``keys`` cut into segments ``starts`` with rank ``slopes``."""
        local_pos, key0, slope, icpt, err, counts, caps = _layout(
            keys, starts, slopes, gap_ratio, max_fill, gapped, model_weight
        )
        reserve = int(caps.sum()) // 4 + 1024 if gap_ratio > 0 else 0
        slots, occupied, slot_start, total = _fill_slots(
            keys, starts, local_pos, caps, counts, int(caps.sum()) + reserve
        )
        return cls(
            key0.astype(np.int64),
            slope,
            icpt,
            slot_start,
            caps.astype(np.int64),
            counts.astype(np.int64),
            err.astype(np.int64),
            slots,
            occupied,
            total,
            float(gap_ratio),
            bool(gapped),
            float(model_weight),
            float(max_fill),
        )

    @classmethod
    def empty_buffer(cls, capacity: int) -> SlotStore:
        """One packed segment of ``capacity`` slots with a flat model (a sorted
        buffer searched by plain binary search over its keys)."""
        return cls(
            np.zeros(1, dtype=np.int64),
            np.zeros(1),
            np.zeros(1),
            np.zeros(1, dtype=np.int64),
            np.array([capacity], dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.full(capacity, SENTINEL, dtype=np.int64),
            np.zeros(capacity, dtype=np.bool_),
            capacity,
            0.0,
            False,
            1.0,
            1.0,
        )

    def model_arrays(self) -> tuple[np.ndarray, ...]:
        """``seg_key0, seg_slope, seg_icpt, seg_start, seg_cap`` for the kernels."""
        return (
            self.seg_key0,
            self.seg_slope,
            self.seg_icpt,
            self.seg_start,
            self.seg_cap,
        )

    @property
    def n_segments(self) -> int:
        """Number of segments."""
        return int(self.seg_cap.shape[0])

    @property
    def live_slots(self) -> int:
        """Slots owned by the segments (abandoned ones not counted)."""
        return int(self.seg_cap.sum())

    def segment_keys(self, s: int) -> np.ndarray:
        """The keys of segment ``s``, in order."""
        lo, hi = int(self.seg_start[s]), int(self.seg_start[s] + self.seg_cap[s])
        return self.slots[lo:hi][self.occupied[lo:hi]]

    def all_keys(self) -> np.ndarray:
        """Every stored key, in order."""
        return np.concatenate([self.segment_keys(s) for s in range(self.n_segments)])

    def rebuild(self, s: int) -> int:
        """Re-lay out segment ``s`` with fresh gaps and a refitted model.

        The model is the line through the segment's first and last keys; the new
        slot array goes to the end of the flat array. Returns the keys moved.
        """
        keys = self.segment_keys(s)
        m = keys.shape[0]
        span = float(keys[-1] - keys[0])
        slope = np.array([(m - 1) / span if m > 1 else 0.0])
        starts = np.zeros(1, dtype=np.int64)
        local_pos, _, seg_slope, seg_icpt, err, counts, caps = _layout(
            keys,
            starts,
            slope,
            self.gap_ratio,
            self.max_fill,
            self.gapped,
            self.model_weight,
        )
        slots, occupied, _, cap = _fill_slots(
            keys, starts, local_pos, caps, counts, int(caps[0])
        )
        if self.used + cap > self.slots.shape[0]:
            grow = max(self.slots.shape[0], cap)
            self.slots = np.concatenate((self.slots, np.full(grow, SENTINEL)))
            self.occupied = np.concatenate((self.occupied, np.zeros(grow, np.bool_)))
        self.slots[self.used : self.used + cap] = slots
        self.occupied[self.used : self.used + cap] = occupied
        self.seg_key0[s], self.seg_slope[s] = keys[0], seg_slope[0]
        self.seg_icpt[s] = seg_icpt[0]
        self.seg_start[s], self.seg_cap[s], self.seg_err[s] = self.used, cap, err[0]
        self.used += cap
        return m

    @property
    def nbytes(self) -> int:
        """Bytes of the live slots (8 per key, 1 per occupancy flag) and models."""
        return self.live_slots * 9 + self.n_segments * SEGMENT_BYTES


def _lookup(lm: LinearMap, store: SlotStore, queries: np.ndarray):
    return lm_lookup(
        queries,
        *lm.arrays(),
        *store.model_arrays(),
        store.seg_err,
        store.slots,
        store.occupied,
    )


@dataclass(frozen=True)
class InsertCost:
    """What inserting one batch cost, counted in elementary operations."""

    moves: np.ndarray  # int64, (m,): keys shifted by each insert
    comps: np.ndarray  # int64, (m,): key comparisons of each insert
    extra_moves: int  # keys rewritten by segment rebuilds or buffer merges
    rebuilds: int  # segment rebuilds or buffer merges

    @property
    def total(self) -> int:
        """Comparisons plus moves, including rebuilds and merges."""
        return int(self.moves.sum() + self.comps.sum() + self.extra_moves)


def _insert_into(index, new_keys: np.ndarray) -> InsertCost:
    """Run the insert kernel on ``index.state()``; whenever the target segment is
    full, ``index.make_room(key)`` rebuilds or merges and returns the keys it moved."""
    moves = np.zeros(new_keys.shape[0], dtype=np.int64)
    comps = np.zeros_like(moves)
    extra, rebuilds, i = 0, 0, 0
    while True:
        lm, store = index.state()
        i = gapped_insert(
            new_keys,
            i,
            *lm.arrays(),
            *store.model_arrays(),
            store.seg_count,
            store.seg_err,
            store.slots,
            store.occupied,
            store.max_fill,
            moves,
            comps,
        )
        if i == new_keys.shape[0]:
            return InsertCost(moves, comps, extra, rebuilds)
        extra += index.make_room(int(new_keys[i]))
        rebuilds += 1


# --------------------------------------------------------------- the indexes


class LearnedIndex:
    """LMIndex: a Linear Map over error-bounded segments; with ``gapped=True``, LMG.

    Parameters
    ----------
    keys : array_like of int, shape (n,)
        Strictly increasing keys in ``[0, 2**50)``, at least one.
    eps : float
        The segments' error threshold, at least 1.
    gapped : bool
        LMG (gaps spread between keys at their predicted slots) or the no-gap
        LMIndex (the same spare slots, all at each segment's end).
    gap_ratio : float
        Spare slots per key in each segment, at least 0.
    model_weight : float
        LMG placement, in [0, 1]: 1 puts each key at its model's slot, 0 spreads the
        gaps evenly over the keys (see ``_layout``).
    max_fill : float
        A segment whose fill fraction would pass this is rebuilt, in (0, 1].
    cells_per_segment : float
        Linear Map cap (see :func:`build_linear_map`).
    """

    def __init__(
        self,
        keys,
        eps: float,
        *,
        gapped: bool = True,
        gap_ratio: float = 1.0,
        model_weight: float = 0.75,
        max_fill: float = 0.8,
        cells_per_segment: float = 8.0,
    ):
        keys = _check_keys("keys", keys)
        if keys.shape[0] == 0:
            raise ValueError("keys must have at least 1 element(s), got 0")
        self.eps = check_float("eps", eps, minimum=1.0)
        gap_ratio = check_float("gap_ratio", gap_ratio, minimum=0.0)
        model_weight = check_float(
            "model_weight", model_weight, minimum=0.0, maximum=1.0
        )
        max_fill = check_float(
            "max_fill", max_fill, minimum=0.0, strict_minimum=True, maximum=1.0
        )
        starts, slopes = train_segments(keys, self.eps)
        self.max_rank_error = float(rank_errors(keys, starts, slopes).max())
        self.lm = build_linear_map(keys[starts], cells_per_segment)
        self.store = SlotStore.bulk_load(
            keys,
            starts,
            slopes,
            gap_ratio=gap_ratio,
            gapped=bool(gapped),
            model_weight=model_weight,
            max_fill=max_fill,
        )
        self.rebuilds = 0

    @property
    def n_segments(self) -> int:
        """Number of segments."""
        return self.store.n_segments

    @property
    def nbytes(self) -> int:
        """Bytes of slots, segment models and Linear Map."""
        return self.store.nbytes + self.lm.nbytes

    def lookup(self, queries) -> tuple[np.ndarray, np.ndarray]:
        """Global slot of each query (-1 if absent) and comparisons spent."""
        queries = check_array("queries", queries, ndim=1, dtype=np.int64)
        return _lookup(self.lm, self.store, queries)

    def contains(self, queries) -> tuple[np.ndarray, np.ndarray]:
        """Whether each query is stored, and the comparisons spent finding out."""
        pos, comps = self.lookup(queries)
        return pos >= 0, comps

    def state(self) -> tuple[LinearMap, SlotStore]:
        """The Linear Map and slot store the insert kernel works on."""
        return self.lm, self.store

    def make_room(self, key: int) -> int:
        """Rebuild the full segment that ``key`` routes to; return keys moved."""
        seg, _, _ = self.lm.route(np.array([key], dtype=np.int64))
        self.rebuilds += 1
        return self.store.rebuild(int(seg[0]))

    def insert(self, new_keys) -> InsertCost:
        """Insert keys absent from the index, in order; count comparisons and moves."""
        new_keys = check_array("new_keys", new_keys, ndim=1, dtype=np.int64)
        return _insert_into(self, new_keys)

    def keys(self) -> np.ndarray:
        """Every stored key, in order."""
        return self.store.all_keys()

    def scan_slots_per_key(self, start_keys, length: int) -> float:
        """Slots read per key returned by range scans of ``length`` keys.

        Measured on the bulk-loaded layout (segments still in key order).
        """
        if self.rebuilds:
            raise RuntimeError("scans are measured before any segment is rebuilt")
        length = check_int("length", length, minimum=1)
        pos, _ = self.lookup(start_keys)
        if np.any(pos < 0):
            raise ValueError("start_keys must all be stored keys")
        occ = np.flatnonzero(self.store.occupied[: self.store.used])
        rank = np.searchsorted(occ, pos)
        end = np.minimum(rank + length - 1, occ.shape[0] - 1)
        return float((occ[end] - pos + 1).sum() / (end - rank + 1).sum())


class DeltaBufferIndex:
    """A static, packed learned index plus a sorted insert buffer, merged when full.

    A stand-in for a PGM-style index with a delta buffer: inserts go into the sorted
    buffer (shifting larger buffered keys); when the buffer is full, it is merged into
    the main array and the segments and Linear Map are retrained.

    Parameters
    ----------
    keys, eps, cells_per_segment
        As in :class:`LearnedIndex`.
    buffer_fraction : float
        Buffer capacity as a fraction of the bulk-loaded key count, in (0, 1].
    """

    def __init__(
        self,
        keys,
        eps: float,
        *,
        buffer_fraction: float = 0.05,
        cells_per_segment: float = 8.0,
    ):
        self.main = LearnedIndex(
            keys, eps, gapped=False, gap_ratio=0.0, cells_per_segment=cells_per_segment
        )
        fraction = check_float(
            "buffer_fraction",
            buffer_fraction,
            minimum=0.0,
            strict_minimum=True,
            maximum=1.0,
        )
        self.eps, self.cells_per_segment = float(eps), cells_per_segment
        self.capacity = max(1, math.ceil(fraction * np.asarray(keys).shape[0]))
        self.buffer_lm = _single_segment_map()
        self.buffer = SlotStore.empty_buffer(self.capacity)
        self.rebuilds = 0
        self.max_rank_error = self.main.max_rank_error
        self.lm = self.main.lm

    @property
    def n_segments(self) -> int:
        """Segments of the main index."""
        return self.main.n_segments

    @property
    def nbytes(self) -> int:
        """Bytes of the main index plus the buffer."""
        return self.main.nbytes + self.buffer.nbytes + self.buffer_lm.nbytes

    def contains(self, queries) -> tuple[np.ndarray, np.ndarray]:
        """Whether each query is stored (main index, then buffer), and comparisons."""
        queries = check_array("queries", queries, ndim=1, dtype=np.int64)
        found, comps = self.main.contains(queries)
        missing = ~found
        if self.buffer.seg_count[0] > 0 and missing.any():
            pos, extra = _lookup(self.buffer_lm, self.buffer, queries[missing])
            found[missing] = pos >= 0
            comps[missing] += extra
        return found, comps

    def state(self) -> tuple[LinearMap, SlotStore]:
        """The buffer's map and store, which the insert kernel works on."""
        return self.buffer_lm, self.buffer

    def make_room(self, key: int) -> int:
        """Merge the full buffer into the main index; return keys moved."""
        merged = np.sort(np.concatenate((self.main.keys(), self.buffer.all_keys())))
        self.main = LearnedIndex(
            merged,
            self.eps,
            gapped=False,
            gap_ratio=0.0,
            cells_per_segment=self.cells_per_segment,
        )
        self.lm = self.main.lm
        self.buffer = SlotStore.empty_buffer(self.capacity)
        self.rebuilds += 1
        return int(merged.shape[0])

    def insert(self, new_keys) -> InsertCost:
        """Insert keys into the buffer, merging whenever it fills."""
        new_keys = check_array("new_keys", new_keys, ndim=1, dtype=np.int64)
        return _insert_into(self, new_keys)

    def keys(self) -> np.ndarray:
        """Every stored key, in order."""
        return np.sort(np.concatenate((self.main.keys(), self.buffer.all_keys())))

    def scan_slots_per_key(self, start_keys, length: int) -> float:
        """Slots read per key by range scans of the main index."""
        return self.main.scan_slots_per_key(start_keys, length)


class SortedArrayIndex:
    """A sorted array searched by binary search: a one-segment index whose flat
    model predicts nothing, so its error window is the whole array."""

    def __init__(self, keys):
        keys = _check_keys("keys", keys)
        if keys.shape[0] == 0:
            raise ValueError("keys must have at least 1 element(s), got 0")
        self._set(keys)
        self.rebuilds = 0
        self.eps = float(keys.shape[0])
        self.max_rank_error = float(keys.shape[0] - 1)

    def _set(self, keys: np.ndarray) -> None:
        self._keys = keys
        self.lm = _single_segment_map()
        self.store = SlotStore.empty_buffer(keys.shape[0])
        self.store.slots[:] = keys
        self.store.occupied[:] = True
        self.store.seg_count[0] = keys.shape[0]
        self.store.seg_err[0] = keys.shape[0] - 1

    @property
    def n_segments(self) -> int:
        """One (the whole array)."""
        return 1

    @property
    def nbytes(self) -> int:
        """Eight bytes per key."""
        return 8 * int(self._keys.shape[0])

    def contains(self, queries) -> tuple[np.ndarray, np.ndarray]:
        """Whether each query is stored, and the binary search's comparisons."""
        queries = check_array("queries", queries, ndim=1, dtype=np.int64)
        pos, comps = _lookup(self.lm, self.store, queries)
        return pos >= 0, comps

    def insert(self, new_keys) -> InsertCost:
        """Insert keys one by one as an array insert would; count moves exactly."""
        new_keys = check_array("new_keys", new_keys, ndim=1, dtype=np.int64)
        universe = np.sort(np.concatenate((self._keys, new_keys)))
        present = np.ones(universe.shape[0], dtype=np.bool_)
        ranks = np.searchsorted(universe, new_keys)
        present[ranks] = False
        moves = sorted_insert_moves(present, ranks)
        sizes = self._keys.shape[0] + np.arange(new_keys.shape[0])
        comps = np.ceil(np.log2(sizes + 1.0)).astype(np.int64)
        self._set(universe)
        return InsertCost(moves, comps, 0, 0)

    def keys(self) -> np.ndarray:
        """Every stored key, in order."""
        return self._keys

    def scan_slots_per_key(self, start_keys, length: int) -> float:
        """One slot per key: the array has no gaps."""
        return 1.0


def make_index(
    variant: str,
    keys,
    eps: float,
    *,
    gap_ratio: float = 1.0,
    model_weight: float = 0.75,
    max_fill: float = 0.8,
    buffer_fraction: float = 0.05,
    cells_per_segment: float = 8.0,
):
    """Bulk-load one of the chapter's indexes.

    Parameters
    ----------
    variant : {"lmg", "lmindex", "delta_buffer", "sorted_array"}
        LMG (the paper's mechanism), the same index without gaps, a static index with
        a delta buffer, or a sorted array with binary search.
    keys, eps, gap_ratio, model_weight, max_fill, buffer_fraction, cells_per_segment
        As in :class:`LearnedIndex` and :class:`DeltaBufferIndex`.
    """
    variant = check_choice("variant", variant, VARIANTS)
    if variant == "sorted_array":
        return SortedArrayIndex(keys)
    if variant == "delta_buffer":
        return DeltaBufferIndex(
            keys,
            eps,
            buffer_fraction=buffer_fraction,
            cells_per_segment=cells_per_segment,
        )
    return LearnedIndex(
        keys,
        eps,
        gapped=variant == "lmg",
        gap_ratio=gap_ratio,
        model_weight=model_weight,
        max_fill=max_fill,
        cells_per_segment=cells_per_segment,
    )


# ---------------------------------------------------------------- experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the index under test (the paper's LMG or a baseline)."""

    variant: str = "lmg"  # index the claim is checked on: one of VARIANTS
    distributions: tuple[str, ...] = DISTRIBUTIONS  # key distributions to run
    n_keys: int = 100_000  # keys bulk-loaded
    n_inserts: int = 50_000  # keys inserted afterwards, from the same distribution
    n_batches: int = 20  # read-write batches the inserts are split into
    n_lookups: int = 20_000  # point lookups right after the bulk load
    n_scans: int = 2_000  # range scans right after the bulk load
    scan_length: int = 100  # keys per range scan
    eps: int | None = None  # error threshold; None lets the cost model choose
    memory_weight: float = 100.0  # cost model: comparisons per index/data size ratio
    gap_ratio: float = 1.0  # LMG: spare slots per key at (re)build
    model_weight: float = 0.75  # LMG: 1 = keys at model slots, 0 = gaps even by rank
    max_fill: float = 0.8  # LMG: fill fraction that triggers a segment rebuild
    buffer_fraction: float = 0.05  # delta buffer: capacity as a fraction of n_keys
    cells_per_segment: float = 8.0  # Linear Map: cap on a layer's cells per boundary
    seed: int = 0  # seeds the keys, the queries and the insert order

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        if not isinstance(self.distributions, tuple) or not self.distributions:
            raise ValueError("distributions must be a non-empty tuple of names")
        for name in self.distributions:
            check_choice("distributions[i]", name, DISTRIBUTIONS)
        check_int("n_keys", self.n_keys, minimum=100)
        check_int("n_inserts", self.n_inserts, minimum=1)
        check_int("n_batches", self.n_batches, minimum=2, maximum=self.n_inserts)
        check_int("n_lookups", self.n_lookups, minimum=1)
        check_int("n_scans", self.n_scans, minimum=1)
        check_int("scan_length", self.scan_length, minimum=1)
        if self.eps is not None:
            check_int("eps", self.eps, minimum=1)
        check_float("memory_weight", self.memory_weight, minimum=0.0)
        check_float("gap_ratio", self.gap_ratio, minimum=0.0)
        check_float("model_weight", self.model_weight, minimum=0.0, maximum=1.0)
        check_float(
            "max_fill", self.max_fill, minimum=0.0, strict_minimum=True, maximum=1.0
        )
        check_float(
            "buffer_fraction",
            self.buffer_fraction,
            minimum=0.0,
            strict_minimum=True,
            maximum=1.0,
        )
        check_float("cells_per_segment", self.cells_per_segment, minimum=1.0)
        check_int("seed", self.seed, minimum=0)


@dataclass(frozen=True)
class VariantMetrics:
    """What one index did on one key distribution (counts asserted, times shown)."""

    variant: str
    distribution: str
    eps: float  # error threshold (the whole array for the sorted array)
    n_segments: int
    lm_layers: int  # Linear Map layers
    lm_cells: int  # Linear Map cells over all layers
    max_rank_error: float  # max |predicted - true rank| after bulk load
    lookups_correct: float  # fraction of lookups that found their key
    route_correct: float  # fraction routed to the segment that covers the key
    max_route_comparisons: int  # most comparisons the Linear Map spent on a key
    mean_route_depth: float  # Linear Map layers visited per lookup
    mean_lookup_comparisons: float  # comparisons per lookup after bulk load
    scan_slots_per_key: float  # slots read per key returned by range scans
    memory_bytes: int  # bytes after bulk load
    mean_moves_per_insert: float  # keys shifted per insert (rebuilds excluded)
    batch_cost: tuple[int, ...]  # comparisons + moves of each read-write batch
    batch_cost_cv: float  # coefficient of variation of batch_cost
    rebuilds: int  # segment rebuilds (LMG, LMIndex) or buffer merges (delta buffer)
    batch_lookups_correct: float  # fraction of the batches' lookups that found keys
    mean_batch_lookup_comparisons: float  # comparisons per lookup during the batches
    bulk_load_seconds: float  # wall time of the bulk load (display only)
    lookup_ns: float  # wall time per lookup after bulk load (display only)
    batch_seconds: tuple[float, ...]  # wall time of each batch (display only)


@dataclass(frozen=True)
class Result:
    """All indexes on all distributions, and the error thresholds chosen."""

    config: Config
    eps: dict  # distribution -> error threshold used
    eps_table: dict  # distribution -> tuple of EpsCost (empty if eps was fixed)
    metrics: tuple[VariantMetrics, ...]

    def get(self, distribution: str, variant: str) -> VariantMetrics:
        """The metrics of one index on one distribution."""
        for m in self.metrics:
            if m.distribution == distribution and m.variant == variant:
                return m
        raise KeyError(f"no metrics for ({distribution!r}, {variant!r})")

    def rows(self, columns: tuple[str, ...]) -> list[list]:
        """One row per (distribution, variant) with the named metric fields."""
        return [
            [m.distribution, m.variant] + [getattr(m, c) for c in columns]
            for m in self.metrics
        ]


def coefficient_of_variation(values) -> float:
    """Standard deviation over mean (population form) of positive values."""
    values = check_array(
        "values", values, ndim=1, dtype=np.float64, min_size=1, finite=True
    )
    mean = float(values.mean())
    if mean <= 0:
        raise ValueError("values must have a positive mean")
    return float(values.std() / mean)


def _split_workload(config: Config, distribution: str, rng: np.random.Generator):
    """Bulk-load keys (sorted) and insert keys (random order), disjoint."""
    all_keys = make_keys(distribution, config.n_keys + config.n_inserts, rng)
    order = rng.permutation(all_keys.shape[0])
    keys = np.sort(all_keys[order[: config.n_keys]])
    return keys, all_keys[order[config.n_keys :]]


def _measure(
    variant: str,
    config: Config,
    keys: np.ndarray,
    new_keys: np.ndarray,
    eps: int,
    distribution: str,
    rng: np.random.Generator,
) -> VariantMetrics:
    """Bulk-load one index, probe it, then run the read-write batches."""
    t0 = time.perf_counter()
    index = make_index(
        variant,
        keys,
        eps,
        gap_ratio=config.gap_ratio,
        model_weight=config.model_weight,
        max_fill=config.max_fill,
        buffer_fraction=config.buffer_fraction,
        cells_per_segment=config.cells_per_segment,
    )
    bulk_seconds = time.perf_counter() - t0
    queries = rng.choice(keys, size=config.n_lookups)
    index.contains(queries[:8])  # load the compiled kernel before timing
    t0 = time.perf_counter()
    found, comps = index.contains(queries)
    lookup_ns = (time.perf_counter() - t0) / config.n_lookups * 1e9
    seg, route_comps, depth = index.lm.route(queries)
    truth = np.maximum(np.searchsorted(index.lm.seg_first, queries, "right") - 1, 0)
    scan = index.scan_slots_per_key(
        rng.choice(keys, size=config.n_scans), config.scan_length
    )
    memory = index.nbytes
    costs, seconds, moves, batch_found, batch_comps = [], [], [], [], []
    done = 0
    for batch in np.array_split(new_keys, config.n_batches):
        present = np.concatenate((keys, new_keys[: done + batch.shape[0]]))
        probe = rng.choice(present, size=batch.shape[0])
        t0 = time.perf_counter()
        cost = index.insert(batch)
        ok, probe_comps = index.contains(probe)
        seconds.append(time.perf_counter() - t0)
        costs.append(cost.total + int(probe_comps.sum()))
        moves.append(cost.moves)
        batch_found.append(ok)
        batch_comps.append(probe_comps)
        done += batch.shape[0]
    return VariantMetrics(
        variant=variant,
        distribution=distribution,
        eps=float(index.eps),
        n_segments=index.n_segments,
        lm_layers=index.lm.n_layers,
        lm_cells=index.lm.n_cells,
        max_rank_error=index.max_rank_error,
        lookups_correct=float(found.mean()),
        route_correct=float(np.mean(seg == truth)),
        max_route_comparisons=int(route_comps.max()),
        mean_route_depth=float(depth.mean()),
        mean_lookup_comparisons=float(comps.mean()),
        scan_slots_per_key=scan,
        memory_bytes=int(memory),
        mean_moves_per_insert=float(np.concatenate(moves).mean()),
        batch_cost=tuple(costs),
        batch_cost_cv=coefficient_of_variation(costs),
        rebuilds=int(index.rebuilds),
        batch_lookups_correct=float(np.concatenate(batch_found).mean()),
        mean_batch_lookup_comparisons=float(np.concatenate(batch_comps).mean()),
        bulk_load_seconds=bulk_seconds,
        lookup_ns=lookup_ns,
        batch_seconds=tuple(seconds),
    )


def run_experiment(config: Config) -> Result:
    """Bulk-load, probe and update every index on every distribution.

    For each distribution: draw ``n_keys + n_inserts`` distinct keys and split them
    at random into bulk-loaded and inserted keys; choose the error threshold with the
    cost model (unless ``config.eps`` fixes it); then, for each index, count the
    comparisons of ``n_lookups`` point lookups and check routing and results, measure
    range scans, and run ``n_batches`` read-write batches (each inserts its share of
    the new keys, then looks up as many random stored keys), recording comparisons
    plus element moves per batch.

    Parameters
    ----------
    config : Config

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    eps_used, eps_tables, metrics = {}, {}, []
    for d_index, distribution in enumerate(config.distributions):
        rng = np.random.default_rng([config.seed, DISTRIBUTIONS.index(distribution)])
        keys, new_keys = _split_workload(config, distribution, rng)
        if config.eps is None:
            eps, table = choose_eps(
                keys,
                memory_weight=config.memory_weight,
                cells_per_segment=config.cells_per_segment,
            )
        else:
            eps, table = config.eps, ()
        eps_used[distribution], eps_tables[distribution] = eps, table
        for variant in VARIANTS:
            variant_rng = np.random.default_rng([config.seed, d_index, 7])
            metrics.append(
                _measure(
                    variant, config, keys, new_keys, eps, distribution, variant_rng
                )
            )
            log.info("%s/%s done", distribution, variant)
    return Result(config, eps_used, eps_tables, tuple(metrics))


def check_claim(result: Result) -> None:
    """Check the chapter's claim on the index named by ``result.config.variant``.

    On every distribution the index under test must

    1. find every key, during the batches too, with the segments' rank error within
       ``eps`` after the bulk load;
    2. route every lookup to the right segment with at most 2 comparisons in the
       Linear Map;
    3. shift at least 5x fewer keys per insert than the no-gap LMIndex, and have a
       per-batch cost whose coefficient of variation is at least 2x lower than the
       delta-buffer index's;
    4. spend at most half of ``log2(n_keys)`` comparisons per lookup.

    Raises
    ------
    paperlab.claims.ClaimFailed
        If any part fails; the message names the distribution and the numbers.
    """
    check_instance("result", result, Result)
    variant = result.config.variant
    half_log = MAX_LOOKUP_FRACTION * math.log2(result.config.n_keys)
    for d in result.config.distributions:
        m = result.get(d, variant)
        no_gap, delta = result.get(d, "lmindex"), result.get(d, "delta_buffer")
        require(
            m.lookups_correct == 1.0 and m.batch_lookups_correct == 1.0,
            f"{d}: {variant} missed keys ({m.lookups_correct:.4f} after bulk "
            f"load, {m.batch_lookups_correct:.4f} during batches)",
        )
        require(
            m.max_rank_error <= m.eps,
            f"{d}: max rank error {m.max_rank_error:.2f} > eps {m.eps:g}",
        )
        require(
            m.route_correct == 1.0 and m.max_route_comparisons <= MAX_ROUTE_COMPARISONS,
            f"{d}: routing {m.route_correct:.4f} correct, up to "
            f"{m.max_route_comparisons} comparisons",
        )
        move_ratio = no_gap.mean_moves_per_insert / max(m.mean_moves_per_insert, 1e-9)
        require(
            move_ratio >= MIN_MOVE_REDUCTION,
            f"{d}: {variant} shifts {m.mean_moves_per_insert:.2f} keys per insert,"
            f" only {move_ratio:.2f}x fewer than the no-gap index",
        )
        cv_ratio = delta.batch_cost_cv / m.batch_cost_cv
        require(
            cv_ratio >= MIN_CV_REDUCTION,
            f"{d}: batch-cost CV {m.batch_cost_cv:.3f} is only {cv_ratio:.2f}x "
            f"below the delta buffer's {delta.batch_cost_cv:.3f}",
        )
        require(
            m.mean_lookup_comparisons <= half_log,
            f"{d}: {m.mean_lookup_comparisons:.2f} comparisons per lookup > "
            f"{half_log:.2f} (half of log2 n)",
        )


# ---------------------------------------------------------- exploring and plots


@dataclass(frozen=True)
class ExploreResult:
    """LMG and the no-gap LMIndex built at one error threshold (for the widget)."""

    eps: int
    keys: np.ndarray = field(repr=False)  # bulk-loaded keys, sorted
    starts: np.ndarray = field(repr=False)  # first key index of each segment
    slopes: np.ndarray = field(repr=False)  # rank slope of each segment
    n_segments: int
    lm_layers: int
    lm_cells: int
    lookup_comparisons: dict  # variant -> mean comparisons per lookup
    moves_per_insert: dict  # variant -> mean keys shifted per insert


def explore_eps(
    eps: int,
    *,
    distribution: str = "lognormal",
    n_keys: int = 50_000,
    n_inserts: int = 10_000,
    n_lookups: int = 10_000,
    seed: int = 0,
) -> ExploreResult:
    """Build LMG and the no-gap LMIndex at error threshold ``eps`` and probe both.

    Parameters
    ----------
    eps : int
        Error threshold, at least 1.
    distribution : str
        One of :data:`DISTRIBUTIONS`.
    n_keys, n_inserts, n_lookups : int
        Keys bulk-loaded, keys inserted afterwards, lookups counted.
    seed : int
        Seeds the keys and queries.

    Returns
    -------
    ExploreResult
    """
    eps = check_int("eps", eps, minimum=1)
    n_keys = check_int("n_keys", n_keys, minimum=2)
    n_inserts = check_int("n_inserts", n_inserts, minimum=1)
    n_lookups = check_int("n_lookups", n_lookups, minimum=1)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    all_keys = make_keys(distribution, n_keys + n_inserts, rng)
    order = rng.permutation(all_keys.shape[0])
    keys, new_keys = np.sort(all_keys[order[:n_keys]]), all_keys[order[n_keys:]]
    queries = rng.choice(keys, size=n_lookups)
    comps, moves = {}, {}
    for variant in ("lmg", "lmindex"):
        index = LearnedIndex(keys, eps, gapped=variant == "lmg")
        comps[variant] = float(index.contains(queries)[1].mean())
        moves[variant] = float(index.insert(new_keys).moves.mean())
    starts, slopes = train_segments(keys, eps)
    return ExploreResult(
        eps,
        keys,
        starts,
        slopes,
        index.n_segments,
        index.lm.n_layers,
        index.lm.n_cells,
        comps,
        moves,
    )


def plot_segments(
    ax, keys, starts, slopes, lo: int, hi: int, max_points: int = 1500
) -> None:
    """Draw the ranks of keys ``lo..hi-1`` and the segments' predicted ranks.

    Both are drawn minus the straight line through the window's first and last key,
    so that deviations of a few ranks stay visible over thousands of keys; dotted
    vertical lines mark where segments start.

    Parameters
    ----------
    ax : matplotlib Axes
    keys : array_like of int, shape (n,)
    starts, slopes : array_like, shape (n_segments,)
        As returned by :func:`train_segments`.
    lo, hi : int
        Rank window, ``0 <= lo < hi - 1 < n``.
    max_points : int
        Keys drawn at most (evenly thinned).
    """
    from paperlab.plotting import COLORS

    keys = _check_keys("keys", keys)
    lo = check_int("lo", lo, minimum=0)
    hi = check_int("hi", hi, minimum=lo + 2, maximum=keys.shape[0])
    step = max(1, (hi - lo) // check_int("max_points", max_points, minimum=2))
    origin = keys[lo]
    trend = (hi - 1 - lo) / float(keys[hi - 1] - origin)

    def detrended(x, rank):
        return rank - lo - trend * (x - origin)

    ranks = np.arange(lo, hi, step)
    ax.plot(
        keys[ranks] - origin,
        detrended(keys[ranks], ranks),
        ".",
        ms=2.5,
        color=COLORS[0],
        label="keys (true rank)",
    )
    bounds = np.append(starts, keys.shape[0])
    first = int(np.searchsorted(bounds, lo, side="right")) - 1
    for s in range(first, starts.shape[0]):
        a, b = max(int(bounds[s]), lo), min(int(bounds[s + 1]), hi)
        if a >= hi:
            break
        x = np.array([keys[a], keys[b - 1]])
        y = bounds[s] + slopes[s] * (x - keys[bounds[s]])
        label = "segment models" if s == first else None
        ax.plot(x - origin, detrended(x, y), "-", lw=1.6, color=COLORS[1], label=label)
        ax.axvline(keys[a] - origin, color="0.6", lw=0.6, ls=":")


def plot_batch_costs(result: Result, distribution: str):
    """Figure: comparisons + moves per read-write batch, one line per index."""
    from matplotlib.ticker import MaxNLocator

    from paperlab.plotting import COLORS, label_axes, subplots

    distribution = check_choice(
        "distribution", distribution, result.config.distributions
    )
    fig, ax = subplots(width=6.4, height=4.2)
    for color, variant in zip(COLORS[: len(VARIANTS)], VARIANTS, strict=True):
        m = result.get(distribution, variant)
        batches = np.arange(1, len(m.batch_cost) + 1)
        ax.plot(
            batches,
            m.batch_cost,
            "o-",
            ms=3,
            color=color,
            label=f"{VARIANT_NAMES[variant]} (CV {m.batch_cost_cv:.2f})",
        )
    ax.set_yscale("log")
    per_batch = result.config.n_inserts // result.config.n_batches
    label_axes(
        ax,
        title=f"Cost of each read-write batch ({distribution} keys)",
        xlabel=f"batch ({per_batch:,} inserts + {per_batch:,} lookups each)",
        ylabel="comparisons + moves per batch",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
    return fig


def plot_explore(result: ExploreResult):
    """Figure for the widget: segments in a key window, and per-operation costs."""
    from paperlab.plotting import COLORS, label_axes, subplots

    check_instance("result", result, ExploreResult)
    fig, (left, right) = subplots(1, 2, width=10.0, height=3.6)
    n = result.keys.shape[0]
    window = int(min(n, max(200, 3 * n // result.n_segments)))
    lo = (n - window) // 2
    plot_segments(left, result.keys, result.starts, result.slopes, lo, lo + window)
    label_axes(
        left,
        title=f"eps = {result.eps}: {result.n_segments:,} segments, "
        f"{result.lm_cells:,} LM cells in {result.lm_layers} layer(s)",
        xlabel="key minus the window's first key (key units)",
        ylabel="rank minus window trend (positions)",
    )
    groups = ["comparisons per lookup", "keys shifted per insert"]
    x = np.arange(2)
    for offset, color, variant, name in (
        (-0.2, COLORS[0], "lmg", "LMG"),
        (0.2, COLORS[1], "lmindex", "LMIndex"),
    ):
        values = [
            result.lookup_comparisons[variant],
            max(result.moves_per_insert[variant], 1e-2),
        ]
        ax_bars = right.bar(x + offset, values, width=0.4, color=color, label=name)
        right.bar_label(ax_bars, fmt="%.1f", fontsize=8)
    right.set_xticks(x, groups)
    right.set_yscale("log")
    label_axes(
        right,
        title="Cost per operation",
        xlabel="operation",
        ylabel="count per operation (log scale)",
    )
    return fig


def plot_summary(result: Result):
    """Figure: comparisons per lookup and keys shifted per insert, by distribution."""
    from paperlab.plotting import COLORS, label_axes, subplots

    check_instance("result", result, Result)
    dists = result.config.distributions
    fig, (left, right) = subplots(1, 2, width=10.0, height=3.6)
    x = np.arange(len(dists))
    width = 0.8 / len(VARIANTS)
    for j, variant in enumerate(VARIANTS):
        ms = [result.get(d, variant) for d in dists]
        shift = (j - (len(VARIANTS) - 1) / 2) * width
        kwargs = {"width": width, "color": COLORS[j], "label": VARIANT_NAMES[variant]}
        left.bar(x + shift, [m.mean_lookup_comparisons for m in ms], **kwargs)
        right.bar(x + shift, [max(m.mean_moves_per_insert, 1e-2) for m in ms], **kwargs)
    limit = MAX_LOOKUP_FRACTION * math.log2(result.config.n_keys)
    left.axhline(limit, color="0.3", ls="--", lw=1, label="claim: half of log2 n")
    right.set_yscale("log")
    for ax in (left, right):
        ax.set_xticks(x, dists)
    label_axes(
        left,
        title="Point lookups after bulk load",
        xlabel="key distribution",
        ylabel="comparisons per lookup",
    )
    label_axes(
        right,
        title="Inserts (50% more keys)",
        xlabel="key distribution",
        ylabel="keys shifted per insert (log scale)",
        legend=False,
    )
    left.legend(fontsize=7, loc="upper left")
    return fig

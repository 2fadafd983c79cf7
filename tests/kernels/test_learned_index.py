"""The learned-index kernels against their plain-Python references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import learned_index as k
from paperlab.systems_data import lmg_learned_index_gaps as ch

SETTINGS = settings(max_examples=40, deadline=None)


def sorted_keys(min_size=0, max_size=300):
    """Strictly increasing int64 keys: a dense cluster near 0 plus sparse keys up to
    2**40, so segment widths are skewed and the Linear Map needs child layers."""
    return st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=2**40),
            st.integers(min_value=0, max_value=2000),
        ),
        min_size=min_size,
        max_size=max_size,
        unique=True,
    ).map(lambda xs: np.array(sorted(xs), dtype=np.int64))


# ------------------------------------------------------------------ pla_train


@SETTINGS
@given(keys=sorted_keys(), eps=st.floats(min_value=1.0, max_value=64.0))
def test_pla_train_matches_reference_and_bounds_error(keys, eps):
    starts, slopes = k.pla_train(keys, eps)
    ref_starts, ref_slopes = k.pla_train_reference(keys, eps)
    np.testing.assert_array_equal(starts, ref_starts)
    np.testing.assert_allclose(slopes, ref_slopes, rtol=1e-12, atol=0)
    if keys.size:
        # independent check of the bound: evaluate every key by a direct loop
        worst = 0.0
        for s, start in enumerate(starts):
            stop = starts[s + 1] if s + 1 < starts.size else keys.size
            for i in range(start, stop):
                pred = start + slopes[s] * float(keys[i] - keys[start])
                worst = max(worst, abs(pred - i))
        assert worst <= eps + 1e-6


def test_pla_train_edge_cases():
    starts, slopes = k.pla_train(np.zeros(0, dtype=np.int64), 4.0)
    assert starts.size == 0 and slopes.size == 0
    starts, slopes = k.pla_train(np.array([7], dtype=np.int64), 4.0)
    assert starts.tolist() == [0] and slopes.tolist() == [0.0]
    line = np.arange(0, 1000, 10, dtype=np.int64)  # exactly linear: one segment
    starts, slopes = k.pla_train(line, 1.0)
    assert starts.tolist() == [0] and slopes[0] == pytest.approx(0.1)


# ------------------------------------------------------------------- lm_route


@SETTINGS
@given(
    bounds=sorted_keys(min_size=1, max_size=200),
    queries=st.lists(st.integers(min_value=0, max_value=2**41), max_size=200),
    per_seg=st.floats(min_value=1.0, max_value=8.0),
)
def test_lm_route_matches_reference_and_truth(bounds, queries, per_seg):
    lm = ch.build_linear_map(bounds, per_seg)
    q = np.array(queries, dtype=np.int64)
    got = k.lm_route(q, *lm.arrays())
    ref = k.lm_route_reference(q, *lm.arrays())
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    truth = np.maximum(np.searchsorted(bounds, q, side="right") - 1, 0)
    np.testing.assert_array_equal(got[0], truth)
    assert np.all(got[1] <= 1)


def test_lm_route_empty_and_single():
    lm = ch.build_linear_map(np.array([5], dtype=np.int64))
    seg, comps, depth = k.lm_route(np.zeros(0, dtype=np.int64), *lm.arrays())
    assert seg.size == comps.size == depth.size == 0
    seg, comps, depth = k.lm_route(np.array([0, 5, 10**12]), *lm.arrays())
    assert seg.tolist() == [0, 0, 0] and comps.tolist() == [0, 0, 0]


# ------------------------------------------------------------------ lm_lookup


def _lookup_args(index):
    st_ = index.store
    return (
        *index.lm.arrays(),
        *st_.model_arrays(),
        st_.seg_err,
        st_.slots,
        st_.occupied,
    )


@SETTINGS
@given(
    keys=sorted_keys(min_size=1, max_size=400),
    eps=st.sampled_from([1, 2, 4, 16]),
    gapped=st.booleans(),
    weight=st.sampled_from([0.0, 0.75, 1.0]),
    absent=st.lists(st.integers(min_value=0, max_value=2**41), max_size=50),
)
def test_lm_lookup_matches_reference(keys, eps, gapped, weight, absent):
    index = ch.LearnedIndex(keys, eps, gapped=gapped, model_weight=weight)
    q = np.concatenate((keys, np.array(absent, dtype=np.int64)))
    pos, comps = k.lm_lookup(q, *_lookup_args(index))
    ref_pos, ref_comps = k.lm_lookup_reference(q, *_lookup_args(index))
    np.testing.assert_array_equal(pos, ref_pos)
    np.testing.assert_array_equal(comps, ref_comps)
    stored = set(keys.tolist())
    for key, p in zip(q.tolist(), pos.tolist(), strict=True):
        if key in stored:
            assert p >= 0 and index.store.slots[p] == key and index.store.occupied[p]
        else:
            assert p == -1


def test_lm_lookup_empty_queries():
    index = ch.LearnedIndex(np.array([1, 2, 3]), 4)
    pos, comps = k.lm_lookup(np.zeros(0, dtype=np.int64), *_lookup_args(index))
    assert pos.size == 0 and comps.size == 0


# -------------------------------------------------------------- gapped_insert


def _insert_state(index):
    s = index.store
    return [a.copy() for a in (s.seg_count, s.seg_err, s.slots, s.occupied)]


def _run_insert(fn, index, new_keys, state, max_fill):
    s = index.store
    moves = np.zeros(new_keys.size, dtype=np.int64)
    comps = np.zeros_like(moves)
    done = fn(
        new_keys,
        0,
        *index.lm.arrays(),
        *s.model_arrays(),
        *state,
        max_fill,
        moves,
        comps,
    )
    return done, moves, comps


@SETTINGS
@given(
    keys=sorted_keys(min_size=1, max_size=200),
    extra=st.lists(
        st.integers(min_value=0, max_value=2**40), max_size=120, unique=True
    ),
    eps=st.sampled_from([1, 4, 16]),
    gapped=st.booleans(),
    max_fill=st.sampled_from([0.6, 0.9, 1.0]),
)
def test_gapped_insert_matches_reference(keys, extra, eps, gapped, max_fill):
    new_keys = np.array(
        [x for x in extra if x not in set(keys.tolist())], dtype=np.int64
    )
    index = ch.LearnedIndex(keys, eps, gapped=gapped, max_fill=max_fill)
    state_k, state_r = _insert_state(index), _insert_state(index)
    got = _run_insert(k.gapped_insert, index, new_keys, state_k, max_fill)
    ref = _run_insert(k.gapped_insert_reference, index, new_keys, state_r, max_fill)
    assert got[0] == ref[0]
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_array_equal(got[2], ref[2])
    for a, b in zip(state_k, state_r, strict=True):
        np.testing.assert_array_equal(a, b)


@SETTINGS
@given(
    keys=sorted_keys(min_size=1, max_size=200),
    extra=st.lists(
        st.integers(min_value=0, max_value=2**40), max_size=150, unique=True
    ),
    gapped=st.booleans(),
)
def test_gapped_insert_keeps_segments_sorted_and_searchable(keys, extra, gapped):
    new_keys = np.array(
        [x for x in extra if x not in set(keys.tolist())], dtype=np.int64
    )
    index = ch.LearnedIndex(keys, 4, gapped=gapped, max_fill=1.0)
    cost = index.insert(new_keys)  # rebuilds full segments as needed
    store = index.store
    for s in range(store.n_segments):
        lo, hi = store.seg_start[s], store.seg_start[s] + store.seg_cap[s]
        assert np.all(np.diff(store.slots[lo:hi]) >= 0)
        assert store.occupied[lo:hi].sum() == store.seg_count[s]
    everything = np.sort(np.concatenate((keys, new_keys)))
    np.testing.assert_array_equal(index.keys(), everything)
    assert np.all(index.contains(everything)[0])
    assert cost.moves.size == new_keys.size and np.all(cost.moves >= 0)


def test_gapped_insert_no_keys_and_full_segment():
    index = ch.LearnedIndex(np.array([10, 20, 30]), 4, gapped=False, gap_ratio=0.0)
    none = np.zeros(0, dtype=np.int64)
    assert _run_insert(k.gapped_insert, index, none, _insert_state(index), 1.0)[0] == 0
    # no spare slot at all: the kernel stops before the first key
    done, _, _ = _run_insert(
        k.gapped_insert, index, np.array([15]), _insert_state(index), 1.0
    )
    assert done == 0


# -------------------------------------------------------- sorted_insert_moves


@SETTINGS
@given(st.data())
def test_sorted_insert_moves_matches_reference(data):
    n = data.draw(st.integers(min_value=0, max_value=300))
    present = np.array(
        data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=np.bool_
    )
    free = np.flatnonzero(~present)
    ranks = np.array(data.draw(st.permutations(free.tolist())), dtype=np.int64)
    got = k.sorted_insert_moves(present, ranks)
    np.testing.assert_array_equal(got, k.sorted_insert_moves_reference(present, ranks))
    stored = present.copy()
    for r, m in zip(ranks.tolist(), got.tolist(), strict=True):
        assert m == int(stored[r + 1 :].sum())
        stored[r] = True


def test_benchmarks_are_well_formed():
    cases = k.benchmarks()
    assert {c.name for c in cases} == {
        "pla_train",
        "lm_route",
        "lm_lookup",
        "gapped_insert",
        "sorted_insert_moves",
    }
    for case in cases:
        assert callable(case.kernel) and callable(case.reference)

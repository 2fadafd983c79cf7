"""LMG learned index (arXiv 2512.24824): mechanism, bad input and the claim."""

import math
from dataclasses import replace

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.systems_data import lmg_learned_index_gaps as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's default experiment (about 3 s)."""
    return ch.run_experiment(ch.Config())


def _as_variant(result, variant):
    """The same measurements, with the claim pointed at another index."""
    config = ch.Config(variant=variant)
    return ch.Result(config, result.eps, result.eps_table, result.metrics)


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_lmg(result):
    ch.check_claim(result)


@pytest.mark.parametrize("variant", ["lmindex", "delta_buffer", "sorted_array"])
def test_claim_fails_for_baselines(result, variant):
    with pytest.raises(ClaimFailed):
        ch.check_claim(_as_variant(result, variant))


def test_claim_fails_without_gaps_for_the_stated_reason(result):
    with pytest.raises(ClaimFailed, match="fewer than the no-gap index"):
        ch.check_claim(_as_variant(result, "lmindex"))


def test_claim_fails_for_delta_buffer_on_stability(result):
    with pytest.raises(ClaimFailed, match="shifts|batch-cost CV"):
        ch.check_claim(_as_variant(result, "delta_buffer"))


def test_claim_fails_for_binary_search_on_comparisons(result):
    """Even with perfect update numbers, binary search fails part 4 of the claim."""
    patched = tuple(
        replace(m, mean_moves_per_insert=0.0, batch_cost_cv=1e-3)
        if m.variant == "sorted_array"
        else m
        for m in result.metrics
    )
    bad = ch.Result(ch.Config(variant="sorted_array"), result.eps, {}, patched)
    with pytest.raises(ClaimFailed, match="half of log2 n"):
        ch.check_claim(bad)


def test_result_numbers_are_consistent(result):
    n = result.config.n_keys
    for d in result.config.distributions:
        lmg, flat = result.get(d, "lmg"), result.get(d, "sorted_array")
        assert flat.mean_lookup_comparisons == pytest.approx(math.log2(n), abs=1.0)
        assert lmg.scan_slots_per_key > 1.5  # gaps cost range scans extra slots
        assert lmg.max_rank_error <= lmg.eps
        assert len(lmg.batch_cost) == result.config.n_batches
    with pytest.raises(KeyError):
        result.get("uniform", "btree")


# ------------------------------------------------------------- the mechanism


def test_make_keys_distinct_sorted_in_range():
    rng = np.random.default_rng(0)
    for d in ch.DISTRIBUTIONS:
        keys = ch.make_keys(d, 5000, rng)
        assert keys.shape == (5000,) and keys.dtype == np.int64
        assert np.all(np.diff(keys) > 0)
        assert keys[0] >= 0 and keys[-1] < ch.KEY_LIMIT


def test_train_segments_bound_by_brute_force():
    keys = ch.make_keys("clustered", 3000, np.random.default_rng(1))
    for eps in (1, 4, 32):
        starts, slopes = ch.train_segments(keys, eps)
        worst = 0.0
        for s in range(starts.size):
            stop = starts[s + 1] if s + 1 < starts.size else keys.size
            idx = np.arange(starts[s], stop)
            pred = starts[s] + slopes[s] * (keys[idx] - keys[starts[s]])
            worst = max(worst, float(np.abs(pred - idx).max()))
        assert worst <= eps
        assert ch.rank_errors(keys, starts, slopes).max() == pytest.approx(worst)


def test_larger_eps_needs_fewer_segments():
    keys = ch.make_keys("lognormal", 20000, np.random.default_rng(2))
    counts = [ch.train_segments(keys, e)[0].size for e in (4, 16, 64)]
    assert counts[0] > counts[1] > counts[2]


@pytest.mark.parametrize("per_seg", [1.0, 8.0, 1000.0])
def test_linear_map_routes_exactly_with_one_comparison(per_seg):
    rng = np.random.default_rng(3)
    keys = ch.make_keys("lognormal", 20000, rng)
    starts, _ = ch.train_segments(keys, 4)
    lm = ch.build_linear_map(keys[starts], per_seg)
    queries = np.concatenate((keys, rng.integers(0, ch.KEY_LIMIT, 5000)))
    seg, comps, depth = lm.route(queries)
    truth = np.maximum(np.searchsorted(keys[starts], queries, "right") - 1, 0)
    np.testing.assert_array_equal(seg, truth)
    assert comps.max() <= 1
    # a boundary sits in one layer per level of its path: cells <= cap * that
    assert lm.n_cells <= per_seg * starts.size * depth.max() + 3 * lm.n_layers
    if per_seg == 1.0:
        assert lm.n_layers > 1 and depth.max() > 1  # skew forces child layers


def test_linear_map_single_layer_when_uncapped():
    bounds = np.arange(0, 10_000, 100, dtype=np.int64)  # equal widths
    lm = ch.build_linear_map(bounds)
    assert lm.n_layers == 1 and lm.n_cells == 101


def test_choose_eps_minimises_the_stated_cost():
    keys = ch.make_keys("uniform", 20000, np.random.default_rng(4))
    eps, table = ch.choose_eps(keys, (4, 16, 64), memory_weight=100.0)
    for row in table:
        expected = 1 + math.log2(2 * row.eps + 1) + 100.0 * row.index_bytes / (8 * 2e4)
        assert row.cost == pytest.approx(expected)
    assert eps == min(table, key=lambda r: r.cost).eps
    assert ch.choose_eps(keys, (4, 16, 64), memory_weight=0.0)[0] == 4


@pytest.mark.parametrize("gapped", [True, False])
def test_bulk_load_slots_within_error_and_gaps_placement(gapped):
    keys = ch.make_keys("clustered", 20000, np.random.default_rng(5))
    index = ch.LearnedIndex(keys, 16, gapped=gapped)
    pos, _ = index.lookup(keys)
    store = index.store
    assert np.all(store.slots[pos] == keys) and np.all(store.occupied[pos])
    seg, _, _ = index.lm.route(keys)
    pred = np.floor(
        store.seg_icpt[seg] + store.seg_slope[seg] * (keys - store.seg_key0[seg]) + 0.5
    )
    assert np.all(np.abs(pos - store.seg_start[seg] - pred) <= store.seg_err[seg])
    followed_by_gap = ~store.occupied[pos + 1]
    if gapped:
        assert followed_by_gap.mean() > 0.3  # gaps spread between the keys
    else:
        last = store.seg_start + store.seg_count - 1
        assert followed_by_gap.sum() == np.isin(pos, last).sum()  # only at the ends


def test_model_weight_trades_search_for_shifts():
    rng = np.random.default_rng(6)
    keys = ch.make_keys("clustered", 40000, rng)
    new = np.setdiff1d(ch.make_keys("clustered", 60000, rng), keys)[:8000]
    new = rng.permutation(new)
    near = ch.LearnedIndex(keys, 32, model_weight=1.0)
    even = ch.LearnedIndex(keys, 32, model_weight=0.0)
    assert near.store.seg_err.mean() < 0.5 * even.store.seg_err.mean()
    assert even.insert(new).moves.mean() < near.insert(new).moves.mean()


def test_no_gap_moves_equal_larger_keys_in_segment():
    keys = np.arange(0, 100_000, 10, dtype=np.int64)
    index = ch.LearnedIndex(keys, 8, gapped=False)
    new = np.array([5, 77_775, 3, 99_999], dtype=np.int64)
    seg, _, _ = index.lm.route(new)
    expected, stored = [], list(keys)
    for key, s in zip(new.tolist(), seg.tolist(), strict=True):
        lo, hi = (
            index.lm.seg_first[s],
            (index.lm.seg_first[s + 1] if s + 1 < index.n_segments else 2**62),
        )
        expected.append(sum(1 for x in stored if lo <= x < hi and x > key))
        stored.append(key)
    assert index.insert(new).moves.tolist() == expected


def test_lmg_inserts_then_finds_everything():
    rng = np.random.default_rng(7)
    everything = ch.make_keys("lognormal", 30000, rng)
    order = rng.permutation(everything.size)
    keys, new = np.sort(everything[order[:20000]]), everything[order[20000:]]
    index = ch.LearnedIndex(keys, 16, gap_ratio=0.2, max_fill=0.9)
    cost = index.insert(new)
    assert cost.rebuilds > 0 and cost.extra_moves > 0  # small gap budget fills up
    np.testing.assert_array_equal(index.keys(), everything)
    assert np.all(index.contains(everything)[0])
    assert not np.any(index.contains(np.array([ch.KEY_LIMIT - 1]))[0])


def test_delta_buffer_merges_and_sorted_array_counts_moves():
    rng = np.random.default_rng(8)
    everything = ch.make_keys("uniform", 12000, rng)
    order = rng.permutation(everything.size)
    keys, new = np.sort(everything[order[:10000]]), everything[order[10000:]]
    delta = ch.DeltaBufferIndex(keys, 16, buffer_fraction=0.05)
    cost = delta.insert(new)
    # capacity 500: the 501st, 1001st and 1501st inserts find the buffer full
    assert cost.rebuilds == 3 and delta.rebuilds == 3
    assert np.all(delta.contains(everything)[0])
    flat = ch.SortedArrayIndex(keys)
    moves = flat.insert(new[:50]).moves
    stored = list(keys)
    for key, m in zip(new[:50].tolist(), moves.tolist(), strict=True):
        assert m == sum(1 for x in stored if x > key)
        stored.append(key)


def test_coefficient_of_variation():
    assert ch.coefficient_of_variation([2.0, 2.0, 2.0]) == 0.0
    assert ch.coefficient_of_variation([1.0, 3.0]) == pytest.approx(0.5)


def test_explore_and_plots(result):
    import matplotlib.pyplot as plt

    small = ch.explore_eps(16, n_keys=5000, n_inserts=500, n_lookups=500)
    assert small.moves_per_insert["lmg"] < small.moves_per_insert["lmindex"]
    plt.close(ch.plot_explore(small))
    plt.close(ch.plot_batch_costs(result, "clustered"))


# ------------------------------------------------------------------ bad input


def test_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="distribution"):
        ch.make_keys("zipf", 10, rng)
    with pytest.raises(TypeError, match="rng"):
        ch.make_keys("uniform", 10, 0)
    with pytest.raises(ValueError, match="n_keys"):
        ch.make_keys("uniform", 0, rng)
    with pytest.raises(ValueError, match="strictly increasing"):
        ch.train_segments([3, 2, 1], 4)
    with pytest.raises(TypeError, match="integers"):
        ch.train_segments([1.5, 2.5], 4)
    with pytest.raises(ValueError, match="eps"):
        ch.train_segments([1, 2, 3], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*50\)"):
        ch.build_linear_map([-1, 5])
    with pytest.raises(ValueError, match="cells_per_segment"):
        ch.build_linear_map([1, 5], 0.5)
    with pytest.raises(ValueError, match="candidates"):
        ch.choose_eps([1, 2, 3], ())
    with pytest.raises(ValueError, match="model_weight"):
        ch.LearnedIndex([1, 2, 3], 4, model_weight=2.0)
    with pytest.raises(ValueError, match="max_fill"):
        ch.LearnedIndex([1, 2, 3], 4, max_fill=0.0)
    with pytest.raises(ValueError, match="keys"):
        ch.LearnedIndex([], 4)
    with pytest.raises(ValueError, match="variant"):
        ch.make_index("btree", [1, 2, 3], 4)
    with pytest.raises(ValueError, match="buffer_fraction"):
        ch.DeltaBufferIndex([1, 2, 3], 4, buffer_fraction=0.0)
    with pytest.raises(ValueError, match="positive mean"):
        ch.coefficient_of_variation([0.0, 0.0])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"variant": "btree"}, "variant"),
        ({"distributions": ("zipf",)}, "distributions"),
        ({"distributions": ()}, "distributions"),
        ({"n_keys": 10}, "n_keys"),
        ({"n_batches": 1}, "n_batches"),
        ({"eps": 0}, "eps"),
        ({"gap_ratio": -1.0}, "gap_ratio"),
        ({"seed": -1}, "seed"),
        ({"n_inserts": 2.5}, "n_inserts"),
    ],
)
def test_config_validation(changes, message):
    error = TypeError if changes.get("n_inserts") == 2.5 else ValueError
    with pytest.raises(error, match=message):
        ch.Config(**changes)


def test_type_errors():
    with pytest.raises(TypeError, match="config"):
        ch.run_experiment({"n_keys": 100})
    with pytest.raises(TypeError, match="result"):
        ch.check_claim(None)
    with pytest.raises(TypeError, match="ExploreResult"):
        ch.plot_explore(None)

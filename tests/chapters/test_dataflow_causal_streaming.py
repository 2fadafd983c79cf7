"""Causify DataFlow (arXiv 2512.23977): the engine, bad input and the claim."""

from dataclasses import replace

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.systems_data import dataflow_causal_streaming as ch

SMALL = {
    "n_bars": 4_000,
    "stream_bars": 600,
    "tile_lengths": (250, 1_000),
    "check_times": (900, 2_100, 3_300),
    "refit_every": 250,
    "fit_window": 1_500,
}


@pytest.fixture(scope="module")
def results():
    """The three variants on a 4,000-bar panel (about 1 s each)."""
    return {v: ch.run_experiment(ch.Config(variant=v, **SMALL)) for v in ch.VARIANTS}


@pytest.fixture(scope="module")
def small():
    """A causal DAG, a panel and its batch run."""
    config = ch.Config(**SMALL)
    dag, panel = config.dag(), config.panel()
    batch = ch.new_sink(dag, panel.n_bars, panel.n_assets)
    ch.run_tiles(dag, panel, panel.n_bars, sink=batch)
    return config, dag, panel, batch


def assert_same(sink, batch, rows=slice(None)):
    for name in batch:
        assert ch.max_abs_diff(sink[name][rows], batch[name][rows]) < 1e-9, name


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_dataflow(results):
    ch.check_claim(results["dataflow"])


@pytest.mark.parametrize("variant", ["naive_chunks", "leaky"])
def test_claim_fails_for_baselines(results, variant):
    with pytest.raises(ClaimFailed):
        ch.check_claim(results[variant])


def test_naive_chunks_differ_after_every_boundary(results):
    naive = results["naive_chunks"]
    with pytest.raises(ClaimFailed, match="tiles_250: node 'signal' differs"):
        ch.check_claim(naive)
    for counts in naive.boundary_mismatch.values():
        assert counts.size > 0 and counts.min() >= 1
    for counts in results["dataflow"].boundary_mismatch.values():
        assert counts.max() == 0


def test_leaky_model_fails_the_checker_and_the_hit_gap(results):
    leaky = results["leaky"]
    assert "node 'centred'" in leaky.checker_error
    assert leaky.hit_gap >= 5.0  # it looks better in batch than it trades
    # even if its tiles had matched, the checker would still sink it
    patched = replace(
        leaky,
        node_diff={m: dict.fromkeys(d, 0.0) for m, d in leaky.node_diff.items()},
    )
    with pytest.raises(ClaimFailed, match="future peeking"):
        ch.check_claim(patched)
    patched = replace(patched, checker_error=None)
    with pytest.raises(ClaimFailed, match="batch hit rate"):
        ch.check_claim(patched)


def test_claim_fails_when_tiles_use_as_much_memory_as_batch(results):
    good = results["dataflow"]
    peak = dict(good.peak_bytes, tiles_250=good.peak_bytes["batch"] * 0.8)
    with pytest.raises(ClaimFailed, match="memory"):
        ch.check_claim(replace(good, peak_bytes=peak))


def test_dataflow_numbers(results):
    good = results["dataflow"]
    assert good.hit_gap == 0.0 and 45 < good.hit_batch < 65
    assert good.checker_error is None
    assert good.peak_bytes["tiles_250"] < good.peak_bytes["tiles_1000"]
    assert good.peak_bytes["stream"] is None and good.stream_step_us > 0
    assert set(good.modes) == {
        "batch",
        "tiles_250",
        "tiles_1000",
        "features_2",
        "stream",
    }


# ------------------------------------------------------------- the mechanism


def test_panel_knowledge_times():
    panel = ch.make_panel(500, 3, np.random.default_rng(0), latency_max=3)
    bars = np.arange(500)[:, None]
    assert panel.values.shape == panel.known.shape == (500, 3, 3)
    np.testing.assert_array_equal(panel.known[:, :, 0], np.broadcast_to(bars, (500, 3)))
    delay = panel.known[:, :, 2] - bars
    assert delay.min() == 0 and delay.max() == 3
    assert np.isfinite(panel.values).all()


def test_history_sums_lookbacks_along_paths(small):
    _, dag, _, _ = small
    h = dag.history
    assert h["position"] == 0 and h["ridge"] == 0 and h["features"] == 1
    assert h["zscore"] == 1 and h["bars_5m"] == 60 and h["signal"] == 60
    assert h["source"] == 68  # 60 (z-score) + 8 (5-minute bars) below the ridge


def test_asof_signal_matches_brute_force(small):
    _, _, panel, batch = small
    got = batch["signal"][:, :, 0]
    sig, known = panel.values[:, :, 2], panel.known[:, :, 2]
    for t in range(0, 400, 7):
        for n in range(panel.n_assets):
            seen = [e for e in range(t + 1) if known[e, n] <= t]
            want = sig[max(seen), n] if seen else np.nan
            np.testing.assert_equal(got[t, n], want)


def test_resample_matches_brute_force(small):
    _, _, panel, batch = small
    ret, vol = panel.values[:, :, 0], panel.values[:, :, 1]
    for t in (4, 5, 9, 10, 123, 3999):
        close = (t + 1) // 5 * 5 - 1
        np.testing.assert_allclose(
            batch["bars_5m"][t, :, 0], ret[close - 4 : close + 1].sum(axis=0)
        )
        np.testing.assert_allclose(
            batch["bars_5m"][t, :, 1], vol[close - 4 : close + 1].mean(axis=0)
        )
    assert np.isnan(batch["bars_5m"][3]).all()


def test_ridge_matches_a_direct_fit(small):
    config, _, panel, batch = small
    x, ret = batch["features"], panel.values[:, :, 0]
    k, n = 2_000, 3
    pairs = np.arange(k - config.fit_window + 1, k + 1)  # completed in (k - L, k]
    X, y = x[pairs - 1, n], ret[pairs, n]
    ok = np.isfinite(X).all(axis=1)
    X, y = X[ok], y[ok]
    eye = config.ridge_lambda * len(y) * np.eye(X.shape[1])
    coef = np.linalg.solve(X.T @ X + eye, X.T @ y)
    rows = np.arange(k, k + config.refit_every)
    np.testing.assert_allclose(
        batch["ridge"][rows, n, 0], x[rows, n] @ coef, rtol=1e-8, atol=1e-14
    )


def test_irregular_tiles_equal_batch(small):
    """Tilability for an arbitrary partition of time, with carried state."""
    _, dag, panel, batch = small
    sink = ch.new_sink(dag, panel.n_bars, panel.n_assets)
    cuts = [0, 1, 7, 250, 251, 999, 1_000, 2_345, 2_346, 3_999, 4_000]
    states = None
    for t0, t1 in zip(cuts[:-1], cuts[1:], strict=True):
        outputs, states = ch.run_tile(dag, panel, t0, t1, states)
        for name, values in outputs.items():
            sink[name][t0:t1] = values
    assert_same(sink, batch)


def test_stream_replay_equals_batch(small):
    _, dag, panel, batch = small
    sink = ch.new_sink(dag, panel.n_bars, panel.n_assets)
    start = panel.n_bars - 300
    states = ch.run_tiles(dag, panel, 1_000, sink=sink, stop=start)
    steps = ch.run_stream(dag, panel, start, sink, states, queue_size=4)
    assert steps.shape == (300,) and (steps > 0).all()
    assert_same(sink, batch, slice(start, None))


def test_feature_tiles_equal_batch(small):
    _, dag, panel, batch = small
    sink = ch.new_sink(dag, panel.n_bars, panel.n_assets)
    for group in ([0, 5], [1, 2, 3, 4, 6, 7]):
        ch.run_tiles(dag, panel.assets(group), 700, sink=sink, assets=group)
    assert_same(sink, batch)


def test_checker_passes_causal_and_catches_an_event_time_leak(small):
    _, dag, panel, batch = small
    ch.check_causality(dag, panel, [500, 1_700], batch=batch)
    # a node that reads the signal at its event time, ignoring its knowledge time
    peek = ch.Node("peek", ("source",), ("s",), 1, lambda t, s: s[:, :, 2:])
    leaky = ch.Dag(dag.nodes + (peek,))
    with pytest.raises(ch.FuturePeekingError, match="node 'peek' at bar 500"):
        ch.check_causality(leaky, panel, [500])


def test_centred_mean_reads_the_future():
    z = np.arange(10, dtype=np.float64)[:, None, None]
    out = ch.centred_mean(np.arange(10), z)[:, 0, 0]
    assert out[5] == 5.0 and out[9] == 8.0  # the last row sees only its past
    assert ch.centred_mean(np.arange(6), z[:6])[5, 0, 0] == 4.0 != out[5]


def test_explore_tiling_with_and_without_history():
    good = ch.explore_tiling(300, True, n_bars=2_000, window=(500, 900))
    assert good.boundaries_hit == 0 and good.max_diff < 1e-9
    bad = ch.explore_tiling(300, False, n_bars=2_000, window=(500, 900))
    assert bad.boundaries_hit == bad.n_boundaries == 6
    assert bad.mismatch.any() and bad.times.shape == (400,)


def test_plots_return_figures(results):
    import matplotlib.pyplot as plt

    view = ch.explore_tiling(300, False, n_bars=2_000, window=(500, 900))
    for fig in (
        ch.plot_tiling(view),
        ch.plot_modes(results),
        ch.plot_hit_rates(results),
    ):
        assert fig.axes
        plt.close(fig)


def test_hit_rate_and_max_abs_diff():
    pos = np.array([[1.0], [1.0], [0.0], [-1.0]])
    ret = np.array([[0.0], [2.0], [-1.0], [3.0]])
    assert ch.hit_rate(pos, ret) == 50.0  # bar 0 right, bar 1 wrong, bar 2 flat
    assert ch.hit_rate(pos, ret, start=1) == 0.0
    assert np.isnan(ch.hit_rate(np.zeros((4, 1)), ret))
    assert ch.max_abs_diff([1.0, np.nan], [1.5, np.nan]) == 0.5
    assert ch.max_abs_diff([1.0, np.nan], [1.0, 2.0]) == np.inf


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"variant": "magic"}, ValueError, "variant must be one of"),
        ({"n_bars": 50}, ValueError, "n_bars must be >= 100"),
        ({"tile_lengths": ()}, ValueError, "tile_lengths must name"),
        ({"n_asset_groups": 9}, ValueError, "n_asset_groups must be <= 8"),
        ({"stream_bars": 20_000}, ValueError, "stream_bars must be <="),
        ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ],
)
def test_config_rejects_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        ch.Config(**kwargs)


def test_bad_arguments_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="fit_window must be a multiple"):
        ch.make_dag(refit_every=300, fit_window=1_000)
    with pytest.raises(ValueError, match="ewma_halflives must name"):
        ch.make_dag(ewma_halflives=())
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        ch.make_panel(100, 2, 0)
    with pytest.raises(ValueError, match="n_assets must be >= 1"):
        ch.make_panel(100, 0, rng)
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({"variant": "dataflow"})
    with pytest.raises(TypeError, match="result must be a Result"):
        ch.check_claim(None)
    with pytest.raises(ValueError, match="shapes differ"):
        ch.max_abs_diff(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="returns must have shape"):
        ch.hit_rate(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="tile_len must be >= 1"):
        ch.explore_tiling(0)


def test_dag_rejects_bad_order():
    node = ch.Node("a", ("b",), ("x",), 1, lambda t, b: b)
    with pytest.raises(ValueError, match="parent 'b' must come earlier"):
        ch.Dag((node,))
    twin = ch.Node("a", ("source",), ("x",), 1, lambda t, s: s)
    with pytest.raises(ValueError, match="node names must be unique"):
        ch.Dag((twin, twin))


def test_checker_rejects_bad_times(small):
    _, dag, panel, batch = small
    with pytest.raises(ValueError, match="times must lie in"):
        ch.check_causality(dag, panel, [panel.n_bars], batch=batch)

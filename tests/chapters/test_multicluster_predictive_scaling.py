"""Predictive multi-cluster scaling: units, the claim, and its counter-tests."""

from dataclasses import replace

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.systems_data import multicluster_predictive_scaling as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's experiment, with the last-value ablation and the oracle."""
    return ch.run_experiment(ch.Config(compare=("last_value", "oracle")))


def _as_variant(result, variant):
    """The same runs, with ``variant`` in the mechanism's place."""
    config = replace(result.config, variant=variant, compare=())
    return ch.Result(config, result.runs(variant), result.reactive, {})


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_the_predictive_loop(result):
    ch.check_claim(result)
    assert result.cut("sla_violations") >= 0.3
    assert result.cut("stabilisation") >= 0.5


def test_claim_fails_for_the_reactive_baseline(result):
    with pytest.raises(ClaimFailed, match="fewer SLA-violation"):
        ch.check_claim(_as_variant(result, "reactive"))


def test_claim_fails_with_a_last_value_forecaster(result):
    # the same policy without a real forecaster settles after surges barely faster
    # than the reactive autoscaler
    ablated = _as_variant(result, "last_value")
    assert ablated.cut("stabilisation") < 0.5
    with pytest.raises(ClaimFailed, match="stabilisation"):
        ch.check_claim(ablated)


def test_oracle_is_perfect_and_lean(result):
    oracle = _as_variant(result, "oracle")
    ch.check_claim(oracle)
    assert oracle.total("oracle", "sla_violations") == 0
    assert oracle.mean("oracle", "mean_replicas") < result.mean(
        "predictive", "mean_replicas"
    )


# ------------------------------------------------------------------- workload


def test_workload_is_seeded_and_shaped():
    a, b = ch.make_workload(3), ch.make_workload(3)
    np.testing.assert_array_equal(a.demand, b.demand)
    assert a.demand.shape == (2 * ch.STEPS_PER_DAY, 3) and a.demand.min() >= 0
    for onsets in a.surge_onsets:
        assert set(np.diff(onsets)) == {ch.SURGE_PERIOD}
    assert a.change_step >= ch.STEPS_PER_DAY
    assert not np.array_equal(a.demand, ch.make_workload(4).demand)


def test_step_change_raises_the_level():
    for seed in range(3):
        w = ch.make_workload(seed)
        after = slice(w.change_step, w.change_step + 180)  # one surge cycle
        yesterday = slice(after.start - ch.STEPS_PER_DAY, after.stop - ch.STEPS_PER_DAY)
        k = w.change_cluster
        assert w.demand[after, k].mean() > 1.1 * w.demand[yesterday, k].mean()


# ------------------------------------------------------------------- forecast


def test_design_matrix_is_causal():
    demand = ch.make_workload(1).demand
    changed = demand.copy()
    changed[1000:] *= 3.0
    X, Y = ch.design_matrix(demand, 6), ch.design_matrix(changed, 6)
    np.testing.assert_array_equal(X[:1000], Y[:1000])
    assert not np.array_equal(X[1000:], Y[1000:])


def test_ridge_forecast_is_causal():
    demand = ch.make_workload(2).demand
    changed = demand.copy()
    changed[1500:] = 0.0
    a, b = ch.ridge_forecast(demand, 6), ch.ridge_forecast(changed, 6)
    # forecasts made at t < 1500 are for s = t + 6 < 1506
    np.testing.assert_array_equal(a[:1506], b[:1506])


def test_ridge_weights_match_a_direct_weighted_least_squares():
    demand = ch.make_workload(5).demand[:600]
    h, alpha, half_life, every = 4, 1.0, 300.0, 10
    forecast = ch.ridge_forecast(
        demand, h, alpha=alpha, half_life=half_life, refit_every=every
    )
    X = ch.design_matrix(demand, h)
    scale = demand[0].mean()
    b = 500  # a refit point: rows t <= b - h have observed targets
    rows = np.arange(b - h + 1)
    w = np.sqrt(2.0 ** (-(b - rows) / half_life))
    A = np.vstack((X[rows] * w[:, None], np.sqrt(alpha) * np.eye(X.shape[1])))
    Y = np.vstack((demand[rows + h] / scale * w[:, None], np.zeros((X.shape[1], 3))))
    W = np.linalg.lstsq(A, Y, rcond=None)[0]
    np.testing.assert_allclose(forecast[b + h], X[b] @ W * scale, rtol=1e-6)


def test_ridge_beats_last_value_at_surge_onsets():
    w = ch.make_workload(0)
    ridge, last = ch.ridge_forecast(w.demand, 6), ch.last_value_forecast(w.demand, 6)
    err_ridge, err_last = [], []
    for k, onsets in enumerate(w.surge_onsets):
        rows = (onsets[onsets >= ch.STEPS_PER_DAY][:, None] + np.arange(6)).ravel()
        err_ridge.append(np.abs(w.demand[rows, k] - ridge[rows, k]))
        err_last.append(np.abs(w.demand[rows, k] - last[rows, k]))
    assert np.concatenate(err_ridge).mean() < 0.5 * np.concatenate(err_last).mean()


def test_last_value_and_error_feedback():
    demand = np.arange(12.0).reshape(6, 2)
    last = ch.last_value_forecast(demand, 2)
    np.testing.assert_array_equal(last[2:], demand[:-2])
    np.testing.assert_array_equal(last[:2], demand[[0, 0]])
    forecast = demand - np.array([[1.0, -2.0]])
    bias, sigma = ch.error_feedback(demand, forecast, half_life=1.0)
    # beta = 1/2: 0.5, 0.75, 0.875, ... of the constant error
    np.testing.assert_allclose(bias[:3, 0], [0.5, 0.75, 0.875])
    np.testing.assert_allclose(sigma[:3, 1], np.sqrt([2.0, 3.0, 3.5]))


# --------------------------------------------------------------------- policy


def test_shift_overflow_respects_residency_limits_and_blocks():
    load = np.array([100.0, 10.0, 10.0])
    limit = np.array([50.0, 30.0, 40.0])
    moves = ch.shift_overflow(load, limit, local_share=0.6)
    # 50 overflow, but only 40% of 100 may leave; the roomier cluster 2 fills first
    np.testing.assert_allclose(moves[0], [0.0, 10.0, 30.0])
    assert moves[1:].sum() == 0
    blocked = ch.shift_overflow(load, limit, 0.6, blocked=[False, False, True])
    np.testing.assert_allclose(blocked[0], [0.0, 20.0, 0.0])
    assert ch.shift_overflow(load, limit, 1.0).sum() == 0
    assert ch.shift_overflow([1.0, 2.0], [5.0, 5.0], 0.0).sum() == 0


def test_reactive_autoscaler_thresholds_and_cooldown():
    scaler = ch.ReactiveAutoscaler(np.array([100.0]), mu=10.0)
    orders = np.array([10.0])

    def step(t, arrivals):
        tele = {"routed": np.array([arrivals]), "active": np.array([10.0])}
        return scaler.decide(t, orders, tele)[0][0]

    assert step(0, 70.0) == 10  # 70% utilisation: inside the band
    assert step(1, 90.0) == 14  # above 80%: ceil(90 / 6.5)
    assert step(2, 95.0) == 10  # cooldown: no second scale-up yet
    lows = [step(t, 30.0) for t in range(10, 15)]
    assert lows == [10, 10, 10, 10, 5]  # five low intervals, then ceil(30 / 6.5)


def _controller(delay=2, **changes):
    n = 40
    forecast = np.full((n, 3), 100.0)
    forecast[20] = [400.0, 100.0, 100.0]
    kwargs = dict(
        forecast=forecast,
        bias=np.zeros((n, 3)),
        sigma=np.full((n, 3), 10.0),
        caps=np.array([10.0, 10.0, 10.0]),
        mu=50.0,
        delay=delay,
        z=2.0,
    )
    kwargs.update(changes)
    return ch.PredictiveController(**kwargs)


def test_predictive_sizing_looks_ahead_and_shifts_overflow():
    ctrl = _controller(delay=2)
    own = np.full(3, 100.0)
    # an order placed at 17 serves 18..20 and must cover the forecast peak at 20
    np.testing.assert_allclose(ctrl.upper(17, own), [420.0, 120.0, 120.0])
    np.testing.assert_allclose(ctrl.upper(16, own), [120.0, 120.0, 120.0])
    orders = ctrl.size(17, np.array([3.0, 3.0, 3.0]), own)
    # scale-up with half the hysteresis band as margin: ceil(420 / 50 * 1.1) = 10;
    # 120 / 50 = 2.4 replicas stays inside the band below 3, so 3 are kept
    assert orders.tolist() == [10.0, 3.0, 3.0]
    capped = _controller(caps=np.array([6.0, 10.0, 10.0]))
    orders = capped.size(17, np.array([3.0, 3.0, 3.0]), own)
    # 120 of the 420 overflow cluster 0's 300; they are planned on clusters 1, 2
    assert orders[0] == 6 and orders[1:].sum() > 6


def test_predictive_route_and_rollback():
    ctrl = _controller(caps=np.array([6.0, 10.0, 10.0]))
    shares = ctrl.route(19, np.array([6.0, 10.0, 10.0]), np.full(3, 100.0))
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert shares[0, 0] < 1.0 and shares[0, 0] >= 0.6  # residency share stays
    tele = {"routed": np.array([300.0, 150.0, 100.0]), "own": np.full(3, 100.0)}
    ctrl.feedback(19, tele, np.array([False, True, False]))
    assert ctrl.blocked_until.tolist() == [0.0, 19.0 + ctrl.rollback_steps, 0.0]
    shares = ctrl.route(19, np.array([6.0, 10.0, 10.0]), np.full(3, 100.0))
    assert shares[0, 1] == 0.0 and shares[0, 2] > 0.0


# ------------------------------------------------------------------ simulator


class _StepController:
    """Orders 2 replicas until t0, then 6."""

    def __init__(self, t0):
        self.t0 = t0

    def decide(self, t, orders, telemetry):
        want = 6.0 if t >= self.t0 else 2.0
        return np.full(orders.shape, want), np.eye(orders.shape[0])


@pytest.mark.parametrize("delay", [0, 3, 7])
def test_capacity_arrives_after_the_provisioning_delay(delay):
    demand = np.full((60, 1), 100.0)
    trace = ch.simulate_control(
        demand, _StepController(30), mu=50.0, delay=delay, start=10
    )
    assert trace.active[30, 0] == 2.0
    first = np.flatnonzero(trace.active[:, 0] == 6.0)[0]
    assert first == 31 + delay
    # no queue once 2 replicas serve 100 requests; served + backlog conserve
    assert trace.backlog[10:].max() == 0.0
    np.testing.assert_allclose(trace.served[10:], demand[10:])


def test_stabilisation_time():
    latency = np.full(100, 0.2)
    latency[[12, 13, 15]] = 5.0
    times = ch.stabilisation_time(latency, [10, 50], band=0.22, window=30)
    assert times.tolist() == [6, 0]


def test_emulated_thread_pools_show_the_shortfall():
    demand = np.full(8, 500.0)  # 10 requests per tick: 5 workers' worth
    em = ch.emulate_thread_pools(
        demand,
        {"short": np.full(8, 4.0), "ample": np.full(8, 30.0)},
        tick_seconds=0.02,
    )
    assert em.arrivals.sum() == 80
    assert em.workers["short"].tolist() == [2] * 8
    assert em.p95_ms["short"][-1] > 3 * em.p95_ms["ample"][-1]


def test_plots(result):
    import matplotlib.pyplot as plt

    w = ch.make_workload(0)
    config = ch.Config(seeds=(0,))
    traces = {v: ch.run_variant(v, w, config)[0] for v in ("reactive", "predictive")}
    em = ch.emulate_thread_pools(np.full(3, 100.0), {"a": np.full(3, 4.0)})
    figures = [
        ch.plot_timeline(w, traces, 0, slice(1500, 1600)),
        ch.plot_summary(result),
        ch.plot_emulation(em),
    ]
    for fig in figures:
        labelled = [ax for ax in fig.axes if ax.get_xlabel() and ax.get_ylabel()]
        assert labelled, "every figure needs labelled axes"
        plt.close(fig)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"variant": "hpa"}, ValueError, "variant"),
        ({"seeds": ()}, ValueError, "seeds"),
        ({"seeds": [0]}, ValueError, "seeds"),
        ({"seeds": (-1,)}, ValueError, "seeds"),
        ({"delay": -1}, ValueError, "delay"),
        ({"delay": 2.5}, TypeError, "delay"),
        ({"mu": 0.0}, ValueError, "mu"),
        ({"cost_ratio": 0.9}, ValueError, "cost_ratio"),
        ({"local_share": 1.5}, ValueError, "local_share"),
        ({"shifting": 1}, TypeError, "shifting"),
        ({"warmup": 2}, ValueError, "warmup"),
        ({"compare": ["oracle"]}, TypeError, "compare"),
        ({"compare": ("psychic",)}, ValueError, "compare"),
    ],
)
def test_config_validation(changes, error, message):
    with pytest.raises(error, match=message):
        ch.Config(**changes)


def test_bad_inputs():
    with pytest.raises(ValueError, match="seed"):
        ch.make_workload(-1)
    with pytest.raises(ValueError, match="n_days"):
        ch.make_workload(0, n_days=1)
    with pytest.raises(ValueError, match="demand"):
        ch.design_matrix(np.ones(10), 3)
    with pytest.raises(ValueError, match="horizon"):
        ch.ridge_forecast(np.ones((10, 2)), 0)
    with pytest.raises(ValueError, match="alpha"):
        ch.ridge_forecast(np.ones((10, 2)), 1, alpha=0.0)
    with pytest.raises(ValueError, match="finite"):
        ch.error_feedback(np.array([[np.nan]]), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="forecast"):
        ch.error_feedback(np.ones((3, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="local_share"):
        ch.shift_overflow([1.0], [1.0], 2.0)
    with pytest.raises(ValueError, match="limit"):
        ch.shift_overflow([1.0, 2.0], [1.0], 0.5)
    with pytest.raises(TypeError, match="decide"):
        ch.simulate_control(np.ones((20, 1)), object(), mu=1.0, delay=1, start=5)
    with pytest.raises(ValueError, match="start"):
        ch.simulate_control(
            np.ones((20, 1)), _StepController(3), mu=1, delay=5, start=3
        )
    with pytest.raises(ValueError, match="band"):
        ch.stabilisation_time(np.ones(5), [0], band=np.nan)
    with pytest.raises(ValueError, match="variant"):
        ch.make_controller("psychic", ch.make_workload(0), ch.Config())
    with pytest.raises(TypeError, match="replicas"):
        ch.emulate_thread_pools(np.ones(3), {})
    with pytest.raises(ValueError, match="tick_seconds"):
        ch.emulate_thread_pools(np.ones(3), {"a": np.ones(3)}, tick_seconds=5.0)


def test_type_errors(result):
    with pytest.raises(TypeError, match="config"):
        ch.run_experiment({"variant": "predictive"})
    with pytest.raises(TypeError, match="result"):
        ch.check_claim(None)
    with pytest.raises(ValueError, match="not run"):
        _as_variant(result, "predictive").runs("oracle")
    with pytest.raises(TypeError, match="workload"):
        ch.plot_timeline(None, {}, 0, slice(0, 10))
    with pytest.raises(TypeError, match="trace"):
        ch.measure(None, ch.make_workload(0), "predictive", 0, mu=50.0)

"""RABO, distributed bilevel optimisation with dual pruning (arXiv 2512.24667)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from paperlab.claims import ClaimFailed
from paperlab.systems_data import rabo_dual_pruning_bilevel as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's experiment on one task, without the Explore runs (a few s)."""
    return ch.run_experiment(ch.Config(seeds=(0,), explore_r_min=()))


def _as_variant(result, variant):
    """The same trained runs, with the claim pointed at another variant."""
    return replace(result, config=replace(result.config, variant=variant))


def _task(seed=0, n_clients=10):
    return ch.stack_stats(
        [ch.client_stats(ch.make_client_data(seed, i)) for i in range(n_clients)]
    )


def _point(stats, seed=1, scale=2.0):
    rng = np.random.default_rng(seed)
    B, d = stats.r.shape
    return torch.as_tensor(rng.uniform(-scale, scale, (B, d)), dtype=torch.float64)


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_rabo(result):
    ch.check_claim(result)


@pytest.mark.parametrize("baseline", ["naive", "drop_weak", "full"])
def test_claim_fails_for_every_baseline(result, baseline):
    with pytest.raises(ClaimFailed):
        ch.check_claim(_as_variant(result, baseline))


def test_claim_part_four_can_fail(result):
    backwards = replace(result.config, sweep_capacities=ch.SWEEP_CAPACITIES[::-1])
    with pytest.raises(ClaimFailed, match="aggregation error"):
        ch.check_claim(replace(result, config=backwards))


def test_result_measurements(result):
    trace = result.trace
    assert trace.world_size == 4 and trace.collectives == 2 * (150 + 1)
    assert len(trace.worker_compute_s) == 3 and trace.startup_s < 60
    assert trace.eval_rounds[0] == 0 and trace.eval_rounds[-1] == 150
    for variant in ch.VARIANTS:
        assert result.excess(variant, 0) > 0  # F* is below every run's final loss
    # pruning keeps 208 of 400 coordinate slots: the same estimator costs 52%
    fd_share = result.total_cost("rabo", 0) / result.total_cost("rabo_full", 0)
    assert fd_share == pytest.approx(208 / 400)
    # the full model's loss decreases from the first evaluation to the last
    k = trace.index("full", 0)
    assert trace.loss[k, -1] < trace.loss[k, 0]
    with pytest.raises(KeyError):
        trace.index("rabo", 99)


# ------------------------------------------------------------- the mechanism


def test_client_data_is_reproducible_and_shares_the_true_weights():
    a, b = ch.make_client_data(3, 2), ch.make_client_data(3, 2)
    np.testing.assert_array_equal(a.A, b.A)
    assert a.A.shape == (200, 40) and a.V.shape == (100, 40)
    other = ch.make_client_data(3, 5)
    assert not np.allclose(a.scales, other.scales)
    # noiseless targets are exact linear functions of the latent features Z = A / s
    clean = [ch.make_client_data(3, i, noise=0.0) for i in (2, 5)]
    w = [np.linalg.lstsq(d.A / d.scales, d.b, rcond=None)[0] for d in clean]
    np.testing.assert_allclose(w[0], w[1], atol=1e-10)
    assert np.count_nonzero(np.abs(w[0]) > 1e-8) == 10


def test_client_stats_match_numpy():
    data = ch.make_client_data(0, 1)
    stats = ch.client_stats(data)
    np.testing.assert_allclose(stats.G.numpy(), data.A.T @ data.A / 200)
    np.testing.assert_allclose(stats.q.numpy(), data.V.T @ data.c / 100)
    assert float(stats.c0) == pytest.approx(data.c @ data.c / 200)


def test_masks_cover_floor_of_slots_and_rotate():
    caps = ch.DEFAULT_CAPACITIES
    masks = ch.coverage_masks(caps, 0)
    assert masks.sum(axis=1).tolist() == [12] * 4 + [20] * 4 + [40] * 2
    assert masks.sum(axis=0).min() == 208 // 40 and masks.sum(axis=0).max() == 6
    np.testing.assert_array_equal(ch.coverage_masks(caps, 7), np.roll(masks, 7, axis=1))
    assert [ch.min_coverage(p) for p in ch.SWEEP_CAPACITIES] == [2, 5, 10]
    assert ch.capacity_profile(0.3) == ch.DEFAULT_CAPACITIES
    assert ch.min_coverage(ch.capacity_profile(0.1)) == 4


def test_finite_differences_match_exact_products():
    stats = _task()
    x = _point(stats)
    rng = np.random.default_rng(2)
    y = torch.as_tensor(rng.standard_normal(x.shape))
    v = torch.as_tensor(rng.standard_normal(x.shape))
    ex = torch.exp(x)
    exact = torch.einsum("bjk,bk->bj", stats.G, v) + ex * v  # (A'A/n + diag e^x) v
    np.testing.assert_allclose(ch.fd_hvp(stats, ex, y, v, 1e-4), exact, rtol=1e-6)
    np.testing.assert_allclose(ch.fd_cross(ex, y, v, 1e-4), ex * y * v, rtol=1e-6)


def test_hypergradient_formula_matches_numerical_derivative_of_F():
    stats = _task(4)
    x = np.random.default_rng(3).uniform(-2, 2, 40)
    _, grad = ch.global_objective(stats, x)
    eps = 1e-5
    numeric = [
        (
            ch.global_objective(stats, x + eps * e)[0]
            - ch.global_objective(stats, x - eps * e)[0]
        )
        / (2 * eps)
        for e in np.eye(40)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-9)


def test_estimators_agree_with_the_closed_form():
    stats = _task(1)
    x = _point(stats, seed=5)
    H = stats.G + torch.diag_embed(torch.exp(x))
    y = torch.linalg.solve(H, stats.r)
    zeros = torch.zeros_like(y)
    _, closed = ch.implicit_hypergradient(stats, x)
    fd, _ = ch.fd_hypergradient(stats, x, y, zeros, torch.ones_like(y), 60, 1e-4)
    exact, _, iters = ch.exact_hypergradient(stats, x, y, zeros, rtol=1e-10)
    np.testing.assert_allclose(fd, closed, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(exact, closed, rtol=1e-5, atol=1e-9)
    assert int(iters.max()) <= 40
    check = ch.estimator_check(0)
    assert check["cosine"] > 0.999999 and check["autograd_vs_closed_form"] < 1e-5
    assert ch.estimator_check(0, v_steps=1)["cosine"] < check["cosine"]


def test_shared_data_layout_matches_one_client_per_row():
    stats = _task(2, n_clients=3)
    x = _point(stats, seed=6).reshape(3, 1, 40).repeat(1, 2, 1)
    x[:, 1] += 0.5  # two runs per client with different x
    f3, h3 = ch.implicit_hypergradient(stats, x)
    for r in range(2):
        f2, h2 = ch.implicit_hypergradient(stats, x[:, r])
        np.testing.assert_allclose(f3[:, r], f2)
        np.testing.assert_allclose(h3[:, r], h2)
    y = torch.zeros_like(x)
    mask = torch.ones_like(x)
    y3 = ch.partial_inner_steps(stats, x, y, mask, 3)
    np.testing.assert_allclose(
        y3[:, 1], ch.partial_inner_steps(stats, x[:, 1], y[:, 1], mask[:, 1], 3)
    )
    e3, _, _ = ch.exact_hypergradient(stats, x, y3, torch.zeros_like(x))
    e2, _, _ = ch.exact_hypergradient(
        stats, x[:, 0], y3[:, 0], torch.zeros_like(y3[:, 0])
    )
    np.testing.assert_allclose(e3[:, 0], e2, rtol=1e-5, atol=1e-10)  # CG tolerance


def test_masked_coordinates_are_neither_trained_nor_estimated():
    stats = _task(0, n_clients=2)
    x = _point(stats, seed=7)
    mask = torch.as_tensor(ch.coverage_masks((0.3, 0.5), 5)).to(torch.float64)
    y0 = torch.full_like(x, 0.25)
    v0 = torch.full_like(x, -0.5)
    y = ch.partial_inner_steps(stats, x, y0, mask, 10)
    h, v = ch.fd_hypergradient(stats, x, y, v0, mask, 10, 1e-4)
    off = mask == 0
    assert torch.equal(y[off], y0[off]) and torch.equal(v[off], v0[off])
    assert torch.all(h[off] == 0) and torch.all(h[~off] != 0)
    # with every coordinate held, many steps reach the exact inner solution
    full = ch.partial_inner_steps(stats, x, y0, torch.ones_like(x), 300)
    H = stats.G + torch.diag_embed(torch.exp(x))
    np.testing.assert_allclose(full, torch.linalg.solve(H, stats.r), atol=1e-9)


def test_batched_cg_solves_spd_systems():
    rng = np.random.default_rng(8)
    M = rng.standard_normal((5, 12, 12))
    H = torch.as_tensor(M @ M.transpose(0, 2, 1) + 0.5 * np.eye(12))
    b = torch.as_tensor(rng.standard_normal((5, 12)))
    x, iters = ch.batched_cg(
        lambda p: torch.einsum("bij,bj->bi", H, p), b, torch.zeros_like(b), rtol=1e-12
    )
    expected = np.linalg.solve(H.numpy(), b.numpy()[..., None])[..., 0]
    np.testing.assert_allclose(x, expected, rtol=1e-7)
    assert iters.shape == (5,) and int(iters.max()) <= 12
    _, none = ch.batched_cg(lambda p: p, b, b.clone())  # already solved
    assert int(none.max()) == 0


def test_aggregate_rules():
    sum_h = np.array([[3.0, 4.0, 5.0]])
    coverage = np.array([[3.0, 2.0, 0.0]])
    np.testing.assert_allclose(ch.aggregate(sum_h, coverage, "rabo", 10), [[1, 2, 0]])
    np.testing.assert_allclose(
        ch.aggregate(sum_h, coverage, "naive", 10), [[0.3, 0.4, 0.5]]
    )


def test_optimal_objective_is_a_minimum():
    stats = _task(0)
    f_star, x_star = ch.optimal_objective(stats)
    assert f_star < ch.global_objective(stats, np.zeros(40))[0]
    for e in np.eye(40):  # no coordinate step improves it by more than rounding
        assert f_star <= ch.global_objective(stats, x_star + 0.1 * e)[0] + 1e-8
        assert f_star <= ch.global_objective(stats, x_star - 0.1 * e)[0] + 1e-8


def _reference(run, n_rounds, inner_steps=10, v_steps=10, delta=1e-4):
    """The algorithm in one process and NumPy, client by client (for comparison)."""
    n = len(run.capacities)
    data = [ch.make_client_data(run.seed, i) for i in range(n)]
    G = [d.A.T @ d.A / 200 for d in data]
    r = [d.A.T @ d.b / 200 for d in data]
    P = [d.V.T @ d.V / 100 for d in data]
    q = [d.V.T @ d.c / 100 for d in data]
    offsets = np.random.default_rng([run.seed, 3]).integers(0, 40, n_rounds + 1)
    x, y, v = np.zeros(40), np.zeros((n, 40)), np.zeros((n, 40))
    for rnd in range(n_rounds):
        caps = run.client_capacities()
        masks = np.zeros((n, 40))
        active = caps > 0  # drop_weak: the dropped clients hold nothing
        masks[active] = ch.coverage_masks(caps[active], offsets[rnd])
        ex = np.exp(x)
        sum_h = np.zeros(40)
        for i in range(n):
            lip = np.diag(G[i]) + ex
            for _ in range(inner_steps):
                y[i] -= 0.8 * masks[i] * (G[i] @ y[i] - r[i] + ex * y[i]) / lip
            b = P[i] @ y[i] - q[i]
            for _ in range(v_steps):
                v[i] -= 0.8 * masks[i] * (G[i] @ v[i] + ex * v[i] - b) / lip
            sum_h += -ex * y[i] * v[i] * masks[i]
        x = x - run.lr * ch.aggregate(sum_h, masks.sum(0), run.variant, n)
    return x


def test_distributed_run_matches_a_single_process_reference():
    caps = ch.DEFAULT_CAPACITIES
    runs = [
        ch.RunSpec("rabo", "rabo", 0, caps, 10.0),
        ch.RunSpec("naive", "naive", 1, caps, 10.0),
        ch.RunSpec("drop", "drop_weak", 1, caps, 10.0),
    ]
    trace = ch.run_distributed(runs, n_rounds=6, n_workers=2, eval_every=3)
    assert trace.world_size == 3 and trace.eval_rounds.tolist() == [0, 3, 6]
    for k, run in enumerate(runs):
        np.testing.assert_allclose(trace.x_final[k], _reference(run, 6), atol=1e-9)
    per = ch.evals_per_coordinate(10, 10)
    assert trace.cost[0, 0] == 208 * per and trace.cost[2, 0] == 80 * per
    stats = _task(0)
    assert trace.loss[0, 0] == pytest.approx(
        ch.global_objective(stats, np.zeros(40))[0]
    )


def test_plots(result):
    import matplotlib.pyplot as plt

    plt.close(ch.plot_masks())
    plt.close(ch.plot_training(result))
    plt.close(ch.plot_coverage_sweep(result))
    with pytest.raises(ValueError, match="no run"):
        ch.plot_explore(result, 0.1)  # the fixture trained no Explore runs
    plt.close(ch.plot_explore(result, 0.3))  # the default profile is always trained
    with pytest.raises(ValueError, match="variant"):
        result.explore_curve("median", 0.3)
    full = ch.Config(seeds=(0,), explore_r_min=())
    assert all(r.seed == 0 for r in full.runs()) and len(full.runs()) == 6


# ------------------------------------------------------------------ bad input


def test_bad_inputs():
    with pytest.raises(ValueError, match="n_active"):
        ch.make_client_data(0, 0, n_active=50)
    with pytest.raises(TypeError, match="seed"):
        ch.make_client_data(0.5, 0)
    with pytest.raises(ValueError, match="scale_range"):
        ch.make_client_data(0, 0, scale_range=0.5)
    with pytest.raises(TypeError, match="ClientData"):
        ch.client_stats(None)
    with pytest.raises(ValueError, match=r"capacities must lie in \(0, 1\]"):
        ch.coverage_masks([0.5, 1.5], 0)
    with pytest.raises(ValueError, match="r_min"):
        ch.capacity_profile(0.0)
    with pytest.raises(ValueError, match="variant"):
        ch.aggregate(np.zeros(3), np.zeros(3), "median", 3)
    with pytest.raises(ValueError, match="coverage"):
        ch.aggregate(np.zeros(3), np.zeros(4), "rabo", 3)
    with pytest.raises(ValueError, match="delta"):
        ch.estimator_check(0, delta=0.0)
    with pytest.raises(ValueError, match="x"):
        ch.global_objective(_task(0, 2), np.zeros(3))
    with pytest.raises(ValueError, match="stats"):
        ch.stack_stats([])
    with pytest.raises(ValueError, match="variant"):
        ch.RunSpec("a", "median", 0, (1.0,), 1.0)
    with pytest.raises(ValueError, match="lr"):
        ch.RunSpec("a", "rabo", 0, (1.0,), 0.0)
    with pytest.raises(TypeError, match="label"):
        ch.RunSpec(1, "rabo", 0, (1.0,), 1.0)
    with pytest.raises(TypeError, match="RunSpec"):
        ch.run_distributed([])
    run = ch.RunSpec("a", "rabo", 0, ch.DEFAULT_CAPACITIES, 1.0)
    with pytest.raises(ValueError, match="n_workers"):
        ch.run_distributed([run], n_workers=11)
    with pytest.raises(ValueError, match="same number of clients"):
        ch.run_distributed([run, ch.RunSpec("b", "rabo", 0, (1.0,) * 3, 1.0)])
    with pytest.raises(ValueError, match="start_method"):
        ch.run_distributed([run], start_method="teleport")


def test_tensor_function_bad_inputs():
    stats = _task(0, n_clients=2)
    y = torch.zeros(2, 40, dtype=torch.float64)
    with pytest.raises(TypeError, match="stats"):
        ch.inner_grad(None, y, y)
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        ch.outer_grad(stats, np.zeros((2, 40)))
    with pytest.raises(ValueError, match=r"v must have shape \(2, 40\)"):
        ch.fd_hvp(stats, y, y, torch.zeros(3, 40, dtype=torch.float64), 1e-4)
    with pytest.raises(ValueError, match="delta"):
        ch.fd_cross(y, y, y, 0.0)
    with pytest.raises(ValueError, match="mask"):
        ch.fd_hypergradient(stats, y, y, y, y[:, :20], 3, 1e-4)
    with pytest.raises(ValueError, match="v_steps"):
        ch.fd_hypergradient(stats, y, y, y, y, -1, 1e-4)
    with pytest.raises(TypeError, match="steps"):
        ch.partial_inner_steps(stats, y, y, y, 2.5)
    with pytest.raises(ValueError, match="rtol"):
        ch.exact_hypergradient(stats, y, y, y, rtol=-1.0)
    with pytest.raises(ValueError, match="x must have shape"):
        ch.implicit_hypergradient(stats, torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="matvec"):
        ch.batched_cg(None, y, y)
    with pytest.raises(ValueError, match="x0"):
        ch.batched_cg(lambda p: p, y, y[:1])


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"variant": "median"}, ValueError, "variant"),
        ({"seeds": ()}, ValueError, "seeds"),
        ({"seeds": (1, 1)}, ValueError, "distinct"),
        ({"seeds": (-1,)}, ValueError, "seeds"),
        ({"capacities": (0.5, 2.0)}, ValueError, "capacities"),
        ({"sweep_capacities": (ch.DEFAULT_CAPACITIES,)}, ValueError, "sweep"),
        ({"sweep_capacities": ((1.0,), (1.0,))}, ValueError, "one entry per client"),
        ({"n_rounds": 0}, ValueError, "n_rounds"),
        ({"v_steps": 2.5}, TypeError, "v_steps"),
        ({"delta": -1.0}, ValueError, "delta"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"n_workers": 0}, ValueError, "n_workers"),
        ({"timeout": 0.5}, ValueError, "timeout"),
        ({"eval_every": 0}, ValueError, "eval_every"),
        ({"explore_r_min": (1.5,)}, ValueError, "r_min"),
        ({"explore_r_min": [0.3]}, ValueError, "explore_r_min"),
    ],
)
def test_config_validation(changes, error, message):
    with pytest.raises(error, match=message):
        ch.Config(**changes)


def test_type_errors():
    with pytest.raises(TypeError, match="config"):
        ch.run_experiment({"seeds": (0,)})
    with pytest.raises(TypeError, match="result"):
        ch.check_claim(None)
    with pytest.raises(TypeError, match="result"):
        ch.plot_training(None)
    with pytest.raises(TypeError, match="result"):
        ch.plot_explore(None, 0.3)


def test_spawned_processes_train_like_forked_ones():
    runs = [ch.RunSpec("rabo", "rabo", 2, ch.DEFAULT_CAPACITIES, 10.0)]
    forked = ch.run_distributed(runs, n_rounds=2, n_workers=1, start_method="fork")
    spawned = ch.run_distributed(runs, n_rounds=2, n_workers=1, start_method="spawn")
    np.testing.assert_array_equal(forked.x_final, spawned.x_final)
    assert spawned.world_size == 2

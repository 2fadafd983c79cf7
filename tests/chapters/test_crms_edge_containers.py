"""CRMS chapter: the latency model, the queue, both stages, baselines and the claim."""

import dataclasses
import itertools

import numpy as np
import pytest
from scipy.optimize import check_grad

from paperlab.claims import ClaimFailed
from paperlab.systems_data import crms_edge_containers as ch

K = ch.APP_KAPPAS


@pytest.fixture(scope="module")
def crms_result():
    return ch.run_experiment(ch.Config(real_profile=False))


# ------------------------------------------------------------ latency model


def test_latency_model_formula_and_monotonicity():
    k1, k2, k3 = K[0]
    assert ch.latency_model(1.5, 2.0, K[0]) == pytest.approx(
        k1 * (1 - np.exp(-k2 * 1.5)) + np.exp(k3 * 2.0)
    )
    cpu, mem = np.meshgrid(np.linspace(0.25, 6, 24), np.linspace(0.25, 4, 16))
    for kappa in K:
        d = ch.latency_model(cpu, mem, kappa)
        assert np.all(d > 0)
        assert np.all(np.diff(d, axis=1) < 0) and np.all(np.diff(d, axis=0) < 0)


def test_fit_recovers_parameters():
    cpu, mem, delay = ch.profile_app(K[1], np.random.default_rng(0), noise=0.0)
    fit = ch.fit_latency_model(cpu, mem, delay)
    np.testing.assert_allclose(fit.kappa, K[1], rtol=1e-4)
    assert fit.adj_r2 > 0.99999 and fit.n_points == 96
    noisy = ch.fit_latency_model(*ch.profile_app(K[1], np.random.default_rng(1)))
    assert 0.98 <= noisy.adj_r2 < 1.0


def test_fit_of_a_wrong_shape_scores_lower():
    # latency proportional to 1/cpu is outside the model family: R^2 must drop
    cpu, mem, _ = ch.profile_app(K[0], np.random.default_rng(0), noise=0.0)
    fit = ch.fit_latency_model(cpu, mem, 0.05 / cpu + 0.01 / mem)
    assert fit.adj_r2 < 0.98


# ------------------------------------------------------------------ queueing


def test_sojourn_time_matches_a_simulated_queue():
    rng = np.random.default_rng(0)
    d, lam, n = 0.4, 1.5, 60_000
    service = rng.exponential(d, n)
    gaps = rng.exponential(1 / lam, n)
    wait, total = 0.0, 0.0
    for i in range(n):  # Lindley's recursion
        total += wait + service[i]
        wait = max(0.0, wait + service[i] - gaps[(i + 1) % n])
    assert total / n == pytest.approx(float(ch.sojourn_time(d, lam)), rel=0.05)
    assert np.isinf(ch.sojourn_time(0.5, 2.0))


def test_stage1_gradient_matches_finite_differences():
    lam = ch.make_loads(K, 1, np.random.default_rng(0))[0]
    x = np.array([1.0, 2.0, 1.5, 1.2, 0.5, 1.4, 1.0, 0.8])
    for weight in (0.0, 0.8, 1.0):

        def f(z, w=weight):
            return ch._relaxed_cost_and_grad(z, K, lam, w)[0]

        def g(z, w=weight):
            return ch._relaxed_cost_and_grad(z, K, lam, w)[1]

        assert check_grad(f, g, x, epsilon=1e-7) < 1e-5


# ------------------------------------------------------------ the two stages


def brute_force_two_apps(kappas, lam, weight):
    """Independent optimum for two containers: every grid split, objective by hand."""
    best = np.inf
    c = np.arange(1, 24) * 0.25
    m = np.arange(1, 16) * 0.25
    for c1, m1 in itertools.product(c, m):
        c2, m2 = c[c + c1 <= 6.0], m[m + m1 <= 4.0]
        if not c2.size or not m2.size:
            continue
        c2, m2 = np.meshgrid(c2, m2)
        d1 = kappas[0, 0] * (1 - np.exp(-kappas[0, 1] * c1)) + np.exp(kappas[0, 2] * m1)
        d2 = kappas[1, 0] * (1 - np.exp(-kappas[1, 1] * c2)) + np.exp(kappas[1, 2] * m2)
        r1, r2 = lam[0] * d1, lam[1] * d2
        ok = (r1 < 0.95) & (r2 < 0.95)
        latency = (lam[0] * d1 / (1 - r1) + lam[1] * d2 / (1 - r2)) / lam.sum()
        power = 30 + 12 * (c1 * r1 + c2 * r2)
        obj = np.where(ok, weight * latency + (1 - weight) * power / 102.0, np.inf)
        best = min(best, obj.min())
    return best


@pytest.mark.parametrize("weight", [0.3, 0.8])
def test_crms_and_exhaustive_reach_the_brute_force_optimum(weight):
    kappas = K[[0, 1]]
    lam = ch.make_loads(kappas, 1, np.random.default_rng(4))[0]
    best = brute_force_two_apps(kappas, lam, weight)
    for alloc in (
        ch.crms(kappas, lam, weight),
        ch.exhaustive_optimum(kappas, lam, weight),
    ):
        assert ch.evaluate(alloc.cpu, alloc.mem, kappas, lam, weight).objective == (
            pytest.approx(best, rel=1e-9)
        )


def test_relaxed_solution_respects_constraints_and_beats_rounding():
    lam = ch.make_loads(K, 1, np.random.default_rng(2))[0]
    cpu, mem, n_scored = ch.solve_relaxed(K, lam, 0.8)
    assert cpu.sum() <= 6.0 + 1e-6 and mem.sum() <= 4.0 + 1e-6 and n_scored > 0
    assert np.all(lam * ch.latency_model(cpu, mem, K) <= 0.95 + 1e-6)
    relaxed = ch.evaluate(cpu, mem, K, lam, 0.8).objective
    rounded = ch.crms(K, lam, 0.8, refine=False)
    assert relaxed <= ch.evaluate(rounded.cpu, rounded.mem, K, lam, 0.8).objective


def test_greedy_is_a_local_optimum_and_counts_moves():
    lam = ch.make_loads(K, 1, np.random.default_rng(3))[0]
    cu, mu, n_scored, n_moves = ch.refine_greedy(K, lam, 0.8, [6] * 4, [4] * 4)
    assert n_moves > 0 and n_scored % 8 == 0
    assert cu.sum() <= 24 and mu.sum() <= 16 and cu.min() >= 1 and mu.min() >= 1
    here = ch.evaluate(cu * 0.25, mu * 0.25, K, lam, 0.8).objective
    for units in (cu, mu):  # no single-unit move between two containers helps
        for i, j in itertools.permutations(range(4), 2):
            if units[j] > 1:
                units[i] += 1
                units[j] -= 1
                moved = ch.evaluate(cu * 0.25, mu * 0.25, K, lam, 0.8).objective
                units[i] -= 1
                units[j] += 1
                assert moved >= here - 1e-12


# ----------------------------------------------------------------- baselines


def test_baselines_respect_the_budgets():
    lam = ch.make_loads(K, 1, np.random.default_rng(5))[0]
    eq = ch.equal_share(4)
    assert eq.cpu.tolist() == [1.5] * 4 and eq.mem.tolist() == [1.0] * 4
    prop = ch.proportional_share(K, lam)
    assert prop.cpu.sum() == pytest.approx(6.0) and prop.mem.sum() == pytest.approx(4.0)
    load = lam * ch.latency_model(1.5, 1.0, K)
    assert prop.cpu[np.argmax(load)] == prop.cpu.max()
    a = ch.random_search(K, lam, 0.8, np.random.default_rng(0), n_samples=300)
    b = ch.random_search(K, lam, 0.8, np.random.default_rng(0), n_samples=300)
    np.testing.assert_array_equal(a.cpu, b.cpu)
    assert a.cpu.sum() == pytest.approx(6.0) and a.n_scored == 300


def test_make_loads_sets_utilisation_at_equal_share():
    loads = ch.make_loads(K, 50, np.random.default_rng(0), low=0.4, high=0.6)
    rho = loads * ch.latency_model(1.5, 1.0, K)
    assert loads.shape == (50, 4) and rho.min() >= 0.4 and rho.max() <= 0.6


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors():
    lam = np.ones(4)
    with pytest.raises(ValueError, match="variant"):
        ch.Config(variant="oracle")
    with pytest.raises(ValueError, match="weight"):
        ch.crms(K, lam, 1.5)
    with pytest.raises(ValueError, match="kappas"):
        ch.crms(K[:, :2], lam, 0.5)
    with pytest.raises(ValueError, match="lam"):
        ch.crms(K, -lam, 0.5)
    with pytest.raises(ValueError, match="lam must have shape"):
        ch.crms(K, np.ones(3), 0.5)
    with pytest.raises(ValueError, match="kappa must have shape"):
        ch.latency_model(1.0, 1.0, [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 5"):
        ch.fit_latency_model([1, 2], [1, 2], [1, 2])
    with pytest.raises(ValueError, match="units"):
        ch.refine_greedy(K, lam, 0.5, [0, 1, 1, 1], [1, 1, 1, 1])
    with pytest.raises(TypeError, match="rng"):
        ch.random_search(K, lam, 0.5, rng=0)
    with pytest.raises(ValueError, match="quota"):
        ch.run_throttled("x", 10, 0.0, 4)
    with pytest.raises(ValueError, match="cache_blocks"):
        ch.profile_duty_cycle(cache_blocks=(4, 100))
    with pytest.raises(TypeError, match="config"):
        ch.run_experiment({"variant": "crms"})


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_crms(crms_result):
    ch.check_claim(crms_result)
    m = crms_result.methods
    assert m["crms"].latency.mean() < 0.86 * m["proportional"].latency.mean()
    assert crms_result.small["crms"].objective == pytest.approx(
        crms_result.small["exhaustive"].objective, rel=0.02
    )


@pytest.mark.parametrize(
    "variant",
    ["equal_share", "proportional", "random_search", "relaxation_only", "greedy_only"],
)
def test_claim_fails_for_baselines_and_ablations(variant):
    result = ch.run_experiment(ch.Config(variant=variant, real_profile=False))
    with pytest.raises(ClaimFailed):
        ch.check_claim(result)


def test_claim_checks_the_real_profile(crms_result):
    fit = ch.Fit(np.array([-0.5, 1.0, -1.0]), 0.9, 9)
    flat = ch.DutyProfile(
        np.array([0.25, 1.0]),
        np.array([0.1, 0.5]),
        np.ones((2, 2)),
        np.ones((2, 2), dtype=int),
        fit,
        1.25,
    )
    with pytest.raises(ClaimFailed, match="quota slowdown"):
        ch.check_claim(dataclasses.replace(crms_result, duty=flat))


def test_real_duty_cycle_slows_the_worker():
    duty = ch.profile_duty_cycle(
        quotas=(0.25, 0.5, 1.0), cache_blocks=(4, 32), n_periods=3
    )
    assert duty.mean_latency.shape == (3, 2) and np.all(duty.n_requests > 0)
    assert duty.slowdown >= 2.0
    # the smaller cache misses more, so it is slower at full quota
    assert duty.mean_latency[2, 0] > duty.mean_latency[2, 1]

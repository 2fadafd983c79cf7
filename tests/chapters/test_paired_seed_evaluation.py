"""Paired seed evaluation: estimators, the Monte Carlo study and the chapter's claim."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from paperlab.claims import ClaimFailed
from paperlab.kernels.econ_sim import run_econ_sim_reference
from paperlab.statistical_learning_causality import paired_seed_evaluation as ch


@pytest.fixture(scope="module")
def mechanism():
    return ch.run_experiment(ch.Config(variant="mechanism"))


@pytest.fixture(scope="module")
def baseline():
    return ch.run_experiment(ch.Config(variant="baseline"))


# --- the claim and its counter-test ------------------------------------------------


def test_claim_holds_for_paired_seeds(mechanism):
    ch.check_claim(mechanism)


def test_claim_fails_when_b_gets_its_own_seeds(baseline):
    with pytest.raises(ClaimFailed, match="rho=") as failure:
        ch.check_claim(baseline)
    # Not only the correlation: the width and power parts fail on their own as well.
    assert "width ratio" in str(failure.value)
    assert "power gain" in str(failure.value)


def test_claim_fails_when_the_pairing_is_scrambled(mechanism):
    # Same runs, but B's runs are matched with the wrong seeds: the pairing, not the
    # simulator or the estimator, carries the gain.
    shuffled = np.roll(mechanism.y_b, 1, axis=1)
    estimate, lower, upper = ch.paired_ci(mechanism.y_a, shuffled)
    broken = dataclasses.replace(
        mechanism,
        rho=ch.seed_correlation(mechanism.y_a, shuffled),
        paired=ch.summarise_intervals(estimate, lower, upper, mechanism.delta_true),
    )
    with pytest.raises(ClaimFailed, match="width ratio"):
        ch.check_claim(broken)


def test_both_variants_share_the_truth_and_the_runs_of_a(mechanism, baseline):
    assert mechanism.delta_true == baseline.delta_true
    np.testing.assert_array_equal(mechanism.y_a, baseline.y_a)
    assert baseline.rho < 0.2 < mechanism.rho


def test_control_keeps_coverage_without_shared_randomness(mechanism):
    assert abs(mechanism.rho_control) < 0.2
    assert mechanism.control.coverage >= ch.MIN_COVERAGE


def test_empirical_variance_gain_follows_the_formula(mechanism):
    # Spread of the point estimates over studies: their variance ratio should match
    # the variance factor predicted from the measured rho and sigmas (within 35%,
    # a ratio of two variances estimated from n_studies values each).
    sigma_a = mechanism.y_a.std()
    sigma_b = mechanism.y_b.std()
    predicted = ch.paired_variance_factor(mechanism.rho, sigma_a, sigma_b)
    measured = (mechanism.paired.estimate_sd / mechanism.independent.estimate_sd) ** 2
    assert measured == pytest.approx(predicted, rel=0.35)


# --- estimators against independent computations -----------------------------------


def test_paired_ci_matches_scipy_ttest_rel():
    rng = np.random.default_rng(1)
    y_a = rng.normal(size=12)
    y_b = y_a + rng.normal(0.3, 0.5, size=12)
    estimate, lower, upper = ch.paired_ci(y_a, y_b, level=0.9)
    want = stats.ttest_rel(y_a, y_b).confidence_interval(confidence_level=0.9)
    assert estimate == pytest.approx(np.mean(y_a - y_b))
    assert (lower, upper) == pytest.approx((want.low, want.high))


def test_welch_ci_matches_scipy_ttest_ind():
    rng = np.random.default_rng(2)
    y_a = rng.normal(0.0, 1.0, size=10)
    y_b = rng.normal(0.5, 3.0, size=7)
    estimate, lower, upper = ch.welch_ci(y_a, y_b)
    want = stats.ttest_ind(y_a, y_b, equal_var=False).confidence_interval()
    assert estimate == pytest.approx(y_a.mean() - y_b.mean())
    assert (lower, upper) == pytest.approx((want.low, want.high))


def test_intervals_are_vectorised_over_studies():
    rng = np.random.default_rng(3)
    y_a, y_b = rng.normal(size=(2, 5, 8))
    for interval in (ch.paired_ci, ch.welch_ci):
        batched = interval(y_a, y_b)
        for k in range(5):
            single = interval(y_a[k], y_b[k])
            assert np.allclose([b[k] for b in batched], single)


def test_welch_ci_of_constant_samples_has_zero_width():
    estimate, lower, upper = ch.welch_ci(np.ones(4), np.zeros(4))
    assert estimate == lower == upper == 1.0


def test_seed_correlation_matches_pearsonr():
    rng = np.random.default_rng(4)
    y_a = rng.normal(size=50)
    y_b = 0.8 * y_a + rng.normal(size=50)
    assert ch.seed_correlation(y_a, y_b) == pytest.approx(
        stats.pearsonr(y_a, y_b).statistic
    )


@pytest.mark.parametrize("rho", [-0.5, 0.0, 0.6, 0.95])
def test_paired_variance_factor_matches_simulation(rho):
    rng = np.random.default_rng(5)
    sigma_a, sigma_b = 1.0, 2.0
    cov = [[sigma_a**2, rho * sigma_a * sigma_b], [rho * sigma_a * sigma_b, sigma_b**2]]
    y = rng.multivariate_normal([0.0, 0.0], cov, size=200_000)
    measured = np.var(y[:, 0] - y[:, 1]) / (np.var(y[:, 0]) + np.var(y[:, 1]))
    predicted = ch.paired_variance_factor(rho, sigma_a, sigma_b)
    assert predicted == pytest.approx(measured, rel=0.02)


def test_effective_sample_size_gain_is_one_over_one_minus_rho():
    assert ch.effective_sample_size_gain(0.9) == pytest.approx(10.0)
    assert ch.effective_sample_size_gain(0.0) == pytest.approx(1.0)
    assert ch.effective_sample_size_gain(1.0) == np.inf
    # Unequal spreads: perfect correlation no longer cancels everything.
    assert ch.effective_sample_size_gain(1.0, 1.0, 2.0) == pytest.approx(5.0)


def test_summarise_intervals_counts_coverage_and_power():
    estimate = np.array([0.5, 1.0, -0.2, 2.0])
    lower = np.array([0.1, 0.5, -1.0, 1.5])
    upper = np.array([0.9, 1.5, 0.8, 2.5])
    summary = ch.summarise_intervals(estimate, lower, upper, delta_true=0.7)
    assert summary.coverage == 0.75  # the last interval misses 0.7
    assert summary.power == 0.75  # the third interval contains 0
    assert summary.mean_width == pytest.approx(np.mean(upper - lower))
    assert summary.estimate_sd == pytest.approx(estimate.std())


def test_private_noise_lowers_correlation():
    rng = np.random.default_rng(6)
    y_a = rng.normal(size=400)
    y_b = y_a + 0.1 * rng.normal(size=400)
    np.testing.assert_array_equal(ch.add_private_noise(y_b, 0.0), y_b)
    noisy = ch.add_private_noise(y_b, 1.0, seed=1)
    assert ch.seed_correlation(y_a, noisy) < ch.seed_correlation(y_a, y_b) - 0.2


# --- the simulator wrapper and the seed layout -------------------------------------


def test_study_seeds_layout():
    config = ch.Config(n_studies=4, n_seeds=3, n_truth=5, seed=9)
    mech = ch.study_seeds(config)
    base = ch.study_seeds(dataclasses.replace(config, variant="baseline"))
    assert mech["a"].shape == (4, 3) and mech["truth"].shape == (5,)
    np.testing.assert_array_equal(mech["a"], mech["b"])
    np.testing.assert_array_equal(mech["a"], base["a"])
    assert len(np.unique(mech["a"])) == 12
    assert not set(base["b"].ravel()) & set(base["a"].ravel())
    used = set(base["a"].ravel()) | set(base["b"].ravel())
    assert not set(mech["truth"]) & used


def test_simulate_welfare_matches_the_reference_simulator():
    config = ch.Config(n_agents=3, n_steps=20)
    seeds = np.array([[1, 2], [3, 4]])
    got = ch.simulate_welfare(seeds, 0.1, config)
    assert got.shape == (2, 2)
    constants = ch.SIM_CONSTANTS
    want = run_econ_sim_reference(
        3,
        0.1,
        3,
        20,
        config.eps,
        config.lr,
        2,
        constants["n_actions"],
        constants["kappa"],
        constants["agg_scale"],
        constants["idio_scale"],
    )
    assert got[1, 0] == want


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"variant": "shared"}, ValueError, "variant must be one of"),
        ({"n_seeds": 1}, ValueError, "n_seeds must be >= 2"),
        ({"n_studies": 2.5}, TypeError, "n_studies must be an integer"),
        ({"eps": 1.5}, ValueError, "eps must be <= 1"),
        ({"lr": 0.0}, ValueError, "lr must be > 0"),
        ({"tax_b": 1.0}, ValueError, "tax_b must be <= 0.99"),
        ({"level": 1.0}, ValueError, "level must be <= 0.999"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
    ],
)
def test_config_rejects_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        ch.Config(**kwargs)


def test_estimators_reject_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        ch.paired_ci(np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="at least 2 runs"):
        ch.welch_ci(np.ones(1), np.ones(3))
    with pytest.raises(ValueError, match="leading axes"):
        ch.welch_ci(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        ch.paired_ci([1.0, np.nan], [0.0, 1.0])
    with pytest.raises(ValueError, match="rho must be <= 1"):
        ch.paired_variance_factor(1.5)
    with pytest.raises(ValueError, match="not both be 0"):
        ch.paired_variance_factor(0.5, 0.0, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        ch.seed_correlation(np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="lower must not exceed upper"):
        ch.summarise_intervals([0.0], [1.0], [0.5], 0.0)
    with pytest.raises(ValueError, match="noise_sd must be >= 0"):
        ch.add_private_noise(np.ones(3), -1.0)


def test_simulate_welfare_rejects_bad_seeds():
    config = ch.Config()
    with pytest.raises(ValueError, match="non-negative"):
        ch.simulate_welfare([-1, 2], 0.1, config)
    with pytest.raises(TypeError, match="integers"):
        ch.simulate_welfare([1.5], 0.1, config)
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.simulate_welfare([1], 0.1, {"n_agents": 3})


def test_check_claim_rejects_non_results():
    with pytest.raises(TypeError, match="result must be a Result"):
        ch.check_claim({"rho": 0.9})

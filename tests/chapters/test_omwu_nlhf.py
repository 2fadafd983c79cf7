"""OMWU for NLHF (arXiv:2512.24818): mechanism, independent checks, claim, baselines."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from paperlab.claims import ClaimFailed
from paperlab.language_model_alignment_reasoning import omwu_nlhf as ch


@pytest.fixture(scope="module")
def results():
    return {v: ch.run_experiment(ch.Config(variant=v)) for v in ch.VARIANTS}


def game(n, seed=0):
    return ch.plant_preference_game(n, np.random.default_rng(seed))


# --- the planted games -------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 4, 7, 8])
def test_planted_game_is_a_preference_game_with_a_full_support_ne(n):
    g = game(n)
    np.testing.assert_allclose(g.P + g.P.T, 1.0, atol=1e-12)
    np.testing.assert_allclose(g.P @ g.pi_star, 0.5, atol=1e-12)
    assert np.all(g.pi_star > 0) and np.isclose(g.pi_star.sum(), 1.0)
    assert np.isclose(np.abs(g.P - 0.5).max(), 0.45)
    assert ch.duality_gap(g.P, g.pi_star) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n, dim", [(3, 1), (4, 2), (7, 1), (8, 2)])
def test_equilibrium_set_has_the_parity_of_n(n, dim):
    assert ch.nash_set_dimension(game(n).P) == dim


def test_duality_gap_matches_its_two_player_definition():
    g = game(6)
    pis = np.random.default_rng(1).dirichlet(np.ones(6), size=20)
    direct = (pis @ g.P.T).max(axis=1) - (pis @ g.P).min(axis=1)
    np.testing.assert_allclose(ch.duality_gap(g.P, pis), direct, atol=1e-14)
    assert np.all(direct >= -1e-14)


def test_rotation_plane_is_orthonormal_and_orthogonal_to_the_ne():
    g = game(7)
    plane = ch.rotation_plane(g.P)
    np.testing.assert_allclose(plane @ plane.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(plane @ (g.P - 0.5) @ g.pi_star, 0.0, atol=1e-12)


def test_projected_paths_start_at_uniform_and_end_at_the_ne_for_omwu():
    g = game(7)
    paths = ch.projected_paths(g, eta=2.0, n_iters=3000)
    assert set(paths) == set(ch.VARIANTS)
    start = (np.full(7, 1 / 7) - g.pi_star) @ ch.rotation_plane(g.P).T
    for gaps, xy in paths.values():
        assert gaps.shape == (3001,) and xy.shape == (3001, 2)
        np.testing.assert_allclose(xy[0], start, atol=1e-12)
    assert np.abs(paths["omwu"][1][-1]).max() < 1e-5
    assert np.abs(paths["mwu"][1][-1]).max() > 1e-2


# --- the dynamics --------------------------------------------------------------------


def two_player_omwu(P, eta, n_iters):
    """Optimistic MWU as two players with an auxiliary sequence each (Wei et al.)."""
    n = P.shape[0]
    x = y = np.full(n, 1.0 / n)
    x_hat = y_hat = np.full(n, 1.0 / n)
    xs = [x]
    for _ in range(n_iters):
        x_new = softmax(np.log(x_hat) + eta * P @ y)
        y_new = softmax(np.log(y_hat) + eta * P @ x)
        x_hat = softmax(np.log(x_hat) + eta * P @ y_new)
        y_hat = softmax(np.log(y_hat) + eta * P @ x_new)
        x, y = x_new, y_new
        xs.append(x)
    return np.array(xs), y


def test_single_policy_omwu_equals_the_two_player_form():
    g = game(5)
    _, log_pi = ch.run_dynamics(g.P, "omwu", eta=1.5, n_iters=60)
    xs, y_last = two_player_omwu(g.P, 1.5, 60)
    np.testing.assert_allclose(np.exp(log_pi), xs, atol=1e-12)
    np.testing.assert_allclose(y_last, xs[-1], atol=1e-12)


def test_mwu_is_plain_multiplicative_weights():
    g = game(5)
    _, log_pi = ch.run_dynamics(g.P, "mwu", eta=0.7, n_iters=30)
    manual = [np.full(5, -np.log(5))]
    for _ in range(30):
        manual.append(log_softmax(manual[-1] + 0.7 * g.P @ np.exp(manual[-1])))
    np.testing.assert_allclose(log_pi, np.array(manual), atol=1e-12)


def test_regularised_dynamics_reach_the_regularised_equilibrium():
    g, tau = game(7), 0.05
    gaps, log_pi = ch.run_dynamics(g.P, "regularised", eta=2.0, n_iters=3000, tau=tau)
    pi = np.exp(log_pi[-1])
    np.testing.assert_allclose(log_pi[-1], log_softmax(g.P @ pi / tau), atol=1e-8)
    assert gaps[-1] > 1e-3


def test_mwu_drifts_away_while_omwu_approaches_the_ne():
    g = game(7)

    def kl_to_ne(log_pi):
        return np.sum(g.pi_star * (np.log(g.pi_star) - log_pi), axis=-1)

    _, mwu = ch.run_dynamics(g.P, "mwu", eta=2.0, n_iters=2000)
    _, omwu = ch.run_dynamics(g.P, "omwu", eta=2.0, n_iters=2000)
    assert kl_to_ne(mwu[-1]) > 10 * kl_to_ne(mwu[1])
    assert kl_to_ne(omwu[-1]) < 1e-6


def test_even_n_converges_to_some_ne_of_the_set(results):
    config = results["omwu"].config
    index = config.sizes.index(8)
    assert np.all(results["omwu"].final_gap[index] < 1e-6)
    assert results["omwu"].policy_error[index].max() > 0.05


# --- the measurements ----------------------------------------------------------------


def test_linear_rate_recovers_a_known_slope():
    t = np.arange(4000)
    gaps = 0.1 * np.exp(-0.01 * t) * (1.0 + 0.3 * np.sin(0.5 * t) ** 2)
    slope, r2 = ch.linear_rate(gaps)
    assert slope == pytest.approx(-0.01, rel=0.02)
    assert r2 > 0.99


def test_linear_rate_is_nan_when_the_gap_never_drops():
    slope, r2 = ch.linear_rate(np.full(500, 0.2))
    assert np.isnan(slope) and np.isnan(r2)


def test_linear_rate_stops_at_the_round_off_floor():
    gaps = np.concatenate([np.exp(-0.05 * np.arange(800)), np.full(500, 1e-16)])
    slope, r2 = ch.linear_rate(gaps)
    assert slope == pytest.approx(-0.05, rel=1e-6) and r2 > 0.999


def test_marginal_rise_on_a_ramp():
    log_prob = np.concatenate([-10.0 + 0.25 * np.arange(33), np.full(50, -1.9)])
    slope, r2, t_rise = ch.marginal_rise(log_prob, target=-2.0)
    assert t_rise == 28 and slope == pytest.approx(0.25) and r2 == pytest.approx(1.0)


def test_rare_action_start():
    log_pi0 = ch.rare_action_start(7, 3, -10.0)
    assert log_pi0[3] == -10.0
    assert np.exp(log_pi0).sum() == pytest.approx(1.0, abs=1e-15)


# --- the claim -----------------------------------------------------------------------


def test_claim_holds_for_omwu(results):
    ch.check_claim(results["omwu"])
    assert results["omwu"].final_gap.max() <= ch.GAP_THRESHOLD


@pytest.mark.parametrize("variant", ["mwu", "regularised"])
def test_claim_fails_for_the_baselines(results, variant):
    with pytest.raises(ClaimFailed, match="duality gap"):
        ch.check_claim(results[variant])


def test_baselines_fall_short_as_claimed(results):
    ch.check_baselines(results["mwu"], results["regularised"])


def test_baseline_check_fails_when_omwu_stands_in(results):
    omwu = results["omwu"]
    fake_mwu = dataclasses.replace(
        omwu, config=dataclasses.replace(omwu.config, variant="mwu")
    )
    fake_reg = dataclasses.replace(
        omwu, config=dataclasses.replace(omwu.config, variant="regularised")
    )
    with pytest.raises(ClaimFailed, match="mwu: gap fell"):
        ch.check_baselines(fake_mwu, results["regularised"])
    with pytest.raises(ClaimFailed, match="regularised: gap fell"):
        ch.check_baselines(results["mwu"], fake_reg)


def test_claim_fails_when_the_rare_action_does_not_settle(results):
    broken = dataclasses.replace(results["omwu"], marginal_policy_error=0.5)
    with pytest.raises(ClaimFailed, match="away from"):
        ch.check_claim(broken)


# --- bad input -----------------------------------------------------------------------


def test_bad_inputs_raise():
    rng = np.random.default_rng(0)
    P = game(4).P
    with pytest.raises(ValueError, match="n_actions must be >= 3"):
        ch.plant_preference_game(2, rng)
    with pytest.raises(ValueError, match="scale must be <= 0.5"):
        ch.plant_preference_game(5, rng, scale=0.6)
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        ch.plant_preference_game(5, 0)
    with pytest.raises(ValueError, match="P must satisfy P \\+ P.T = 1"):
        ch.duality_gap(np.eye(3), np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="pi must be non-negative"):
        ch.duality_gap(P, np.array([0.5, 0.5, 0.5, -0.5]))
    with pytest.raises(ValueError, match="pi must have shape"):
        ch.duality_gap(P, np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.run_dynamics(P, "adam", eta=1.0, n_iters=5)
    with pytest.raises(ValueError, match="eta must be > 0"):
        ch.run_dynamics(P, "omwu", eta=-1.0, n_iters=5)
    with pytest.raises(ValueError, match="lower must be < upper"):
        ch.linear_rate(np.ones(10), upper=1e-6, lower=1e-3)
    with pytest.raises(ValueError, match="log_prob must be < 0"):
        ch.rare_action_start(4, 0, 0.0)
    with pytest.raises(TypeError, match="game must be a PreferenceGame"):
        ch.projected_paths(P, eta=1.0, n_iters=5)
    with pytest.raises(ValueError, match="action must be <= 3"):
        ch.rare_action_start(4, 4, -5.0)


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.Config(variant="sgd")
    with pytest.raises(ValueError, match="marginal_size must be odd"):
        ch.Config(marginal_size=8)
    with pytest.raises(TypeError, match="sizes must be a non-empty tuple"):
        ch.Config(sizes=[7, 8])
    with pytest.raises(ValueError, match="sizes\\[i\\] must be >= 3"):
        ch.Config(sizes=(2,))
    with pytest.raises(ValueError, match="tau must be > 0"):
        ch.Config(tau=0.0)
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({"variant": "omwu"})
    with pytest.raises(TypeError, match="result must be a Result"):
        ch.check_claim(None)


def test_check_baselines_wants_the_named_variants(results):
    with pytest.raises(ValueError, match="mwu must be a result of variant 'mwu'"):
        ch.check_baselines(results["omwu"], results["regularised"])


def test_claim_needs_both_odd_and_even_games():
    result = ch.run_experiment(ch.Config(sizes=(7,), n_seeds=1))
    with pytest.raises(ClaimFailed, match="odd n.*even n"):
        ch.check_claim(result)

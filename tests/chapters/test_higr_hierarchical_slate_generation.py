"""HiGR (arXiv 2512.24787): mechanism, bad input and the claim."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from paperlab.claims import ClaimFailed
from paperlab.kernels.slate_sim import slate_rewards_reference
from paperlab.recommendation_retrieval import higr_hierarchical_slate_generation as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's default experiment (about 5 s of CPU)."""
    return ch.run_experiment(ch.Config())


@pytest.fixture(scope="module")
def world():
    return ch.make_world(6, 5, 40, 2, 0.6, np.random.default_rng(0))


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_higr_with_orpo(result):
    ch.check_claim(result)
    for s in result.seeds:
        assert s.passes_test == 2 and s.passes_flat == 10
        assert s.reward_aligned > s.reward_self_training > s.reward_imitation


def test_claim_fails_without_alignment():
    baseline = ch.run_experiment(ch.Config(alignment="none", seeds=(0,)))
    with pytest.raises(ClaimFailed, match="alignment raised mean reward by"):
        ch.check_claim(baseline)


def test_claim_fails_without_the_odds_ratio_term():
    """lambda = 0 keeps only the imitation of the best served slate: it gains a lot
    over imitation of the logs, but the claim is about the odds-ratio term."""
    baseline = ch.run_experiment(ch.Config(orpo_weight=0.0, seeds=(0,)))
    assert baseline.mean_reward_gain >= ch.MIN_REWARD_GAIN
    assert baseline.seeds[0].orpo_margin == 0.0
    with pytest.raises(ClaimFailed, match="the odds-ratio term changed served"):
        ch.check_claim(baseline)


def test_claim_fails_with_odds_of_the_whole_slate_probability():
    baseline = ch.run_experiment(ch.Config(alignment="orpo_sum", seeds=(0,)))
    with pytest.raises(ClaimFailed, match="the odds-ratio term changed served"):
        ch.check_claim(baseline)


def test_claim_fails_for_the_flat_decoder():
    baseline = ch.run_experiment(ch.Config(decoder="flat", seeds=(0,)))
    with pytest.raises(ClaimFailed, match="sequential passes"):
        ch.check_claim(baseline)


def test_claim_does_not_depend_on_wall_clock(result):
    """A loaded machine can make the two-pass decoder slower; the claim counts."""
    slow = tuple(
        dataclasses.replace(s, latency_test=10 * s.latency_flat) for s in result.seeds
    )
    slowed = dataclasses.replace(result, seeds=slow)
    assert slowed.median_speedup == pytest.approx(0.1)
    ch.check_claim(slowed)


def test_result_numbers_are_consistent(result):
    for s in result.seeds:
        assert s.reward_oracle > max(s.greedy_flat, s.greedy_aligned)
        assert 1.0 <= s.diversity_aligned <= result.config.n_slots
        assert s.latency_flat > 0 and s.latency_test > 0
    assert result.models["aligned"] is not result.models["imitation"]
    assert result.models["self_training"] is not result.models["aligned"]


def test_sweep_reuses_and_reproduces_the_experiment(result):
    s = result.seeds[0]
    sweep = ch.sweep_orpo_weight(result, (0.0, 1.0))
    assert sweep.rewards == (s.reward_self_training, s.reward_aligned)
    assert sweep.reward_imitation == s.reward_imitation
    raw = [ch.sweep_orpo_weight(result, (1.0,), alignment="orpo_sum") for _ in "ab"]
    assert raw[0].rewards == raw[1].rewards
    for shares in (*sweep.rank_shares, sweep.rank_shares_imitation):
        assert shares.shape == (4,) and shares.sum() == pytest.approx(1.0)


# ------------------------------------------------------------- the mechanism


def test_slate_reward_matches_reference(world):
    rng = np.random.default_rng(1)
    slates, users = ch.behaviour_slates(world, np.arange(10), 4, 3, rng)
    got = ch.slate_reward(world, slates, users)
    ref = slate_rewards_reference(
        slates, world.user_pref, users, world.item_topic, world.item_quality, 0.6
    )
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_behaviour_slates_have_distinct_items(world):
    slates, users = ch.behaviour_slates(
        world, np.arange(20), 5, 4, np.random.default_rng(2)
    )
    assert slates.shape == (80, 5) and users.shape == (80,)
    assert all(len(set(row)) == 5 for row in slates.tolist())


def test_oracle_beats_every_logged_slate_on_average(world):
    users = np.arange(world.n_users)
    oracle = ch.slate_reward(world, ch.greedy_oracle_slates(world, users, 4), users)
    slates, su = ch.behaviour_slates(world, users, 4, 5, np.random.default_rng(3))
    logged = ch.slate_reward(world, slates, su).reshape(-1, 5)
    assert np.all(oracle[:, None] >= logged.max(axis=1, keepdims=True) - 1e-6)


def test_rank_shares_by_brute_force(world):
    rng = np.random.default_rng(8)
    users = rng.integers(0, world.n_users, size=30)
    slates = rng.integers(0, world.n_items, size=(30, 4))
    got = ch.rank_shares(world, slates, users)
    counts = np.zeros(3)
    for u, row in zip(users, slates, strict=True):
        pref = world.user_pref[u]
        liked = [t for t in np.argsort(-pref) if pref[t] > 0]
        for item in row:
            t = world.item_topic[item]
            counts[liked.index(t) if t in liked else 2] += 1
    np.testing.assert_allclose(got, counts / counts.sum())


def test_preference_pairs_by_brute_force():
    rng = np.random.default_rng(4)
    slates = rng.integers(0, 30, size=(24, 3))
    users = np.repeat(np.arange(6), 4)
    rewards = rng.random(24)
    got_users, chosen, rejected = ch.preference_pairs(slates, users, rewards)
    assert got_users.tolist() == list(range(6))
    for u in range(6):
        rows = np.flatnonzero(users == u)
        assert chosen[u].tolist() == slates[rows[rewards[rows].argmax()]].tolist()
        assert rejected[u].tolist() == slates[rows[rewards[rows].argmin()]].tolist()


@pytest.mark.parametrize("kind", ch.DECODERS)
def test_decoders_define_a_distribution_per_slot(world, kind):
    """Summing exp(log P) of slot 0 over every item gives 1 (parallel slots) or,
    for the flat chain, the first item's topic and code distributions sum to 1."""
    model = ch.make_decoder(kind, world, 3, 16, seed=0)
    feats = torch.as_tensor(world.user_features[[0] * world.n_items])
    slates = np.zeros((world.n_items, 3), dtype=np.int64)
    slates[:, 0] = np.arange(world.n_items)
    slates[:, 1:] = (np.arange(world.n_items)[:, None] + [1, 2]) % world.n_items
    with torch.no_grad():
        lp = model.token_log_probs(
            feats, torch.as_tensor(ch.item_tokens(world, slates))
        )
    first_item = lp[:, 0] + lp[:, 1]
    assert float(first_item.exp().sum()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(("kind", "passes"), [("flat", 8), ("hierarchical", 2)])
def test_decoding_counts_passes_and_never_repeats_items(world, kind, passes):
    model = ch.make_decoder(kind, world, 4, 16, seed=0)
    feats = torch.as_tensor(world.user_features)
    for generator in (None, torch.Generator().manual_seed(0)):
        slates, n = model.decode(feats, generator=generator)
        assert n == passes and slates.shape == (world.n_users, 4)
        assert all(len(set(row)) == 4 for row in slates.tolist())


@pytest.mark.parametrize("kind", ch.DECODERS)
@pytest.mark.parametrize(("n_slots", "d_model"), [(1, 8), (3, 16)])
def test_flops_per_slate_match_torchs_flop_counter(world, kind, n_slots, d_model):
    from torch.utils.flop_counter import FlopCounterMode

    model = ch.make_decoder(kind, world, n_slots, d_model, seed=0)
    with FlopCounterMode(display=False) as counter:
        model.decode(torch.as_tensor(world.user_features[:1]))
    assert ch.flops_per_slate(model) == counter.get_total_flops()


def test_greedy_decode_is_the_argmax_of_the_parallel_slots(world):
    model = ch.make_decoder("hierarchical", world, 1, 16, seed=1)
    feats = torch.as_tensor(world.user_features[:3])
    slates, _ = model.decode(feats)
    all_items = np.arange(world.n_items)[:, None]
    tokens = torch.as_tensor(ch.item_tokens(world, all_items))
    for b in range(3):
        with torch.no_grad():
            lp = model.token_log_probs(feats[[b] * world.n_items], tokens).sum(1)
        assert slates[b, 0] == int(lp.argmax())


def test_sequence_log_odds_matches_direct_formula():
    lp = torch.log(torch.tensor([[0.5, 0.2], [0.9, 0.9]], dtype=torch.float64))
    for level, p in (("sum", lp.sum(1).exp()), ("mean", lp.mean(1).exp())):
        want = torch.log(p / (1 - p))
        torch.testing.assert_close(ch.sequence_log_odds(lp, level), want)


def test_orpo_loss_is_nll_plus_weighted_odds_ratio_term(world):
    model = ch.make_decoder("hierarchical", world, 3, 16, seed=0)
    rng = np.random.default_rng(5)
    feats = torch.as_tensor(world.user_features[:8])
    good = torch.as_tensor(ch.item_tokens(world, rng.integers(0, 30, (8, 3))))
    bad = torch.as_tensor(ch.item_tokens(world, rng.integers(0, 30, (8, 3))))
    nll = ch.imitation_loss(model, feats, good)
    zero = ch.orpo_loss(model, feats, good, bad, 0.0, "sum")
    torch.testing.assert_close(zero, nll)
    lp_w = model.token_log_probs(feats, good).sum(1)
    lp_l = model.token_log_probs(feats, bad).sum(1)
    odds = lambda lp: lp - torch.log1p(-lp.exp())  # noqa: E731
    term = -torch.nn.functional.logsigmoid(odds(lp_w) - odds(lp_l)).mean()
    one = ch.orpo_loss(model, feats, good, bad, 1.0, "sum")
    assert math.isclose(one.item(), (nll + term).item(), rel_tol=1e-5)


def test_training_lowers_the_imitation_loss(world):
    model = ch.make_decoder("hierarchical", world, 3, 16, seed=0)
    slates, users = ch.behaviour_slates(
        world, np.arange(40), 3, 4, np.random.default_rng(6)
    )
    data = (
        torch.as_tensor(world.user_features[users]),
        torch.as_tensor(ch.item_tokens(world, slates)),
    )
    losses = ch.train_decoder(
        model, ch.imitation_loss, data, 60, 32, 1e-2, np.random.default_rng(7)
    )
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.1


# ----------------------------------------------------------------- bad input


def test_bad_inputs(world):
    with pytest.raises(ValueError, match="decoder must be one of"):
        ch.Config(decoder="beam")
    with pytest.raises(ValueError, match="alignment must be one of"):
        ch.Config(alignment="dpo")
    with pytest.raises(ValueError, match="n_test_users must be <="):
        ch.Config(n_users=10, n_test_users=10)
    with pytest.raises(ValueError, match="topics_per_user must be <= 6"):
        ch.make_world(6, 5, 10, 7, 0.6, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be a Generator"):
        ch.make_world(6, 5, 10, 2, 0.6, 0)
    with pytest.raises(ValueError, match=r"slates must lie in \[0, 30\)"):
        ch.slate_reward(world, [[0, 30]], [0])
    with pytest.raises(TypeError, match="slates must hold integers"):
        ch.slate_reward(world, [[0.5, 1.0]], [0])
    with pytest.raises(ValueError, match="users must have shape"):
        ch.slate_reward(world, [[0, 1]], [0, 1])
    with pytest.raises(ValueError, match="level must be one of"):
        ch.sequence_log_odds(torch.zeros(1, 2), "item")
    with pytest.raises(TypeError, match="result must be a Result"):
        ch.check_claim({"gain": 0.3})
    with pytest.raises(ValueError, match="weights must be a non-empty tuple"):
        ch.sweep_orpo_weight(ch.Result(ch.Config(), ()), ())
    unaligned = ch.Result(ch.Config(alignment="none"), (), {"pairs": None})
    with pytest.raises(ValueError, match="result must come from a run with alignment"):
        ch.sweep_orpo_weight(unaligned, (1.0,))
    with pytest.raises(ValueError, match="alignment must be one of"):
        ch.sweep_orpo_weight(unaligned, (1.0,), alignment="none")
    with pytest.raises(ValueError, match="users must have shape"):
        ch.rank_shares(world, [[0, 1]], [0, 1])
    with pytest.raises(TypeError, match="model must be a"):
        ch.flops_per_slate(torch.nn.Linear(2, 2))

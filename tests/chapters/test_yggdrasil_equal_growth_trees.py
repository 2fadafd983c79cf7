"""Yggdrasil chapter: equal-growth trees, greedy verification, latency objective."""

import dataclasses

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.efficient_transformers import yggdrasil_equal_growth_trees as ch

SMALL = ch.Config(n_seeds=2, n_prompts=10, n_new=120)


@pytest.fixture(scope="module")
def pair():
    return ch.make_markov_pair(np.random.default_rng(0))


@pytest.fixture(scope="module")
def mechanism():
    return ch.run_experiment(SMALL)


@pytest.fixture(scope="module")
def baseline():
    return ch.run_experiment(dataclasses.replace(SMALL, variant="baseline"))


# ------------------------------------------------------------------ the models


def test_markov_pair_is_normalised_and_sparse(pair):
    assert np.allclose(pair.target_probs.sum(axis=2), 1.0)
    assert np.all((pair.target_probs > 0).sum(axis=2) == 4)
    assert np.allclose(np.exp(pair.draft_logp.astype(np.float64)).sum(axis=2), 1.0)
    assert np.array_equal(pair.target_argmax, pair.target_probs.argmax(axis=2))


def test_draft_is_imperfect_but_informative(pair):
    agree = np.mean(pair.draft_logp.argmax(axis=2) == pair.target_argmax)
    assert 0.5 < agree < 0.98


def test_sampled_contexts_follow_the_target(pair):
    prompts, contexts = ch.sample_contexts(pair, 5, 30, np.random.default_rng(1))
    ctx = contexts.reshape(5, 30, 2)
    assert np.array_equal(ctx[:, 0], prompts)
    assert np.array_equal(ctx[:, 1:, 0], ctx[:, :-1, 1])  # a sliding window
    nxt = ctx[:, 1:, 1]
    probs = pair.target_probs[ctx[:, :-1, 0], ctx[:, :-1, 1], nxt]
    assert np.all(probs > 0)  # every sampled token is in the target's support


# ----------------------------------------------------------------- the trees


def test_equal_growth_tree_levels_are_topk_of_the_frontier(pair):
    # Independent check: score every child of the previous level with float64 numpy.
    tokens, parent = ch.equal_growth_tree(pair, [3, 7], width=3, depth=3)
    logp = pair.draft_logp.astype(np.float64)
    paths = {-1: ([3, 7], 0.0)}
    for level in range(3):
        front = range((level - 1) * 3, level * 3) if level else [-1]
        cands = []
        for node in front:
            ctx, score = paths[node]
            for t in range(pair.vocab):
                cands.append((score + logp[ctx[-2], ctx[-1], t], node, t))
        cands.sort(key=lambda c: -c[0])
        for j, (score, node, t) in enumerate(cands[:3]):
            i = level * 3 + j
            assert (tokens[i], parent[i]) == (t, node)
            paths[i] = (paths[node][0] + [t], score)


def test_aal_grid_prefix_identity_matches_direct_measurement(pair):
    _, contexts = ch.sample_contexts(pair, 4, 50, np.random.default_rng(2))
    grid = ch.acceptance_grid(pair, contexts, 3, 4)
    from paperlab.kernels.spec_trees import acceptance_at_contexts

    for w, d in ((1, 1), (2, 3), (3, 4)):
        direct = acceptance_at_contexts(
            pair.draft_logp, pair.target_argmax, contexts, w, d, False
        ).mean()
        assert grid[w - 1, d - 1] == pytest.approx(direct)
    assert np.all(np.diff(grid, axis=1) >= 0)  # deeper never accepts less


def test_tree_decode_is_lossless_for_both_trees(pair):
    prompts = np.array([[0, 1], [5, 9], [63, 2]])
    greedy = ch.greedy_decode(pair, prompts, 60)
    for tree in ch.TREES:
        tokens, aal = ch.tree_decode(pair, prompts, 60, 3, 4, tree)
        assert np.array_equal(tokens, greedy)
        assert 0 < aal <= 4


def test_verify_detects_a_wrong_tree(pair):
    prefix = [1, 2]
    want = pair.target_argmax[1, 2]
    wrong = (want + 1) % pair.vocab
    path, bonus = ch.verify_greedy(pair, prefix, [wrong], [-1])
    assert path.size == 0 and bonus == want
    path, _ = ch.verify_greedy(pair, prefix, [wrong, want], [-1, -1])
    assert path.tolist() == [1]


def test_latency_model_and_selection():
    lat = ch.LatencyModel(t_verify=1.0, t_token=0.5, n_sat=4, t_draft=0.25)
    assert lat.verify_time(4) == 1.0 and lat.verify_time(6) == 2.0
    assert lat.step_time(2, 2) == pytest.approx(0.5 + 1.5)
    aal = np.array([[1.0, 1.5], [1.2, 2.0]])
    widths, depths = np.indices(aal.shape) + 1
    speed = ch.tokens_per_time(aal, widths, depths, lat)
    assert ch.select_shape(aal, speed, "aal") == (2, 2)
    assert ch.select_shape(aal, speed, "latency") == (2, 1)  # 2.2 / 1.25
    tie = np.ones((2, 2))
    assert ch.select_shape(tie, tie, "aal") == (1, 1)  # ties to fewer nodes


def test_lm_tree_generate_is_lossless_with_untrained_models():
    import torch

    from paperlab.tinylm import TinyCausalLM, TinyLMConfig, generate

    torch.manual_seed(0)
    target = TinyCausalLM(TinyLMConfig(vocab_size=11, d_model=16, context=12)).eval()
    draft = TinyCausalLM(TinyLMConfig(vocab_size=11, d_model=8, context=12)).eval()
    prompt = np.array([1, 2, 3, 4])
    ids, aal = ch.lm_tree_generate(target, draft, prompt, 20, 2, 3)
    assert np.array_equal(ids, generate(target, prompt, 20, use_cache=False))
    same, aal_same = ch.lm_tree_generate(target, target, prompt, 20, 1, 3)
    assert np.array_equal(same, ids) and aal_same == 3.0  # a perfect draft


# ---------------------------------------------------------------- the claim


def test_claim_holds_for_the_mechanism(mechanism):
    ch.check_claim(mechanism)
    assert mechanism.selected == mechanism.latency_opt
    assert mechanism.selected != mechanism.aal_max


def test_claim_fails_when_shapes_are_chosen_by_aal(baseline):
    assert baseline.selected == baseline.aal_max
    with pytest.raises(ClaimFailed, match="as fast as the AAL-maximising"):
        ch.check_claim(baseline)


def test_claim_fails_when_decoding_is_not_lossless(mechanism):
    broken = dataclasses.replace(mechanism.seeds[0], lossless={"equal_growth": False})
    bad = ch.Result(mechanism.config, (broken,) + mechanism.seeds[1:])
    with pytest.raises(ClaimFailed, match="differs from plain greedy"):
        ch.check_claim(bad)


def test_claim_fails_when_equal_growth_loses_to_best_first(mechanism):
    n = mechanism.selected[0] * mechanism.selected[1]
    seeds = tuple(
        dataclasses.replace(s, best_first_aal={**s.best_first_aal, n: 100.0})
        for s in mechanism.seeds
    )
    with pytest.raises(ClaimFailed, match="best-first"):
        ch.check_claim(ch.Result(mechanism.config, seeds))


# -------------------------------------------------------------- bad input


def test_bad_inputs(pair):
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.Config(variant="fastest")
    with pytest.raises(ValueError, match="n_sat must be >= 1"):
        ch.LatencyModel(n_sat=0)
    with pytest.raises(TypeError, match="rng must be a Generator"):
        ch.make_markov_pair(0)
    with pytest.raises(ValueError, match="alpha must be <= 1.0"):
        ch.make_markov_pair(np.random.default_rng(0), alpha=1.5)
    with pytest.raises(ValueError, match="width must be <= 64"):
        ch.equal_growth_tree(pair, [0, 1], 65, 2)
    with pytest.raises(ValueError, match="prefix must lie in"):
        ch.equal_growth_tree(pair, [0, 64], 2, 2)
    with pytest.raises(ValueError, match="prefix must have shape"):
        ch.best_first_tree(pair, [0, 1, 2], 4)
    with pytest.raises(ValueError, match="parent"):
        ch.verify_greedy(pair, [0, 1], [3, 4], [-1, 1])
    with pytest.raises(ValueError, match="tree must be one of"):
        ch.tree_decode(pair, [[0, 1]], 5, 1, 1, tree="random")
    with pytest.raises(ValueError, match="objective must be one of"):
        ch.select_shape(np.ones((2, 2)), np.ones((2, 2)), "throughput")
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({"variant": "mechanism"})

"""Tests of the modular-addition manifolds chapter: closed forms, clustering, geometry,
topology, training, and the claim with its baseline counter-tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score

from paperlab.claims import ClaimFailed
from paperlab.geometry_representations import modular_addition_manifolds as ch

N = 31


@pytest.fixture(scope="module")
def result():
    """Five seeds per architecture (the notebook runs three)."""
    return ch.run_experiment(ch.Config(n_seeds=5))


@pytest.fixture(scope="module")
def config():
    return ch.Config()


def embedded(cloud: np.ndarray, dims: int, seed: int, noise: float = 0.02):
    """A random rotation of a cloud into ``dims`` dimensions, each axis stretched by
    0.6 to 1 (a moderate squash, as in trained clusters), plus a little noise."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(dims, cloud.shape[1])))
    stretch = rng.uniform(0.6, 1.0, size=cloud.shape[1])
    X = (cloud * stretch) @ rotation.T
    return X + noise * X.std() * rng.normal(size=X.shape)


# ---------------------------------------------------------------- the claim, and its
# counter-tests


def test_claim_holds_for_the_mechanism(result):
    ch.check_claim(result)
    summary = ch.summarise(result)
    assert summary["uniform"]["disc_like"] >= 0.8
    assert summary["learnable"]["disc_like"] >= 0.8
    assert summary["concat"]["torus"] >= 0.5


def test_claim_fails_for_the_single_neuron_baseline(result):
    baseline = ch.reanalyse(result, "baseline")
    assert all(u.betti1 == 0 for u in baseline.units)  # a 1-D cloud has no loop
    with pytest.raises(ClaimFailed, match="torus"):
        ch.check_claim(baseline)


def test_claim_fails_when_the_attention_model_is_replaced_by_concat(result):
    swapped = dict(result.preactivations, learnable=result.preactivations["concat"])
    fake = ch.reanalyse(
        dataclasses.replace(result, preactivations=swapped), "mechanism"
    )
    with pytest.raises(ClaimFailed, match="learnable"):
        ch.check_claim(fake)


def test_claim_needs_all_three_architectures(result):
    partial = dataclasses.replace(
        result, test_accuracy={"uniform": result.test_accuracy["uniform"]}
    )
    with pytest.raises(ClaimFailed, match="missing"):
        ch.check_claim(partial)


def test_learned_attention_is_far_from_uniform(result):
    # The attention weight on operand a spreads over most of [0, 1] (std of a uniform
    # variable is 0.29), so the learnable model is not secretly the uniform one.
    assert result.attention_spread.shape == (5,)
    assert np.all(result.attention_spread > 0.15)


# ---------------------------------------------------------------- closed forms and
# Theorem 4.1


@pytest.mark.parametrize(
    "kind, betti, share",
    [("disc", 0, 1.0), ("torus", 2, 0.5), ("clock", 1, None)],
)
def test_closed_forms_have_the_expected_topology(kind, betti, share, config):
    X = embedded(ch.closed_form_cloud(kind, N, 3), dims=8, seed=1)
    stats = ch.analyse_cloud(X, N, 3, config)
    assert stats["betti1"] == betti
    if share is None:  # the clock circle is orthogonal to both feature sets
        assert stats["r2_torus"] < 0.01
    else:
        assert stats["r2_disc"] / stats["r2_torus"] == pytest.approx(share, abs=0.03)


@pytest.mark.parametrize(
    "coupling, betti, low, high", [(1.0, 0, 0.99, 1.01), (0.0, 2, 0.3, 0.7)]
)
def test_phase_coupling_decides_disc_or_torus(coupling, betti, low, high, config):
    X = ch.simple_neuron_cluster(N, 5, 16, coupling, np.random.default_rng(0))
    stats = ch.analyse_cloud(X, N, 5, config)
    assert low <= stats["r2_disc"] / stats["r2_torus"] <= high
    assert stats["betti1"] == betti


# ---------------------------------------------------------------- geometry


def test_r_squared_matches_scikit_learn():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(200, 3))
    X = F @ rng.normal(size=(3, 5)) + rng.normal(size=(200, 5)) * [0.1, 1, 2, 0.5, 3]
    expected = r2_score(X, _fit_predict(F, X), multioutput="variance_weighted")
    assert ch.r_squared(X, F) == pytest.approx(expected, rel=1e-9)
    assert ch.r_squared(np.ones((200, 2)), F) == 0.0


def _fit_predict(F, X):
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(F, X).predict(F)


def test_neuron_frequencies_recover_planted_frequencies():
    rng = np.random.default_rng(3)
    planted = np.array([1, 4, 7, 15, 9])
    X = np.concatenate(
        [ch.simple_neuron_cluster(N, int(f), 1, 0.0, rng) for f in planted], axis=1
    )
    X[:, 1] += 0.3 * rng.normal(size=N * N)
    freq, purity = ch.neuron_frequencies(np.c_[X, np.ones(N * N)], N)
    np.testing.assert_array_equal(freq[:5], planted)
    assert purity[0] == pytest.approx(1.0) and 0.5 < purity[1] < 1.0
    assert purity[5] == 0.0  # a constant neuron has no frequency


def test_frequency_clusters_group_and_drop_small_clusters():
    rng = np.random.default_rng(4)
    X = np.concatenate(
        [
            ch.simple_neuron_cluster(N, 3, 6, 1.0, rng),
            ch.simple_neuron_cluster(N, 8, 2, 1.0, rng),
            rng.normal(size=(N * N, 3)),
        ],
        axis=1,
    )
    clusters = ch.frequency_clusters(X, N, min_purity=0.5, min_cluster=4)
    assert list(clusters) == [3]
    np.testing.assert_array_equal(clusters[3], np.arange(6))


# ---------------------------------------------------------------- topology helpers


def test_topological_coordinates_rank_and_scale():
    disc = ch.topological_coordinates(embedded(ch.disc_features(N, 2), 6, seed=0))
    torus = ch.topological_coordinates(embedded(ch.torus_features(N, 2), 6, seed=0))
    assert disc.shape == (N * N, 2) and torus.shape == (N * N, 4)
    np.testing.assert_allclose(torus.std(axis=0), 1.0)
    assert not ch.topological_coordinates(np.ones((10, 3))).any()


def test_maxmin_landmarks_pick_the_farthest_point_each_time():
    points = np.random.default_rng(5).normal(size=(300, 3))
    idx = ch.maxmin_landmarks(points, 12)
    assert len(set(idx.tolist())) == 12
    centre = points.mean(axis=0)
    assert idx[0] == np.argmax(np.linalg.norm(points - centre, axis=1))
    for k in range(1, 12):
        dist = np.linalg.norm(points[:, None] - points[idx[:k]][None], axis=-1).min(1)
        assert dist[idx[k]] == pytest.approx(dist.max())
    assert ch.maxmin_landmarks(points[:5], 12).shape == (5,)


def test_barcode_of_a_circle_and_betti_count():
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    bars = ch.h1_barcode(np.stack([np.cos(angles), np.sin(angles)], 1), 40, 0.4)
    assert bars.shape[0] >= 1 and bars[0, 1] == pytest.approx(0.4)
    assert ch.betti_1(bars, 0.15) == 1
    assert ch.betti_1(np.zeros((0, 2))) == 0


# ---------------------------------------------------------------- the networks


def test_batched_training_equals_training_alone():
    config = ch.Config(steps=15, n_seeds=2)
    for arch in ch.ARCHITECTURES:
        together, _ = ch.train_networks(arch, config, (7, 8))
        alone, _ = ch.train_networks(arch, config, (8,))
        for key in alone:
            np.testing.assert_allclose(
                together[key][1].cpu(), alone[key][0].cpu(), rtol=1e-4, atol=1e-5
            )


def test_hand_written_adamw_matches_torch():
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(4, 3, generator=gen)
    mine = {"w": start.clone()}
    theirs = start.clone().requires_grad_()
    config = ch.Config(lr=1e-2, weight_decay=0.5)
    optimiser = torch.optim.AdamW(
        [theirs], lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay
    )
    moments = {"w": (torch.zeros_like(start), torch.zeros_like(start))}
    for step in range(1, 6):
        grad = torch.randn(4, 3, generator=gen)
        ch._adamw_step(mine, {"w": grad}, moments, step, config)
        theirs.grad = grad.clone()
        optimiser.step()
    torch.testing.assert_close(mine["w"], theirs.detach())


def test_learnable_attention_is_a_softmax_over_the_two_operands():
    config = ch.Config()
    params = {k: v[None] for k, v in ch._init_one("learnable", config, 0).items()}
    a = torch.tensor([[0, 5, 30]])
    b = torch.tensor([[1, 5, 2]])
    alpha = ch._attention_weights(params, a, b)[0]
    for i in range(3):
        x_a = params["E"][0, a[0, i]] + params["P"][0, 0]
        x_b = params["E"][0, b[0, i]] + params["P"][0, 1]
        for h in range(config.n_heads):
            q, K = params["q"][0, h], params["K"][0, h]
            scores = torch.stack([q @ (x_a @ K), q @ (x_b @ K)]) / config.d_head**0.5
            assert alpha[i, h] == pytest.approx(
                torch.softmax(scores, 0)[0].item(), rel=1e-5
            )


def test_uniform_model_is_symmetric_in_the_operands():
    params = {k: v[None] for k, v in ch._init_one("uniform", ch.Config(), 1).items()}
    a, b = (
        torch.arange(N)[None].repeat(1, N),
        torch.arange(N).repeat_interleave(N)[None],
    )
    h_ab = ch.first_layer_preactivations(params, "uniform", a, b)
    h_ba = ch.first_layer_preactivations(params, "uniform", b, a)
    torch.testing.assert_close(h_ab, h_ba)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"variant": "clusters"}, ValueError, "variant"),
        ({"n": 30}, ValueError, "odd prime"),
        ({"n": 33}, ValueError, "odd prime"),
        ({"n": 31.0}, TypeError, "n must be an integer"),
        ({"train_frac": 1.2}, ValueError, "train_frac"),
        ({"architectures": ("uniform", "mlp")}, ValueError, "architectures"),
        ({"architectures": ["uniform"]}, TypeError, "tuple"),
        ({"architectures": ("concat", "concat")}, ValueError, "repeat"),
        ({"n_landmarks": 2}, ValueError, "n_landmarks"),
        ({"min_persistence": 0.0}, ValueError, "min_persistence"),
    ],
)
def test_config_rejects_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        ch.Config(**kwargs)


def test_functions_reject_bad_input(result):
    with pytest.raises(ValueError, match="f must be"):
        ch.disc_features(N, 0)
    with pytest.raises(ValueError, match="kind"):
        ch.closed_form_cloud("pizza")
    with pytest.raises(ValueError, match="same number of rows"):
        ch.r_squared(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="rows"):
        ch.neuron_frequencies(np.zeros((10, 3)), N)
    with pytest.raises(ValueError, match="finite"):
        ch.h1_barcode(np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="shape"):
        ch.betti_1(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n_landmarks"):
        ch.maxmin_landmarks(np.zeros((4, 2)), 0)
    with pytest.raises(TypeError, match="rng"):
        ch.simple_neuron_cluster(N, 1, 3, 0.5, rng=0)
    with pytest.raises(ValueError, match="arch"):
        ch.train_networks("mlp", ch.Config(), (0,))
    with pytest.raises(TypeError, match="seeds"):
        ch.train_networks("uniform", ch.Config(), ())
    with pytest.raises(ValueError, match="variant"):
        ch.reanalyse(result, "neurons")
    with pytest.raises(TypeError, match="Result"):
        ch.check_claim({"uniform": 1.0})
    with pytest.raises(ValueError, match="seeds were given"):
        ch.analyse(result.preactivations, (0,), result.config)

"""MDiffFR (arXiv 2512.24715): mechanism, bad input and the claim."""

from dataclasses import replace

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.recommendation_retrieval import mdifffr_cold_start_diffusion as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's default experiment: three seeds (about 4 s)."""
    return ch.run_experiment(ch.Config())


def _as_variant(result, variant):
    """The same measurements, with the claim pointed at another method."""
    return replace(result, config=replace(result.config, variant=variant))


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_mdifffr(result):
    ch.check_claim(result)


def test_claim_fails_for_mapping_baseline(result):
    with pytest.raises(ClaimFailed, match="MMD"):
        ch.check_claim(_as_variant(result, "mapping"))


def test_claim_fails_when_sampling_skips_the_reverse_chain():
    one_step = ch.run_experiment(ch.Config(variant="one_step", seeds=(0, 1)))
    with pytest.raises(ClaimFailed, match="Recall"):
        ch.check_claim(one_step)


def test_claim_fails_if_mapping_were_not_shrunk(result):
    """Part 3 guards the premise: a mapping that kept the warm norms would fail it."""
    metrics = tuple(
        replace(m, norm_ratio=1.0) if m.method == "mapping" else m
        for m in result.metrics
    )
    with pytest.raises(ClaimFailed, match="not 20% lower"):
        ch.check_claim(replace(result, metrics=metrics))


def test_claim_fails_if_the_mapping_gap_were_noise(result):
    """Part 1 halves a real gap only: a mapping MMD^2 inside its permutation null
    (where half of it says nothing) fails the claim."""
    metrics = tuple(
        replace(m, mmd2=0.5 * m.mmd2_null) if m.method == "mapping" else m
        for m in result.metrics
    )
    with pytest.raises(ClaimFailed, match="permutation null"):
        ch.check_claim(replace(result, metrics=metrics))


def test_mmd_gap_is_real_and_diffusion_sits_near_the_null(result):
    for d, b in zip(result.get("mdifffr"), result.get("mapping"), strict=True):
        assert b.mmd2 > 5 * b.mmd2_null  # the mapping's gap is far outside noise
        assert d.mmd2 < 3 * d.mmd2_null  # MDiffFR's is at the noise level


def test_result_shapes_and_reported_numbers(result):
    assert len(result.get("mdifffr")) == len(result.config.seeds)
    assert result.generated["mdifffr"].shape == (100, 16)
    assert result.diffusion_losses[-100:].mean() < result.diffusion_losses[:20].mean()
    for m in result.metrics:
        assert 0.0 <= m.recall <= 1.0 and m.inversion_r2 <= 1.0
    with pytest.raises(KeyError):
        result.get("gan")


# ------------------------------------------------------------- the mechanism


def test_world_sizes_and_split():
    world = ch.make_world(np.random.default_rng(0))
    assert world.interactions.shape == (300, 500) and world.n_warm == 400
    assert world.cond.shape == (500, 16)
    assert 10 < world.interactions.sum(axis=1).mean() < 80


def test_mlp_backward_matches_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    params = [p.astype(np.float64) for p in ch.mlp_init((5, 7, 6, 3), rng)]
    for p in params[1::2]:
        p += rng.normal(size=p.shape)
    X, Y = rng.normal(size=(4, 5)), rng.normal(size=(4, 3))
    out, cache = ch.mlp_forward(params, X)
    grads = ch.mlp_backward(params, cache, 2.0 * (out - Y))
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    h = torch.tensor(X)
    for layer in range(3):
        h = h @ tp[2 * layer] + tp[2 * layer + 1]
        if layer < 2:
            h = torch.nn.functional.silu(h)
    ((h - torch.tensor(Y)) ** 2).sum().backward()
    for g, t in zip(grads, tp, strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_forward_process_statistics():
    schedule = ch.make_schedule(100)
    assert schedule.alpha_bars[0] > 0.99 and schedule.alpha_bars[-1] < 0.01
    rng = np.random.default_rng(2)
    x0 = np.full((20000, 2), 3.0)
    t = np.full(20000, 50)
    x_t = ch.q_sample(x0, t, rng.standard_normal(x0.shape), schedule)
    ab = schedule.alpha_bars[49]
    np.testing.assert_allclose(x_t.mean(0), 3.0 * np.sqrt(ab), atol=0.03)
    np.testing.assert_allclose(x_t.var(0), 1.0 - ab, rtol=0.05)


def test_perfect_denoiser_recovers_a_point_mass(monkeypatch):
    """With the exact noise of a point mass, the sampler lands on the point."""
    schedule = ch.make_schedule(50)
    target = np.array([1.5, -0.5])

    def exact(params, x_t, t, cond, sched, use_time=True):
        ab = sched.alpha_bars[t - 1][:, None]
        return (x_t - np.sqrt(ab) * target) / np.sqrt(1.0 - ab)

    monkeypatch.setattr(ch, "denoiser_eps", exact)
    params = [np.zeros((1, 2))]
    out = ch.sample_embeddings(
        params, np.zeros((5, 1)), schedule, np.random.default_rng(3)
    )
    np.testing.assert_allclose(out, np.tile(target, (5, 1)), atol=1e-8)


def test_mmd_and_sliced_wasserstein():
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    shifted = Y + 1.0
    h = ch.median_bandwidth(X)
    assert abs(ch.rbf_mmd2(X, Y, h)) < 0.01 < ch.rbf_mmd2(X, shifted, h)
    # brute force of the unbiased estimate on a tiny sample
    a, b = X[:3], Y[:4]

    def k(u, v):
        return np.exp(-np.sum((u - v) ** 2) / (2 * h * h))

    xx = np.mean([k(a[i], a[j]) for i in range(3) for j in range(3) if i != j])
    yy = np.mean([k(b[i], b[j]) for i in range(4) for j in range(4) if i != j])
    xy = np.mean([k(u, v) for u in a for v in b])
    assert ch.rbf_mmd2(a, b, h) == pytest.approx(xx + yy - 2 * xy)
    assert ch.sliced_wasserstein(X, shifted, rng) > 3 * ch.sliced_wasserstein(X, Y, rng)


def test_mmd_null_quantile_matches_explicit_permutations():
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(30, 3)), rng.normal(size=(50, 3))
    h = ch.median_bandwidth(Y)
    fast = ch.mmd2_null_quantile(X, Y, h, np.random.default_rng(1), n_perm=40)
    # the same splits, scored one by one with rbf_mmd2
    perm_rng, Z, stats = np.random.default_rng(1), np.vstack((X, Y)), []
    for _ in range(40):
        order = perm_rng.permutation(80)
        stats.append(ch.rbf_mmd2(Z[order[:30]], Z[np.sort(order[30:])], h))
    assert fast == pytest.approx(np.quantile(stats, 0.95), rel=1e-9, abs=1e-12)
    # same distribution: the estimate usually sits below the null's 95th percentile;
    # a shifted sample lies far above it
    assert ch.rbf_mmd2(X + 1.0, Y, h) > 10 * fast


def test_recall_prefers_true_direction():
    world = ch.make_world(np.random.default_rng(5))
    users, items = world.user_latent, world.item_latent
    good = ch.cold_recall_at_k(world, users, items[:400], items[400:])
    bad = ch.cold_recall_at_k(world, users, items[:400], -items[400:])
    assert good > 0.3 > bad


def test_inversion_probe():
    rng = np.random.default_rng(6)
    cond = rng.normal(size=(200, 4))
    assert ch.inversion_r2(cond @ rng.normal(size=(4, 8)), cond, rng) > 0.99
    assert ch.inversion_r2(rng.normal(size=(200, 8)), cond, rng) < 0.1


def test_figures(result):
    import matplotlib.pyplot as plt

    fig, alt = ch.plot_reverse_steps(result.models, 5)
    assert "5 reverse step" in alt and "correlation" in alt
    plt.close(fig)
    gen = result.generated
    fig, alt = ch.plot_norms(result.warm_emb, gen["mapping"], gen["mdifffr"], "t")
    assert "vermillion" in alt and "blue" in alt
    plt.close(fig)


def test_one_step_samples_ignore_their_condition(result):
    """The reverse chain is what ties a sample to its feature: one step from pure
    noise gives samples uncorrelated with the mapping's conditional mean."""
    m = result.models
    cold = m.cond[m.world.n_warm :]
    mapped = ch.predict_regressor(m.regressor, cold)
    corr = {}
    for k in (1, 100):
        emb = ch.sample_embeddings(
            m.denoiser, cold, m.schedule, np.random.default_rng([0, 37]), n_reverse=k
        )
        corr[k] = ch.condition_alignment(mapped, emb)[2]
    assert corr[100] > 0.5 > 0.2 > abs(corr[1])
    assert ch.condition_alignment(mapped, mapped)[2] == pytest.approx(1.0)


# ------------------------------------------------------------------ bad input


def test_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="rng"):
        ch.make_world(0)
    with pytest.raises(ValueError, match="n_cold"):
        ch.make_world(rng, n_items=10, n_cold=9)
    with pytest.raises(ValueError, match="sizes"):
        ch.mlp_init((3,), rng)
    with pytest.raises(ValueError, match="beta_max"):
        ch.make_schedule(10, beta_min=0.1, beta_max=0.01)
    with pytest.raises(ValueError, match="dim must be even"):
        ch.time_embedding(np.arange(3), dim=5)
    with pytest.raises(ValueError, match="one row per row"):
        ch.fit_regressor(np.zeros((3, 2)), np.zeros((4, 2)), rng)
    with pytest.raises(ValueError, match="equal widths"):
        ch.rbf_mmd2(np.zeros((3, 2)), np.zeros((3, 3)), 1.0)
    with pytest.raises(ValueError, match="bandwidth"):
        ch.rbf_mmd2(np.zeros((3, 2)), np.zeros((3, 2)), 0.0)
    with pytest.raises(ValueError, match="equal widths"):
        ch.mmd2_null_quantile(np.zeros((3, 2)), np.zeros((3, 3)), 1.0, rng)
    with pytest.raises(ValueError, match="quantile"):
        ch.mmd2_null_quantile(np.zeros((3, 2)), np.zeros((3, 2)), 1.0, rng, quantile=2)
    with pytest.raises(ValueError, match="n_perm"):
        ch.mmd2_null_quantile(np.zeros((3, 2)), np.zeros((3, 2)), 1.0, rng, n_perm=0)
    with pytest.raises(ValueError, match="sampled"):
        ch.condition_alignment(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="method"):
        ch.generate(None, "gan", rng)
    with pytest.raises(TypeError, match="world"):
        ch.train_federated_mf({}, rng)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"variant": "gan"}, ValueError, "variant"),
        ({"seeds": ()}, ValueError, "seeds"),
        ({"seeds": (-1,)}, ValueError, "seeds"),
        ({"n_cold": 499}, ValueError, "n_cold"),
        ({"n_steps": 1}, ValueError, "n_steps"),
        ({"diffusion_iters": 2.5}, TypeError, "diffusion_iters"),
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

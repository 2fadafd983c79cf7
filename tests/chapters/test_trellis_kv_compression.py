"""Trellis KV compression (arXiv 2512.23852): mechanism, bad input and the claim."""

import numpy as np
import pytest
import torch

from paperlab.claims import ClaimFailed
from paperlab.efficient_transformers import trellis_kv_compression as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's default experiment (about 1 s)."""
    return ch.run_experiment(ch.Config())


def _as_variant(result, variant):
    """The same measurements, with the claim pointed at another memory."""
    return ch.Result(ch.Config(variant=variant), result.recall, result.floats)


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_trellis(result):
    ch.check_claim(result)


@pytest.mark.parametrize("variant", ["linear", "window", "hebbian", "softmax"])
def test_claim_fails_for_baselines_and_hebbian_ablation(result, variant):
    with pytest.raises(ClaimFailed):
        ch.check_claim(_as_variant(result, variant))


def test_claim_fails_for_full_attention_on_memory_size(result):
    with pytest.raises(ClaimFailed, match="floats"):
        ch.check_claim(_as_variant(result, "softmax"))


def test_claim_fails_with_a_strong_constant_forget_gate():
    """gamma = 0.98 (the spec's first guess) erodes the key slots between visits."""
    weak = ch.run_experiment(
        ch.Config(gamma=0.98, n_seeds=3), ("trellis", "linear", "window")
    )
    with pytest.raises(ClaimFailed, match="recall at N=1024"):
        ch.check_claim(weak)


def test_no_forget_ablation_matches_trellis_on_this_task(result):
    """Documented finding: the error term, not the gate, overwrites stale values."""
    gap = np.abs(result.recall["no_forget"] - result.recall["trellis"]).mean()
    assert gap < 0.05
    ch.check_claim(_as_variant(result, "no_forget"))


def test_state_sizes_in_floats(result):
    assert result.floats["trellis"] == (1024,) * 6
    assert result.floats["linear"] == (1056,) * 6
    assert result.floats["window"] == (1024,) * 6
    assert result.floats["softmax"][-1] == 2 * 2048 * 32


# ------------------------------------------------------------- the mechanism


def test_key_pass_is_one_gradient_step_checked_by_autograd():
    rng = np.random.default_rng(0)
    mk = rng.standard_normal((4, 6)) / 3
    k = rng.standard_normal(6)
    eta, gamma, tau = 0.3, 0.95, 0.5
    s = np.exp(mk @ k / tau)
    s /= s.sum()
    weights = torch.tensor(s)  # slot weights held fixed, as in the write rule
    memory = torch.tensor(mk, requires_grad=True)
    loss = 0.5 * torch.sum((torch.tensor(k) - memory.T @ weights) ** 2)
    loss.backward()
    expected = gamma * mk - eta * memory.grad.numpy()
    got, _ = ch.trellis_write(k[None], k[None], mk, np.zeros_like(mk), eta, gamma, tau)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_error_term_converges_where_hebbian_piles_up():
    rng = np.random.default_rng(1)
    k = rng.standard_normal(8)
    k /= np.linalg.norm(k)
    v = rng.standard_normal(8)
    keys, values = np.tile(k, (40, 1)), np.tile(v, (40, 1))
    mk, mv = ch.init_slot_memory(4, 8, rng)
    delta = ch.trellis_write(keys, values, mk, mv, 0.5, 1.0, 0.2)
    hebb = ch.trellis_write(keys, values, mk, mv, 0.5, 1.0, 0.2, error_term=False)
    read_delta = ch.slot_read(k[None], *delta, 0.2)[0]
    read_hebb = ch.slot_read(k[None], *hebb, 0.2)[0]
    assert np.linalg.norm(read_delta - v) < 1e-3 * np.linalg.norm(v)
    assert np.linalg.norm(read_hebb) > 5 * np.linalg.norm(v)


def test_delta_rule_overwrites_a_superseded_value():
    rng = np.random.default_rng(2)
    k = np.eye(8)[0]
    old, new = rng.standard_normal(8), rng.standard_normal(8)
    values = np.vstack([np.tile(old, (30, 1)), np.tile(new, (10, 1))])
    mk, mv = ch.init_slot_memory(4, 8, rng)
    memory = ch.trellis_write(np.tile(k, (40, 1)), values, mk, mv, 0.8, 1.0, 0.2)
    read = ch.slot_read(k[None], *memory, 0.2)[0]
    assert np.linalg.norm(read - new) < 0.05 * np.linalg.norm(read - old)


def test_linear_attention_state_by_brute_force():
    rng = np.random.default_rng(3)
    keys, values = rng.standard_normal((7, 4)), rng.standard_normal((7, 4))
    phi = [np.array([x + 1 if x > 0 else np.exp(x) for x in k]) for k in keys]
    S = sum(np.outer(f, v) for f, v in zip(phi, values, strict=True))
    got_S, got_z = ch.linear_attention_state(keys, values)
    np.testing.assert_allclose(got_S, S)
    np.testing.assert_allclose(got_z, sum(phi))
    q = rng.standard_normal((1, 4))
    fq = np.array([x + 1 if x > 0 else np.exp(x) for x in q[0]])
    expected = sum((fq @ f) * v for f, v in zip(phi, values, strict=True)) / (
        fq @ sum(phi)
    )
    np.testing.assert_allclose(ch.linear_attention_read(q, got_S, got_z)[0], expected)


def test_make_stream_structure():
    stream = ch.make_stream(480, np.random.default_rng(4))
    runs = stream.clusters.reshape(-1, 8)
    assert np.all(runs == runs[:, :1])  # runs of 8 tokens from one cluster
    assert np.allclose(np.linalg.norm(stream.keys, axis=1), 1.0)
    assert stream.shift == 320
    # every value is near its cluster's shown value; the value changes at the shift
    c = stream.clusters[0]
    mask = stream.clusters == c
    before = stream.values[mask & (np.arange(480) < 320)].mean(0)
    after = stream.values[mask & (np.arange(480) >= 320)].mean(0)
    row = int(np.flatnonzero(stream.queried == c)[0])
    assert np.linalg.norm(after - stream.targets[row]) < 0.1
    assert np.linalg.norm(before - stream.targets[row]) > 0.5
    assert stream.candidates.shape == (24, 32)  # 12 old + 12 new values


def test_recall_scores_targets_and_superseded_values():
    stream = ch.make_stream(480, np.random.default_rng(5))
    assert ch.recall(stream.targets, stream) == 1.0
    old = stream.candidates[: len(stream.queried)]  # superseded values, same order
    assert ch.recall(old, stream) == 0.0


def test_calibration_reproduces_the_module_constants():
    cal = ch.calibrate()
    assert cal.best == {
        "eta": ch.ETA,
        "gamma": ch.GAMMA,
        "temperature": ch.TEMPERATURE,
        "init_scale": ch.INIT_SCALE,
    }
    assert len(cal.rows) == 3 * 4 * 3 * 2


def test_gamma_sweep_and_plots(result):
    import matplotlib.pyplot as plt

    sweep = ch.gamma_sweep((0.98, 1.0), ch.Config(n_seeds=2, lengths=(256, 1024)))
    assert sweep[1.0][-1] > sweep[0.98][-1] + 0.3
    plt.close(ch.plot_recall_vs_length(result))
    full = ch.gamma_sweep((0.999,), ch.Config(n_seeds=1))
    plt.close(ch.plot_explore(result, full, 1024, 0.999))
    with pytest.raises(ValueError, match="gamma"):
        ch.plot_explore(result, full, 1024, 0.5)


# ------------------------------------------------------------------ bad input


def test_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="multiple of run_length"):
        ch.make_stream(100, rng)
    with pytest.raises(TypeError, match="rng"):
        ch.make_stream(64, 0)
    with pytest.raises(ValueError, match="shift_fraction"):
        ch.make_stream(64, rng, shift_fraction=0.0)
    with pytest.raises(ValueError, match="memory"):
        ch.state_floats("lstm", 10)
    with pytest.raises(ValueError, match="temperature"):
        ch.slot_read(np.ones((1, 4)), np.ones((2, 4)), np.ones((2, 4)), 0.0)
    with pytest.raises(ValueError, match="value_memory"):
        ch.slot_read(np.ones((1, 4)), np.ones((2, 4)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="values"):
        ch.linear_attention_state(np.ones((3, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="readouts"):
        ch.recall(np.ones((2, 3)), ch.make_stream(64, rng))
    with pytest.raises(ValueError, match="memories"):
        ch.run_experiment(ch.Config(), ())
    with pytest.raises(ValueError, match="stream length 256"):
        ch.check_claim(ch.run_experiment(ch.Config(lengths=(64,), n_seeds=1)))
    with pytest.raises(ValueError, match="etas"):
        ch.calibrate(etas=())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_writes_reject_non_finite_input(bad):
    rng = np.random.default_rng(0)
    keys, values = rng.standard_normal((2, 5, 4))
    memory = ch.init_slot_memory(3, 4, rng)
    poisoned = keys.copy()
    poisoned[2, 1] = bad
    with pytest.raises(ValueError, match="keys must contain only finite"):
        ch.trellis_write(poisoned, values, *memory)
    with pytest.raises(ValueError, match="values must contain only finite"):
        ch.trellis_write(keys, poisoned, *memory)
    bad_memory = memory[0].copy()
    bad_memory[0, 0] = bad
    with pytest.raises(ValueError, match="key_memory must contain only finite"):
        ch.trellis_write(keys, values, bad_memory, memory[1])
    with pytest.raises(ValueError, match="value_memory must contain only finite"):
        ch.trellis_write(keys, values, memory[0], bad_memory)
    with pytest.raises(ValueError, match="keys must contain only finite"):
        ch.linear_attention_state(poisoned, values)
    with pytest.raises(ValueError, match="values must contain only finite"):
        ch.linear_attention_state(keys, poisoned)
    with pytest.raises(ValueError, match="queries must contain only finite"):
        ch.slot_read(poisoned, *memory)


def test_write_rejects_mismatched_shapes():
    rng = np.random.default_rng(0)
    memory = ch.init_slot_memory(3, 4, rng)
    with pytest.raises(ValueError, match="values must have shape"):
        ch.trellis_write(np.ones((5, 4)), np.ones((4, 4)), *memory)
    with pytest.raises(ValueError, match="key_memory must have shape"):
        ch.trellis_write(np.ones((5, 6)), np.ones((5, 6)), *memory)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"variant": "lstm"}, ValueError, "variant"),
        ({"lengths": ()}, ValueError, "lengths"),
        ({"lengths": (100,)}, ValueError, "multiples"),
        ({"n_seeds": 0}, ValueError, "n_seeds"),
        ({"gamma": 1.5}, ValueError, "gamma"),
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"n_slots": 2.5}, TypeError, "n_slots"),
    ],
)
def test_config_validation(changes, error, message):
    with pytest.raises(error, match=message):
        ch.Config(**changes)


def test_type_errors():
    with pytest.raises(TypeError, match="config"):
        ch.run_experiment({"lengths": (64,)})
    with pytest.raises(TypeError, match="result"):
        ch.check_claim(None)

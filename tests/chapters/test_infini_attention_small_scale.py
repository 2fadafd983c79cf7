"""Infini-attention on passkey retrieval (arXiv 2512.23862): mechanism, input, claim."""

import copy

import numpy as np
import pytest
import torch

from paperlab.claims import ClaimFailed
from paperlab.efficient_transformers import infini_attention_small_scale as ch


@pytest.fixture(scope="module")
def result():
    """The chapter's experiment over three seeds (about 8 s)."""
    return ch.run_experiment(ch.Config(n_seeds=3))


def _block(variant="infini", rule="delta", seed=0):
    return ch.InfiniBlock(ch.Vocab(), 16, 2, 4, variant=variant, rule=rule, seed=seed)


def _sigma(x):
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_infini_attention(result):
    ch.check_claim(result)
    # Every seed on its own clears the thresholds, not only the mean.
    assert np.all(result.gain_over_local >= ch.MIN_GAIN_OVER_LOCAL)
    assert np.all(result.gate_loss >= ch.MIN_GATE_LOSS)
    assert np.all(result.length_drop > ch.MIN_LENGTH_DROP)


def test_claim_fails_for_local_only_baseline():
    baseline = ch.run_experiment(ch.Config(variant="local", n_seeds=2))
    with pytest.raises(ClaimFailed, match="local-only baseline"):
        ch.check_claim(baseline)
    assert np.all(baseline.gain_over_local == 0)
    assert np.all(baseline.gate_loss == 0)  # a block without memory ignores the gate


def test_claim_fails_when_memory_is_not_carried(monkeypatch):
    """A bug that never writes the memory across segments must fail the claim."""
    monkeypatch.setattr(ch, "update_memory", lambda M, z, sk, v, rule: (M, z))
    broken = ch.run_experiment(ch.Config(n_seeds=1))
    with pytest.raises(ClaimFailed):
        ch.check_claim(broken)
    assert broken.gain_over_local.max() < 0.1


def test_result_shapes_and_ranges(result):
    config = result.config
    n_len, n_gate = len(config.eval_lengths), len(config.gate_values)
    assert result.accuracy.shape == (3, n_len)
    assert result.gate_sweep.shape == (3, n_len, n_gate)
    assert result.learned_gates.shape == (3, config.n_heads)
    assert len(result.models) == 3
    for acc in (result.accuracy, result.local_accuracy, result.gate_sweep):
        assert np.all((acc >= 0) & (acc <= 1))
    assert np.all(result.losses[:, -10:].mean(1) < 0.5 * result.losses[:, 0])
    # The local-only block sees the passkey only in the last segment: its accuracy
    # is near (S-1)/(L-1) + the chance rate of the rest.
    lengths = np.array(config.eval_lengths)
    inside = (config.seg_len - 1) / (lengths - 1)
    expected = inside + (1 - inside) / ch.Vocab().n_passkey
    assert np.all(np.abs(result.local_accuracy.mean(0) - expected) < 0.08)


# ------------------------------------------------------------- the mechanism


def test_passkey_batch_layout():
    vocab = ch.Vocab()
    tokens, targets, positions = ch.make_passkey_batch(
        200, 48, np.random.default_rng(0)
    )
    assert tokens.shape == (200, 48) and tokens.dtype == np.int64
    assert np.all(tokens[:, -1] == vocab.query)
    passkey = (tokens >= vocab.n_filler) & (tokens < vocab.query)
    assert np.all(passkey.sum(1) == 1)
    np.testing.assert_array_equal(passkey.argmax(1), positions)
    np.testing.assert_array_equal(tokens[np.arange(200), positions] - 64, targets)
    assert positions.max() <= 46


def test_sigma_is_elu_plus_one():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    np.testing.assert_allclose(ch.sigma(x).numpy(), _sigma(x.numpy()), rtol=1e-12)
    assert torch.all(ch.sigma(x) > 0)


def test_linear_memory_is_normalised_linear_attention_over_past_segments():
    """Eq. 1 with Eq. 2 equals a brute-force weighted average over earlier tokens."""
    rng = np.random.default_rng(1)
    seg, n_seg, d = 4, 5, 3
    k, v, q = (
        rng.normal(size=(seg * n_seg, d)),
        rng.normal(size=(seg * n_seg, d)),
        (rng.normal(size=d)),
    )
    M, z = torch.zeros(d, d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    for s in range(n_seg - 1):
        part = slice(s * seg, (s + 1) * seg)
        M, z = ch.update_memory(
            M, z, ch.sigma(torch.tensor(k[part])), torch.tensor(v[part]), "linear"
        )
    got = ch.retrieve(ch.sigma(torch.tensor(q[None])), M, z)[0].numpy()
    past = slice(0, seg * (n_seg - 1))
    w = _sigma(k[past]) @ _sigma(q)
    np.testing.assert_allclose(got, (w @ v[past]) / w.sum(), rtol=1e-5)


def test_delta_rule_matches_a_numpy_loop():
    rng = np.random.default_rng(2)
    d, seg = 3, 4
    M_np, z_np = np.zeros((d, d)), np.zeros(d)
    M, z = torch.zeros(d, d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    for _ in range(4):
        k, v = rng.normal(size=(seg, d)), rng.normal(size=(seg, d))
        sk = _sigma(k)
        recalled = (sk @ M_np) / ((sk @ z_np)[:, None] + ch.EPS)
        M_np = M_np + sk.T @ (v - recalled)
        z_np = z_np + sk.sum(0)
        M, z = ch.update_memory(
            M, z, ch.sigma(torch.tensor(k)), torch.tensor(v), "delta"
        )
    np.testing.assert_allclose(M.numpy(), M_np, rtol=1e-10)
    np.testing.assert_allclose(z.numpy(), z_np, rtol=1e-12)


def test_delta_rule_does_not_store_a_pair_twice():
    sk = ch.sigma(torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64))
    v = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    M0, z0 = torch.zeros(3, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    M1, z1 = ch.update_memory(M0, z0, sk, v, "delta")
    torch.testing.assert_close(ch.retrieve(sk, M1, z1), v, rtol=1e-5, atol=1e-6)
    M2, _ = ch.update_memory(M1, z1, sk, v, "delta")
    torch.testing.assert_close(M2, M1, rtol=1e-5, atol=1e-6)
    M2_linear, _ = ch.update_memory(M1, z1, sk, v, "linear")
    torch.testing.assert_close(M2_linear, 2 * M1)


def test_local_attention_is_causal_softmax():
    rng = np.random.default_rng(3)
    q, k, v = (
        torch.tensor(rng.normal(size=(5, 2)), dtype=torch.float64) for _ in "qkv"
    )
    got = ch.local_attention(q, k, v).numpy()
    for i in range(5):
        s = (k[: i + 1] @ q[i]).numpy() / np.sqrt(2)
        w = np.exp(s - s.max())
        np.testing.assert_allclose(got[i], (w / w.sum()) @ v[: i + 1].numpy())
    last = ch.local_attention(q[-2:], k, v)
    torch.testing.assert_close(last, ch.local_attention(q, k, v)[-2:])


@pytest.mark.parametrize("variant", ch.VARIANTS)
def test_last_position_path_matches_full_sequence(variant):
    """forward() (last position only) equals Eq. 4 computed at every position."""
    block = _block(variant)
    with torch.no_grad():
        block.beta.copy_(torch.tensor([0.7, -0.4]))
    tokens, _, _ = ch.make_passkey_batch(6, 20, np.random.default_rng(4))
    with torch.no_grad():
        mixed = block.sequence_mix(tokens)[:, :, -1]
        hidden = block.embed[block.vocab.query] + mixed.flatten(1) @ block.w_out
        torch.testing.assert_close(block(tokens), hidden @ block.w_read)


def test_only_infini_block_sees_past_segments():
    tokens, _, _ = ch.make_passkey_batch(4, 20, np.random.default_rng(5))
    changed = tokens.copy()
    changed[:, :4] = (changed[:, :4] + 1) % 64
    for variant, differs in (("infini", True), ("local", False)):
        block = _block(variant)
        with torch.no_grad():
            same = torch.allclose(block(tokens), block(changed))
        assert same is not differs


def test_memory_weights_sum_to_the_normaliser():
    block = _block()
    tokens, _, _ = ch.make_passkey_batch(3, 16, np.random.default_rng(6))
    with torch.no_grad():
        w = block.memory_weights(tokens)
        x = block.embed[torch.as_tensor(tokens, device=block.embed.device)]
        k, v = block._heads(x, 1), block._heads(x, 2)
        _, z = block.memory(k, v)[-1]
        sq = ch.sigma(block._heads(x[:, -1:], 0))[:, :, 0]
    assert w.shape == (3, 2, 12)
    torch.testing.assert_close(w.sum(-1), (sq * z).sum(-1))


def test_gate_accuracy_learned_equals_forced_learned_value(result):
    model = copy.deepcopy(result.models[0])
    tokens, targets, _ = ch.make_passkey_batch(300, 128, np.random.default_rng(7))
    with torch.no_grad():
        model.beta.zero_()  # sigmoid(0) = 0.5 on both heads
    acc = ch.gate_accuracy(model, tokens, targets, [0.5, 0.0])
    assert acc[0] == acc[1]
    assert acc[2] < acc[0]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"variant": "full"}, ValueError, "variant must be one of"),
        ({"rule": "gated"}, ValueError, "rule must be one of"),
        ({"d_model": 33}, ValueError, "divisible by n_heads"),
        ({"train_len": 40}, ValueError, "multiple of seg_len"),
        ({"train_len": 16}, ValueError, "train_len must be >= 32"),
        ({"claim_len": 128, "eval_lengths": (64, 256)}, ValueError, "claim_len"),
        ({"eval_lengths": [64, 256]}, TypeError, "eval_lengths must be"),
        ({"gate_values": (0.0, 1.5)}, ValueError, r"gate_values must lie in \[0, 1\]"),
        ({"lr": 0.0}, ValueError, "lr must be > 0"),
        ({"n_steps": 2.5}, TypeError, "n_steps must be an integer"),
    ],
)
def test_config_rejects_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        ch.Config(**kwargs)


def test_functions_reject_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_seqs must be >= 1"):
        ch.make_passkey_batch(0, 32, rng)
    with pytest.raises(TypeError, match="seq_len must be an integer"):
        ch.make_passkey_batch(4, True, rng)
    with pytest.raises(TypeError, match="rng must be a Generator"):
        ch.make_passkey_batch(4, 32, 0)
    with pytest.raises(ValueError, match="n_passkey must be >= 2"):
        ch.Vocab(n_passkey=1)
    with pytest.raises(ValueError, match="d_model must be divisible"):
        ch.InfiniBlock(ch.Vocab(), 15, 2, 4)
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.InfiniBlock(ch.Vocab(), 16, 2, 4, variant="full")
    block = _block()
    with pytest.raises(ValueError, match="divisible by seg_len"):
        block(np.zeros((2, 18), dtype=np.int64))
    with pytest.raises(ValueError, match="2-d int64"):
        block(np.zeros(16, dtype=np.int64))
    with pytest.raises(ValueError, match="tokens must lie in"):
        block(np.full((2, 16), 81, dtype=np.int64))
    tokens, targets, _ = ch.make_passkey_batch(4, 16, rng)
    with pytest.raises(ValueError, match=r"gate_values must lie in \[0, 1\]"):
        ch.gate_accuracy(block, tokens, targets, [-0.1])
    with pytest.raises(ValueError, match="one entry per sequence"):
        ch.gate_accuracy(block, tokens, targets[:2], [0.5])
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({"variant": "infini"})
    with pytest.raises(TypeError, match="result must be a Result"):
        ch.check_claim(None)


def test_memory_functions_reject_bad_input():
    M, z = torch.zeros(2, 4, 3), torch.zeros(2, 4)
    sk, v = torch.rand(2, 5, 4), torch.rand(2, 5, 3)
    with pytest.raises(ValueError, match="rule must be one of"):
        ch.update_memory(M, z, sk, v, rule="bogus")
    with pytest.raises(ValueError, match=r"v.shape\[-1\] \(2\) must equal M.shape"):
        ch.update_memory(M, z, sk, torch.rand(2, 5, 2), "linear")
    with pytest.raises(ValueError, match=r"sk.shape\[-1\] \(3\) must equal"):
        ch.update_memory(M, z, torch.rand(2, 5, 3), v, "delta")
    with pytest.raises(ValueError, match=r"v.shape\[-2\] \(4\) must equal sk"):
        ch.update_memory(M, z, sk, torch.rand(2, 4, 3), "linear")
    with pytest.raises(ValueError, match="leading .* dimensions do not match"):
        ch.update_memory(M, z, torch.rand(3, 5, 4), torch.rand(3, 5, 3), "linear")
    with pytest.raises(TypeError, match="v must have the dtype and device of M"):
        ch.update_memory(M, z, sk, v.double(), "linear")
    with pytest.raises(TypeError, match="sk must be a torch.Tensor, got ndarray"):
        ch.update_memory(M, z, sk.numpy(), v, "linear")
    with pytest.raises(TypeError, match="sq must be a torch.Tensor, got ndarray"):
        ch.retrieve(sk.numpy(), M, z)
    with pytest.raises(TypeError, match="sq must be a floating-point tensor"):
        ch.retrieve(sk.long(), M, z)
    with pytest.raises(ValueError, match=r"z.shape\[-1\] \(3\) must equal M"):
        ch.retrieve(sk, M, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="z must have at least 1 dimension"):
        ch.retrieve(sk, M, torch.tensor(0.0))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        ch.sigma([0.5])
    with pytest.raises(ValueError, match="more than the segment's 5 keys"):
        ch.local_attention(torch.rand(2, 6, 4), sk, v)
    with pytest.raises(ValueError, match=r"q.shape\[-1\] \(3\) must equal k"):
        ch.local_attention(torch.rand(2, 1, 3), sk, v)

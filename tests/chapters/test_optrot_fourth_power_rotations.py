"""OptRot (arXiv 2512.24124): the mechanism, bad input and the claim."""

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.efficient_transformers import optrot_fourth_power_rotations as ch
from paperlab.quantization import gptq_quantize, rtn_quantize

SMALL = ch.Config(n_seeds=1, d_out=96, d_in=32, n_calib=128, n_steps=120)


@pytest.fixture(scope="module")
def result():
    """The chapter's default experiment (3 seeds, 200 Cayley steps; a few s)."""
    return ch.run_experiment(ch.Config())


def _as_variant(result, variant):
    """The same measurements, with the claim pointed at another rotation."""
    return ch.Result(ch.Config(variant=variant), result.metrics, result.trace)


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_optrot(result):
    ch.check_claim(result)


@pytest.mark.parametrize("variant", ["hadamard", "identity"])
def test_claim_fails_for_baselines(result, variant):
    with pytest.raises(ClaimFailed, match="fourth power"):
        ch.check_claim(_as_variant(result, variant))


def test_claim_holds_on_a_small_layer():
    ch.check_claim(ch.run_experiment(SMALL))


def test_claim_fails_with_the_gradient_sign_flipped(monkeypatch):
    """An ascent direction never passes the line search: R stays at Hadamard."""
    grad = ch._grad
    monkeypatch.setattr(ch, "_grad", lambda W, R: -grad(W, R))
    with pytest.raises(ClaimFailed, match="fourth power"):
        ch.check_claim(ch.run_experiment(SMALL))


def test_claim_fails_when_the_rotation_is_not_undone(monkeypatch):
    """Rotating the weights but not the inputs changes the layer's function."""
    monkeypatch.setattr(ch, "_unrotate", lambda W_rot, R: W_rot)
    with pytest.raises(ClaimFailed, match="not applied consistently"):
        ch.check_claim(ch.run_experiment(SMALL))


def test_result_numbers_are_consistent(result):
    assert result.seeds == (0, 1, 2)
    for s in result.seeds:
        ident, had, opt = (result.get(s, r) for r in ch.ROTATIONS)
        assert ident.fourth_power > had.fourth_power > opt.fourth_power
        assert ident.incoherence > had.incoherence > opt.incoherence
        for b in result.config.bits:
            assert opt.gptq_error[b] < opt.rtn_error[b]  # GPTQ beats RTN
            assert ident.rtn_error[b] > had.rtn_error[b]
    assert len(result.trace.objective) == result.config.n_steps + 1
    with pytest.raises(KeyError):
        result.get(7, "optrot")


# ------------------------------------------------------------- the mechanism


def test_gradient_matches_autograd():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    W = rng.standard_normal((7, 5))
    R = rng.standard_normal((5, 5))
    R_t = torch.tensor(R, requires_grad=True)
    (torch.tensor(W) @ R_t).pow(4).sum().backward()
    np.testing.assert_allclose(ch.fourth_power_grad(W, R), R_t.grad.numpy(), rtol=1e-10)


def test_cayley_step_stays_orthogonal():
    rng = np.random.default_rng(1)
    R = ch.random_hadamard(16, rng)
    M = rng.standard_normal((16, 16))
    R_next = ch.cayley_step(R, M - M.T, 0.7)
    np.testing.assert_allclose(R_next.T @ R_next, np.eye(16), atol=1e-12)
    np.testing.assert_allclose(ch.cayley_step(R, M - M.T, 0.0), R)


def test_optrot_descends_and_preserves_the_norm():
    rng = np.random.default_rng(2)
    W = ch.make_outlier_layer(64, 32, rng)
    trace = ch.optrot_rotation(W, ch.random_hadamard(32, rng), 60, record_every=20)
    assert np.all(np.diff(trace.objective) <= 0)
    assert trace.objective[-1] < 0.8 * trace.objective[0]
    R = trace.rotation
    np.testing.assert_allclose(R.T @ R, np.eye(32), atol=1e-10)
    assert np.linalg.norm(W @ R) == pytest.approx(np.linalg.norm(W))
    assert ch.fourth_power(W @ R) == pytest.approx(trace.objective[-1])
    assert [s for s, _ in trace.snapshots] == [0, 20, 40, 60]


def test_optrot_stops_at_a_stationary_point():
    """All-ones weights at R = I give a constant gradient G, so A = G - G^T = 0."""
    trace = ch.optrot_rotation(np.ones((4, 4)), np.eye(4), 10)
    assert trace.objective == (16.0,)


def test_incoherence_extremes():
    assert ch.incoherence(np.ones((3, 5))) == pytest.approx(1.0)
    spike = np.zeros((3, 5))
    spike[1, 2] = -4.0
    assert ch.incoherence(spike) == pytest.approx(np.sqrt(15))


def test_hadamard_is_orthogonal_and_flattens_a_spike():
    R = ch.random_hadamard(8, np.random.default_rng(3))
    np.testing.assert_allclose(R.T @ R, np.eye(8), atol=1e-12)
    spike = np.zeros((1, 8))
    spike[0, 5] = 1.0
    assert ch.incoherence(spike @ R) == pytest.approx(1.0)


def test_quantize_rotated_matches_direct_quantizers():
    rng = np.random.default_rng(4)
    W = ch.make_outlier_layer(16, 8, rng)
    X = ch.make_calibration_inputs(40, 8, rng)
    R = ch.random_hadamard(8, rng)
    rtn = ch.quantize_rotated(W, np.eye(8), X, 3, "rtn")
    np.testing.assert_allclose(rtn, rtn_quantize(W, 3).dequantize(), rtol=1e-6)
    gptq = ch.quantize_rotated(W, R, X, 4, "gptq")
    XR = X @ R
    direct = gptq_quantize(W @ R, 2 * XR.T @ XR, 4).dequantize() @ R.T
    np.testing.assert_allclose(gptq, direct, rtol=1e-6, atol=1e-9)


def test_function_error_is_zero_for_rotations_only():
    rng = np.random.default_rng(5)
    W, X = rng.standard_normal((6, 4)), rng.standard_normal((10, 4))
    assert ch.function_error(X, W, ch.random_hadamard(4, rng)) < 1e-12
    assert ch.function_error(X, W, 2 * np.eye(4)) > 1.0


def test_explore_path_starts_at_hadamard(result):
    path = ch.explore_path(result, bits=3)
    assert path.steps[0] == 0 and path.steps[-1] == result.config.n_steps
    assert path.rtn_error[0] == pytest.approx(result.get(0, "hadamard").rtn_error[3])
    assert path.rtn_error[-1] == pytest.approx(result.get(0, "optrot").rtn_error[3])


def test_tiny_lm_layer_study():
    real = ch.tiny_lm_layer_study(n_steps=100)
    assert real.shape == (32, 128)
    assert real.fourth_power["optrot"] < real.fourth_power["hadamard"]
    for q in ch.QUANTIZERS:
        assert real.output_error["optrot", q] < real.output_error["hadamard", q]
        assert real.bits_per_char["identity", q] > real.float_bits_per_char - 0.01


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"variant": "spinquant"}, ValueError, "variant must be one of"),
        ({"d_in": 96}, ValueError, "power of two"),
        ({"n_seeds": 0}, ValueError, "n_seeds must be >= 1"),
        ({"bits": (1,)}, ValueError, "bits must be >= 2"),
        ({"bits": [3]}, TypeError, "bits must be a tuple"),
        ({"step_size": 0.0}, ValueError, "step_size must be > 0"),
    ],
)
def test_config_rejects_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        ch.Config(**kwargs)


def test_functions_reject_bad_input():
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match="power of two"):
        ch.random_hadamard(12, rng)
    with pytest.raises(TypeError, match="rng must be a Generator"):
        ch.make_outlier_layer(4, 4, rng=0)
    with pytest.raises(ValueError, match="skew-symmetric"):
        ch.cayley_step(np.eye(3), np.ones((3, 3)), 0.1)
    with pytest.raises(ValueError, match="R0 must be orthogonal"):
        ch.optrot_rotation(np.ones((2, 2)), 2 * np.eye(2))
    with pytest.raises(ValueError, match="W must contain only finite"):
        ch.fourth_power(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="quantizer must be one of"):
        ch.quantize_rotated(np.ones((2, 2)), np.eye(2), np.ones((3, 2)), 3, "awq")
    with pytest.raises(ValueError, match="X must have shape"):
        ch.function_error(np.ones((3, 5)), np.ones((2, 2)), np.eye(2))
    with pytest.raises(TypeError, match="result must be a Result"):
        ch.check_claim({"metrics": ()})
    with pytest.raises(ValueError, match="W must not be all zeros"):
        ch.incoherence(np.zeros((2, 2)))

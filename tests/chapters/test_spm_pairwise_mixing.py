"""Stagewise pairwise mixing: mechanism, gradients, costs and the chapter's claim."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from paperlab.claims import ClaimFailed
from paperlab.efficient_transformers import spm_pairwise_mixing as ch
from paperlab.kernels import spm as spm_kernels
from paperlab.optim import Adam


def random_stages(n=16, n_stages=4, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((5, n)),
        rng.standard_normal((n_stages, n // 2, 4)),
        ch.make_pairs("butterfly", n, n_stages),
    )


def stage_matrix(blocks, pairs):
    """One stage as an explicit n x n matrix, written entry by entry."""
    n = 2 * len(pairs)
    matrix = np.zeros((n, n))
    for (a, b, c, d), (i, j) in zip(blocks, pairs, strict=True):
        matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = a, b, c, d
    return matrix


# --- pairings and mixing -------------------------------------------------------------


@pytest.mark.parametrize("kind", ch.PAIRINGS)
def test_every_stage_is_a_perfect_pairing(kind):
    pairs = ch.make_pairs(kind, 32, 7)
    assert pairs.shape == (7, 16, 2) and pairs.dtype == np.int32
    ch.check_pairs(pairs, 32)


def test_butterfly_pairs_partner_by_xor():
    pairs = ch.make_pairs("butterfly", 8, 3)
    for stage in range(3):
        np.testing.assert_array_equal(pairs[stage, :, 0] ^ pairs[stage, :, 1], 2**stage)
    reversed_pairs = ch.make_pairs("reversed", 8, 3)
    np.testing.assert_array_equal(reversed_pairs[0, :, 0] ^ reversed_pairs[0, :, 1], 4)


def test_butterfly_reaches_global_mixing_exactly_at_log2_n():
    n = 64
    for n_stages in range(1, 7):
        reach = ch.mixing_reach(ch.make_pairs("butterfly", n, n_stages))
        assert reach.sum(axis=1).tolist() == [2**n_stages] * n
    assert ch.mixing_reach(ch.make_pairs("reversed", n, 6)).all()
    local = ch.mixing_reach(ch.make_pairs("local", n, 6))
    assert local.sum(axis=1).max() == 12


def test_stage_matches_its_explicit_matrix():
    x, blocks, pairs = random_stages()
    for stage in range(pairs.shape[0]):
        expected = x @ stage_matrix(blocks[stage], pairs[stage]).T
        np.testing.assert_allclose(
            ch.mix_stage(x, blocks[stage], pairs[stage]), expected, rtol=1e-12
        )


def test_forward_is_the_product_of_stage_matrices():
    x, blocks, pairs = random_stages()
    product = np.eye(16)
    for stage in range(pairs.shape[0]):
        product = stage_matrix(blocks[stage], pairs[stage]) @ product
    np.testing.assert_allclose(ch.dense_equivalent(blocks, pairs), product, rtol=1e-12)
    np.testing.assert_allclose(
        ch.spm_forward(x, blocks, pairs), x @ product.T, rtol=1e-12
    )


def test_rotation_variant_is_orthogonal_and_general_is_not():
    rng = np.random.default_rng(3)
    pairs = ch.make_pairs("butterfly", 32, 5)
    rotation = ch.dense_equivalent(
        ch.rotation_blocks(rng.uniform(-np.pi, np.pi, (5, 16))), pairs
    )
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(32), atol=1e-12)
    general = ch.dense_equivalent(rng.standard_normal((5, 16, 4)), pairs)
    assert np.abs(general @ general.T - np.eye(32)).max() > 0.1


# --- gradients -----------------------------------------------------------------------


@pytest.mark.parametrize("parameterization", ch.PARAMETERIZATIONS)
def test_closed_form_gradients_match_autograd_and_finite_differences(parameterization):
    errors = ch.gradient_errors(64, 6, parameterization=parameterization, seed=4)
    assert errors["autograd"] < 1e-12
    assert errors["finite_difference"] < 1e-7


def test_rotation_gradient_is_the_papers_formula():
    rng = np.random.default_rng(5)
    pairs = ch.make_pairs("butterfly", 8, 1)
    theta = rng.uniform(-np.pi, np.pi, (1, 4))
    x, g = rng.standard_normal((3, 8)), rng.standard_normal((3, 8))
    _, grad_blocks = ch.spm_backward(g, x, ch.rotation_blocks(theta), pairs)
    i, j = pairs[0, :, 0], pairs[0, :, 1]
    cos, sin = np.cos(theta[0]), np.sin(theta[0])
    formula = (
        g[:, i] * (-sin * x[:, i] - cos * x[:, j])
        + g[:, j] * (cos * x[:, i] - sin * x[:, j])
    ).sum(axis=0)
    np.testing.assert_allclose(
        ch.rotation_grad(grad_blocks, theta)[0], formula, rtol=1e-12
    )


def test_numba_kernels_match_the_numpy_passes():
    x, blocks, pairs = random_stages(n=32, n_stages=5)
    g = np.random.default_rng(6).standard_normal(x.shape)
    np.testing.assert_allclose(
        spm_kernels.spm_forward(x, blocks, pairs),
        ch.spm_forward(x, blocks, pairs),
        rtol=1e-12,
    )
    for ours, theirs in zip(
        spm_kernels.spm_backward(g, x, blocks, pairs),
        ch.spm_backward(g, x, blocks, pairs),
        strict=True,
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_kernel_autograd_function_passes_gradcheck():
    x, blocks, pairs = random_stages(n=8, n_stages=3)
    x_t = torch.tensor(x, requires_grad=True)
    blocks_t = torch.tensor(blocks, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: ch._SPMFunction.apply(a, b, pairs), (x_t, blocks_t)
    )


@pytest.mark.parametrize("parameterization", ch.PARAMETERIZATIONS)
def test_layer_cpu_kernel_path_matches_the_torch_path(parameterization):
    pairs = ch.make_pairs("butterfly", 16, 4)
    layer = ch.SPMLinear(pairs, parameterization).double()
    generator = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for param in layer.parameters():
            noise = torch.randn(param.shape, generator=generator, dtype=param.dtype)
            param.add_(0.3 * noise)
    x = torch.randn(6, 16, generator=generator, dtype=torch.float64)
    layer(x).square().sum().backward()
    kernel_grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    blocks = layer.blocks()
    y = ch.spm_torch(x * layer.scale_in, blocks, pairs) * layer.scale_out + layer.bias
    y.square().sum().backward()
    for ours, theirs in zip(
        kernel_grads, (p.grad for p in layer.parameters()), strict=True
    ):
        torch.testing.assert_close(ours, theirs)


def test_layer_starts_as_the_identity():
    layer = ch.SPMLinear(ch.make_pairs("local", 8, 3))
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(layer(x), x)


def torch_student_loss(student, params, x, y, pairs):
    """The student's loss rebuilt in Torch from the same parameter values."""
    hidden = x
    for index, layer in enumerate(student.layers):
        p = params[4 * index : 4 * index + 4] if pairs is not None else None
        if pairs is None:
            weight, bias = params[2 * index : 2 * index + 2]
            out = hidden @ weight.T + bias
        else:
            weight, scale_in, scale_out, bias = p
            blocks = ch.rotation_blocks(weight) if layer.rotation else weight
            out = ch.spm_torch(hidden * scale_in, blocks, pairs) * scale_out + bias
        hidden = torch.tanh(out) if index == 0 else out
    return ((hidden - y) ** 2).mean()


@pytest.mark.parametrize(
    ("variant", "parameterization"),
    [("spm", "general"), ("spm", "rotation"), ("dense", "general")],
)
def test_student_gradients_match_autograd(variant, parameterization):
    rng = np.random.default_rng(7)
    student = ch.make_student(variant, 8, 3, parameterization, rng)
    for param in student.params():
        param += 0.3 * rng.standard_normal(param.shape).astype(np.float32)
    x = rng.standard_normal((10, 8)).astype(np.float32)
    y = rng.standard_normal((10, 8)).astype(np.float32)
    residual = student.predict(x) - y
    ours = student.gradients(2 * residual / y.size)
    params = [
        torch.tensor(p, dtype=torch.float64, requires_grad=True)
        for p in student.params()
    ]
    pairs = None if variant == "dense" else student.layers[0].pairs
    torch_student_loss(
        student,
        params,
        torch.tensor(x, dtype=torch.float64),
        torch.tensor(y, dtype=torch.float64),
        pairs,
    ).backward()
    for mine, param in zip(ours, params, strict=True):
        np.testing.assert_allclose(mine, param.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_adam_matches_torch():
    rng = np.random.default_rng(8)
    start = rng.standard_normal((3, 4))
    ours = start.copy()
    optimizer = Adam([ours], lr=0.05)
    theirs = torch.tensor(start, requires_grad=True)
    reference = torch.optim.Adam([theirs], lr=0.05)
    for _ in range(5):
        grad = rng.standard_normal((3, 4))
        optimizer.step([grad])
        theirs.grad = torch.tensor(grad)
        reference.step()
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10)


# --- costs ---------------------------------------------------------------------------


def test_layer_cost_counts():
    # n = 4, L = 2: 4 blocks, 3 n = 12 for the scalings and bias.
    assert ch.layer_cost(4, 2) == (4 * 4 + 12, 6 * 4 + 12)
    assert ch.layer_cost(4, 2, parameterization="rotation") == (4 + 12, 6 * 4 + 12)
    assert ch.layer_cost(4, kind="dense") == (20, 36)
    params, flops = ch.layer_cost(4096)
    dense_params, dense_flops = ch.layer_cost(4096, kind="dense")
    assert params / dense_params < 0.01 and flops / dense_flops < 0.01
    assert ch.layer_cost(64)[0] > ch.layer_cost(4, kind="dense")[0]


def test_time_forward_returns_two_positive_times():
    spm_seconds, dense_seconds = ch.time_forward(64, batch=4, repeats=2)
    assert spm_seconds > 0 and dense_seconds > 0


# --- the experiment ------------------------------------------------------------------


def test_teacher_data_shapes_and_noise():
    data = ch.make_teacher_data(16, 32, 8, 0.0, np.random.default_rng(0))
    assert data.x_train.shape == (32, 16) and data.y_test.shape == (8, 16)
    assert np.all(np.abs(data.y_train) < 1)
    dense = ch.make_teacher_data(
        16, 32, 8, 0.5, np.random.default_rng(0), teacher="dense"
    )
    assert np.abs(dense.y_train).max() > 1


def test_spm_student_learns_the_spm_teacher():
    data = ch.make_teacher_data(16, 256, 256, 0.0, np.random.default_rng(1))
    _, before = ch.train_student(data, variant="spm", n_stages=4, n_steps=1)
    _, after = ch.train_student(data, variant="spm", n_stages=4, n_steps=300)
    assert after < 0.2 * before


@pytest.fixture(scope="module")
def spm_result():
    return ch.run_experiment(ch.Config())


def test_claim_holds_for_the_mechanism(spm_result):
    ch.check_claim(spm_result)
    assert len(spm_result.test_mse) == 3
    assert spm_result.mse_ratio < 0.6


def test_claim_fails_for_the_dense_baseline(spm_result):
    result = ch.run_experiment(ch.Config(variant="dense"))
    assert result.dense_test_mse == spm_result.dense_test_mse
    with pytest.raises(ClaimFailed):
        ch.check_claim(result)


@pytest.mark.parametrize("variant", ["local", "reversed"])
def test_claim_fails_when_the_student_pairing_is_wrong(variant):
    # One seed: these variants miss the threshold by a factor of four or more.
    result = ch.run_experiment(ch.Config(variant=variant, n_seeds=1))
    with pytest.raises(ClaimFailed, match="MSE ratio"):
        ch.check_claim(result)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"grad_error": 1e-3}, "autograd"),
        ({"param_fraction": 0.02}, "dense parameters"),
        ({"test_mse": (1.0, 1.0, 1.0)}, "MSE ratio"),
    ],
)
def test_each_part_of_the_claim_can_fail(spm_result, change, match):
    with pytest.raises(ClaimFailed, match=match):
        ch.check_claim(dataclasses.replace(spm_result, **change))


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ch.make_pairs("butterfly", 48, 2), ValueError, "power of two"),
        (lambda: ch.make_pairs("random", 8, 2), ValueError, "kind must be one of"),
        (lambda: ch.make_pairs("local", 8, -1), ValueError, "n_stages must be >= 0"),
        (
            lambda: ch.check_pairs(np.zeros((1, 2, 2), int), 4),
            ValueError,
            "every index",
        ),
        (lambda: ch.check_pairs(np.zeros((1, 2, 2)), 4), TypeError, "integers"),
        (
            lambda: ch.spm_forward(
                np.ones((2, 4)), np.ones((2, 2, 4)), ch.make_pairs("local", 4, 1)
            ),
            ValueError,
            "blocks must have shape",
        ),
        (
            lambda: ch.spm_torch(
                np.ones((2, 4)), torch.ones(1, 2, 4), ch.make_pairs("local", 4, 1)
            ),
            TypeError,
            "torch",
        ),
        (
            lambda: ch.rotation_grad(np.ones((1, 2, 3)), np.ones((1, 2))),
            ValueError,
            "grad_blocks must have shape",
        ),
        (
            lambda: ch.SPMLinear(ch.make_pairs("local", 4, 1), "unitary"),
            ValueError,
            "parameterization must be one of",
        ),
        (lambda: ch.gradient_errors(n_stages=0), ValueError, "n_stages must be >= 1"),
        (lambda: ch.layer_cost(64, kind="sparse"), ValueError, "kind must be one of"),
        (lambda: ch.time_forward(64, batch=0), ValueError, "batch must be >= 1"),
        (
            lambda: ch.make_teacher_data(8, 4, 4, -0.1, np.random.default_rng(0)),
            ValueError,
            "noise must be >= 0",
        ),
        (lambda: ch.make_teacher_data(8, 4, 4, 0.1, 0), TypeError, "Generator"),
        (lambda: ch.train_student("data"), TypeError, "TeacherData"),
        (lambda: ch.Config(variant="butterfly"), ValueError, "variant must be one of"),
        (lambda: ch.Config(n=96), ValueError, "power of two"),
        (lambda: ch.Config(lr_spm=0.0), ValueError, "lr_spm must be > 0"),
        (lambda: ch.Config(n_seeds=2.0), TypeError, "n_seeds must be an integer"),
        (lambda: ch.run_experiment({"variant": "spm"}), TypeError, "Config"),
        (lambda: ch.check_claim(0.5), TypeError, "Result"),
    ],
)
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()

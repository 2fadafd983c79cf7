"""The shared Adam/AdamW against torch.optim, on NumPy arrays and torch tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperlab.optim import Adam, adam_update

N_STEPS = 8
SHAPES = [(3, 4), (5,)]


def _reference(starts, grads, **settings):
    """The parameters after ``torch.optim`` steps (AdamW when weight decay is set)."""
    params = [torch.tensor(s, requires_grad=True) for s in starts]
    decay = settings.get("weight_decay", 0.0)
    cls = torch.optim.AdamW if decay else torch.optim.Adam
    reference = cls(params, **settings)
    for step_grads in grads:
        for param, grad in zip(params, step_grads, strict=True):
            param.grad = torch.tensor(grad)
        reference.step()
    return [p.detach().numpy() for p in params]


def _problem(seed: int, dtype=np.float64):
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    grads = [
        [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
        for _ in range(N_STEPS)
    ]
    return starts, grads


SETTINGS = [
    {"lr": 0.05},
    {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6},
    {"lr": 0.03, "betas": (0.9, 0.98), "weight_decay": 1.0},
    {"lr": 1e-3, "weight_decay": 0.1},
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_matches_torch_optim_in_float64(settings, backend):
    starts, grads = _problem(0)
    expected = _reference(starts, grads, **settings)

    convert = torch.tensor if backend == "torch" else np.copy
    params = [convert(s) for s in starts]
    optimizer = Adam(params, **settings)
    for step_grads in grads:
        optimizer.step([convert(g) for g in step_grads])

    assert optimizer.n_steps == N_STEPS
    for ours, theirs in zip(params, expected, strict=True):
        ours = ours.numpy() if backend == "torch" else ours
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_matches_torch_optim_in_float32(settings, backend):
    starts, grads = _problem(1, np.float32)
    expected = _reference(starts, grads, **settings)

    convert = torch.tensor if backend == "torch" else np.copy
    params = [convert(s) for s in starts]
    optimizer = Adam(params, **settings)
    for step_grads in grads:
        optimizer.step([convert(g) for g in step_grads])

    for ours, theirs in zip(params, expected, strict=True):
        ours = ours.numpy() if backend == "torch" else ours
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_function_and_class_take_identical_steps(backend):
    starts, grads = _problem(2)
    convert = torch.tensor if backend == "torch" else np.copy
    settings = {"lr": 0.02, "betas": (0.9, 0.98), "weight_decay": 0.5}

    by_class = [convert(s) for s in starts]
    optimizer = Adam(by_class, **settings)
    by_function = [convert(s) for s in starts]
    moments = [(p * 0, p * 0) for p in by_function]
    for step, step_grads in enumerate(grads, start=1):
        step_grads = [convert(g) for g in step_grads]
        optimizer.step(step_grads)
        adam_update(by_function, step_grads, moments, step, **settings)

    for a, b in zip(by_class, by_function, strict=True):
        assert (a == b).all()


def test_mixed_numpy_and_torch_parameters():
    starts, grads = _problem(3)
    expected = _reference(starts, grads, lr=0.05)
    params = [np.copy(starts[0]), torch.tensor(starts[1])]
    optimizer = Adam(params, lr=0.05)
    for g_array, g_tensor in grads:
        optimizer.step([g_array, torch.tensor(g_tensor)])
    np.testing.assert_allclose(params[0], expected[0], rtol=1e-12)
    np.testing.assert_allclose(params[1].numpy(), expected[1], rtol=1e-12)


def test_tensors_that_require_grad_are_updated_outside_autograd():
    weight = torch.ones(3, requires_grad=True)
    optimizer = Adam([weight], lr=0.1)
    optimizer.step([torch.tensor([1.0, -1.0, 0.0])])
    assert weight.requires_grad and weight.grad_fn is None
    torch.testing.assert_close(weight.detach(), torch.tensor([0.9, 1.1, 1.0]))
    assert not optimizer.moments[0][0].requires_grad


def test_first_step_moves_each_coordinate_by_the_learning_rate():
    # After one step the bias-corrected ratio is g / |g|: a sign step of size lr.
    weight = np.zeros(4)
    Adam([weight], lr=0.3).step([np.array([5.0, -1e-3, 2.0, -7.0])])
    np.testing.assert_allclose(weight, [-0.3, 0.3, -0.3, 0.3], rtol=1e-5)


def test_decay_alone_shrinks_by_one_minus_lr_times_decay():
    weight = np.full(3, 2.0)
    Adam([weight], lr=0.1, weight_decay=0.5).step([np.zeros(3)])
    np.testing.assert_allclose(weight, 2.0 * (1 - 0.1 * 0.5))


def test_float32_arrays_stay_float32():
    weight = np.ones(3, dtype=np.float32)
    optimizer = Adam([weight], lr=0.1)
    optimizer.step([np.ones(3, dtype=np.float32)])
    assert weight.dtype == np.float32
    assert all(m.dtype == np.float32 for m in optimizer.moments[0])


# --- bad input ------------------------------------------------------------------------


def _one_update(**kwargs):
    """adam_update on one zero parameter, with any argument replaced by ``kwargs``."""
    arguments = {
        "params": [np.zeros(2)],
        "grads": [np.zeros(2)],
        "moments": [(np.zeros(2), np.zeros(2))],
        "step": 1,
        "lr": 0.1,
    }
    arguments.update(kwargs)
    adam_update(**arguments)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"lr": 0.0}, ValueError, r"lr must be > 0"),
        ({"lr": "fast"}, TypeError, r"lr must be a real number"),
        ({"lr": float("inf")}, ValueError, r"lr must be finite"),
        ({"betas": (0.9, 1.0)}, ValueError, r"betas\[1\] must be < 1"),
        ({"betas": (-0.1, 0.9)}, ValueError, r"betas\[0\] must be >= 0"),
        ({"betas": 0.9}, TypeError, r"betas must be a pair"),
        ({"betas": (0.9, 0.9, 0.9)}, TypeError, r"betas must be a pair"),
        ({"eps": 0.0}, ValueError, r"eps must be > 0"),
        ({"weight_decay": -1.0}, ValueError, r"weight_decay must be >= 0"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        Adam([np.zeros(2)], **{"lr": 0.1, **kwargs})
    with pytest.raises(error, match=message):
        _one_update(**kwargs)


@pytest.mark.parametrize(
    "params, error, message",
    [
        (np.zeros(3), TypeError, r"params must be a list of arrays or tensors"),
        (torch.zeros(3), TypeError, r"params must be a list of arrays or tensors"),
        ([], ValueError, r"params must not be empty"),
        ([np.zeros(2), [1.0, 2.0]], TypeError, r"params\[1\] must be a numpy.ndarray"),
        ([np.zeros(2, dtype=int)], TypeError, r"params\[0\] must be floating point"),
        ([torch.zeros(2, dtype=torch.int64)], TypeError, r"must be floating point"),
    ],
)
def test_bad_params(params, error, message):
    with pytest.raises(error, match=message):
        Adam(params, lr=0.1)


def test_bad_grads_name_the_entry():
    optimizer = Adam([np.zeros(2), torch.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match=r"one entry per parameter \(2\), got 1"):
        optimizer.step([np.zeros(2)])
    with pytest.raises(TypeError, match=r"grads must be a list"):
        optimizer.step(np.zeros(2))
    with pytest.raises(ValueError, match=r"grads\[0\] must have the shape .*\(2,\)"):
        optimizer.step([np.zeros(3), torch.zeros(3)])
    with pytest.raises(TypeError, match=r"grads\[1\] must be of the type .*Tensor"):
        optimizer.step([np.zeros(2), np.zeros(3)])
    assert optimizer.n_steps == 0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"step": 0}, ValueError, r"step must be >= 1, got 0"),
        ({"step": 1.0}, TypeError, r"step must be an integer"),
        ({"params": [[0.0, 0.0]]}, TypeError, r"params\[0\] must be a numpy.ndarray"),
        ({"grads": [np.zeros(3)]}, ValueError, r"grads\[0\] must have the shape"),
        ({"moments": [np.zeros(2)]}, TypeError, r"moments\[0\] must be a pair"),
        ({"moments": []}, ValueError, r"moments must hold one entry per parameter"),
        ({"moments": "m"}, TypeError, r"moments must be a list of \(first, second\)"),
        (
            {"moments": [(np.zeros(2), np.zeros(3))]},
            ValueError,
            r"moments\[0\]\[1\] must have the shape",
        ),
        (
            {"moments": [(torch.zeros(2), np.zeros(2))]},
            TypeError,
            r"moments\[0\]\[0\] must be of the type",
        ),
        (
            {"moments": [(np.zeros(2), np.zeros(2, dtype=int))]},
            TypeError,
            r"moments\[0\]\[1\] must be floating point",
        ),
    ],
)
def test_bad_update_arguments_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        _one_update(**kwargs)

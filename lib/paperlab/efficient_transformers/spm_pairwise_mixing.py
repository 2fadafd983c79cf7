"""Stagewise pairwise mixing (SPM): a dense layer replaced by L sparse 2x2 stages.

Farag, "Rethinking Dense Linear Transformations: Stagewise Pairwise Mixing (SPM) for
Near-Linear Training in Neural Networks", arXiv:2512.23905.

An SPM operator is a product ``S_L ... S_1`` of sparse stages. Stage ``l`` splits the
``n`` coordinates into ``n/2`` disjoint pairs ``(i, j)`` and mixes each pair with its
own 2x2 block::

    (y_i, y_j) = (a x_i + b x_j, c x_i + d x_j)        general variant, 4 parameters
    a = d = cos(theta), c = -b = sin(theta)             rotation variant, 1 parameter

so a layer costs ``O(n L)`` time and parameters instead of ``O(n**2)``. With the
butterfly pairing ``j = i XOR 2**l`` and ``L = log2 n`` stages every output depends on
every input. The backward pass is closed-form per stage: the input gradient is the
transposed block applied to the output gradient, and the block's gradient is the outer
product of the output-gradient pair with the input pair.

This module holds the readable NumPy forward and backward passes (what the chapter
explains), a Torch drop-in layer (:class:`SPMLinear`) whose CPU path calls the Numba
kernels in :mod:`paperlab.kernels.spm`, and the teacher-student experiment behind the
claim. The students are trained with hand-written NumPy passes and Adam
(:class:`paperlab.optim.Adam`) on NumPy arrays: at this toy size, Torch's
per-operation overhead would cost about three times as much time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from paperlab.claims import require
from paperlab.kernels import spm as spm_kernels
from paperlab.optim import Adam
from paperlab.seeding import torch_device
from paperlab.timing import median_time
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "PAIRINGS",
    "PARAMETERIZATIONS",
    "VARIANTS",
    "make_pairs",
    "check_pairs",
    "rotation_blocks",
    "rotation_grad",
    "mix_stage",
    "mix_stage_backward",
    "spm_forward",
    "spm_backward",
    "spm_torch",
    "dense_equivalent",
    "mixing_reach",
    "SPMLinear",
    "gradient_errors",
    "layer_cost",
    "time_forward",
    "TeacherData",
    "make_teacher_data",
    "Student",
    "make_student",
    "train_student",
    "Config",
    "Result",
    "run_experiment",
    "check_claim",
]

logger = logging.getLogger(__name__)

PAIRINGS = ("butterfly", "reversed", "local")
PARAMETERIZATIONS = ("general", "rotation")
VARIANTS = ("spm", "dense", "reversed", "local")

# Thresholds of check_claim; the measured values are in the chapter and its tests.
MAX_GRAD_ERROR = 1e-6  # closed-form vs autograd gradients, relative, float64
MAX_COST_FRACTION = 0.01  # SPM parameters and FLOPs as a fraction of dense at cost_n
MAX_MSE_RATIO = 0.7  # SPM student's test MSE over the dense student's, seed means


def _check_width(n: int) -> int:
    n = check_int("n", n, minimum=2)
    if n & (n - 1):
        raise ValueError(f"n must be a power of two, got {n}")
    return n


def make_pairs(kind: str, n: int, n_stages: int) -> np.ndarray:
    """Build the pairing of every stage: which coordinates each 2x2 block mixes.

    Parameters
    ----------
    kind : {"butterfly", "reversed", "local"}
        ``"butterfly"``: stage ``l`` pairs ``i`` with ``i XOR 2**(l mod log2 n)``, so
        after ``log2 n`` stages every output depends on every input.
        ``"reversed"``: the same stages in the opposite order (strides ``n/2`` down to
        1); it also mixes globally, but spans a different family of matrices.
        ``"local"``: neighbours only, ``(2k, 2k+1)`` on even stages and
        ``(2k+1, 2k+2 mod n)`` on odd ones; after ``L`` stages an output depends on at
        most ``2L`` inputs.
    n : int
        Number of coordinates, a power of two.
    n_stages : int
        Number of stages ``L``.

    Returns
    -------
    ndarray of shape (L, n/2, 2), int32
        ``pairs[l, k] = (i, j)``, the pair mixed by block ``k`` of stage ``l``.
    """
    kind = check_choice("kind", kind, PAIRINGS)
    n = _check_width(n)
    n_stages = check_int("n_stages", n_stages, minimum=0)
    index = np.arange(n)
    log_n = n.bit_length() - 1
    stages = []
    for stage in range(n_stages):
        if kind == "local":
            first = np.arange(0, n, 2) + stage % 2
            stages.append(np.stack([first, (first + 1) % n], axis=1))
            continue
        level = stage % log_n
        stride = 1 << (log_n - 1 - level if kind == "reversed" else level)
        first = index[(index & stride) == 0]
        stages.append(np.stack([first, first ^ stride], axis=1))
    return np.asarray(stages, dtype=np.int32).reshape(n_stages, n // 2, 2)


def check_pairs(pairs: np.ndarray, n: int) -> np.ndarray:
    """Check that every stage pairs each of the ``n`` coordinates exactly once.

    Returns
    -------
    ndarray of shape (L, n/2, 2), int32

    Raises
    ------
    ValueError
        If the shape is wrong or a stage misses or repeats a coordinate.
    """
    n = check_int("n", n, minimum=2)
    pairs = check_array("pairs", pairs, ndim=3, shape=(None, n // 2, 2))
    if not np.issubdtype(pairs.dtype, np.integer):
        raise TypeError(f"pairs must hold integers, got dtype {pairs.dtype}")
    flat = np.sort(pairs.reshape(pairs.shape[0], n), axis=1)
    if not np.array_equal(flat, np.broadcast_to(np.arange(n), flat.shape)):
        raise ValueError(f"each stage of pairs must use every index 0..{n - 1} once")
    return pairs.astype(np.int32, copy=False)


def rotation_blocks(theta):
    """Blocks ``[cos, -sin, sin, cos]`` of the rotation (orthogonal) variant.

    Parameters
    ----------
    theta : ndarray or torch.Tensor of shape (L, n/2)
        One angle per pair and stage, in radians.

    Returns
    -------
    ndarray or torch.Tensor of shape (L, n/2, 4)
        The general-variant blocks ``[a, b, c, d]`` with ``a = d = cos(theta)`` and
        ``c = -b = sin(theta)``, of the same kind as ``theta`` (Torch keeps autograd).
    """
    if isinstance(theta, torch.Tensor):
        cos, sin = theta.cos(), theta.sin()
        return torch.stack([cos, -sin, sin, cos], dim=-1)
    theta = check_array("theta", theta, ndim=2, finite=True)
    cos, sin = np.cos(theta), np.sin(theta)
    return np.stack([cos, -sin, sin, cos], axis=-1)


def rotation_grad(grad_blocks: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Gradient with respect to the angles, from the gradient of the blocks.

    By the chain rule through ``a = d = cos(theta)``, ``c = -b = sin(theta)``::

        dL/dtheta = -sin(theta) (g_a + g_d) + cos(theta) (g_c - g_b)

    which, with ``g_a = g_i x_i`` etc., is the paper's
    ``g_i (-sin x_i - cos x_j) + g_j (cos x_i - sin x_j)``.

    Parameters
    ----------
    grad_blocks : ndarray of shape (L, n/2, 4)
    theta : ndarray of shape (L, n/2)

    Returns
    -------
    ndarray of shape (L, n/2)
    """
    theta = check_array("theta", theta, ndim=2, finite=True)
    grad_blocks = check_array("grad_blocks", grad_blocks, shape=(*theta.shape, 4))
    g_a, g_b, g_c, g_d = np.moveaxis(grad_blocks, -1, 0)
    return -np.sin(theta) * (g_a + g_d) + np.cos(theta) * (g_c - g_b)


def _check_stage_args(x, blocks, pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = check_array("x", x, ndim=2)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    pairs = check_pairs(pairs, x.shape[1])
    blocks = check_array(
        "blocks", blocks, shape=(pairs.shape[0], x.shape[1] // 2, 4), dtype=x.dtype
    )
    return x, blocks, pairs


def mix_stage(x: np.ndarray, blocks: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """One SPM stage: mix every pair ``(i, j)`` of columns with its 2x2 block.

    Parameters
    ----------
    x : ndarray of shape (batch, n)
    blocks : ndarray of shape (n/2, 4)
        ``[a, b, c, d]`` per pair.
    pairs : ndarray of shape (n/2, 2)
        Disjoint column pairs ``(i, j)`` covering all ``n`` columns.

    Returns
    -------
    ndarray of shape (batch, n)
        ``y_i = a x_i + b x_j`` and ``y_j = c x_i + d x_j`` for every pair.
    """
    x, blocks, pairs = _check_stage_args(
        x, np.asarray(blocks)[None], np.asarray(pairs)[None]
    )
    i, j = pairs[0, :, 0], pairs[0, :, 1]
    a, b, c, d = blocks[0].T
    y = np.empty_like(x)
    y[:, i] = a * x[:, i] + b * x[:, j]
    y[:, j] = c * x[:, i] + d * x[:, j]
    return y


def mix_stage_backward(
    grad_y: np.ndarray, x: np.ndarray, blocks: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form gradients of one stage.

    Parameters
    ----------
    grad_y : ndarray of shape (batch, n)
        Gradient of the loss with respect to the stage's output.
    x, blocks, pairs
        The stage's input and parameters, as in :func:`mix_stage`.

    Returns
    -------
    grad_x : ndarray of shape (batch, n)
        ``(g_i, g_j) B`` per pair, i.e. the transposed block applied to the gradient:
        ``a g_i + c g_j`` and ``b g_i + d g_j``.
    grad_blocks : ndarray of shape (n/2, 4)
        ``[g_i x_i, g_i x_j, g_j x_i, g_j x_j]`` summed over the batch.
    """
    x, blocks, pairs = _check_stage_args(
        x, np.asarray(blocks)[None], np.asarray(pairs)[None]
    )
    grad_y = check_array("grad_y", grad_y, shape=x.shape, dtype=x.dtype)
    i, j = pairs[0, :, 0], pairs[0, :, 1]
    a, b, c, d = blocks[0].T
    g_i, g_j, x_i, x_j = grad_y[:, i], grad_y[:, j], x[:, i], x[:, j]
    grad_x = np.empty_like(x)
    grad_x[:, i] = a * g_i + c * g_j
    grad_x[:, j] = b * g_i + d * g_j
    products = [g_i * x_i, g_i * x_j, g_j * x_i, g_j * x_j]
    return grad_x, np.stack([p.sum(axis=0) for p in products], axis=1)


def spm_forward(x: np.ndarray, blocks: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Apply all ``L`` stages in order: ``y = S_L ... S_1 x`` for every row of ``x``.

    Parameters
    ----------
    x : ndarray of shape (batch, n)
    blocks : ndarray of shape (L, n/2, 4)
    pairs : ndarray of shape (L, n/2, 2)

    Returns
    -------
    ndarray of shape (batch, n)
    """
    x, blocks, pairs = _check_stage_args(x, blocks, pairs)
    for stage in range(pairs.shape[0]):
        x = mix_stage(x, blocks[stage], pairs[stage])
    return x


def spm_backward(
    grad_y: np.ndarray, x: np.ndarray, blocks: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form backward pass through all stages, last stage first.

    The stage inputs are recomputed from ``x`` (they are what the blocks' gradients
    multiply); then :func:`mix_stage_backward` runs from stage ``L`` down to 1.

    Returns
    -------
    grad_x : ndarray of shape (batch, n)
    grad_blocks : ndarray of shape (L, n/2, 4)
    """
    x, blocks, pairs = _check_stage_args(x, blocks, pairs)
    grad_y = check_array("grad_y", grad_y, shape=x.shape, dtype=x.dtype)
    inputs = [x]
    for stage in range(pairs.shape[0] - 1):
        inputs.append(mix_stage(inputs[-1], blocks[stage], pairs[stage]))
    grad_blocks = np.empty_like(blocks)
    for stage in reversed(range(pairs.shape[0])):
        grad_y, grad_blocks[stage] = mix_stage_backward(
            grad_y, inputs[stage], blocks[stage], pairs[stage]
        )
    return grad_y, grad_blocks


def _partner_tables(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per stage and coordinate: its partner, and where its two coefficients live.

    Stage ``l`` is then ``y = s * x + t * x[partner]`` with ``s = blocks.flat[own]``
    and ``t = blocks.flat[cross]``: coordinate ``i`` of a pair takes ``(a, b)``, its
    partner ``j`` takes ``(d, c)``.
    """
    n_stages, n_pairs, _ = pairs.shape
    partner = np.empty((n_stages, 2 * n_pairs), dtype=np.int64)
    own = np.empty_like(partner)
    cross = np.empty_like(partner)
    base = 4 * np.arange(n_stages * n_pairs).reshape(n_stages, n_pairs)
    for stage in range(n_stages):
        i, j = pairs[stage, :, 0], pairs[stage, :, 1]
        partner[stage, i], partner[stage, j] = j, i
        own[stage, i], cross[stage, i] = base[stage], base[stage] + 1
        cross[stage, j], own[stage, j] = base[stage] + 2, base[stage] + 3
    return partner, own, cross


def spm_torch(x: torch.Tensor, blocks: torch.Tensor, pairs: np.ndarray) -> torch.Tensor:
    """SPM forward in plain Torch operations (any device; autograd differentiates it).

    Each stage is written as ``y = s * x + t * x[:, partner]``: a gather and two
    element-wise products, an independent formulation of :func:`spm_forward` that the
    tests use to check the closed-form gradients against autograd.

    Parameters
    ----------
    x : torch.Tensor of shape (batch, n)
    blocks : torch.Tensor of shape (L, n/2, 4)
    pairs : ndarray of shape (L, n/2, 2)

    Returns
    -------
    torch.Tensor of shape (batch, n)
    """
    if not isinstance(x, torch.Tensor) or not isinstance(blocks, torch.Tensor):
        raise TypeError("x and blocks must be torch tensors")
    pairs = check_pairs(pairs, x.shape[-1])
    if tuple(blocks.shape) != (pairs.shape[0], x.shape[-1] // 2, 4):
        raise ValueError(
            f"blocks must have shape {(pairs.shape[0], x.shape[-1] // 2, 4)}, "
            f"got {tuple(blocks.shape)}"
        )
    partner, own, cross = (
        torch.as_tensor(t, device=x.device) for t in _partner_tables(pairs)
    )
    flat = blocks.reshape(-1)
    for stage in range(pairs.shape[0]):
        x = flat[own[stage]] * x + flat[cross[stage]] * x[:, partner[stage]]
    return x


def dense_equivalent(blocks: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The ``n x n`` matrix ``M = S_L ... S_1`` (so that ``y = M x``).

    Returns
    -------
    ndarray of shape (n, n)
        Row ``r`` holds the weights output ``r`` gives to each input.
    """
    pairs = check_array("pairs", pairs, ndim=3)
    n = 2 * pairs.shape[1]
    blocks = check_array("blocks", blocks, ndim=3)
    return spm_forward(np.eye(n, dtype=blocks.dtype), blocks, pairs).T


def mixing_reach(pairs: np.ndarray) -> np.ndarray:
    """Which outputs can depend on which inputs, whatever the block values.

    Returns
    -------
    ndarray of shape (n, n), bool
        ``reach[r, c]`` is True when some path through the stages links input ``c``
        to output ``r``; ``reach.mean() == 1`` means global mixing.
    """
    pairs = check_array("pairs", pairs, ndim=3)
    n = 2 * pairs.shape[1]
    pairs = check_pairs(pairs, n)
    reach = np.eye(n, dtype=bool)
    for stage in range(pairs.shape[0]):
        i, j = pairs[stage, :, 0], pairs[stage, :, 1]
        union = reach[i] | reach[j]
        reach[i], reach[j] = union, union
    return reach


class _SPMFunction(torch.autograd.Function):
    """SPM stages on the CPU with the Numba forward and closed-form backward kernels."""

    @staticmethod
    def forward(ctx, x, blocks, pairs):
        ctx.save_for_backward(x, blocks)
        ctx.pairs = pairs
        y = spm_kernels.spm_forward(x.detach().numpy(), blocks.detach().numpy(), pairs)
        return torch.from_numpy(y)

    @staticmethod
    def backward(ctx, grad_y):
        x, blocks = ctx.saved_tensors
        grad_x, grad_blocks = spm_kernels.spm_backward(
            grad_y.contiguous().numpy(), x.numpy(), blocks.numpy(), ctx.pairs
        )
        return (
            torch.from_numpy(grad_x).to(x.dtype),
            torch.from_numpy(grad_blocks).to(blocks.dtype),
            None,
        )


class SPMLinear(torch.nn.Module):
    """An SPM layer: ``y = d_out * (S_L ... S_1 (d_in * x)) + bias``.

    The stages start at the identity (blocks ``[1, 0, 0, 1]`` or angles 0) and the
    diagonal scalings at one, so training starts from ``y = x``. On the CPU the stages
    run in the Numba kernels with the closed-form backward pass; on a GPU they run in
    :func:`spm_torch` and autograd.

    Parameters
    ----------
    pairs : ndarray of shape (L, n/2, 2)
        The pairing of every stage (see :func:`make_pairs`).
    parameterization : {"general", "rotation"}
        Four free entries per block, or one angle per block.
    """

    def __init__(self, pairs: np.ndarray, parameterization: str = "general"):
        super().__init__()
        pairs = check_array("pairs", pairs, ndim=3)
        n = 2 * pairs.shape[1]
        self.pairs = check_pairs(pairs, n)
        self.parameterization = check_choice(
            "parameterization", parameterization, PARAMETERIZATIONS
        )
        shape = (pairs.shape[0], n // 2)
        if self.parameterization == "rotation":
            self.theta = torch.nn.Parameter(torch.zeros(shape))
        else:
            identity = torch.tensor([1.0, 0.0, 0.0, 1.0])
            self.weight = torch.nn.Parameter(identity.repeat(*shape, 1))
        self.scale_in = torch.nn.Parameter(torch.ones(n))
        self.scale_out = torch.nn.Parameter(torch.ones(n))
        self.bias = torch.nn.Parameter(torch.zeros(n))

    def blocks(self) -> torch.Tensor:
        """The blocks ``[a, b, c, d]`` of every pair, shape (L, n/2, 4)."""
        if self.parameterization == "rotation":
            return rotation_blocks(self.theta)
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x * self.scale_in
        if z.device.type == "cpu":
            z = _SPMFunction.apply(z.contiguous(), self.blocks(), self.pairs)
        else:
            z = spm_torch(z, self.blocks(), self.pairs)
        return z * self.scale_out + self.bias


def gradient_errors(
    n: int = 64, n_stages: int = 6, *, parameterization: str = "general", seed: int = 0
) -> dict[str, float]:
    """Compare the closed-form NumPy gradients with autograd and finite differences.

    The loss is ``sum(r * SPM(x))`` for a random ``r``, in float64, on a batch of 8
    random rows with random blocks (or angles) and the butterfly pairing.

    Returns
    -------
    dict
        ``"autograd"``: largest relative error (max-norm) of the input and parameter
        gradients against Torch autograd through :func:`spm_torch`;
        ``"finite_difference"``: relative error of the directional derivative along a
        random direction of all inputs and parameters, by central differences.
    """
    n = _check_width(n)
    n_stages = check_int("n_stages", n_stages, minimum=1)
    parameterization = check_choice(
        "parameterization", parameterization, PARAMETERIZATIONS
    )
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    pairs = make_pairs("butterfly", n, n_stages)
    x = rng.standard_normal((8, n))
    r = rng.standard_normal((8, n))
    if parameterization == "rotation":
        params = rng.uniform(-np.pi, np.pi, (n_stages, n // 2))
    else:
        params = rng.standard_normal((n_stages, n // 2, 4))

    def as_blocks(p):
        return rotation_blocks(p) if parameterization == "rotation" else p

    grad_x, grad_blocks = spm_backward(r, x, as_blocks(params), pairs)
    grad_params = (
        rotation_grad(grad_blocks, params)
        if parameterization == "rotation"
        else grad_blocks
    )

    device = torch_device()
    x_t = torch.tensor(x, requires_grad=True, device=device)
    p_t = torch.tensor(params, requires_grad=True, device=device)
    r_t = torch.tensor(r, device=device)
    (spm_torch(x_t, as_blocks(p_t), pairs) * r_t).sum().backward()

    def relative(ours, theirs):
        return float(np.abs(ours - theirs).max() / np.abs(theirs).max())

    autograd = max(
        relative(grad_x, x_t.grad.cpu().numpy()),
        relative(grad_params, p_t.grad.cpu().numpy()),
    )

    def loss(x_, p_):
        return float((spm_forward(x_, as_blocks(p_), pairs) * r).sum())

    step = 1e-6
    dx, dp = rng.standard_normal(x.shape), rng.standard_normal(params.shape)
    numeric = (
        loss(x + step * dx, params + step * dp)
        - loss(x - step * dx, params - step * dp)
    ) / (2 * step)
    analytic = float((grad_x * dx).sum() + (grad_params * dp).sum())
    finite = abs(numeric - analytic) / abs(analytic)
    return {"autograd": autograd, "finite_difference": finite}


def layer_cost(
    n: int,
    n_stages: int | None = None,
    *,
    kind: str = "spm",
    parameterization: str = "general",
) -> tuple[int, int]:
    """Parameters and floating-point operations per sample of one square layer.

    An SPM layer has ``L n/2`` blocks of 4 entries (general) or 1 angle (rotation),
    two diagonal scalings and a bias; each block costs 4 multiplications and 2
    additions per sample, the scalings and bias ``3 n``. A dense layer has ``n**2 + n``
    parameters and ``2 n**2 + n`` operations.

    Parameters
    ----------
    n : int
        Width (a power of two).
    n_stages : int, optional
        Number of stages, default ``log2 n``; ignored for ``kind="dense"``.
    kind : {"spm", "dense"}
    parameterization : {"general", "rotation"}

    Returns
    -------
    (n_params, n_flops) : tuple of int
    """
    n = _check_width(n)
    kind = check_choice("kind", kind, ("spm", "dense"))
    parameterization = check_choice(
        "parameterization", parameterization, PARAMETERIZATIONS
    )
    if kind == "dense":
        return n * n + n, 2 * n * n + n
    if n_stages is None:
        n_stages = n.bit_length() - 1
    n_stages = check_int("n_stages", n_stages, minimum=0)
    n_blocks = n_stages * n // 2
    per_block = 4 if parameterization == "general" else 1
    return per_block * n_blocks + 3 * n, 6 * n_blocks + 3 * n


def time_forward(
    n: int, *, batch: int = 64, repeats: int = 5, seed: int = 0
) -> tuple[float, float]:
    """Median seconds of an SPM forward (Numba, ``L = log2 n``) and a dense matmul.

    Both run on the same float32 batch; the dense layer is a NumPy (BLAS) product
    with an ``n x n`` matrix. These are wall-clock times on whatever machine runs
    them; the chapter shows them but asserts only operation counts.

    Returns
    -------
    (spm_seconds, dense_seconds) : tuple of float
    """
    n = _check_width(n)
    batch = check_int("batch", batch, minimum=1)
    repeats = check_int("repeats", repeats, minimum=1)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    n_stages = n.bit_length() - 1
    x = rng.standard_normal((batch, n)).astype(np.float32)
    blocks = rotation_blocks(rng.uniform(-np.pi, np.pi, (n_stages, n // 2)))
    blocks = blocks.astype(np.float32)
    pairs = make_pairs("butterfly", n, n_stages)
    weight = rng.standard_normal((n, n), dtype=np.float32) / np.float32(np.sqrt(n))
    spm = median_time(
        lambda: spm_kernels.spm_forward(x, blocks, pairs), repeats=repeats
    )
    dense = median_time(lambda: x @ weight.T, repeats=repeats)
    return spm.median, dense.median


@dataclass(frozen=True)
class TeacherData:
    """Inputs and targets of the regression task (float32 arrays)."""

    x_train: np.ndarray  # (n_train, n) standard normal inputs
    y_train: np.ndarray  # (n_train, n) teacher outputs plus Gaussian noise
    x_test: np.ndarray  # (n_test, n)
    y_test: np.ndarray  # (n_test, n) noise-free teacher outputs


def make_teacher_data(
    n: int,
    n_train: int,
    n_test: int,
    noise: float,
    rng: np.random.Generator,
    *,
    teacher: str = "spm",
) -> TeacherData:
    """Sample a random teacher and its data: ``y = tanh(Q x)`` plus noise.

    Parameters
    ----------
    n, n_train, n_test : int
        Width (a power of two) and the numbers of training and test samples.
    noise : float
        Standard deviation of the Gaussian noise added to the training targets; test
        targets are noise-free, so the test MSE measures the distance to the teacher.
    rng : numpy.random.Generator
        Source of the teacher, the inputs and the noise.
    teacher : {"spm", "dense"}
        ``"spm"``: ``Q`` is ``log2 n`` butterfly stages of rotations with angles
        uniform in ``[-pi, pi)``, a structured orthogonal map that SPM students can
        express. ``"dense"``: ``Q`` is a random orthogonal matrix (QR of a Gaussian),
        with no pairwise structure.

    Returns
    -------
    TeacherData
    """
    n = _check_width(n)
    n_train = check_int("n_train", n_train, minimum=1)
    n_test = check_int("n_test", n_test, minimum=1)
    noise = check_float("noise", noise, minimum=0.0)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    teacher = check_choice("teacher", teacher, ("spm", "dense"))
    n_stages = n.bit_length() - 1
    if teacher == "spm":
        blocks = rotation_blocks(rng.uniform(-np.pi, np.pi, (n_stages, n // 2)))
        matrix = dense_equivalent(blocks, make_pairs("butterfly", n, n_stages))
    else:
        matrix = np.linalg.qr(rng.standard_normal((n, n)))[0]
    x = rng.standard_normal((n_train + n_test, n))
    y = np.tanh(x @ matrix.T)
    y[:n_train] += noise * rng.standard_normal((n_train, n))
    x, y = x.astype(np.float32), y.astype(np.float32)
    return TeacherData(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


class _DenseLayer:
    """``y = x W^T + b`` with PyTorch's default initialisation, in NumPy."""

    def __init__(self, n: int, rng: np.random.Generator):
        bound = 1.0 / np.sqrt(n)
        self.weight = rng.uniform(-bound, bound, (n, n)).astype(np.float32)
        self.bias = rng.uniform(-bound, bound, n).astype(np.float32)

    def params(self) -> list[np.ndarray]:
        return [self.weight, self.bias]

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.weight.T + self.bias

    def backward(self, grad_y: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        grads = [grad_y.T @ self._x, grad_y.sum(axis=0)]
        return grad_y @ self.weight, grads


class _SPMLayer:
    """``y = d_out * SPM(d_in * x) + b`` in NumPy, stages in the Numba kernels.

    Starts at the identity map, like :class:`SPMLinear`.
    """

    def __init__(self, pairs: np.ndarray, parameterization: str):
        n_stages, n_pairs, _ = pairs.shape
        self.pairs = pairs
        self.rotation = parameterization == "rotation"
        if self.rotation:
            self.weight = np.zeros((n_stages, n_pairs), dtype=np.float32)
        else:
            identity = np.array([1.0, 0.0, 0.0, 1.0], dtype=np.float32)
            self.weight = np.tile(identity, (n_stages, n_pairs, 1))
        self.scale_in = np.ones(2 * n_pairs, dtype=np.float32)
        self.scale_out = np.ones(2 * n_pairs, dtype=np.float32)
        self.bias = np.zeros(2 * n_pairs, dtype=np.float32)

    def params(self) -> list[np.ndarray]:
        return [self.weight, self.scale_in, self.scale_out, self.bias]

    def _blocks(self) -> np.ndarray:
        if self.rotation:
            return rotation_blocks(self.weight).astype(np.float32)
        return self.weight

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        self._mixed_in = x * self.scale_in
        self._mixed = spm_kernels.spm_forward(
            self._mixed_in, self._blocks(), self.pairs
        )
        return self._mixed * self.scale_out + self.bias

    def backward(self, grad_y: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        grad_mixed = grad_y * self.scale_out
        grad_in, grad_blocks = spm_kernels.spm_backward(
            grad_mixed, self._mixed_in, self._blocks(), self.pairs
        )
        if self.rotation:
            grad_blocks = rotation_grad(grad_blocks, self.weight).astype(np.float32)
        grads = [
            grad_blocks,
            (grad_in * self._x).sum(axis=0),
            (grad_y * self._mixed).sum(axis=0),
            grad_y.sum(axis=0),
        ]
        return grad_in * self.scale_in, grads


class Student:
    """Two square layers with a tanh between: ``f(x) = layer2(tanh(layer1(x)))``.

    Forward and backward passes are written out in NumPy (closed form), so the SPM
    and dense students are trained by exactly the same code.
    """

    def __init__(self, first, second):
        self.layers = (first, second)

    def params(self) -> list[np.ndarray]:
        """The parameter arrays, updated in place by the optimiser."""
        return [p for layer in self.layers for p in layer.params()]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The student's outputs for the rows of ``x``."""
        self._hidden = np.tanh(self.layers[0].forward(x))
        return self.layers[1].forward(self._hidden)

    def gradients(self, grad_y: np.ndarray) -> list[np.ndarray]:
        """Parameter gradients after :meth:`predict`, in the order of :meth:`params`."""
        grad_hidden, second = self.layers[1].backward(grad_y)
        _, first = self.layers[0].backward(grad_hidden * (1 - self._hidden**2))
        return first + second


def make_student(
    variant: str, n: int, n_stages: int, parameterization: str, rng: np.random.Generator
) -> Student:
    """Build a two-layer student of one variant.

    Parameters
    ----------
    variant : {"spm", "dense", "reversed", "local"}
        ``"spm"``: SPM layers with the teacher's butterfly pairing; ``"dense"``: dense
        layers; ``"reversed"`` and ``"local"``: SPM layers with those pairings.
    n : int
        Width of every layer (a power of two).
    n_stages : int
        Stages per SPM layer.
    parameterization : {"general", "rotation"}
        Block parameterization of SPM layers.
    rng : numpy.random.Generator
        Draws the dense layers' initial weights (SPM layers start at the identity).
    """
    variant = check_choice("variant", variant, VARIANTS)
    n = _check_width(n)
    n_stages = check_int("n_stages", n_stages, minimum=1)
    parameterization = check_choice(
        "parameterization", parameterization, PARAMETERIZATIONS
    )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    if variant == "dense":
        return Student(_DenseLayer(n, rng), _DenseLayer(n, rng))
    pairs = make_pairs("butterfly" if variant == "spm" else variant, n, n_stages)
    return Student(
        _SPMLayer(pairs, parameterization), _SPMLayer(pairs, parameterization)
    )


def train_student(
    data: TeacherData,
    *,
    variant: str = "spm",
    n_stages: int = 6,
    parameterization: str = "general",
    n_steps: int = 600,
    lr: float = 0.03,
    seed: int = 0,
) -> tuple[Student, float]:
    """Fit a two-layer student to the teacher data with full-batch Adam.

    Parameters
    ----------
    data : TeacherData
    variant, n_stages, parameterization
        The student, as in :func:`make_student`.
    n_steps : int
        Full-batch Adam steps on the mean squared error.
    lr : float
        Adam's learning rate.
    seed : int
        Seeds the dense layers' initialisation.

    Returns
    -------
    (student, test_mse) : tuple
        The trained student and its mean squared error on the noise-free test set.
    """
    check_instance("data", data, TeacherData)
    n_steps = check_int("n_steps", n_steps, minimum=1)
    lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    student = make_student(
        variant, data.x_train.shape[1], n_stages, parameterization, rng
    )
    optimizer = Adam(student.params(), lr)
    scale = np.float32(2.0 / data.y_train.size)
    # The matrices are tiny: BLAS threads cost more than they save, and on a busy
    # machine they made the dense student over ten times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(n_steps):
            residual = student.predict(data.x_train) - data.y_train
            optimizer.step(student.gradients(scale * residual))
        prediction = student.predict(data.x_test)
    test_mse = float(np.mean((prediction - data.y_test) ** 2))
    logger.debug(
        "student %s: train %.4f, test %.4f",
        variant,
        float(np.mean(residual**2)),
        test_mse,
    )
    return student, test_mse


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the variant: the paper's mechanism or a baseline."""

    variant: str = "spm"  # "spm" (mechanism), "dense" (baseline), "reversed", "local"
    n: int = 64  # width of inputs, hidden layer and outputs (a power of two)
    n_stages: int = 6  # SPM stages per student layer; log2 n mixes globally
    parameterization: str = "general"  # student blocks: "general" or "rotation"
    n_train: int = 512  # training samples
    n_test: int = 4096  # test samples (noise-free targets)
    noise: float = 0.1  # standard deviation of the noise on training targets
    n_steps: int = 600  # full-batch Adam steps
    lr_spm: float = 0.03  # Adam learning rate of SPM students (best of a small grid)
    lr_dense: float = 0.001  # Adam learning rate of dense students
    n_seeds: int = 3  # teachers (and datasets) the result is averaged over
    seed: int = 0  # first seed; the others follow it
    cost_n: int = 4096  # width at which parameter and operation counts are compared

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        _check_width(self.n)
        check_int("n_stages", self.n_stages, minimum=1)
        check_choice("parameterization", self.parameterization, PARAMETERIZATIONS)
        check_int("n_train", self.n_train, minimum=1)
        check_int("n_test", self.n_test, minimum=1)
        check_float("noise", self.noise, minimum=0.0)
        check_int("n_steps", self.n_steps, minimum=1)
        check_float("lr_spm", self.lr_spm, minimum=0.0, strict_minimum=True)
        check_float("lr_dense", self.lr_dense, minimum=0.0, strict_minimum=True)
        check_int("n_seeds", self.n_seeds, minimum=1)
        check_int("seed", self.seed, minimum=0)
        _check_width(self.cost_n)


@dataclass(frozen=True)
class Result:
    """What the claim is checked on."""

    config: Config
    test_mse: tuple[float, ...]  # the variant's student, one value per seed
    dense_test_mse: tuple[float, ...]  # the dense student on the same data, per seed
    grad_error: float  # worst relative error, closed-form vs autograd gradients
    param_fraction: float  # the variant's layer parameters / dense, at cost_n
    flop_fraction: float  # the variant's layer operations / dense, at cost_n

    @property
    def mse_ratio(self) -> float:
        """Mean test MSE of the variant's student over that of the dense student."""
        return float(np.mean(self.test_mse) / np.mean(self.dense_test_mse))


def run_experiment(config: Config) -> Result:
    """Run the three checks of the chapter for one variant.

    1. Closed-form gradients against autograd (both parameterizations, n = 64, L = 6).
    2. Parameters and operations of the variant's layer at ``cost_n`` against dense.
    3. For each seed, a random SPM teacher; the variant's student and a dense student
       are trained on the same data and compared on the test MSE.
    """
    check_instance("config", config, Config)
    grad_error = max(
        gradient_errors(parameterization=p, seed=config.seed)["autograd"]
        for p in PARAMETERIZATIONS
    )
    kind = "dense" if config.variant == "dense" else "spm"
    params, flops = layer_cost(
        config.cost_n, kind=kind, parameterization=config.parameterization
    )
    dense_params, dense_flops = layer_cost(config.cost_n, kind="dense")

    test_mse, dense_mse = [], []
    for seed in range(config.seed, config.seed + config.n_seeds):
        data = make_teacher_data(
            config.n,
            config.n_train,
            config.n_test,
            config.noise,
            np.random.default_rng(seed),
        )
        common = dict(n_steps=config.n_steps, seed=seed)
        _, dense = train_student(data, variant="dense", lr=config.lr_dense, **common)
        if config.variant == "dense":
            mse = dense
        else:
            _, mse = train_student(
                data,
                variant=config.variant,
                n_stages=config.n_stages,
                parameterization=config.parameterization,
                lr=config.lr_spm,
                **common,
            )
        logger.info("seed %d: %s %.4f, dense %.4f", seed, config.variant, mse, dense)
        test_mse.append(mse)
        dense_mse.append(dense)
    return Result(
        config=config,
        test_mse=tuple(test_mse),
        dense_test_mse=tuple(dense_mse),
        grad_error=grad_error,
        param_fraction=params / dense_params,
        flop_fraction=flops / dense_flops,
    )


def check_claim(result: Result) -> None:
    """Raise :class:`paperlab.claims.ClaimFailed` unless the chapter's claim holds.

    (i) closed-form gradients match autograd to relative error below 1e-6;
    (ii) at width ``cost_n`` the layer has under 1% of a dense layer's parameters and
    operations; (iii) the student's mean test MSE is at most 0.7 times the dense
    student's on the structured teacher task.
    """
    check_instance("result", result, Result)
    require(
        result.grad_error < MAX_GRAD_ERROR,
        f"closed-form gradients differ from autograd by {result.grad_error:.2e} "
        f"(relative), expected < {MAX_GRAD_ERROR:g}",
    )
    require(
        max(result.param_fraction, result.flop_fraction) < MAX_COST_FRACTION,
        f"the layer has {result.param_fraction:.2%} of the dense parameters and "
        f"{result.flop_fraction:.2%} of its operations, expected < "
        f"{MAX_COST_FRACTION:.0%}",
    )
    require(
        result.mse_ratio <= MAX_MSE_RATIO,
        f"test MSE ratio to the dense student is {result.mse_ratio:.3f}, expected "
        f"<= {MAX_MSE_RATIO}",
    )

r"""OptRot: data-free rotations that shrink weight outliers before quantization.

Gadhikar, Grazzi and Hensman, "OptRot: Mitigating Weight Outliers via Data-Free
Rotations for Post-Training Quantization", arXiv:2512.24124.

A linear layer ``y = x W^T`` (weights ``W`` of shape ``(d_out, d_in)``, torch's
layout) computes exactly the same outputs after an orthogonal change of basis of its
inputs: with ``R^T R = I``,

.. math::  (x R)\,(W R)^\top = x R R^\top W^\top = x W^\top .

In a transformer the factor ``R`` on the inputs is folded into the layer that
produces them, so the rotation costs nothing at inference; only ``W' = W R`` is
quantized. The quantized layer's effective weights are ``Q(W R) R^\top``.

Which ``R``? Round-to-nearest (RTN) and GPTQ errors grow with the *incoherence*
``mu(W) = max_ij |W_ij| sqrt(d_out d_in) / ||W||_F``: one large entry stretches a
row's grid and coarsens every other weight of that row. A random-sign Hadamard matrix
(QuaRot, QuIP#) spreads outliers; OptRot instead *optimizes* the rotation for a
smooth, data-free proxy of outlier mass, the sum of fourth powers

.. math::  F(R) = \sum_{ij} (W R)_{ij}^4 ,

whose Euclidean gradient is ``G = 4 W^T (W R)^{\circ 3}`` (cube taken elementwise).
Since ``||W R||_F = ||W||_F`` for every rotation, lowering ``F`` can only flatten the
distribution of the entries. The optimization stays on the orthogonal group with
Cayley steps: the skew-symmetric direction ``A = G R^T - R G^T`` gives

.. math::  R \leftarrow (I + \tfrac{t}{2} A)^{-1} (I - \tfrac{t}{2} A)\, R ,

which is orthogonal for every step ``t`` (with ``A`` normalised to unit Frobenius norm
here and ``t`` found by backtracking so that ``F`` decreases).

This module builds LLM-like synthetic layers (Gaussian weights, a few input channels
scaled up, heavy-tailed noise), compares identity, random-sign Hadamard and OptRot
rotations under per-row symmetric RTN and GPTQ (:mod:`paperlab.quantization`, whose
column loop is the Numba kernel :func:`paperlab.kernels.quantization.gptq_columns`),
and checks the chapter's claim. :func:`tiny_lm_layer_study` repeats the comparison on
a real weight matrix of :mod:`paperlab.tinylm`.

Measured costs (book's 2-core machine, one thread, busy): one Cayley step on a
256 x 128 layer takes about 3-5 ms (a 128 x 128 solve dominates), so the default
experiment (3 seeds, 200 steps) takes 2-5 seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from paperlab.claims import require
from paperlab.quantization import gptq_quantize, relative_output_error, rtn_quantize
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "ROTATIONS",
    "QUANTIZERS",
    "make_outlier_layer",
    "make_calibration_inputs",
    "fourth_power",
    "fourth_power_grad",
    "incoherence",
    "random_hadamard",
    "cayley_step",
    "OptRotTrace",
    "optrot_rotation",
    "function_error",
    "quantize_rotated",
    "Config",
    "SeedMetrics",
    "Result",
    "seed_problem",
    "run_experiment",
    "check_claim",
    "ExplorePath",
    "explore_path",
    "RealLayerResult",
    "tiny_lm_layer_study",
    "plot_errors",
    "plot_explore",
]

logger = logging.getLogger(__name__)

ROTATIONS = ("identity", "hadamard", "optrot")
ROTATION_NAMES = {
    "identity": "no rotation",
    "hadamard": "random Hadamard",
    "optrot": "OptRot",
}
QUANTIZERS = ("rtn", "gptq")

# The claim's thresholds (see check_claim); measured values are in the notebook.
MAX_FOURTH_POWER_RATIO = 0.7  # F(OptRot) / F(Hadamard)
MAX_RTN_ERROR_RATIO = 0.9  # RTN output error, OptRot / Hadamard, every bit width
MAX_GPTQ_ERROR_RATIO = 1.0  # GPTQ output error, OptRot / Hadamard, every bit width
MAX_FUNCTION_ERROR = 1e-5  # ||X W^T - (X R)(W R)^T|| / ||X W^T||


# ---------------------------------------------------------------------- the data


def _check_rng(rng) -> np.random.Generator:
    return check_instance("rng", rng, np.random.Generator)


def make_outlier_layer(
    d_out: int,
    d_in: int,
    rng: np.random.Generator,
    n_outlier_channels: int = 4,
    outlier_scale: float = 8.0,
    noise_scale: float = 0.5,
) -> np.ndarray:
    """Draw an LLM-like weight matrix with a few loud input channels.

    ``W = G D + noise_scale * T``: ``G`` has standard normal entries, ``D`` is
    diagonal with ``outlier_scale`` on ``n_outlier_channels`` random input columns
    and 1 elsewhere, and ``T`` has Student-t entries with 3 degrees of freedom (rare,
    very large single weights).

    Parameters
    ----------
    d_out, d_in : int
        Shape of the weights (``nn.Linear`` layout), both >= 1.
    rng : numpy.random.Generator
    n_outlier_channels : int
        Number of scaled input columns, 0..d_in.
    outlier_scale : float
        Factor of the loud columns, > 0.
    noise_scale : float
        Weight of the heavy-tailed noise, >= 0.

    Returns
    -------
    ndarray of float64, shape (d_out, d_in)
    """
    d_out = check_int("d_out", d_out, minimum=1)
    d_in = check_int("d_in", d_in, minimum=1)
    rng = _check_rng(rng)
    n_outlier_channels = check_int(
        "n_outlier_channels", n_outlier_channels, minimum=0, maximum=d_in
    )
    outlier_scale = check_float(
        "outlier_scale", outlier_scale, minimum=0.0, strict_minimum=True
    )
    noise_scale = check_float("noise_scale", noise_scale, minimum=0.0)
    W = rng.standard_normal((d_out, d_in))
    loud = rng.choice(d_in, size=n_outlier_channels, replace=False)
    W[:, loud] *= outlier_scale
    return W + noise_scale * rng.standard_t(3, size=(d_out, d_in))


def make_calibration_inputs(
    n: int,
    d_in: int,
    rng: np.random.Generator,
    n_loud_channels: int = 4,
    loud_scale: float = 10.0,
) -> np.ndarray:
    """Draw calibration activations with a few high-variance input channels.

    Rows are standard normal except ``n_loud_channels`` random columns multiplied by
    ``loud_scale``, like the massive activation channels of LLMs. GPTQ uses them
    through its Hessian ``2 X^T X``; every method is scored on them.

    Returns
    -------
    ndarray of float64, shape (n, d_in)
    """
    n = check_int("n", n, minimum=1)
    d_in = check_int("d_in", d_in, minimum=1)
    rng = _check_rng(rng)
    n_loud_channels = check_int(
        "n_loud_channels", n_loud_channels, minimum=0, maximum=d_in
    )
    loud_scale = check_float("loud_scale", loud_scale, minimum=0.0, strict_minimum=True)
    X = rng.standard_normal((n, d_in))
    X[:, rng.choice(d_in, size=n_loud_channels, replace=False)] *= loud_scale
    return X


# ------------------------------------------------------------- the objective


def _check_weights(W) -> np.ndarray:
    return check_array("W", W, ndim=2, dtype=np.float64, finite=True, min_size=1)


def _check_rotation(R, d_in: int, name: str = "R") -> np.ndarray:
    R = check_array(name, R, shape=(d_in, d_in), dtype=np.float64, finite=True)
    if not np.allclose(R.T @ R, np.eye(d_in), atol=1e-8):
        raise ValueError(f"{name} must be orthogonal (R^T R = I)")
    return R


def _sum_fourth(V: np.ndarray) -> float:
    # V*V then a dot product: ten times faster than V**4 (a pow call per entry).
    V2 = V * V
    return float(np.vdot(V2, V2))


def fourth_power(W) -> float:
    r"""OptRot's objective on already rotated weights, ``sum_ij W_ij^4``.

    Parameters
    ----------
    W : array_like of shape (d_out, d_in)
        Finite weights (pass ``W R`` to score a rotation ``R``).

    Returns
    -------
    float
    """
    return _sum_fourth(_check_weights(W))


def fourth_power_grad(W, R) -> np.ndarray:
    r"""Euclidean gradient of ``F(R) = sum_ij (W R)_ij^4`` with respect to ``R``.

    ``dF/dR = 4 W^T (W R)^{\circ 3}``, the cube taken entry by entry.

    Parameters
    ----------
    W : array_like of shape (d_out, d_in)
    R : array_like of shape (d_in, d_in)
        Any square matrix (orthogonality is not needed for the gradient).

    Returns
    -------
    ndarray of float64, shape (d_in, d_in)
    """
    W = _check_weights(W)
    d_in = W.shape[1]
    R = check_array("R", R, shape=(d_in, d_in), dtype=np.float64, finite=True)
    return _grad(W, R)


def _grad(W: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``4 W^T (W R)^3`` without validation (the optimizer's inner loop)."""
    V = W @ R
    return 4.0 * W.T @ (V * V * V)


def incoherence(W) -> float:
    r"""Weight incoherence ``mu = max_ij |W_ij| sqrt(d_out d_in) / ||W||_F``.

    It is 1 when every entry has the same magnitude and ``sqrt(d_out d_in)`` when a
    single entry holds all the mass; Gaussian matrices sit at a few units.

    Raises
    ------
    ValueError
        If ``W`` is all zeros.
    """
    W = _check_weights(W)
    norm = np.linalg.norm(W)
    if norm == 0:
        raise ValueError("W must not be all zeros")
    return float(np.abs(W).max() * np.sqrt(W.size) / norm)


# ------------------------------------------------------------- the rotations


def random_hadamard(d: int, rng: np.random.Generator) -> np.ndarray:
    """A random-sign Hadamard rotation ``diag(s) H / sqrt(d)``.

    Parameters
    ----------
    d : int
        Size, a power of two.
    rng : numpy.random.Generator
        Draws the signs ``s`` in {-1, +1}.

    Returns
    -------
    ndarray of float64, shape (d, d), orthogonal
    """
    d = check_int("d", d, minimum=1)
    if d & (d - 1):
        raise ValueError(f"d must be a power of two, got {d}")
    rng = _check_rng(rng)
    signs = rng.choice(np.array([-1.0, 1.0]), size=d)
    return signs[:, None] * scipy.linalg.hadamard(d) / np.sqrt(d)


def cayley_step(R, A, step: float) -> np.ndarray:
    r"""One Cayley step on the orthogonal group, ``(I + t A / 2)^{-1} (I - t A / 2) R``.

    Parameters
    ----------
    R : array_like of shape (d, d)
        Current rotation.
    A : array_like of shape (d, d)
        Skew-symmetric direction (``A^T = -A``).
    step : float
        Step ``t`` >= 0.

    Returns
    -------
    ndarray of float64, shape (d, d)
        Orthogonal whenever ``R`` is: the Cayley transform of a skew-symmetric matrix
        is orthogonal.
    """
    R = check_array("R", R, ndim=2, dtype=np.float64, finite=True)
    d = R.shape[0]
    A = check_array("A", A, shape=(d, d), dtype=np.float64, finite=True)
    if R.shape != (d, d):
        raise ValueError(f"R must be square, got shape {R.shape}")
    if not np.allclose(A, -A.T, atol=1e-10 * max(1.0, np.abs(A).max())):
        raise ValueError("A must be skew-symmetric (A^T = -A)")
    step = check_float("step", step, minimum=0.0)
    half = 0.5 * step * A
    identity = np.eye(d)
    return np.linalg.solve(identity + half, (identity - half) @ R)


@dataclass(frozen=True)
class OptRotTrace:
    """Where OptRot ended and how it got there."""

    rotation: np.ndarray  # (d_in, d_in) final orthogonal R
    objective: tuple[float, ...]  # F(R) before the first step and after each step
    step_size: float  # backtracking step t when the run stopped
    snapshots: tuple[tuple[int, np.ndarray], ...]  # (steps taken, R) if recorded


def optrot_rotation(
    W,
    R0,
    n_steps: int = 400,
    step_size: float = 0.2,
    record_every: int | None = None,
) -> OptRotTrace:
    r"""Minimise ``F(R) = sum_ij (W R)_ij^4`` over rotations by Cayley steps.

    Each step computes ``G = 4 W^T (W R)^3``, the skew direction
    ``A = G R^T - R G^T`` normalised to unit Frobenius norm, and tries the Cayley
    step :func:`cayley_step` with step ``t``, halving ``t`` until ``F`` drops by at
    least ``1e-4 t ||A|| / 2`` (Armijo's condition: ``-||A|| / 2`` is the slope of
    ``F`` along the curve at ``t = 0``); after an accepted step ``t`` grows by 1.5.
    The run stops early when ``t`` falls below ``1e-10`` or ``A`` vanishes (a
    stationary point).

    Parameters
    ----------
    W : array_like of shape (d_out, d_in)
        Weights to rotate (``nn.Linear`` layout; the rotation acts on inputs).
    R0 : array_like of shape (d_in, d_in)
        Orthogonal starting rotation (the paper's setting starts from a Hadamard
        matrix; the identity works too).
    n_steps : int
        Number of accepted Cayley steps, >= 0.
    step_size : float
        Initial step ``t`` > 0 (an angle: ``A`` has unit norm).
    record_every : int, optional
        Keep a copy of ``R`` every this many steps (and at step 0 and the end).

    Returns
    -------
    OptRotTrace
        ``objective`` never increases.
    """
    W = _check_weights(W)
    R = _check_rotation(R0, W.shape[1], "R0").copy()
    n_steps = check_int("n_steps", n_steps, minimum=0)
    t = check_float("step_size", step_size, minimum=0.0, strict_minimum=True)
    if record_every is not None:
        record_every = check_int("record_every", record_every, minimum=1)
    f = _sum_fourth(W @ R)
    objective = [f]
    snapshots = [(0, R.copy())] if record_every else []
    for step in range(1, n_steps + 1):
        R_next, f_next, t = _backtracking_step(W, R, f, t)
        if R_next is None:
            logger.info("OptRot stopped at a stationary point after %d steps", step - 1)
            break
        R, f = R_next, f_next
        objective.append(f)
        if record_every and (step % record_every == 0 or step == n_steps):
            snapshots.append((step, R.copy()))
    if record_every and snapshots[-1][0] != len(objective) - 1:
        snapshots.append((len(objective) - 1, R.copy()))
    return OptRotTrace(R, tuple(objective), t, tuple(snapshots))


def _backtracking_step(W: np.ndarray, R: np.ndarray, f: float, t: float):
    """One accepted Cayley step: ``(R_next, F(R_next), next t)``, or ``(None, f, t)``
    when no step decreases ``F`` (stationary point)."""
    G = _grad(W, R)
    A = G @ R.T - R @ G.T
    norm = np.linalg.norm(A)
    if norm <= 1e-12 * max(1.0, np.linalg.norm(G)):
        return None, f, t
    A /= norm
    while t >= 1e-10:
        R_next = cayley_step(R, A, t)
        f_next = _sum_fourth(W @ R_next)
        if f_next <= f - 1e-4 * t * 0.5 * norm:
            return R_next, f_next, 1.5 * t
        t *= 0.5
    return None, f, t


# ------------------------------------------------------- quantizing a rotation


def _unrotate(W_rot: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Effective weights in the original basis, ``W' R^T`` (the inputs are rotated
    by ``R`` before they reach ``W'``)."""
    return W_rot @ R.T


def function_error(X, W, R) -> float:
    r"""Relative change of the layer's outputs caused by the rotation alone,
    ``||X W^T - (X R)(W R)^T||_F / ||X W^T||_F`` (0 up to rounding when ``R`` is
    orthogonal and applied to both sides).

    Parameters
    ----------
    X : array_like of shape (n, d_in)
    W : array_like of shape (d_out, d_in)
    R : array_like of shape (d_in, d_in)
    """
    W = _check_weights(W)
    X = check_array("X", X, shape=(None, W.shape[1]), dtype=np.float64, finite=True)
    R = check_array(
        "R", R, shape=(W.shape[1], W.shape[1]), dtype=np.float64, finite=True
    )
    return relative_output_error(X, W, _unrotate(W @ R, R))


def quantize_rotated(W, R, X, bits: int, quantizer: str) -> np.ndarray:
    r"""Quantize ``W R`` and return the effective weights ``Q(W R) R^T``.

    With the inputs rotated to ``X R`` (folded into the previous layer), the
    quantized layer computes ``(X R) Q(W R)^T = X (Q(W R) R^T)^T``. GPTQ sees the
    rotated inputs, so its Hessian is ``2 (X R)^T (X R) = R^T (2 X^T X) R``.

    Parameters
    ----------
    W : array_like of shape (d_out, d_in)
    R : array_like of shape (d_in, d_in)
        Orthogonal rotation.
    X : array_like of shape (n, d_in)
        Calibration inputs (unrotated); used by GPTQ only.
    bits : int
        Bits per weight, 2..16 (symmetric grid, one per output row).
    quantizer : {"rtn", "gptq"}

    Returns
    -------
    ndarray of float64, shape (d_out, d_in)
        Weights in the original basis, to compare with ``W``.
    """
    W = _check_weights(W)
    R = _check_rotation(R, W.shape[1])
    X = check_array("X", X, shape=(None, W.shape[1]), dtype=np.float64, finite=True)
    bits = check_int("bits", bits, minimum=2, maximum=16)
    quantizer = check_choice("quantizer", quantizer, QUANTIZERS)
    W_rot = W @ R
    if quantizer == "rtn":
        quantized = rtn_quantize(W_rot, bits)
    else:
        X_rot = X @ R
        quantized = gptq_quantize(W_rot, 2.0 * X_rot.T @ X_rot, bits)
    return _unrotate(quantized.dequantize().astype(np.float64), R)


# ------------------------------------------------------------ the experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and which rotation the claim is checked for."""

    variant: str = "optrot"  # rotation under test: "optrot", "hadamard", "identity"
    n_seeds: int = 3  # independent layers (and Hadamard signs)
    seed: int = 0  # seed of the first layer; layer k uses seed + k
    d_out: int = 256  # output rows of the layer
    d_in: int = 128  # input columns (a power of two, for Hadamard)
    n_calib: int = 512  # calibration rows of X
    n_steps: int = 200  # Cayley steps of OptRot (400 gain < 3% more in F)
    step_size: float = 0.2  # initial Cayley step (an angle)
    bits: tuple[int, ...] = (3, 4)  # bit widths to quantize at

    def __post_init__(self):
        check_choice("variant", self.variant, ROTATIONS)
        check_int("n_seeds", self.n_seeds, minimum=1)
        check_int("seed", self.seed, minimum=0)
        check_int("d_out", self.d_out, minimum=1)
        d_in = check_int("d_in", self.d_in, minimum=1)
        if d_in & (d_in - 1):
            raise ValueError(f"d_in must be a power of two, got {d_in}")
        check_int("n_calib", self.n_calib, minimum=1)
        check_int("n_steps", self.n_steps, minimum=0)
        check_float("step_size", self.step_size, minimum=0.0, strict_minimum=True)
        check_instance("bits", self.bits, tuple)
        if not self.bits:
            raise ValueError("bits must name at least one bit width")
        for b in self.bits:
            check_int("bits", b, minimum=2, maximum=16)


@dataclass(frozen=True)
class SeedMetrics:
    """Measurements of one rotation on one seed's layer."""

    seed: int
    rotation: str  # one of ROTATIONS
    fourth_power: float  # sum of (W R)^4
    incoherence: float  # mu(W R)
    function_error: float  # ||X W^T - (X R)(W R)^T|| / ||X W^T||
    rtn_error: dict[int, float]  # bits -> relative output error with RTN
    gptq_error: dict[int, float]  # bits -> relative output error with GPTQ


@dataclass(frozen=True)
class Result:
    """Metrics of every rotation on every seed, and the seed-0 OptRot trace."""

    config: Config
    metrics: tuple[SeedMetrics, ...]
    trace: OptRotTrace  # OptRot's run on the first seed's layer

    def get(self, seed: int, rotation: str) -> SeedMetrics:
        """The metrics of ``rotation`` on ``seed``; ``KeyError`` if absent."""
        for m in self.metrics:
            if m.seed == seed and m.rotation == rotation:
                return m
        raise KeyError((seed, rotation))

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds measured, in order."""
        return tuple(dict.fromkeys(m.seed for m in self.metrics))

    def ratio(self, seed: int, field: str, bits: int | None = None) -> float:
        """``field`` of the variant under test divided by Hadamard's, on ``seed``.

        ``field`` is ``"fourth_power"``, ``"rtn_error"`` or ``"gptq_error"`` (the
        last two need ``bits``).
        """
        check_choice("field", field, ("fourth_power", "rtn_error", "gptq_error"))
        mine = getattr(self.get(seed, self.config.variant), field)
        ref = getattr(self.get(seed, "hadamard"), field)
        if bits is not None:
            mine, ref = mine[bits], ref[bits]
        return float(mine / ref)


def _measure(
    seed: int, rotation: str, W: np.ndarray, X: np.ndarray, R: np.ndarray, bits
) -> SeedMetrics:
    W_rot = W @ R
    return SeedMetrics(
        seed=seed,
        rotation=rotation,
        fourth_power=_sum_fourth(W_rot),
        incoherence=incoherence(W_rot),
        function_error=function_error(X, W, R),
        rtn_error={
            b: relative_output_error(X, W, quantize_rotated(W, R, X, b, "rtn"))
            for b in bits
        },
        gptq_error={
            b: relative_output_error(X, W, quantize_rotated(W, R, X, b, "gptq"))
            for b in bits
        },
    )


def seed_problem(
    config: Config, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The layer ``W``, calibration inputs ``X`` and Hadamard rotation of ``seed``."""
    check_instance("config", config, Config)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    W = make_outlier_layer(config.d_out, config.d_in, rng)
    X = make_calibration_inputs(config.n_calib, config.d_in, rng)
    return W, X, random_hadamard(config.d_in, rng)


def run_experiment(config: Config) -> Result:
    """Measure identity, Hadamard and OptRot rotations on ``n_seeds`` layers.

    OptRot starts from the same seed's random Hadamard rotation and takes
    ``n_steps`` Cayley steps on ``F``. Every rotation is scored by its fourth power,
    incoherence, function error and the relative output error
    ``||X W^T - X (Q(W R) R^T)^T|| / ||X W^T||`` of RTN and GPTQ at each bit width.

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    metrics = []
    first_trace = None
    for k in range(config.n_seeds):
        seed = config.seed + k
        W, X, R_had = seed_problem(config, seed)
        trace = optrot_rotation(
            W,
            R_had,
            config.n_steps,
            config.step_size,
            record_every=25 if k == 0 else None,
        )
        first_trace = first_trace or trace
        rotations = {"identity": np.eye(config.d_in), "hadamard": R_had}
        rotations["optrot"] = trace.rotation
        for name in ROTATIONS:
            metrics.append(_measure(seed, name, W, X, rotations[name], config.bits))
        logger.info(
            "seed %d: F(OptRot)/F(Hadamard) = %.3f",
            seed,
            trace.objective[-1] / trace.objective[0],
        )
    return Result(config, tuple(metrics), first_trace)


def check_claim(result: Result) -> None:
    """Check, on every seed, that the rotation under test beats random Hadamard.

    1. It preserves the layer's function: relative function error below 1e-5.
    2. Its sum of fourth powers is at most 0.7 x Hadamard's.
    3. Its RTN output error is at most 0.9 x Hadamard's at every bit width.
    4. Its GPTQ output error is at most Hadamard's at every bit width.

    Raises
    ------
    paperlab.claims.ClaimFailed
        Naming the seed and the part that failed.
    """
    check_instance("result", result, Result)
    variant = result.config.variant
    for seed in result.seeds:
        mine = result.get(seed, variant)
        require(
            mine.function_error < MAX_FUNCTION_ERROR,
            f"seed {seed}: {variant} changes the layer's outputs by "
            f"{mine.function_error:.2e} (rotation not applied consistently)",
        )
        f_ratio = result.ratio(seed, "fourth_power")
        require(
            f_ratio <= MAX_FOURTH_POWER_RATIO,
            f"seed {seed}: {variant}'s fourth power is {f_ratio:.3f} x Hadamard's, "
            f"above {MAX_FOURTH_POWER_RATIO}",
        )
        for b in result.config.bits:
            rtn = result.ratio(seed, "rtn_error", b)
            require(
                rtn <= MAX_RTN_ERROR_RATIO,
                f"seed {seed}: {variant}'s {b}-bit RTN error is {rtn:.3f} x "
                f"Hadamard's, above {MAX_RTN_ERROR_RATIO}",
            )
            gptq = result.ratio(seed, "gptq_error", b)
            require(
                gptq <= MAX_GPTQ_ERROR_RATIO,
                f"seed {seed}: {variant}'s {b}-bit GPTQ error is {gptq:.3f} x "
                f"Hadamard's, above {MAX_GPTQ_ERROR_RATIO}",
            )


# ------------------------------------------------------------------ exploring


@dataclass(frozen=True)
class ExplorePath:
    """OptRot's rotation after 0, 25, 50, ... steps on the first seed's layer."""

    steps: tuple[int, ...]  # Cayley steps taken (0 is the Hadamard start)
    weights: tuple[np.ndarray, ...]  # rotated weights W R at each of those steps
    fourth_power: tuple[float, ...]  # F at each step
    rtn_error: tuple[float, ...]  # relative output error of RTN at ``bits``
    gptq_error: tuple[float, ...]  # relative output error of GPTQ at ``bits``
    bits: int


def explore_path(result: Result, bits: int = 3) -> ExplorePath:
    """Quantize every recorded OptRot snapshot of ``result`` (first seed) at ``bits``.

    Step 0 is the random Hadamard rotation OptRot starts from, so the first entry
    of each error tuple is Hadamard's error.
    """
    check_instance("result", result, Result)
    bits = check_int("bits", bits, minimum=2, maximum=16)
    if not result.trace.snapshots:
        raise ValueError("result.trace holds no snapshots (record_every was None)")
    W, X, _ = seed_problem(result.config, result.seeds[0])
    steps, weights, fourth, rtn, gptq = [], [], [], [], []
    for step, R in result.trace.snapshots:
        steps.append(step)
        weights.append(W @ R)
        fourth.append(_sum_fourth(weights[-1]))
        rtn.append(relative_output_error(X, W, quantize_rotated(W, R, X, bits, "rtn")))
        gptq.append(
            relative_output_error(X, W, quantize_rotated(W, R, X, bits, "gptq"))
        )
    return ExplorePath(
        tuple(steps), tuple(weights), tuple(fourth), tuple(rtn), tuple(gptq), bits
    )


# ------------------------------------------------------------- real weights


@dataclass(frozen=True)
class RealLayerResult:
    """A rotated and quantized layer of the tiny language model."""

    layer: str  # name of the linear layer, e.g. "blocks.0.mlp.fc_in"
    shape: tuple[int, int]  # (d_out, d_in)
    bits: int
    float_bits_per_char: float  # held-out bits/char of the unquantized model
    fourth_power: dict[str, float]  # rotation -> sum of (W R)^4
    incoherence: dict[str, float]  # rotation -> mu(W R)
    output_error: dict[tuple[str, str], float]  # (rotation, quantizer) -> rel. error
    bits_per_char: dict[tuple[str, str], float]  # (rotation, quantizer) -> bits/char


def tiny_lm_layer_study(
    bits: int = 2,
    n_steps: int = 100,
    seed: int = 0,
    size: str = "draft",
    layer: str = "blocks.0.mlp.fc_out",
    n_windows: int = 48,
) -> RealLayerResult:
    """Rotate and quantize one linear layer of the pretrained tiny language model.

    The model is :func:`paperlab.tinylm.pretrained_tiny_lm` of ``size`` and ``seed``.

    The held-out text (last 10% of the corpus) is cut in two halves: the first gives
    ``n_windows`` calibration windows whose inputs to ``layer`` form ``X``; the
    second gives ``n_windows`` windows to measure bits per character on. The layer
    is replaced by its effective weights ``Q(W R) R^T`` (bias kept), which is what
    the model computes when its input is rotated online (the MLP's output layer
    sits behind a GELU, so its rotation cannot be folded into the layer before;
    rotation pipelines such as QuaRot apply such rotations online); the rest of the
    model stays in float.

    Parameters
    ----------
    bits : int
        Bits per weight, 2..8.
    n_steps : int
        OptRot's Cayley steps, starting from the random Hadamard rotation.
    seed : int
        Seed of the model's training and of the Hadamard signs.
    size : {"base", "draft"}
        Model size (``"draft"`` trains in about a second).
    layer : str
        A linear layer whose input width is a power of two.
    n_windows : int
        Windows of ``context`` characters for calibration and for evaluation.

    Returns
    -------
    RealLayerResult
    """
    # Imported here: torch costs about a second, and only this function needs it.
    import torch

    from paperlab import tinylm

    bits = check_int("bits", bits, minimum=2, maximum=8)
    n_steps = check_int("n_steps", n_steps, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    n_windows = check_int("n_windows", n_windows, minimum=1)
    trained = tinylm.pretrained_tiny_lm(size, seed)
    model = trained.model
    context = model.config.context
    val_ids = trained.tokenizer.encode(tinylm.split_corpus()[1])
    half = len(val_ids) // 2
    calib_ids = _windows(val_ids[:half], context, n_windows)
    eval_ids = val_ids[half:]
    X = tinylm.linear_inputs(model, calib_ids, layer).astype(np.float64)
    module = model.get_submodule(layer)
    W = module.weight.detach().cpu().numpy().astype(np.float64)
    d_in = W.shape[1]
    if d_in & (d_in - 1):
        raise ValueError(f"layer {layer!r} has input width {d_in}, not a power of two")
    R_had = random_hadamard(d_in, np.random.default_rng(seed))
    rotations = {
        "identity": np.eye(d_in),
        "hadamard": R_had,
        "optrot": optrot_rotation(W, R_had, n_steps).rotation,
    }

    def bpc(weights: np.ndarray) -> float:
        copy = trained.fresh_copy().model
        with torch.no_grad():
            target = copy.get_submodule(layer).weight
            target.copy_(torch.as_tensor(weights, dtype=target.dtype))
        loss = tinylm.evaluate_loss(copy, eval_ids, context, max_windows=n_windows)
        return tinylm.bits_per_char(loss)

    output_error, bits_per_char = {}, {}
    for name, R in rotations.items():
        for quantizer in QUANTIZERS:
            W_hat = quantize_rotated(W, R, X, bits, quantizer)
            output_error[name, quantizer] = relative_output_error(X, W, W_hat)
            bits_per_char[name, quantizer] = bpc(W_hat)
    return RealLayerResult(
        layer=layer,
        shape=(int(W.shape[0]), int(d_in)),
        bits=bits,
        float_bits_per_char=bpc(W),
        fourth_power={n: _sum_fourth(W @ R) for n, R in rotations.items()},
        incoherence={n: incoherence(W @ R) for n, R in rotations.items()},
        output_error=output_error,
        bits_per_char=bits_per_char,
    )


def _windows(ids: np.ndarray, context: int, n_windows: int) -> np.ndarray:
    """``n_windows`` windows of ``context`` ids spread evenly over ``ids``."""
    if len(ids) < context:
        raise ValueError(f"need at least {context} ids, got {len(ids)}")
    starts = np.linspace(0, len(ids) - context, n_windows).astype(int)
    return ids[starts[:, None] + np.arange(context)]


# ------------------------------------------------------------------- figures


def plot_errors(result: Result):
    """Bars of the relative output error per quantizer and bit width, by rotation.

    Bars are means over seeds; dots are the seeds. Returns the figure.
    """
    from paperlab import plotting

    check_instance("result", result, Result)
    groups = [(q, b) for q in QUANTIZERS for b in result.config.bits]
    fig, ax = plotting.subplots(width=7.0, height=3.6)
    width = 0.8 / len(ROTATIONS)
    for i, name in enumerate(ROTATIONS):
        x = np.arange(len(groups)) + (i - (len(ROTATIONS) - 1) / 2) * width
        values = np.array(
            [
                [getattr(result.get(s, name), f"{q}_error")[b] for s in result.seeds]
                for q, b in groups
            ]
        )
        ax.bar(
            x, values.mean(1), width, color=_rotation_color(name),
            label=ROTATION_NAMES[name],
        )  # fmt: skip
        for j in range(len(groups)):
            ax.plot(np.full(values.shape[1], x[j]), values[j], "k.", ms=3)
    ax.set_xticks(np.arange(len(groups)), [f"{q.upper()} {b}-bit" for q, b in groups])
    plotting.label_axes(
        ax,
        title="Layer output error after quantization",
        xlabel="quantizer and bit width",
        ylabel="relative output error (ratio)",
    )
    return fig


def _rotation_color(name: str) -> str:
    from paperlab.plotting import COLORS

    return {"optrot": COLORS[0], "hadamard": COLORS[1], "identity": COLORS[2]}[name]


def plot_explore(path: ExplorePath, steps: int):
    """Left: histogram of the rotated weights after ``steps`` OptRot steps (the
    Hadamard start as an outline). Right: RTN and GPTQ output error against the
    number of steps, Hadamard's as dashed lines, the chosen step marked."""
    from paperlab import plotting

    check_instance("path", path, ExplorePath)
    steps = check_int("steps", steps, minimum=0)
    k = int(np.argmin(np.abs(np.asarray(path.steps) - steps)))
    fig, (left, right) = plotting.subplots(1, 2, width=9.0, height=3.5)
    edges = np.linspace(-1.05, 1.05, 61) * np.abs(path.weights[0]).max()
    left.hist(path.weights[0].ravel(), edges, histtype="step", color=_rotation_color(
        "hadamard"), label="Hadamard (step 0)")  # fmt: skip
    left.hist(path.weights[k].ravel(), edges, alpha=0.6, color=_rotation_color(
        "optrot"), label=f"OptRot, step {path.steps[k]}")  # fmt: skip
    left.set_yscale("log")
    plotting.label_axes(
        left,
        title=f"Rotated weights; max |w| {np.abs(path.weights[k]).max():.1f}",
        xlabel="weight value (W R)_ij (unitless)",
        ylabel="count (log scale)",
    )
    for name, errors, color in (
        ("RTN", path.rtn_error, plotting.COLORS[0]),
        ("GPTQ", path.gptq_error, plotting.COLORS[2]),
    ):
        right.plot(path.steps, errors, "o-", ms=3, color=color, label=f"OptRot {name}")
        right.axhline(errors[0], ls="--", color=color, lw=1, label=f"Hadamard {name}")
        right.plot(path.steps[k], errors[k], "o", ms=9, mfc="none", color="black")
    plotting.label_axes(
        right,
        title=f"{path.bits}-bit output error",
        xlabel="Cayley steps (count)",
        ylabel="relative output error (ratio)",
    )
    return fig

r"""Weight quantization: round-to-nearest, GPTQ, exact storage accounting, bit packing.

Layout convention, used everywhere here: a linear layer's weight ``W`` has shape
``(d_out, d_in)`` (torch's ``nn.Linear.weight``) and computes ``y = x W^T``; a batch
of inputs ``X`` has shape ``(n, d_in)``. Grids are per output row, and optionally per
group of ``group_size`` consecutive input columns of a row.

A :class:`QuantizedTensor` holds unsigned integer codes ``q`` in ``[0, 2^b)``, one
scale ``s`` and zero point ``z`` per row and group, and stands for

.. math::  \hat W_{ij} = (q_{ij} - z_{r(i), g(j)})\, s_{r(i), g(j)}.

- *Symmetric* grids (the default) put ``z = 2^{b-1}`` (fixed, not stored) and
  ``s = \max|w| / (2^{b-1} - 1)``, so the largest magnitude is exact and the code
  ``0`` (value ``-2^{b-1} s``) is never used.
- *Asymmetric* grids span ``[\min(w, 0), \max(w, 0)]`` with ``2^b - 1`` steps and a
  stored integer zero point, so that 0 is exactly representable.

:func:`rtn_quantize` rounds each weight to its grid independently.
:func:`gptq_quantize` (Frantar et al., 2022, arXiv:2210.17323) uses second-order
information from calibration inputs, ``H = 2 X^T X``: it quantizes one input column
at a time and moves the rounding error onto the columns not yet quantized, weighted
by the inverse Hessian, which minimises the layer's *output* error
``||X W^T - X \hat W^T||``. Its column loop is the Numba kernel
:func:`paperlab.kernels.quantization.gptq_columns`.

:func:`pack_bits` stores codes of any width from 1 to 16 bits back to back, so that
:meth:`QuantizedTensor.storage_bits` is what a packed file really takes.

Measured costs (book's 2-core machine, one thread, busy): RTN of a 256 x 128 matrix
0.15 ms; GPTQ of the same with 128 x 128 Hessian 5-7 ms (Cholesky factors included).
On random weights with correlated inputs (512 x 128 and four loud channels) GPTQ's
relative output error was about 0.15 against RTN's 0.28 at 3 bits, and 0.065
against 0.12 at 4 bits (three seeds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from paperlab.kernels import quantization as _kernels
from paperlab.validation import check_array, check_float, check_instance, check_int

__all__ = [
    "QuantizedTensor",
    "rtn_quantize",
    "gptq_quantize",
    "gptq_hessian",
    "relative_output_error",
    "pack_bits",
    "unpack_bits",
]


@dataclass(frozen=True)
class QuantizedTensor:
    """A weight matrix stored as low-bit codes with per-row (and group) grids.

    Build one with :func:`rtn_quantize` or :func:`gptq_quantize`.
    """

    codes: np.ndarray  # (d_out, d_in) uint8 (bits <= 8) or uint16, in [0, 2**bits)
    scales: np.ndarray  # (d_out, n_groups) float32, step of each row's group grid
    zeros: np.ndarray | None  # (d_out, n_groups) float32 integer zero points; None
    #                           when symmetric (zero point 2**(bits - 1), not stored)
    bits: int  # bits per code, 1..16
    group_size: int  # input columns per grid (d_in when one grid per row)
    shape: tuple[int, int]  # (d_out, d_in)

    @property
    def n_groups(self) -> int:
        """Number of grids per row, ``ceil(d_in / group_size)``."""
        return int(self.scales.shape[1])

    def _expand(self, per_group: np.ndarray) -> np.ndarray:
        """Repeat a (d_out, n_groups) array over each group's columns."""
        return np.repeat(per_group, self.group_size, axis=1)[:, : self.shape[1]]

    def dequantize(self) -> np.ndarray:
        """The represented weights, float32 array of shape ``shape``."""
        if self.zeros is None:
            zeros = np.float64(2 ** (self.bits - 1))
        else:
            zeros = self._expand(self.zeros.astype(np.float64))
        scales = self._expand(self.scales.astype(np.float64))
        return ((self.codes.astype(np.float64) - zeros) * scales).astype(np.float32)

    def storage_bits(self, scale_bits: int = 16) -> int:
        """Exact number of bits stored: codes, scales and (if any) zero points.

        Codes take ``bits`` each, packed back to back (see :func:`pack_bits`); each
        scale and each stored zero point takes ``scale_bits``. Shapes are metadata
        and not counted.
        """
        scale_bits = check_int("scale_bits", scale_bits, minimum=1)
        n_grids = self.scales.size * (1 if self.zeros is None else 2)
        return self.codes.size * self.bits + n_grids * scale_bits

    def bits_per_value(self, scale_bits: int = 16) -> float:
        """:meth:`storage_bits` divided by the number of weights."""
        if self.codes.size == 0:
            raise ValueError("bits_per_value is undefined for an empty tensor")
        return self.storage_bits(scale_bits) / self.codes.size


def _check_quant_args(W, bits, group_size, symmetric) -> tuple[np.ndarray, int, int]:
    """Validate the shared arguments; return W (float64), bits and the group size."""
    W = check_array("W", W, ndim=2, dtype=np.float64, finite=True, min_size=1)
    check_instance("symmetric", symmetric, bool)
    bits = check_int("bits", bits, minimum=2 if symmetric else 1, maximum=16)
    if group_size is None:
        return W, bits, W.shape[1]
    group_size = check_int("group_size", group_size, minimum=1)
    return W, bits, min(group_size, W.shape[1])


def _package(codes, scales, zeros, bits, group, symmetric, shape) -> QuantizedTensor:
    return QuantizedTensor(
        codes=codes.astype(np.uint8 if bits <= 8 else np.uint16),
        scales=scales.astype(np.float32),
        zeros=None if symmetric else zeros.astype(np.float32),
        bits=bits,
        group_size=group,
        shape=(int(shape[0]), int(shape[1])),
    )


def rtn_quantize(
    W, bits: int, group_size: int | None = None, symmetric: bool = True
) -> QuantizedTensor:
    """Round every weight to the nearest point of its row's (or group's) grid.

    Parameters
    ----------
    W : array_like of shape (d_out, d_in)
        Weights, finite.
    bits : int
        Bits per code: 2..16 when symmetric, 1..16 otherwise.
    group_size : int, optional
        Consecutive input columns sharing a grid; ``None`` for one grid per row.
        The last group of a row may be shorter.
    symmetric : bool
        Symmetric grid (default) or asymmetric min/max grid with a zero point.

    Returns
    -------
    QuantizedTensor
        Every element satisfies ``|W - W_hat| <= scale / 2`` (up to float32
        rounding of the result).

    Raises
    ------
    TypeError, ValueError
        On a bad argument.
    """
    W, bits, group = _check_quant_args(W, bits, group_size, symmetric)
    d_out, d_in = W.shape
    n_groups = -(-d_in // group)
    padded = np.zeros((d_out, n_groups * group))
    padded[:, :d_in] = W
    blocks = padded.reshape(d_out, n_groups, group)
    scales, zeros = _numpy_grids(blocks, bits, symmetric, d_in, group)
    maxq = 2.0**bits - 1.0
    codes = np.clip(np.rint(blocks / scales[..., None]) + zeros[..., None], 0, maxq)
    codes = codes.reshape(d_out, -1)[:, :d_in]
    return _package(codes, scales, zeros, bits, group, symmetric, W.shape)


def _numpy_grids(blocks, bits, symmetric, d_in, group):
    """Per (row, group) scale and zero point, as the kernels' ``_grid`` computes.

    ``blocks`` has shape (d_out, n_groups, group), zero-padded past ``d_in``: padding
    changes neither max|w| nor the range (which always includes 0).
    """
    if np.abs(blocks).max(initial=0.0) > np.finfo(np.float32).max / 4:
        raise ValueError("W is too large to quantize: a group's scale overflows")
    if symmetric:
        scales = np.abs(blocks).max(axis=2) / (2.0 ** (bits - 1) - 1.0)
        zeros = np.full(scales.shape, 2.0 ** (bits - 1))
    else:
        low = np.minimum(blocks.min(axis=2), 0.0)
        high = np.maximum(blocks.max(axis=2), 0.0)
        scales = (high - low) / (2.0**bits - 1.0)
    scales = scales.astype(np.float32).astype(np.float64)
    scales[scales == 0] = 1.0
    if not symmetric:
        zeros = np.rint(-low / scales)
    return scales, zeros


def gptq_hessian(X) -> np.ndarray:
    """GPTQ's Hessian of the layer-wise squared error, ``H = 2 X^T X``.

    Parameters
    ----------
    X : array_like of shape (n, d_in)
        Calibration inputs of the layer.

    Returns
    -------
    ndarray of float64, shape (d_in, d_in)
    """
    X = check_array("X", X, ndim=2, dtype=np.float64, finite=True, min_size=1)
    return 2.0 * X.T @ X


def _inverse_cholesky_upper(
    H: np.ndarray, damp: float
) -> tuple[np.ndarray, np.ndarray]:
    """Dampen ``H``; return the upper Cholesky factor of its inverse and the mask of
    dead inputs (zero diagonal: never active in the calibration data)."""
    H = H.copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    H[np.diag_indices_from(H)] += damp * np.mean(np.diag(H))
    try:
        lower = np.linalg.cholesky(H)
    except np.linalg.LinAlgError as err:
        raise ValueError("H must be positive definite after dampening") from err
    H_inv = scipy.linalg.cho_solve((lower, True), np.eye(len(H)))
    return np.linalg.cholesky(H_inv).T, dead


def gptq_quantize(
    W,
    H,
    bits: int,
    group_size: int | None = None,
    symmetric: bool = True,
    damp: float = 0.01,
) -> QuantizedTensor:
    r"""Quantize ``W`` with GPTQ (Frantar et al., 2022, Algorithm 1).

    1. Inputs with ``H_jj = 0`` are dead: their weights are set to 0 (as in GPTQ).
    2. Dampen: ``H + damp * mean(diag H) * I``.
    3. ``U`` = upper Cholesky factor of ``H^{-1}`` (``H^{-1} = U^T U``).
    4. Quantize column by column; after column ``i`` add
       ``-(w_i - q_i) / U_ii * U_{i, j}`` to every later column ``j``
       (:func:`paperlab.kernels.quantization.gptq_columns`). A group's grid is
       computed when its first column is reached, from the updated weights.

    This is the plain column loop; GPTQ's "lazy batch" blocking only reorders the
    same updates for speed on a GPU.

    Parameters
    ----------
    W : array_like of shape (d_out, d_in)
        Weights, finite.
    H : array_like of shape (d_in, d_in)
        Symmetric positive semi-definite Hessian, ``2 X^T X`` for calibration inputs
        ``X`` of shape (n, d_in) (see :func:`gptq_hessian`).
    bits, group_size, symmetric
        As in :func:`rtn_quantize`.
    damp : float
        Relative dampening (GPTQ's ``percdamp``), >= 0.

    Returns
    -------
    QuantizedTensor

    Raises
    ------
    TypeError, ValueError
        On a bad argument, or a Hessian that is not positive definite after
        dampening.

    Notes
    -----
    With ``H`` proportional to the identity ``U`` is diagonal, no error is fed
    forward, and the result equals :func:`rtn_quantize` exactly.
    """
    W, bits, group = _check_quant_args(W, bits, group_size, symmetric)
    d_in = W.shape[1]
    H = check_array("H", H, shape=(d_in, d_in), dtype=np.float64, finite=True)
    if not np.allclose(H, H.T, rtol=1e-6, atol=1e-8 * max(1.0, np.abs(H).max())):
        raise ValueError("H must be symmetric")
    if np.any(np.diag(H) < 0):
        raise ValueError("H must have a non-negative diagonal")
    damp = check_float("damp", damp, minimum=0.0)
    U, dead = _inverse_cholesky_upper(H, damp)
    W = W.copy()
    W[:, dead] = 0.0
    codes, scales, zeros = _kernels.gptq_columns(W, U, bits, group, symmetric)
    return _package(codes, scales, zeros, bits, group, symmetric, W.shape)


def relative_output_error(X, W, W_hat) -> float:
    r"""Relative error of a layer's outputs, ``||X W^T - X W_hat^T||_F / ||X W^T||_F``.

    Parameters
    ----------
    X : array_like of shape (n, d_in)
        Inputs, one per row.
    W, W_hat : array_like of shape (d_out, d_in)
        Original and approximated weights (``nn.Linear`` layout).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On mismatched shapes, or if ``X W^T`` is zero.
    """
    X = check_array("X", X, ndim=2, dtype=np.float64, finite=True, min_size=1)
    W = check_array("W", W, shape=(None, X.shape[1]), dtype=np.float64, finite=True)
    W_hat = check_array("W_hat", W_hat, shape=W.shape, dtype=np.float64, finite=True)
    reference = X @ W.T
    norm = np.linalg.norm(reference)
    if norm == 0:
        raise ValueError("X W^T is zero: the relative error is undefined")
    return float(np.linalg.norm(reference - X @ W_hat.T) / norm)


def pack_bits(codes, bits: int) -> np.ndarray:
    """Pack unsigned codes back to back into bytes, least significant bit first.

    Bit ``j`` of code ``k`` becomes bit ``(k * bits + j) % 8`` of byte
    ``(k * bits + j) // 8``; the last byte is padded with zeros.

    Parameters
    ----------
    codes : array_like of int, any shape
        Values in [0, 2^bits), read in C order (flattened).
    bits : int
        Bits per code, 1..16.

    Returns
    -------
    ndarray of uint8, shape (ceil(codes.size * bits / 8),)

    Raises
    ------
    TypeError, ValueError
        If the codes are not integers or do not fit in ``bits`` bits.
    """
    return _kernels.pack_bits(codes, bits)


def unpack_bits(packed, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: the first ``count`` codes of the stream.

    Parameters
    ----------
    packed : ndarray of uint8, shape (ceil(count * bits / 8),)
    bits : int
        Bits per code, 1..16.
    count : int
        Number of codes.

    Returns
    -------
    ndarray of shape (count,), uint8 when bits <= 8, else uint16
    """
    return _kernels.unpack_bits(packed, bits, count)

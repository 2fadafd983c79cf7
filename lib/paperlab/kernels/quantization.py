r"""Kernels of weight quantization: GPTQ's column loop and bit packing.

``gptq_columns`` is the sequential heart of GPTQ (Frantar et al., 2022,
arXiv:2210.17323, Algorithm 1 without the lazy blocks). Given a weight matrix
``W`` of shape (d_out, d_in) and the upper Cholesky factor ``U`` of the inverse
(dampened) Hessian, ``H^{-1} = U^T U``, it walks the input columns in order; column
``i`` is rounded to the grid, and its rounding error, scaled by ``1 / U[i, i]``, is
fed back into the columns not yet quantized:

.. math::

    e = (W_{:,i} - Q_{:,i}) / U_{ii}, \qquad
    W_{:,j} \leftarrow W_{:,j} - e\, U_{ij} \quad (j > i).

The grid of a row (or of a group of ``group_size`` consecutive columns of a row) is
computed from the *current*, already updated weights when the loop reaches the
group's first column, as GPTQ does. Grids (``_grid``, ``_quantize_one``) match
:func:`paperlab.quantization.rtn_quantize` bit for bit, so that with ``U`` diagonal
(Hessian proportional to the identity) GPTQ *is* round-to-nearest.

``pack_bits``/``unpack_bits`` write unsigned codes of ``bits`` bits each into an
LSB-first bit stream: bit ``j`` of code ``k`` is bit ``(k * bits + j) % 8`` of byte
``(k * bits + j) // 8``.

Measured on the book's 2-core machine (``python -m paperlab.bench --only gptq``,
``--only pack``, one thread, machine shared and busy): ``gptq_columns`` on a
192 x 192 layer takes 2.7 ms, 340x faster than its Python reference and 6x faster
than the NumPy column loop (one ``np.outer`` update per column); packing a million
3-bit codes takes 1.4 ms and unpacking 0.9 ms, 17x and 11x faster than the NumPy
formulations (``packbits``/``unpackbits`` over a bit matrix of eight times the
memory), so the Numba pair is what :mod:`paperlab.quantization` uses.
"""

from __future__ import annotations

import numba
import numpy as np

from paperlab.kernels import BenchCase
from paperlab.validation import check_array, check_int

__all__ = [
    "gptq_columns",
    "gptq_columns_reference",
    "pack_bits",
    "pack_bits_reference",
    "unpack_bits",
    "unpack_bits_reference",
    "benchmarks",
]


# ---------------------------------------------------------------------------------
# The quantization grid, shared by RTN and GPTQ


@numba.njit(cache=True)
def _grid(values, bits, symmetric):
    """Scale and zero point of the grid for a 1-D slice of weights.

    Symmetric: ``scale = max|w| / (2^(b-1) - 1)``, zero ``2^(b-1)``. Asymmetric:
    range ``[min(w, 0), max(w, 0)]`` over ``2^b - 1`` steps, zero the rounded
    position of 0. The scale is rounded to float32 (how it is stored); an all-zero
    slice gets scale 1.
    """
    low = 0.0
    if symmetric:
        top = 0.0
        for v in values:
            top = max(top, abs(v))
        scale = top / (2.0 ** (bits - 1) - 1.0)
        zero = 2.0 ** (bits - 1)
    else:
        low = 0.0
        high = 0.0
        for v in values:
            low = min(low, v)
            high = max(high, v)
        scale = (high - low) / (2.0**bits - 1.0)
        zero = 0.0
    scale = float(np.float32(scale))
    if scale == 0.0:
        scale = 1.0
    if not symmetric:
        zero = np.rint(-low / scale)
    return scale, zero


@numba.njit(cache=True)
def _quantize_one(w, scale, zero, maxq):
    """Code of one weight: ``clamp(rint(w / scale) + zero, 0, maxq)``."""
    return min(max(np.rint(w / scale) + zero, 0.0), maxq)


def _grid_python(values, bits: int, symmetric: bool) -> tuple[float, float]:
    """Plain-Python twin of ``_grid`` for the references."""
    low = 0.0
    if symmetric:
        top = max((abs(v) for v in values), default=0.0)
        scale = top / (2.0 ** (bits - 1) - 1.0)
        zero = 2.0 ** (bits - 1)
    else:
        low = min(0.0, *values)
        high = max(0.0, *values)
        scale = (high - low) / (2.0**bits - 1.0)
    scale = float(np.float32(scale))
    if scale == 0.0:
        scale = 1.0
    if not symmetric:
        zero = float(np.rint(-low / scale))
    return scale, zero


# ---------------------------------------------------------------------------------
# GPTQ


def _check_gptq(W, Hinv_upper, bits, group_size, symmetric):
    W = check_array("W", W, ndim=2, dtype=np.float64, finite=True)
    d_in = W.shape[1]
    Hinv_upper = check_array(
        "Hinv_upper", Hinv_upper, shape=(d_in, d_in), dtype=np.float64, finite=True
    )
    bits = check_int("bits", bits, minimum=2 if symmetric else 1, maximum=16)
    group_size = check_int("group_size", group_size, minimum=0)
    if not isinstance(symmetric, bool):
        raise TypeError(f"symmetric must be a bool, got {type(symmetric).__name__}")
    if d_in and np.any(np.diag(Hinv_upper) <= 0):
        raise ValueError("Hinv_upper must have a positive diagonal")
    group = d_in if group_size == 0 else group_size
    return np.array(W, order="C"), np.ascontiguousarray(Hinv_upper), bits, group


@numba.njit(cache=True)
def _gptq_kernel(W, U, bits, group, symmetric):
    d_out, d_in = W.shape
    maxq = 2.0**bits - 1.0
    n_groups = (d_in + group - 1) // group if d_in else 0
    codes = np.zeros((d_out, d_in), dtype=np.int64)
    scales = np.ones((d_out, n_groups))
    zeros = np.zeros((d_out, n_groups))
    for i in range(d_in):
        g = i // group
        if i % group == 0:
            for r in range(d_out):
                scales[r, g], zeros[r, g] = _grid(
                    W[r, i : min(i + group, d_in)], bits, symmetric
                )
        inv_diag = 1.0 / U[i, i]
        for r in range(d_out):
            scale, zero = scales[r, g], zeros[r, g]
            code = _quantize_one(W[r, i], scale, zero, maxq)
            codes[r, i] = int(code)
            err = (W[r, i] - (code - zero) * scale) * inv_diag
            row = W[r]
            for j in range(i + 1, d_in):
                row[j] -= err * U[i, j]
    return codes, scales, zeros


def gptq_columns(
    W: np.ndarray,
    Hinv_upper: np.ndarray,
    bits: int,
    group_size: int = 0,
    symmetric: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GPTQ's column-by-column quantization with error feedback (Numba).

    Parameters
    ----------
    W : ndarray of shape (d_out, d_in)
        Weights (converted to float64; not modified).
    Hinv_upper : ndarray of shape (d_in, d_in)
        Upper Cholesky factor ``U`` of the inverse dampened Hessian,
        ``H^{-1} = U^T U``, with a positive diagonal.
    bits : int
        Bits per code: 2..16 when symmetric, 1..16 otherwise.
    group_size : int
        Columns per grid; 0 means one grid per row.
    symmetric : bool
        Symmetric grid (zero point ``2^(bits-1)``) or asymmetric (min/max).

    Returns
    -------
    codes : ndarray of int64, shape (d_out, d_in), values in [0, 2^bits)
    scales, zeros : ndarray of float64, shape (d_out, n_groups)
        Grid of each row and group; the weight is ``(code - zero) * scale``.

    Raises
    ------
    TypeError, ValueError
        On bad shapes, non-finite values or settings out of range.
    """
    W, U, bits, group = _check_gptq(W, Hinv_upper, bits, group_size, symmetric)
    if W.shape[1] == 0:
        return (
            np.zeros(W.shape, np.int64),
            np.ones((W.shape[0], 0)),
            np.zeros((W.shape[0], 0)),
        )
    return _gptq_kernel(W, U, bits, group, symmetric)


def gptq_columns_reference(
    W: np.ndarray,
    Hinv_upper: np.ndarray,
    bits: int,
    group_size: int = 0,
    symmetric: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain-Python loops computing exactly what :func:`gptq_columns` computes."""
    W, U, bits, group = _check_gptq(W, Hinv_upper, bits, group_size, symmetric)
    d_out, d_in = W.shape
    maxq = 2.0**bits - 1.0
    n_groups = -(-d_in // group) if d_in else 0
    rows = W.tolist()
    codes = np.zeros((d_out, d_in), dtype=np.int64)
    scales = np.ones((d_out, n_groups))
    zeros = np.zeros((d_out, n_groups))
    for i in range(d_in):
        g = i // group
        if i % group == 0:
            for r in range(d_out):
                scales[r, g], zeros[r, g] = _grid_python(
                    rows[r][i : i + group], bits, symmetric
                )
        for r in range(d_out):
            scale, zero = float(scales[r, g]), float(zeros[r, g])
            code = min(max(float(np.rint(rows[r][i] / scale)) + zero, 0.0), maxq)
            codes[r, i] = int(code)
            err = (rows[r][i] - (code - zero) * scale) * (1.0 / U[i, i])
            for j in range(i + 1, d_in):
                rows[r][j] -= err * U[i, j]
    return codes, scales, zeros


def _gptq_numpy(
    W: np.ndarray, U: np.ndarray, bits: int, group: int, symmetric: bool
) -> np.ndarray:
    """NumPy column loop (one rank-1 update per column); returns the codes."""
    W = W.copy()
    d_out, d_in = W.shape
    maxq = 2.0**bits - 1.0
    codes = np.zeros((d_out, d_in), dtype=np.int64)
    for i in range(d_in):
        if i % group == 0:
            block = W[:, i : i + group]
            if symmetric:
                scale = np.abs(block).max(1) / (2.0 ** (bits - 1) - 1.0)
                zero = np.full(d_out, 2.0 ** (bits - 1))
            else:
                low = np.minimum(block.min(1), 0.0)
                scale = (np.maximum(block.max(1), 0.0) - low) / maxq
            scale = scale.astype(np.float32).astype(np.float64)
            scale[scale == 0] = 1.0
            if not symmetric:
                zero = np.rint(-low / scale)
        code = np.clip(np.rint(W[:, i] / scale) + zero, 0, maxq)
        codes[:, i] = code
        err = (W[:, i] - (code - zero) * scale) / U[i, i]
        W[:, i + 1 :] -= np.outer(err, U[i, i + 1 :])
    return codes


# ---------------------------------------------------------------------------------
# Bit packing


def _check_pack(codes, bits) -> tuple[np.ndarray, int]:
    bits = check_int("bits", bits, minimum=1, maximum=16)
    codes = check_array("codes", codes)
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise TypeError(f"codes must hold integers, got dtype {codes.dtype}")
    codes = codes.ravel()
    if codes.size and (codes.min() < 0 or codes.max() >= 2**bits):
        raise ValueError(f"codes must lie in [0, 2**{bits}) = [0, {2**bits - 1}]")
    return np.ascontiguousarray(codes, dtype=np.uint32), bits


def _check_unpack(packed, bits, count) -> tuple[np.ndarray, int, int]:
    bits = check_int("bits", bits, minimum=1, maximum=16)
    count = check_int("count", count, minimum=0)
    packed = check_array("packed", packed, ndim=1)
    if packed.dtype != np.uint8:
        raise TypeError(f"packed must have dtype uint8, got {packed.dtype}")
    need = -(-count * bits // 8)
    if packed.size != need:
        raise ValueError(
            f"packed must hold ceil(count * bits / 8) = {need} bytes, got {packed.size}"
        )
    return np.ascontiguousarray(packed), bits, count


def _code_dtype(bits: int):
    return np.uint8 if bits <= 8 else np.uint16


@numba.njit(cache=True)
def _pack_kernel(codes, bits):
    out = np.zeros((codes.size * bits + 7) // 8, dtype=np.uint8)
    buffer = np.uint64(0)  # bits waiting to be written, oldest lowest
    filled = 0
    pos = 0
    for code in codes:
        buffer |= np.uint64(code) << np.uint64(filled)
        filled += bits
        while filled >= 8:
            out[pos] = np.uint8(buffer & np.uint64(0xFF))
            buffer >>= np.uint64(8)
            filled -= 8
            pos += 1
    if filled > 0:
        out[pos] = np.uint8(buffer & np.uint64(0xFF))
    return out


@numba.njit(cache=True)
def _unpack_kernel(packed, bits, count, out):
    mask = np.uint64((1 << bits) - 1)
    buffer = np.uint64(0)
    filled = 0
    pos = 0
    for k in range(count):
        while filled < bits:
            buffer |= np.uint64(packed[pos]) << np.uint64(filled)
            filled += 8
            pos += 1
        out[k] = buffer & mask
        buffer >>= np.uint64(bits)
        filled -= bits
    return out


def pack_bits(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack unsigned codes into an LSB-first byte stream (Numba).

    Parameters
    ----------
    codes : array_like of int, any shape
        Values in [0, 2^bits), read in C order.
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
    codes, bits = _check_pack(codes, bits)
    return _pack_kernel(codes, bits)


def unpack_bits(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Read ``count`` codes of ``bits`` bits back from :func:`pack_bits`'s stream.

    Returns
    -------
    ndarray of shape (count,), uint8 when bits <= 8, else uint16
    """
    packed, bits, count = _check_unpack(packed, bits, count)
    return _unpack_kernel(packed, bits, count, np.empty(count, _code_dtype(bits)))


def pack_bits_reference(codes: np.ndarray, bits: int) -> np.ndarray:
    """Plain-Python loops computing exactly what :func:`pack_bits` computes."""
    codes, bits = _check_pack(codes, bits)
    out = bytearray(-(-codes.size * bits // 8))
    for k, code in enumerate(codes.tolist()):
        for j in range(bits):
            if (code >> j) & 1:
                position = k * bits + j
                out[position // 8] |= 1 << (position % 8)
    return np.frombuffer(bytes(out), dtype=np.uint8).copy()


def unpack_bits_reference(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Plain-Python loops computing exactly what :func:`unpack_bits` computes."""
    packed, bits, count = _check_unpack(packed, bits, count)
    stream = packed.tolist()
    out = np.zeros(count, dtype=_code_dtype(bits))
    for k in range(count):
        code = 0
        for j in range(bits):
            position = k * bits + j
            code |= ((stream[position // 8] >> (position % 8)) & 1) << j
        out[k] = code
    return out


def _pack_numpy(codes: np.ndarray, bits: int) -> np.ndarray:
    """NumPy formulation: a (count, bits) matrix of bits, then ``np.packbits``."""
    shifts = np.arange(bits, dtype=np.uint32)
    bit_matrix = ((codes.astype(np.uint32)[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bit_matrix.ravel(), bitorder="little")


def _unpack_numpy(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """NumPy formulation: ``np.unpackbits`` then a weighted sum of each row's bits."""
    bit_matrix = np.unpackbits(packed, count=count * bits, bitorder="little")
    weights = (1 << np.arange(bits)).astype(np.uint32)
    values = bit_matrix.reshape(count, bits).astype(np.uint32) @ weights
    return values.astype(_code_dtype(bits))


# ---------------------------------------------------------------------------------
# Benchmarks


def benchmarks() -> list[BenchCase]:
    """GPTQ on a 192 x 192 layer (4 bits, groups of 32); packing a million 3-bit
    codes and unpacking them."""
    rng = np.random.default_rng(0)
    d = 192
    W = rng.standard_normal((d, d))
    X = rng.standard_normal((4 * d, d)) @ rng.standard_normal((d, d))
    H = 2 * X.T @ X + 0.01 * np.eye(d)
    U = np.linalg.cholesky(np.linalg.inv(H)).T
    n_codes, bits = 1_000_000, 3
    codes = rng.integers(0, 2**bits, n_codes).astype(np.uint8)
    packed = pack_bits(codes, bits)
    pack_size = f"{n_codes} codes, bits={bits}"
    return [
        BenchCase(
            name="gptq_columns",
            size=f"d_out=d_in={d}, bits=4, group_size=32",
            kernel=lambda: gptq_columns(W, U, 4, 32),
            reference=lambda: gptq_columns_reference(W, U, 4, 32),
            numpy=lambda: _gptq_numpy(W, U, 4, 32, True),
        ),
        BenchCase(
            name="pack_bits",
            size=pack_size,
            kernel=lambda: pack_bits(codes, bits),
            reference=lambda: pack_bits_reference(codes, bits),
            numpy=lambda: _pack_numpy(codes, bits),
            bytes_moved=codes.nbytes + packed.nbytes,
        ),
        BenchCase(
            name="unpack_bits",
            size=pack_size,
            kernel=lambda: unpack_bits(packed, bits, n_codes),
            reference=lambda: unpack_bits_reference(packed, bits, n_codes),
            numpy=lambda: _unpack_numpy(packed, bits, n_codes),
            bytes_moved=codes.nbytes + packed.nbytes,
        ),
    ]

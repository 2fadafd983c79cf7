r"""N:M structured pruning plus 4-bit weights, a packed kernel and a systolic model.

Hsieh, Teng, Hong and Wu, "FPGA Co-Design for Efficient N:M Sparse and Quantized Model
Inference", arXiv 2512.24713v1 (the later v2 is withdrawn).

The pipeline compresses a linear layer's weight ``W`` (``nn.Linear`` layout, shape
(d_out, d_in), ``y = W x``) offline and multiplies with the compressed form online:

1. **N:M pruning.** Cut every row into groups of ``m`` consecutive input weights and
   keep the ``n`` of largest magnitude in each group (2:4 is what sparse tensor cores
   execute); the rest become zero.
2. **Low-bit quantization.** Round each kept weight to a symmetric ``bits``-bit grid,
   ``w ~ (q - 2^{bits-1}) s``, one float16 scale ``s`` per row and block of
   ``group_size`` input columns.
3. **Packing.** Store per row the kept codes (``bits`` each), each kept weight's
   position inside its group (``ceil(log2 m)`` bits) and the scales: for 2:4 INT4 with
   64-column blocks, ``(2*4 + 2*2) / 4 + 16 / 64 = 3.25`` bits per weight against 16
   for float16.
4. **Inference** decodes codes and positions inside the matrix-vector product and
   skips pruned weights (:func:`paperlab.kernels.nm_sparse.nm_matvec`), so half the
   multiply-accumulates of a dense product remain.
5. **Hardware model.** A ``P x P`` systolic array built for the sparse layout streams
   only the kept weights along the reduction dimension; :func:`systolic_cycles` counts
   its cycles analytically, with an overhead for decoding positions.

The experiment measures the bytes of the packed arrays of a 4096 x 4096 layer against
the closed-form bit count, checks the packed kernel against dequantize-then-dense,
measures digits-MLP accuracy after 2:4 + INT4 against a random 2:4 mask, times the
kernel against a dense float32 matvec (reported only) and evaluates the cycle model.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np

from paperlab import plotting
from paperlab.claims import require
from paperlab.digits import load_digits_split, mlp_accuracy, pretrained_digits_mlp
from paperlab.kernels import nm_sparse as kernels
from paperlab.quantization import pack_bits, rtn_quantize, unpack_bits
from paperlab.timing import median_time
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "RULES",
    "VARIANTS",
    "PATTERNS",
    "NMPacked",
    "select_kept",
    "pack_nm",
    "closed_form_bits",
    "storage_table",
    "StorageRow",
    "compress_mlp",
    "systolic_cycles",
    "Config",
    "Result",
    "run_experiment",
    "check_claim",
    "explore_grid",
    "plot_storage",
    "plot_accuracy",
    "plot_systolic",
    "plot_explore",
    "ExploreGrid",
    "ExplorePoint",
]

log = logging.getLogger(__name__)

RULES = ("magnitude", "random")
VARIANTS = RULES  # the paper's mechanism, and the control that ignores magnitudes
PATTERNS = ((1, 4), (2, 4), (4, 8))
SCALE_BITS = 16  # scales are stored as float16

# The claim's thresholds (see check_claim).
MIN_COMPRESSION = 4.0  # 2:4 INT4 against float16
MAX_KERNEL_REL_ERROR = 1e-4
MAX_ACCURACY_DROP = 0.03  # magnitude 2:4 + INT4 against dense, mean over seeds
MIN_CONTROL_DROP = 0.10  # random 2:4 mask + INT4 against dense, mean over seeds


# ------------------------------------------------------------------ the format


@dataclass(frozen=True)
class NMPacked:
    """A weight matrix in the packed N:M low-bit layout (see module docstring).

    Build one with :func:`pack_nm`. Every row's streams start on a byte boundary.
    """

    values: np.ndarray  # uint8 (rows, ceil(k * bits / 8)): kept codes, LSB first
    positions: np.ndarray  # uint8 (rows, ceil(k * ceil(log2 m) / 8)): in-group index
    scales: np.ndarray  # float16 (rows, ceil(cols / group_size))
    n: int  # weights kept per group
    m: int  # group length
    bits: int  # bits per code; zero point 2**(bits - 1), not stored
    group_size: int  # input columns per scale
    shape: tuple[int, int]  # (rows, cols) of the dense matrix

    @property
    def kept_per_row(self) -> int:
        """``k = cols * n / m``."""
        return self.shape[1] // self.m * self.n

    def stored_bytes(self) -> dict[str, int]:
        """Bytes of each stored array, measured from the arrays themselves."""
        return {
            "values": int(self.values.nbytes),
            "indices": int(self.positions.nbytes),
            "scales": int(self.scales.nbytes),
        }

    def codes(self) -> np.ndarray:
        """The kept codes, uint8 array of shape (rows, k)."""
        return _unpack_rows(self.values, self.bits, self.kept_per_row)

    def kept_positions(self) -> np.ndarray:
        """Each kept weight's position inside its group, shape (rows, k)."""
        width = kernels.index_bits(self.m)
        return _unpack_rows(self.positions, width, self.kept_per_row)

    def dequantize(self) -> np.ndarray:
        """The dense matrix the format stands for, float32 of shape ``shape``.

        Computed with :func:`paperlab.quantization.unpack_bits`, independently of the
        kernel's own bit reading, so it can serve as the kernel's reference.
        """
        rows, cols = self.shape
        k = self.kept_per_row
        block = np.arange(k) // (self.group_size // self.m * self.n)
        scales = self.scales.astype(np.float64)[:, block]
        weights = (self.codes().astype(np.float64) - 2 ** (self.bits - 1)) * scales
        columns = (np.arange(k) // self.n) * self.m + self.kept_positions()
        W = np.zeros((rows, cols), dtype=np.float32)
        np.put_along_axis(W, columns.astype(np.int64), weights.astype(np.float32), 1)
        return W

    def matvec(self, x) -> np.ndarray:
        """``W_hat x`` with the packed kernel; ``x`` of shape (cols,)."""
        return kernels.nm_matvec(
            self.values,
            self.positions,
            self.scales.astype(np.float32),
            x,
            self.n,
            self.m,
            self.bits,
            self.group_size,
        )


def _pack_rows(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack each row of ``codes`` into its own byte-aligned LSB-first stream.

    A row whose bits do not fill whole bytes is padded with zero codes (counted in
    the storage, as in :func:`closed_form_bits`).
    """
    rows, k = codes.shape
    pad = next(p for p in range(8) if (k + p) * bits % 8 == 0)
    padded = np.zeros((rows, k + pad), dtype=codes.dtype)
    padded[:, :k] = codes
    return pack_bits(padded, bits).reshape(rows, -1)


def _unpack_rows(stream: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`_pack_rows`: the first ``count`` codes of every row."""
    rows, row_bytes = stream.shape
    per_row = row_bytes * 8 // bits
    flat = unpack_bits(np.ascontiguousarray(stream).ravel(), bits, rows * per_row)
    return flat.reshape(rows, per_row)[:, :count]


def _check_pattern(n, m, cols: int) -> tuple[int, int]:
    m = check_int("m", m, minimum=2, maximum=16)
    n = check_int("n", n, minimum=1, maximum=m - 1)
    if cols % m:
        raise ValueError(f"W's column count ({cols}) must be a multiple of m={m}")
    return n, m


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    return rng


def select_kept(
    W, n: int, m: int, rule: str = "magnitude", rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Choose the ``n`` weights of every group of ``m`` that survive pruning.

    Parameters
    ----------
    W : array_like of float, shape (rows, cols)
        Finite weights; ``cols`` a multiple of ``m``.
    n, m : int
        The pattern, ``1 <= n < m <= 16``.
    rule : {"magnitude", "random"}
        ``magnitude``: the ``n`` largest ``|w|`` of each group (the paper's rule,
        :func:`paperlab.kernels.nm_sparse.nm_select`); ``random``: ``n`` positions
        drawn uniformly, the control that ignores the weights.
    rng : numpy.random.Generator
        Needed for ``random``.

    Returns
    -------
    values : ndarray of float32, shape (rows, cols * n // m)
        Kept weights, group by group, in increasing position inside a group.
    positions : ndarray of uint8, same shape
        Their positions inside their groups.
    """
    W = check_array("W", W, ndim=2, dtype=np.float32, finite=True, min_size=1)
    n, m = _check_pattern(n, m, W.shape[1])
    rule = check_choice("rule", rule, RULES)
    if rule == "magnitude":
        return kernels.nm_select(W, n, m)
    rng = _check_rng(rng)
    rows, cols = W.shape
    draws = rng.random((rows, cols // m, m)).argsort(axis=2)[:, :, :n]
    positions = np.sort(draws, axis=2)
    groups = W.reshape(rows, cols // m, m)
    values = np.take_along_axis(groups, positions, axis=2)
    return values.reshape(rows, -1), positions.reshape(rows, -1).astype(np.uint8)


def pack_nm(
    W,
    n: int = 2,
    m: int = 4,
    bits: int = 4,
    group_size: int = 64,
    rule: str = "magnitude",
    rng: np.random.Generator | None = None,
) -> NMPacked:
    """Prune ``W`` to N:M, quantize the survivors and pack them (steps 1-3).

    The kept values of each row are quantized with
    :func:`paperlab.quantization.rtn_quantize` (symmetric, one grid per
    ``group_size`` input columns, i.e. ``group_size * n / m`` kept values); the
    scales are then stored as float16 and the codes, with the positions, packed by
    :func:`paperlab.quantization.pack_bits`.

    Parameters
    ----------
    W : array_like of float, shape (rows, cols)
        ``cols`` a multiple of ``m`` and of ``group_size``.
    n, m : int
        The pattern, ``1 <= n < m <= 16``.
    bits : int
        Bits per code, 2..8.
    group_size : int
        Input columns per scale; a multiple of ``m``.
    rule, rng
        As in :func:`select_kept`.

    Returns
    -------
    NMPacked

    Raises
    ------
    TypeError, ValueError
        On a bad argument, or scales that overflow float16.
    """
    W = check_array("W", W, ndim=2, dtype=np.float32, finite=True, min_size=1)
    n, m = _check_pattern(n, m, W.shape[1])
    bits = check_int("bits", bits, minimum=2, maximum=8)
    group_size = check_int("group_size", group_size, minimum=m)
    if group_size % m or W.shape[1] % group_size:
        raise ValueError(
            f"group_size must be a multiple of m={m} that divides the column count "
            f"{W.shape[1]}, got {group_size}"
        )
    values, positions = select_kept(W, n, m, rule, rng)
    quantized = rtn_quantize(values, bits, group_size=group_size // m * n)
    scales = quantized.scales.astype(np.float16)
    if not np.all(np.isfinite(scales)):
        raise ValueError("W's magnitudes overflow float16 scales")
    # Codes were rounded with the float32 scale; the float16 one is what is stored
    # and what the dequantized weights use.
    quantized = replace(quantized, scales=scales.astype(np.float32))
    return NMPacked(
        values=_pack_rows(quantized.codes, bits),
        positions=_pack_rows(positions, kernels.index_bits(m)),
        scales=scales,
        n=n,
        m=m,
        bits=bits,
        group_size=group_size,
        shape=(int(W.shape[0]), int(W.shape[1])),
    )


# ------------------------------------------------------------- storage accounting

FORMATS = ("dense_fp16", "dense_int", "nm_fp16", "nm_int")


def _row_bits(count: int, width: int) -> int:
    """Bits of one byte-aligned row stream of ``count`` codes of ``width`` bits."""
    return -(-count * width // 8) * 8


def closed_form_bits(
    fmt: str, rows: int, cols: int, n: int, m: int, bits: int, group_size: int
) -> dict[str, int]:
    """Bits a format needs by formula, per component (values, indices, scales).

    With ``k = cols * n / m`` kept weights per row, ``B = ceil(cols / group_size)``
    scale blocks and ``row(c, w) = 8 ceil(c w / 8)`` (rows start on a byte):

    - ``dense_fp16``: values ``rows * cols * 16``;
    - ``dense_int``: values ``rows * row(cols, bits)``, scales ``rows * B * 16``;
    - ``nm_fp16``: values ``rows * k * 16``, indices
      ``rows * row(k, ceil(log2 m))``;
    - ``nm_int``: values ``rows * row(k, bits)``, indices as above, scales as
      ``dense_int``.

    Returns
    -------
    dict with keys "values", "indices", "scales" (bits, zero where absent)
    """
    fmt = check_choice("fmt", fmt, FORMATS)
    rows = check_int("rows", rows, minimum=1)
    cols = check_int("cols", cols, minimum=1)
    n, m = _check_pattern(n, m, cols)
    bits = check_int("bits", bits, minimum=2, maximum=8)
    group_size = check_int("group_size", group_size, minimum=1)
    k = cols // m * n
    scales = rows * -(-cols // group_size) * SCALE_BITS
    indices = rows * _row_bits(k, kernels.index_bits(m))
    table = {
        "dense_fp16": (rows * cols * 16, 0, 0),
        "dense_int": (rows * _row_bits(cols, bits), 0, scales),
        "nm_fp16": (rows * k * 16, indices, 0),
        "nm_int": (rows * _row_bits(k, bits), indices, scales),
    }
    values_bits, index_bits, scale_bits = table[fmt]
    return {"values": values_bits, "indices": index_bits, "scales": scale_bits}


@dataclass(frozen=True)
class StorageRow:
    """Measured and closed-form storage of one format of one layer."""

    fmt: str  # one of FORMATS
    label: str  # how tables name it, e.g. "2:4 INT4"
    measured_bytes: dict[str, int]  # per component, from the arrays' nbytes
    formula_bits: dict[str, int]  # per component, from closed_form_bits

    @property
    def total_bytes(self) -> int:
        """All components, measured."""
        return sum(self.measured_bytes.values())

    @property
    def total_formula_bits(self) -> int:
        """All components, by formula."""
        return sum(self.formula_bits.values())


def _format_labels(n: int, m: int, bits: int) -> dict[str, str]:
    return {
        "dense_fp16": "dense fp16",
        "dense_int": f"dense INT{bits}",
        "nm_fp16": f"{n}:{m} fp16",
        "nm_int": f"{n}:{m} INT{bits}",
    }


def storage_table(
    W,
    n: int = 2,
    m: int = 4,
    bits: int = 4,
    group_size: int = 64,
    packed: NMPacked | None = None,
) -> tuple[StorageRow, ...]:
    """Build the four formats of ``W`` and measure the bytes of their arrays.

    ``dense_fp16``: ``W`` as float16. ``dense_int``: every weight quantized
    (:func:`paperlab.quantization.rtn_quantize`, ``group_size`` columns per scale)
    and packed. ``nm_fp16``: magnitude N:M, kept values in float16 plus packed
    positions. ``nm_int``: :func:`pack_nm`.

    Parameters
    ----------
    W : array_like of float, shape (rows, cols)
    n, m, bits, group_size
        As in :func:`pack_nm`.
    packed : NMPacked, optional
        ``pack_nm(W, n, m, bits, group_size)`` if already computed (it is checked
        against the other arguments, not recomputed).

    Returns
    -------
    tuple of StorageRow, in the order of FORMATS
    """
    W = check_array("W", W, ndim=2, dtype=np.float32, finite=True, min_size=1)
    rows, cols = W.shape
    if packed is None:
        packed = pack_nm(W, n, m, bits, group_size)
    check_instance("packed", packed, NMPacked)
    if (packed.n, packed.m, packed.bits, packed.group_size, packed.shape) != (
        n,
        m,
        bits,
        group_size,
        (rows, cols),
    ):
        raise ValueError("packed must be pack_nm(W, n, m, bits, group_size)")
    dense_q = rtn_quantize(W, bits, group_size=group_size)
    values, positions = kernels.nm_select(W, n, m)
    measured = {
        "dense_fp16": {"values": W.astype(np.float16).nbytes},
        "dense_int": {
            "values": _pack_rows(dense_q.codes, bits).nbytes,
            "scales": dense_q.scales.astype(np.float16).nbytes,
        },
        "nm_fp16": {
            "values": values.astype(np.float16).nbytes,
            "indices": _pack_rows(positions, kernels.index_bits(m)).nbytes,
        },
        "nm_int": packed.stored_bytes(),
    }
    labels = _format_labels(n, m, bits)
    return tuple(
        StorageRow(
            fmt=fmt,
            label=labels[fmt],
            measured_bytes={k: int(v) for k, v in measured[fmt].items()},
            formula_bits=closed_form_bits(fmt, rows, cols, n, m, bits, group_size),
        )
        for fmt in FORMATS
    )


# ----------------------------------------------------------------- the digits MLP


def compress_mlp(
    layers,
    n: int = 2,
    m: int = 4,
    bits: int | None = 4,
    group_size: int = 64,
    rule: str = "magnitude",
    rng: np.random.Generator | None = None,
    prune: bool = True,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Compress the hidden layers of an MLP; the output layer stays float32.

    Each hidden weight matrix is replaced by what its compressed form stands for:
    :meth:`NMPacked.dequantize` of :func:`pack_nm` (``prune`` and ``bits``), or only
    the pruned matrix (``bits=None``), or only the quantized one (``prune=False``).

    Parameters
    ----------
    layers : list of (W, b)
        ``W`` of shape (d_out, d_in), ``d_in`` a multiple of ``group_size``.
    n, m, bits, group_size, rule, rng
        As in :func:`pack_nm`; ``bits=None`` skips quantization.
    prune : bool
        ``False`` skips pruning (dense quantization, ``bits`` required).

    Returns
    -------
    list of (W, b), float32
    """
    if not isinstance(layers, (list, tuple)) or len(layers) < 2:
        raise TypeError("layers must be a list of at least two (W, b) pairs")
    check_instance("prune", prune, bool)
    if bits is None and not prune:
        raise ValueError("bits=None and prune=False would leave the layers unchanged")
    out = []
    for i, (W, b) in enumerate(layers):
        W = check_array(f"layers[{i}] W", W, ndim=2, dtype=np.float32, finite=True)
        if i < len(layers) - 1:
            W = _compress_matrix(W, n, m, bits, group_size, rule, rng, prune)
        out.append((W, np.asarray(b, dtype=np.float32)))
    return out


def _compress_matrix(W, n, m, bits, group_size, rule, rng, prune) -> np.ndarray:
    if not prune:
        return rtn_quantize(W, bits, group_size=group_size).dequantize()
    if bits is not None:
        return pack_nm(W, n, m, bits, group_size, rule, rng).dequantize()
    values, positions = select_kept(W, n, m, rule, rng)
    rows, cols = W.shape
    columns = (np.arange(values.shape[1]) // n) * m + positions.astype(np.int64)
    pruned = np.zeros((rows, cols), dtype=np.float32)
    np.put_along_axis(pruned, columns, values, axis=1)
    return pruned


# ----------------------------------------------------------- the systolic model


def systolic_cycles(
    M: int,
    K: int,
    N: int,
    P: int,
    sparsity_n: int = 1,
    sparsity_m: int = 1,
    decode_overhead: float = 0.0,
) -> int:
    r"""Cycles of an output-stationary ``P x P`` systolic array for ``C = A B``.

    ``A`` is (M, K) activations, ``B`` is (K, N) weights, N:M sparse along ``K``
    (``sparsity_n == sparsity_m`` means dense). Each of the
    ``ceil(M/P) ceil(N/P)`` output tiles streams the kept reduction steps, each
    costing ``1 + decode_overhead`` cycles when sparse (the positions must be decoded
    to pick the matching activations), then fills and drains the array's skew:

    .. math::  \text{cycles} = \lceil M/P \rceil \lceil N/P \rceil
               \left( \lceil K \tfrac{n}{m} (1 + o) \rceil + 2(P - 1) \right).

    An analytic model of our own, not the paper's measured design.

    Parameters
    ----------
    M, K, N : int
        Matrix sizes, at least 1 (for a layer ``y = x W^T``: tokens, d_in, d_out).
    P : int
        Array side, at least 1.
    sparsity_n, sparsity_m : int
        The pattern, ``1 <= n <= m``.
    decode_overhead : float
        Extra cycles per sparse reduction step, ``o >= 0``.

    Returns
    -------
    int
    """
    M = check_int("M", M, minimum=1)
    K = check_int("K", K, minimum=1)
    N = check_int("N", N, minimum=1)
    P = check_int("P", P, minimum=1)
    sparsity_m = check_int("sparsity_m", sparsity_m, minimum=1)
    sparsity_n = check_int("sparsity_n", sparsity_n, minimum=1, maximum=sparsity_m)
    decode_overhead = check_float("decode_overhead", decode_overhead, minimum=0.0)
    tiles = math.ceil(M / P) * math.ceil(N / P)
    if sparsity_n == sparsity_m:
        steps = K
    else:
        kept = math.ceil(K * sparsity_n / sparsity_m)
        steps = math.ceil(kept * (1.0 + decode_overhead))
    return tiles * (steps + 2 * (P - 1))


# ----------------------------------------------------------------- the experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the variant: magnitude N:M (the paper's) or a random mask."""

    variant: str = "magnitude"  # "magnitude" (mechanism) or "random" (control)
    n: int = 2  # weights kept per group
    m: int = 4  # group length
    bits: int = 4  # bits per kept weight
    group_size: int = 64  # input columns per float16 scale
    layer_rows: int = 1024  # the storage / kernel layer, (rows, cols); bits per
    #                         weight do not depend on rows (4096 x 4096 takes ~8 s)
    layer_cols: int = 4096
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # digits MLPs, one per seed
    epochs: int = 10  # MLP training epochs
    timing_repeats: int = 5  # timed calls per matvec (medians reported)
    array_size: int = 32  # P of the P x P systolic array
    tokens: int = 256  # M of the modelled layer product (K, N = layer_cols, _rows)
    decode_overhead: float = 0.1  # extra cycles per sparse reduction step

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, VARIANTS)
        m = check_int("m", self.m, minimum=2, maximum=16)
        check_int("n", self.n, minimum=1, maximum=m - 1)
        check_int("bits", self.bits, minimum=2, maximum=8)
        group = check_int("group_size", self.group_size, minimum=m)
        cols = check_int("layer_cols", self.layer_cols, minimum=group)
        check_int("layer_rows", self.layer_rows, minimum=1)
        if group % m or cols % group or 64 % group:
            raise ValueError(
                f"group_size must be a multiple of m={m} dividing 64 and layer_cols "
                f"({cols}), got {group}"
            )
        if not isinstance(self.seeds, tuple) or not self.seeds:
            raise TypeError("seeds must be a non-empty tuple of ints")
        for i, seed in enumerate(self.seeds):
            check_int(f"seeds[{i}]", seed, minimum=0)
        check_int("epochs", self.epochs, minimum=1)
        check_int("timing_repeats", self.timing_repeats, minimum=1)
        check_int("array_size", self.array_size, minimum=1)
        check_int("tokens", self.tokens, minimum=1)
        check_float("decode_overhead", self.decode_overhead, minimum=0.0)


@dataclass(frozen=True)
class Result:
    """What :func:`run_experiment` measured."""

    config: Config
    storage: tuple[StorageRow, ...]  # the four formats of the layer
    kernel_rel_error: float  # packed kernel vs dequantize-then-dense, worst layer
    dense_acc: tuple[float, ...]  # per seed: the float32 MLP
    quant_only_acc: tuple[float, ...]  # per seed: INT, no pruning
    prune_only_acc: tuple[float, ...]  # per seed: magnitude N:M, float32
    compressed_acc: tuple[float, ...]  # per seed: the variant's N:M rule + INT
    control_acc: tuple[float, ...]  # per seed: random N:M mask + INT
    dense_ms: float  # median ms of the dense float32 Numba matvec
    packed_ms: float  # median ms of the packed N:M kernel
    dense_macs: int  # multiply-accumulates of one dense matvec
    packed_macs: int  # ... of one packed matvec
    dense_cycles: int  # systolic model, dense
    sparse_cycles: int  # systolic model, N:M with decode overhead
    extra: dict = field(default_factory=dict)

    def storage_row(self, fmt: str) -> StorageRow:
        """The row of format ``fmt``."""
        fmt = check_choice("fmt", fmt, FORMATS)
        return next(row for row in self.storage if row.fmt == fmt)

    @property
    def compression(self) -> float:
        """float16 bytes over N:M low-bit bytes, measured."""
        return self.storage_row("dense_fp16").total_bytes / max(
            self.storage_row("nm_int").total_bytes, 1
        )

    @property
    def speed_ratio(self) -> float:
        """Dense matvec time over packed matvec time (>1: the packed one is faster)."""
        return self.dense_ms / self.packed_ms

    @property
    def systolic_speedup(self) -> float:
        """Modelled dense cycles over sparse cycles."""
        return self.dense_cycles / self.sparse_cycles


def _kernel_error(packed: NMPacked, x: np.ndarray) -> float:
    """Relative error of the packed kernel against dequantize-then-dense (float64)."""
    reference = packed.dequantize().astype(np.float64) @ x.astype(np.float64)
    got = packed.matvec(x).astype(np.float64)
    return float(np.linalg.norm(got - reference) / np.linalg.norm(reference))


def _accuracies(config: Config, seed: int) -> dict[str, float]:
    """Test accuracy of the dense MLP of ``seed`` and of its compressed variants."""
    _, X_test, _, y_test = load_digits_split(seed)
    layers = pretrained_digits_mlp(seed, config.epochs)
    rng = np.random.default_rng([seed, 53])
    args = (config.n, config.m)
    variants = {
        "dense": layers,
        "quant_only": compress_mlp(layers, *args, config.bits, config.group_size,
                                   prune=False),
        "prune_only": compress_mlp(layers, *args, None, config.group_size),
        "compressed": compress_mlp(layers, *args, config.bits, config.group_size,
                                   config.variant, rng),
        "control": compress_mlp(layers, *args, config.bits, config.group_size,
                                "random", rng),
    }  # fmt: skip
    return {k: mlp_accuracy(v, X_test, y_test) for k, v in variants.items()}


def _timings(packed: NMPacked, W: np.ndarray, x: np.ndarray, repeats: int):
    scales = packed.scales.astype(np.float32)
    args = (packed.values, packed.positions, scales, x)
    tail = (packed.n, packed.m, packed.bits, packed.group_size)
    dense = median_time(lambda: kernels.dense_matvec(W, x), repeats=repeats)
    sparse = median_time(lambda: kernels.nm_matvec(*args, *tail), repeats=repeats)
    return dense.median * 1e3, sparse.median * 1e3


def run_experiment(config: Config) -> Result:
    """Storage, kernel check, digits accuracy, timing and the systolic model.

    1. A random normal layer of shape (layer_rows, layer_cols) in the four formats of
       :func:`storage_table`, bytes measured from the arrays.
    2. The packed kernel on that layer and on every compressed MLP layer against
       :meth:`NMPacked.dequantize` followed by a dense product.
    3. Test accuracy on digits for each seed: dense, INT only, N:M only, the
       variant's N:M + INT, and the random-mask control.
    4. Median times of the packed kernel and the dense float32 kernel (reported).
    5. :func:`systolic_cycles` for (tokens, layer_cols, layer_rows).

    Parameters
    ----------
    config : Config

    Returns
    -------
    Result
    """
    config = check_instance("config", config, Config)
    c = config
    rng = np.random.default_rng(c.seeds[0])
    W = rng.standard_normal((c.layer_rows, c.layer_cols), dtype=np.float32) * 0.02
    x = rng.standard_normal(c.layer_cols, dtype=np.float32)
    packed = pack_nm(W, c.n, c.m, c.bits, c.group_size)
    storage = storage_table(W, c.n, c.m, c.bits, c.group_size, packed=packed)
    errors = [_kernel_error(packed, x)]
    for layer, _ in pretrained_digits_mlp(c.seeds[0], c.epochs)[:-1]:
        small = pack_nm(layer, c.n, c.m, c.bits, c.group_size)
        errors.append(_kernel_error(small, rng.standard_normal(layer.shape[1])))
    accs = [_accuracies(c, seed) for seed in c.seeds]
    dense_ms, packed_ms = _timings(packed, W, x, c.timing_repeats)
    log.info("dense %.2f ms, packed %.2f ms", dense_ms, packed_ms)
    model = (c.tokens, c.layer_cols, c.layer_rows, c.array_size)
    return Result(
        config=c,
        storage=storage,
        kernel_rel_error=max(errors),
        dense_acc=tuple(a["dense"] for a in accs),
        quant_only_acc=tuple(a["quant_only"] for a in accs),
        prune_only_acc=tuple(a["prune_only"] for a in accs),
        compressed_acc=tuple(a["compressed"] for a in accs),
        control_acc=tuple(a["control"] for a in accs),
        dense_ms=dense_ms,
        packed_ms=packed_ms,
        dense_macs=c.layer_rows * c.layer_cols,
        packed_macs=c.layer_rows * (c.layer_cols // c.m * c.n),
        dense_cycles=systolic_cycles(*model),
        sparse_cycles=systolic_cycles(*model, c.n, c.m, c.decode_overhead),
    )


def check_claim(result: Result) -> None:
    """Raise :class:`paperlab.claims.ClaimFailed` unless the chapter's claim holds.

    (i) Every format's measured bytes equal its closed-form bit count over 8, and
    the N:M low-bit layer is at least 4x smaller than float16. (ii) The packed
    kernel matches dequantize-then-dense to a relative error of 1e-4. (iii) Averaged
    over the seeds, N:M + INT accuracy is within 3 points of the dense MLP, while
    the random N:M mask (the control) loses at least 10 points.
    """
    check_instance("result", result, Result)
    for row in result.storage:
        require(
            8 * row.total_bytes == row.total_formula_bits
            and all(
                8 * row.measured_bytes.get(k, 0) == v
                for k, v in row.formula_bits.items()
            ),
            f"{row.label}: measured {8 * row.total_bytes} bits, formula "
            f"{row.total_formula_bits}",
        )
    require(
        result.compression >= MIN_COMPRESSION,
        f"N:M low-bit storage is {result.compression:.2f}x smaller than float16, "
        f"expected at least {MIN_COMPRESSION}x",
    )
    require(
        result.kernel_rel_error <= MAX_KERNEL_REL_ERROR,
        f"packed kernel relative error {result.kernel_rel_error:.2e} exceeds "
        f"{MAX_KERNEL_REL_ERROR:.0e}",
    )
    dense = np.array(result.dense_acc)
    drop = dense - np.array(result.compressed_acc)
    control_drop = dense - np.array(result.control_acc)
    require(
        drop.mean() <= MAX_ACCURACY_DROP,
        f"compressed accuracy drops by {100 * drop.mean():.1f} points on average, "
        f"expected at most {100 * MAX_ACCURACY_DROP:.0f}",
    )
    require(
        control_drop.mean() >= MIN_CONTROL_DROP,
        f"the random-mask control drops by only {100 * control_drop.mean():.1f} "
        f"points on average, expected at least {100 * MIN_CONTROL_DROP:.0f}",
    )


# ------------------------------------------------------------------- the figures

_FORMAT_COLORS = {"values": 0, "indices": 3, "scales": 2}


def plot_storage(result: Result):
    """Stacked bars: bits per weight of each format, split into its components."""
    check_instance("result", result, Result)
    rows, cols = result.config.layer_rows, result.config.layer_cols
    fig, ax = plotting.subplots(width=6.4, height=3.0)
    labels = [row.label for row in result.storage]
    left = np.zeros(len(labels))
    for part, color in _FORMAT_COLORS.items():
        width = np.array(
            [
                8 * row.measured_bytes.get(part, 0) / (rows * cols)
                for row in result.storage
            ]
        )
        ax.barh(labels, width, left=left, color=plotting.COLORS[color], label=part)
        left += width
    fp16 = result.storage_row("dense_fp16").total_bytes
    for i, row in enumerate(result.storage):
        ax.text(left[i] + 0.2, i, f"{fp16 / row.total_bytes:.2f}x", va="center")
    ax.set_xlim(0, 19)
    ax.invert_yaxis()
    plotting.label_axes(
        ax,
        title=f"Storage of a {rows} x {cols} layer (measured bytes)",
        xlabel="bits per weight",
        ylabel="format",
    )
    return fig


def plot_accuracy(result: Result):
    """Digits test accuracy per seed for the dense MLP and its compressed forms."""
    check_instance("result", result, Result)
    c = result.config
    pattern = f"{c.n}:{c.m}"
    columns = [
        ("dense fp32", result.dense_acc),
        (f"INT{c.bits} only", result.quant_only_acc),
        (f"{pattern} magnitude", result.prune_only_acc),
        (f"{pattern} {c.variant} + INT{c.bits}", result.compressed_acc),
        (f"{pattern} random + INT{c.bits}", result.control_acc),
    ]
    fig, ax = plotting.subplots(width=7.0, height=3.4)
    for i, (_name, accs) in enumerate(columns):
        accs = 100 * np.array(accs)
        ax.bar(i, accs.mean(), color=plotting.COLORS[i % 8], alpha=0.35)
        ax.plot(np.full(len(accs), i), accs, "o", color=plotting.COLORS[i % 8], ms=4)
    ax.set_xticks(range(len(columns)), [name for name, _ in columns], fontsize=8)
    ax.set_ylim(60, 100)
    plotting.label_axes(
        ax,
        title=f"Digits MLP after compressing its hidden layers ({len(c.seeds)} seeds)",
        xlabel="weights of the two hidden layers",
        ylabel="test accuracy (%)",
    )
    return fig


def _speedups(K: int, N: int, tokens: int, P: int, overheads: np.ndarray) -> dict:
    """Modelled dense/sparse cycle ratio for every pattern over ``overheads``."""
    dense = systolic_cycles(tokens, K, N, P)
    return {
        f"{n}:{m}": np.array(
            [dense / systolic_cycles(tokens, K, N, P, n, m, o) for o in overheads]
        )
        for n, m in PATTERNS
    }


def plot_systolic(result: Result, highlight: str | None = None):
    """Modelled systolic speed-up against the index-decode overhead, per pattern."""
    check_instance("result", result, Result)
    c = result.config
    overheads = np.linspace(0.0, 1.0, 21)
    curves = _speedups(c.layer_cols, c.layer_rows, c.tokens, c.array_size, overheads)
    fig, ax = plotting.subplots(width=6.0, height=3.4)
    _draw_speedups(ax, overheads, curves, highlight or f"{c.n}:{c.m}")
    ax.axvline(c.decode_overhead, color="grey", ls=":", lw=1)
    plotting.label_axes(
        ax,
        title=(
            f"{c.array_size}x{c.array_size} systolic array, "
            f"{c.tokens} x {c.layer_cols} x {c.layer_rows} product"
        ),
        xlabel="decode overhead (extra cycles per kept weight)",
        ylabel="dense cycles / sparse cycles",
    )
    return fig


def _draw_speedups(ax, overheads, curves: dict, highlight: str) -> None:
    for i, (name, speedup) in enumerate(curves.items()):
        bold = name == highlight
        ax.plot(overheads, speedup, color=plotting.COLORS[i], lw=2.5 if bold else 1.2,
                label=name)  # fmt: skip
    ax.axhline(1.0, color="black", lw=0.8)


@dataclass(frozen=True)
class ExplorePoint:
    """Storage, accuracy and modelled speed of one (pattern, bits) choice."""

    bits_per_weight: dict[str, float]  # per format label, measured
    accuracy: dict[str, float]  # mean test accuracy: dense, magnitude, random
    speedup: np.ndarray  # modelled dense/sparse cycles over ExploreGrid.overheads


@dataclass(frozen=True)
class ExploreGrid:
    """Precomputed :class:`ExplorePoint` for every pattern and bit width."""

    points: dict  # (pattern "n:m", bits) -> ExplorePoint
    overheads: np.ndarray  # decode overheads of the speed-up curves


def explore_grid(
    seeds: tuple[int, ...] = (0, 1, 2), bits_options: tuple[int, ...] = (4, 8)
) -> ExploreGrid:
    """Storage (a 64 x 1024 layer), digits accuracy and modelled speed-up for every
    pattern of :data:`PATTERNS` and bit width, for the Explore widget."""
    if not isinstance(seeds, tuple) or not seeds:
        raise TypeError("seeds must be a non-empty tuple of ints")
    rng = np.random.default_rng(0)
    W = rng.standard_normal((64, 1024), dtype=np.float32)
    overheads = np.linspace(0.0, 1.0, 21)
    points = {}
    for bits in bits_options:
        bits = check_int("bits", bits, minimum=2, maximum=8)
        for n, m in PATTERNS:
            storage = storage_table(W, n, m, bits, 64)
            per_weight = {row.label: 8 * row.total_bytes / W.size for row in storage}
            accs = {"dense": [], "magnitude": [], "random": []}
            for seed in seeds:
                _, X_test, _, y_test = load_digits_split(seed)
                layers = pretrained_digits_mlp(seed)
                gen = np.random.default_rng([seed, 53])
                accs["dense"].append(mlp_accuracy(layers, X_test, y_test))
                for rule in RULES:
                    squeezed = compress_mlp(layers, n, m, bits, 64, rule, gen)
                    accs[rule].append(mlp_accuracy(squeezed, X_test, y_test))
            speedup = _speedups(4096, 4096, 256, 32, overheads)[f"{n}:{m}"]
            points[(f"{n}:{m}", bits)] = ExplorePoint(
                per_weight, {k: float(np.mean(v)) for k, v in accs.items()}, speedup
            )
    return ExploreGrid(points, overheads)


def plot_explore(grid: ExploreGrid, pattern: str = "2:4", bits: int = 4):
    """Three panels for one (pattern, bits): storage, accuracy, modelled speed-up."""
    check_instance("grid", grid, ExploreGrid)
    if (pattern, bits) not in grid.points:
        raise ValueError(f"(pattern, bits) must be in the grid, got {(pattern, bits)}")
    point = grid.points[(pattern, bits)]
    fig, axes = plotting.subplots(1, 3, width=10.0, height=3.3)
    names = list(point.bits_per_weight)
    axes[0].barh(names, [point.bits_per_weight[k] for k in names],
                 color=[plotting.COLORS[i] for i in range(len(names))])  # fmt: skip
    axes[0].invert_yaxis()
    plotting.label_axes(axes[0], title="Storage", xlabel="bits per weight",
                        ylabel="format")  # fmt: skip
    rules = list(point.accuracy)
    axes[1].bar(rules, [100 * point.accuracy[k] for k in rules],
                color=[plotting.COLORS[i] for i in (7, 0, 1)])  # fmt: skip
    axes[1].set_ylim(0, 100)
    plotting.label_axes(axes[1], title=f"Digits accuracy, {pattern} INT{bits}",
                        xlabel="which weights are kept",
                        ylabel="test accuracy (%)")  # fmt: skip
    curves = {
        key: grid.points[(key, bits)].speedup for key, b in grid.points if b == bits
    }
    _draw_speedups(axes[2], grid.overheads, curves, pattern)
    plotting.label_axes(axes[2], title="Modelled systolic speed-up",
                        xlabel="decode overhead (cycles per weight)",
                        ylabel="dense / sparse cycles")  # fmt: skip
    return fig

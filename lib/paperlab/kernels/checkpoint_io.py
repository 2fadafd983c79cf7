"""Kernels for writing a checkpoint: packing tensors into a staging buffer, checksums.

A checkpoint engine that aggregates its writes first copies many small tensors, which
sit scattered in host memory, into one large staging buffer, and then writes that
buffer with a single system call. The copy is a loop over thousands of pieces of a few
kilobytes each: a Python loop pays about a microsecond of interpreter time per piece,
the kernel here pays a few nanoseconds, and it releases the GIL so that a writer thread
can push the previous buffer to the file system while the next one is packed.

Verification needs a checksum per tensor that is cheap to compute and sensitive to the
order of the bytes. Fletcher-64 keeps two running sums over the data read as 32-bit
little-endian words ``w_1, ..., w_n`` (a last partial word is padded with zero bytes),
both modulo ``M = 2**32 - 1``:

    A = sum_i w_i                       (mod M)
    B = sum_i (n - i + 1) w_i           (mod M), i.e. the sum of the prefix sums of A,

and returns ``B * 2**32 + A``. Unlike a plain sum, ``B`` changes when two words swap.

Functions
---------
pack_aligned, pack_aligned_reference, pack_aligned_numpy
    Copy pieces of ``src`` to given offsets of ``dst`` and zero every byte between them.
fletcher64, fletcher64_reference, fletcher64_numpy
    The Fletcher-64 checksum of each of many byte ranges of one buffer.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from paperlab.kernels import BenchCase

__all__ = [
    "FLETCHER_MOD",
    "pack_aligned",
    "pack_aligned_reference",
    "pack_aligned_numpy",
    "fletcher64",
    "fletcher64_reference",
    "fletcher64_numpy",
    "benchmarks",
]

FLETCHER_MOD = 2**32 - 1  # the modulus M of both Fletcher-64 sums
_REDUCE_EVERY = 1024  # words between reductions; keeps both sums below 2**53

# Explicit signatures compile (or load from the cache) when the module is imported,
# so that processes forked after the import inherit ready machine code. Arrays must
# be C-contiguous; byte sources may be read-only (np.frombuffer of bytes).
_BYTES = types.uint8[::1]
_BYTES_RO = types.Array(types.uint8, 1, "C", readonly=True)
_INTS = types.int64[::1]
_PACK_SIGNATURES = [
    types.int64(src, _INTS, _INTS, _BYTES, _INTS) for src in (_BYTES, _BYTES_RO)
]
_FLETCHER_SIGNATURES = [
    types.uint64[::1](data, _INTS, _INTS) for data in (_BYTES, _BYTES_RO)
]


# ----------------------------------------------------------------------------------
# Packing
# ----------------------------------------------------------------------------------


@numba.njit(_PACK_SIGNATURES, cache=True, nogil=True)
def pack_aligned(src, src_offsets, sizes, dst, dst_offsets):
    """Copy ``sizes[i]`` bytes of ``src`` from ``src_offsets[i]`` to ``dst_offsets[i]``.

    Every byte of ``dst`` that no piece covers (before the first piece, between two
    pieces, after the last one) is set to zero, so a reused staging buffer carries no
    stale bytes into the file. The pieces must be sorted by ``dst_offsets``, must not
    overlap and must fit inside both buffers; the kernel does not check this (the
    caller's plan guarantees it).

    Parameters
    ----------
    src : ndarray of uint8, shape (n_src,)
        Host memory holding the tensors (C-contiguous, may be read-only).
    src_offsets, sizes, dst_offsets : ndarray of int64, shape (n_pieces,)
        Where each piece starts in ``src``, its length in bytes, and where it goes in
        ``dst`` (C-contiguous).
    dst : ndarray of uint8, shape (n_dst,)
        The staging buffer (C-contiguous; its whole length is written).

    Returns
    -------
    int
        The end of the last piece in ``dst`` (0 when there is none).
    """
    pos = 0
    for i in range(sizes.shape[0]):
        start = dst_offsets[i]
        for j in range(pos, start):
            dst[j] = 0
        n = sizes[i]
        a = src[src_offsets[i] : src_offsets[i] + n]
        b = dst[start : start + n]
        for j in range(n):
            b[j] = a[j]
        pos = start + n
    for j in range(pos, dst.shape[0]):
        dst[j] = 0
    return pos


def pack_aligned_reference(src, src_offsets, sizes, dst, dst_offsets):
    """Plain-Python version of :func:`pack_aligned`, one byte at a time."""
    pos = 0
    pieces = zip(
        src_offsets.tolist(), sizes.tolist(), dst_offsets.tolist(), strict=True
    )
    for s, n, d in pieces:
        for j in range(pos, d):
            dst[j] = 0
        for j in range(n):
            dst[d + j] = src[s + j]
        pos = d + n
    for j in range(pos, dst.shape[0]):
        dst[j] = 0
    return pos


def pack_aligned_numpy(src, src_offsets, sizes, dst, dst_offsets):
    """NumPy version of :func:`pack_aligned`: zero the buffer, then one slice copy
    per piece (the formulation a Python engine would write)."""
    dst[:] = 0
    pos = 0
    pieces = zip(
        src_offsets.tolist(), sizes.tolist(), dst_offsets.tolist(), strict=True
    )
    for s, n, d in pieces:
        dst[d : d + n] = src[s : s + n]
        pos = d + n
    return pos


# ----------------------------------------------------------------------------------
# Fletcher-64
# ----------------------------------------------------------------------------------


@numba.njit(_FLETCHER_SIGNATURES, cache=True, nogil=True)
def fletcher64(data, offsets, sizes):
    """Fletcher-64 checksum of each byte range ``data[offsets[i]:offsets[i]+sizes[i]]``.

    Parameters
    ----------
    data : ndarray of uint8, shape (n_bytes,)
        C-contiguous, may be read-only.
    offsets, sizes : ndarray of int64, shape (n,)
        The ranges (C-contiguous); each must lie inside ``data`` (not checked).

    Returns
    -------
    ndarray of uint64, shape (n,)
        ``B * 2**32 + A`` with the two sums of the module docstring.
    """
    mod = FLETCHER_MOD
    out = np.empty(sizes.shape[0], np.uint64)
    for i in range(sizes.shape[0]):
        base = offsets[i]
        n = sizes[i]
        n_words = n // 4
        s1 = 0
        s2 = 0
        since = 0
        for w in range(n_words):
            p = base + 4 * w
            word = (
                np.int64(data[p])
                | (np.int64(data[p + 1]) << 8)
                | (np.int64(data[p + 2]) << 16)
                | (np.int64(data[p + 3]) << 24)
            )
            s1 += word
            s2 += s1
            since += 1
            if since == _REDUCE_EVERY:
                s1 %= mod
                s2 %= mod
                since = 0
        rest = n - 4 * n_words
        if rest > 0:
            word = 0
            for k in range(rest):
                word |= np.int64(data[base + 4 * n_words + k]) << (8 * k)
            s1 += word
            s2 += s1
        s1 %= mod
        s2 %= mod
        out[i] = (np.uint64(s2) << np.uint64(32)) | np.uint64(s1)
    return out


def fletcher64_reference(data, offsets, sizes):
    """Plain-Python version of :func:`fletcher64`, reducing after every word."""
    out = []
    for o, n in zip(offsets.tolist(), sizes.tolist(), strict=True):
        chunk = bytes(data[o : o + n])
        chunk += bytes(-len(chunk) % 4)
        s1 = s2 = 0
        for k in range(0, len(chunk), 4):
            s1 = (s1 + int.from_bytes(chunk[k : k + 4], "little")) % FLETCHER_MOD
            s2 = (s2 + s1) % FLETCHER_MOD
        out.append((s2 << 32) | s1)
    return np.array(out, dtype=np.uint64)


def fletcher64_numpy(data, offsets, sizes):
    """Vectorised NumPy version of :func:`fletcher64`.

    All ranges are gathered, zero-padded to whole words, into one array of 32-bit
    words; ``A`` is a segmented sum and ``B`` the segmented sum of the prefix sums
    ``A_k`` (each reduced modulo ``M`` first, so no sum overflows 64 bits while the
    ranges hold fewer than 16 GiB in all).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    n = sizes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    padded = (sizes + 3) // 4 * 4
    starts = np.concatenate(([0], np.cumsum(padded)[:-1]))
    buf = np.zeros(int(padded.sum()), dtype=np.uint8)
    within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    buf[np.repeat(starts, sizes) + within] = data[np.repeat(offsets, sizes) + within]
    words = buf.view("<u4").astype(np.uint64)
    n_words = padded // 4
    first = np.concatenate(([0], np.cumsum(n_words)[:-1]))
    total = np.cumsum(words)
    before = np.concatenate(([0], total))[first]
    seg = np.repeat(np.arange(n), n_words)
    prefix = (total - before[seg]) % np.uint64(FLETCHER_MOD)
    # a trailing zero makes every segment start a valid index, even an empty last one
    words = np.append(words, np.uint64(0))
    prefix = np.append(prefix, np.uint64(0))
    empty = n_words == 0
    s1 = np.where(empty, 0, np.add.reduceat(words, first)).astype(np.uint64)
    s2 = np.where(empty, 0, np.add.reduceat(prefix, first)).astype(np.uint64)
    s1 %= np.uint64(FLETCHER_MOD)
    s2 %= np.uint64(FLETCHER_MOD)
    return (s2 << np.uint64(32)) | s1


# ----------------------------------------------------------------------------------
# Benchmarks
# ----------------------------------------------------------------------------------


def _bench_pieces(n_pieces: int, median_bytes: float, seed: int):
    """Log-normal piece sizes scattered over a source buffer, packed at 64-byte
    alignment into a destination buffer (the layout of a checkpoint chunk)."""
    rng = np.random.default_rng(seed)
    sizes = np.clip(rng.lognormal(np.log(median_bytes), 1.0, n_pieces), 4, None)
    sizes = sizes.astype(np.int64)
    src_offsets = np.cumsum((sizes + 255) // 256 * 256) - (sizes + 255) // 256 * 256
    dst_offsets = np.cumsum((sizes + 63) // 64 * 64) - (sizes + 63) // 64 * 64
    src = rng.integers(0, 256, int(src_offsets[-1] + sizes[-1]), dtype=np.uint8)
    dst = np.empty(int(dst_offsets[-1] + sizes[-1]), dtype=np.uint8)
    return src, src_offsets, sizes, dst, dst_offsets


def benchmarks() -> list[BenchCase]:
    """Benchmark cases: each kernel against its Python reference and NumPy."""
    src, so, sz, dst, do = _bench_pieces(4000, 1024.0, seed=0)
    moved = int(2 * sz.sum() + (dst.shape[0] - sz.sum()))
    cases = [
        BenchCase(
            name="pack_aligned",
            size=f"4,000 pieces, {sz.sum() / 2**20:.1f} MiB",
            kernel=lambda: pack_aligned(src, so, sz, dst, do),
            reference=lambda: pack_aligned_reference(src, so, sz, dst, do),
            numpy=lambda: pack_aligned_numpy(src, so, sz, dst, do),
            bytes_moved=moved,
        )
    ]
    src2, so2, sz2, _, _ = _bench_pieces(4000, 1024.0, seed=1)
    cases.append(
        BenchCase(
            name="fletcher64",
            size=f"4,000 ranges, {sz2.sum() / 2**20:.1f} MiB",
            kernel=lambda: fletcher64(src2, so2, sz2),
            reference=lambda: fletcher64_reference(src2, so2, sz2),
            numpy=lambda: fletcher64_numpy(src2, so2, sz2),
            bytes_moved=int(sz2.sum()),
        )
    )
    return cases

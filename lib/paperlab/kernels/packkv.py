"""Kernels of PackKV's bit-packing stage and its fused matrix-vector products.

These are the loops behind the PackKV chapter (Jiang et al., arXiv 2512.24449). A
block of quantized keys or values ``codes`` (int32, tokens x channels) is cut into
*packs* of ``p`` consecutive tokens. For pack ``j`` and channel ``d`` the encoder
stores the smallest code ``mins[j, d]`` and the width
``widths[j, d] = ceil(log2(max - min + 1))`` (0 when all codes are equal), then the
``p`` offsets ``code - min`` in exactly that many bits each.

Stream layout shared by all kernels
-----------------------------------
Packs follow one another; inside a pack, channel 0's offsets come first (token order),
then channel 1's, and so on. Offsets are written back to back into 32-bit words,
least significant bit first, and may straddle a word boundary. The last pack may hold
fewer than ``p`` tokens. Nothing else is stored in the stream: a decoder walks it in
order, reading ``widths[j, d]`` bits per offset.

- :func:`bitpack_encode` and :func:`bitpack_decode` write and read the stream.
- :func:`greedy_repack` orders the tokens of a block pack by pack so that each pack's
  bit widths grow as little as possible (encode-aware repacking, stage 3).
- :func:`packed_qk_matvec` computes attention scores ``K_hat q`` straight from the
  stream, and :func:`packed_av_matvec` the weighted sum ``a^T V_hat``; decoded codes
  live only in registers, never in a decoded array (the paper's fused decompression).
"""

from __future__ import annotations

import numba
import numpy as np

from paperlab.kernels import BenchCase
from paperlab.validation import check_array, check_int

__all__ = [
    "bitpack_encode",
    "bitpack_encode_reference",
    "bitpack_decode",
    "bitpack_decode_reference",
    "packed_qk_matvec",
    "packed_qk_matvec_reference",
    "packed_av_matvec",
    "packed_av_matvec_reference",
    "greedy_repack",
    "greedy_repack_reference",
    "benchmarks",
]

MAX_WIDTH = 31  # widest offset a pack may need (codes must span less than 2**31)


# ------------------------------------------------------------------ validation


def _check_codes(codes, p) -> tuple[np.ndarray, int]:
    codes = check_array("codes", codes, ndim=2)
    if codes.size and not np.issubdtype(codes.dtype, np.integer):
        raise TypeError(f"codes must hold integers, got dtype {codes.dtype}")
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    p = check_int("p", p, minimum=1)
    if codes.size and int(codes.max()) - int(codes.min()) >= 2**MAX_WIDTH:
        raise ValueError(f"codes must span less than 2**{MAX_WIDTH} within a pack")
    return codes, p


def _check_stream(payload, mins, widths, n_tokens, p):
    """Validate an encoded stream; return its arrays in the kernels' dtypes."""
    p = check_int("p", p, minimum=1)
    n_tokens = check_int("n_tokens", n_tokens, minimum=0)
    payload = check_array("payload", payload, ndim=1)
    if payload.dtype != np.uint32:
        raise TypeError(f"payload must be uint32, got dtype {payload.dtype}")
    mins = check_array("mins", mins, ndim=2)
    widths = check_array("widths", widths, shape=mins.shape)
    if mins.size and not np.issubdtype(mins.dtype, np.integer):
        raise TypeError(f"mins must hold integers, got dtype {mins.dtype}")
    if widths.size and (widths.min() < 0 or widths.max() > MAX_WIDTH):
        raise ValueError(f"widths must lie in 0..{MAX_WIDTH}")
    n_packs = -(-n_tokens // p)
    if mins.shape[0] != n_packs:
        raise ValueError(
            f"mins must have {n_packs} rows (one per pack of {p} of {n_tokens} "
            f"tokens), got {mins.shape[0]}"
        )
    widths = widths.astype(np.int64)
    needed = _stream_bits(widths, n_tokens, p)
    if payload.size * 32 < needed:
        raise ValueError(
            f"payload holds {payload.size * 32} bits, the widths need {needed}"
        )
    return payload, mins.astype(np.int64), widths, n_tokens, p


def _stream_bits(widths: np.ndarray, n_tokens: int, p: int) -> int:
    """Bits the offsets of all packs take (pack j holds min(p, rest) tokens)."""
    if widths.size == 0:
        return 0
    sizes = np.minimum(p, n_tokens - p * np.arange(widths.shape[0]))
    return int((widths.sum(axis=1) * sizes).sum())


# ---------------------------------------------------------------- bit packing


@numba.njit(cache=True)
def _width(span):
    """ceil(log2(span + 1)): bits that hold 0..span."""
    w = 0
    while (np.int64(1) << w) <= span:
        w += 1
    return w


@numba.njit(cache=True)
def _pack_stats(codes, p):
    n_tokens, n_channels = codes.shape
    n_packs = (n_tokens + p - 1) // p
    mins = np.zeros((n_packs, n_channels), dtype=np.int32)
    widths = np.zeros((n_packs, n_channels), dtype=np.uint8)
    total = np.int64(0)
    for j in range(n_packs):
        start = j * p
        stop = min(start + p, n_tokens)
        for d in range(n_channels):
            low = codes[start, d]
            high = low
            for t in range(start + 1, stop):
                low = min(low, codes[t, d])
                high = max(high, codes[t, d])
            w = _width(high - low)
            mins[j, d] = low
            widths[j, d] = w
            total += w * (stop - start)
    return mins, widths, total


@numba.njit(cache=True)
def _encode_kernel(codes, p, mins, widths, total_bits):
    n_tokens, n_channels = codes.shape
    payload = np.zeros((total_bits + 31) // 32, dtype=np.uint32)
    pos = np.int64(0)
    for j in range(mins.shape[0]):
        start = j * p
        stop = min(start + p, n_tokens)
        for d in range(n_channels):
            w = np.int64(widths[j, d])
            if w == 0:
                continue
            low = mins[j, d]
            for t in range(start, stop):
                value = np.uint64(codes[t, d] - low)
                word = pos >> 5
                shift = pos & 31
                payload[word] |= np.uint32(
                    (value << np.uint64(shift)) & np.uint64(0xFFFFFFFF)
                )
                if shift + w > 32:
                    payload[word + 1] |= np.uint32(value >> np.uint64(32 - shift))
                pos += w
    return payload


@numba.njit(cache=True)
def _read(payload, pos, w):
    """The ``w``-bit offset starting at bit ``pos`` of the stream."""
    word = pos >> 5
    shift = pos & 31
    value = np.uint64(payload[word]) >> np.uint64(shift)
    if shift + w > 32:
        value |= np.uint64(payload[word + 1]) << np.uint64(32 - shift)
    return np.int64(value & ((np.uint64(1) << np.uint64(w)) - np.uint64(1)))


def bitpack_encode(codes, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bit-pack a block of integer codes in packs of ``p`` tokens (stage 4).

    Parameters
    ----------
    codes : array_like of int, shape (n_tokens, n_channels)
        Quantized keys or values of one block.
    p : int
        Tokens per pack, at least 1.

    Returns
    -------
    payload : ndarray of uint32, shape (ceil(total_bits / 32),)
        The offsets, laid out as the module docstring says.
    mins : ndarray of int32, shape (n_packs, n_channels)
        Smallest code of each pack and channel.
    widths : ndarray of uint8, shape (n_packs, n_channels)
        Bits per offset of each pack and channel.

    Raises
    ------
    TypeError, ValueError
        If ``codes`` is not a 2-D integer array or ``p`` is not a positive integer.
    """
    codes, p = _check_codes(codes, p)
    if codes.size and (codes.min() < -(2**31) or codes.max() >= 2**31):
        raise ValueError("codes must fit in int32")
    mins, widths, total = _pack_stats(codes, p)
    return _encode_kernel(codes, p, mins, widths, total), mins, widths


@numba.njit(cache=True)
def _decode_kernel(payload, mins, widths, n_tokens, p):
    n_channels = mins.shape[1]
    codes = np.empty((n_tokens, n_channels), dtype=np.int32)
    pos = np.int64(0)
    for j in range(mins.shape[0]):
        start = j * p
        stop = min(start + p, n_tokens)
        for d in range(n_channels):
            w = widths[j, d]
            for t in range(start, stop):
                if w == 0:
                    codes[t, d] = mins[j, d]
                else:
                    codes[t, d] = mins[j, d] + _read(payload, pos, w)
                    pos += w
    return codes


def bitpack_decode(payload, mins, widths, n_tokens: int, p: int) -> np.ndarray:
    """Inverse of :func:`bitpack_encode`.

    Parameters
    ----------
    payload, mins, widths
        As returned by :func:`bitpack_encode`.
    n_tokens : int
        Tokens in the block.
    p : int
        Tokens per pack used to encode.

    Returns
    -------
    ndarray of int32, shape (n_tokens, n_channels)

    Raises
    ------
    TypeError, ValueError
        If the arrays do not describe a stream of ``n_tokens`` tokens.
    """
    payload, mins, widths, n_tokens, p = _check_stream(
        payload, mins, widths, n_tokens, p
    )
    return _decode_kernel(payload, mins, widths, n_tokens, p)


def bitpack_encode_reference(codes, p: int):
    """Plain-Python :func:`bitpack_encode`: one Python integer as the bit stream."""
    codes, p = _check_codes(codes, p)
    n_tokens, n_channels = codes.shape
    n_packs = -(-n_tokens // p)
    mins = np.zeros((n_packs, n_channels), dtype=np.int32)
    widths = np.zeros((n_packs, n_channels), dtype=np.uint8)
    stream, pos = 0, 0
    for j in range(n_packs):
        rows = [
            list(map(int, codes[t])) for t in range(j * p, min(j * p + p, n_tokens))
        ]
        for d in range(n_channels):
            column = [row[d] for row in rows]
            low = min(column)
            w = (max(column) - low).bit_length()
            mins[j, d], widths[j, d] = low, w
            for value in column:
                stream |= (value - low) << pos
                pos += w
    n_words = -(-pos // 32)
    words = [(stream >> (32 * i)) & 0xFFFFFFFF for i in range(n_words)]
    return np.array(words, dtype=np.uint32), mins, widths


def bitpack_decode_reference(payload, mins, widths, n_tokens: int, p: int):
    """Plain-Python :func:`bitpack_decode`."""
    payload, mins, widths, n_tokens, p = _check_stream(
        payload, mins, widths, n_tokens, p
    )
    stream = sum(int(word) << (32 * i) for i, word in enumerate(payload))
    codes = np.zeros((n_tokens, mins.shape[1]), dtype=np.int32)
    pos = 0
    for j in range(mins.shape[0]):
        for d in range(mins.shape[1]):
            w = int(widths[j, d])
            for t in range(j * p, min(j * p + p, n_tokens)):
                codes[t, d] = int(mins[j, d]) + ((stream >> pos) & ((1 << w) - 1))
                pos += w
    return codes


# ------------------------------------------------- fused matrix-vector products


def _check_scales(scales, n_tokens):
    return check_array(
        "scales", scales, shape=(n_tokens,), dtype=np.float32, finite=True
    )


@numba.njit(cache=True)
def _qk_kernel(qvec, payload, mins, widths, scales, p):
    n_tokens = scales.shape[0]
    acc = np.zeros(n_tokens, dtype=np.float32)
    pos = np.int64(0)
    for j in range(mins.shape[0]):
        start = j * p
        stop = min(start + p, n_tokens)
        for d in range(mins.shape[1]):
            w = widths[j, d]
            q = qvec[d]
            base = q * np.float32(mins[j, d])
            for t in range(start, stop):
                if w == 0:
                    acc[t] += base
                else:
                    acc[t] += base + q * np.float32(_read(payload, pos, w))
                    pos += w
    return acc * scales


def packed_qk_matvec(qvec, payload, mins, widths, scales, p: int) -> np.ndarray:
    r"""Attention scores from a packed key block, decoding on the fly.

    Computes :math:`s_t = \sum_d q_d \hat k_{td}` with
    :math:`\hat k_{td} = \Delta_t (m_{jd} + o_{td})` (token ``t`` in pack ``j``, step
    :math:`\Delta_t` = ``scales[t]``, pack minimum :math:`m_{jd}`, stored offset
    :math:`o_{td}`), reading each offset from the stream exactly once.

    Parameters
    ----------
    qvec : array_like of float32, shape (n_channels,)
        The query.
    payload, mins, widths
        A key block encoded by :func:`bitpack_encode`.
    scales : array_like of float32, shape (n_tokens,)
        Quantization step of each token.
    p : int
        Tokens per pack.

    Returns
    -------
    ndarray of float32, shape (n_tokens,)
    """
    scales = check_array("scales", scales, ndim=1, dtype=np.float32, finite=True)
    payload, mins, widths, n_tokens, p = _check_stream(
        payload, mins, widths, scales.shape[0], p
    )
    qvec = check_array(
        "qvec", qvec, shape=(mins.shape[1],), dtype=np.float32, finite=True
    )
    return _qk_kernel(qvec, payload, mins, widths, scales, p)


@numba.njit(cache=True)
def _av_kernel(weights, payload, mins, widths, scales, p):
    n_tokens = scales.shape[0]
    n_channels = mins.shape[1]
    out = np.zeros(n_channels, dtype=np.float32)
    scaled = weights * scales
    pos = np.int64(0)
    for j in range(mins.shape[0]):
        start = j * p
        stop = min(start + p, n_tokens)
        for d in range(n_channels):
            w = widths[j, d]
            low = np.float32(mins[j, d])
            total = np.float32(0.0)
            for t in range(start, stop):
                if w == 0:
                    total += scaled[t] * low
                else:
                    total += scaled[t] * (low + np.float32(_read(payload, pos, w)))
                    pos += w
            out[d] += total
    return out


def packed_av_matvec(weights, payload, mins, widths, scales, p: int) -> np.ndarray:
    r"""Attention output :math:`\sum_t a_t \hat v_t` from a packed value block.

    Parameters
    ----------
    weights : array_like of float32, shape (n_tokens,)
        Attention weights :math:`a_t`.
    payload, mins, widths
        A value block encoded by :func:`bitpack_encode`.
    scales : array_like of float32, shape (n_tokens,)
        Quantization step of each token.
    p : int
        Tokens per pack.

    Returns
    -------
    ndarray of float32, shape (n_channels,)
    """
    scales = check_array("scales", scales, ndim=1, dtype=np.float32, finite=True)
    payload, mins, widths, n_tokens, p = _check_stream(
        payload, mins, widths, scales.shape[0], p
    )
    weights = check_array(
        "weights", weights, shape=(n_tokens,), dtype=np.float32, finite=True
    )
    return _av_kernel(weights, payload, mins, widths, scales, p)


def _decoded_float(payload, mins, widths, scales, p):
    codes = bitpack_decode_reference(payload, mins, widths, len(scales), p)
    return codes.astype(np.float64) * np.asarray(scales, np.float64)[:, None]


def packed_qk_matvec_reference(qvec, payload, mins, widths, scales, p: int):
    """Plain-Python :func:`packed_qk_matvec`: decode, then a float64 loop."""
    K_hat = _decoded_float(payload, mins, widths, scales, p)
    q = [float(x) for x in np.asarray(qvec)]
    return np.array(
        [sum(a * b for a, b in zip(row, q, strict=True)) for row in K_hat.tolist()],
        dtype=np.float32,
    )


def packed_av_matvec_reference(weights, payload, mins, widths, scales, p: int):
    """Plain-Python :func:`packed_av_matvec`: decode, then a float64 loop."""
    V_hat = _decoded_float(payload, mins, widths, scales, p)
    a = [float(x) for x in np.asarray(weights)]
    n_channels = V_hat.shape[1]
    return np.array(
        [sum(a[t] * V_hat[t, d] for t in range(len(a))) for d in range(n_channels)],
        dtype=np.float32,
    )


# ------------------------------------------------------------ greedy repacking


def _check_repack(codes, p) -> tuple[np.ndarray, int]:
    codes, p = _check_codes(codes, p)
    return codes, p


@numba.njit(cache=True)
def _greedy_kernel(codes, p):
    n_tokens, n_channels = codes.shape
    order = np.empty(n_tokens, dtype=np.int64)
    free = np.ones(n_tokens, dtype=np.bool_)
    low = np.empty(n_channels, dtype=np.int64)
    high = np.empty(n_channels, dtype=np.int64)
    target = np.empty(n_channels, dtype=np.float64)
    filled = 0
    while filled < n_tokens:
        remaining = n_tokens - filled
        for d in range(n_channels):
            total = np.int64(0)
            for t in range(n_tokens):
                if free[t]:
                    total += codes[t, d]
            target[d] = np.rint(total / remaining)
        best, best_cost = -1, np.inf
        for t in range(n_tokens):
            if free[t]:
                cost = 0.0
                for d in range(n_channels):
                    cost += abs(codes[t, d] - target[d])
                if cost < best_cost:
                    best, best_cost = t, cost
        free[best] = False
        order[filled] = best
        filled += 1
        for d in range(n_channels):
            low[d] = codes[best, d]
            high[d] = codes[best, d]
        for _ in range(p - 1):
            if filled == n_tokens:
                break
            best, best_grow = -1, np.int64(-1)
            for t in range(n_tokens):
                if free[t]:
                    grow = np.int64(0)
                    for d in range(n_channels):
                        c = codes[t, d]
                        if c < low[d]:
                            grow += _width(high[d] - c) - _width(high[d] - low[d])
                        elif c > high[d]:
                            grow += _width(c - low[d]) - _width(high[d] - low[d])
                    if best < 0 or grow < best_grow:
                        best, best_grow = t, grow
            free[best] = False
            order[filled] = best
            filled += 1
            for d in range(n_channels):
                low[d] = min(low[d], codes[best, d])
                high[d] = max(high[d], codes[best, d])
    return order


def greedy_repack(codes, p: int) -> np.ndarray:
    """Encode-aware token order of a block: fill packs greedily (stage 3).

    Each pack starts from the free token closest (L1) to the rounded mean of the
    free tokens, then repeatedly takes the free token that adds the fewest bits to
    the pack's widths ``sum_d ceil(log2(max_d - min_d + 1))``; ties go to the
    earliest token.

    Parameters
    ----------
    codes : array_like of int, shape (n_tokens, n_channels)
        The quantized tokens that share one order (the chapter passes keys and
        values side by side, so one permutation serves both).
    p : int
        Tokens per pack.

    Returns
    -------
    ndarray of int64, shape (n_tokens,)
        A permutation: ``codes[order]`` is the repacked block.
    """
    codes, p = _check_repack(codes, p)
    return _greedy_kernel(codes, p)


def greedy_repack_reference(codes, p: int) -> np.ndarray:
    """Plain-Python :func:`greedy_repack`."""
    codes, p = _check_repack(codes, p)
    rows = [list(map(int, row)) for row in codes]
    free = list(range(len(rows)))
    order: list[int] = []

    def width(span: int) -> int:
        return span.bit_length()

    while free:
        n_free = len(free)
        target = [
            float(np.rint(sum(rows[t][d] for t in free) / n_free))
            for d in range(codes.shape[1])
        ]
        seed = min(
            free,
            key=lambda t: sum(abs(c - m) for c, m in zip(rows[t], target, strict=True)),
        )
        free.remove(seed)
        order.append(seed)
        low, high = list(rows[seed]), list(rows[seed])
        for _ in range(p - 1):
            if not free:
                break
            grows = [
                sum(
                    width(max(h, c) - min(lo, c)) - width(h - lo)
                    for c, lo, h in zip(rows[t], low, high, strict=True)
                )
                for t in free
            ]
            pick = free[grows.index(min(grows))]
            free.remove(pick)
            order.append(pick)
            low = [min(a, b) for a, b in zip(low, rows[pick], strict=True)]
            high = [max(a, b) for a, b in zip(high, rows[pick], strict=True)]
    return np.array(order, dtype=np.int64)


# ------------------------------------------------------------------ benchmarks


def benchmarks() -> list[BenchCase]:
    """Each kernel against its Python reference and the NumPy formulation."""
    rng = np.random.default_rng(0)
    n_tokens, n_channels, p = 512, 128, 16
    smooth = np.cumsum(rng.integers(-1, 2, size=(n_tokens, n_channels)), axis=0)
    codes = (smooth + rng.integers(0, 8, size=(n_tokens, n_channels))).astype(np.int32)
    payload, mins, widths = bitpack_encode(codes, p)
    scales = rng.uniform(0.01, 0.02, n_tokens).astype(np.float32)
    qvec = rng.standard_normal(n_channels).astype(np.float32)
    weights = rng.dirichlet(np.ones(n_tokens)).astype(np.float32)
    K_hat = codes.astype(np.float32) * scales[:, None]
    stream_bytes = payload.nbytes + mins.nbytes + widths.nbytes + scales.nbytes
    size = f"tokens={n_tokens}, channels={n_channels}, p={p}"
    block = codes[:128]
    return [
        BenchCase(
            name="greedy_repack",
            size="block of 128 tokens x 128 channels, p=16",
            kernel=lambda: greedy_repack(block, p),
            reference=lambda: greedy_repack_reference(block, p),
        ),
        BenchCase(
            name="bitpack_encode",
            size=size,
            kernel=lambda: bitpack_encode(codes, p),
            reference=lambda: bitpack_encode_reference(codes, p),
            bytes_moved=codes.nbytes + stream_bytes,
        ),
        BenchCase(
            name="bitpack_decode",
            size=size,
            kernel=lambda: bitpack_decode(payload, mins, widths, n_tokens, p),
            reference=lambda: bitpack_decode_reference(
                payload, mins, widths, n_tokens, p
            ),
            bytes_moved=codes.nbytes + stream_bytes,
        ),
        BenchCase(
            name="packed_qk_matvec",
            size=size,
            kernel=lambda: packed_qk_matvec(qvec, payload, mins, widths, scales, p),
            reference=lambda: packed_qk_matvec_reference(
                qvec, payload, mins, widths, scales, p
            ),
            numpy=lambda: K_hat @ qvec,
            bytes_moved=stream_bytes,
        ),
        BenchCase(
            name="packed_av_matvec",
            size=size,
            kernel=lambda: packed_av_matvec(weights, payload, mins, widths, scales, p),
            reference=lambda: packed_av_matvec_reference(
                weights, payload, mins, widths, scales, p
            ),
            numpy=lambda: weights @ K_hat,
            bytes_moved=stream_bytes,
        ),
    ]

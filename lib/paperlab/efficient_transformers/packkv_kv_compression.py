"""PackKV: error-bounded quantization, encode-aware repacking and bit-packing of a
KV cache.

Jiang, Yang, Liu, He, Di and Jin, "PackKV: Reducing KV Cache Memory Footprint through
LLM-Aware Lossy Compression", arXiv 2512.24449.

PackKV compresses the key-value cache block by block as tokens are generated:

1. **Buffer** ``B`` new tokens of one layer (all heads side by side).
2. **Quantize** each token ``t`` with its own step
   ``Delta_t = rel * (max_d x_td - min_d x_td)``:
   ``q_td = round(x_td / Delta_t)``, so ``|x_td - Delta_t q_td| <= Delta_t / 2``.
3. **Repack**: reorder the block's tokens so that similar codes share a pack of ``p``
   tokens. Keys and values take the *same* order; attention sums over (key, value)
   pairs, so the output does not change and no index needs storing.
4. **Bit-pack**: per pack and channel store the minimum code, a width
   ``ceil(log2(max - min + 1))`` and the ``p`` offsets in that many bits.
5. **Append** the packed block to the cache.

Decoding is fused into the two matrix-vector products of attention
(:func:`paperlab.kernels.packkv.packed_qk_matvec` and ``packed_av_matvec``).

This module measures the bits each stage stores, on a synthetic cache with outlier
channels and 2-5% outlier tokens and on the real cache of the book's tiny decoder
(:func:`paperlab.tinylm.pretrained_tiny_lm`). The hot loops (greedy repacking, the
bit stream, the fused products) are in :mod:`paperlab.kernels.packkv`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from paperlab.claims import require
from paperlab.kernels import packkv as kernels
from paperlab.quantization import pack_bits
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "SCHEMES",
    "SCHEME_NAMES",
    "make_synthetic_kv",
    "tiny_lm_kv",
    "quantize_tokens",
    "dequantize_tokens",
    "repack_order",
    "fixed_width_bits",
    "packed_bits",
    "block_bits",
    "attention",
    "Config",
    "Result",
    "run_experiment",
    "check_claim",
    "tiny_lm_loss",
    "pack_widths",
    "plot_bits",
    "plot_pack_widths",
]

log = logging.getLogger(__name__)

SCHEMES = ("fixed", "pack", "packkv")
SCHEME_NAMES = {
    "fixed": "fixed-width quantization",
    "pack": "bit-packing, token order",
    "packkv": "PackKV: repack + bit-pack",
}
SCALE_BITS = 32  # each token's step Delta_t, a float32
ZERO_BITS = 16  # each token's zero point in the fixed-width scheme, an int16
HEADER_BITS = 48  # per block and tensor: base of the minimums, two field widths

# The claim's thresholds (see check_claim and the chapter's measured values).
MIN_SAVING = 0.08  # at least 8% fewer bits per value than fixed-width, every seed
MIN_REPACK_SAVING = 0.015  # at least 1.5% fewer than plain packing, mean over seeds
MAX_BOUND_RATIO = 1.0 + 1e-5  # max |x - x_hat| / (Delta / 2)
PERMUTATION_TOL = 1e-6
FUSED_TOL = 1e-5


# ------------------------------------------------------------------ the data


def make_synthetic_kv(
    n_tokens: int,
    n_channels: int,
    outlier_fraction: float,
    rng: np.random.Generator,
    smoothness: float = 0.5,
) -> np.ndarray:
    """A synthetic key or value tensor with the structure of a real KV cache.

    Every channel has its own scale (log-normal, four *outlier channels* eight
    times larger) and offset; along the tokens each channel is an AR(1) process
    with coefficient ``smoothness``; a fraction of *outlier tokens* is six times
    larger with extra noise.

    Parameters
    ----------
    n_tokens, n_channels : int
        Shape of the tensor; ``n_channels`` at least 4.
    outlier_fraction : float
        Probability that a token is an outlier, in [0, 1].
    rng : numpy.random.Generator
    smoothness : float
        AR(1) coefficient in [0, 1).

    Returns
    -------
    ndarray of float32, shape (n_tokens, n_channels)
    """
    n_tokens = check_int("n_tokens", n_tokens, minimum=1)
    n_channels = check_int("n_channels", n_channels, minimum=4)
    outlier_fraction = check_float("outlier_fraction", outlier_fraction, minimum=0.0)
    if outlier_fraction > 1:
        raise ValueError(f"outlier_fraction must be <= 1, got {outlier_fraction}")
    check_instance("rng", rng, np.random.Generator)
    smoothness = check_float("smoothness", smoothness, minimum=0.0)
    if smoothness >= 1:
        raise ValueError(f"smoothness must be < 1, got {smoothness}")
    scale = np.exp(rng.normal(0.0, 0.5, n_channels))
    scale[rng.choice(n_channels, 4, replace=False)] *= 8.0
    noise = rng.standard_normal((n_tokens, n_channels))
    x = np.empty((n_tokens, n_channels))
    x[0] = noise[0]
    innovation = np.sqrt(1.0 - smoothness**2)
    for t in range(1, n_tokens):
        x[t] = smoothness * x[t - 1] + innovation * noise[t]
    x = (x + 0.5 * rng.standard_normal(n_channels)) * scale
    outliers = rng.random(n_tokens) < outlier_fraction
    extra = rng.normal(0.0, 3.0, (int(outliers.sum()), n_channels)) * scale
    x[outliers] = 6.0 * x[outliers] + extra
    return x.astype(np.float32)


def tiny_lm_kv(n_windows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Keys and values of the book's tiny decoder on held-out text.

    The model (:func:`paperlab.tinylm.pretrained_tiny_lm` ``"base"``) reads
    ``n_windows`` consecutive windows of its full context (64 characters) from the
    held-out end of the corpus, filling its :class:`~paperlab.tinylm.KVCache`. Each
    (window, layer) pair is one block; a token's row holds all heads side by side.

    Parameters
    ----------
    n_windows : int
        Windows to read, at least 1.
    seed : int
        Training seed of the model.

    Returns
    -------
    K, V : ndarray of float32, shape (n_windows * n_layers, context, d_model)
    """
    from paperlab import tinylm

    n_windows = check_int("n_windows", n_windows, minimum=1)
    lm = tinylm.pretrained_tiny_lm("base", seed)
    context = lm.model.config.context
    ids = lm.tokenizer.encode(tinylm.split_corpus()[1])
    if (n_windows + 1) * context > len(ids):
        raise ValueError(f"n_windows must be at most {len(ids) // context - 1}")
    keys, values = [], []
    for w in range(n_windows):
        _, cache = tinylm.prefill(lm.model, ids[w * context : (w + 1) * context])
        K, V = cache.as_numpy()  # (layers, heads, tokens, d_head)
        keys.extend(k.transpose(1, 0, 2).reshape(context, -1) for k in K)
        values.extend(v.transpose(1, 0, 2).reshape(context, -1) for v in V)
    return np.stack(keys), np.stack(values)


# ------------------------------------------------------------------ the stages


def quantize_tokens(X, rel: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Error-bounded quantization with one step per token (stage 2).

    :math:`\Delta_t = \mathrm{rel}\,(\max_d x_{td} - \min_d x_{td})` (``rel`` when the
    token is constant) and :math:`q_{td} = \mathrm{round}(x_{td} / \Delta_t)`, so
    that :math:`|x_{td} - \Delta_t q_{td}| \le \Delta_t / 2`: the step is a fixed
    fraction of each token's range, which caps every token at about
    :math:`1/\mathrm{rel}` levels.

    Parameters
    ----------
    X : array_like of float, shape (n_tokens, n_channels)
    rel : float
        Relative step, in (0, 1].

    Returns
    -------
    codes : ndarray of int32, shape (n_tokens, n_channels)
    scales : ndarray of float32, shape (n_tokens,)
    """
    X = check_array("X", X, ndim=2, dtype=np.float64, finite=True, min_size=1)
    rel = check_float("rel", rel, minimum=0.0, strict_minimum=True, maximum=1.0)
    span = X.max(axis=1) - X.min(axis=1)
    scales = (rel * np.where(span > 0, span, 1.0)).astype(np.float32)
    codes = np.rint(X / scales.astype(np.float64)[:, None]).astype(np.int32)
    return codes, scales


def _check_codes(name: str, codes, n_tokens: int | None = None) -> np.ndarray:
    """Return integer quantization codes as an int64 matrix, or raise.

    Float input is refused rather than truncated: a float matrix here almost always
    means the raw keys or values were passed instead of :func:`quantize_tokens`'s
    codes, and counting their bits would give a meaningless number.
    """
    arr = check_array(name, codes, ndim=2, shape=(n_tokens, None), min_size=1)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"{name} must hold integer codes (as quantize_tokens returns), "
            f"got dtype {arr.dtype}"
        )
    return arr.astype(np.int64, copy=False)


def dequantize_tokens(codes, scales) -> np.ndarray:
    """``codes * scales[:, None]`` as float32 (the inverse of quantization)."""
    codes = _check_codes("codes", codes)
    scales = check_array("scales", scales, shape=(codes.shape[0],), dtype=np.float64)
    return (codes * scales[:, None]).astype(np.float32)


def repack_order(codes_k, codes_v, p: int) -> np.ndarray:
    """One token order for a block's keys and values (stage 3).

    Greedy encode-aware repacking (:func:`paperlab.kernels.packkv.greedy_repack`)
    over the keys' and values' codes side by side, so that the chosen packs are
    narrow for both.

    Parameters
    ----------
    codes_k, codes_v : array_like of int, shape (n_tokens, n_channels)
    p : int
        Tokens per pack.

    Returns
    -------
    ndarray of int64, shape (n_tokens,)
        A permutation of the tokens.
    """
    codes_k = _check_codes("codes_k", codes_k)
    codes_v = _check_codes("codes_v", codes_v, n_tokens=codes_k.shape[0])
    joint = np.hstack([codes_k, codes_v])
    return kernels.greedy_repack(joint, p)


def _width(span: int) -> int:
    return max(1, int(span).bit_length())


def fixed_width_bits(codes) -> int:
    """Bits stored by fixed-width quantization of one block (the baseline).

    Each token keeps its step (32 bits) and zero point ``z_t = min_d q_td``
    (16 bits); every code ``q - z`` of the block takes the same width, the one its
    largest value needs, packed back to back (:func:`paperlab.quantization.pack_bits`).

    Raises
    ------
    TypeError
        If ``codes`` is not an integer matrix.
    """
    codes = _check_codes("codes", codes)
    shifted = codes - codes.min(axis=1, keepdims=True)
    payload = pack_bits(shifted, _width(shifted.max()))
    return 8 * payload.size + codes.shape[0] * (SCALE_BITS + ZERO_BITS)


def packed_bits(codes, p: int) -> int:
    """Bits stored by bit-packing one block in packs of ``p`` tokens (stage 4).

    Counts the encoded stream (``32 * payload.size``), the pack minimums (shifted by
    their smallest and packed at the width their range needs), the widths (packed at
    the width the largest needs), a 48-bit header and each token's 32-bit step.

    Parameters
    ----------
    codes : array_like of int, shape (n_tokens, n_channels)
        Integer codes from :func:`quantize_tokens`.
    p : int
        Tokens per pack, at least 1.

    Raises
    ------
    TypeError
        If ``codes`` is not an integer matrix (float input is not truncated).
    ValueError
        If ``codes`` is empty or not 2-D, or ``p`` is not positive.
    """
    codes = _check_codes("codes", codes)
    payload, mins, widths = kernels.bitpack_encode(codes, p)
    shifted = mins.astype(np.int64) - int(mins.min())
    min_bytes = pack_bits(shifted, _width(shifted.max())).size
    width_bytes = pack_bits(widths, _width(widths.max())).size
    stream = 32 * payload.size + 8 * (min_bytes + width_bytes) + HEADER_BITS
    return stream + codes.shape[0] * SCALE_BITS


def block_bits(K, V, rel: float, p: int) -> dict[str, int]:
    """Bits each scheme stores for one block of keys and values.

    Returns
    -------
    dict
        ``{"fixed": ..., "pack": ..., "packkv": ...}``, keys plus values.
    """
    codes_k, _ = quantize_tokens(K, rel)
    codes_v, _ = quantize_tokens(V, rel)
    if codes_v.shape[0] != codes_k.shape[0]:
        raise ValueError("K and V must have the same number of tokens")
    order = repack_order(codes_k, codes_v, p)
    return {
        "fixed": fixed_width_bits(codes_k) + fixed_width_bits(codes_v),
        "pack": packed_bits(codes_k, p) + packed_bits(codes_v, p),
        "packkv": packed_bits(codes_k[order], p) + packed_bits(codes_v[order], p),
    }


def pack_widths(codes, p: int) -> np.ndarray:
    """Bit width of every pack and channel, shape (n_packs, n_channels)."""
    _, _, widths = kernels.bitpack_encode(_check_codes("codes", codes), p)
    return widths.astype(np.int64)


def attention(q, K, V) -> np.ndarray:
    r"""Single-query softmax attention :math:`\mathrm{softmax}(K q/\sqrt d)^\top V`.

    Parameters
    ----------
    q : array_like, shape (d,)
    K, V : array_like, shape (n_tokens, d)

    Returns
    -------
    ndarray of float64, shape (d,)
    """
    K = check_array("K", K, ndim=2, dtype=np.float64, finite=True, min_size=1)
    V = check_array("V", V, shape=(K.shape[0], None), dtype=np.float64, finite=True)
    q = check_array("q", q, shape=(K.shape[1],), dtype=np.float64, finite=True)
    scores = K @ q / np.sqrt(K.shape[1])
    weights = np.exp(scores - scores.max())
    return weights @ V / weights.sum()


# ------------------------------------------------------------- the experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the scheme the claim is checked on."""

    variant: str = "packkv"  # "packkv" (the paper), "pack" or "fixed" (baselines)
    seeds: tuple[int, ...] = (0, 1, 2)  # one synthetic cache per seed
    n_tokens: int = 1024  # synthetic tokens per cache
    n_channels: int = 64  # synthetic channels (heads x head width)
    outlier_fraction: float = 0.04  # synthetic outlier tokens
    block: int = 128  # tokens per compressed block, B
    pack: int = 16  # tokens per pack, p
    rel: float = 1 / 16  # quantization step as a fraction of a token's range
    n_queries: int = 8  # random queries for the attention checks
    lm_windows: int = 8  # tiny-LM windows of 64 tokens (0 skips the tiny LM)

    def __post_init__(self):
        check_choice("variant", self.variant, SCHEMES)
        if not isinstance(self.seeds, tuple) or not self.seeds:
            raise TypeError("seeds must be a non-empty tuple of integers")
        for seed in self.seeds:
            check_int("seeds[i]", seed, minimum=0)
        check_int("n_tokens", self.n_tokens, minimum=1)
        check_int("n_channels", self.n_channels, minimum=4)
        check_float("outlier_fraction", self.outlier_fraction, minimum=0.0)
        check_int("block", self.block, minimum=1, maximum=self.n_tokens)
        check_int("pack", self.pack, minimum=1, maximum=self.block)
        check_float("rel", self.rel, minimum=0.0, strict_minimum=True, maximum=1.0)
        check_int("n_queries", self.n_queries, minimum=1)
        check_int("lm_windows", self.lm_windows, minimum=0)


@dataclass(frozen=True)
class Result:
    """What :func:`run_experiment` measured."""

    config: Config
    bits_per_value: dict[str, tuple[float, ...]]  # scheme -> one value per seed
    lm_bits_per_value: dict[str, float]  # scheme -> tiny-LM cache (empty if skipped)
    bound_ratio: float  # max |x - x_hat| / (Delta_t / 2) over all seeds
    permuted_attention_error: float  # same order for K and V: max |difference|
    mismatched_attention_error: float  # K and V in different orders
    fused_error: float  # fused packed matvecs vs decode-then-matvec, relative
    roundtrip_exact: bool  # decode(encode(codes)) == codes everywhere
    extra: dict = field(default_factory=dict)

    def mean_bits(self, scheme: str) -> float:
        """Mean over seeds of a scheme's synthetic bits per value."""
        return float(
            np.mean(self.bits_per_value[check_choice("scheme", scheme, SCHEMES)])
        )

    def savings(self, scheme: str) -> np.ndarray:
        """Per seed, the fraction of bits a scheme saves against fixed-width."""
        ours = np.asarray(self.bits_per_value[check_choice("scheme", scheme, SCHEMES)])
        return 1.0 - ours / np.asarray(self.bits_per_value["fixed"])


def _cache_bits(K, V, config: Config) -> dict[str, float]:
    """Bits per value of each scheme over consecutive blocks of K and V."""
    totals = dict.fromkeys(SCHEMES, 0)
    n_blocks = K.shape[0] // config.block
    for b in range(n_blocks):
        rows = slice(b * config.block, (b + 1) * config.block)
        for scheme, bits in block_bits(
            K[rows], V[rows], config.rel, config.pack
        ).items():
            totals[scheme] += bits
    n_values = 2 * n_blocks * config.block * K.shape[1]
    return {scheme: bits / n_values for scheme, bits in totals.items()}


def _checks(K, V, config: Config, rng: np.random.Generator) -> dict[str, float]:
    """Error bound, permutation invariance and fused products on the first block."""
    rows = slice(0, config.block)
    codes_k, scales_k = quantize_tokens(K[rows], config.rel)
    codes_v, scales_v = quantize_tokens(V[rows], config.rel)
    K_hat = dequantize_tokens(codes_k, scales_k).astype(np.float64)
    V_hat = dequantize_tokens(codes_v, scales_v).astype(np.float64)
    half = np.concatenate([scales_k, scales_v]).astype(np.float64)[:, None] / 2
    err = np.abs(np.vstack([K[rows], V[rows]]) - np.vstack([K_hat, V_hat]))
    order = repack_order(codes_k, codes_v, config.pack)
    shuffled = rng.permutation(order)
    permuted, mismatched, fused, roundtrip = 0.0, 0.0, 0.0, True
    for _ in range(config.n_queries):
        q = rng.standard_normal(K.shape[1])
        exact = attention(q, K_hat, V_hat)
        permuted = max(
            permuted, np.abs(attention(q, K_hat[order], V_hat[order]) - exact).max()
        )
        wrong = attention(q, K_hat[order], V_hat[shuffled])
        mismatched = max(mismatched, np.abs(wrong - exact).max())
        fused = max(
            fused,
            _fused_error(
                q,
                codes_k[order],
                scales_k[order],
                codes_v[order],
                scales_v[order],
                config.pack,
            ),
        )
    for codes in (codes_k[order], codes_v[order]):
        stream = kernels.bitpack_encode(codes, config.pack)
        decoded = kernels.bitpack_decode(*stream, codes.shape[0], config.pack)
        roundtrip &= bool(np.array_equal(decoded, codes))
    return {
        "bound_ratio": float((err / half).max()),
        "permuted": float(permuted),
        "mismatched": float(mismatched),
        "fused": float(fused),
        "roundtrip": roundtrip,
    }


def _fused_error(q, codes_k, scales_k, codes_v, scales_v, p) -> float:
    """Relative error of the fused products against decode-then-multiply.

    The largest ``|fused - reference|`` divided by the largest ``|reference|``, over
    the scores ``K_hat q`` and the output ``a^T V_hat`` (float32 sums in both).
    """
    q = q.astype(np.float32)
    stream_k = kernels.bitpack_encode(codes_k, p)
    stream_v = kernels.bitpack_encode(codes_v, p)
    scores = kernels.packed_qk_matvec(q, *stream_k, scales_k, p)
    K_hat = dequantize_tokens(codes_k, scales_k)
    weights = np.exp(scores - scores.max()).astype(np.float32)
    out = kernels.packed_av_matvec(weights, *stream_v, scales_v, p)
    V_hat = dequantize_tokens(codes_v, scales_v)
    ref_scores, ref_out = K_hat @ q, weights @ V_hat
    return float(
        max(
            np.abs(scores - ref_scores).max() / np.abs(ref_scores).max(),
            np.abs(out - ref_out).max() / np.abs(ref_out).max(),
        )
    )


def run_experiment(config: Config) -> Result:
    """Compress synthetic caches (one per seed) and the tiny LM's cache.

    Every scheme stores the *same* quantized codes (identical reconstruction), so
    bits per value compare them at the same error bound.
    """
    check_instance("config", config, Config)
    per_seed = {scheme: [] for scheme in SCHEMES}
    checks = []
    for seed in config.seeds:
        rng = np.random.default_rng(seed)
        K = make_synthetic_kv(
            config.n_tokens, config.n_channels, config.outlier_fraction, rng
        )
        V = make_synthetic_kv(
            config.n_tokens, config.n_channels, config.outlier_fraction, rng
        )
        for scheme, bits in _cache_bits(K, V, config).items():
            per_seed[scheme].append(bits)
        checks.append(_checks(K, V, config, rng))
        log.info("seed %d: %s", seed, {s: v[-1] for s, v in per_seed.items()})
    lm_bits: dict[str, float] = {}
    if config.lm_windows:
        K, V = tiny_lm_kv(config.lm_windows)
        lm_config = Config(
            block=K.shape[1], pack=min(config.pack, K.shape[1]), rel=config.rel
        )
        lm_bits = _cache_bits(
            K.reshape(-1, K.shape[2]), V.reshape(-1, V.shape[2]), lm_config
        )
    return Result(
        config=config,
        bits_per_value={s: tuple(v) for s, v in per_seed.items()},
        lm_bits_per_value=lm_bits,
        bound_ratio=max(c["bound_ratio"] for c in checks),
        permuted_attention_error=max(c["permuted"] for c in checks),
        mismatched_attention_error=min(c["mismatched"] for c in checks),
        fused_error=max(c["fused"] for c in checks),
        roundtrip_exact=all(c["roundtrip"] for c in checks),
    )


def check_claim(result: Result) -> None:
    """The chapter's claim, on the scheme named by ``result.config.variant``.

    1. Every reconstructed value is within half a step of the original.
    2. The same order for keys and values leaves attention unchanged (to 1e-6) and
       the packed stream decodes back to the codes exactly.
    3. The fused packed products equal decode-then-multiply (to 1e-5).
    4. On every synthetic seed the scheme stores at least 8% fewer bits per value
       than fixed-width quantization at the same error bound, and on average over
       the seeds at least 1.5% fewer than bit-packing in token order (repacking
       must pay for itself).

    Raises
    ------
    paperlab.claims.ClaimFailed
        Naming the part that failed and the measured numbers.
    """
    check_instance("result", result, Result)
    require(
        result.bound_ratio <= MAX_BOUND_RATIO,
        f"a value is off by {result.bound_ratio:.4f} half-steps (bound: 1)",
    )
    require(
        result.permuted_attention_error <= PERMUTATION_TOL and result.roundtrip_exact,
        f"repacking changed the attention output by "
        f"{result.permuted_attention_error:.2e} or the stream did not decode exactly",
    )
    require(
        result.fused_error <= FUSED_TOL,
        f"fused products differ from decode-then-multiply by {result.fused_error:.2e}",
    )
    scheme = result.config.variant
    saving = result.savings(scheme)
    require(
        bool(np.all(saving >= MIN_SAVING)),
        f"{SCHEME_NAMES[scheme]} saves only {np.round(100 * saving, 1).tolist()}% of "
        f"the fixed-width bits per seed, fewer than {100 * MIN_SAVING:.0f}%",
    )
    vs_pack = 1.0 - result.mean_bits(scheme) / result.mean_bits("pack")
    require(
        vs_pack >= MIN_REPACK_SAVING,
        f"{SCHEME_NAMES[scheme]} stores {result.mean_bits(scheme):.3f} bits per "
        f"value against plain bit-packing's {result.mean_bits('pack'):.3f}: "
        f"{100 * vs_pack:.1f}% fewer, below {100 * MIN_REPACK_SAVING:.1f}%",
    )


# ----------------------------------------------------------- model-level check


def tiny_lm_loss(rel: float | None, n_windows: int = 16, seed: int = 0) -> float:
    """Held-out bits per character of the tiny LM reading a quantized cache.

    Forward hooks replace every key and value projection's output by its
    quantize-dequantize (:func:`quantize_tokens` per token, heads side by side).
    Quantization acts on each token alone, so this equals attending over a
    compressed cache; repacking and bit-packing are lossless and change nothing.

    Parameters
    ----------
    rel : float or None
        Relative step; ``None`` for the exact cache.
    n_windows : int
        Windows of 64 held-out characters.
    seed : int
        Training seed of the model.

    Returns
    -------
    float
        Bits per character.
    """
    import torch

    from paperlab import tinylm

    n_windows = check_int("n_windows", n_windows, minimum=1)
    if rel is not None:
        rel = check_float("rel", rel, minimum=0.0, strict_minimum=True, maximum=1.0)
    lm = tinylm.pretrained_tiny_lm("base", seed)
    ids = lm.tokenizer.encode(tinylm.split_corpus()[1])
    context = lm.model.config.context

    def fake_quantize(_module, _inputs, output):
        flat = output.detach().reshape(-1, output.shape[-1]).double().numpy()
        codes, scales = quantize_tokens(flat, rel)
        return torch.from_numpy(dequantize_tokens(codes, scales)).reshape(output.shape)

    hooks = []
    if rel is not None:
        for block in lm.model.blocks:
            hooks.append(block.attn.k_proj.register_forward_hook(fake_quantize))
            hooks.append(block.attn.v_proj.register_forward_hook(fake_quantize))
    try:
        loss = tinylm.evaluate_loss(lm.model, ids, context, max_windows=n_windows)
    finally:
        for hook in hooks:
            hook.remove()
    return tinylm.bits_per_char(loss)


# ------------------------------------------------------------------- figures


def plot_bits(result: Result):
    """Bar chart of bits per value per scheme: synthetic (mean over seeds) and the
    tiny LM's cache."""
    from paperlab import plotting

    check_instance("result", result, Result)
    fig, ax = plotting.subplots(width=6.4, height=3.8)
    sources = ["synthetic"] + (["tiny LM"] if result.lm_bits_per_value else [])
    x = np.arange(len(sources))
    for i, scheme in enumerate(SCHEMES):
        values = [result.mean_bits(scheme)]
        if result.lm_bits_per_value:
            values.append(result.lm_bits_per_value[scheme])
        ax.bar(x + (i - 1) * 0.26, values, 0.26, label=SCHEME_NAMES[scheme],
               color=plotting.COLORS[(1, 2, 0)[i]])  # fmt: skip
    ax.set_xticks(x, sources)
    plotting.label_axes(ax, title=f"Stored bits per value (step = range / "
                        f"{round(1 / result.config.rel)})",
                        xlabel="KV cache", ylabel="bits per value",
                        legend=False)  # fmt: skip
    # Below the axes, so that no bar is hidden behind it.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    return fig


def plot_pack_widths(K, V, rel: float, p: int):
    """Heatmaps of every pack's bit width per channel, in token order and repacked.

    Parameters
    ----------
    K, V : array_like, shape (n_tokens, n_channels)
        One block of keys and values.
    rel : float
        Relative quantization step.
    p : int
        Tokens per pack.
    """
    from paperlab import plotting

    codes_k, _ = quantize_tokens(K, rel)
    codes_v, _ = quantize_tokens(V, rel)
    order = repack_order(codes_k, codes_v, p)
    before, after = pack_widths(codes_k, p), pack_widths(codes_k[order], p)
    fig, axes = plotting.subplots(1, 2, width=9.0, height=3.2)
    high = max(before.max(), after.max())
    for ax, widths, name in ((axes[0], before, "token order"),
                             (axes[1], after, "repacked")):  # fmt: skip
        image = ax.imshow(widths, aspect="auto", vmin=0, vmax=high)
        plotting.label_axes(ax, title=f"Key pack widths, {name}: "
                            f"mean {widths.mean():.2f} bits",
                            xlabel="channel", ylabel="pack")  # fmt: skip
        ax.grid(False)
    fig.colorbar(image, ax=axes, label="bits per offset")
    return fig

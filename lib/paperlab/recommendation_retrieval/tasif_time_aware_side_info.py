r"""TASIF-lite: time spans, an adaptive frequency filter and guide-not-mix attention.

Luo, Zhang, Zhang and Fang, "Time-Aware Adaptive Side Information Fusion for
Sequential Recommendation", arXiv 2512.24246 (WSDM 2026).

The model is a small SASRec-style next-item Transformer with the paper's three parts:

1. **Time span partitioning (TSP).** The global timeline is cut into :math:`N_\tau`
   equal spans; every span owns a learnable token :math:`\tau_k`, and the token of
   each interaction's span joins the item stream at the input,
   :math:`H^0_{id} = \mathrm{LN}(E_{ID}(S_u) + E_T(S^\tau_u))`.
2. **Adaptive frequency filter (AFF).** Every feature sequence
   :math:`H \in \mathbb{R}^{L \times d}` goes through a learnable filter in the
   frequency domain, :math:`\tilde H = \mathcal{F}^{-1}(W \odot \mathcal{F}(H))`, and a
   learnable per-channel sigmoid gate :math:`g` decides how much of it replaces the
   raw signal, :math:`\mathrm{LN}(H + g \odot \tilde H + (1 - g) \odot H)`.
3. **Guide-not-mix fusion (ASIF).** Queries and keys are computed for every stream
   (item, category, position), the attention logits are a weighted sum of the
   per-stream products, :math:`A = \mathrm{softmax}(\sum_f w_f Q_f K_f^\top /
   \sqrt{d_h})`, and the values come from the item stream alone, so attributes steer
   attention without being blended into the item content vectors.

Notes
-----
Only the paper's abstract, the opening of its introduction and secondary summaries of
its method were available to us. The gate form, the score weights :math:`w_f` (plain
learnable scalars here) and the position stream in the attention follow the chapter's
reading and should be checked against the released code (github.com/jluo00/TASIF).
One change is ours on purpose: this toy trains every position to predict the next
item, so a filter over the whole sequence would let position ``t`` see item
``t + 1``. The filter is therefore parameterised by a *causal* kernel of length
``L`` and applied with zero padding to ``2L`` (a linear, not circular, convolution);
its frequency response :math:`W` is still a free complex filter over the bins, only
restricted to causal ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from paperlab.claims import require
from paperlab.ranking import hit_rate_at_k, ndcg_at_k, rank_of_targets
from paperlab.seqrec import (
    InteractionLog,
    SASRec,
    generate_interactions,
    leave_last_out,
    rank_next_items,
    train_next_item,
)
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "VARIANTS",
    "AdaptiveFrequencyFilter",
    "GuidedAttention",
    "TASIFLite",
    "causal_filter",
    "causal_filter_reference",
    "Config",
    "Probe",
    "Result",
    "build_model",
    "guidance_probe",
    "side_streams",
    "run_experiment",
    "check_claim",
    "scaled_guide_hit_rate",
    "span_oracle_hit_rates",
]

log = logging.getLogger(__name__)

VARIANTS = ("tasif", "tasif_no_tsp", "tasif_no_aff", "early_fusion", "sasrec")
VARIANT_NAMES = {
    "tasif": "TASIF-lite",
    "tasif_no_tsp": "TASIF-lite without TSP",
    "tasif_no_aff": "TASIF-lite without AFF",
    "early_fusion": "SASRec + category (early fusion)",
    "sasrec": "SASRec (item ids only)",
}
CLAIM_VARIANTS = ("tasif", "tasif_no_tsp", "early_fusion", "sasrec")

# The claim's thresholds (see check_claim).
MIN_ATTENTION_SHIFT = 0.05  # mean total-variation change of attention rows
MAX_VALUE_SHIFT = 1e-5  # largest change of a value vector, relative to its norm
MIN_TSP_GAIN = 0.04  # HR@10 lost when the time-span tokens are removed
TOP_K = 10


# ------------------------------------------------------------- the mechanism


def causal_filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    r"""Filter sequences in the frequency domain with a causal kernel (AFF, Eq. of §3).

    Computes :math:`\mathcal{F}^{-1}(W \odot \mathcal{F}(x))` with
    :math:`W = \mathcal{F}(k)`, both transforms of length ``2L`` so that the product
    is a linear convolution: ``y[t, c] = sum_{s <= t} k[t - s, c] x[s, c]``.

    Parameters
    ----------
    x : tensor [B, L, d]
        Feature sequences.
    kernel : tensor [K, d]
        Causal kernel per channel, ``K <= L`` taps (zero beyond).

    Returns
    -------
    tensor [B, L, d]
    """
    if x.ndim != 3 or kernel.ndim != 2 or kernel.shape[1] != x.shape[2]:
        raise ValueError(
            f"x must be [B, L, d] and kernel [K, d]; got {tuple(x.shape)} and "
            f"{tuple(kernel.shape)}"
        )
    length = x.shape[1]
    if kernel.shape[0] > length:
        kernel = kernel[:length]
    n_fft = 2 * length
    spectrum = torch.fft.rfft(x, n=n_fft, dim=1)
    response = torch.fft.rfft(kernel, n=n_fft, dim=0)
    return torch.fft.irfft(spectrum * response, n=n_fft, dim=1)[:, :length]


def causal_filter_reference(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Plain-loop causal convolution, the independent check of :func:`causal_filter`.

    Parameters
    ----------
    x : float array [B, L, d]
    kernel : float array [K, d]

    Returns
    -------
    float array [B, L, d]
    """
    x = check_array("x", x, ndim=3, dtype=np.float64)
    kernel = check_array("kernel", kernel, ndim=2, dtype=np.float64)
    out = np.zeros_like(x)
    for t in range(x.shape[1]):
        for lag in range(min(t + 1, kernel.shape[0])):
            out[:, t] += kernel[lag] * x[:, t - lag]
    return out


class AdaptiveFrequencyFilter(nn.Module):
    r"""Learnable frequency filter with a sigmoid gate (the paper's AFF layer).

    ``forward(H) = LN(H + dropout(g * filter(H) + (1 - g) * H))`` with the per-channel
    gate :math:`g = \sigma(\gamma)`.

    Parameters
    ----------
    max_len : int
        Longest sequence; the kernel has this many taps.
    d_model : int
        Channels.
    dropout : float
        Dropout on the gated mix.
    gate_init : float
        Initial gate logit :math:`\gamma` (0 gives :math:`g = 0.5`).
    """

    def __init__(
        self, max_len: int, d_model: int, dropout: float = 0.1, gate_init: float = 0.0
    ):
        super().__init__()
        max_len = check_int("max_len", max_len, minimum=1)
        d_model = check_int("d_model", d_model, minimum=1)
        dropout = check_float("dropout", dropout, minimum=0.0, maximum=1.0)
        gate_init = check_float("gate_init", gate_init)
        kernel = torch.zeros(max_len, d_model)
        kernel[0] = 1.0  # start as the identity filter
        self.kernel = nn.Parameter(kernel + 0.02 * torch.randn(max_len, d_model))
        self.gate_logit = nn.Parameter(torch.full((d_model,), gate_init))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    @property
    def gate(self) -> torch.Tensor:
        """The per-channel gate :math:`g \\in (0, 1)`, shape ``[d]``."""
        return torch.sigmoid(self.gate_logit)

    def magnitude(self, length: int) -> np.ndarray:
        """Mean over channels of :math:`|W|` per frequency bin (``length + 1`` bins)."""
        length = check_int("length", length, minimum=1)
        with torch.no_grad():
            response = torch.fft.rfft(self.kernel[:length], n=2 * length, dim=0)
            return response.abs().mean(dim=1).cpu().numpy()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Gated, filtered and normalised ``h``, shape ``[B, L, d]``."""
        g = self.gate
        mixed = g * causal_filter(h, self.kernel) + (1.0 - g) * h
        return self.norm(h + self.dropout(mixed))


class GuidedAttention(nn.Module):
    r"""Guide-not-mix attention: many query/key streams, one value stream (ASIF).

    Parameters
    ----------
    d_model : int
        Width of every stream.
    n_heads : int
        Attention heads; ``d_model`` must divide by it.
    n_streams : int
        Query/key streams: stream 0 is the item stream, the rest are guides.
    dropout : float
        Dropout on the attention weights and the output.
    """

    def __init__(self, d_model: int, n_heads: int, n_streams: int, dropout: float):
        super().__init__()
        d_model = check_int("d_model", d_model, minimum=1)
        self.n_heads = check_int("n_heads", n_heads, minimum=1)
        n_streams = check_int("n_streams", n_streams, minimum=1)
        if d_model % n_heads:
            raise ValueError(
                f"d_model={d_model} must be divisible by n_heads={n_heads}"
            )
        self.queries = nn.ModuleList(
            nn.Linear(d_model, d_model) for _ in range(n_streams)
        )
        self.keys = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(n_streams))
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        # w_f, one score weight per stream (the paper's weighting: see module notes)
        self.stream_weights = nn.Parameter(torch.ones(n_streams))
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.n_heads, width // self.n_heads).transpose(
            1, 2
        )

    def scores(
        self, streams: Sequence[torch.Tensor], scale: Sequence[float] | None = None
    ) -> torch.Tensor:
        r"""Causal attention weights :math:`A`, shape ``[B, heads, L, L]``.

        ``scale`` multiplies each stream's weight :math:`w_f` (1 by default); the
        chapter's Explore section uses it to turn a guide up or down at test time.
        """
        if len(streams) != len(self.queries):
            raise ValueError(
                f"expected {len(self.queries)} streams, got {len(streams)}"
            )
        scale = [1.0] * len(streams) if scale is None else list(scale)
        length = streams[0].shape[1]
        head_dim = streams[0].shape[2] // self.n_heads
        logits = 0.0
        for f, h in enumerate(streams):
            q = self._heads(self.queries[f](h))
            k = self._heads(self.keys[f](h))
            weight = self.stream_weights[f] * scale[f]
            logits = logits + weight * (q @ k.transpose(-1, -2))
        future = torch.triu(
            torch.ones(length, length, dtype=torch.bool, device=streams[0].device), 1
        )
        logits = (logits / head_dim**0.5).masked_fill(future, float("-inf"))
        return torch.softmax(logits, dim=-1)

    def forward(
        self, streams: Sequence[torch.Tensor], scale: Sequence[float] | None = None
    ) -> torch.Tensor:
        """Attention output from the item stream's values, shape ``[B, L, d]``."""
        weights = self.dropout(self.scores(streams, scale))
        values = self._heads(self.value(streams[0]))
        mixed = (weights @ values).transpose(1, 2).reshape(streams[0].shape)
        return self.dropout(self.out(mixed))


class TASIFLite(nn.Module):
    """One-block TASIF-lite next-item model.

    ``forward(items, [categories, spans])`` returns hidden states ``[B, L, d]``;
    position ``t`` sees inputs ``0..t`` only. Interface as
    :class:`paperlab.seqrec.SASRec`, so :func:`paperlab.seqrec.train_next_item` and
    :func:`paperlab.seqrec.score_next` train and score it.

    Parameters
    ----------
    n_items, n_categories, n_spans : int
        Vocabulary sizes (item id ``n_items`` is padding).
    max_len : int
        Longest input sequence.
    d_model, n_heads : int
        Width and attention heads.
    dropout : float
        Dropout rate.
    use_tsp : bool
        Add the time-span token to the item stream (TSP).
    use_aff : bool
        Pass the item and category streams through an AFF layer each.
    d_ff : int, optional
        Width of the feed-forward layer (default ``4 * d_model``).
    """

    def __init__(
        self,
        n_items: int,
        n_categories: int,
        n_spans: int,
        max_len: int,
        d_model: int = 32,
        n_heads: int = 2,
        dropout: float = 0.1,
        use_tsp: bool = True,
        use_aff: bool = True,
        d_ff: int | None = None,
    ):
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else check_int("d_ff", d_ff, minimum=1)
        self.n_items = check_int("n_items", n_items, minimum=1)
        n_categories = check_int("n_categories", n_categories, minimum=1)
        n_spans = check_int("n_spans", n_spans, minimum=1)
        self.max_len = check_int("max_len", max_len, minimum=1)
        d_model = check_int("d_model", d_model, minimum=1)
        dropout = check_float("dropout", dropout, minimum=0.0, maximum=1.0)
        self.use_tsp = check_instance("use_tsp", use_tsp, bool)
        self.use_aff = check_instance("use_aff", use_aff, bool)
        self.item_emb = nn.Embedding(n_items + 1, d_model, padding_idx=n_items)
        self.cat_emb = nn.Embedding(n_categories, d_model)
        # Only the parts in use are built: unused parameters would get no gradient.
        self.span_emb = nn.Embedding(n_spans, d_model) if use_tsp else None
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.item_norm = nn.LayerNorm(d_model)
        self.cat_norm = nn.LayerNorm(d_model)
        self.filters = nn.ModuleList(
            AdaptiveFrequencyFilter(max_len, d_model, dropout)
            for _ in range(2 if use_aff else 0)
        )
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = GuidedAttention(d_model, n_heads, 3, dropout)
        self.ff_norm = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_ff),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(d_ff, d_model),
        )
        self.out_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        for emb in [self.item_emb, self.cat_emb, self.span_emb, self.pos_emb]:
            if emb is not None:
                nn.init.normal_(emb.weight, std=d_model**-0.5)

    def streams(
        self, items: torch.Tensor, side: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """The item, category and position streams after TSP and AFF, each [B,L,d]."""
        if len(side) != 2:
            raise ValueError(
                f"expected 2 side streams (categories, spans), got {len(side)}"
            )
        length = items.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={self.max_len}")
        categories, spans = side
        h_item = self.item_emb(items)
        if self.use_tsp:
            h_item = h_item + self.span_emb(spans)
        h_item = self.dropout(self.item_norm(h_item))
        h_cat = self.dropout(self.cat_norm(self.cat_emb(categories)))
        if self.use_aff:
            h_item = self.filters[0](h_item)
            h_cat = self.filters[1](h_cat)
        h_pos = self.pos_emb.weight[:length].expand_as(h_item)
        return [h_item, h_cat, h_pos]

    def forward(
        self,
        items: torch.Tensor,
        side: Sequence[torch.Tensor] = (),
        scale: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """Hidden states ``[B, L, d]``; ``scale`` as in ``GuidedAttention.scores``."""
        h_item, h_cat, h_pos = self.streams(items, side)
        normed = [self.attn_norm(h_item), h_cat, h_pos]
        x = h_item + self.attn(normed, scale)
        x = x + self.ff(self.ff_norm(x))
        return self.out_norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every catalogue item (tied item embeddings)."""
        return hidden @ self.item_emb.weight[: self.n_items].T


# ------------------------------------------------------------- the experiment


@dataclass(frozen=True)
class Config:
    """Sizes, training settings, seeds and the variant playing the mechanism."""

    variant: str = "tasif"  # the model the claim is about: "tasif" or a baseline
    n_users: int = 1200  # users in the synthetic log
    n_items: int = 400  # catalogue size
    n_categories: int = 12  # the side attribute's values
    seq_len: int = 20  # interactions per user (the last one is held out)
    n_spans: int = 12  # global time spans ("months")
    trend_spans: int = 1  # which items are popular changes every this many spans
    p_noise: float = 0.2  # share of interactions replaced by random items
    d_model: int = 32  # embedding width
    n_heads: int = 2  # attention heads
    dropout: float = 0.1  # dropout rate
    epochs: int = 3  # passes over the users
    lr: float = 1e-2  # Adam learning rate
    batch_size: int = 256  # users per step
    seeds: tuple[int, ...] = (0, 1, 2)  # one data set and training run per seed
    extra: tuple[str, ...] = ()  # further variants to train alongside


@dataclass(frozen=True)
class Probe:
    """How one trained model reacts when the category sequence is swapped.

    Attributes
    ----------
    attention_shift : float
        Mean over users, heads and positions of the total-variation distance between
        the attention rows with the true and with another user's categories.
    value_shift : float
        Largest change of a value vector (the content the attention mixes), relative
        to the largest value norm.
    """

    attention_shift: float
    value_shift: float


@dataclass(frozen=True)
class Result:
    """HR@10, NDCG@10 and the guidance probe of every variant, one entry per seed."""

    config: Config
    hit_rate: dict[str, tuple[float, ...]] = field(default_factory=dict)
    ndcg: dict[str, tuple[float, ...]] = field(default_factory=dict)
    probes: dict[str, tuple[Probe, ...]] = field(default_factory=dict)
    models: dict[str, nn.Module] = field(default_factory=dict, repr=False)

    def mean(self, metric: str, variant: str) -> float:
        """Mean over seeds of ``metric`` for ``variant``.

        ``metric`` is "hit_rate", "ndcg", "attention_shift" or "value_shift".
        """
        metric = check_choice(
            "metric", metric, ("hit_rate", "ndcg", "attention_shift", "value_shift")
        )
        if metric in ("attention_shift", "value_shift"):
            return float(np.mean([getattr(p, metric) for p in self.probes[variant]]))
        return float(np.mean(getattr(self, metric)[variant]))


def _check_config(config: Config) -> Config:
    check_instance("config", config, Config)
    check_choice("config.variant", config.variant, CLAIM_VARIANTS)
    for name in ("n_users", "n_items", "n_categories", "n_spans"):
        check_int(f"config.{name}", getattr(config, name), minimum=1)
    check_int("config.seq_len", config.seq_len, minimum=3)
    check_int("config.trend_spans", config.trend_spans, minimum=0)
    check_float("config.p_noise", config.p_noise, minimum=0.0, maximum=1.0)
    check_int("config.d_model", config.d_model, minimum=1)
    check_int("config.n_heads", config.n_heads, minimum=1)
    check_float("config.dropout", config.dropout, minimum=0.0, maximum=1.0)
    check_int("config.epochs", config.epochs, minimum=1)
    check_float("config.lr", config.lr, minimum=0.0, strict_minimum=True)
    check_int("config.batch_size", config.batch_size, minimum=1)
    if not isinstance(config.seeds, tuple) or not config.seeds:
        raise ValueError(f"config.seeds must be a non-empty tuple, got {config.seeds}")
    for seed in config.seeds:
        check_int("config.seeds", seed, minimum=0)
    for name in config.extra:
        check_choice("config.extra", name, VARIANTS)
    return config


def build_model(variant: str, config: Config, n_categories: int) -> nn.Module:
    """A fresh, untrained model of ``variant`` sized by ``config``.

    Parameters
    ----------
    variant : str
        One of :data:`VARIANTS`.
    config : Config
        Sizes.
    n_categories : int
        Categories in the data (the log may hold fewer than ``config.n_categories``).
    """
    variant = check_choice("variant", variant, VARIANTS)
    check_instance("config", config, Config)
    n_categories = check_int("n_categories", n_categories, minimum=1)
    max_len = config.seq_len - 2
    if variant in ("sasrec", "early_fusion"):
        sides = [n_categories] if variant == "early_fusion" else []
        return SASRec(
            config.n_items,
            max_len,
            config.d_model,
            1,
            config.n_heads,
            config.dropout,
            side_sizes=sides,
        )
    return TASIFLite(
        config.n_items,
        n_categories,
        config.n_spans,
        max_len,
        config.d_model,
        config.n_heads,
        config.dropout,
        use_tsp=variant != "tasif_no_tsp",
        use_aff=variant != "tasif_no_aff",
    )


def side_streams(
    model: nn.Module, categories: np.ndarray, spans: np.ndarray
) -> list[np.ndarray]:
    """The side inputs ``model`` takes: none, ``[categories]`` or both streams."""
    if isinstance(model, TASIFLite):
        return [categories, spans]
    check_instance("model", model, SASRec)
    return [categories] if len(model.side_embs) else []


@torch.no_grad()
def _attention_and_values(model: nn.Module, items, side) -> tuple:
    """Attention weights [B, heads, T, T] and value vectors [B, T, d], eval mode."""
    if isinstance(model, TASIFLite):
        h_item, h_cat, h_pos = model.streams(items, side)
        normed = [model.attn_norm(h_item), h_cat, h_pos]
        return model.attn.scores(normed), model.attn.value(normed[0])
    return model.first_block_attention(items, side)


def guidance_probe(
    model: nn.Module,
    history: np.ndarray,
    categories: np.ndarray,
    spans: np.ndarray,
    rng: np.random.Generator,
) -> Probe:
    """Swap every user's categories with another user's; measure what moves.

    The guide-not-mix design predicts that the attention weights move (attributes
    guide the scores) while the value vectors do not (attributes never enter the
    content). Early fusion moves both; an ID-only model moves neither.

    Parameters
    ----------
    model : SASRec or TASIFLite
        A trained model (any variant of :data:`VARIANTS`).
    history, categories, spans : int arrays [U, T]
        Model inputs, ``T <= model.max_len``.
    rng : numpy.random.Generator
        Draws the permutation of users whose categories are swapped in.

    Returns
    -------
    Probe
    """
    check_instance("model", model, nn.Module)
    history = check_array("history", history, ndim=2)
    categories = check_array("categories", categories, shape=history.shape)
    spans = check_array("spans", spans, shape=history.shape)
    check_instance("rng", rng, np.random.Generator)
    device = next(model.parameters()).device
    model.eval()

    def tensors(cats):
        return [
            torch.as_tensor(s, dtype=torch.long, device=device)
            for s in side_streams(model, cats, spans)
        ]

    items = torch.as_tensor(history, dtype=torch.long, device=device)
    swapped = categories[rng.permutation(len(categories))]
    weights, values = _attention_and_values(model, items, tensors(categories))
    weights2, values2 = _attention_and_values(model, items, tensors(swapped))
    tv = 0.5 * (weights - weights2).abs().sum(dim=-1)
    scale = values.norm(dim=-1).max().clamp_min(1e-12)
    return Probe(
        attention_shift=float(tv.mean()),
        value_shift=float((values - values2).norm(dim=-1).max() / scale),
    )


def span_oracle_hit_rates(log_: InteractionLog) -> dict[str, float]:
    """HR@10 of a counting predictor of the held-out item, with and without spans.

    The ceiling of what calendar knowledge is worth on a log: every consecutive pair
    of the histories (leave-last-out) is counted by the earlier item's category, the
    later item and, for the span-aware predictors, a span. A held-out item is scored
    by the counts of the last history item's category, in (a) no span, (b) the span
    of the last history item (what TSP tokens give the model), (c) the span of the
    held-out interaction itself. Span counts back off to the pooled ones (weight
    0.01) where they are sparse.

    Parameters
    ----------
    log_ : InteractionLog
        A log from :func:`paperlab.seqrec.generate_interactions`.

    Returns
    -------
    dict
        HR@10 under the keys ``"no span"``, ``"last history span"`` and
        ``"held-out span"``.
    """
    check_instance("log_", log_, InteractionLog)
    items, cats, spans = log_.items, log_.categories, log_.spans
    prev_cat, nxt = cats[:, :-2], items[:, 1:-1]  # pairs inside the histories
    by_next_span = np.zeros((log_.n_categories, log_.n_spans, log_.n_items))
    by_prev_span = np.zeros_like(by_next_span)
    np.add.at(by_next_span, (prev_cat, spans[:, 1:-1], nxt), 1.0)
    np.add.at(by_prev_span, (prev_cat, spans[:, :-2], nxt), 1.0)
    pooled = by_next_span.sum(axis=1)
    last_cat, targets = cats[:, -2], items[:, -1]
    backoff = 0.01 * pooled[last_cat]
    scores = {
        "no span": pooled[last_cat],
        "last history span": by_prev_span[last_cat, spans[:, -2]] + backoff,
        "held-out span": by_next_span[last_cat, spans[:, -1]] + backoff,
    }
    return {
        name: hit_rate_at_k(rank_of_targets(s, targets), TOP_K)
        for name, s in scores.items()
    }


def _variants_to_train(config: Config) -> list[str]:
    # the claim compares config.variant with ID-only SASRec and with TASIF-lite
    # without time spans, so both references are always trained
    return list(
        dict.fromkeys(["sasrec", "tasif_no_tsp", config.variant, *config.extra])
    )


def run_experiment(config: Config) -> Result:
    """Train the variants on synthetic logs; measure HR@10, NDCG@10 and the probe.

    For every seed a fresh log is generated (:func:`paperlab.seqrec.
    generate_interactions`, with the calendar-driven popularity of
    ``config.trend_spans``), each user's last interaction is held out, and every
    variant (``"sasrec"``, ``"tasif_no_tsp"``, ``config.variant`` and
    ``config.extra``) is trained with full-catalogue softmax cross-entropy, ranks the
    held-out item against all items, and goes through :func:`guidance_probe`.

    Returns
    -------
    Result
        Metrics per variant and seed; ``models`` keeps the last seed's models.
    """
    config = _check_config(config)
    names = _variants_to_train(config)
    hits: dict[str, list[float]] = {name: [] for name in names}
    ndcgs: dict[str, list[float]] = {name: [] for name in names}
    probes: dict[str, list[Probe]] = {name: [] for name in names}
    models: dict[str, nn.Module] = {}
    for seed in config.seeds:
        log_ = generate_interactions(
            n_users=config.n_users,
            n_items=config.n_items,
            n_categories=config.n_categories,
            seq_len=config.seq_len,
            n_spans=config.n_spans,
            p_noise=config.p_noise,
            seed=seed,
            trend_spans=config.trend_spans,
        )
        history, targets = leave_last_out(log_.items)
        cats, spans = log_.categories[:, :-1], log_.spans[:, :-1]
        for name in names:
            torch.manual_seed(seed)
            model = build_model(name, config, log_.n_categories)
            train_next_item(
                model,
                history,
                side_streams(model, cats, spans),
                epochs=config.epochs,
                batch_size=config.batch_size,
                lr=config.lr,
                seed=seed,
            )
            test_side = side_streams(model, cats[:, 1:], spans[:, 1:])
            ranks = rank_next_items(model, history[:, 1:], targets, test_side)
            hits[name].append(hit_rate_at_k(ranks, TOP_K))
            ndcgs[name].append(ndcg_at_k(ranks, TOP_K))
            probes[name].append(
                guidance_probe(
                    model,
                    history[:, 1:],
                    cats[:, 1:],
                    spans[:, 1:],
                    np.random.default_rng(seed),
                )
            )
            models[name] = model
            log.info("seed %d %s HR@10 %.3f", seed, name, hits[name][-1])
    return Result(
        config,
        {k: tuple(v) for k, v in hits.items()},
        {k: tuple(v) for k, v in ndcgs.items()},
        {k: tuple(v) for k, v in probes.items()},
        models,
    )


def check_claim(result: Result) -> None:
    """Raise :class:`paperlab.claims.ClaimFailed` unless guide-not-mix and TSP hold.

    For ``v = result.config.variant``, with means over seeds:

    (i) *guide*: swapping in another user's categories moves the attention rows by
        a total-variation distance of at least :data:`MIN_ATTENTION_SHIFT`;
    (ii) *not mix*: the value vectors move by at most :data:`MAX_VALUE_SHIFT` of
         their largest norm;
    (iii) *time spans*: HR@10 of ``v`` exceeds that of TASIF-lite without the
          time-span tokens by at least :data:`MIN_TSP_GAIN` (the paper's TSP
          ablation, on logs whose popular items change with the calendar).

    An ID-only SASRec fails (i); early fusion fails (ii); TASIF-lite without time
    spans, or with spans that do not match the calendar, fails (iii).
    """
    check_instance("result", result, Result)
    variant = result.config.variant
    shift = result.mean("attention_shift", variant)
    require(
        shift >= MIN_ATTENTION_SHIFT,
        f"{variant}: categories barely steer attention (mean total-variation "
        f"shift {shift:.4f} < {MIN_ATTENTION_SHIFT})",
    )
    mixed = result.mean("value_shift", variant)
    require(
        mixed <= MAX_VALUE_SHIFT,
        f"{variant}: categories are mixed into the content vectors (relative "
        f"value shift {mixed:.3g} > {MAX_VALUE_SHIFT})",
    )
    gain = result.mean("hit_rate", variant) - result.mean("hit_rate", "tasif_no_tsp")
    require(
        gain >= MIN_TSP_GAIN,
        f"{variant}: the time spans do not pay (HR@10 {gain:+.3f} over TASIF-lite "
        f"without time spans < {MIN_TSP_GAIN})",
    )


def scaled_guide_hit_rate(
    model: TASIFLite,
    history: np.ndarray,
    targets: np.ndarray,
    side: Sequence[np.ndarray],
    scale: Sequence[float],
) -> float:
    """HR@10 of a trained TASIF-lite with each stream's score weight multiplied.

    Parameters
    ----------
    model : TASIFLite
        A trained model.
    history : int array [U, T]
        Inputs, ``T <= model.max_len``.
    targets : int array [U]
        Held-out items.
    side : [categories, spans], int arrays [U, T]
    scale : three floats
        Multipliers of the item, category and position score terms.
    """
    check_instance("model", model, TASIFLite)
    history = check_array("history", history, ndim=2)
    scale = [check_float("scale", s) for s in scale]
    if len(scale) != 3:
        raise ValueError(f"scale must hold 3 multipliers, got {len(scale)}")
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        items = torch.as_tensor(history, dtype=torch.long, device=device)
        sides = [torch.as_tensor(s, dtype=torch.long, device=device) for s in side]
        hidden = model(items, sides, scale)[:, -1]
        scores = model.logits(hidden).cpu().numpy()
    return hit_rate_at_k(rank_of_targets(scores, np.asarray(targets)), TOP_K)

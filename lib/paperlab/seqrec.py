"""Sequential recommendation building blocks shared by part 1's chapters.

Two things live here, written once:

- :func:`generate_interactions`, a generator of user interaction logs with timestamps,
  item side information (category and brand) and a planted temporal pattern: the next
  category follows a Markov chain whose rows are permuted in alternate quarters of the
  global timeline, the item inside a category is drawn by Zipf popularity, and a share
  ``p_noise`` of interactions is replaced by uniformly random items. Optionally
  (``trend_spans``) the popular items of each category change with the calendar, the
  same for every user. The step-by-step walk is the Numba kernel
  :func:`paperlab.kernels.seqrec.sample_sessions`.
- :class:`SASRec`, a small self-attentive next-item model (Kang and McAuley, ICDM 2018,
  arXiv 1808.09781): item plus position embeddings, causal self-attention blocks with
  pre-layer normalisation, and scores as the dot product of the last hidden state with
  the (tied) item embeddings. It is the common baseline of the part; optional side
  streams (for example the category) can be added to the input, which is the classic
  "early fusion" baseline of side-information papers.

Costs on this book's two-core machine: generating 3,000 users x 20 steps takes about
10 ms; training SASRec (d=32, one block) for 8 epochs on them about 2-4 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from paperlab.kernels.seqrec import sample_sessions
from paperlab.optim import Adam
from paperlab.ranking import rank_of_targets
from paperlab.seeding import torch_device
from paperlab.validation import check_array, check_float, check_instance, check_int

__all__ = [
    "InteractionLog",
    "SASRec",
    "generate_interactions",
    "leave_last_out",
    "rank_next_items",
    "score_next",
    "train_next_item",
]


@dataclass(frozen=True)
class InteractionLog:
    """A synthetic interaction log; every per-interaction array has shape [U, L].

    Attributes
    ----------
    items : int32[U, L]
        Item id of every interaction, in time order per user.
    categories : int32[U, L]
        Category of every interacted item (its side attribute).
    brands : int32[U, L]
        Brand of every interacted item (a second side attribute).
    spans : int32[U, L]
        Index of the global time span (for example the month) of every interaction.
    timestamps : float64[U, L]
        Time of every interaction in days since the start of the log.
    item_category, item_brand : int32[n_items]
        Side information per item.
    n_spans : int
        Number of time spans the timeline is cut into.
    """

    items: np.ndarray
    categories: np.ndarray
    brands: np.ndarray
    spans: np.ndarray
    timestamps: np.ndarray
    item_category: np.ndarray
    item_brand: np.ndarray
    n_spans: int

    @property
    def n_items(self) -> int:
        """Size of the catalogue."""
        return int(self.item_category.shape[0])

    @property
    def n_categories(self) -> int:
        """Number of categories."""
        return int(self.item_category.max()) + 1


def _markov_by_span(
    n_categories: int, n_spans: int, spans_per_season: int, rng: np.random.Generator
) -> np.ndarray:
    """Transition matrices per span: a peaked base chain, rows permuted every season.

    Each category moves to one of three preferred successors with probability 0.85;
    in odd seasons (blocks of ``spans_per_season`` spans) the rows are permuted, so the
    successor of a category depends on when the interaction happens.
    """
    base = np.full((n_categories, n_categories), 0.15 / n_categories)
    for c in range(n_categories):
        successors = rng.choice(n_categories, size=min(3, n_categories), replace=False)
        base[c, successors] += 0.85 / len(successors)
    base /= base.sum(axis=1, keepdims=True)
    shuffled = base[rng.permutation(n_categories)]
    season = np.arange(n_spans) // spans_per_season
    return np.where((season % 2 == 1)[:, None, None], shuffled, base)


def generate_interactions(
    n_users: int = 3000,
    n_items: int = 400,
    n_categories: int = 12,
    n_brands: int = 20,
    seq_len: int = 20,
    n_spans: int = 12,
    span_days: float = 30.0,
    spans_per_season: int = 3,
    mean_gap_days: float = 4.0,
    p_noise: float = 0.2,
    zipf_exponent: float = 1.1,
    seed: int = 0,
    trend_spans: int = 0,
) -> InteractionLog:
    """Generate a log with side information and a planted seasonal pattern.

    Parameters
    ----------
    n_users, n_items, n_categories, n_brands : int
        Sizes; every category gets at least one item.
    seq_len : int
        Interactions per user (at least 2).
    n_spans : int
        Spans of the global timeline (``n_spans * span_days`` days in all).
    span_days : float
        Length of one span in days.
    spans_per_season : int
        The chain's rows are permuted in every other block of this many spans.
    mean_gap_days : float
        Mean of the exponential gaps between a user's interactions.
    p_noise : float
        Probability that an interaction is a uniformly random item.
    zipf_exponent : float
        Popularity of the item ranked ``r`` inside its category is ``r^-exponent``.
    seed : int
        Seed of the generator; the log is a pure function of the arguments.
    trend_spans : int
        If positive, which items of a category are popular changes with the calendar:
        every block of ``trend_spans`` spans relabels the items inside each category by
        its own random permutation, the same for all users, so the Zipf ranks belong to
        different items in different blocks. 0 (the default) keeps one popularity order
        for the whole log and draws nothing extra.

    Returns
    -------
    InteractionLog
        Items, side information, spans and timestamps.
    """
    n_users = check_int("n_users", n_users, minimum=1)
    n_categories = check_int("n_categories", n_categories, minimum=1)
    n_items = check_int("n_items", n_items, minimum=n_categories)
    n_brands = check_int("n_brands", n_brands, minimum=1)
    seq_len = check_int("seq_len", seq_len, minimum=2)
    n_spans = check_int("n_spans", n_spans, minimum=1)
    span_days = check_float("span_days", span_days, minimum=0.0, strict_minimum=True)
    spans_per_season = check_int("spans_per_season", spans_per_season, minimum=1)
    mean_gap_days = check_float(
        "mean_gap_days", mean_gap_days, minimum=0.0, strict_minimum=True
    )
    p_noise = check_float("p_noise", p_noise, minimum=0.0, maximum=1.0)
    zipf_exponent = check_float("zipf_exponent", zipf_exponent, minimum=0.0)
    seed = check_int("seed", seed, minimum=0)
    trend_spans = check_int("trend_spans", trend_spans, minimum=0)
    rng = np.random.default_rng(seed)

    item_category = np.sort(
        np.concatenate(
            [
                np.arange(n_categories),
                rng.integers(0, n_categories, n_items - n_categories),
            ]
        )
    ).astype(np.int32)
    item_brand = rng.integers(0, n_brands, n_items).astype(np.int32)
    cat_items = np.arange(n_items, dtype=np.int32)
    counts = np.bincount(item_category, minlength=n_categories)
    cat_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    item_cdf = np.empty(n_items)
    for c in range(n_categories):
        lo, hi = cat_offsets[c], cat_offsets[c + 1]
        weights = (1.0 + rng.permutation(hi - lo)) ** -zipf_exponent
        item_cdf[lo:hi] = np.cumsum(weights / weights.sum())
        item_cdf[hi - 1] = 1.0
    trans_cdf = np.cumsum(
        _markov_by_span(n_categories, n_spans, spans_per_season, rng), axis=2
    )
    trans_cdf[..., -1] = 1.0

    horizon = n_spans * span_days
    gaps = rng.exponential(mean_gap_days, (n_users, seq_len))
    gaps[:, 0] = 0.0
    offsets = np.cumsum(gaps, axis=1)
    offsets *= np.minimum(1.0, 0.999 * horizon / np.maximum(offsets[:, -1:], 1e-12))
    starts = rng.uniform(0.0, horizon - offsets[:, -1])
    timestamps = starts[:, None] + offsets
    spans = np.minimum(timestamps // span_days, n_spans - 1).astype(np.int32)
    first = rng.integers(0, n_categories, n_users).astype(np.int32)
    uniforms = rng.random((n_users, seq_len, 3))
    items, _ = sample_sessions(
        trans_cdf, spans, first, cat_offsets, cat_items, item_cdf, p_noise, uniforms
    )
    if trend_spans:
        # drawn after everything else, so trend_spans=0 leaves the log unchanged
        n_blocks = -(-n_spans // trend_spans)
        relabel = np.empty((n_blocks, n_items), dtype=np.int32)
        for block in range(n_blocks):
            for c in range(n_categories):
                lo, hi = cat_offsets[c], cat_offsets[c + 1]
                relabel[block, lo:hi] = lo + rng.permutation(hi - lo)
        items = relabel[spans // trend_spans, items]
    return InteractionLog(
        items=items,
        categories=item_category[items],
        brands=item_brand[items],
        spans=spans,
        timestamps=timestamps,
        item_category=item_category,
        item_brand=item_brand,
        n_spans=n_spans,
    )


def leave_last_out(sequences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split each user's sequence into its history and the held-out last item.

    Parameters
    ----------
    sequences : int array [U, L]
        One row per user, in time order, ``L >= 2``.

    Returns
    -------
    history : int array [U, L - 1]
        Everything but the last interaction (train on it, feed it at test time).
    targets : int array [U]
        The last interaction, to be ranked against the whole catalogue.
    """
    sequences = check_array("sequences", sequences, ndim=2)
    if sequences.shape[1] < 2:
        raise ValueError(
            f"sequences need at least 2 steps per user, got {sequences.shape[1]}"
        )
    return sequences[:, :-1], sequences[:, -1]


class SASRec(nn.Module):
    """Self-attentive sequential recommender with optional early-fused side streams.

    Position embeddings are aligned to the end of the sequence: the newest item always
    sits at position ``max_len - 1``. Training on histories of length ``L - 1`` and
    then scoring histories of length ``L`` therefore reuses trained positions for all
    but the oldest item.

    Parameters
    ----------
    n_items : int
        Catalogue size; item ids are ``0 .. n_items - 1`` (id ``n_items`` is padding).
    max_len : int
        Longest input sequence.
    d_model : int
        Embedding width.
    n_blocks, n_heads : int
        Transformer blocks and attention heads per block.
    dropout : float
        Dropout on embeddings and inside the blocks.
    side_sizes : sequence of int
        Vocabulary size of each side stream (for example ``[n_categories]``); their
        embeddings are added to the item embedding at the input (early fusion).
    """

    def __init__(
        self,
        n_items: int,
        max_len: int,
        d_model: int = 32,
        n_blocks: int = 1,
        n_heads: int = 2,
        dropout: float = 0.1,
        side_sizes: Sequence[int] = (),
    ):
        super().__init__()
        self.n_items = check_int("n_items", n_items, minimum=1)
        self.max_len = check_int("max_len", max_len, minimum=1)
        d_model = check_int("d_model", d_model, minimum=1)
        n_heads = check_int("n_heads", n_heads, minimum=1)
        if d_model % n_heads:
            raise ValueError(
                f"d_model={d_model} must be divisible by n_heads={n_heads}"
            )
        n_blocks = check_int("n_blocks", n_blocks, minimum=1)
        dropout = check_float("dropout", dropout, minimum=0.0, maximum=1.0)
        self.item_emb = nn.Embedding(n_items + 1, d_model, padding_idx=n_items)
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.side_embs = nn.ModuleList(
            nn.Embedding(check_int("side_sizes", s, minimum=1), d_model)
            for s in side_sizes
        )
        self.dropout = nn.Dropout(dropout)
        self.attn_norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_blocks))
        self.attns = nn.ModuleList(
            nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
            for _ in range(n_blocks)
        )
        self.ff_norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_blocks))
        self.ffs = nn.ModuleList(
            nn.Sequential(
                nn.Linear(d_model, d_model),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(d_model, d_model),
            )
            for _ in range(n_blocks)
        )
        self.out_norm = nn.LayerNorm(d_model)
        for emb in [self.item_emb, self.pos_emb, *self.side_embs]:
            nn.init.normal_(emb.weight, std=d_model**-0.5)

    def _inputs(
        self, items: torch.Tensor, side: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Item plus side-stream plus position embeddings ``[B, T, d]``."""
        if len(side) != len(self.side_embs):
            raise ValueError(
                f"expected {len(self.side_embs)} side streams, got {len(side)}"
            )
        length = items.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={self.max_len}")
        x = self.item_emb(items)
        for emb, stream in zip(self.side_embs, side, strict=True):
            x = x + emb(stream)
        # positions count back from the newest item (as left padding to max_len does
        # in SASRec), so the newest item always gets the same, trained, position even
        # when scoring a history one item longer than the training inputs
        return self.dropout(x + self.pos_emb.weight[self.max_len - length :])

    @staticmethod
    def _causal(length: int, device) -> torch.Tensor:
        return torch.triu(
            torch.ones(length, length, dtype=torch.bool, device=device), 1
        )

    def forward(
        self, items: torch.Tensor, side: Sequence[torch.Tensor] = ()
    ) -> torch.Tensor:
        """Hidden states ``[B, T, d]``; position ``t`` sees inputs ``0..t`` only."""
        x = self._inputs(items, side)
        causal = self._causal(items.shape[1], items.device)
        for norm, attn, ff_norm, ff in zip(
            self.attn_norms, self.attns, self.ff_norms, self.ffs, strict=True
        ):
            h = norm(x)
            x = x + attn(h, h, h, attn_mask=causal, need_weights=False)[0]
            x = x + ff(ff_norm(x))
        return self.out_norm(x)

    @torch.no_grad()
    def first_block_attention(
        self, items: torch.Tensor, side: Sequence[torch.Tensor] = ()
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the first block attends to, and the values it mixes (for probes).

        Returns
        -------
        weights : Tensor [B, heads, T, T]
            Causal attention weights of block 0, one row per query position.
        values : Tensor [B, T, d]
            Block 0's value vectors (before the heads' output projection).
        """
        h = self.attn_norms[0](self._inputs(items, side))
        attn = self.attns[0]
        _, weights = attn(
            h,
            h,
            h,
            attn_mask=self._causal(items.shape[1], items.device),
            need_weights=True,
            average_attn_weights=False,
        )
        d = h.shape[-1]
        values = h @ attn.in_proj_weight[2 * d :].T + attn.in_proj_bias[2 * d :]
        return weights, values

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every catalogue item from hidden states (tied embeddings)."""
        return hidden @ self.item_emb.weight[: self.n_items].T


def _check_items(
    name: str, items: np.ndarray, n_items: int | None, min_length: int
) -> np.ndarray:
    """Integer ids, shape [U >= 1, L >= min_length], in ``[0, n_items)`` if known."""
    items = check_array(name, items, ndim=2, min_size=1)
    if not np.issubdtype(items.dtype, np.integer):
        raise TypeError(f"{name} must hold integer item ids, got {items.dtype}")
    if items.shape[1] < min_length:
        raise ValueError(
            f"{name} needs at least {min_length} steps per user, got {items.shape[1]}"
        )
    if n_items is not None and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(
            f"{name} must hold item ids in [0, {n_items}), "
            f"got values in [{items.min()}, {items.max()}]"
        )
    return items


def _side_tensors(side: Sequence[np.ndarray], n_rows: int, device) -> list:
    tensors = []
    for k, stream in enumerate(side):
        stream = check_array(f"side[{k}]", stream, ndim=2)
        if stream.shape[0] != n_rows:
            raise ValueError(f"side[{k}] has {stream.shape[0]} rows, expected {n_rows}")
        tensors.append(torch.as_tensor(stream, dtype=torch.long, device=device))
    return tensors


def train_next_item(
    model: SASRec,
    sequences: np.ndarray,
    side: Sequence[np.ndarray] = (),
    epochs: int = 8,
    batch_size: int = 256,
    lr: float = 5e-3,
    seed: int = 0,
) -> list[float]:
    """Train a next-item model with softmax cross-entropy over the whole catalogue.

    Every position ``t`` of every training sequence predicts the item at ``t + 1``.

    Parameters
    ----------
    model : SASRec
        The model (trained in place); any module with the same ``forward`` and
        ``logits`` methods works.
    sequences : int array [U, L]
        Training sequences (for example the histories from :func:`leave_last_out`).
    side : sequence of int arrays [U, L]
        Side streams aligned with ``sequences``, one per ``model`` side embedding.
    epochs, batch_size : int
        Passes over the users and users per step.
    lr : float
        Adam learning rate.
    seed : int
        Seeds the shuffling and dropout.

    Returns
    -------
    list of float
        Mean training loss of each epoch.
    """
    check_instance("model", model, nn.Module)
    n_items = getattr(model, "n_items", None)
    sequences = _check_items("sequences", sequences, n_items, min_length=2)
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
    seed = check_int("seed", seed, minimum=0)
    device = torch_device()
    model.to(device).train()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    items = torch.as_tensor(sequences, dtype=torch.long, device=device)
    sides = _side_tensors(side, len(sequences), device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = Adam(params, lr=lr)
    losses = []
    for _ in range(epochs):
        order = torch.as_tensor(rng.permutation(len(sequences)), device=device)
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            hidden = model(items[rows, :-1], [s[rows, :-1] for s in sides])
            logits = model.logits(hidden)
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), items[rows, 1:].reshape(-1)
            )
            model.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step([p.grad for p in params])
            total += loss.item() * len(rows)
            count += len(rows)
        losses.append(total / count)
    model.eval()
    return losses


@torch.no_grad()
def score_next(
    model: SASRec, history: np.ndarray, side: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """Scores of every item as the next interaction after each history.

    Returns
    -------
    float32 array [U, n_items]
        Feed it with the targets to :func:`paperlab.ranking.rank_of_targets`.
    """
    check_instance("model", model, nn.Module)
    history = _check_items(
        "history", history, getattr(model, "n_items", None), min_length=1
    )
    device = torch_device()
    model.to(device).eval()
    items = torch.as_tensor(history, dtype=torch.long, device=device)
    hidden = model(items, _side_tensors(side, len(history), device))
    return model.logits(hidden[:, -1]).cpu().numpy()


def rank_next_items(
    model: SASRec,
    history: np.ndarray,
    targets: np.ndarray,
    side: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """0-based full-catalogue rank of each held-out target (see paperlab.ranking)."""
    return rank_of_targets(score_next(model, history, side), np.asarray(targets))

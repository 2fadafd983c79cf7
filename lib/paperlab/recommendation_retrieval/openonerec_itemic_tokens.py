"""OpenOneRec's itemic tokens: items as short code paths that a language model writes.

Zhou et al., "OpenOneRec Technical Report", arXiv 2512.24762.

OpenOneRec turns every item into a few discrete "itemic tokens": residual k-means
(RQ-Kmeans) on the item's embedding gives one code per level, coarse to fine, and each
(level, code) pair becomes a new token of a language model's vocabulary. A user's
history is then a plain token stream, the model is trained to predict the next token,
and a recommendation is a code path decoded by beam search and mapped back to an item.
The released data format writes three such tokens per item between two marker tokens.

This module reproduces that core on a toy catalogue whose embeddings come from a known
two-level hierarchy (coarse groups, fine groups, items):

- :func:`make_catalogue` and :func:`make_sessions` build the items and the user
  histories (a Markov chain over fine groups, the item inside a group uniform);
- :func:`itemic_codes` tokenizes the catalogue with RQ-Kmeans (from
  :mod:`paperlab.residual_quantization`), with codes that ignore the residual, or with
  random codes of the same length and vocabulary, and appends one extra level
  (:func:`paperlab.residual_quantization.disambiguate`) that separates items whose
  semantic codes collide; :func:`group_cohesion` measures whether a group's items
  share a code prefix;
- :func:`to_tokens` lays codes out as token streams, :class:`CodeTrie` holds the valid
  code paths and :func:`beam_search` decodes the next item under the trie constraint;
- :func:`run_experiment` trains one small causal Transformer (:class:`ItemicLM`,
  with the token's level as a side stream) per tokenizer and seed with the shared
  :func:`paperlab.seqrec.train_next_item` loop and measures Recall@10 of the
  held-out next item; :func:`decode_held_out` decodes the first seed again with or
  without the trie; :func:`check_claim` checks the chapter's claim.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from paperlab.claims import require
from paperlab.ranking import recall_at_k
from paperlab.residual_quantization import (
    collision_rate,
    disambiguate,
    kmeans,
    prefix_purity,
    random_codes,
    rq_kmeans,
)
from paperlab.seeding import torch_device
from paperlab.seqrec import leave_last_out, train_next_item
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "TOKENIZERS",
    "Catalogue",
    "make_catalogue",
    "make_sessions",
    "itemic_codes",
    "to_tokens",
    "ItemicLM",
    "CodeTrie",
    "beam_search",
    "group_cohesion",
    "Config",
    "SeedResult",
    "TrainedSeed",
    "Result",
    "run_experiment",
    "decode_held_out",
    "check_claim",
]

log = logging.getLogger(__name__)

# Attention keys and values of the positions read so far, each [B, heads, T, d/heads].
KVCache = tuple[torch.Tensor, torch.Tensor]

TOKENIZERS = ("rq_kmeans", "no_residual", "random")

# The claim's thresholds (see check_claim). Measured on seeds 0-7: RQ-Kmeans purity
# 0.86-0.99 (random codes 0.64-0.66), cohesion 0.94-0.98 (random codes 0.10-0.11);
# Recall@10 gain over random codes MEASURED_GAIN.
MIN_RECALL_GAIN = 0.10
MIN_PURITY = 0.8
MIN_COHESION = 0.8


# ------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Catalogue:
    """Item embeddings drawn around a known two-level hierarchy.

    Attributes
    ----------
    embeddings : float32[n_items, dim]
        Coarse centre + fine offset + item noise, one row per item.
    coarse : int32[n_items]
        Coarse group of every item.
    fine : int32[n_items]
        Fine group of every item (globally numbered, ``n_coarse * n_fine`` groups).
    """

    embeddings: np.ndarray
    coarse: np.ndarray
    fine: np.ndarray

    @property
    def n_items(self) -> int:
        """Catalogue size."""
        return int(self.embeddings.shape[0])

    @property
    def n_fine(self) -> int:
        """Number of fine groups."""
        return int(self.fine.max()) + 1


def make_catalogue(
    n_coarse: int = 20,
    n_fine: int = 5,
    items_per_fine: int = 10,
    dim: int = 32,
    fine_scale: float = 0.5,
    noise_scale: float = 0.15,
    seed: int = 0,
) -> Catalogue:
    """Draw a catalogue whose embeddings follow coarse and fine groups.

    Each coordinate of a coarse centre is standard normal; each fine group adds an
    offset of scale ``fine_scale`` and each item a noise of scale ``noise_scale``,
    a stand-in for the multimodal item embeddings the paper quantizes.

    Parameters
    ----------
    n_coarse, n_fine, items_per_fine : int
        Coarse groups, fine groups per coarse group and items per fine group.
    dim : int
        Embedding width.
    fine_scale, noise_scale : float
        Standard deviations of the fine offsets and of the item noise.
    seed : int
        Seeds the draw.

    Returns
    -------
    Catalogue
        Items numbered coarse-major, so item ``i`` is in fine group
        ``i // items_per_fine``.
    """
    n_coarse = check_int("n_coarse", n_coarse, minimum=1)
    n_fine = check_int("n_fine", n_fine, minimum=1)
    items_per_fine = check_int("items_per_fine", items_per_fine, minimum=1)
    dim = check_int("dim", dim, minimum=1)
    fine_scale = check_float("fine_scale", fine_scale, minimum=0.0)
    noise_scale = check_float("noise_scale", noise_scale, minimum=0.0)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    centres = rng.normal(size=(n_coarse, 1, 1, dim))
    offsets = fine_scale * rng.normal(size=(n_coarse, n_fine, 1, dim))
    noise = noise_scale * rng.normal(size=(n_coarse, n_fine, items_per_fine, dim))
    embeddings = (centres + offsets + noise).reshape(-1, dim).astype(np.float32)
    fine = np.repeat(np.arange(n_coarse * n_fine), items_per_fine).astype(np.int32)
    return Catalogue(embeddings, (fine // n_fine).astype(np.int32), fine)


def make_sessions(
    fine: np.ndarray,
    n_users: int = 2000,
    seq_len: int = 6,
    p_top: float = 0.7,
    seed: int = 0,
) -> np.ndarray:
    """User histories that follow a Markov chain over fine groups.

    Every fine group has one preferred successor group, taken with probability
    ``p_top``; otherwise the next group is uniform. The item inside the chosen group
    is uniform, so single items are rare while their groups are frequent.

    Parameters
    ----------
    fine : int array [n_items]
        Fine group of every item.
    n_users, seq_len : int
        Users and items per user.
    p_top : float
        Probability of moving to the preferred successor group.
    seed : int
        Seeds the chain and the draws.

    Returns
    -------
    int64[n_users, seq_len]
        Item ids, in time order per user.
    """
    fine = check_array("fine", fine, ndim=1, min_size=1)
    n_users = check_int("n_users", n_users, minimum=1)
    seq_len = check_int("seq_len", seq_len, minimum=2)
    p_top = check_float("p_top", p_top, minimum=0.0, maximum=1.0)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    n_groups = int(fine.max()) + 1
    members = [np.flatnonzero(fine == g) for g in range(n_groups)]
    successor = rng.permutation(n_groups)
    groups = np.empty((n_users, seq_len), dtype=np.int64)
    groups[:, 0] = rng.integers(0, n_groups, n_users)
    for t in range(1, seq_len):
        follow = rng.random(n_users) < p_top
        groups[:, t] = np.where(
            follow, successor[groups[:, t - 1]], rng.integers(0, n_groups, n_users)
        )
    sizes = np.array([len(m) for m in members])
    picks = (rng.random((n_users, seq_len)) * sizes[groups]).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    order = np.concatenate(members)
    return order[starts[groups] + picks]


# --------------------------------------------------------------- the tokenizer


def _no_residual_codes(
    X: np.ndarray, codebook_sizes: Sequence[int], seed: int
) -> np.ndarray:
    """Codes from k-means on the raw embeddings at every level (no residual step)."""
    levels = [
        kmeans(X, size, seed=seed + level)[1]
        for level, size in enumerate(codebook_sizes)
    ]
    return np.stack(levels, axis=1).astype(np.int32)


def itemic_codes(
    X: np.ndarray, codebook_sizes: Sequence[int], tokenizer: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Itemic codes of every item: semantic levels plus a disambiguation level.

    Parameters
    ----------
    X : float array [n, d]
        Item embeddings.
    codebook_sizes : sequence of int
        Codes per semantic level, e.g. ``(20, 5, 10)``.
    tokenizer : {"rq_kmeans", "no_residual", "random"}
        ``rq_kmeans`` quantizes the residual left by earlier levels (the paper's
        tokenizer); ``no_residual`` clusters the raw embeddings at every level;
        ``random`` draws distinct codes of the same length and vocabulary as the
        ``rq_kmeans`` codes, with no semantics.
    seed : int

    Returns
    -------
    codes : int32[n, L + 1]
        Unique code of every item; the last column is the disambiguation level.
    semantic : int32[n, L]
        The semantic levels alone, before disambiguation (for collision rates).
    """
    X = check_array("X", X, ndim=2, dtype=np.float32, finite=True, min_size=1)
    sizes = [
        check_int("codebook_sizes", s, minimum=1, maximum=len(X))
        for s in codebook_sizes
    ]
    if not sizes:
        raise ValueError("codebook_sizes must name at least one level")
    tokenizer = check_choice("tokenizer", tokenizer, TOKENIZERS)
    seed = check_int("seed", seed, minimum=0)
    if tokenizer == "no_residual":
        semantic = _no_residual_codes(X, sizes, seed)
    else:
        semantic = rq_kmeans(X, sizes, seed=seed).codes
    codes, suffix_size = disambiguate(semantic)
    if tokenizer == "random":
        codes = random_codes(len(X), [*sizes, suffix_size], seed=seed)
        semantic = codes[:, :-1]
    return codes, semantic


def _level_offsets(codes: np.ndarray) -> np.ndarray:
    """First token id of every level: level ``l`` uses its own block of ids."""
    sizes = codes.max(axis=0).astype(np.int64) + 1
    return np.concatenate([[0], np.cumsum(sizes)])


def to_tokens(
    items: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Lay item sequences out as itemic-token streams.

    Item ``i`` becomes ``L`` tokens, ``offset[l] + codes[i, l]`` for ``l = 0..L-1``,
    each level with its own block of token ids (the paper's ``<s_a_*>``, ``<s_b_*>``,
    ``<s_c_*>`` tokens).

    Parameters
    ----------
    items : int array [U, T]
        Item ids.
    codes : int array [n_items, L]

    Returns
    -------
    tokens : int64[U, T * L]
    levels : int64[U, T * L]
        Level ``0..L-1`` of every token (fed to the model as a side stream).
    vocab_size : int
        Number of itemic tokens.
    """
    items = check_array("items", items, ndim=2)
    codes = check_array("codes", codes, ndim=2, min_size=1)
    if items.size and (items.min() < 0 or items.max() >= len(codes)):
        raise ValueError(f"items must lie in [0, {len(codes)})")
    offsets = _level_offsets(codes)
    per_item = codes.astype(np.int64) + offsets[:-1]
    n_levels = codes.shape[1]
    tokens = per_item[items].reshape(len(items), -1)
    levels = np.tile(np.arange(n_levels), (len(items), items.shape[1]))
    return tokens, levels, int(offsets[-1])


class ItemicLM(nn.Module):
    """A one-block causal Transformer over itemic tokens.

    The input of position ``t`` is the sum of its token's embedding, the embedding of
    the token's code level and a learned embedding of the item slot the token belongs
    to (``t // n_levels``: all tokens of one item share it, and the level embedding
    tells them apart). One pre-norm block (causal multi-head self-attention, then a
    feed-forward layer four times wider than the model) and a final layer norm give
    the hidden state, and an untied linear head scores every itemic token as the next
    one. It has the ``forward``/``logits`` interface of
    :class:`paperlab.seqrec.SASRec`, so :func:`paperlab.seqrec.train_next_item`
    trains it with next-token cross-entropy.

    The input embeddings start with a standard deviation of 0.3 rather than
    PyTorch's 1: the block's output is then not swamped by them at the start, and the
    short training runs of the chapter learn the group-to-group moves on every seed.

    Parameters
    ----------
    vocab_size : int
        Number of itemic tokens.
    n_levels : int
        Code levels per item.
    max_len : int
        Longest token sequence.
    d_model, n_heads : int
        Width and attention heads.
    """

    def __init__(
        self, vocab_size: int, n_levels: int, max_len: int, d_model: int, n_heads: int
    ):
        super().__init__()
        vocab_size = check_int("vocab_size", vocab_size, minimum=1)
        self.n_levels = check_int("n_levels", n_levels, minimum=1)
        self.max_len = check_int("max_len", max_len, minimum=1)
        d_model = check_int("d_model", d_model, minimum=1)
        self.n_heads = check_int("n_heads", n_heads, minimum=1)
        if d_model % n_heads:
            raise ValueError(
                f"d_model={d_model} must be divisible by n_heads={n_heads}"
            )
        self.token_emb = nn.Embedding(vocab_size, d_model)
        self.level_emb = nn.Embedding(n_levels, d_model)
        self.slot_emb = nn.Embedding(-(-max_len // n_levels), d_model)
        for table in (self.token_emb, self.level_emb, self.slot_emb):
            nn.init.normal_(table.weight, std=0.3)
        self.attn_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attn_out = nn.Linear(d_model, d_model)
        self.ff_norm = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )
        self.out_norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor, side: Sequence[torch.Tensor]):
        """Hidden states ``[B, T, d]``; ``side`` is ``[levels]``, shaped like tokens."""
        if len(side) != 1:
            raise ValueError(f"expected 1 side stream (the levels), got {len(side)}")
        return self._run(tokens, side[0])[0]

    @torch.no_grad()
    def prefill(
        self, tokens: torch.Tensor, levels: torch.Tensor
    ) -> tuple[torch.Tensor, KVCache]:
        """Read whole histories ``[B, T]`` once: the last hidden state ``[B, d]`` and
        the attention keys and values of every position, for :meth:`extend`."""
        hidden, cache = self._run(tokens, levels)
        return hidden[:, -1], cache

    @torch.no_grad()
    def extend(
        self, cache: KVCache, tokens: torch.Tensor, levels: torch.Tensor
    ) -> tuple[torch.Tensor, KVCache]:
        """Append one token ``[B]`` to each cached sequence: its hidden state
        ``[B, d]`` (the same as :meth:`forward` on the whole sequence would give) and
        the longer cache. Only the new position is computed."""
        hidden, cache = self._run(tokens[:, None], levels[:, None], cache)
        return hidden[:, 0], cache

    def _run(self, tokens, levels, cache: KVCache | None = None):
        """The block on new positions ``[B, T]`` after an optional cached prefix."""
        batch, length = tokens.shape
        start = 0 if cache is None else cache[0].shape[2]
        if start + length > self.max_len:
            raise ValueError(
                f"sequence length {start + length} exceeds max_len={self.max_len}"
            )
        slots = torch.arange(start, start + length, device=tokens.device)
        x = self.token_emb(tokens) + self.level_emb(levels)
        x = x + self.slot_emb(slots // self.n_levels)
        # [B, T, 3d] -> queries, keys, values, each [B, heads, T, d / heads]
        q, k, v = (
            self.qkv(self.attn_norm(x))
            .view(batch, length, 3, self.n_heads, -1)
            .permute(2, 0, 3, 1, 4)
        )
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        # with a cache the new positions are one token that sees every key
        causal = cache is None and length > 1
        mixed = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + self.attn_out(mixed.transpose(1, 2).reshape(batch, length, -1))
        x = x + self.ff(self.ff_norm(x))
        return self.out_norm(x), (k, v)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every itemic token as the next one."""
        return self.head(hidden)


# ------------------------------------------------------------ decoding


class CodeTrie:
    """The valid code paths of a catalogue, level by level, as dense masks.

    At depth ``l`` every distinct prefix of length ``l`` has a row index; ``allowed[l]``
    is a boolean matrix ``[n_prefixes_l, vocab_size]`` of the tokens that extend it
    to a real item's prefix, and ``child[l]`` maps (prefix row, token) to the row of
    the longer prefix. The last level's ``child`` gives the item id.
    """

    def __init__(self, codes: np.ndarray):
        codes = check_array("codes", codes, ndim=2, min_size=1)
        if collision_rate(codes) > 0:
            raise ValueError("codes must be unique per item (see disambiguate)")
        offsets = _level_offsets(codes)
        self.n_levels = codes.shape[1]
        self.vocab_size = int(offsets[-1])
        self.allowed, self.child = [], []
        parent = np.zeros(len(codes), dtype=np.int64)
        n_parents = 1
        for level in range(self.n_levels):
            token = codes[:, level].astype(np.int64) + offsets[level]
            if level == self.n_levels - 1:
                row = np.arange(len(codes), dtype=np.int64)
            else:
                _, row = np.unique(codes[:, : level + 1], axis=0, return_inverse=True)
                row = row.ravel().astype(np.int64)
            allowed = np.zeros((n_parents, self.vocab_size), dtype=bool)
            allowed[parent, token] = True
            child = np.full((n_parents, self.vocab_size), -1, dtype=np.int64)
            child[parent, token] = row
            self.allowed.append(allowed)
            self.child.append(child)
            parent, n_parents = row, int(row.max()) + 1
        self.level_tokens = [
            (offsets[level], offsets[level + 1]) for level in range(self.n_levels)
        ]


@torch.no_grad()
def beam_search(
    model: ItemicLM,
    tokens: np.ndarray,
    levels: np.ndarray,
    trie: CodeTrie,
    beam_width: int = 10,
    constrained: bool = True,
) -> np.ndarray:
    """Decode the ``beam_width`` most likely next items, one code level at a time.

    Every beam keeps its summed log-probability; at level ``l`` each beam is extended
    by every token of level ``l`` (only those that lead to a real item when
    ``constrained``) and the best ``beam_width`` extensions survive. The history is
    read once (:meth:`ItemicLM.prefill`); each level then adds one token per beam to
    its parent's attention cache (:meth:`ItemicLM.extend`).

    Parameters
    ----------
    model : ItemicLM
        A causal model over itemic tokens.
    tokens, levels : int arrays [U, T]
        History token streams and their levels (from :func:`to_tokens`).
    trie : CodeTrie
        The catalogue's valid code paths.
    beam_width : int
        Beams kept, and items returned, per user.
    constrained : bool
        Mask tokens that leave the trie. Unconstrained beams may end on codes no
        item has; those are returned as ``-1``.

    Returns
    -------
    int64[U, beam_width]
        Item ids, best first (``-1`` for a decoded code that is not an item).
    """
    check_instance("model", model, ItemicLM)
    tokens = check_array("tokens", tokens, ndim=2, min_size=1)
    levels = check_array("levels", levels, ndim=2, shape=tokens.shape)
    check_instance("trie", trie, CodeTrie)
    beam_width = check_int("beam_width", beam_width, minimum=1)
    check_instance("constrained", constrained, bool)
    device = torch_device()
    model.to(device).eval()
    n_users = len(tokens)
    hidden, cache = model.prefill(
        torch.as_tensor(tokens, dtype=torch.long, device=device),
        torch.as_tensor(levels, dtype=torch.long, device=device),
    )
    scores = torch.zeros(n_users, 1, device=device)
    rows = torch.zeros(n_users, 1, dtype=torch.long, device=device)
    valid = torch.ones(n_users, 1, dtype=torch.bool, device=device)
    users = torch.arange(n_users, device=device)[:, None]
    for level in range(trie.n_levels):
        lo, hi = trie.level_tokens[level]
        n_beams = rows.shape[1]
        logp = torch.log_softmax(model.logits(hidden), dim=-1)
        logp = logp.reshape(n_users, n_beams, -1)[..., lo:hi]
        allowed = torch.as_tensor(trie.allowed[level][:, lo:hi], device=device)
        ok = allowed[rows.clamp(min=0)] & valid[..., None]
        total = scores[..., None] + logp
        if constrained:
            total = torch.where(ok, total, -torch.inf)
        k = min(beam_width, total[0].numel())
        scores, index = total.reshape(n_users, -1).topk(k, dim=1)
        beam, token = index // (hi - lo), index % (hi - lo) + lo
        valid = ok.reshape(n_users, -1).gather(1, index)
        parent = rows.gather(1, beam).clamp(min=0)
        child = torch.as_tensor(trie.child[level], device=device)
        rows = torch.where(valid, child[parent, token], -1)
        if level + 1 < trie.n_levels:
            # every surviving beam continues from its parent's cache
            parents = (users * n_beams + beam).reshape(-1)
            cache = (cache[0][parents], cache[1][parents])
            hidden, cache = model.extend(
                cache, token.reshape(-1), torch.full_like(token.reshape(-1), level)
            )
    return rows.cpu().numpy()


# ------------------------------------------------------------ the experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the tokenizer the claim is checked on."""

    variant: str = "rq_kmeans"  # tokenizer under test: one of TOKENIZERS
    tokenizers: tuple[str, ...] = ("rq_kmeans", "random")  # tokenizers to train
    n_seeds: int = 3  # independent catalogues, sessions and models
    seed: int = 0  # first seed; seed s uses seed + s everywhere
    n_coarse: int = 20  # coarse groups of the catalogue
    n_fine: int = 5  # fine groups per coarse group
    items_per_fine: int = 10  # items per fine group (1,000 items in all)
    dim: int = 32  # embedding width
    codebook_sizes: tuple[int, ...] = (20, 5, 10)  # codes per semantic level
    n_users: int = 1600  # user histories
    seq_len: int = 6  # items per user; the last one is held out
    p_top: float = 0.7  # probability of the preferred next fine group
    d_model: int = 48  # Transformer width
    n_heads: int = 8  # attention heads
    epochs: int = 3  # passes over the users (34 steps of 48 users each)
    batch_size: int = 48  # users per step
    lr: float = 1e-2  # Adam learning rate
    n_eval_users: int = 200  # users whose held-out item is decoded
    beam_width: int = 10  # beams kept, and K of Recall@K
    constrained: bool = True  # beam search only along real items' code paths

    def __post_init__(self):
        check_choice("variant", self.variant, TOKENIZERS)
        if not isinstance(self.tokenizers, tuple) or not self.tokenizers:
            raise ValueError("tokenizers must be a non-empty tuple of names")
        for name in self.tokenizers:
            check_choice("tokenizers[i]", name, TOKENIZERS)
        if self.variant not in self.tokenizers or "random" not in self.tokenizers:
            raise ValueError("tokenizers must include the variant and 'random'")
        check_int("n_seeds", self.n_seeds, minimum=1)
        check_int("seed", self.seed, minimum=0)
        for name in ("n_coarse", "n_fine", "items_per_fine", "dim", "n_heads"):
            check_int(name, getattr(self, name), minimum=1)
        if not isinstance(self.codebook_sizes, tuple) or not self.codebook_sizes:
            raise ValueError("codebook_sizes must be a non-empty tuple of ints")
        for size in self.codebook_sizes:
            check_int("codebook_sizes[i]", size, minimum=1)
        check_int("n_users", self.n_users, minimum=1)
        check_int("seq_len", self.seq_len, minimum=2)
        check_float("p_top", self.p_top, minimum=0.0, maximum=1.0)
        check_int("d_model", self.d_model, minimum=1)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}"
            )
        check_int("epochs", self.epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_float("lr", self.lr, minimum=0.0, strict_minimum=True)
        check_int("n_eval_users", self.n_eval_users, minimum=1, maximum=self.n_users)
        check_int("beam_width", self.beam_width, minimum=1)
        check_instance("constrained", self.constrained, bool)


@dataclass(frozen=True)
class SeedResult:
    """One tokenizer on one seed."""

    tokenizer: str
    seed: int
    recall: float  # Recall@beam_width of the held-out next item
    semantic_collisions: float  # share of items whose semantic code is shared
    purity: float  # prefix_purity of the semantic code against the fine groups
    cohesion: float  # group_cohesion of the semantic code with the fine groups
    suffix_size: int  # size of the disambiguation level
    losses: tuple[float, ...]  # training loss per epoch (nats per token)


@dataclass(frozen=True)
class TrainedSeed:
    """What the first seed built, kept so that it can be decoded again.

    Attributes
    ----------
    seed : int
    catalogue : Catalogue
    sessions : int64[n_users, seq_len]
    codes : dict of str to int32[n_items, L + 1]
        The full codes of every tokenizer.
    models : dict of str to ItemicLM
        The trained model of every tokenizer.
    """

    seed: int
    catalogue: Catalogue
    sessions: np.ndarray
    codes: dict[str, np.ndarray]
    models: dict[str, ItemicLM]


@dataclass(frozen=True)
class Result:
    """Every tokenizer on every seed, and the first seed's trained models."""

    config: Config
    runs: tuple[SeedResult, ...]
    first_seed: TrainedSeed | None = None

    def get(self, tokenizer: str) -> list[SeedResult]:
        """The runs of one tokenizer, in seed order."""
        runs = [r for r in self.runs if r.tokenizer == tokenizer]
        if not runs:
            raise KeyError(f"no runs for tokenizer {tokenizer!r}")
        return runs

    def recalls(self, tokenizer: str) -> np.ndarray:
        """Recall of one tokenizer per seed."""
        return np.array([r.recall for r in self.get(tokenizer)])


def group_cohesion(codes: np.ndarray, labels: np.ndarray, depth: int) -> float:
    """Share of items that sit under their group's most common code prefix.

    The mirror image of :func:`paperlab.residual_quantization.prefix_purity`:
    purity asks whether each prefix holds one group, cohesion whether each group
    keeps one prefix. Codes that give every item its own prefix are perfectly pure
    and not cohesive at all; codes that give everything one prefix are the reverse.

    Parameters
    ----------
    codes : int array [n, L]
    labels : int array [n]
        The true group of every item.
    depth : int
        Levels of the code prefix, ``1..L``.
    """
    codes = check_array("codes", codes, ndim=2, min_size=1)
    labels = check_array("labels", labels, ndim=1, shape=(len(codes),))
    depth = check_int("depth", depth, minimum=1, maximum=codes.shape[1])
    _, prefix = np.unique(codes[:, :depth], axis=0, return_inverse=True)
    return prefix_purity(labels.reshape(-1, 1), prefix.ravel(), 1)


def _train(
    config: Config, codes: np.ndarray, sessions: np.ndarray, seed: int
) -> tuple[ItemicLM, tuple[float, ...]]:
    """Train a causal model on the token streams of every item but the last."""
    history, _ = leave_last_out(sessions)
    tokens, levels, vocab_size = to_tokens(history, codes)
    n_levels = codes.shape[1]
    torch.manual_seed(seed)
    model = ItemicLM(
        vocab_size, n_levels, config.seq_len * n_levels, config.d_model, config.n_heads
    )
    losses = train_next_item(
        model,
        tokens,
        side=[levels],
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=seed,
    )
    return model, tuple(losses)


def _decode(
    config: Config,
    model: ItemicLM,
    codes: np.ndarray,
    sessions: np.ndarray,
    constrained: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Beam-search the held-out item of the first ``n_eval_users`` users."""
    history, targets = leave_last_out(sessions[: config.n_eval_users])
    tokens, levels, _ = to_tokens(history, codes)
    # Training sees item slots 0 .. T-1 of the history; decoding one more item after
    # all T would need slot T, which no example trained. The decoder therefore drops
    # the oldest history item, so the decoded item takes the last trained slot.
    n_levels = codes.shape[1]
    decoded = beam_search(
        model,
        tokens[:, n_levels:],
        levels[:, n_levels:],
        CodeTrie(codes),
        beam_width=config.beam_width,
        constrained=constrained,
    )
    return decoded, targets


def _recall(decoded: np.ndarray, targets: np.ndarray) -> float:
    """Recall@K of the targets among the ``K = decoded.shape[1]`` decoded items."""
    hits = decoded == targets[:, None]
    k = decoded.shape[1]
    return recall_at_k(np.where(hits.any(axis=1), hits.argmax(axis=1), k), k)


def decode_held_out(
    result: Result, tokenizer: str, constrained: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the first seed's held-out items again, with or without the trie.

    The models, codes and users are those of ``run_experiment``; only the decoder's
    ``constrained`` flag changes, so the comparison is like for like.

    Parameters
    ----------
    result : Result
        From :func:`run_experiment` (which keeps the first seed's models).
    tokenizer : str
        One of ``result.config.tokenizers``.
    constrained : bool
        Mask tokens that leave the trie.

    Returns
    -------
    decoded : int64[n_eval_users, beam_width]
        Item ids, ``-1`` where a decoded code names no item.
    targets : int64[n_eval_users]
        The held-out items.
    """
    check_instance("result", result, Result)
    if result.first_seed is None:
        raise ValueError("result holds no trained models (run_experiment keeps them)")
    tokenizer = check_choice("tokenizer", tokenizer, result.config.tokenizers)
    check_instance("constrained", constrained, bool)
    trained = result.first_seed
    return _decode(
        result.config,
        trained.models[tokenizer],
        trained.codes[tokenizer],
        trained.sessions,
        constrained,
    )


def run_experiment(config: Config) -> Result:
    """Tokenize, train and decode with every tokenizer on every seed.

    For seed ``s``: draw a catalogue and user histories, build the itemic codes of
    each tokenizer, train a one-block causal Transformer on the histories' token
    streams (every item but the last), then beam-search the next item for
    ``n_eval_users`` users and count how often the held-out item is among the
    ``beam_width`` decoded ones.

    Returns
    -------
    Result
        With the first seed's models and codes in ``first_seed``.
    """
    check_instance("config", config, Config)
    runs, first_seed = [], None
    depth = len(config.codebook_sizes)
    for s in range(config.n_seeds):
        seed = config.seed + s
        catalogue = make_catalogue(
            config.n_coarse,
            config.n_fine,
            config.items_per_fine,
            config.dim,
            seed=seed,
        )
        sessions = make_sessions(
            catalogue.fine, config.n_users, config.seq_len, config.p_top, seed=seed
        )
        all_codes, models = {}, {}
        for tokenizer in config.tokenizers:
            if tokenizer == "random" and "rq_kmeans" in all_codes:
                # what itemic_codes(..., "random") returns, without redoing RQ-Kmeans
                suffix_size = int(all_codes["rq_kmeans"][:, -1].max()) + 1
                sizes = [*config.codebook_sizes, suffix_size]
                codes = random_codes(catalogue.n_items, sizes, seed=seed)
                semantic = codes[:, :-1]
            else:
                codes, semantic = itemic_codes(
                    catalogue.embeddings, config.codebook_sizes, tokenizer, seed=seed
                )
            model, losses = _train(config, codes, sessions, seed)
            decoded, targets = _decode(
                config, model, codes, sessions, config.constrained
            )
            recall = _recall(decoded, targets)
            log.info("seed %d %s: Recall@K %.3f", seed, tokenizer, recall)
            runs.append(
                SeedResult(
                    tokenizer=tokenizer,
                    seed=seed,
                    recall=recall,
                    semantic_collisions=collision_rate(semantic),
                    purity=prefix_purity(semantic, catalogue.fine, depth),
                    cohesion=group_cohesion(semantic, catalogue.fine, depth),
                    suffix_size=int(codes[:, -1].max()) + 1,
                    losses=losses,
                )
            )
            all_codes[tokenizer], models[tokenizer] = codes, model
        if s == 0:
            first_seed = TrainedSeed(seed, catalogue, sessions, all_codes, models)
    return Result(config, tuple(runs), first_seed)


def check_claim(result: Result) -> None:
    """Check the chapter's claim on the tokenizer named by ``result.config.variant``.

    On every seed the tokenizer under test must

    1. have semantic codes that name the item's fine group: the full prefix holds
       one fine group for at least 80% of items (``prefix_purity >= 0.8``) and each
       fine group keeps one prefix for at least 80% of its items
       (``group_cohesion >= 0.8``). Purity alone is not enough: random codes reach
       about 0.65 only because most of their prefixes hold a single item, and their
       cohesion is about 0.1;
    2. reach a Recall@K at least 0.10 above random codes of the same length and
       vocabulary, decoded the same way.

    Raises
    ------
    paperlab.claims.ClaimFailed
        If either part fails on some seed; the message names the seed and numbers.
    """
    check_instance("result", result, Result)
    variant = result.config.variant
    for run, ref in zip(result.get(variant), result.get("random"), strict=True):
        require(
            run.purity >= MIN_PURITY,
            f"seed {run.seed}: {variant} codes name the fine group for only "
            f"{run.purity:.2f} of items (need >= {MIN_PURITY})",
        )
        require(
            run.cohesion >= MIN_COHESION,
            f"seed {run.seed}: {variant} codes keep only {run.cohesion:.2f} of items "
            f"under their fine group's prefix (need >= {MIN_COHESION})",
        )
        require(
            run.recall >= ref.recall + MIN_RECALL_GAIN,
            f"seed {run.seed}: {variant} Recall@K {run.recall:.3f} is not "
            f"{MIN_RECALL_GAIN} above random codes' {ref.recall:.3f}",
        )

r"""A tiny character-level causal transformer with a key-value cache.

The efficient-transformer chapters need a *real* decoder to work on: its weights to
quantize, its activations to calibrate on, its key/value cache to compress, a large and
a small version of it to speculate with. This module trains one in seconds on the
shipped corpus (Hamlet and Macbeth, ``paperlab/data/shakespeare.txt``).

The model is a pre-LayerNorm decoder (Radford et al., 2019):

.. math::

    h_0 = E[x_t] + P[t], \qquad
    h \leftarrow h + \mathrm{Attn}(\mathrm{LN}(h)), \qquad
    h \leftarrow h + \mathrm{MLP}(\mathrm{LN}(h)), \qquad
    \mathrm{logits} = \mathrm{LN}(h)\, W_{\mathrm{head}}^\top,

with learned positional embeddings ``P``, causal multi-head attention
:math:`\mathrm{softmax}(Q K^\top / \sqrt{d_h} + M) V` written out (no fused kernel),
and a GELU MLP. Every linear layer has a stable name that chapters can reach, replace
or quantize: ``model.blocks[i].attn.{q_proj, k_proj, v_proj, out_proj}``,
``model.blocks[i].mlp.{fc_in, fc_out}`` and ``model.head``. The output head is *untied*
from the token embedding so that it can be quantized on its own.

A :class:`KVCache` stores each layer's keys and values; :func:`generate` with
``use_cache=True`` feeds one token per step and gives the same tokens as recomputing
the whole window.

Measured costs (book's 2-core machine, one torch thread): ``pretrained_tiny_lm("base")``
(250 steps of 16 windows) takes 5.8 s of CPU time, which was 3.8 s of wall-clock on a
lightly loaded machine and 14-20 s while six other jobs shared the two cores;
``"draft"`` takes 1.3 s of CPU time (3-4 s wall-clock when busy). Training is
FLOP-bound (about 30 GFLOP/s), so fewer steps cost quality fast: 200 steps gave
3.61 bits/char instead of 3.50. See :data:`SIZES` for the settings and the
validation bits per character they reach. The first ``import torch`` of a process
adds about 1.2 s.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.resources
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperlab.optim import Adam
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
    check_probability,
)

__all__ = [
    "load_corpus",
    "split_corpus",
    "CharTokenizer",
    "TinyLMConfig",
    "KVCache",
    "TinyCausalLM",
    "TrainedLM",
    "SIZES",
    "train_tiny_lm",
    "pretrained_tiny_lm",
    "evaluate_loss",
    "bits_per_char",
    "unigram_bits_per_char",
    "generate",
    "prefill",
    "linear_inputs",
]


# ---------------------------------------------------------------------------------
# Corpus and tokenizer


def load_corpus() -> str:
    """Return the shipped corpus (Hamlet then Macbeth), read as UTF-8 text.

    It is read through :mod:`importlib.resources`, so it works from a source checkout
    and from an installed package alike.
    """
    resource = importlib.resources.files("paperlab").joinpath("data/shakespeare.txt")
    return resource.read_text(encoding="utf-8")


def split_corpus(text: str | None = None, val_fraction: float = 0.1) -> tuple[str, str]:
    """Split a text into a training part and a held-out tail.

    Parameters
    ----------
    text : str, optional
        The text to split; the shipped corpus when omitted.
    val_fraction : float
        Fraction of characters, taken from the *end* of the text, held out for
        validation. With the default corpus the last 10% is the end of Macbeth.

    Returns
    -------
    (train, val) : tuple of str
    """
    if text is None:
        text = load_corpus()
    check_instance("text", text, str)
    val_fraction = check_probability("val_fraction", val_fraction)
    n_val = int(round(len(text) * val_fraction))
    return text[: len(text) - n_val], text[len(text) - n_val :]


class CharTokenizer:
    """Maps characters to integer ids and back.

    Parameters
    ----------
    chars : str
        The vocabulary, one character per id, without repeats.

    Attributes
    ----------
    chars : str
        Character of each id.
    vocab_size : int
        Number of characters.
    """

    def __init__(self, chars: str):
        check_instance("chars", chars, str)
        if not chars:
            raise ValueError("chars must hold at least one character")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must not repeat a character")
        self.chars = chars
        self._ids = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer of the sorted distinct characters of ``text``."""
        check_instance("text", text, str)
        if not text:
            raise ValueError("text must not be empty")
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of ``text``, int64 array of shape (len(text),).

        Raises
        ------
        ValueError
            If ``text`` holds characters outside the vocabulary (they are named).
        """
        check_instance("text", text, str)
        unknown = sorted(set(text) - self._ids.keys())
        if unknown:
            raise ValueError(f"text holds characters not in the vocabulary: {unknown}")
        return np.fromiter(
            (self._ids[c] for c in text), dtype=np.int64, count=len(text)
        )

    def decode(self, ids) -> str:
        """The text of a 1-D sequence of ids (array, tensor or list)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        ids = check_array("ids", ids, ndim=1)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids must hold integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must lie in 0..{self.vocab_size - 1}")
        return "".join(self.chars[i] for i in ids.tolist())


# ---------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class TinyLMConfig:
    """Sizes of a :class:`TinyCausalLM`."""

    vocab_size: int  # number of token ids
    d_model: int = 64  # width of the residual stream
    n_layers: int = 2  # decoder blocks
    n_heads: int = 4  # attention heads; must divide d_model
    context: int = 64  # longest sequence (number of learned positions)
    d_ff: int | None = None  # hidden width of the MLP; None means 4 * d_model

    def __post_init__(self):
        check_int("vocab_size", self.vocab_size, minimum=1)
        check_int("d_model", self.d_model, minimum=1)
        check_int("n_layers", self.n_layers, minimum=1)
        check_int("n_heads", self.n_heads, minimum=1)
        check_int("context", self.context, minimum=1)
        if self.d_ff is not None:
            check_int("d_ff", self.d_ff, minimum=1)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"n_heads must divide d_model, got d_model={self.d_model}, "
                f"n_heads={self.n_heads}"
            )

    @property
    def ff_dim(self) -> int:
        """The MLP's hidden width."""
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    @property
    def d_head(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads


class KVCache:
    """Keys and values of the tokens a model has already seen, per layer.

    Parameters
    ----------
    n_layers : int
        Number of decoder blocks of the model it serves.

    Attributes
    ----------
    keys, values : list of torch.Tensor or None
        Per layer, a tensor of shape (batch, n_heads, length, d_head), or ``None``
        before the first token.
    """

    def __init__(self, n_layers: int):
        self.n_layers = check_int("n_layers", n_layers, minimum=1)
        self.keys: list[torch.Tensor | None] = [None] * self.n_layers
        self.values: list[torch.Tensor | None] = [None] * self.n_layers

    @property
    def length(self) -> int:
        """Number of cached positions (that of the last layer written)."""
        last = self.keys[-1]
        return 0 if last is None else int(last.shape[2])

    def __len__(self) -> int:
        return self.length

    def append(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys and values of one layer; return all of that layer's.

        ``k`` and ``v`` have shape (batch, n_heads, new, d_head).
        """
        layer = check_int("layer", layer, minimum=0, maximum=self.n_layers - 1)
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def nbytes(self) -> int:
        """Bytes the cached tensors hold (elements times element size)."""
        return sum(
            t.numel() * t.element_size()
            for t in (*self.keys, *self.values)
            if t is not None
        )

    def as_numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys and values of batch entry 0 as float32 arrays.

        Returns
        -------
        K, V : ndarray of shape (n_layers, n_heads, length, d_head)

        Raises
        ------
        ValueError
            If the cache is empty or only partly filled.
        """
        if any(k is None for k in self.keys):
            raise ValueError("the cache is empty: run the model with it first")
        keys = [k[0].detach().cpu().float().numpy() for k in self.keys]
        values = [v[0].detach().cpu().float().numpy() for v in self.values]
        return np.stack(keys), np.stack(values)


class CausalSelfAttention(nn.Module):
    """Multi-head attention over past positions, with separate projections."""

    def __init__(self, config: TinyLMConfig):
        super().__init__()
        d = config.d_model
        self.n_heads = config.n_heads
        self.d_head = config.d_head
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> (B, n_heads, T, d_head)."""
        batch, seq_len, _ = x.shape
        return x.view(batch, seq_len, self.n_heads, self.d_head).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        q = self._heads(self.q_proj(x))
        k = self._heads(self.k_proj(x))
        v = self._heads(self.v_proj(x))
        past = 0
        if cache is not None:
            past = cache.keys[layer].shape[2] if cache.keys[layer] is not None else 0
            k, v = cache.append(layer, k, v)
        seq_len, total = q.shape[2], k.shape[2]
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
        # Query i sits at absolute position past + i and may see keys 0..past + i.
        rows = torch.arange(seq_len, device=x.device)[:, None] + past
        cols = torch.arange(total, device=x.device)[None, :]
        scores = scores.masked_fill(cols > rows, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        out = out.transpose(1, 2).reshape(x.shape)
        return self.out_proj(out)


class MLP(nn.Module):
    """Position-wise feed-forward layer: ``fc_out(GELU(fc_in(x)))``."""

    def __init__(self, config: TinyLMConfig):
        super().__init__()
        self.fc_in = nn.Linear(config.d_model, config.ff_dim)
        self.fc_out = nn.Linear(config.ff_dim, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.gelu(self.fc_in(x)))


class Block(nn.Module):
    """One pre-LayerNorm decoder block: attention then MLP, each residual."""

    def __init__(self, config: TinyLMConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class TinyCausalLM(nn.Module):
    """A small pre-LayerNorm decoder-only language model.

    Parameters
    ----------
    config : TinyLMConfig
        Its sizes.

    Notes
    -----
    Parameters are initialised from torch's global generator; :func:`train_tiny_lm`
    seeds it (inside :func:`torch.random.fork_rng`) before building the model.
    """

    def __init__(self, config: TinyLMConfig):
        super().__init__()
        self.config = check_instance("config", config, TinyLMConfig)
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.context, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def new_cache(self) -> KVCache:
        """An empty :class:`KVCache` with one slot per block."""
        return KVCache(self.config.n_layers)

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Next-token logits for every position.

        Parameters
        ----------
        ids : torch.LongTensor of shape (B, T)
            Token ids.
        cache : KVCache, optional
            Keys and values of earlier tokens. The new tokens take the positions
            after the cached ones, and their keys and values are appended to it.

        Returns
        -------
        torch.Tensor of shape (B, T, vocab_size)

        Raises
        ------
        ValueError
            If the ids are out of range, or the cached plus new tokens exceed
            ``config.context``.
        """
        past = self._check_forward(ids, cache)
        positions = torch.arange(past, past + ids.shape[1], device=ids.device)
        h = self.tok_emb(ids) + self.pos_emb(positions)
        for layer, block in enumerate(self.blocks):
            h = block(h, cache, layer)
        return self.head(self.ln_f(h))

    def _ids_in_range(self, ids: torch.Tensor) -> bool:
        low, high = torch.aminmax(ids)
        return bool(low >= 0) and bool(high < self.config.vocab_size)

    def _check_forward(self, ids, cache) -> int:
        """Validate a forward call; return the number of cached positions."""
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long:
            raise TypeError("ids must be a torch.LongTensor")
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (B, T), got {tuple(ids.shape)}")
        if ids.numel() and not self._ids_in_range(ids):
            raise ValueError(f"ids must lie in 0..{self.config.vocab_size - 1}")
        past = 0
        if cache is not None:
            check_instance("cache", cache, KVCache)
            if cache.n_layers != self.config.n_layers:
                raise ValueError(
                    f"cache has {cache.n_layers} layers, the model "
                    f"{self.config.n_layers}"
                )
            past = cache.length
        if past + ids.shape[1] > self.config.context:
            raise ValueError(
                f"{past} cached + {ids.shape[1]} new tokens exceed the context of "
                f"{self.config.context}"
            )
        return past


# ---------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class TrainedLM:
    """A trained model, its tokenizer and its training curve."""

    model: TinyCausalLM  # in eval mode
    tokenizer: CharTokenizer
    losses: tuple[float, ...]  # training cross-entropy (nats/char), one per step

    def fresh_copy(self) -> TrainedLM:
        """A deep copy, safe to modify (e.g. quantize) without touching this one."""
        return TrainedLM(copy.deepcopy(self.model), self.tokenizer, self.losses)


# Settings of the two shipped sizes, chosen to train in a few seconds on one CPU
# thread. Held-out bits/char (last 10% of the corpus, seed 0): base 3.50, draft 3.62;
# for comparison, add-one smoothed unigram 4.77 and bigram 3.64 bits/char.
SIZES: dict[str, dict] = {
    "base": dict(
        d_model=64, n_layers=2, n_heads=4, context=64, steps=250, batch_size=16,
        lr=1e-2,
    ),
    "draft": dict(
        d_model=32, n_layers=1, n_heads=2, context=64, steps=200, batch_size=16,
        lr=1e-2,
    ),
}  # fmt: skip


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one thread: more threads stall on a shared 2-core machine, and
    one thread makes the training bit-for-bit reproducible."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _lr_at(step: int, steps: int, lr: float) -> float:
    """Linear warm-up over the first 5% of steps, then cosine decay to lr / 10."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_tiny_lm(
    config: TinyLMConfig,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    text: str | None = None,
) -> TrainedLM:
    """Train a :class:`TinyCausalLM` on random windows of the training split.

    Each step draws ``batch_size`` windows of ``config.context + 1`` characters from
    the first 90% of ``text`` (see :func:`split_corpus`) and takes one Adam step
    (:class:`paperlab.optim.Adam`, weight decay 0) on the mean next-character
    cross-entropy, with the learning-rate schedule of ``_lr_at`` and gradient norm
    clipped at 1.

    Parameters
    ----------
    config : TinyLMConfig
        Model sizes; ``vocab_size`` must equal the tokenizer's (65 for the corpus).
    steps, batch_size : int
        Number of optimiser steps and windows per step.
    lr : float
        Peak learning rate.
    seed : int
        Seeds the initialisation and the windows; the same seed gives the same model.
    text : str, optional
        Training text; the shipped corpus when omitted. The tokenizer is built from
        the whole text.

    Returns
    -------
    TrainedLM
        The model (CPU, eval mode), its tokenizer and the loss of every step.

    Raises
    ------
    TypeError, ValueError
        On bad arguments, a vocabulary size that does not match the text, or a
        training split shorter than one window.
    """
    check_instance("config", config, TinyLMConfig)
    steps = check_int("steps", steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
    seed = check_int("seed", seed, minimum=0)
    text = load_corpus() if text is None else check_instance("text", text, str)
    tokenizer = CharTokenizer.from_text(text)
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(
            f"config.vocab_size is {config.vocab_size} but the text has "
            f"{tokenizer.vocab_size} distinct characters"
        )
    train_ids = torch.from_numpy(tokenizer.encode(split_corpus(text)[0]))
    if len(train_ids) < config.context + 1:
        raise ValueError(
            f"the training split has {len(train_ids)} characters, fewer than one "
            f"window of context + 1 = {config.context + 1}"
        )
    with _one_torch_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyCausalLM(config)
        losses = _fit(model, train_ids, steps, batch_size, lr, seed)
    model.eval()
    return TrainedLM(model, tokenizer, tuple(losses))


def _fit(
    model: TinyCausalLM,
    train_ids: torch.Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> list[float]:
    """The training loop of :func:`train_tiny_lm`; returns the per-step losses."""
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = Adam(params, lr=lr)
    window = model.config.context + 1
    offsets = torch.arange(window)
    losses = []
    model.train()
    for step in range(steps):
        starts = rng.integers(0, len(train_ids) - window + 1, size=batch_size)
        batch = train_ids[torch.from_numpy(starts)[:, None] + offsets]
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch[:, 1:].ravel()
        )
        model.zero_grad(set_to_none=False)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        # Adam's settings are a NamedTuple; the schedule swaps in this step's rate.
        optimizer.settings = optimizer.settings._replace(lr=_lr_at(step, steps, lr))
        optimizer.step([p.grad for p in params])
        losses.append(loss.item())
    return losses


def pretrained_tiny_lm(size: str = "base", seed: int = 0) -> TrainedLM:
    """The shipped-corpus model of a named size, trained once per process.

    Parameters
    ----------
    size : {"base", "draft"}
        ``"base"``: d_model 64, 2 layers, 4 heads (the target model); ``"draft"``:
        d_model 32, 1 layer, 2 heads (a cheaper draft model). Both have context 64;
        see :data:`SIZES`.
    seed : int
        Training seed.

    Returns
    -------
    TrainedLM
        Shared between callers (cached in memory, nothing is written to disk): call
        :meth:`TrainedLM.fresh_copy` before changing its weights.
    """
    check_choice("size", size, tuple(SIZES))
    return _pretrained(size, check_int("seed", seed, minimum=0))


@functools.lru_cache(maxsize=8)
def _pretrained(size: str, seed: int) -> TrainedLM:
    """The cached training behind :func:`pretrained_tiny_lm` (normalised arguments,
    so that ``("base")`` and ``("base", 0)`` share one entry)."""
    settings = dict(SIZES[size])
    steps, batch_size, lr = (settings.pop(k) for k in ("steps", "batch_size", "lr"))
    vocab_size = CharTokenizer.from_text(load_corpus()).vocab_size
    config = TinyLMConfig(vocab_size=vocab_size, **settings)
    return train_tiny_lm(config, steps, batch_size, lr, seed)


# ---------------------------------------------------------------------------------
# Evaluation and generation


def _check_model(model) -> TinyCausalLM:
    return check_instance("model", model, TinyCausalLM)


def _check_vocab_ids(name: str, ids, vocab: int, min_size: int) -> np.ndarray:
    """1-D integer token ids in ``0..vocab-1`` (a tensor or array), as int64."""
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    ids = check_array(name, ids, ndim=1, min_size=min_size)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(f"{name} must lie in 0..{vocab - 1}")
    return ids.astype(np.int64)


def _check_ids(name: str, ids, model: TinyCausalLM, min_size: int) -> np.ndarray:
    return _check_vocab_ids(name, ids, model.config.vocab_size, min_size)


def evaluate_loss(
    model: TinyCausalLM, ids, context: int, max_windows: int | None = None
) -> float:
    """Mean next-character cross-entropy (nats/char) over non-overlapping windows.

    The text is cut into windows of ``context + 1`` ids that overlap by one (inputs
    ``ids[s : s + context]``, targets shifted by one, ``s = 0, context, ...``), so
    every id after the first is predicted once; a window's first predictions see
    little history, as in training.

    Parameters
    ----------
    model : TinyCausalLM
    ids : array_like of int, shape (n,)
        Token ids, n >= context + 1.
    context : int
        Window length, at most ``model.config.context``.
    max_windows : int, optional
        Use at most this many windows, spread evenly over the text.

    Returns
    -------
    float
        Mean cross-entropy in nats per character; see :func:`bits_per_char`.
    """
    model = _check_model(model)
    context = check_int("context", context, minimum=1, maximum=model.config.context)
    ids = _check_ids("ids", ids, model, min_size=context + 1)
    n_windows = (len(ids) - 1) // context
    starts = np.arange(n_windows) * context
    if max_windows is not None:
        max_windows = check_int("max_windows", max_windows, minimum=1)
        if max_windows < n_windows:
            starts = starts[np.linspace(0, n_windows - 1, max_windows).astype(int)]
    windows = torch.from_numpy(ids[starts[:, None] + np.arange(context + 1)])
    total = 0.0
    with torch.no_grad():
        for chunk in windows.split(256):
            logits = model(chunk[:, :-1])
            total += float(
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    chunk[:, 1:].ravel(),
                    reduction="sum",
                )
            )
    return total / (len(starts) * context)


def bits_per_char(loss_nats: float) -> float:
    """Convert a cross-entropy in nats per character to bits per character."""
    return check_float("loss_nats", loss_nats, minimum=0.0) / math.log(2)


def unigram_bits_per_char(train_ids, val_ids, vocab_size: int) -> float:
    """Cross-entropy (bits/char) of ``val_ids`` under the add-one smoothed character
    frequencies of ``train_ids``: the baseline a language model must beat."""
    vocab_size = check_int("vocab_size", vocab_size, minimum=1)
    train_ids = _check_vocab_ids("train_ids", train_ids, vocab_size, min_size=0)
    val_ids = _check_vocab_ids("val_ids", val_ids, vocab_size, min_size=1)
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0
    probs = counts / counts.sum()
    return float(-np.mean(np.log2(probs[val_ids])))


def prefill(model: TinyCausalLM, ids) -> tuple[torch.Tensor, KVCache]:
    """Run ``model`` on one sequence and return its logits and filled cache.

    Parameters
    ----------
    model : TinyCausalLM
    ids : array_like of int, shape (T,), 1 <= T <= context

    Returns
    -------
    logits : torch.Tensor of shape (T, vocab_size)
    cache : KVCache
        Keys and values of the T positions; ``cache.as_numpy()`` gives arrays of
        shape (n_layers, n_heads, T, d_head).
    """
    model = _check_model(model)
    ids = _check_ids("ids", ids, model, min_size=1)
    cache = model.new_cache()
    with torch.no_grad():
        logits = model(torch.from_numpy(ids)[None], cache)
    return logits[0], cache


def generate(
    model: TinyCausalLM, prompt_ids, n_new: int, use_cache: bool = True
) -> np.ndarray:
    """Greedy decoding: append the most likely next id ``n_new`` times.

    The model sees at most its last ``context`` ids. With ``use_cache`` each step
    feeds only the newest id and reuses the cached keys and values; once the
    sequence is longer than the context, the positions would shift, so each further
    step recomputes the window from scratch (exactly what ``use_cache=False`` does).

    Parameters
    ----------
    model : TinyCausalLM
    prompt_ids : array_like of int, shape (n_prompt,), n_prompt >= 1
    n_new : int
        Number of ids to generate.
    use_cache : bool

    Returns
    -------
    ndarray of int64, shape (n_new,)
        The generated ids (without the prompt).
    """
    model = _check_model(model)
    prompt = _check_ids("prompt_ids", prompt_ids, model, min_size=1)
    n_new = check_int("n_new", n_new, minimum=0)
    check_instance("use_cache", use_cache, bool)
    context = model.config.context
    seq = prompt.tolist()
    cache: KVCache | None = None
    with torch.no_grad():
        for _ in range(n_new):
            if use_cache and cache is not None and cache.length < context:
                feed = seq[-1:]
            else:
                feed = seq[-context:]
                cache = model.new_cache() if use_cache else None
            logits = model(torch.tensor([feed]), cache)
            seq.append(int(logits[0, -1].argmax()))
    return np.asarray(seq[len(prompt) :], dtype=np.int64)


def linear_inputs(model: TinyCausalLM, ids, name: str) -> np.ndarray:
    """The inputs that the linear layer ``name`` receives when the model reads ids.

    These are the calibration activations ``X`` of GPTQ (Hessian ``2 X^T X``).

    Parameters
    ----------
    model : TinyCausalLM
    ids : array_like of int, shape (B, T) or (T,), T <= context
        Calibration windows.
    name : str
        A linear layer's name, e.g. ``"blocks.0.attn.q_proj"`` or ``"head"``.

    Returns
    -------
    ndarray of float32, shape (B * T, d_in)
    """
    model = _check_model(model)
    check_instance("name", name, str)
    try:
        layer = model.get_submodule(name)
    except AttributeError as err:
        raise ValueError(f"name {name!r} is not a submodule of the model") from err
    if not isinstance(layer, nn.Linear):
        raise ValueError(f"name {name!r} is a {type(layer).__name__}, not a Linear")
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    ids = check_array("ids", ids, min_size=1)
    rows = ids.reshape(1, -1) if ids.ndim == 1 else ids
    if rows.ndim != 2:
        raise ValueError(f"ids must have shape (B, T) or (T,), got {ids.shape}")
    for row_index, row in enumerate(rows):
        _check_ids(f"ids[{row_index}]", row, model, min_size=1)
    captured: list[torch.Tensor] = []
    hook = layer.register_forward_hook(
        lambda _module, inputs, _output: captured.append(inputs[0].detach())
    )
    try:
        with torch.no_grad():
            model(torch.from_numpy(rows.astype(np.int64)))
    finally:
        hook.remove()
    X = captured[0]
    return X.reshape(-1, X.shape[-1]).cpu().float().numpy()

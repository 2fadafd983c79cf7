r"""Infini-attention: local attention plus a compressive memory, on passkey retrieval.

Huang, Zhang, Fang and Yu, "Probing the Limits of Compressive Memory: A Study of
Infini-Attention in Small-Scale Pretraining", arXiv:2512.23862. The mechanism they
study is Infini-attention (Munkhdalai, Faruqui and Gopal, 2024, arXiv:2404.07143).

A sequence is cut into segments of ``seg_len`` tokens. Inside a segment every head runs
ordinary causal softmax attention (``A_dot``). Across segments each head keeps a fixed
``d_head x d_head`` matrix ``M`` and a vector ``z``. The equations, numbered as in the
chapter, with :math:`\sigma(x) = \mathrm{ELU}(x) + 1`:

.. math::

    A_\text{mem} = \frac{\sigma(Q) M_{s-1}}{\sigma(Q) z_{s-1}}
    \qquad \text{(Eq. 1, retrieval)}

    M_s = M_{s-1} + \sigma(K)^\top V, \quad
    z_s = z_{s-1} + \textstyle\sum_t \sigma(K_t)
    \qquad \text{(Eq. 2, linear update)}

    M_s = M_{s-1} + \sigma(K)^\top \Big(V - \frac{\sigma(K) M_{s-1}}
    {\sigma(K) z_{s-1}}\Big)
    \qquad \text{(Eq. 3, delta update)}

    A = \mathrm{sigmoid}(\beta)\, A_\text{mem}
        + (1 - \mathrm{sigmoid}(\beta))\, A_\text{dot}
    \qquad \text{(Eq. 4, balance gate)}

with one learned scalar :math:`\beta` per head. The chapter trains a one-layer,
two-head block on a passkey task and compares it with the same block without the memory
path (attention inside the current segment only).

Only the model's output at the last position (the query token) is ever used, and in a
one-layer block that output depends on the other positions only through their keys and
values. :meth:`InfiniBlock.forward` therefore computes the query, the local attention
and the memory retrieval for the last position alone; :meth:`InfiniBlock.sequence_mix`
computes Eq. 4 at every position, and the tests check that the two agree.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from paperlab import plotting
from paperlab.claims import require
from paperlab.optim import Adam
from paperlab.seeding import torch_device
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "VARIANTS",
    "MEMORY_RULES",
    "Vocab",
    "make_passkey_batch",
    "sigma",
    "retrieve",
    "update_memory",
    "local_attention",
    "InfiniBlock",
    "train_model",
    "gate_accuracy",
    "Config",
    "Result",
    "run_experiment",
    "check_claim",
    "plot_accuracy",
    "plot_gate_sweep",
]

logger = logging.getLogger(__name__)

VARIANTS = ("infini", "local")
MEMORY_RULES = ("delta", "linear")

# Thresholds of check_claim; the measured values are in the chapter and its tests.
MIN_GAIN_OVER_LOCAL = 0.25  # accuracy points at claim_len, Infini minus local-only
MIN_GATE_LOSS = 0.25  # accuracy lost at claim_len when the gate is forced to 0
MIN_LENGTH_DROP = 0.0  # accuracy at the shortest length minus at the longest

_NAMES = {"infini": "Infini-attention", "local": "local only"}
EPS = 1e-6  # keeps Eq. 1 and Eq. 3 finite while z is still zero (first segment)


@dataclass(frozen=True)
class Vocab:
    """Token ids of the passkey task: fillers, then passkeys, then the query token."""

    n_filler: int = 64  # distractor tokens
    n_passkey: int = 16  # possible answers

    def __post_init__(self):
        check_int("n_filler", self.n_filler, minimum=1)
        check_int("n_passkey", self.n_passkey, minimum=2)

    @property
    def query(self) -> int:
        """The id of the query token that ends every sequence."""
        return self.n_filler + self.n_passkey

    @property
    def size(self) -> int:
        """Number of token ids."""
        return self.n_filler + self.n_passkey + 1


def make_passkey_batch(
    n_seqs: int, seq_len: int, rng: np.random.Generator, vocab: Vocab = Vocab()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw passkey sequences: fillers, one passkey anywhere, the query token last.

    Parameters
    ----------
    n_seqs : int
        Number of sequences.
    seq_len : int
        Tokens per sequence, at least 2.
    rng : numpy.random.Generator
    vocab : Vocab

    Returns
    -------
    tokens : ndarray of shape (n_seqs, seq_len), int64
    targets : ndarray of shape (n_seqs,), int64
        The passkey, as an index in ``0 .. n_passkey - 1``.
    positions : ndarray of shape (n_seqs,), int64
        Where the passkey sits, uniform over ``0 .. seq_len - 2``.
    """
    n_seqs = check_int("n_seqs", n_seqs, minimum=1)
    seq_len = check_int("seq_len", seq_len, minimum=2)
    check_instance("rng", rng, np.random.Generator)
    check_instance("vocab", vocab, Vocab)
    tokens = rng.integers(0, vocab.n_filler, size=(n_seqs, seq_len))
    targets = rng.integers(0, vocab.n_passkey, size=n_seqs)
    positions = rng.integers(0, seq_len - 1, size=n_seqs)
    rows = np.arange(n_seqs)
    tokens[rows, positions] = vocab.n_filler + targets
    tokens[:, -1] = vocab.query
    return tokens.astype(np.int64), targets.astype(np.int64), positions.astype(np.int64)


def _check_tensors(min_ndim: dict[str, int], **tensors) -> None:
    """Check that each named value is a floating-point torch tensor with at least
    ``min_ndim[name]`` dimensions, and that all share one dtype and device."""
    for name, x in tensors.items():
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not torch.is_floating_point(x):
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
        if x.ndim < min_ndim[name]:
            raise ValueError(
                f"{name} must have at least {min_ndim[name]} dimension(s), "
                f"got shape {tuple(x.shape)}"
            )
    first, *rest = tensors.items()
    for name, x in rest:
        if x.dtype != first[1].dtype or x.device != first[1].device:
            raise TypeError(
                f"{name} must have the dtype and device of {first[0]} "
                f"({first[1].dtype}, {first[1].device}), got {x.dtype}, {x.device}"
            )


def _check_sizes(what: str, *pairs: tuple[str, int, str, int]) -> None:
    """Raise a ValueError naming both sizes when two that must agree differ."""
    for name_a, size_a, name_b, size_b in pairs:
        if size_a != size_b:
            raise ValueError(
                f"{what}: {name_a} ({size_a}) must equal {name_b} ({size_b})"
            )


def _check_batch(**leading: torch.Size) -> None:
    """The leading (batch and head) dimensions must broadcast against each other."""
    try:
        torch.broadcast_shapes(*leading.values())
    except RuntimeError as err:
        shown = ", ".join(f"{n} {tuple(s)}" for n, s in leading.items())
        raise ValueError(
            f"leading (batch, head) dimensions do not match: {shown}"
        ) from err


def sigma(x: torch.Tensor) -> torch.Tensor:
    r"""The feature map :math:`\sigma(x) = \mathrm{ELU}(x) + 1`, positive everywhere."""
    _check_tensors({"x": 0}, x=x)
    return torch.nn.functional.elu(x) + 1.0


def retrieve(sq: torch.Tensor, M: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    r"""Read the memory with feature-mapped queries (Eq. 1).

    Parameters
    ----------
    sq : torch.Tensor of shape (..., n, d_key)
        :math:`\sigma(Q)` for ``n`` queries.
    M : torch.Tensor of shape (..., d_key, d_value)
    z : torch.Tensor of shape (..., d_key)

    Returns
    -------
    torch.Tensor of shape (..., n, d_value)
        ``sq @ M / (sq @ z)``; zero while the memory is empty.

    Raises
    ------
    TypeError
        If an argument is not a floating-point torch tensor, or their dtypes or
        devices differ.
    ValueError
        If the key widths of ``sq``, ``M`` and ``z`` differ or the leading
        dimensions do not broadcast.
    """
    _check_tensors({"sq": 2, "M": 2, "z": 1}, sq=sq, M=M, z=z)
    _check_sizes(
        "retrieve",
        ("sq.shape[-1]", sq.shape[-1], "M.shape[-2]", M.shape[-2]),
        ("z.shape[-1]", z.shape[-1], "M.shape[-2]", M.shape[-2]),
    )
    _check_batch(sq=sq.shape[:-2], M=M.shape[:-2], z=z.shape[:-1])
    return (sq @ M) / ((sq @ z.unsqueeze(-1)) + EPS)


def update_memory(
    M: torch.Tensor, z: torch.Tensor, sk: torch.Tensor, v: torch.Tensor, rule: str
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Fold one segment's keys and values into the memory (Eq. 2 or Eq. 3).

    Parameters
    ----------
    M : torch.Tensor of shape (..., d_key, d_value)
    z : torch.Tensor of shape (..., d_key)
    sk : torch.Tensor of shape (..., seg_len, d_key)
        :math:`\sigma(K)` of the segment.
    v : torch.Tensor of shape (..., seg_len, d_value)
    rule : {"delta", "linear"}
        ``"linear"`` adds ``sk^T v`` (Eq. 2); ``"delta"`` first subtracts from ``v``
        what the memory already returns for these keys (Eq. 3).

    Returns
    -------
    (M, z) : the updated memory, new tensors.

    Raises
    ------
    TypeError
        If a tensor argument is not a floating-point torch tensor, or their dtypes
        or devices differ.
    ValueError
        If ``rule`` is not one of :data:`MEMORY_RULES`, or the shapes do not fit
        together (key width, value width, segment length, leading dimensions).
    """
    rule = check_choice("rule", rule, MEMORY_RULES)
    _check_tensors({"M": 2, "z": 1, "sk": 2, "v": 2}, M=M, z=z, sk=sk, v=v)
    _check_sizes(
        "update_memory",
        ("sk.shape[-1]", sk.shape[-1], "M.shape[-2]", M.shape[-2]),
        ("z.shape[-1]", z.shape[-1], "M.shape[-2]", M.shape[-2]),
        ("v.shape[-1]", v.shape[-1], "M.shape[-1]", M.shape[-1]),
        ("v.shape[-2]", v.shape[-2], "sk.shape[-2]", sk.shape[-2]),
    )
    _check_batch(M=M.shape[:-2], z=z.shape[:-1], sk=sk.shape[:-2], v=v.shape[:-2])
    if rule == "delta":
        v = v - retrieve(sk, M, z)
    return M + sk.transpose(-1, -2) @ v, z + sk.sum(dim=-2)


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal softmax attention inside one segment (``A_dot``).

    Parameters
    ----------
    q : torch.Tensor of shape (..., n_q, d_key)
        Queries of the segment's last ``n_q`` positions.
    k, v : torch.Tensor of shape (..., seg_len, d_key) and (..., seg_len, d_value)

    Returns
    -------
    torch.Tensor of shape (..., n_q, d_value)
        Query ``i`` (of the last ``n_q``) sees keys up to its own position.

    Raises
    ------
    TypeError, ValueError
        As :func:`update_memory`, and if ``n_q`` exceeds ``seg_len``.
    """
    _check_tensors({"q": 2, "k": 2, "v": 2}, q=q, k=k, v=v)
    _check_sizes(
        "local_attention",
        ("q.shape[-1]", q.shape[-1], "k.shape[-1]", k.shape[-1]),
        ("v.shape[-2]", v.shape[-2], "k.shape[-2]", k.shape[-2]),
    )
    if q.shape[-2] > k.shape[-2]:
        raise ValueError(
            f"local_attention: q has {q.shape[-2]} positions, more than the segment's "
            f"{k.shape[-2]} keys"
        )
    _check_batch(q=q.shape[:-2], k=k.shape[:-2], v=v.shape[:-2])
    n_q, seg_len = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    pos_q = torch.arange(seg_len - n_q, seg_len, device=q.device)
    pos_k = torch.arange(seg_len, device=q.device)
    scores = scores.masked_fill(pos_k[None, :] > pos_q[:, None], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


class InfiniBlock(torch.nn.Module):
    """One Infini-attention layer with a passkey read-out at the last position.

    Embedding, then per head query, key and value projections, the local and memory
    paths mixed by the balance gate (Eq. 4), an output projection with a residual
    connection, and a linear read-out over the passkeys. No positional encoding: the
    task needs none inside a segment, and the memory has no notion of order.

    Parameters
    ----------
    vocab : Vocab
    d_model : int
        Width of the embeddings; divisible by ``n_heads``.
    n_heads : int
    seg_len : int
        Segment length ``S``.
    variant : {"infini", "local"}
        ``"local"`` removes the memory path (the bounded-context baseline).
    rule : {"delta", "linear"}
        Memory update, Eq. 3 or Eq. 2.
    seed : int
        Seeds the initial weights.
    """

    def __init__(
        self,
        vocab: Vocab,
        d_model: int,
        n_heads: int,
        seg_len: int,
        variant: str = "infini",
        rule: str = "delta",
        seed: int = 0,
    ):
        super().__init__()
        self.vocab = check_instance("vocab", vocab, Vocab)
        d_model = check_int("d_model", d_model, minimum=1)
        self.n_heads = check_int("n_heads", n_heads, minimum=1)
        if d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads ({n_heads}), got {d_model}"
            )
        self.seg_len = check_int("seg_len", seg_len, minimum=1)
        self.variant = check_choice("variant", variant, VARIANTS)
        self.rule = check_choice("rule", rule, MEMORY_RULES)
        self.d_head = d_model // self.n_heads
        gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))

        def weight(*shape: int, scale: float) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.randn(*shape, generator=gen) * scale)

        self.embed = weight(vocab.size, d_model, scale=1.0)
        self.w_qkv = weight(3, d_model, d_model, scale=d_model**-0.5)
        self.w_out = weight(d_model, d_model, scale=d_model**-0.5)
        self.w_read = weight(d_model, vocab.n_passkey, scale=d_model**-0.5)
        self.beta = torch.nn.Parameter(torch.zeros(self.n_heads))
        self.to(torch_device())

    def _heads(self, x: torch.Tensor, which: int) -> torch.Tensor:
        """Project ``(B, L, d_model)`` to ``(B, heads, L, d_head)``."""
        y = x @ self.w_qkv[which]
        return y.unflatten(-1, (self.n_heads, self.d_head)).transpose(1, 2)

    def _check_tokens(self, tokens) -> torch.Tensor:
        tokens = torch.as_tensor(tokens, device=self.embed.device)
        if tokens.ndim != 2 or tokens.dtype != torch.int64:
            raise ValueError(
                f"tokens must be a 2-d int64 array, got shape {tuple(tokens.shape)} "
                f"and dtype {tokens.dtype}"
            )
        if tokens.shape[1] % self.seg_len:
            raise ValueError(
                f"tokens must have a length divisible by seg_len ({self.seg_len}), "
                f"got {tokens.shape[1]}"
            )
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab.size):
            raise ValueError(f"tokens must lie in 0 .. {self.vocab.size - 1}")
        return tokens

    def memory(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Memory states after each segment, by Eq. 2 or Eq. 3.

        Parameters
        ----------
        k, v : torch.Tensor of shape (B, heads, L, d_head)

        Returns
        -------
        tuple of (M, z), one per segment boundary
            Entry ``s`` is the memory that segment ``s`` reads (``M_{s-1}, z_{s-1}``):
            entry 0 is empty.
        """
        batch, n_seg = k.shape[0], k.shape[2] // self.seg_len
        M = k.new_zeros(batch, self.n_heads, self.d_head, self.d_head)
        z = k.new_zeros(batch, self.n_heads, self.d_head)
        states = [(M, z)]
        for s in range(n_seg - 1):
            part = slice(s * self.seg_len, (s + 1) * self.seg_len)
            M, z = update_memory(M, z, sigma(k[:, :, part]), v[:, :, part], self.rule)
            states.append((M, z))
        return tuple(states)

    def paths(self, tokens) -> tuple[torch.Tensor, torch.Tensor]:
        """The two attention paths at the last position, before the gate.

        Returns
        -------
        (a_mem, a_dot) : torch.Tensor of shape (B, heads, d_head) each
            The memory retrieval (Eq. 1, zero for the ``"local"`` variant) and the
            causal attention over the last segment.
        """
        tokens = self._check_tokens(tokens)
        x = self.embed[tokens]
        q = self._heads(x[:, -1:], 0)
        k, v = self._heads(x, 1), self._heads(x, 2)
        last = slice(k.shape[2] - self.seg_len, k.shape[2])
        a_dot = local_attention(q, k[:, :, last], v[:, :, last])[:, :, 0]
        if self.variant == "local":
            return torch.zeros_like(a_dot), a_dot
        M, z = self.memory(k, v)[-1]
        return retrieve(sigma(q), M, z)[:, :, 0], a_dot

    def memory_weights(self, tokens) -> torch.Tensor:
        """How strongly the last query reads each memorised token (Eq. 1's weights).

        Returns
        -------
        torch.Tensor of shape (B, heads, L - seg_len)
            ``sigma(q_last) . sigma(k_j)`` for every token ``j`` before the last
            segment; their sum is Eq. 1's denominator ``sigma(q) z``.
        """
        tokens = self._check_tokens(tokens)
        x = self.embed[tokens]
        sq = sigma(self._heads(x[:, -1:], 0))
        sk = sigma(self._heads(x[:, : -self.seg_len], 1))
        return (sq @ sk.transpose(-1, -2))[:, :, 0]

    def gate(self) -> torch.Tensor:
        """The learned balance ``sigmoid(beta)``, one per head (0 for ``"local"``)."""
        if self.variant == "local":
            return torch.zeros_like(self.beta)
        return torch.sigmoid(self.beta)

    def read_out(
        self, a_mem: torch.Tensor, a_dot: torch.Tensor, gate: torch.Tensor
    ) -> torch.Tensor:
        """Passkey logits from the two paths mixed by ``gate`` (Eq. 4).

        Parameters
        ----------
        a_mem, a_dot : torch.Tensor of shape (B, heads, d_head)
        gate : torch.Tensor of shape (heads,)
            Weight of the memory path per head, in [0, 1].

        Returns
        -------
        torch.Tensor of shape (B, n_passkey)
        """
        g = gate[:, None]
        mixed = (g * a_mem + (1 - g) * a_dot).flatten(1)
        hidden = self.embed[self.vocab.query] + mixed @ self.w_out
        return hidden @ self.w_read

    def forward(self, tokens) -> torch.Tensor:
        """Passkey logits of shape ``(B, n_passkey)`` at the last position."""
        return self.read_out(*self.paths(tokens), self.gate())

    def sequence_mix(self, tokens) -> torch.Tensor:
        """Eq. 4 at every position of every segment (for checks and exposition).

        Returns
        -------
        torch.Tensor of shape (B, heads, L, d_head)
            Gated attention output of every position.
        """
        tokens = self._check_tokens(tokens)
        x = self.embed[tokens]
        q, k, v = (self._heads(x, i) for i in range(3))
        states = self.memory(k, v)
        g = self.gate()[:, None, None]
        out = []
        for s, (M, z) in enumerate(states):
            part = slice(s * self.seg_len, (s + 1) * self.seg_len)
            a_dot = local_attention(q[:, :, part], k[:, :, part], v[:, :, part])
            a_mem = retrieve(sigma(q[:, :, part]), M, z)
            out.append(g * a_mem + (1 - g) * a_dot)
        return torch.cat(out, dim=2)


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the variant: the paper's mechanism or its baseline."""

    variant: str = "infini"  # "infini" (mechanism) or "local" (memory path removed)
    rule: str = "delta"  # memory update: "delta" (Eq. 3) or "linear" (Eq. 2)
    d_model: int = 32  # embedding width
    n_heads: int = 2  # attention heads
    seg_len: int = 16  # segment length S
    train_len: int = 64  # training sequence length (4 segments)
    n_steps: int = 150  # Adam steps
    batch_size: int = 64  # sequences per step
    lr: float = 0.01  # Adam learning rate
    eval_lengths: tuple[int, ...] = (64, 128, 256, 512)  # 4 to 32 segments
    n_eval: int = 500  # evaluation sequences per length
    claim_len: int = 256  # the length at which parts (i) and (iii) are checked
    gate_values: tuple[float, ...] = tuple(np.round(np.linspace(0, 1, 11), 2))
    n_seeds: int = 1  # models trained per variant
    seed: int = 0  # first seed; the others follow it

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        check_choice("rule", self.rule, MEMORY_RULES)
        check_int("d_model", self.d_model, minimum=2)
        check_int("n_heads", self.n_heads, minimum=1)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads ({self.n_heads}), "
                f"got {self.d_model}"
            )
        check_int("seg_len", self.seg_len, minimum=1)
        check_int("n_steps", self.n_steps, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_float("lr", self.lr, minimum=0.0, strict_minimum=True)
        check_int("n_eval", self.n_eval, minimum=1)
        check_int("n_seeds", self.n_seeds, minimum=1)
        check_int("seed", self.seed, minimum=0)
        for name in ("train_len", "claim_len"):
            _check_length(name, getattr(self, name), self.seg_len)
        if not isinstance(self.eval_lengths, tuple) or not self.eval_lengths:
            raise TypeError("eval_lengths must be a non-empty tuple of lengths")
        for i, length in enumerate(self.eval_lengths):
            _check_length(f"eval_lengths[{i}]", length, self.seg_len)
        if self.claim_len not in self.eval_lengths:
            raise ValueError(
                f"claim_len must be one of eval_lengths {self.eval_lengths}, "
                f"got {self.claim_len}"
            )
        gates = check_array("gate_values", self.gate_values, ndim=1, min_size=1)
        if gates.min() < 0 or gates.max() > 1:
            raise ValueError("gate_values must lie in [0, 1]")


def _check_length(name: str, value: int, seg_len: int) -> int:
    value = check_int(name, value, minimum=2 * seg_len)
    if value % seg_len:
        raise ValueError(
            f"{name} must be a multiple of seg_len ({seg_len}), got {value}"
        )
    return value


def train_model(config: Config, seed: int) -> tuple[InfiniBlock, list[float]]:
    """Train one block of ``config.variant`` on fresh passkey batches with Adam.

    Parameters
    ----------
    config : Config
    seed : int
        Seeds the weights and the training data.

    Returns
    -------
    (model, losses) : the trained block and its cross-entropy per step.
    """
    check_instance("config", config, Config)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng([seed, 1])
    model = InfiniBlock(
        Vocab(),
        config.d_model,
        config.n_heads,
        config.seg_len,
        variant=config.variant,
        rule=config.rule,
        seed=seed,
    )
    params = list(model.parameters())
    optimizer = Adam(params, config.lr)
    losses = []
    for _ in range(config.n_steps):
        tokens, targets, _ = make_passkey_batch(
            config.batch_size, config.train_len, rng
        )
        targets = torch.as_tensor(targets, device=model.embed.device)
        loss = torch.nn.functional.cross_entropy(model(tokens), targets)
        # The local-only block never uses beta: its gradient is zero.
        grads = torch.autograd.grad(
            loss, params, allow_unused=True, materialize_grads=True
        )
        optimizer.step(list(grads))
        losses.append(float(loss.detach()))
    logger.info("%s seed %d: final loss %.3f", config.variant, seed, losses[-1])
    return model, losses


@torch.no_grad()
def gate_accuracy(
    model: InfiniBlock,
    tokens,
    targets,
    gate_values,
) -> np.ndarray:
    """Passkey accuracy with the learned gate and with the gate forced to fixed values.

    The two paths are computed once; only Eq. 4 and the read-out are redone per gate.

    Parameters
    ----------
    model : InfiniBlock
    tokens : array of shape (n, L), int64
    targets : array of shape (n,), int64
    gate_values : sequence of float in [0, 1]
        Values forced on ``sigmoid(beta)`` of every head.

    Returns
    -------
    ndarray of shape (1 + len(gate_values),)
        Accuracy with the learned gate, then with each forced value.
    """
    check_instance("model", model, InfiniBlock)
    targets = check_array("targets", targets, ndim=1)
    gates = check_array("gate_values", gate_values, ndim=1, dtype=np.float32)
    if gates.size and (gates.min() < 0 or gates.max() > 1):
        raise ValueError("gate_values must lie in [0, 1]")
    a_mem, a_dot = model.paths(tokens)
    if targets.shape[0] != a_mem.shape[0]:
        raise ValueError(
            f"targets must have one entry per sequence ({a_mem.shape[0]}), "
            f"got {targets.shape[0]}"
        )
    truth = torch.as_tensor(targets, device=a_mem.device)
    choices = [model.gate()] + [torch.full_like(model.beta, float(g)) for g in gates]
    return np.array(
        [
            float((model.read_out(a_mem, a_dot, g).argmax(1) == truth).float().mean())
            for g in choices
        ]
    )


@dataclass(frozen=True)
class Result:
    """What the claim is checked on; accuracies are fractions in [0, 1]."""

    config: Config
    accuracy: np.ndarray  # (n_seeds, n_lengths): the variant, learned gate
    local_accuracy: np.ndarray  # (n_seeds, n_lengths): the local-only baseline
    gate_sweep: np.ndarray  # (n_seeds, n_lengths, n_gates): the variant, gate forced
    learned_gates: np.ndarray  # (n_seeds, n_heads): sigmoid(beta) after training
    losses: np.ndarray  # (n_seeds, n_steps): the variant's training loss
    models: tuple[InfiniBlock, ...]  # the variant's trained blocks, one per seed

    def at(self, length: int) -> int:
        """Column index of an evaluation length."""
        return self.config.eval_lengths.index(length)

    @property
    def gain_over_local(self) -> np.ndarray:
        """Per seed: accuracy minus the local-only baseline's at ``claim_len``."""
        col = self.at(self.config.claim_len)
        return self.accuracy[:, col] - self.local_accuracy[:, col]

    @property
    def gate_loss(self) -> np.ndarray:
        """Per seed: accuracy lost at ``claim_len`` when the gate is forced to 0."""
        col = self.at(self.config.claim_len)
        gates = np.asarray(self.config.gate_values)
        return self.accuracy[:, col] - self.gate_sweep[:, col, np.argmin(gates)]

    @property
    def length_drop(self) -> np.ndarray:
        """Per seed: accuracy at the shortest length minus at the longest."""
        lengths = np.asarray(self.config.eval_lengths)
        short, long = np.argmin(lengths), np.argmax(lengths)
        return self.accuracy[:, short] - self.accuracy[:, long]


def _evaluate(model: InfiniBlock, config: Config, seed: int) -> np.ndarray:
    """Gate sweep for every evaluation length: (n_lengths, 1 + n_gates)."""
    rows = []
    for length in config.eval_lengths:
        rng = np.random.default_rng([seed, 2, length])
        tokens, targets, _ = make_passkey_batch(config.n_eval, length, rng)
        rows.append(gate_accuracy(model, tokens, targets, config.gate_values))
    return np.array(rows)


def run_experiment(config: Config) -> Result:
    """Train the variant and the local-only baseline, then evaluate both.

    For each seed: train a block of ``config.variant`` and a ``"local"`` block on
    sequences of ``train_len``; evaluate both on ``n_eval`` fresh sequences of each
    evaluation length (the same sequences for both), the variant also with its gate
    forced to each of ``gate_values``.
    """
    check_instance("config", config, Config)
    accuracy, local, sweep, gates, losses, models = [], [], [], [], [], []
    local_config = replace(config, variant="local")
    for seed in range(config.seed, config.seed + config.n_seeds):
        model, curve = train_model(config, seed)
        table = _evaluate(model, config, seed)
        accuracy.append(table[:, 0])
        sweep.append(table[:, 1:])
        gates.append(model.gate().detach().cpu().numpy())
        losses.append(curve)
        models.append(model)
        if config.variant == "local":
            local.append(table[:, 0])
        else:
            baseline, _ = train_model(local_config, seed)
            local.append(_evaluate(baseline, local_config, seed)[:, 0])
    return Result(
        config=config,
        accuracy=np.array(accuracy),
        local_accuracy=np.array(local),
        gate_sweep=np.array(sweep),
        learned_gates=np.array(gates),
        losses=np.array(losses),
        models=tuple(models),
    )


def check_claim(result: Result) -> None:
    """Raise :class:`paperlab.claims.ClaimFailed` unless the chapter's claim holds.

    On the seed means: (i) at ``claim_len`` the model beats the local-only baseline
    by at least 25 accuracy points; (ii) accuracy at the longest evaluation length is
    below that at the shortest (more compressions, worse retrieval); (iii) forcing
    the gate to the pure-local end (0) costs at least 25 points at ``claim_len``.
    """
    check_instance("result", result, Result)
    gain = float(result.gain_over_local.mean())
    require(
        gain >= MIN_GAIN_OVER_LOCAL,
        f"accuracy at length {result.config.claim_len} exceeds the local-only "
        f"baseline by {gain:.1%}, expected >= {MIN_GAIN_OVER_LOCAL:.0%}",
    )
    drop = float(result.length_drop.mean())
    require(
        drop > MIN_LENGTH_DROP,
        f"accuracy falls by {drop:.1%} from the shortest to the longest length, "
        f"expected a drop",
    )
    loss = float(result.gate_loss.mean())
    require(
        loss >= MIN_GATE_LOSS,
        f"forcing the gate to 0 costs {loss:.1%} at length "
        f"{result.config.claim_len}, expected >= {MIN_GATE_LOSS:.0%}",
    )


def plot_accuracy(result: Result):
    """Passkey accuracy against sequence length, the variant beside the baseline."""
    check_instance("result", result, Result)
    lengths = np.asarray(result.config.eval_lengths)
    fig, ax = plotting.subplots(width=6.0, height=3.6)
    for acc, label, color in (
        (result.accuracy, f"{_NAMES[result.config.variant]} (learned gate)", 0),
        (result.local_accuracy, "local only (baseline)", 1),
    ):
        ax.plot(
            lengths, 100 * acc.mean(0), "o-", color=plotting.COLORS[color], label=label
        )
    chance = 100 / Vocab().n_passkey
    ax.axhline(chance, color="grey", ls=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_ylim(0, 105)
    plotting.label_axes(
        ax,
        title="Passkey retrieval against sequence length",
        xlabel="sequence length (tokens; segments of 16)",
        ylabel="accuracy (%)",
    )
    return fig


def plot_gate_sweep(result: Result, length: int, gate: float | None = None):
    """Accuracy at one length as the gate is forced from 0 (local) to 1 (memory)."""
    check_instance("result", result, Result)
    col = result.at(check_int("length", length, minimum=1))
    gates = np.asarray(result.config.gate_values)
    fig, ax = plotting.subplots(width=6.0, height=3.6)
    ax.plot(
        gates,
        100 * result.gate_sweep[:, col].mean(0),
        "o-",
        color=plotting.COLORS[0],
        label="gate forced on every head",
    )
    ax.axhline(
        100 * result.accuracy[:, col].mean(),
        color=plotting.COLORS[2],
        ls="--",
        label="learned gates",
    )
    if gate is not None:
        gate = check_float("gate", gate, minimum=0.0, maximum=1.0)
        ax.axvline(gate, color=plotting.COLORS[3], ls=":", label=f"gate = {gate:.1f}")
    ax.set_ylim(0, 105)
    plotting.label_axes(
        ax,
        title=f"Forcing the balance gate, length {length}",
        xlabel="gate sigmoid(beta): weight of the memory path (unitless)",
        ylabel="accuracy (%)",
    )
    return fig

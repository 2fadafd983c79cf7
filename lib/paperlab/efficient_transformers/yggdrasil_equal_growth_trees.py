"""Yggdrasil: equal-growth draft trees chosen for latency, not acceptance length.

Guan et al., "Yggdrasil: Bridging Dynamic Speculation and Static Runtime for
Latency-Optimal Tree-Based LLM Decoding", arXiv 2512.23858 (NeurIPS 2025).

Tree-based speculative decoding lets a cheap draft model propose a tree of possible
continuations, which the target model checks in one forward pass. This module builds
the two ideas of Yggdrasil that can be tested without a GPU:

1. **The equal-growth tree.** Every draft step adds exactly ``width`` nodes: the
   ``width`` best children, by cumulative draft log-probability, of the nodes added at
   the previous step. Which nodes they are depends on the context; how many there are
   does not, so a tree of depth ``depth`` always has ``width * depth`` nodes and the
   verification pass always has the same shape (what a compiled static graph needs).
2. **The latency-aware objective.** The tree shape ``(width, depth)`` is chosen to
   maximise expected tokens per unit of time,

   .. math::

       \\mathrm{TPT}(w, D) = \\frac{1 + \\mathrm{AAL}(w, D)}
                               {T_\\mathrm{draft}(D) + T_\\mathrm{verify}(1 + wD)},

   rather than the average acceptance length AAL, because verifying more tokens costs
   more time once the accelerator is saturated.

The target is a random sparse second-order Markov model over 64 tokens and the draft is
that model blended with a wrong guess; the cost of a step comes from a stated latency
model. Verification is greedy and exact, so decoded text must equal plain greedy
decoding. The same tree drafting also runs with two real tiny transformers
(:mod:`paperlab.tinylm`). The hot loops live in :mod:`paperlab.kernels.spec_trees`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from paperlab.claims import require
from paperlab.kernels.spec_trees import (
    acceptance_at_contexts,
    build_best_first_tree,
    build_equal_growth_tree,
    speculative_decode,
    verify_tree_greedy,
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
    "TREES",
    "MarkovPair",
    "make_markov_pair",
    "sample_contexts",
    "LatencyModel",
    "equal_growth_tree",
    "best_first_tree",
    "verify_greedy",
    "greedy_decode",
    "tree_decode",
    "acceptance_grid",
    "tokens_per_time",
    "select_shape",
    "Config",
    "SeedResult",
    "Result",
    "run_experiment",
    "check_claim",
    "plot_aal_vs_speed",
    "plot_speed_heatmap",
    "lm_tree_generate",
]

log = logging.getLogger(__name__)

VARIANTS = ("mechanism", "baseline")  # select (w, D) by tokens/time, or by AAL
TREES = ("equal_growth", "best_first")

# The claim's thresholds (see check_claim).
MIN_SPEED_RATIO = 1.10  # latency-chosen shape vs AAL-maximising shape
MIN_AAL_FRACTION = 0.9  # equal-growth AAL vs best-first AAL, same node count


# ----------------------------------------------------------------- the models


@dataclass(frozen=True)
class MarkovPair:
    """A target and a draft second-order Markov language model over ``V`` tokens."""

    target_probs: np.ndarray  # (V, V, V) float64: P(next | last two tokens)
    target_argmax: np.ndarray  # (V, V) int32: the target's greedy next token
    draft_logp: np.ndarray  # (V, V, V) float32: the draft's log-probabilities

    @property
    def vocab(self) -> int:
        """Number of tokens ``V``."""
        return self.target_argmax.shape[0]


def _sparse_rows(
    vocab: int, support: int, concentration: float, rng: np.random.Generator
) -> np.ndarray:
    """(V, V, V) next-token tables with ``support`` random tokens per context."""
    probs = np.zeros((vocab, vocab, vocab))
    tokens = np.argsort(rng.random((vocab, vocab, vocab)), axis=2)[:, :, :support]
    weights = rng.dirichlet(np.full(support, concentration), size=(vocab, vocab))
    np.put_along_axis(probs, tokens, weights, axis=2)
    return probs


def make_markov_pair(
    rng: np.random.Generator,
    vocab: int = 64,
    support: int = 4,
    concentration: float = 0.5,
    alpha: float = 0.4,
    sharpen: float = 2.0,
) -> MarkovPair:
    """Draw a random sparse target model and a draft model that imitates it.

    The target gives each context ``(a, b)`` a next-token distribution over
    ``support`` random tokens with Dirichlet(``concentration``) weights. The draft
    blends it with a second, unrelated table ``q`` of the same kind and sharpens the
    blend:

    .. math::

        p_\\mathrm{draft} \\propto \\bigl((1-\\alpha)\\, p_\\mathrm{target}
        + \\alpha\\, q + \\epsilon\\bigr)^{s},

    with ``epsilon = 1e-3 / V`` so that every log-probability is finite. ``alpha``
    sets how often the draft's favourite is wrong; ``sharpen`` (``s``) makes the
    draft's confidence closer to how often it is right.

    Parameters
    ----------
    rng : numpy.random.Generator
    vocab : int
        Number of tokens ``V`` (2 to 256).
    support : int
        Tokens with non-zero target probability per context, 1 to ``vocab``.
    concentration : float
        Dirichlet concentration (> 0); small values give peaked distributions.
    alpha : float
        Weight of the wrong table in the draft, in [0, 1].
    sharpen : float
        Exponent ``s`` > 0 applied to the draft's blend before normalising.

    Returns
    -------
    MarkovPair
    """
    check_instance("rng", rng, np.random.Generator)
    vocab = check_int("vocab", vocab, minimum=2, maximum=256)
    support = check_int("support", support, minimum=1, maximum=vocab)
    concentration = check_float(
        "concentration", concentration, minimum=0.0, strict_minimum=True
    )
    alpha = check_float("alpha", alpha, minimum=0.0, maximum=1.0)
    sharpen = check_float("sharpen", sharpen, minimum=0.0, strict_minimum=True)
    target = _sparse_rows(vocab, support, concentration, rng)
    wrong = _sparse_rows(vocab, support, concentration, rng)
    blend = (1 - alpha) * target + alpha * wrong + 1e-3 / vocab
    logits = sharpen * np.log(blend)
    logits -= logits.max(axis=2, keepdims=True)
    draft_logp = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    return MarkovPair(
        target_probs=target,
        target_argmax=target.argmax(axis=2).astype(np.int32),
        draft_logp=draft_logp.astype(np.float32),
    )


def sample_contexts(
    pair: MarkovPair, n_prompts: int, seq_len: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sample text from the target and return its prompts and every context in it.

    Each of ``n_prompts`` sequences starts from two uniform random tokens (its
    prompt) and continues for ``seq_len`` tokens drawn from the target model at
    temperature 1. A draft-verify step can start at any position of real text, so
    these contexts are where acceptance is measured.

    Returns
    -------
    prompts : int32 array, shape (n_prompts, 2)
    contexts : int32 array, shape (n_prompts * seq_len, 2)
        The last two tokens before every sampled position.
    """
    check_instance("pair", pair, MarkovPair)
    n_prompts = check_int("n_prompts", n_prompts, minimum=1)
    seq_len = check_int("seq_len", seq_len, minimum=1)
    check_instance("rng", rng, np.random.Generator)
    prompts = rng.integers(0, pair.vocab, size=(n_prompts, 2)).astype(np.int32)
    cdf = np.cumsum(pair.target_probs, axis=2)
    contexts = np.empty((n_prompts, seq_len, 2), dtype=np.int32)
    a, b = prompts[:, 0].copy(), prompts[:, 1].copy()
    for step in range(seq_len):
        contexts[:, step, 0], contexts[:, step, 1] = a, b
        u = rng.random(n_prompts)[:, None]
        nxt = np.minimum((cdf[a, b] < u).sum(axis=1), pair.vocab - 1)
        a, b = b, nxt.astype(np.int32)
    return prompts, contexts.reshape(-1, 2)


# ----------------------------------------------------------- the latency model


@dataclass(frozen=True)
class LatencyModel:
    """Cost of one draft-verify step, in units of one saturated target forward.

    ``T_verify(n) = t_verify + t_token * max(0, n - n_sat)``: verifying up to
    ``n_sat`` tokens costs the same (the accelerator is not yet saturated), every
    token beyond costs ``t_token``. ``T_draft(D) = D * t_draft``: one draft forward
    per tree level.
    """

    t_verify: float = 1.0  # target forward on up to n_sat tokens
    t_token: float = 0.05  # extra cost per verified token beyond n_sat
    n_sat: int = 16  # tokens the accelerator verifies at flat cost
    t_draft: float = 0.1  # one draft forward (one tree level)

    def __post_init__(self):
        check_float("t_verify", self.t_verify, minimum=0.0, strict_minimum=True)
        check_float("t_token", self.t_token, minimum=0.0)
        check_int("n_sat", self.n_sat, minimum=1)
        check_float("t_draft", self.t_draft, minimum=0.0)

    def verify_time(self, n_tokens):
        """``T_verify`` of ``n_tokens`` (array or int) tokens."""
        n_tokens = np.asarray(n_tokens, dtype=np.float64)
        return self.t_verify + self.t_token * np.maximum(0.0, n_tokens - self.n_sat)

    def step_time(self, width, depth):
        """Time of one step with a ``width x depth`` tree (arrays broadcast)."""
        width = np.asarray(width, dtype=np.float64)
        depth = np.asarray(depth, dtype=np.float64)
        return depth * self.t_draft + self.verify_time(1 + width * depth)


def tokens_per_time(aal, width, depth, latency: LatencyModel):
    """Expected tokens per unit time, ``(1 + AAL) / (T_draft + T_verify)``.

    Every step emits its accepted draft tokens plus the target's own next token.
    ``aal``, ``width`` and ``depth`` broadcast against each other.
    """
    check_instance("latency", latency, LatencyModel)
    return (1.0 + np.asarray(aal, dtype=np.float64)) / latency.step_time(width, depth)


# -------------------------------------------------------- trees and decoding


def _check_prefix(prefix, vocab: int) -> np.ndarray:
    prefix = check_array("prefix", prefix, ndim=1, shape=(2,))
    if not np.issubdtype(prefix.dtype, np.integer):
        raise TypeError(f"prefix must hold integers, got dtype {prefix.dtype}")
    if prefix.min() < 0 or prefix.max() >= vocab:
        raise ValueError(f"prefix must lie in 0..{vocab - 1}, got {prefix.tolist()}")
    return prefix.astype(np.int32)


def equal_growth_tree(
    pair: MarkovPair, prefix, width: int, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """The equal-growth draft tree after ``prefix`` (see the module docstring).

    Parameters
    ----------
    pair : MarkovPair
    prefix : array_like of int, shape (2,)
        The last two decoded tokens.
    width : int
        Nodes added per level, 1 to ``V``.
    depth : int
        Number of levels (draft steps), at least 1.

    Returns
    -------
    tokens, parent : int32 arrays, shape (width * depth,)
        Level ``d`` holds nodes ``d * width`` to ``(d + 1) * width - 1``; ``parent``
        is ``-1`` for children of the root.
    """
    check_instance("pair", pair, MarkovPair)
    prefix = _check_prefix(prefix, pair.vocab)
    width = check_int("width", width, minimum=1, maximum=pair.vocab)
    depth = check_int("depth", depth, minimum=1)
    return build_equal_growth_tree(pair.draft_logp, prefix, width, depth)


def best_first_tree(
    pair: MarkovPair, prefix, n_nodes: int
) -> tuple[np.ndarray, np.ndarray]:
    """The dynamic baseline: ``n_nodes`` nodes added best cumulative score first.

    Returns ``tokens, parent`` as :func:`equal_growth_tree` does, in the order added.
    """
    check_instance("pair", pair, MarkovPair)
    prefix = _check_prefix(prefix, pair.vocab)
    n_nodes = check_int("n_nodes", n_nodes, minimum=1)
    return build_best_first_tree(pair.draft_logp, prefix, n_nodes)


def verify_greedy(pair: MarkovPair, prefix, tokens, parent) -> tuple[np.ndarray, int]:
    """Greedy verification: the accepted node path and the target's bonus token.

    Raises
    ------
    ValueError
        If ``tokens`` and ``parent`` differ in length, a token is out of range, or a
        parent does not come before its child.
    """
    check_instance("pair", pair, MarkovPair)
    prefix = _check_prefix(prefix, pair.vocab)
    tokens = check_array("tokens", tokens, ndim=1).astype(np.int32)
    parent = check_array("parent", parent, ndim=1, shape=(tokens.shape[0],))
    parent = parent.astype(np.int32)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= pair.vocab):
        raise ValueError(f"tokens must lie in 0..{pair.vocab - 1}")
    if np.any(parent < -1) or np.any(parent >= np.arange(parent.shape[0])):
        raise ValueError("parent[i] must be -1 or the index of an earlier node")
    return verify_tree_greedy(tokens, parent, pair.target_argmax, prefix)


def _check_prompts(prompts, vocab: int) -> np.ndarray:
    prompts = check_array("prompts", prompts, ndim=2, shape=(None, 2), min_size=2)
    if not np.issubdtype(prompts.dtype, np.integer):
        raise TypeError(f"prompts must hold integers, got dtype {prompts.dtype}")
    if prompts.min() < 0 or prompts.max() >= vocab:
        raise ValueError(f"prompts must lie in 0..{vocab - 1}")
    return np.ascontiguousarray(prompts, dtype=np.int32)


def greedy_decode(pair: MarkovPair, prompts, n_new: int) -> np.ndarray:
    """Plain greedy decoding with the target: ``n_new`` tokens after each prompt.

    Returns an int32 array of shape (n_prompts, n_new).
    """
    check_instance("pair", pair, MarkovPair)
    prompts = _check_prompts(prompts, pair.vocab)
    n_new = check_int("n_new", n_new, minimum=1)
    out = np.empty((prompts.shape[0], n_new), dtype=np.int32)
    a, b = prompts[:, 0], prompts[:, 1]
    for step in range(n_new):
        a, b = b, pair.target_argmax[a, b]
        out[:, step] = b
    return out


def tree_decode(
    pair: MarkovPair,
    prompts,
    n_new: int,
    width: int,
    depth: int,
    tree: str = "equal_growth",
) -> tuple[np.ndarray, float]:
    """Speculative decoding with draft trees and greedy verification.

    Parameters
    ----------
    pair : MarkovPair
    prompts : array_like of int, shape (n_prompts, 2)
    n_new : int
        Tokens to decode per prompt.
    width, depth : int
        Tree shape; a best-first tree gets ``width * depth`` nodes.
    tree : {"equal_growth", "best_first"}

    Returns
    -------
    tokens : int32 array, shape (n_prompts, n_new)
        Must equal :func:`greedy_decode` (greedy verification is lossless).
    aal : float
        Draft tokens accepted per step, over all steps of all prompts.
    """
    check_instance("pair", pair, MarkovPair)
    prompts = _check_prompts(prompts, pair.vocab)
    n_new = check_int("n_new", n_new, minimum=1)
    width = check_int("width", width, minimum=1, maximum=pair.vocab)
    depth = check_int("depth", depth, minimum=1)
    tree = check_choice("tree", tree, TREES)
    out, n_steps, n_accepted = speculative_decode(
        pair.draft_logp,
        pair.target_argmax,
        prompts,
        n_new,
        width,
        depth,
        tree == "best_first",
    )
    return out, float(n_accepted.sum() / n_steps.sum())


def acceptance_grid(
    pair: MarkovPair,
    contexts,
    max_width: int,
    max_depth: int,
    tree: str = "equal_growth",
) -> np.ndarray:
    """Average acceptance length of every tree shape, over the given contexts.

    Returns
    -------
    ndarray, shape (max_width, max_depth)
        Entry ``[w - 1, D - 1]`` is the mean number of draft tokens accepted by one
        step with a ``w x D`` tree.
    """
    check_instance("pair", pair, MarkovPair)
    contexts = _check_prompts(contexts, pair.vocab)
    max_width = check_int("max_width", max_width, minimum=1, maximum=pair.vocab)
    max_depth = check_int("max_depth", max_depth, minimum=1)
    tree = check_choice("tree", tree, TREES)
    if tree == "best_first":
        grid = np.empty((max_width, max_depth))
        for w in range(1, max_width + 1):
            for d in range(1, max_depth + 1):
                grid[w - 1, d - 1] = acceptance_at_contexts(
                    pair.draft_logp, pair.target_argmax, contexts, w, d, True
                ).mean()
        return grid
    # An equal-growth tree is built level by level, so the tree of depth d is the
    # first d levels of the tree of depth max_depth, and the greedy walk through it
    # stops at the same node or at level d: accepted(d) = min(accepted(max), d).
    depths = np.arange(1, max_depth + 1)
    grid = np.empty((max_width, max_depth))
    for w in range(1, max_width + 1):
        deepest = acceptance_at_contexts(
            pair.draft_logp, pair.target_argmax, contexts, w, max_depth, False
        )
        grid[w - 1] = np.minimum(deepest[:, None], depths[None, :]).mean(axis=0)
    return grid


def select_shape(aal, speed, objective: str) -> tuple[int, int]:
    """The tree shape ``(width, depth)`` that maximises the objective.

    Parameters
    ----------
    aal, speed : ndarray, shape (max_width, max_depth)
        Average acceptance length and tokens per unit time of every shape.
    objective : {"latency", "aal"}
        ``"latency"`` maximises ``speed`` (Yggdrasil); ``"aal"`` maximises the
        acceptance length, as systems that optimise AAL do. Ties go to the shape
        with fewer nodes, then to the narrower one.
    """
    aal = check_array("aal", aal, ndim=2, finite=True, min_size=1)
    speed = check_array("speed", speed, ndim=2, shape=aal.shape, finite=True)
    objective = check_choice("objective", objective, ("latency", "aal"))
    values = speed if objective == "latency" else aal
    widths, depths = np.indices(aal.shape) + 1
    order = np.lexsort((widths.ravel(), (widths * depths).ravel(), -values.ravel()))
    w, d = np.unravel_index(order[0], aal.shape)
    return int(w) + 1, int(d) + 1


# ---------------------------------------------------------------- experiment


@dataclass(frozen=True)
class Config:
    """The toy experiment: models, text, shapes swept, cost model, variant."""

    variant: str = "mechanism"  # "mechanism": choose by tokens/time; "baseline": AAL
    n_seeds: int = 3  # independent target/draft pairs
    seed: int = 0  # first seed
    vocab: int = 64  # tokens
    support: int = 4  # non-zero target probabilities per context
    concentration: float = 0.5  # Dirichlet concentration of the tables
    alpha: float = 0.4  # weight of the wrong table in the draft
    sharpen: float = 2.0  # exponent applied to the draft blend
    n_prompts: int = 20  # sequences of text
    n_new: int = 200  # tokens per sequence
    max_width: int = 8  # widths 1..max_width
    max_depth: int = 8  # depths 1..max_depth
    latency: LatencyModel = LatencyModel()  # cost of a step

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        check_int("n_seeds", self.n_seeds, minimum=1)
        check_int("seed", self.seed, minimum=0)
        check_int("vocab", self.vocab, minimum=2, maximum=256)
        check_int("support", self.support, minimum=1, maximum=self.vocab)
        check_float("concentration", self.concentration, minimum=0.0)
        check_float("alpha", self.alpha, minimum=0.0, maximum=1.0)
        check_float("sharpen", self.sharpen, minimum=0.0, strict_minimum=True)
        check_int("n_prompts", self.n_prompts, minimum=1)
        check_int("n_new", self.n_new, minimum=1)
        check_int("max_width", self.max_width, minimum=1, maximum=self.vocab)
        check_int("max_depth", self.max_depth, minimum=1)
        check_instance("latency", self.latency, LatencyModel)


@dataclass(frozen=True)
class SeedResult:
    """What one target/draft pair measured."""

    aal: np.ndarray  # (max_width, max_depth) equal-growth acceptance length
    best_first_aal: dict  # n_nodes -> best-first AAL, for the compared shapes
    lossless: dict  # tree name -> decoded text equalled greedy text, every shape tried


@dataclass(frozen=True)
class Result:
    """The experiment's measurements and the shapes each objective picks."""

    config: Config
    seeds: tuple[SeedResult, ...]

    @property
    def aal(self) -> np.ndarray:
        """Mean equal-growth AAL over seeds, shape (max_width, max_depth)."""
        return np.mean([s.aal for s in self.seeds], axis=0)

    def speed(self, latency: LatencyModel | None = None) -> np.ndarray:
        """Tokens per unit time of every shape (mean AAL), under ``latency``."""
        latency = self.config.latency if latency is None else latency
        widths, depths = np.indices(self.aal.shape) + 1
        return tokens_per_time(self.aal, widths, depths, latency)

    @property
    def selected(self) -> tuple[int, int]:
        """The shape the variant's objective picks."""
        return _select(self.aal, self.config)

    @property
    def aal_max(self) -> tuple[int, int]:
        """The shape with the highest AAL."""
        return select_shape(self.aal, self.speed(), "aal")

    @property
    def latency_opt(self) -> tuple[int, int]:
        """The shape with the most tokens per unit time."""
        return select_shape(self.aal, self.speed(), "latency")

    @property
    def chain(self) -> tuple[int, int]:
        """The fastest chain (width 1)."""
        return 1, int(np.argmax(self.speed()[0])) + 1

    def seed_values(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Per-seed AAL and tokens per unit time of one shape."""
        w, d = shape
        aal = np.array([s.aal[w - 1, d - 1] for s in self.seeds])
        return aal, tokens_per_time(aal, w, d, self.config.latency)

    def best_first_aal(self, n_nodes: int) -> np.ndarray:
        """Per-seed AAL of the best-first tree with ``n_nodes`` nodes.

        Measured only for the node counts of the compared shapes (the selected,
        AAL-maximising, fastest and chain shapes); others raise ``KeyError``.
        """
        return np.array([s.best_first_aal[n_nodes] for s in self.seeds])

    @property
    def lossless(self) -> bool:
        """Every decode of every seed reproduced plain greedy decoding."""
        return all(all(s.lossless.values()) for s in self.seeds)


def _select(aal: np.ndarray, config: Config) -> tuple[int, int]:
    """The shape chosen by the variant: by tokens per time, or by AAL."""
    widths, depths = np.indices(aal.shape) + 1
    speed = tokens_per_time(aal, widths, depths, config.latency)
    objective = "latency" if config.variant == "mechanism" else "aal"
    return select_shape(aal, speed, objective)


def _compared_shapes(aal: np.ndarray, config: Config) -> set[tuple[int, int]]:
    """The shapes the chapter compares: both objectives' picks and the best chain."""
    widths, depths = np.indices(aal.shape) + 1
    speed = tokens_per_time(aal, widths, depths, config.latency)
    return {
        select_shape(aal, speed, "latency"),
        select_shape(aal, speed, "aal"),
        (1, int(np.argmax(speed[0])) + 1),
    }


def _finish_seed(
    pair: MarkovPair, prompts, contexts, aal, shapes, config: Config
) -> SeedResult:
    """Best-first AAL and losslessness checks at the compared shapes."""
    best_first = {
        w * d: float(
            acceptance_at_contexts(
                pair.draft_logp, pair.target_argmax, contexts, w, d, True
            ).mean()
        )
        for w, d in shapes
    }
    reference = greedy_decode(pair, prompts, config.n_new)
    lossless = {
        tree: all(
            np.array_equal(
                tree_decode(pair, prompts, config.n_new, w, d, tree)[0], reference
            )
            for w, d in shapes
        )
        for tree in TREES
    }
    return SeedResult(aal=aal, best_first_aal=best_first, lossless=lossless)


def run_experiment(config: Config) -> Result:
    """Sweep every tree shape on ``config.n_seeds`` target/draft pairs.

    For each seed: draw the pair, sample ``n_prompts x n_new`` tokens of target
    text and measure the equal-growth AAL of every shape at every sampled context
    (one draft-verify step each). Then, at the compared shapes (the pick of each
    objective on the seed-mean AAL, and the fastest chain): the best-first tree's
    AAL with the same node count, and a check that full speculative decoding with
    either tree reproduces greedy decoding token for token.
    """
    check_instance("config", config, Config)
    measured = []
    for i in range(config.n_seeds):
        rng = np.random.default_rng(config.seed + i)
        pair = make_markov_pair(
            rng,
            config.vocab,
            config.support,
            config.concentration,
            config.alpha,
            config.sharpen,
        )
        prompts, contexts = sample_contexts(pair, config.n_prompts, config.n_new, rng)
        aal = acceptance_grid(pair, contexts, config.max_width, config.max_depth)
        measured.append((pair, prompts, contexts, aal))
    shapes = _compared_shapes(np.mean([m[3] for m in measured], axis=0), config)
    log.info("compared shapes: %s", sorted(shapes))
    seeds = tuple(_finish_seed(*m, shapes, config) for m in measured)
    return Result(config=config, seeds=seeds)


def check_claim(result: Result) -> None:
    """Raise :class:`~paperlab.claims.ClaimFailed` unless the chapter's claim holds.

    (i) Tree decoding equals greedy decoding on every prompt, seed and tree.
    (ii) The selected shape reaches at least ``MIN_SPEED_RATIO`` times the tokens per
    unit time of the AAL-maximising shape, on the mean and on every seed, while
    having a lower AAL. (iii) The selected equal-growth tree's AAL is at least
    ``MIN_AAL_FRACTION`` of the best-first tree's with the same node count.
    """
    check_instance("result", result, Result)
    require(result.lossless, "tree decoding differs from plain greedy decoding")
    chosen, aal_max = result.selected, result.aal_max
    aal_chosen, speed_chosen = result.seed_values(chosen)
    aal_top, speed_top = result.seed_values(aal_max)
    ratio = speed_chosen / speed_top
    require(
        ratio.mean() >= MIN_SPEED_RATIO and ratio.min() >= MIN_SPEED_RATIO,
        f"shape {chosen} is only {ratio.mean():.3f}x (min {ratio.min():.3f}x) as "
        f"fast as the AAL-maximising shape {aal_max}; need {MIN_SPEED_RATIO}x",
    )
    require(
        aal_chosen.mean() < aal_top.mean(),
        f"shape {chosen} has AAL {aal_chosen.mean():.3f}, not below "
        f"{aal_top.mean():.3f} of {aal_max}",
    )
    best_first = result.best_first_aal(chosen[0] * chosen[1])
    fraction = aal_chosen.mean() / best_first.mean()
    require(
        fraction >= MIN_AAL_FRACTION,
        f"equal-growth AAL is {fraction:.3f} of best-first's; need {MIN_AAL_FRACTION}",
    )


# -------------------------------------------------------------------- figures


def plot_aal_vs_speed(result: Result):
    """Scatter of AAL against tokens per unit time for every shape, marked up."""
    from paperlab import plotting

    check_instance("result", result, Result)
    aal, speed = result.aal, result.speed()
    widths, depths = np.indices(aal.shape) + 1
    fig, ax = plotting.subplots(width=6.4, height=4.0)
    points = ax.scatter(
        aal.ravel(), speed.ravel(), c=(widths * depths).ravel(), cmap="viridis", s=22
    )
    fig.colorbar(points, ax=ax, label="tree nodes w x D")
    marks = (
        ("best chain", result.chain, plotting.COLORS[2], "s"),
        ("max AAL", result.aal_max, plotting.COLORS[1], "X"),
        ("max tokens/time", result.latency_opt, plotting.COLORS[0], "*"),
    )
    for label, (w, d), color, marker in marks:
        ax.scatter(
            aal[w - 1, d - 1],
            speed[w - 1, d - 1],
            s=180,
            marker=marker,
            color=color,
            edgecolor="black",
            label=f"{label}: w={w}, D={d}",
        )
    plotting.label_axes(
        ax,
        title="Acceptance length is not speed",
        xlabel="average acceptance length (draft tokens per step)",
        ylabel="tokens per unit time (model)",
    )
    return fig


def plot_speed_heatmap(
    result: Result,
    latency: LatencyModel | None = None,
    mark: tuple[int, int] | None = None,
):
    """Heatmap of tokens per unit time over (width, depth), optima marked."""
    from paperlab import plotting

    check_instance("result", result, Result)
    latency = result.config.latency if latency is None else latency
    speed = result.speed(latency)
    aal_shape = select_shape(result.aal, speed, "aal")
    fast_shape = select_shape(result.aal, speed, "latency")
    fig, ax = plotting.subplots(width=5.6, height=5.0)
    n_w, n_d = speed.shape
    image = ax.imshow(
        speed,
        origin="lower",
        extent=(0.5, n_d + 0.5, 0.5, n_w + 0.5),
        aspect="auto",
    )
    fig.colorbar(image, ax=ax, label="tokens per unit time (model)")
    ax.grid(False)
    ax.plot(
        *aal_shape[::-1],
        "X",
        ms=13,
        color=plotting.COLORS[1],
        mec="white",
        label=f"max AAL (w={aal_shape[0]}, D={aal_shape[1]})",
    )
    ax.plot(
        *fast_shape[::-1],
        "*",
        ms=17,
        color=plotting.COLORS[3],
        mec="black",
        label=f"max tokens/time (w={fast_shape[0]}, D={fast_shape[1]})",
    )
    if mark is not None:
        ax.plot(
            mark[1],
            mark[0],
            "o",
            ms=14,
            mfc="none",
            mec="white",
            mew=2,
            label=f"chosen (w={mark[0]}, D={mark[1]})",
        )
    plotting.label_axes(
        ax,
        title=f"Modelled speed, n_sat = {latency.n_sat} tokens",
        xlabel="tree depth D (draft steps)",
        ylabel="tree width w (nodes per level)",
        legend=False,
    )
    # Below the axes, on grey, so that no marker is hidden and the white ring shows.
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=2,
        fontsize=8,
        frameon=True,
        facecolor="0.75",
    )
    return fig


# ------------------------------------------------------ real tiny transformers


def _last_logits(model, sequences: list[list[int]]):
    """Next-token logits after each sequence, in one right-padded batch."""
    import torch

    lengths = [len(s) for s in sequences]
    batch = torch.zeros((len(sequences), max(lengths)), dtype=torch.long)
    for i, seq in enumerate(sequences):
        batch[i, : len(seq)] = torch.tensor(seq)
    with torch.no_grad():
        logits = model(batch)
    # Causal attention: padding after a sequence cannot change its own positions.
    return logits[torch.arange(len(sequences)), torch.tensor(lengths) - 1]


def _lm_equal_growth_tree(draft, seq: list[int], width: int, depth: int):
    """Equal-growth tree drafted by a real model: one batched forward per level."""
    import torch

    context = draft.config.context
    tokens: list[int] = []
    parent: list[int] = []
    paths: list[list[int]] = [[]]  # root path first
    scores = torch.zeros(1, dtype=torch.float64)
    nodes = [-1]
    for _ in range(depth):
        windows = [(seq + p)[-context:] for p in paths]
        logp = torch.log_softmax(_last_logits(draft, windows).double(), dim=-1)
        total = (scores[:, None] + logp).ravel()
        keep = torch.argsort(-total, stable=True)[:width]
        vocab = logp.shape[1]
        new_paths = []
        for k in keep.tolist():
            front, tok = divmod(k, vocab)
            tokens.append(tok)
            parent.append(nodes[front])
            new_paths.append(paths[front] + [tok])
        nodes = list(range(len(tokens) - len(keep), len(tokens)))
        paths, scores = new_paths, total[keep]
    return tokens, parent


def _lm_verify(target, seq: list[int], tokens: list[int], parent: list[int]):
    """Greedy verification with a real target: one batched forward over all nodes."""
    context = target.config.context
    paths: list[list[int]] = []
    for j, tok in enumerate(tokens):
        paths.append((paths[parent[j]] if parent[j] >= 0 else []) + [tok])
    windows = [seq[-context:]] + [(seq + p)[-context:] for p in paths]
    choice = _last_logits(target, windows).argmax(dim=-1).tolist()
    node, accepted = -1, []
    while True:
        want = choice[node + 1]
        nxt = [j for j in range(len(tokens)) if parent[j] == node and tokens[j] == want]
        if not nxt:
            return accepted, want
        node = nxt[0]
        accepted.append(want)


def lm_tree_generate(target, draft, prompt_ids, n_new: int, width: int, depth: int):
    """Greedy speculative decoding with two :class:`~paperlab.tinylm.TinyCausalLM`.

    The draft model grows an equal-growth tree (one batched forward per level); the
    target scores every node in one batched forward and the tree is verified
    greedily. Each model sees at most its last ``context`` ids, as
    :func:`paperlab.tinylm.generate` does.

    Returns
    -------
    ids : ndarray of int64, shape (n_new,)
        Equal to ``generate(target, prompt_ids, n_new, use_cache=False)`` up to
        floating-point near-ties between batched and single forward passes.
    aal : float
        Draft tokens accepted per step.
    """
    from paperlab.tinylm import TinyCausalLM

    check_instance("target", target, TinyCausalLM)
    check_instance("draft", draft, TinyCausalLM)
    prompt = check_array("prompt_ids", prompt_ids, ndim=1, min_size=1)
    if not np.issubdtype(prompt.dtype, np.integer):
        raise TypeError(f"prompt_ids must hold integers, got dtype {prompt.dtype}")
    n_new = check_int("n_new", n_new, minimum=1)
    width = check_int("width", width, minimum=1, maximum=draft.config.vocab_size)
    depth = check_int("depth", depth, minimum=1)
    seq = prompt.astype(int).tolist()
    n_steps = n_accepted = 0
    while len(seq) - len(prompt) < n_new:
        tokens, parent = _lm_equal_growth_tree(draft, seq, width, depth)
        accepted, bonus = _lm_verify(target, seq, tokens, parent)
        seq += accepted + [bonus]
        n_steps += 1
        n_accepted += len(accepted)
    ids = np.asarray(seq[len(prompt) : len(prompt) + n_new], dtype=np.int64)
    return ids, n_accepted / n_steps

"""HiGR: a slate decoder that plans, then fills every slot at once; aligned by ORPO.

Pang et al., "HiGR: Efficient Generative Slate Recommendation via Hierarchical Planning
and Multi-Objective Preference Alignment", arXiv 2512.24787.

A generative slate recommender writes a slate of ``M`` items as semantic-ID tokens,
``D`` per item. A flat autoregressive decoder needs ``D * M`` sequential network passes
per slate. HiGR's hierarchical slate decoder splits generation into a list-level
planning stage (a representation of what the whole slate should contain) and an
item-level stage that decodes the slots from that plan, so the sequential chain is
short. After imitation training the decoder is aligned with pairs of better and worse
slates from implicit feedback by odds-ratio preference optimisation (ORPO), which needs
no reference model:

    L = NLL(chosen) - lambda * log sigmoid(log odds(chosen) - log odds(rejected)),
    log odds(s) = log P(s) - log(1 - P(s)).

The odds need a slate probability ``P(s)``: either the product of its ``2 M`` token
probabilities (``level="sum"`` of log-probabilities) or their geometric mean, the
per-token normalisation of the original ORPO for text (``level="mean"``).

This module builds a toy world (topics, items with a quality, users with sparse topic
preferences and a slate reward that discounts repeated topics), a noisy behaviour
policy that logs slates, two decoders of the same width (the flat ``D * M``-pass
baseline, ``D = 2`` tokens per item, and "HiGR-lite" with one planning pass and one
pass that decodes every slot in parallel), imitation and ORPO training, and the
chapter's claim. The claim counts sequential passes rather than timing them, and it
compares ORPO with the same fit without its odds-ratio term (``lambda = 0``: imitation
of the best served slate only), so that it tests the odds-ratio term itself. The
reward simulator is the Numba kernel :func:`paperlab.kernels.slate_sim.slate_rewards`.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from paperlab.claims import require
from paperlab.kernels.slate_sim import slate_rewards
from paperlab.optim import Adam
from paperlab.seeding import torch_device
from paperlab.timing import median_time
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
    check_probability,
)

__all__ = [
    "DECODERS",
    "ALIGNMENTS",
    "ODDS_LEVELS",
    "World",
    "make_world",
    "slate_reward",
    "behaviour_slates",
    "greedy_oracle_slates",
    "item_tokens",
    "FlatDecoder",
    "HierarchicalDecoder",
    "make_decoder",
    "imitation_loss",
    "sequence_log_odds",
    "orpo_loss",
    "train_decoder",
    "preference_pairs",
    "served_slates",
    "topic_diversity",
    "rank_shares",
    "evaluate",
    "latency_per_slate",
    "flops_per_slate",
    "Config",
    "SeedMetrics",
    "Result",
    "run_experiment",
    "check_claim",
    "WeightSweep",
    "sweep_orpo_weight",
]

log = logging.getLogger(__name__)

DECODERS = ("hierarchical", "flat")
ALIGNMENTS = ("orpo_mean", "orpo_sum", "none")
ODDS_LEVELS = ("mean", "sum")
TOKENS_PER_ITEM = 2  # semantic ID: (topic code, item code within the topic)

# The claim's thresholds (see check_claim).
HIGR_PASSES = 2
MIN_REWARD_GAIN = 0.05
MIN_ORPO_MARGIN = 0.03


# ------------------------------------------------------------------- the world


@dataclass(frozen=True)
class World:
    """A catalogue of topical items and users with sparse topic preferences.

    Item ``i`` has topic ``i // items_per_topic`` and local code
    ``i % items_per_topic``, its two-token semantic ID.
    """

    item_topic: np.ndarray  # int32 (n_items,)
    item_quality: np.ndarray  # float32 (n_items,), in [0.2, 1]
    user_pref: np.ndarray  # float32 (n_users, n_topics), rows sum to 1
    user_features: np.ndarray  # float32 (n_users, n_topics): noisy view of user_pref
    items_per_topic: int
    repeat_discount: float  # factor per earlier slot of the same topic

    @property
    def n_topics(self) -> int:
        """Number of topics ``T``."""
        return int(self.user_pref.shape[1])

    @property
    def n_items(self) -> int:
        """Number of items ``N = T * items_per_topic``."""
        return int(self.item_topic.shape[0])

    @property
    def n_users(self) -> int:
        """Number of users."""
        return int(self.user_pref.shape[0])


def make_world(
    n_topics: int,
    items_per_topic: int,
    n_users: int,
    topics_per_user: int,
    repeat_discount: float,
    rng: np.random.Generator,
    feature_noise: float = 0.05,
    concentration: float = 1.0,
) -> World:
    """Draw a catalogue and users.

    Each user likes ``topics_per_user`` random topics with Dirichlet weights of
    parameter ``concentration`` (larger: more even) and no others. The model sees
    ``user_features``, the preferences plus Gaussian noise of scale
    ``feature_noise``.

    Parameters
    ----------
    n_topics, items_per_topic, n_users : int
        Catalogue and population sizes, each at least 1.
    topics_per_user : int
        Liked topics per user, between 1 and ``n_topics``.
    repeat_discount : float
        In [0, 1]; see :func:`slate_reward`.
    rng : numpy.random.Generator
    feature_noise : float
        Standard deviation of the feature noise, at least 0.
    concentration : float
        Dirichlet parameter of the liked topics' weights, above 0.

    Returns
    -------
    World
    """
    n_topics = check_int("n_topics", n_topics, minimum=1)
    items_per_topic = check_int("items_per_topic", items_per_topic, minimum=1)
    n_users = check_int("n_users", n_users, minimum=1)
    topics_per_user = check_int(
        "topics_per_user", topics_per_user, minimum=1, maximum=n_topics
    )
    repeat_discount = check_probability("repeat_discount", repeat_discount)
    feature_noise = check_float("feature_noise", feature_noise, minimum=0.0)
    concentration = check_float(
        "concentration", concentration, minimum=0.0, strict_minimum=True
    )
    check_instance("rng", rng, np.random.Generator)
    n_items = n_topics * items_per_topic
    item_topic = (np.arange(n_items) // items_per_topic).astype(np.int32)
    item_quality = rng.uniform(0.2, 1.0, size=n_items).astype(np.float32)
    liked = np.argsort(rng.random((n_users, n_topics)), axis=1)[:, :topics_per_user]
    weights = rng.dirichlet(np.full(topics_per_user, concentration), size=n_users)
    user_pref = np.zeros((n_users, n_topics), dtype=np.float32)
    np.put_along_axis(user_pref, liked, weights.astype(np.float32), axis=1)
    noise = feature_noise * rng.standard_normal(user_pref.shape)
    return World(
        item_topic=item_topic,
        item_quality=item_quality,
        user_pref=user_pref,
        user_features=(user_pref + noise).astype(np.float32),
        items_per_topic=items_per_topic,
        repeat_discount=repeat_discount,
    )


def slate_reward(world: World, slates, users) -> np.ndarray:
    """Simulated watch-time reward of each slate (the toy's stand-in).

    ``reward = sum_m pref[u, t_m] * quality[s_m] * discount ** r_m`` with ``r_m``
    the number of earlier slots of the slate with the same topic ``t_m``, so a good
    slate covers the user's topics in proportion to how much they are liked.

    Parameters
    ----------
    world : World
    slates : array_like of int, shape (B, M)
        Item ids.
    users : array_like of int, shape (B,)
        The user of each slate.

    Returns
    -------
    ndarray of float32, shape (B,)
    """
    check_instance("world", world, World)
    slates = check_array("slates", slates, ndim=2)
    users = check_array("users", users, ndim=1, shape=(slates.shape[0],))
    for name, arr, high in (
        ("slates", slates, world.n_items),
        ("users", users, world.n_users),
    ):
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= high):
            raise ValueError(f"{name} must lie in [0, {high}), got {arr.min()}..")
    return slate_rewards(
        np.ascontiguousarray(slates, dtype=np.int32),
        world.user_pref,
        np.ascontiguousarray(users, dtype=np.int32),
        world.item_topic,
        world.item_quality,
        world.repeat_discount,
    )


def behaviour_slates(
    world: World,
    users,
    n_slots: int,
    slates_per_user: int,
    rng: np.random.Generator,
    uniform_share: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Slates logged by a noisy behaviour policy, which plans nothing across slots.

    Items are drawn without replacement with weight proportional to
    ``(1 - uniform_share) * pref[u, t_i] + uniform_share / T`` times
    ``exp(3 * quality_i)`` (Gumbel top-``M`` sampling), so topics repeat as often as
    chance makes them.

    Returns
    -------
    slates : ndarray of int32, shape (len(users) * slates_per_user, n_slots)
    slate_users : ndarray of int32, shape (len(users) * slates_per_user,)
    """
    check_instance("world", world, World)
    users = check_array("users", users, ndim=1, dtype=np.int64)
    n_slots = check_int("n_slots", n_slots, minimum=1, maximum=world.n_items)
    slates_per_user = check_int("slates_per_user", slates_per_user, minimum=1)
    check_instance("rng", rng, np.random.Generator)
    uniform_share = check_probability("uniform_share", uniform_share)
    slate_users = np.repeat(users, slates_per_user)
    topic_w = (1 - uniform_share) * world.user_pref + uniform_share / world.n_topics
    logits = np.log(topic_w[slate_users][:, world.item_topic] + 1e-12)
    logits += 3.0 * world.item_quality
    logits += rng.gumbel(size=logits.shape)
    top = np.argpartition(-logits, n_slots - 1, axis=1)[:, :n_slots]
    order = np.argsort(-np.take_along_axis(logits, top, axis=1), axis=1)
    slates = np.take_along_axis(top, order, axis=1).astype(np.int32)
    return slates, slate_users.astype(np.int32)


def greedy_oracle_slates(world: World, users, n_slots: int) -> np.ndarray:
    """Slates that know the reward: each slot takes the item of largest marginal gain.

    A reference point for the decoders (it reads ``user_pref``, which they do not).

    Returns
    -------
    ndarray of int32, shape (len(users), n_slots)
    """
    check_instance("world", world, World)
    users = check_array("users", users, ndim=1, dtype=np.int64)
    n_slots = check_int("n_slots", n_slots, minimum=1, maximum=world.n_items)
    gains = world.user_pref[users][:, world.item_topic] * world.item_quality
    rows = np.arange(users.shape[0])
    slates = np.empty((users.shape[0], n_slots), dtype=np.int32)
    for m in range(n_slots):
        best = gains.argmax(axis=1)
        slates[:, m] = best
        same = world.item_topic[None, :] == world.item_topic[best][:, None]
        gains = np.where(same, gains * world.repeat_discount, gains)
        gains[rows, best] = -np.inf
    return slates


def item_tokens(world: World, slates) -> np.ndarray:
    """Semantic-ID tokens of slates: ``(topic, local code)`` per item.

    Returns
    -------
    ndarray of int64, shape (B, M, 2)
    """
    check_instance("world", world, World)
    slates = check_array("slates", slates, ndim=2).astype(np.int64)
    per = world.items_per_topic
    return np.stack((slates // per, slates % per), axis=2)


# ---------------------------------------------------------------- the decoders


def _perturb(log_probs: torch.Tensor, generator) -> torch.Tensor:
    """Add Gumbel noise when sampling (``generator`` given); identity otherwise."""
    if generator is None:
        return log_probs
    u = torch.rand(log_probs.shape, generator=generator, device=log_probs.device)
    return log_probs - torch.log(-torch.log(u.clamp(min=1e-12)))


class FlatDecoder(nn.Module):
    """The baseline: one autoregressive chain over all ``2 M`` semantic-ID tokens.

    Token ``k`` is predicted from a GRU state that has read the user and tokens
    ``0 .. k-1``; even tokens are topics, odd tokens local codes. Decoding a slate
    takes ``2 M`` sequential passes of the GRU cell and a head.
    """

    def __init__(self, n_features, n_topics, items_per_topic, n_slots, d_model):
        super().__init__()
        self.n_topics, self.items_per_topic = n_topics, items_per_topic
        self.n_slots = n_slots
        self.user = nn.Linear(n_features, d_model)
        # vocabulary: topics, then local codes, then the start token
        self.token = nn.Embedding(n_topics + items_per_topic + 1, d_model)
        self.position = nn.Embedding(TOKENS_PER_ITEM * n_slots, d_model)
        self.cell = nn.GRUCell(d_model, d_model)
        self.topic_head = nn.Linear(d_model, n_topics)
        self.code_head = nn.Linear(d_model, items_per_topic)

    def _step(self, user, prev, k, h):
        """One sequential pass: read token ``prev`` at position ``k``, predict next."""
        pos = self.position.weight[k]
        h = self.cell(torch.relu(user + self.token(prev) + pos), h)
        head = self.topic_head if k % 2 == 0 else self.code_head
        return torch.log_softmax(head(h), dim=-1), h

    def token_log_probs(self, features, tokens):
        """Log-probability of every token under teacher forcing, ``[B, 2M]``."""
        user = self.user(features)
        flat = tokens.reshape(tokens.shape[0], -1)
        prev = torch.full_like(flat[:, 0], self.n_topics + self.items_per_topic)
        h = torch.zeros_like(user)
        out = []
        for k in range(flat.shape[1]):
            logp, h = self._step(user, prev, k, h)
            out.append(logp.gather(1, flat[:, k : k + 1]))
            prev = flat[:, k] + (0 if k % 2 == 0 else self.n_topics)
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def decode(self, features, generator=None):
        """Greedy slates (no item twice), ``(slates int32 [B, M], passes)``.

        With a ``torch.Generator``, Gumbel noise turns each argmax into a draw
        from the model's distribution (sampling instead of greedy decoding).
        """
        user = self.user(features)
        b = features.shape[0]
        prev = torch.full((b,), self.n_topics + self.items_per_topic, dtype=torch.long)
        prev = prev.to(features.device)
        h = torch.zeros_like(user)
        rows = torch.arange(b, device=features.device)
        taken = torch.zeros(b, self.n_topics, self.items_per_topic, dtype=torch.bool)
        taken = taken.to(features.device)
        slates, passes, topic = [], 0, None
        for k in range(TOKENS_PER_ITEM * self.n_slots):
            logp, h = self._step(user, prev, k, h)
            passes += 1
            logp = _perturb(logp, generator)
            if k % 2 == 0:
                topic = logp.argmax(dim=1)
                prev = topic
            else:
                code = logp.masked_fill(taken[rows, topic], -torch.inf).argmax(dim=1)
                taken[rows, topic, code] = True
                slates.append(topic * self.items_per_topic + code)
                prev = code + self.n_topics
        return torch.stack(slates, 1).cpu().numpy().astype(np.int32), passes


class HierarchicalDecoder(nn.Module):
    """HiGR-lite: a list-level planning pass, then every slot decoded in parallel.

    Pass 1 maps the user to a slate intent ``z`` (the plan). Pass 2 decodes all
    ``M`` slots at once from ``(z, slot embedding)``: each slot gets a distribution
    over topics and, for every topic, over local codes, so
    ``log P(item) = log P(topic) + log P(code | topic)`` for every item with no
    further pass. Slots are conditionally independent given the plan.
    """

    def __init__(self, n_features, n_topics, items_per_topic, n_slots, d_model):
        super().__init__()
        self.n_topics, self.items_per_topic = n_topics, items_per_topic
        self.n_slots = n_slots
        self.plan = nn.Sequential(
            nn.Linear(n_features, d_model),
            nn.ReLU(),
            nn.Linear(d_model, d_model),
        )
        self.slot = nn.Parameter(0.1 * torch.randn(n_slots, d_model))
        self.body = nn.Linear(d_model, d_model)
        self.topic_head = nn.Linear(d_model, n_topics)
        # one output vector per item: topic t's code logits are rows of topic t
        self.code_out = nn.Parameter(
            0.1 * torch.randn(n_topics, items_per_topic, d_model)
        )
        self.code_bias = nn.Parameter(torch.zeros(n_topics, items_per_topic))

    def _hidden(self, features):
        """Planning pass, then the item-level body for every slot, ``[B, M, d]``."""
        intent = self.plan(features)
        return torch.relu(self.body(intent[:, None, :] + self.slot[None]))

    def token_log_probs(self, features, tokens):
        """Log-probability of every token, ``[B, 2M]`` (topic, code per slot)."""
        h = self._hidden(features)
        t, c = tokens[..., 0], tokens[..., 1]
        topic_lp = torch.log_softmax(self.topic_head(h), dim=-1)
        lp_t = topic_lp.gather(2, t[..., None])[..., 0]
        code_logits = torch.einsum("bmpd,bmd->bmp", self.code_out[t], h)
        code_lp = torch.log_softmax(code_logits + self.code_bias[t], dim=-1)
        lp_c = code_lp.gather(2, c[..., None])[..., 0]
        return torch.stack((lp_t, lp_c), dim=2).reshape(tokens.shape[0], -1)

    @torch.no_grad()
    def decode(self, features, generator=None):
        """Greedy slates (no item twice), ``(slates int32 [B, M], passes)``.

        With a ``torch.Generator``, each slot's item is drawn instead (Gumbel-max).
        """
        h = self._hidden(features)  # passes 1 and 2: plan, then all slots at once
        passes = 2
        topic_lp = torch.log_softmax(self.topic_head(h), dim=-1)
        code_logits = torch.einsum("tpd,bmd->bmtp", self.code_out, h)
        code_lp = torch.log_softmax(code_logits + self.code_bias, dim=-1)
        joint = (topic_lp[..., None] + code_lp).reshape(*topic_lp.shape[:2], -1)
        rows = torch.arange(features.shape[0], device=features.device)
        taken = torch.zeros_like(joint[:, 0], dtype=torch.bool)
        slates = []
        for m in range(self.n_slots):  # selection only: no network pass here
            scores = _perturb(joint[:, m], generator)
            item = scores.masked_fill(taken, -torch.inf).argmax(dim=1)
            taken[rows, item] = True
            slates.append(item)
        return torch.stack(slates, 1).cpu().numpy().astype(np.int32), passes


def make_decoder(
    kind: str, world: World, n_slots: int, d_model: int, seed: int
) -> nn.Module:
    """A fresh decoder of ``kind`` ("hierarchical" or "flat"), seeded, on the device."""
    kind = check_choice("kind", kind, DECODERS)
    check_instance("world", world, World)
    n_slots = check_int("n_slots", n_slots, minimum=1, maximum=world.n_items)
    d_model = check_int("d_model", d_model, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    torch.manual_seed(seed)
    cls = HierarchicalDecoder if kind == "hierarchical" else FlatDecoder
    model = cls(world.n_topics, world.n_topics, world.items_per_topic, n_slots, d_model)
    return model.to(torch_device())


# ------------------------------------------------------------------ the losses


def imitation_loss(model: nn.Module, features, tokens) -> torch.Tensor:
    """Mean per-token negative log-likelihood of the slates ``tokens`` [B, M, 2]."""
    return -model.token_log_probs(features, tokens).mean()


def sequence_log_odds(token_log_probs: torch.Tensor, level: str) -> torch.Tensor:
    """Log odds ``log P - log(1 - P)`` of each slate, ``[B]``.

    Parameters
    ----------
    token_log_probs : torch.Tensor, shape (B, 2M)
        Log-probability of every token of each slate.
    level : str
        ``"mean"``: ``log P`` is the mean token log-probability, so ``P`` is the
        geometric mean token probability (the per-token normalisation of the
        original ORPO for text). ``"sum"``: ``log P`` is their sum, the probability
        of the whole slate; it is so small that its odds are just ``P`` and the
        odds ratio becomes a probability ratio.

    Returns
    -------
    torch.Tensor, shape (B,)
    """
    level = check_choice("level", level, ODDS_LEVELS)
    if level == "sum":
        log_p = token_log_probs.sum(dim=1)
    else:
        log_p = token_log_probs.mean(dim=1)
    log_p = log_p.clamp(max=-1e-6)
    return log_p - torch.log(-torch.expm1(log_p))


def orpo_loss(
    model: nn.Module, features, chosen, rejected, weight: float, level: str
) -> torch.Tensor:
    """ORPO: NLL of the chosen slate minus ``weight`` times the log-sigmoid odds ratio.

    ``L = NLL(chosen) - weight * mean log sigmoid(lo(chosen) - lo(rejected))``, with
    the NLL per token and ``lo`` from :func:`sequence_log_odds` at ``level``.
    """
    weight = check_float("weight", weight, minimum=0.0)
    lp_w = model.token_log_probs(features, chosen)
    lp_l = model.token_log_probs(features, rejected)
    margin = sequence_log_odds(lp_w, level) - sequence_log_odds(lp_l, level)
    return -lp_w.mean() - weight * nn.functional.logsigmoid(margin).mean()


def train_decoder(
    model: nn.Module,
    loss_fn,
    data: tuple,
    steps: int,
    batch_size: int,
    lr: float,
    rng: np.random.Generator,
) -> list[float]:
    """Minibatch Adam on ``loss_fn(model, *batch)``; ``data`` arrays share axis 0.

    Returns the loss of every step.
    """
    steps = check_int("steps", steps, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
    check_instance("rng", rng, np.random.Generator)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = Adam(params, lr=lr)
    n = data[0].shape[0]
    losses = []
    for _ in range(steps):
        idx = torch.as_tensor(rng.integers(0, n, size=min(batch_size, n)))
        loss = loss_fn(model, *(d[idx] for d in data))
        grads = torch.autograd.grad(loss, params)
        optimizer.step(grads)
        losses.append(float(loss.detach()))
    return losses


def preference_pairs(
    slates: np.ndarray, slate_users: np.ndarray, rewards: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best and worst logged slate of every user: ``(users, chosen, rejected)``."""
    slates = check_array("slates", slates, ndim=2)
    slate_users = check_array("slate_users", slate_users, shape=(slates.shape[0],))
    rewards = check_array("rewards", rewards, shape=(slates.shape[0],), finite=True)
    order = np.lexsort((rewards, slate_users))
    users_sorted = slate_users[order]
    first = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
    last = np.r_[first[1:] - 1, len(order) - 1]
    keep = last > first
    return (
        users_sorted[first[keep]],
        slates[order[last[keep]]],
        slates[order[first[keep]]],
    )


# ------------------------------------------------------------- the evaluation


@dataclass(frozen=True)
class Evaluation:
    """One decoder on held-out users: greedy and served (sampled) slates."""

    slates: np.ndarray  # int32 (n_users, M), greedy
    greedy_reward: float  # mean reward of the greedy slates
    served_reward: float  # mean reward of sampled slates, the policy's expectation
    topic_diversity: float  # mean distinct topics per served slate
    passes: int  # sequential network passes per slate
    rank_shares: np.ndarray  # served slots per preference rank, see rank_shares


def topic_diversity(world: World, slates) -> np.ndarray:
    """Distinct topics in each slate, ``[B]``."""
    check_instance("world", world, World)
    slates = check_array("slates", slates, ndim=2, min_size=1)
    topics = np.sort(world.item_topic[slates], axis=1)
    return (np.diff(topics, axis=1) != 0).sum(axis=1) + 1


def rank_shares(world: World, slates, users) -> np.ndarray:
    """Share of slots whose topic is the user's 1st, 2nd, ... liked topic, or unliked.

    Parameters
    ----------
    world : World
    slates : array_like of int, shape (B, M)
    users : array_like of int, shape (B,)

    Returns
    -------
    ndarray of float, shape (K + 1,)
        Entry ``k < K`` is the share of all slots on the user's ``(k+1)``-th most
        liked topic, with ``K`` the largest number of liked topics of any user; the
        last entry is the share on topics the user does not like. Sums to 1.
    """
    check_instance("world", world, World)
    slates = check_array("slates", slates, ndim=2, min_size=1)
    users = check_array("users", users, ndim=1, shape=(slates.shape[0],))
    n_liked = int((world.user_pref > 0).sum(axis=1).max())
    pref = world.user_pref[users]  # (B, T)
    slot_pref = np.take_along_axis(pref, world.item_topic[slates], axis=1)
    rank = (pref[:, None, :] > slot_pref[:, :, None]).sum(axis=2)  # (B, M)
    rank = np.where(slot_pref > 0, rank, n_liked)
    return np.bincount(rank.ravel(), minlength=n_liked + 1) / rank.size


def evaluate(
    model: nn.Module, world: World, users, samples_per_user: int = 4, seed: int = 0
) -> Evaluation:
    """Score greedy slates and ``samples_per_user`` sampled slates per user."""
    check_instance("world", world, World)
    users = check_array("users", users, ndim=1, dtype=np.int64, min_size=1)
    model.eval()
    features = torch.as_tensor(world.user_features[users], device=torch_device())
    slates, passes = model.decode(features)
    greedy = slate_reward(world, slates, users)
    served, served_users, rewards = served_slates(
        model, world, users, samples_per_user, seed
    )
    return Evaluation(
        slates,
        float(greedy.mean()),
        float(rewards.mean()),
        float(topic_diversity(world, served).mean()),
        passes,
        rank_shares(world, served, served_users),
    )


def latency_per_slate(model: nn.Module, world: World, users, repeats: int = 5) -> float:
    """Median seconds to decode one slate for one user (batch of one request).

    Wall-clock time on a shared machine: the chapter reports it and asserts only the
    counted sequential passes.
    """
    users = check_array("users", users, ndim=1, dtype=np.int64, min_size=1)
    repeats = check_int("repeats", repeats, minimum=1)
    feats = [
        torch.as_tensor(world.user_features[u : u + 1], device=torch_device())
        for u in users
    ]

    def serve():
        for f in feats:
            model.decode(f)

    return median_time(serve, repeats=repeats).median / len(feats)


def flops_per_slate(model: nn.Module) -> int:
    """Floating-point operations of the matrix products that decode one slate.

    Counted from the layer shapes, two per multiply-add, for one user; softmaxes and
    the selection of items are not counted. With ``F`` features, width ``d``, ``T``
    topics, ``P`` items per topic and ``M`` slots:

    - flat: ``2 F d`` for the user, then per token (``2 M`` of them) a GRU cell,
      ``2 (3 d^2 + 3 d^2)``, plus the topic or code head, ``2 M d (T + P)`` in all;
    - HiGR-lite: ``2 F d + 2 d^2`` for the plan, then per slot the body, the topic
      head and a code logit for every item, ``2 M d (d + T + T P)``.

    The tests check these counts against ``torch.utils.flop_counter``.
    """
    if not isinstance(model, (FlatDecoder, HierarchicalDecoder)):
        raise TypeError(
            "model must be a FlatDecoder or HierarchicalDecoder, "
            f"got {type(model).__name__}"
        )
    m = model.n_slots
    if isinstance(model, FlatDecoder):
        cell = model.cell.weight_ih.numel() + model.cell.weight_hh.numel()
        heads = model.topic_head.weight.numel() + model.code_head.weight.numel()
        return 2 * (model.user.weight.numel() + TOKENS_PER_ITEM * m * cell + m * heads)
    plan = sum(layer.weight.numel() for layer in model.plan if hasattr(layer, "weight"))
    slot = (
        model.body.weight.numel()
        + model.topic_head.weight.numel()
        + model.code_out.numel()
    )
    return 2 * (plan + m * slot)


# ------------------------------------------------------------- the experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the variant under test."""

    decoder: str = "hierarchical"  # decoder under test: "hierarchical" or "flat"
    alignment: str = "orpo_mean"  # "orpo_mean", "orpo_sum" or "none"
    orpo_weight: float = 1.0  # lambda, weight of the odds-ratio term
    seeds: tuple[int, ...] = (0, 1, 2)
    n_topics: int = 20
    items_per_topic: int = 25
    n_users: int = 1000  # of which n_test_users are held out
    n_test_users: int = 250
    topics_per_user: int = 3
    concentration: float = 1.0  # Dirichlet parameter of the liked topics' weights
    n_slots: int = 5  # M
    repeat_discount: float = 0.6
    slates_per_user: int = 8  # logged and served slates per training user
    top_fraction: float = 0.2  # imitation keeps this share of the best logged slates
    d_model: int = 32
    imitation_steps: int = 100
    orpo_steps: int = 40
    batch_size: int = 64
    lr: float = 1e-2
    eval_samples: int = 4  # served (sampled) slates per held-out user
    timing_users: int = 10  # single-slate requests per latency measurement

    def __post_init__(self):
        check_choice("decoder", self.decoder, DECODERS)
        check_choice("alignment", self.alignment, ALIGNMENTS)
        check_float("orpo_weight", self.orpo_weight, minimum=0.0)
        if not isinstance(self.seeds, tuple) or not self.seeds:
            raise ValueError("seeds must be a non-empty tuple of integers")
        for s in self.seeds:
            check_int("seeds[i]", s, minimum=0)
        for name in ("n_topics", "items_per_topic", "topics_per_user", "n_slots"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("n_users", self.n_users, minimum=2)
        check_int(
            "n_test_users", self.n_test_users, minimum=1, maximum=self.n_users - 1
        )
        check_probability("repeat_discount", self.repeat_discount)
        check_float("concentration", self.concentration, minimum=1e-3)
        check_int("slates_per_user", self.slates_per_user, minimum=2)
        check_float("top_fraction", self.top_fraction, minimum=0.0, strict_minimum=True)
        check_float("top_fraction", self.top_fraction, maximum=1.0)
        for name in ("d_model", "batch_size", "eval_samples", "timing_users"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("imitation_steps", "orpo_steps"):
            check_int(name, getattr(self, name), minimum=0)
        check_float("lr", self.lr, minimum=0.0, strict_minimum=True)

    @property
    def odds_level(self) -> str | None:
        """The ``level`` of :func:`sequence_log_odds`, or None without alignment."""
        return None if self.alignment == "none" else self.alignment[len("orpo_") :]


@dataclass(frozen=True)
class SeedMetrics:
    """One seed's measurements (rewards are means over held-out users)."""

    seed: int
    reward_logged: float  # mean reward of the behaviour policy's logged slates
    reward_oracle: float  # greedy slates that know the reward
    reward_flat: float  # served slates: flat decoder, imitation only
    reward_imitation: float  # served slates: decoder under test, imitation only
    reward_self_training: float  # served: same pairs and minibatches, lambda = 0
    reward_aligned: float  # served slates: decoder under test after alignment
    greedy_flat: float  # greedy slates, same decoders
    greedy_imitation: float
    greedy_aligned: float
    diversity_imitation: float  # distinct topics per served slate
    diversity_aligned: float
    passes_flat: int  # sequential passes per slate (counted)
    passes_test: int
    latency_flat: float  # seconds per single-user slate (wall clock, reported only)
    latency_test: float

    @property
    def reward_gain(self) -> float:
        """Relative gain of alignment over imitation."""
        return self.reward_aligned / self.reward_imitation - 1.0

    @property
    def orpo_margin(self) -> float:
        """Relative gain of alignment over the same fit with ``lambda = 0``."""
        return self.reward_aligned / self.reward_self_training - 1.0

    @property
    def speedup(self) -> float:
        """Latency of the flat decoder over that of the decoder under test."""
        return self.latency_flat / self.latency_test


@dataclass(frozen=True)
class Result:
    """Every seed's metrics, and seed 0's trained models for inspection."""

    config: Config
    seeds: tuple[SeedMetrics, ...]
    models: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def mean_reward_gain(self) -> float:
        """Alignment's relative reward gain over imitation, averaged over seeds."""
        return float(np.mean([s.reward_gain for s in self.seeds]))

    @property
    def min_orpo_margin(self) -> float:
        """Smallest relative gain over the ``lambda = 0`` fit, over seeds."""
        return float(np.min([s.orpo_margin for s in self.seeds]))

    @property
    def median_speedup(self) -> float:
        """Median over seeds of the flat-over-tested latency ratio (wall clock)."""
        return float(np.median([s.speedup for s in self.seeds]))


def _split_users(config: Config, rng: np.random.Generator):
    users = rng.permutation(config.n_users)
    return np.sort(users[config.n_test_users :]), np.sort(users[: config.n_test_users])


def _logged_data(config: Config, world: World, train_users, rng):
    slates, slate_users = behaviour_slates(
        world, train_users, config.n_slots, config.slates_per_user, rng
    )
    rewards = slate_reward(world, slates, slate_users)
    return slates, slate_users, rewards


def _tensors(world: World, users, slates):
    device = torch_device()
    feats = torch.as_tensor(world.user_features[users], device=device)
    return feats, torch.as_tensor(item_tokens(world, slates), device=device)


def _imitate(config, world, kind, logged, seed, rng):
    slates, slate_users, rewards = logged
    keep = rewards >= np.quantile(rewards, 1.0 - config.top_fraction)
    data = _tensors(world, slate_users[keep], slates[keep])
    model = make_decoder(kind, world, config.n_slots, config.d_model, seed)
    train_decoder(
        model,
        imitation_loss,
        data,
        config.imitation_steps,
        config.batch_size,
        config.lr,
        rng,
    )
    return model


def served_slates(
    model: nn.Module, world: World, users, slates_per_user: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slates the decoder serves (sampled) to ``users``, and the feedback they get.

    Returns ``(slates, slate_users, rewards)`` as :func:`preference_pairs` takes them.
    """
    check_instance("world", world, World)
    users = check_array("users", users, ndim=1, dtype=np.int64, min_size=1)
    slates_per_user = check_int("slates_per_user", slates_per_user, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    slate_users = np.repeat(users, slates_per_user)
    gen = torch.Generator(device=torch_device()).manual_seed(seed)
    feats = torch.as_tensor(world.user_features[slate_users], device=torch_device())
    model.eval()
    slates, _ = model.decode(feats, generator=gen)
    return slates, slate_users, slate_reward(world, slates, slate_users)


def _preference_data(config, world, model, train_users, seed):
    """Each training user's best and worst served slate, as tensors."""
    served = served_slates(model, world, train_users, config.slates_per_user, seed)
    users, chosen, rejected = preference_pairs(*served)
    feats, tok_w = _tensors(world, users, chosen)
    tok_l = torch.as_tensor(item_tokens(world, rejected), device=feats.device)
    return feats, tok_w, tok_l


def _orpo_fit(config, model, pairs, weight, level, seed):
    """A copy of ``model`` trained by ORPO; the minibatch order depends on seed only."""
    aligned = copy.deepcopy(model)

    def loss_fn(m, f, w, r):
        return orpo_loss(m, f, w, r, weight, level)

    rng = np.random.default_rng([seed, 1])
    train_decoder(
        aligned, loss_fn, pairs, config.orpo_steps, config.batch_size, config.lr, rng
    )
    return aligned


def _run_seed(config: Config, seed: int):
    rng = np.random.default_rng(seed)
    world = make_world(
        config.n_topics,
        config.items_per_topic,
        config.n_users,
        config.topics_per_user,
        config.repeat_discount,
        rng,
        concentration=config.concentration,
    )
    train_users, test_users = _split_users(config, rng)
    logged = _logged_data(config, world, train_users, rng)
    flat = _imitate(config, world, "flat", logged, seed, rng)
    if config.decoder == "flat":
        imitation = flat
    else:
        imitation = _imitate(config, world, config.decoder, logged, seed, rng)
    pairs = None
    if config.alignment == "none":
        aligned = self_training = imitation
    else:
        pairs = _preference_data(config, world, imitation, train_users, seed)
        level, weight = config.odds_level, config.orpo_weight
        aligned = _orpo_fit(config, imitation, pairs, weight, level, seed)
        self_training = (
            aligned
            if weight == 0.0
            else _orpo_fit(config, imitation, pairs, 0.0, level, seed)
        )
    eval_seed = seed + 10_000  # the same sampling noise for every decoder
    ev_flat = evaluate(flat, world, test_users, config.eval_samples, eval_seed)
    ev_imit = evaluate(imitation, world, test_users, config.eval_samples, eval_seed)
    ev_self = evaluate(self_training, world, test_users, config.eval_samples, eval_seed)
    ev_align = evaluate(aligned, world, test_users, config.eval_samples, eval_seed)
    oracle = greedy_oracle_slates(world, test_users, config.n_slots)
    timing = test_users[: config.timing_users]
    metrics = SeedMetrics(
        seed=seed,
        reward_logged=float(logged[2].mean()),
        reward_oracle=float(slate_reward(world, oracle, test_users).mean()),
        reward_flat=ev_flat.served_reward,
        reward_imitation=ev_imit.served_reward,
        reward_self_training=ev_self.served_reward,
        reward_aligned=ev_align.served_reward,
        greedy_flat=ev_flat.greedy_reward,
        greedy_imitation=ev_imit.greedy_reward,
        greedy_aligned=ev_align.greedy_reward,
        diversity_imitation=ev_imit.topic_diversity,
        diversity_aligned=ev_align.topic_diversity,
        passes_flat=ev_flat.passes,
        passes_test=ev_align.passes,
        latency_flat=latency_per_slate(flat, world, timing),
        latency_test=latency_per_slate(aligned, world, timing),
    )
    models = {
        "world": world,
        "test_users": test_users,
        "train_users": train_users,
        "flat": flat,
        "imitation": imitation,
        "self_training": self_training,
        "aligned": aligned,
        "pairs": pairs,
        "evaluations": {
            "imitation": ev_imit,
            "self_training": ev_self,
            "aligned": ev_align,
        },
    }
    return metrics, models


def run_experiment(config: Config) -> Result:
    """Train and evaluate the flat decoder, the tested decoder and its aligned copies.

    For each seed: draw the world, log ``slates_per_user`` behaviour slates for each
    training user, train the flat decoder and the tested decoder by imitation of the
    top ``top_fraction`` of logged slates, let the tested decoder serve
    ``slates_per_user`` sampled slates to each training user and pair each user's
    best and worst, then fit two copies on these pairs with the same minibatches:
    ORPO at ``orpo_weight`` and the control with ``lambda = 0`` (imitation of the
    best served slate only). Served and greedy slates are scored on held-out users.

    Parameters
    ----------
    config : Config

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    seeds, models = [], {}
    for seed in config.seeds:
        metrics, run = _run_seed(config, seed)
        log.info("seed %d: %s", seed, metrics)
        seeds.append(metrics)
        if not models:
            models = run
    return Result(config, tuple(seeds), models)


def check_claim(result: Result) -> None:
    """Raise :class:`~paperlab.claims.ClaimFailed` unless the chapter's claim holds.

    (i) On every seed the tested decoder needs ``HIGR_PASSES`` (2) sequential passes
    per slate against ``2 M`` (10) for the flat decoder (counted, not timed).
    (ii) Alignment raises the mean held-out served reward by at least
    ``MIN_REWARD_GAIN`` (5%) over imitation alone, averaged over seeds. (iii) On
    every seed the aligned decoder beats the same fit without the odds-ratio term
    (``lambda = 0``, same pairs and minibatches) by at least ``MIN_ORPO_MARGIN``
    (3%), so the gain is not self-training on the best served slate alone.
    """
    check_instance("result", result, Result)
    n_tokens = TOKENS_PER_ITEM * result.config.n_slots
    for s in result.seeds:
        require(
            s.passes_flat == n_tokens,
            f"seed {s.seed}: flat decoder used {s.passes_flat} passes, "
            f"expected {n_tokens}",
        )
        require(
            s.passes_test <= HIGR_PASSES,
            f"seed {s.seed}: decoder used {s.passes_test} sequential passes per "
            f"slate, more than {HIGR_PASSES}",
        )
    require(
        result.mean_reward_gain >= MIN_REWARD_GAIN,
        f"alignment raised mean reward by {result.mean_reward_gain:+.1%}, less than "
        f"{MIN_REWARD_GAIN:.0%}",
    )
    for s in result.seeds:
        require(
            s.orpo_margin >= MIN_ORPO_MARGIN,
            f"seed {s.seed}: the odds-ratio term changed served reward by "
            f"{s.orpo_margin:+.1%} against lambda = 0, less than "
            f"{MIN_ORPO_MARGIN:+.0%}",
        )


# ------------------------------------------------------------------ the widget


@dataclass(frozen=True)
class WeightSweep:
    """Seed 0's aligned decoder at several ORPO weights, on held-out users."""

    weights: tuple[float, ...]
    rewards: tuple[float, ...]  # mean served reward
    diversity: tuple[float, ...]  # distinct topics per served slate
    rank_shares: tuple[np.ndarray, ...]  # see rank_shares, one array per weight
    reward_imitation: float
    diversity_imitation: float
    rank_shares_imitation: np.ndarray


def sweep_orpo_weight(
    result: Result, weights: tuple[float, ...], alignment: str = "orpo_mean"
) -> WeightSweep:
    """Re-align seed 0's imitation model at each ORPO weight in ``weights``.

    Every fit uses the experiment's preference pairs and minibatch order, so the
    experiment's own weight (and ``lambda = 0``) reproduce its models, which are
    reused. ``alignment`` is "orpo_mean" or "orpo_sum" (see
    :func:`sequence_log_odds`).
    """
    check_instance("result", result, Result)
    alignment = check_choice("alignment", alignment, ALIGNMENTS[:2])
    if not isinstance(weights, tuple) or not weights:
        raise ValueError("weights must be a non-empty tuple of floats")
    weights = tuple(check_float("weights[i]", w, minimum=0.0) for w in weights)
    run, config = result.models, result.config
    if run.get("pairs") is None:
        raise ValueError("result must come from a run with alignment, not 'none'")
    world, users, seed = run["world"], run["test_users"], config.seeds[0]
    done = run["evaluations"]
    evals = []
    for w in weights:
        if w == 0.0:
            evals.append(done["self_training"])
        elif w == config.orpo_weight and alignment == config.alignment:
            evals.append(done["aligned"])
        else:
            level = alignment[len("orpo_") :]
            model = _orpo_fit(config, run["imitation"], run["pairs"], w, level, seed)
            evals.append(
                evaluate(model, world, users, config.eval_samples, seed + 10_000)
            )
    base = done["imitation"]
    return WeightSweep(
        weights,
        tuple(e.served_reward for e in evals),
        tuple(e.topic_diversity for e in evals),
        tuple(e.rank_shares for e in evals),
        base.served_reward,
        base.topic_diversity,
        base.rank_shares,
    )

"""The slate reward simulator behind the HiGR chapter (arXiv 2512.24787).

The chapter's stand-in for watch time scores a slate of ``M`` items shown to one user
as the sum, over slots, of the user's preference for the item's topic times the
item's quality, where the ``k``-th repeat of a topic within the slate is discounted
by ``repeat_discount ** k``:

    reward(s, u) = sum_m pref[u, topic(s_m)] * quality(s_m)
                   * repeat_discount ** #{m' < m : topic(s_m') == topic(s_m)}.

Every logged, sampled and evaluated slate goes through it, tens of thousands per
experiment. The count of earlier same-topic slots is a loop over the slate that NumPy
can only express by materialising a ``[B, M, M]`` comparison tensor.

- :func:`slate_rewards` is the Numba kernel, :func:`slate_rewards_reference` its
  plain-Python twin and :func:`slate_rewards_numpy` the vectorised formulation.
"""

from __future__ import annotations

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = [
    "slate_rewards",
    "slate_rewards_reference",
    "slate_rewards_numpy",
    "random_slate_inputs",
    "benchmarks",
]


@numba.njit(cache=True)
def slate_rewards(slates, user_pref, user_idx, item_topic, item_quality, discount):
    """Simulated reward of each slate with the topic-repeat discount.

    Parameters
    ----------
    slates : ndarray of int32, shape (B, M)
        Item ids of every slate, in slot order.
    user_pref : ndarray of float32, shape (U, T)
        Each user's preference for each topic.
    user_idx : ndarray of int32, shape (B,)
        The user each slate is shown to.
    item_topic : ndarray of int32, shape (N,)
        Topic of every item.
    item_quality : ndarray of float32, shape (N,)
        Quality of every item.
    discount : float
        Factor applied once per earlier slot of the same topic.

    Returns
    -------
    ndarray of float32, shape (B,)
        Inputs are not checked here; the chapter module validates them.
    """
    n_slates, n_slots = slates.shape
    out = np.zeros(n_slates, dtype=np.float32)
    for b in range(n_slates):
        u = user_idx[b]
        total = np.float32(0.0)
        for m in range(n_slots):
            item = slates[b, m]
            topic = item_topic[item]
            factor = np.float32(1.0)
            for prev in range(m):
                if item_topic[slates[b, prev]] == topic:
                    factor *= np.float32(discount)
            total += user_pref[u, topic] * item_quality[item] * factor
        out[b] = total
    return out


def slate_rewards_reference(
    slates, user_pref, user_idx, item_topic, item_quality, discount
):
    """Plain-Python version of :func:`slate_rewards` (same arguments and result)."""
    out = np.zeros(len(slates), dtype=np.float32)
    for b, slate in enumerate(slates):
        u = int(user_idx[b])
        total = np.float32(0.0)
        seen: dict[int, int] = {}
        for item in slate:
            topic = int(item_topic[item])
            repeats = seen.get(topic, 0)
            factor = np.float32(1.0)
            for _ in range(repeats):
                factor *= np.float32(discount)
            total += user_pref[u, topic] * item_quality[item] * factor
            seen[topic] = repeats + 1
        out[b] = total
    return out


def slate_rewards_numpy(
    slates, user_pref, user_idx, item_topic, item_quality, discount
):
    """Vectorised NumPy version of :func:`slate_rewards` (same arguments and result).

    It builds the ``[B, M, M]`` same-topic mask to count earlier repeats.
    """
    topics = item_topic[slates]
    n_slots = slates.shape[1]
    earlier = np.tri(n_slots, n_slots, -1, dtype=bool)
    repeats = ((topics[:, :, None] == topics[:, None, :]) & earlier).sum(axis=2)
    gains = user_pref[user_idx[:, None], topics] * item_quality[slates]
    factor = np.power(np.float32(discount), repeats).astype(np.float32)
    return (gains * factor).sum(axis=1, dtype=np.float32)


def random_slate_inputs(
    n_slates: int,
    n_slots: int,
    n_users: int = 50,
    n_topics: int = 6,
    n_items: int = 40,
    seed: int = 0,
):
    """Random, valid arguments for :func:`slate_rewards` (for tests and benchmarks)."""
    rng = np.random.default_rng(seed)
    slates = rng.integers(0, n_items, size=(n_slates, n_slots)).astype(np.int32)
    user_pref = rng.random((n_users, n_topics)).astype(np.float32)
    user_idx = rng.integers(0, n_users, size=n_slates).astype(np.int32)
    item_topic = rng.integers(0, n_topics, size=n_items).astype(np.int32)
    item_quality = rng.random(n_items).astype(np.float32)
    return slates, user_pref, user_idx, item_topic, item_quality, 0.6


def benchmarks() -> list[BenchCase]:
    """100,000 slates of 5 items over 2,000 users, 20 topics and 500 items."""
    args = random_slate_inputs(100_000, 5, 2000, 20, 500, seed=0)
    slate_rewards(*args)
    return [
        BenchCase(
            name="slate_rewards",
            size="slates=100,000 x 5 slots, 20 topics, 500 items",
            kernel=lambda: slate_rewards(*args),
            reference=lambda: slate_rewards_reference(*args),
            numpy=lambda: slate_rewards_numpy(*args),
        )
    ]

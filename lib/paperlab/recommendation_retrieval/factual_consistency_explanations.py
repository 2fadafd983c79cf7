"""Statement-level factual consistency of recommendation explanations.

Kabongo and Guigue, "On the Factual Consistency of Text-based Explainable
Recommendation Models", arXiv 2512.24366.

The paper evaluates a generated explanation ``e'`` against the user's review ``e`` not
as a whole text but statement by statement. Both texts are decomposed into atomic
(statement, topic, sentiment) triplets. A generated statement counts as factually
consistent when the ground truth supports it, and

    precision  P(e', e) = 1/n  sum_k  max_l  f(s'_k, s_l)        (statement level)
    recall     R(e', e) = 1/m  sum_l  max_k  f(s_l, s'_k)
    F1 = 2 P R / (P + R),

where ``f`` is an entailment judgement: binary (StEnt-bin), the entailment
probability (StEnt) or entailment minus contradiction probability (StCoh, the
coherence score). The paper's contrast is with text-similarity metrics such as
BERTScore, which stay high while the statements are wrong.

Everything here is a toy with planted truth. Reviews are written from templates over
an item's true aspect sentiments, and their triplets are recorded as they are written.
"Explainer" systems write fluent template sentences with a planted hallucination rate
``p``. What stands in for the paper's models:

- the LLM that extracts triplets is a lookup table from sentence to triplet, with a
  planted random error (:func:`extract_triplets`);
- the LLM or NLI judge is a rule over triplets: same topic and sentiment entails,
  same topic and opposite sentiment contradicts, anything else is neutral
  (:func:`nli_labels`); its "probabilities" are therefore 0 or 1;
- BERTScore is replaced by the same greedy-matching F1 computed over sentences
  instead of tokens, with cosine similarities of real MiniLM sentence embeddings
  (:func:`greedy_similarity_f1`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import spearmanr

from paperlab.claims import require
from paperlab.validation import (
    check_array,
    check_choice,
    check_instance,
    check_int,
    check_probability,
)

__all__ = [
    "ASPECTS",
    "ENTAIL",
    "NEUTRAL",
    "CONTRADICT",
    "PLANTED_KINDS",
    "VARIANTS",
    "SentenceBank",
    "sentence_bank",
    "Reviews",
    "make_reviews",
    "Explanations",
    "generate_explanations",
    "extract_triplets",
    "nli_labels",
    "statement_precision",
    "statement_recall",
    "statement_coherence",
    "text_level_precision",
    "EmbeddingCache",
    "greedy_similarity_f1",
    "spearman_bootstrap",
    "Config",
    "Result",
    "run_experiment",
    "check_claim",
    "judge_example",
    "plot_metrics",
    "plot_explore",
]

log = logging.getLogger(__name__)

ASPECTS = ("battery", "screen", "price", "fit", "smell", "durability")

# NLI labels of the rule-based judge.
ENTAIL, NEUTRAL, CONTRADICT = 1, 0, -1

# What an explainer planted in each generated statement.
PLANTED_KINDS = ("faithful", "flipped", "unmentioned")

VARIANTS = ("statement", "similarity", "text_level", "sentiment_blind")
VARIANT_NAMES = {
    "statement": "statement-level precision",
    "similarity": "MiniLM greedy-match F1 (BERTScore stand-in)",
    "text_level": "text-level precision",
    "sentiment_blind": "statement precision, sentiment ignored",
}

# The claim's thresholds (see check_claim); measured values are in the chapter.
TRACK_TOLERANCE = 0.10  # |metric - (1 - p)| per system
MAX_SIMILARITY_SPAN = 0.15  # the similarity metric barely moves across systems ...
MIN_METRIC_SPAN = 0.50  # ... while the metric under test must move a lot
MIN_RANK_CORRELATION = 0.80  # Spearman with the planted faithful share, every resample
MIN_CORRELATION_GAIN = 0.25  # mean Spearman above the similarity metric's

_TEMPLATES = {
    # aspect: {sentiment: (review sentences, explanation sentences)}
    "battery": {
        1: (
            (
                "The battery easily lasts me a full day.",
                "I rarely need to recharge the battery.",
                "Battery life turned out excellent.",
            ),
            (
                "Its battery lasts all day.",
                "You will rarely need to charge the battery.",
                "It has excellent battery life.",
            ),
        ),
        -1: (
            (
                "The battery dies before lunch.",
                "I have to recharge the battery constantly.",
                "Battery life turned out awful.",
            ),
            (
                "Its battery drains quickly.",
                "You will need to charge the battery constantly.",
                "It has poor battery life.",
            ),
        ),
    },
    "screen": {
        1: (
            (
                "The screen is bright and sharp.",
                "I can read the screen easily in sunlight.",
                "The display looks gorgeous.",
            ),
            (
                "Its screen is bright and crisp.",
                "The display is easy to read outdoors.",
                "It has a beautiful display.",
            ),
        ),
        -1: (
            (
                "The screen is dim and blurry.",
                "I can't read the screen in sunlight.",
                "The display looks washed out.",
            ),
            (
                "Its screen is dim and fuzzy.",
                "The display is hard to read outdoors.",
                "It has a dull display.",
            ),
        ),
    },
    "price": {
        1: (
            (
                "It was well worth the money.",
                "The price is a bargain for what you get.",
                "I paid far less than I expected.",
            ),
            (
                "It is good value for the price.",
                "You get a lot for the money.",
                "It is affordable.",
            ),
        ),
        -1: (
            (
                "It was not worth the money.",
                "The price is a rip-off for what you get.",
                "I paid far more than it deserves.",
            ),
            (
                "It is overpriced.",
                "You get little for the money.",
                "It is too expensive.",
            ),
        ),
    },
    "fit": {
        1: (
            (
                "It fits me perfectly.",
                "The sizing runs true.",
                "It sits comfortably all day.",
            ),
            (
                "It fits well.",
                "The sizing is accurate.",
                "It is comfortable to wear.",
            ),
        ),
        -1: (
            (
                "It does not fit me at all.",
                "The sizing runs way off.",
                "It pinches after an hour.",
            ),
            (
                "It fits poorly.",
                "The sizing is inaccurate.",
                "It is uncomfortable to wear.",
            ),
        ),
    },
    "smell": {
        1: (
            (
                "It smells lovely.",
                "The scent is pleasant and light.",
                "I like the fresh smell.",
            ),
            (
                "It has a pleasant scent.",
                "Its smell is fresh.",
                "The fragrance is nice.",
            ),
        ),
        -1: (
            (
                "It smells awful.",
                "The scent is harsh and chemical.",
                "I hate the strong smell.",
            ),
            (
                "It has an unpleasant scent.",
                "Its smell is chemical.",
                "The fragrance is overpowering.",
            ),
        ),
    },
    "durability": {
        1: (
            (
                "It still works after months of use.",
                "It survived several drops.",
                "It feels solidly built.",
            ),
            (
                "It is built to last.",
                "It is sturdy.",
                "It holds up well over time.",
            ),
        ),
        -1: (
            (
                "It broke after a week.",
                "It cracked the first time I dropped it.",
                "It feels flimsy.",
            ),
            (
                "It breaks easily.",
                "It is fragile.",
                "It wears out quickly.",
            ),
        ),
    },
}


# ------------------------------------------------------------- the sentences


@dataclass(frozen=True)
class SentenceBank:
    """Every sentence the toy world can write, with its true triplet.

    Sentence ``i`` is ``texts[i]``; it states that aspect ``ASPECTS[topic[i]]`` is
    positive (``sentiment[i] == 1``) or negative (``-1``), in review style
    (``style[i] == 0``, first person) or explanation style (``1``).
    """

    texts: tuple[str, ...]
    topic: np.ndarray  # int64, (n_sentences,): index into ASPECTS
    sentiment: np.ndarray  # int64, (n_sentences,): +1 or -1
    style: np.ndarray  # int64, (n_sentences,): 0 review, 1 explanation

    @property
    def table(self) -> np.ndarray:
        """Ids by ``[topic, sentiment == 1, style, phrasing]``, shape ``(6, 2, 2, 3)``.

        Lets the generators pick sentences for many statements at once.
        """
        out = np.empty((len(ASPECTS), 2, 2, 3), dtype=np.int64)
        for a in range(len(ASPECTS)):
            for sign in (-1, 1):
                for style in (0, 1):
                    out[a, int(sign == 1), style] = self.ids(a, sign, style)
        return out

    def ids(self, topic: int, sentiment: int, style: int) -> np.ndarray:
        """Ids of the sentences with one topic, sentiment and style."""
        mask = (
            (self.topic == topic)
            & (self.sentiment == sentiment)
            & (self.style == style)
        )
        return np.flatnonzero(mask)


def sentence_bank() -> SentenceBank:
    """Build the bank of template sentences (3 phrasings per aspect, sign, style).

    Returns
    -------
    SentenceBank
        72 sentences: 6 aspects x 2 sentiments x 2 styles x 3 phrasings.
    """
    texts, topic, sentiment, style = [], [], [], []
    for a, aspect in enumerate(ASPECTS):
        for sign in (1, -1):
            for s, phrasings in enumerate(_TEMPLATES[aspect][sign]):
                for text in phrasings:
                    texts.append(text)
                    topic.append(a)
                    sentiment.append(sign)
                    style.append(s)
    return SentenceBank(
        tuple(texts),
        np.array(topic, dtype=np.int64),
        np.array(sentiment, dtype=np.int64),
        np.array(style, dtype=np.int64),
    )


def _texts(bank: SentenceBank, ids: np.ndarray) -> list[str]:
    """Join each row's sentences (padding ``-1`` skipped) into one text."""
    return [" ".join(bank.texts[i] for i in row if i >= 0) for row in ids]


# ---------------------------------------------------------------- the reviews


@dataclass(frozen=True)
class Reviews:
    """Ground-truth reviews with the triplets recorded as they were written.

    Arrays have one row per (user, item) pair and ``max_len`` columns; unused slots
    hold ``-1`` in ``sentence_ids`` and ``topic`` and 0 in ``sentiment``.
    """

    item_sentiment: np.ndarray  # int64, (n_items, n_aspects): true +1/-1 per aspect
    item: np.ndarray  # int64, (n_pairs,): which item each review is about
    sentence_ids: np.ndarray  # int64, (n_pairs, max_len): index into the bank
    topic: np.ndarray  # int64, (n_pairs, max_len): ground-truth topic
    sentiment: np.ndarray  # int64, (n_pairs, max_len): ground-truth sentiment

    @property
    def mask(self) -> np.ndarray:
        """Boolean ``(n_pairs, max_len)``: which slots hold a statement."""
        return self.sentence_ids >= 0

    def texts(self, bank: SentenceBank) -> list[str]:
        """The reviews as plain text."""
        return _texts(bank, self.sentence_ids)


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    return rng


def make_reviews(
    bank: SentenceBank,
    n_items: int,
    n_pairs: int,
    rng: np.random.Generator,
    *,
    min_len: int = 2,
    max_len: int = 4,
) -> Reviews:
    """Draw items with true aspect sentiments and write one review per pair.

    Each item gets a random sentiment (+1 or -1) for every aspect. A review picks an
    item, mentions between ``min_len`` and ``max_len`` distinct aspects, and states
    each one's true sentiment in a random review-style phrasing.

    Parameters
    ----------
    bank : SentenceBank
    n_items, n_pairs : int
        Catalogue size and number of reviews (at least 1 each).
    rng : numpy.random.Generator
    min_len, max_len : int
        Statements per review, ``1 <= min_len <= max_len < len(ASPECTS)`` (at least
        one aspect stays unmentioned, for the explainers to hallucinate about).

    Returns
    -------
    Reviews
    """
    check_instance("bank", bank, SentenceBank)
    n_items = check_int("n_items", n_items, minimum=1)
    n_pairs = check_int("n_pairs", n_pairs, minimum=1)
    rng = _check_rng(rng)
    max_len = check_int("max_len", max_len, minimum=1, maximum=len(ASPECTS) - 1)
    min_len = check_int("min_len", min_len, minimum=1, maximum=max_len)

    item_sentiment = rng.choice(np.array([-1, 1]), size=(n_items, len(ASPECTS)))
    item = rng.integers(0, n_items, size=n_pairs)
    lengths = rng.integers(min_len, max_len + 1, size=n_pairs)
    # a random order of the aspects per review; the first `length` are mentioned
    order = np.argsort(rng.random((n_pairs, len(ASPECTS))), axis=1)[:, :max_len]
    used = np.arange(max_len)[None, :] < lengths[:, None]
    signs = item_sentiment[item[:, None], order]
    phrasing = rng.integers(0, 3, size=(n_pairs, max_len))
    picked = bank.table[order, (signs == 1).astype(np.int64), 0, phrasing]
    ids = np.where(used, picked, -1)
    topic = np.where(used, order, -1)
    sentiment = np.where(used, signs, 0)
    return Reviews(item_sentiment, item, ids, topic, sentiment)


# ------------------------------------------------------------ the explainers


@dataclass(frozen=True)
class Explanations:
    """Generated explanations, one per review, with what was planted in each.

    ``kind`` is an index into :data:`PLANTED_KINDS` (``-1`` in unused slots).
    """

    hallucination_rate: float
    sentence_ids: np.ndarray  # int64, (n_pairs, n_statements)
    kind: np.ndarray  # int64, (n_pairs, n_statements)

    @property
    def mask(self) -> np.ndarray:
        """Boolean ``(n_pairs, n_statements)``: which slots hold a statement."""
        return self.sentence_ids >= 0

    @property
    def faithful_share(self) -> np.ndarray:
        """Planted share of faithful statements per explanation, ``(n_pairs,)``."""
        return (self.kind == 0).sum(axis=1) / self.mask.sum(axis=1)

    def texts(self, bank: SentenceBank) -> list[str]:
        """The explanations as plain text."""
        return _texts(bank, self.sentence_ids)


def generate_explanations(
    bank: SentenceBank,
    reviews: Reviews,
    hallucination_rate: float,
    rng: np.random.Generator,
    *,
    n_statements: int = 3,
) -> Explanations:
    """Write one fluent explanation per review with a planted hallucination rate.

    Every statement is, independently, *faithful* with probability ``1 - p`` (an
    aspect the review mentions, with its sentiment); otherwise it is a hallucination
    in the same explanation style, half the time *flipped* (an aspect the review
    mentions, opposite sentiment) and half the time *unmentioned* (an aspect the
    review never mentions, random sentiment).

    Parameters
    ----------
    bank : SentenceBank
    reviews : Reviews
    hallucination_rate : float
        ``p`` in [0, 1].
    rng : numpy.random.Generator
    n_statements : int
        Statements per explanation, at least 1.

    Returns
    -------
    Explanations
    """
    check_instance("bank", bank, SentenceBank)
    check_instance("reviews", reviews, Reviews)
    p = check_probability("hallucination_rate", hallucination_rate)
    rng = _check_rng(rng)
    n_statements = check_int("n_statements", n_statements, minimum=1)

    n_pairs = reviews.item.shape[0]
    shape = (n_pairs, n_statements)
    hallucinated = rng.random(shape) < p
    kind = np.where(hallucinated, 1 + (rng.random(shape) < 0.5), 0)

    # faithful and flipped: a uniformly drawn statement of the review
    lengths = reviews.mask.sum(axis=1)
    slot = (rng.random(shape) * lengths[:, None]).astype(np.int64)
    rows = np.arange(n_pairs)[:, None]
    topic = reviews.topic[rows, slot]
    sign = reviews.sentiment[rows, slot] * np.where(kind == 1, -1, 1)

    # unmentioned: a uniformly drawn aspect the review leaves out (sorting the
    # mentioned flags puts the unmentioned aspects first, in a stable order)
    mentioned = (reviews.topic[:, :, None] == np.arange(len(ASPECTS))).any(axis=1)
    free = np.argsort(mentioned, axis=1, kind="stable")
    n_free = len(ASPECTS) - mentioned.sum(axis=1)
    other = free[rows, (rng.random(shape) * n_free[:, None]).astype(np.int64)]
    random_sign = rng.choice(np.array([-1, 1]), size=shape)
    topic = np.where(kind == 2, other, topic)
    sign = np.where(kind == 2, random_sign, sign)

    phrasing = rng.integers(0, 3, size=shape)
    ids = bank.table[topic, (sign == 1).astype(np.int64), 1, phrasing]
    return Explanations(p, ids, kind.astype(np.int64))


# ---------------------------------------------------- extraction and judging


def extract_triplets(
    bank: SentenceBank,
    sentence_ids,
    error_rate: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The scripted stand-in for the paper's LLM extraction prompt.

    Each sentence is parsed to its true (topic, sentiment) by table lookup; with
    probability ``error_rate`` the parse is corrupted instead: half the time its
    sentiment is flipped, half the time its topic is replaced by another aspect.

    Parameters
    ----------
    bank : SentenceBank
    sentence_ids : array_like of int, shape (n, k)
        Bank ids, ``-1`` for empty slots.
    error_rate : float
        Planted extraction error, in [0, 1].
    rng : numpy.random.Generator

    Returns
    -------
    topic, sentiment : ndarray of int64, shape (n, k)
        ``-1`` and 0 in empty slots.
    """
    check_instance("bank", bank, SentenceBank)
    ids = check_array("sentence_ids", sentence_ids, ndim=2, dtype=np.int64)
    if ids.size and (ids.min() < -1 or ids.max() >= len(bank.texts)):
        raise ValueError(f"sentence_ids must lie in [-1, {len(bank.texts)})")
    error_rate = check_probability("error_rate", error_rate)
    rng = _check_rng(rng)

    present = ids >= 0
    topic = np.where(present, bank.topic[ids], -1)
    sentiment = np.where(present, bank.sentiment[ids], 0)
    wrong = present & (rng.random(ids.shape) < error_rate)
    flip = wrong & (rng.random(ids.shape) < 0.5)
    swap = wrong & ~flip
    shift = rng.integers(1, len(ASPECTS), size=ids.shape)
    sentiment = np.where(flip, -sentiment, sentiment)
    topic = np.where(swap, (topic + shift) % len(ASPECTS), topic)
    return topic, sentiment


def nli_labels(
    hyp_topic, hyp_sentiment, prem_topic, prem_sentiment, *, use_sentiment=True
) -> np.ndarray:
    """The rule-based stand-in for the NLI judge, for every statement pair.

    A hypothesis statement is *entailed* by a premise statement with the same topic
    and sentiment, *contradicted* by one with the same topic and opposite sentiment,
    and *neutral* otherwise (or when either slot is empty).

    Parameters
    ----------
    hyp_topic, hyp_sentiment : array_like of int, shape (n, k)
        Triplets of the statements being judged (``-1`` topic for empty slots).
    prem_topic, prem_sentiment : array_like of int, shape (n, m)
        Triplets of the evidence.
    use_sentiment : bool
        ``False`` gives the broken judge of the ablation: any topic match entails.

    Returns
    -------
    ndarray of int64, shape (n, k, m)
        :data:`ENTAIL`, :data:`NEUTRAL` or :data:`CONTRADICT`.
    """
    ht = check_array("hyp_topic", hyp_topic, ndim=2, dtype=np.int64)
    hs = check_array("hyp_sentiment", hyp_sentiment, shape=ht.shape, dtype=np.int64)
    pt = check_array("prem_topic", prem_topic, ndim=2, dtype=np.int64)
    ps = check_array("prem_sentiment", prem_sentiment, shape=pt.shape, dtype=np.int64)
    if pt.shape[0] != ht.shape[0]:
        raise ValueError(
            f"prem_topic must have {ht.shape[0]} rows like hyp_topic, got {pt.shape[0]}"
        )
    if not isinstance(use_sentiment, bool):
        raise TypeError(f"use_sentiment must be a bool, got {use_sentiment!r}")

    same_topic = (ht[:, :, None] == pt[:, None, :]) & (ht[:, :, None] >= 0)
    if not use_sentiment:
        return np.where(same_topic, ENTAIL, NEUTRAL).astype(np.int64)
    agree = hs[:, :, None] == ps[:, None, :]
    labels = np.where(agree, ENTAIL, CONTRADICT)
    return np.where(same_topic, labels, NEUTRAL).astype(np.int64)


def _check_labels(labels, hyp_mask) -> tuple[np.ndarray, np.ndarray]:
    labels = check_array("labels", labels, ndim=3, dtype=np.int64)
    mask = np.asarray(hyp_mask)
    if mask.dtype != bool or mask.shape != labels.shape[:2]:
        raise ValueError(
            f"hyp_mask must be a boolean array of shape {labels.shape[:2]}, "
            f"got {mask.dtype} of shape {mask.shape}"
        )
    if np.any(mask.sum(axis=1) == 0):
        raise ValueError("hyp_mask must mark at least one statement per row")
    return labels, mask


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, values, 0).sum(axis=1) / mask.sum(axis=1)


def statement_precision(labels, hyp_mask) -> np.ndarray:
    """Statement-level precision of each explanation (StEnt-bin-P with our judge).

    ``P(e', e) = 1/n sum_k max_l [label(s'_k, s_l) = entail]``: the share of the
    generated statements that at least one ground-truth statement entails.

    Parameters
    ----------
    labels : array_like of int, shape (n_pairs, n, m)
        From :func:`nli_labels` with the generated statements as hypotheses.
    hyp_mask : ndarray of bool, shape (n_pairs, n)
        Which generated slots hold a statement.

    Returns
    -------
    ndarray of float64, shape (n_pairs,)
    """
    labels, mask = _check_labels(labels, hyp_mask)
    supported = (labels == ENTAIL).any(axis=2)
    return _masked_mean(supported, mask)


def statement_recall(labels, hyp_mask) -> np.ndarray:
    """Statement-level recall: the same sum with the roles swapped.

    ``R(e', e) = 1/m sum_l max_k [label(s_l, s'_k) = entail]``: pass labels judged
    with the *ground-truth* statements as hypotheses and their mask.

    Returns
    -------
    ndarray of float64, shape (n_pairs,)
    """
    return statement_precision(labels, hyp_mask)


def statement_coherence(labels, hyp_mask) -> np.ndarray:
    """StCoh-P: mean over statements of ``max_l P(entail) - P(contradict)``.

    With the rule-based judge the probabilities are 0 or 1, so a statement scores
    1 if some evidence entails it, -1 if the evidence only contradicts it, else 0.

    Returns
    -------
    ndarray of float64, shape (n_pairs,), values in [-1, 1]
    """
    labels, mask = _check_labels(labels, hyp_mask)
    return _masked_mean(labels.max(axis=2), mask)


def text_level_precision(labels, hyp_mask) -> np.ndarray:
    """One verdict per explanation: 1 only if the evidence entails all of it.

    This is what judging the whole text at once gives (the ablation the chapter's
    claim must reject): a single wrong statement zeroes the explanation.

    Returns
    -------
    ndarray of float64, shape (n_pairs,), values 0 or 1
    """
    labels, mask = _check_labels(labels, hyp_mask)
    supported = (labels == ENTAIL).any(axis=2) | ~mask
    return supported.all(axis=1).astype(np.float64)


# ---------------------------------------------------- the similarity baseline


@dataclass
class EmbeddingCache:
    """Embed each distinct sentence once per run, then look it up by string.

    Templated text repeats a lot, so caching by string turns thousands of embedding
    calls into one batch of the distinct sentences.
    """

    embedder: Callable[[Sequence[str]], np.ndarray] | None = None
    vectors: dict[str, np.ndarray] = field(default_factory=dict)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings of ``texts``, shape ``(len(texts), d)``."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        texts = list(texts)
        new = sorted({t for t in texts if t not in self.vectors})
        if new:
            embedder = self.embedder or _minilm_embed
            vecs = np.asarray(embedder(new), dtype=np.float64)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            log.info("embedded %d new sentences", len(new))
            self.vectors.update(zip(new, vecs, strict=True))
        return np.stack([self.vectors[t] for t in texts])


def _minilm_embed(texts: Sequence[str]) -> np.ndarray:
    from paperlab.text_embedding import embed

    return embed(texts)


def greedy_similarity_f1(sentence_sim, cand_ids, ref_ids) -> np.ndarray:
    """BERTScore's greedy-matching F1, with sentences in place of tokens.

    Each candidate sentence is matched to its most similar reference sentence
    (precision, the mean of those maxima) and each reference sentence to its most
    similar candidate sentence (recall); the score is their harmonic mean.

    Parameters
    ----------
    sentence_sim : array_like, shape (n_sentences, n_sentences)
        Cosine similarity between bank sentences.
    cand_ids : array_like of int, shape (n_pairs, k)
        Candidate (generated) sentence ids, ``-1`` for empty slots.
    ref_ids : array_like of int, shape (n_pairs, m)
        Reference (review) sentence ids, ``-1`` for empty slots.

    Returns
    -------
    ndarray of float64, shape (n_pairs,)
    """
    sim = check_array("sentence_sim", sentence_sim, ndim=2, dtype=np.float64)
    if sim.shape[0] != sim.shape[1]:
        raise ValueError(f"sentence_sim must be square, got shape {sim.shape}")
    cand = check_array("cand_ids", cand_ids, ndim=2, dtype=np.int64)
    ref = check_array("ref_ids", ref_ids, ndim=2, dtype=np.int64)
    if ref.shape[0] != cand.shape[0]:
        raise ValueError(f"ref_ids must have {cand.shape[0]} rows, got {ref.shape[0]}")
    for name, ids in (("cand_ids", cand), ("ref_ids", ref)):
        if ids.size and (ids.min() < -1 or ids.max() >= sim.shape[0]):
            raise ValueError(f"{name} must lie in [-1, {sim.shape[0]})")
        if np.any((ids >= 0).sum(axis=1) == 0):
            raise ValueError(f"{name} must hold at least one sentence per row")

    pair = sim[np.maximum(cand, 0)[:, :, None], np.maximum(ref, 0)[:, None, :]]
    valid = (cand >= 0)[:, :, None] & (ref >= 0)[:, None, :]
    pair = np.where(valid, pair, -np.inf)
    precision = _masked_mean(pair.max(axis=2), cand >= 0)
    recall = _masked_mean(pair.max(axis=1), ref >= 0)
    return 2 * precision * recall / (precision + recall)


def spearman_bootstrap(
    metric, target, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Spearman correlation of ``metric`` with ``target`` over bootstrap resamples.

    Parameters
    ----------
    metric, target : array_like, shape (n,)
        One value per explanation.
    n_resamples : int
        Resamples (with replacement, size ``n``), at least 1.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of float64, shape (n_resamples,)
        ``nan`` for a resample in which either array is constant.
    """
    metric = check_array("metric", metric, ndim=1, dtype=np.float64, finite=True)
    target = check_array(
        "target", target, shape=metric.shape, dtype=np.float64, finite=True
    )
    if metric.shape[0] < 3:
        raise ValueError(f"metric must hold at least 3 values, got {metric.shape[0]}")
    n_resamples = check_int("n_resamples", n_resamples, minimum=1)
    rng = _check_rng(rng)
    out = np.empty(n_resamples)
    for b in range(n_resamples):
        idx = rng.integers(0, metric.shape[0], size=metric.shape[0])
        x, y = metric[idx], target[idx]
        constant = np.ptp(x) == 0 or np.ptp(y) == 0
        out[b] = np.nan if constant else spearmanr(x, y).statistic
    return out


# -------------------------------------------------------------- the experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seed and the metric under test."""

    variant: str = "statement"  # one of VARIANTS: the metric the claim is checked on
    hallucination_rates: tuple[float, ...] = (
        0.0,
        0.2,
        0.4,
        0.6,
        0.8,
    )  # one system each
    n_items: int = 300  # catalogue size
    n_pairs: int = 1000  # reviews, each explained by every system
    n_statements: int = 3  # statements per generated explanation
    extraction_error: float = 0.05  # planted error of the scripted extractor
    n_bootstrap: int = 20  # resamples for the rank correlations
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, VARIANTS)
        rates = self.hallucination_rates
        if not isinstance(rates, tuple) or len(rates) < 2:
            raise ValueError(
                "hallucination_rates must be a tuple of at least 2 rates, "
                f"got {rates!r}"
            )
        for p in rates:
            check_probability("hallucination_rates entry", p)
        check_int("n_items", self.n_items, minimum=1)
        check_int("n_pairs", self.n_pairs, minimum=3)
        check_int("n_statements", self.n_statements, minimum=1)
        check_probability("extraction_error", self.extraction_error)
        check_int("n_bootstrap", self.n_bootstrap, minimum=1)
        check_int("seed", self.seed, minimum=0)


@dataclass(frozen=True)
class Result:
    """Per-system means (rows follow ``config.hallucination_rates``) and details."""

    config: Config
    precision: np.ndarray  # (n_systems,): statement-level precision
    recall: np.ndarray  # (n_systems,): statement-level recall
    coherence: np.ndarray  # (n_systems,): StCoh-P, in [-1, 1]
    text_level: np.ndarray  # (n_systems,): whole-text verdicts
    sentiment_blind: np.ndarray  # (n_systems,): precision with a topic-only judge
    similarity: np.ndarray  # (n_systems,): greedy-match F1 of MiniLM embeddings
    extraction_accuracy: float  # share of generated statements parsed correctly
    faithful_share: np.ndarray  # (n_systems, n_pairs): planted, per explanation
    per_explanation: dict[str, np.ndarray]  # variant -> (n_systems, n_pairs)
    spearman: dict[str, np.ndarray]  # variant -> (n_bootstrap,) vs faithful share

    @property
    def rates(self) -> np.ndarray:
        """The planted hallucination rate of each system."""
        return np.asarray(self.config.hallucination_rates)

    def metric(self, variant: str | None = None) -> np.ndarray:
        """Per-system means of a variant's metric (default: the one under test)."""
        variant = self.config.variant if variant is None else variant
        check_choice("variant", variant, VARIANTS)
        return self.per_explanation[variant].mean(axis=1)


def _similarity_matrix(bank: SentenceBank, cache: EmbeddingCache) -> np.ndarray:
    vectors = cache(bank.texts)
    return vectors @ vectors.T


def run_experiment(config: Config, cache: EmbeddingCache | None = None) -> Result:
    """Score five explainers with every metric, against planted hallucination rates.

    Parameters
    ----------
    config : Config
    cache : EmbeddingCache, optional
        Reuse embeddings across runs (default: a fresh MiniLM cache).

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    cache = (
        EmbeddingCache()
        if cache is None
        else check_instance("cache", cache, EmbeddingCache)
    )
    rng = np.random.default_rng(config.seed)
    bank = sentence_bank()
    sim = _similarity_matrix(bank, cache)
    reviews = make_reviews(bank, config.n_items, config.n_pairs, rng)

    per = {v: [] for v in VARIANTS}
    recall, coherence, faithful, parsed_ok = [], [], [], []
    for p in config.hallucination_rates:
        expl = generate_explanations(
            bank, reviews, p, rng, n_statements=config.n_statements
        )
        topic, sentiment = extract_triplets(
            bank, expl.sentence_ids, config.extraction_error, rng
        )
        parsed_ok.append(
            (topic == bank.topic[expl.sentence_ids])
            & (sentiment == bank.sentiment[expl.sentence_ids])
        )
        labels = nli_labels(topic, sentiment, reviews.topic, reviews.sentiment)
        blind = nli_labels(
            topic, sentiment, reviews.topic, reviews.sentiment, use_sentiment=False
        )
        back = nli_labels(reviews.topic, reviews.sentiment, topic, sentiment)
        per["statement"].append(statement_precision(labels, expl.mask))
        per["text_level"].append(text_level_precision(labels, expl.mask))
        per["sentiment_blind"].append(statement_precision(blind, expl.mask))
        per["similarity"].append(
            greedy_similarity_f1(sim, expl.sentence_ids, reviews.sentence_ids)
        )
        recall.append(statement_recall(back, reviews.mask).mean())
        coherence.append(statement_coherence(labels, expl.mask).mean())
        faithful.append(expl.faithful_share)

    per = {v: np.stack(rows) for v, rows in per.items()}
    faithful = np.stack(faithful)
    spearman = {
        v: spearman_bootstrap(
            per[v].ravel(),
            faithful.ravel(),
            config.n_bootstrap,
            np.random.default_rng([config.seed, 1]),
        )
        for v in VARIANTS
    }
    return Result(
        config=config,
        precision=per["statement"].mean(axis=1),
        recall=np.array(recall),
        coherence=np.array(coherence),
        text_level=per["text_level"].mean(axis=1),
        sentiment_blind=per["sentiment_blind"].mean(axis=1),
        similarity=per["similarity"].mean(axis=1),
        extraction_accuracy=float(np.mean(parsed_ok)),
        faithful_share=faithful,
        per_explanation=per,
        spearman=spearman,
    )


def check_claim(result: Result) -> None:
    """Check the chapter's claim on the metric named by ``result.config.variant``.

    The metric under test must

    1. track the planted faithful rate: ``|metric - (1 - p)| <= 0.10`` for every
       system;
    2. separate the systems where the similarity metric cannot: the similarity
       metric's means span less than 0.15 across systems while the metric's span
       more than 0.5;
    3. rank individual explanations by their planted faithful share: Spearman
       correlation at least 0.8 in every bootstrap resample, and on average at
       least 0.25 above the similarity metric's.

    Raises
    ------
    paperlab.claims.ClaimFailed
        If any part fails; the message names the system and the numbers.
    """
    check_instance("result", result, Result)
    name = VARIANT_NAMES[result.config.variant]
    metric = result.metric()
    for p, m in zip(result.rates, metric, strict=True):
        require(
            abs(m - (1 - p)) <= TRACK_TOLERANCE,
            f"{name} is {m:.3f} for the system with p = {p:.2f}; "
            f"1 - p = {1 - p:.2f} (tolerance {TRACK_TOLERANCE})",
        )
    sim_span = float(np.ptp(result.similarity))
    span = float(np.ptp(metric))
    require(
        sim_span < MAX_SIMILARITY_SPAN,
        f"similarity spans {sim_span:.3f} across systems (limit {MAX_SIMILARITY_SPAN})",
    )
    require(
        span > MIN_METRIC_SPAN,
        f"{name} spans only {span:.3f} across systems (needs > {MIN_METRIC_SPAN})",
    )
    rho = result.spearman[result.config.variant]
    rho_sim = result.spearman["similarity"]
    require(
        bool(np.all(rho >= MIN_RANK_CORRELATION)),
        f"{name}: Spearman with the faithful share falls to {np.nanmin(rho):.3f}"
        f" (needs >= {MIN_RANK_CORRELATION} in every resample)",
    )
    gain = float(np.mean(rho) - np.mean(rho_sim))
    require(
        gain >= MIN_CORRELATION_GAIN,
        f"{name}: mean Spearman {np.mean(rho):.3f} is only {gain:.3f} above the "
        f"similarity metric's {np.mean(rho_sim):.3f}",
    )


# ------------------------------------------------------------ one worked example


def judge_example(
    hallucination_rate: float,
    seed: int = 0,
    *,
    n_statements: int = 3,
    cache: EmbeddingCache | None = None,
) -> dict:
    """Generate, parse and judge one explanation, for display.

    Parameters
    ----------
    hallucination_rate : float
        ``p`` in [0, 1].
    seed : int
        Picks the review and the explanation.
    n_statements : int
        Statements in the explanation, at least 1.
    cache : EmbeddingCache, optional

    Returns
    -------
    dict
        ``review`` and ``explanation`` (lists of sentences), ``planted`` (kind per
        statement), ``parsed`` ((topic, sentiment) per statement), ``verdict``
        per statement ("entailed" if some review statement entails it, else
        "contradicted" if one contradicts it, else "neutral"), ``precision``
        and ``similarity`` (the explanation's two scores).
    """
    p = check_probability("hallucination_rate", hallucination_rate)
    seed = check_int("seed", seed, minimum=0)
    cache = (
        EmbeddingCache()
        if cache is None
        else check_instance("cache", cache, EmbeddingCache)
    )
    rng = np.random.default_rng(seed)
    bank = sentence_bank()
    reviews = make_reviews(bank, 1, 1, rng)
    expl = generate_explanations(bank, reviews, p, rng, n_statements=n_statements)
    topic, sentiment = extract_triplets(bank, expl.sentence_ids, 0.05, rng)
    labels = nli_labels(topic, sentiment, reviews.topic, reviews.sentiment)[0]
    entailed = (labels == ENTAIL).any(axis=1)
    # for display, a contradiction shows even where another statement is neutral
    verdict = np.where(
        entailed, ENTAIL, np.where((labels == CONTRADICT).any(axis=1), CONTRADICT, 0)
    )
    words = {ENTAIL: "entailed", NEUTRAL: "neutral", CONTRADICT: "contradicted"}
    sim = _similarity_matrix(bank, cache)
    return {
        "review": [bank.texts[i] for i in reviews.sentence_ids[0] if i >= 0],
        "explanation": [bank.texts[i] for i in expl.sentence_ids[0]],
        "planted": [PLANTED_KINDS[k] for k in expl.kind[0]],
        "parsed": [
            (ASPECTS[t], "positive" if s > 0 else "negative")
            for t, s in zip(topic[0], sentiment[0], strict=True)
        ],
        "verdict": [words[int(v)] for v in verdict],
        "precision": float(np.mean(entailed)),
        "similarity": float(
            greedy_similarity_f1(sim, expl.sentence_ids, reviews.sentence_ids)[0]
        ),
    }


# ------------------------------------------------------------------- the plots


def plot_metrics(result: Result):
    """Two panels: system means against ``1 - p``; similarity per explanation.

    Left: every metric's mean for each system against its planted faithful rate,
    with the line a perfect metric would follow. Right: the similarity score of
    each explanation against its planted faithful share (box per share), next to
    the statement precision's mean per share.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from paperlab import plotting

    check_instance("result", result, Result)
    fig, (left, right) = plotting.subplots(1, 2, width=10.0, height=3.8)
    truth = 1 - result.rates
    left.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="ideal: 1 - p")
    for v, marker in zip(VARIANTS, "osv^", strict=True):
        left.plot(truth, result.metric(v), marker=marker, label=VARIANT_NAMES[v])
    plotting.label_axes(
        left,
        title="System means against the planted faithful rate",
        xlabel="planted faithful rate 1 - p (fraction)",
        ylabel="metric value (fraction)",
    )
    left.legend(fontsize=7, loc="upper left")

    share = np.round(result.faithful_share.ravel(), 2)
    levels = np.unique(share)
    sim = result.per_explanation["similarity"].ravel()
    prec = result.per_explanation["statement"].ravel()
    colors = plotting.COLORS
    right.boxplot(
        [sim[share == s] for s in levels],
        positions=levels,
        widths=0.08,
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": colors[1], "alpha": 0.5},
        medianprops={"color": colors[1]},
    )
    right.plot([], [], color=colors[1], linewidth=6, alpha=0.5, label="similarity")
    right.plot(
        levels,
        [prec[share == s].mean() for s in levels],
        marker="o",
        color=colors[0],
        label="statement precision (mean)",
    )
    right.set_xticks(levels, [f"{s:.2f}" for s in levels])
    plotting.label_axes(
        right,
        title="Per explanation",
        xlabel="planted faithful share of the explanation (fraction)",
        ylabel="score (fraction)",
    )
    return fig


def plot_explore(result: Result, hallucination_rate: float, example: dict):
    """The explore figure: two bars for one system, and one judged explanation.

    Parameters
    ----------
    result : Result
        A run whose ``config.hallucination_rates`` contains ``hallucination_rate``.
    hallucination_rate : float
    example : dict
        From :func:`judge_example`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from paperlab import plotting

    check_instance("result", result, Result)
    p = check_probability("hallucination_rate", hallucination_rate)
    where = np.flatnonzero(np.isclose(result.rates, p))
    if where.size == 0:
        raise ValueError(f"hallucination_rate {p} is not one of the result's rates")
    s = int(where[0])
    fig, (bars, table) = plotting.subplots(
        1, 2, width=10.0, height=3.4, gridspec_kw={"width_ratios": [1, 2.4]}
    )
    values = [result.precision[s], result.similarity[s]]
    bars.bar(
        ["statement\nprecision", "similarity"],
        values,
        color=plotting.COLORS[:2],
    )
    bars.axhline(1 - p, color="0.3", linestyle=":", label="planted 1 - p")
    bars.set_ylim(0, 1.05)
    plotting.label_axes(
        bars,
        title=f"Explainer with p = {p:.1f}",
        xlabel="metric",
        ylabel="mean over explanations",
        legend=True,
    )

    shade = {"entailed": "#cfe8d8", "neutral": "#eeeeee", "contradicted": "#f6d2bf"}
    rows = [
        [text, planted, f"{topic} / {sign}", verdict]
        for text, planted, (topic, sign), verdict in zip(
            example["explanation"],
            example["planted"],
            example["parsed"],
            example["verdict"],
            strict=True,
        )
    ]
    table.axis("off")
    drawn = table.table(
        cellText=rows,
        colLabels=["generated statement", "planted", "parsed triplet", "verdict"],
        cellColours=[[shade[r[3]]] * 4 for r in rows],
        loc="center",
        cellLoc="left",
        colWidths=[0.46, 0.16, 0.22, 0.16],
    )
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(8)
    drawn.scale(1, 1.6)
    table.set_title(
        "Review: " + " ".join(example["review"]), fontsize=8, wrap=True, loc="left"
    )
    return fig

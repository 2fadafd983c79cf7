"""RAGPart and RAGMask: two retrieval-stage defenses against corpus poisoning.

Pathmanathan, Panaitescu-Liess, Chiang and Huang, "RAGPart & RAGMask: Retrieval-Stage
Defenses Against Corpus Poisoning in Retrieval-Augmented Generation", arXiv 2512.24268.

An attacker who can add a few documents to a retrieval corpus writes them so that a
dense retriever ranks them near the top for a target question; whatever the language
model then reads, it reads the attacker's text. Both defenses act on the retriever
alone:

- **RAGPart** splits every document into ``N`` contiguous fragments, embeds each
  fragment on its own, averages the fragment embeddings of every subset of ``k``
  fragments and scores the document by the mean query similarity of its
  ``C(N, k)`` subset embeddings. Retrievers trained with random-crop positives embed
  a fragment close to its whole document, so an honest document keeps its score,
  while a poisoned one whose pull sits in one fragment loses it in every subset
  without that fragment.
- **RAGMask** masks the tokens of a retrieved document one at a time, measures how
  far the query similarity falls, masks the few tokens with the largest falls
  together and flags the document when the similarity shifts by more than a
  threshold set on benign documents: honest relevance is spread over many tokens,
  injected relevance over a handful.

This module builds a toy corpus of topics and entities, trains a mean-pooled word
embedding retriever with a crop-based InfoNCE loss (so the fragment property is
learned, not assumed), runs two attacks (query injection and a greedy trigger search)
and measures attack success and benign recall with and without each defense. The
leave-one-out similarity loop is the kernel :mod:`paperlab.kernels.retrieval_masking`.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from paperlab.claims import require
from paperlab.kernels.retrieval_masking import (
    batch_masked_drops,
    masked_similarity_drops,
)
from paperlab.optim import Adam
from paperlab.ranking import rank_of_targets, recall_at_k
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
    check_probability,
)

__all__ = [
    "VARIANTS",
    "ATTACKS",
    "DEFENSES",
    "Corpus",
    "Docs",
    "concat_docs",
    "make_corpus",
    "random_crops",
    "info_nce_loss_and_grad",
    "train_retriever",
    "embed",
    "plain_scores",
    "fragment_bounds",
    "ragpart_scores",
    "ragmask_shifts",
    "calibrate_threshold",
    "ragmask_scores",
    "injection_attack",
    "trigger_search",
    "trigger_attack",
    "attack_success_rate",
    "Config",
    "SeedResult",
    "Result",
    "run_seed",
    "run_experiment",
    "check_claim",
    "Setup",
    "prepare",
    "defended_scores",
    "poison",
    "attack_rates",
    "trigger_sweep",
    "fragment_alignment",
    "word_names",
    "token_drops",
    "plot_results",
    "plot_token_strip",
    "plot_explore",
]

log = logging.getLogger(__name__)

VARIANTS = ("mechanism", "baseline")
ATTACKS = ("injection", "trigger")
DEFENSES = ("none", "ragpart", "ragmask")
DEFENSE_NAMES = {"none": "no defense", "ragpart": "RAGPart", "ragmask": "RAGMask"}
ATTACK_NAMES = {"injection": "query injection", "trigger": "trigger search"}
REMOVED = -2.0  # score given to a flagged document: below every cosine

# The claim's thresholds (see check_claim).
MIN_BENIGN_RECALL = 0.8
MIN_UNDEFENDED_ASR = 0.7
MAX_ASR_RATIO = 0.5
MAX_RECALL_LOSS = 0.05


# ------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Docs:
    """Documents of varying length as a padded id matrix.

    Padding entries hold the id ``pad`` (a zero row of the padded embedding table).
    """

    tokens: np.ndarray  # (n_docs, max_len) int32 token ids
    lengths: np.ndarray  # (n_docs,) int64 number of real tokens per document
    pad: int  # the padding id

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def doc(self, i: int) -> np.ndarray:
        """The real tokens of document ``i``."""
        return self.tokens[i, : self.lengths[i]]


def _stack_docs(docs: list[np.ndarray], pad: int) -> Docs:
    max_len = max((len(d) for d in docs), default=0)
    tokens = np.full((len(docs), max_len), pad, dtype=np.int32)
    for i, doc in enumerate(docs):
        tokens[i, : len(doc)] = doc
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    return Docs(tokens, lengths, pad)


def concat_docs(a: Docs, b: Docs) -> Docs:
    """The documents of ``a`` followed by those of ``b`` (a corpus plus its poison)."""
    check_instance("a", a, Docs)
    check_instance("b", b, Docs)
    return _stack_docs(
        [a.doc(i) for i in range(len(a))] + [b.doc(i) for i in range(len(b))], a.pad
    )


@dataclass(frozen=True)
class Corpus:
    """A toy corpus: each document mixes one topic and one entity.

    Word ids: topic words first (``n_topics * words_per_topic``), then entities, then
    the attacker's payload words, which no benign document contains.
    """

    docs: Docs  # the benign documents
    topic: np.ndarray  # (n_docs,) topic of each document
    entity: np.ndarray  # (n_docs,) entity id (a word id) of each document
    queries: np.ndarray  # (n_queries, 1 + query_topic_words) query word ids
    gold: np.ndarray  # (n_queries,) the one relevant document per query
    calib_queries: np.ndarray  # benign queries used only to set RAGMask's threshold
    calib_gold: np.ndarray  # their relevant documents
    payload_words: np.ndarray  # ids of the payload vocabulary
    n_vocab: int  # all word ids, payload included
    words_per_topic: int  # topic words come in blocks of this size
    n_topics: int  # number of topics


def make_corpus(
    rng: np.random.Generator,
    *,
    n_topics: int = 20,
    words_per_topic: int = 20,
    n_entities: int = 300,
    n_payload_words: int = 20,
    n_docs: int = 2000,
    doc_len: int = 30,
    entity_repeats: int = 5,
    n_queries: int = 100,
    query_topic_words: int = 3,
) -> Corpus:
    """Draw the toy corpus and its queries.

    Every document has a distinct (topic, entity) pair: ``entity_repeats`` copies of
    its entity and ``doc_len - entity_repeats`` words drawn from its topic's words,
    shuffled. A query is its gold document's entity plus ``query_topic_words``
    distinct words of the gold document's topic that the document contains. The
    calibration queries are built the same way from other documents.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_topics, words_per_topic, n_entities, n_payload_words : int
        Vocabulary sizes.
    n_docs, doc_len, entity_repeats : int
        Corpus size, document length and entity copies per document.
    n_queries, query_topic_words : int
        Number of evaluation queries (and of calibration queries), topic words each.

    Returns
    -------
    Corpus
    """
    check_instance("rng", rng, np.random.Generator)
    n_topics = check_int("n_topics", n_topics, minimum=1)
    words_per_topic = check_int("words_per_topic", words_per_topic, minimum=1)
    n_entities = check_int("n_entities", n_entities, minimum=1)
    n_payload_words = check_int("n_payload_words", n_payload_words, minimum=1)
    n_docs = check_int("n_docs", n_docs, minimum=1, maximum=n_topics * n_entities)
    doc_len = check_int("doc_len", doc_len, minimum=2)
    entity_repeats = check_int("entity_repeats", entity_repeats, minimum=1)
    if entity_repeats >= doc_len:
        raise ValueError(
            f"entity_repeats must be < doc_len ({doc_len}), got {entity_repeats}"
        )
    n_queries = check_int("n_queries", n_queries, minimum=1, maximum=n_docs // 2)
    query_topic_words = check_int("query_topic_words", query_topic_words, minimum=1)

    n_topic_words = n_topics * words_per_topic
    pairs = rng.choice(n_topics * n_entities, size=n_docs, replace=False)
    topic, entity = pairs % n_topics, n_topic_words + pairs // n_topics
    docs = []
    for t, e in zip(topic, entity, strict=True):
        words = t * words_per_topic + rng.integers(
            0, words_per_topic, doc_len - entity_repeats
        )
        docs.append(
            rng.permutation(np.concatenate([words, np.full(entity_repeats, e)]))
        )
    docs_arr = np.array(docs, dtype=np.int32)
    pad = n_topic_words + n_entities + n_payload_words

    picked = rng.choice(n_docs, size=2 * n_queries, replace=False)
    queries = np.array(
        [_query_for(docs_arr[g], entity[g], query_topic_words, rng) for g in picked]
    )
    return Corpus(
        docs=Docs(docs_arr, np.full(n_docs, doc_len, dtype=np.int64), pad),
        topic=topic,
        entity=entity,
        queries=queries[:n_queries],
        gold=picked[:n_queries],
        calib_queries=queries[n_queries:],
        calib_gold=picked[n_queries:],
        payload_words=np.arange(n_topic_words + n_entities, pad),
        n_vocab=pad,
        words_per_topic=words_per_topic,
        n_topics=n_topics,
    )


def _query_for(doc: np.ndarray, entity: int, n_words: int, rng) -> np.ndarray:
    words = np.unique(doc[doc != entity])
    chosen = rng.choice(words, size=min(n_words, words.size), replace=False)
    return np.concatenate([[entity], chosen]).astype(np.int32)


# -------------------------------------------------------------- the retriever


def random_crops(
    tokens: np.ndarray, crop_len: int, rng: np.random.Generator
) -> np.ndarray:
    """One random contiguous crop of ``crop_len`` tokens from each row.

    Parameters
    ----------
    tokens : ndarray of int, shape (batch, doc_len)
    crop_len : int
        Crop length, in ``[1, doc_len]``.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int32, shape (batch, crop_len)
    """
    tokens = check_array("tokens", tokens, ndim=2)
    crop_len = check_int("crop_len", crop_len, minimum=1, maximum=tokens.shape[1])
    check_instance("rng", rng, np.random.Generator)
    starts = rng.integers(0, tokens.shape[1] - crop_len + 1, size=tokens.shape[0])
    cols = starts[:, None] + np.arange(crop_len)[None, :]
    return np.take_along_axis(tokens, cols, axis=1).astype(np.int32)


def _pooled(emb: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum-pooled vectors of each row and their norms (mean pooling up to scale)."""
    sums = emb[tokens].sum(axis=1)
    return sums, np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)


def info_nce_loss_and_grad(
    emb: np.ndarray, crops_a: np.ndarray, crops_b: np.ndarray, temperature: float
) -> tuple[float, np.ndarray]:
    """Symmetric InfoNCE loss of two crops per document, and its gradient.

    With ``z_a``, ``z_b`` the L2-normalised pooled crop embeddings of a batch of
    ``B`` documents, the logits are ``z_a z_b^T / temperature``; row ``i``'s positive
    is column ``i`` (the other crop of the same document), the other ``B - 1`` columns
    are in-batch negatives, and the loss averages the cross-entropy over rows and
    over columns (Contriever's objective with crops as positives).

    Parameters
    ----------
    emb : ndarray of float, shape (V, d)
        Token embeddings.
    crops_a, crops_b : ndarray of int, shape (B, crop_len)
        The two crops of each document.
    temperature : float
        Softmax temperature, > 0.

    Returns
    -------
    loss : float
    grad : ndarray, shape (V, d)
        Gradient of the loss with respect to ``emb``.
    """
    emb = check_array("emb", emb, ndim=2)
    crops_a = check_array("crops_a", crops_a, ndim=2)
    crops_b = check_array("crops_b", crops_b, shape=(crops_a.shape[0], None))
    temperature = check_float(
        "temperature", temperature, minimum=0.0, strict_minimum=True
    )
    n = crops_a.shape[0]
    sum_a, norm_a = _pooled(emb, crops_a)
    sum_b, norm_b = _pooled(emb, crops_b)
    z_a, z_b = sum_a / norm_a, sum_b / norm_b
    logits = z_a @ z_b.T / temperature
    p_rows = _softmax(logits, axis=1)
    p_cols = _softmax(logits, axis=0)
    diag = np.arange(n)
    loss = -0.5 * (
        np.log(p_rows[diag, diag]).mean() + np.log(p_cols[diag, diag]).mean()
    )
    eye = np.eye(n)
    d_logits = 0.5 * ((p_rows - eye) + (p_cols - eye)) / n / temperature
    g_za, g_zb = d_logits @ z_b, d_logits.T @ z_a
    grad = np.zeros_like(emb)
    for crops, z, norm, g in (
        (crops_a, z_a, norm_a, g_za),
        (crops_b, z_b, norm_b, g_zb),
    ):
        # Through the normalisation: remove the radial part, divide by the norm.
        g_sum = (g - z * np.sum(z * g, axis=1, keepdims=True)) / norm
        grad += _token_counts(crops, emb.shape[0]) @ g_sum
    return float(loss), grad


def _token_counts(crops: np.ndarray, n_vocab: int) -> np.ndarray:
    """Matrix ``C`` of shape (V, B): how often word ``v`` occurs in crop ``b``."""
    n = crops.shape[0]
    flat = crops.astype(np.int64) * n + np.arange(n)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n_vocab * n).reshape(n_vocab, n)
    return counts.astype(np.float32)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def train_retriever(
    corpus: Corpus,
    rng: np.random.Generator,
    *,
    d_model: int = 64,
    n_steps: int = 300,
    batch_size: int = 128,
    crop_frac: float = 0.5,
    temperature: float = 0.1,
    lr: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """Train the word embeddings of a mean-pooled retriever with crop InfoNCE.

    Each step samples ``batch_size`` documents, cuts two random contiguous crops of
    ``crop_frac`` of their length and takes an Adam step on
    :func:`info_nce_loss_and_grad`. Payload words never occur in a document, so they
    keep their random initial vectors.

    Returns
    -------
    emb : ndarray of float32, shape (V + 1, d_model)
        Token embeddings, with a zero last row for the padding id ``corpus.docs.pad``.
    losses : ndarray of float, shape (n_steps,)
    """
    check_instance("corpus", corpus, Corpus)
    check_instance("rng", rng, np.random.Generator)
    d_model = check_int("d_model", d_model, minimum=1)
    n_steps = check_int("n_steps", n_steps, minimum=0)
    batch_size = check_int(
        "batch_size", batch_size, minimum=2, maximum=len(corpus.docs)
    )
    crop_frac = check_float(
        "crop_frac", crop_frac, minimum=0.0, maximum=1.0, strict_minimum=True
    )
    lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
    docs = corpus.docs.tokens
    crop_len = max(1, round(crop_frac * docs.shape[1]))
    emb = (rng.standard_normal((corpus.n_vocab, d_model)) / np.sqrt(d_model)).astype(
        np.float32
    )
    opt = Adam([emb], lr=lr)
    losses = np.empty(n_steps)
    for step in range(n_steps):
        batch = docs[rng.choice(len(corpus.docs), size=batch_size, replace=False)]
        a, b = random_crops(batch, crop_len, rng), random_crops(batch, crop_len, rng)
        losses[step], grad = info_nce_loss_and_grad(emb, a, b, temperature)
        opt.step([grad])
    log.info(
        "retriever trained: loss %.3f -> %.3f", losses[:10].mean(), losses[-10:].mean()
    )
    padded = np.vstack([emb, np.zeros((1, d_model))]).astype(np.float32)
    return padded, losses


def embed(emb: np.ndarray, docs: Docs | np.ndarray) -> np.ndarray:
    """L2-normalised mean-pooled embeddings of documents or queries.

    Parameters
    ----------
    emb : ndarray of float32, shape (V + 1, d)
        Token embeddings with a zero padding row.
    docs : Docs or ndarray of int, shape (n, length)
        Padded documents, or equal-length queries.

    Returns
    -------
    ndarray of float32, shape (n, d)
        Unit rows (a row of zeros for an empty document).
    """
    emb = check_array("emb", emb, ndim=2)
    tokens = (
        docs.tokens if isinstance(docs, Docs) else check_array("docs", docs, ndim=2)
    )
    sums, norms = _pooled(emb, tokens)
    return (sums / norms).astype(np.float32)


def plain_scores(emb: np.ndarray, queries: np.ndarray, docs: Docs) -> np.ndarray:
    """Cosine similarity of every query to every document, shape (n_queries, n_docs)."""
    return embed(emb, queries) @ embed(emb, docs).T


# ------------------------------------------------------------------- RAGPart


def fragment_bounds(lengths: np.ndarray, n_fragments: int) -> np.ndarray:
    """Boundaries of ``n_fragments`` contiguous fragments of near-equal length.

    Fragment ``j`` of a document of length ``L`` covers positions
    ``[floor(j L / N), floor((j + 1) L / N))``; lengths differ by at most one, and a
    document shorter than ``N`` gets some empty fragments.

    Returns
    -------
    ndarray of int64, shape (n_docs, n_fragments + 1)
    """
    lengths = check_array("lengths", lengths, ndim=1)
    n_fragments = check_int("n_fragments", n_fragments, minimum=1)
    return (np.arange(n_fragments + 1)[None, :] * lengths[:, None]) // n_fragments


def ragpart_scores(
    emb: np.ndarray,
    queries: np.ndarray,
    docs: Docs,
    n_fragments: int = 5,
    subset_size: int = 3,
) -> np.ndarray:
    r"""RAGPart's score of every document for every query.

    Each document is cut into ``N = n_fragments`` contiguous fragments, each fragment
    is embedded on its own (:math:`f_1, \dots, f_N`, unit vectors), and for every
    subset :math:`S` of ``k = subset_size`` fragments the embedding
    :math:`u_S = \frac{1}{k}\sum_{j \in S} f_j` is compared with the query:

    .. math::

        \mathrm{score}(q, D) = \binom{N}{k}^{-1} \sum_{|S| = k} \cos(q, u_S).

    Parameters
    ----------
    emb : ndarray of float32, shape (V + 1, d)
    queries : ndarray of int, shape (n_queries, query_len)
    docs : Docs
    n_fragments, subset_size : int
        ``N >= 1`` and ``1 <= k <= N``.

    Returns
    -------
    ndarray of float32, shape (n_queries, n_docs)
    """
    emb = check_array("emb", emb, ndim=2)
    check_instance("docs", docs, Docs)
    n_fragments = check_int("n_fragments", n_fragments, minimum=1)
    subset_size = check_int("subset_size", subset_size, minimum=1, maximum=n_fragments)
    q = embed(emb, queries)
    vecs = emb[docs.tokens]
    prefix = np.concatenate(
        [np.zeros_like(vecs[:, :1]), np.cumsum(vecs, axis=1)], axis=1
    )
    bounds = fragment_bounds(docs.lengths, n_fragments)
    rows = np.arange(len(docs))[:, None]
    frags = prefix[rows, bounds[:, 1:]] - prefix[rows, bounds[:, :-1]]
    norms = np.linalg.norm(frags, axis=2, keepdims=True)
    frags = np.divide(frags, norms, out=np.zeros_like(frags), where=norms > 0)
    subsets = np.array(list(itertools.combinations(range(n_fragments), subset_size)))
    u = frags[:, subsets].mean(axis=2)  # (n_docs, n_subsets, d)
    u_norm = np.maximum(np.linalg.norm(u, axis=2), 1e-12)
    cos = np.einsum("qd,nsd->qns", q, u) / u_norm[None]
    return cos.mean(axis=2).astype(np.float32)


# ------------------------------------------------------------------- RAGMask


def ragmask_shifts(
    emb: np.ndarray, query_vecs: np.ndarray, docs: Docs, n_mask: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""RAGMask's similarity shift for each (query, document) pair.

    For pair ``n`` with query vector :math:`q` and token vectors :math:`e_1..e_L`
    summing to :math:`s`, every token's drop
    :math:`\delta_i = \cos(q, s) - \cos(q, s - e_i)` comes from the kernel
    :func:`paperlab.kernels.retrieval_masking.batch_masked_drops`; the ``n_mask``
    tokens with the largest drops, the set :math:`M`, are then masked together and

    .. math::

        \Delta = \cos(q, s) - \cos\big(q, s - \textstyle\sum_{i \in M} e_i\big).

    Parameters
    ----------
    emb : ndarray of float32, shape (V + 1, d)
    query_vecs : ndarray of float32, shape (n_pairs, d)
        The query of each pair, embedded.
    docs : Docs
        The document of each pair (``n_pairs`` of them).
    n_mask : int
        Tokens masked together, at least 1.

    Returns
    -------
    shifts : ndarray of float, shape (n_pairs,)
    masked : ndarray of int, shape (n_pairs, n_mask)
        Positions masked together (``-1`` where a document is shorter).
    drops : ndarray of float32, shape (n_pairs, max_len)
        The single-token drops (0 past each document's end).
    """
    emb = check_array("emb", emb, ndim=2, dtype=np.float32)
    check_instance("docs", docs, Docs)
    query_vecs = check_array(
        "query_vecs", query_vecs, shape=(len(docs), emb.shape[1]), dtype=np.float32
    )
    n_mask = check_int("n_mask", n_mask, minimum=1)
    drops = batch_masked_drops(docs.tokens, docs.lengths, emb, query_vecs)
    valid = np.arange(docs.tokens.shape[1])[None, :] < docs.lengths[:, None]
    order = np.argsort(np.where(valid, -drops, np.inf), axis=1, kind="stable")
    masked = order[:, :n_mask]
    masked = np.where(np.take_along_axis(valid, masked, axis=1), masked, -1)
    sums = emb[docs.tokens].sum(axis=1, dtype=np.float64)
    gone = np.take_along_axis(docs.tokens, np.maximum(masked, 0), axis=1)
    removed = np.where(masked[:, :, None] >= 0, emb[gone], 0.0).sum(axis=1)
    shifts = _cos_rows(query_vecs, sums) - _cos_rows(query_vecs, sums - removed)
    return shifts, masked, drops


def _cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("nd,nd->n", a, b)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 1e-9)


def _candidate_pairs(
    emb: np.ndarray,
    queries: np.ndarray,
    docs: Docs,
    scores: np.ndarray,
    n_candidates: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Docs]:
    """The top ``n_candidates`` documents of each query, as (query, doc) pairs."""
    n_candidates = min(n_candidates, len(docs))
    top = np.argpartition(-scores, n_candidates - 1, axis=1)[:, :n_candidates]
    q_idx = np.repeat(np.arange(queries.shape[0]), n_candidates)
    d_idx = top.ravel()
    pair_docs = Docs(docs.tokens[d_idx], docs.lengths[d_idx], docs.pad)
    return q_idx, d_idx, embed(emb, queries)[q_idx], pair_docs


def calibrate_threshold(
    emb: np.ndarray,
    queries: np.ndarray,
    docs: Docs,
    *,
    n_candidates: int = 5,
    n_mask: int = 2,
    quantile: float = 0.99,
) -> float:
    """RAGMask's flagging threshold, from benign documents only.

    The ``n_candidates`` documents each benign query retrieves give the shifts of
    honest top-ranked documents; the threshold is their ``quantile``, so about
    ``1 - quantile`` of them would be flagged.
    """
    quantile = check_probability("quantile", quantile)
    scores = plain_scores(emb, queries, docs)
    _, _, qv, pair_docs = _candidate_pairs(emb, queries, docs, scores, n_candidates)
    shifts, _, _ = ragmask_shifts(emb, qv, pair_docs, n_mask)
    return float(np.quantile(shifts, quantile))


def ragmask_scores(
    emb: np.ndarray,
    queries: np.ndarray,
    docs: Docs,
    threshold: float,
    *,
    n_candidates: int = 10,
    n_mask: int = 2,
    scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Plain scores with every flagged top candidate pushed to the bottom.

    Each query's ``n_candidates`` best documents by cosine are checked with
    :func:`ragmask_shifts`; a document whose shift exceeds ``threshold`` is removed
    (its score set to -2, below any cosine), and the rest keep their scores.
    ``scores``, if given, are the plain scores (shape (n_queries, n_docs)), to save
    recomputing them.

    Returns
    -------
    scores : ndarray of float32, shape (n_queries, n_docs)
    flagged : ndarray of bool, shape (n_queries, n_docs)
    """
    threshold = check_float("threshold", threshold)
    n_candidates = check_int("n_candidates", n_candidates, minimum=1)
    if scores is None:
        scores = plain_scores(emb, queries, docs)
    scores = check_array("scores", scores, shape=(queries.shape[0], len(docs)))
    q_idx, d_idx, qv, pair_docs = _candidate_pairs(
        emb, queries, docs, scores, n_candidates
    )
    shifts, _, _ = ragmask_shifts(emb, qv, pair_docs, n_mask)
    flagged = np.zeros(scores.shape, dtype=bool)
    flagged[q_idx, d_idx] = shifts > threshold
    return np.where(flagged, REMOVED, scores).astype(np.float32), flagged


# -------------------------------------------------------------------- attacks


def _payload(corpus: Corpus, payload_len: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(corpus.payload_words, size=payload_len).astype(np.int32)


def injection_attack(
    corpus: Corpus,
    targets: np.ndarray,
    rng: np.random.Generator,
    *,
    n_poison: int = 5,
    payload_len: int = 10,
) -> tuple[Docs, np.ndarray]:
    """Query injection (PoisonedRAG's black-box form): the query, then a payload.

    Returns
    -------
    poison : Docs
        ``n_poison`` documents per target query: its words followed by
        ``payload_len`` random payload words.
    owner : ndarray of int, shape (n_targets * n_poison,)
        Index into ``targets`` of the query each poisoned document aims at.
    """
    check_instance("corpus", corpus, Corpus)
    targets = check_array("targets", targets, ndim=1)
    n_poison = check_int("n_poison", n_poison, minimum=1)
    payload_len = check_int("payload_len", payload_len, minimum=0)
    docs = [
        np.concatenate([corpus.queries[t], _payload(corpus, payload_len, rng)])
        for t in targets
        for _ in range(n_poison)
    ]
    owner = np.repeat(np.arange(targets.size), n_poison)
    return _stack_docs(docs, corpus.docs.pad), owner


def trigger_search(
    emb: np.ndarray,
    qvecs: np.ndarray,
    payloads: np.ndarray,
    n_trigger: int,
    rng: np.random.Generator,
    *,
    n_vocab: int,
    n_sweeps: int = 2,
    distinct: bool = True,
) -> np.ndarray:
    """Greedy coordinate search for trigger words that maximise query similarity.

    Poisoned document ``b`` is ``trigger[b] + payloads[b]``. Starting from random
    words, each sweep visits the trigger positions in order and puts at each the word
    (of the first ``n_vocab`` ids) that maximises ``cos(q_b, s_b)`` with everything
    else fixed. HotFlip ranks candidate swaps by a gradient and tries the best few;
    the toy retriever is cheap enough to try every word exactly, ``O(V d)`` per
    position, for all documents at once.

    With ``distinct=True`` a word already used at another trigger position is not a
    candidate. A mean-pooled retriever rewards repeating the single best word, which
    a contextual encoder does not, so the default keeps the toy's triggers as
    varied as real ones; ``distinct=False`` gives the repeating (adaptive) attack.

    Parameters
    ----------
    emb : ndarray of float32, shape (V + 1, d)
    qvecs : ndarray of float, shape (B, d)
        The target query of each poisoned document, embedded.
    payloads : ndarray of int, shape (B, payload_len)
        The fixed payload of each poisoned document.
    n_trigger : int
        Trigger words per document.
    rng : numpy.random.Generator
        Draws the starting words.
    n_vocab : int
        Candidate words are ids ``0 .. n_vocab - 1``.
    n_sweeps : int
        Passes over the trigger positions.
    distinct : bool
        Forbid repeated trigger words within a document.

    Returns
    -------
    ndarray of int32, shape (B, n_trigger)
    """
    emb = check_array("emb", emb, ndim=2)
    qvecs = check_array("qvecs", qvecs, ndim=2, shape=(None, emb.shape[1]))
    payloads = check_array("payloads", payloads, ndim=2, shape=(qvecs.shape[0], None))
    n_trigger = check_int("n_trigger", n_trigger, minimum=1)
    n_vocab = check_int("n_vocab", n_vocab, minimum=1, maximum=emb.shape[0])
    n_sweeps = check_int("n_sweeps", n_sweeps, minimum=1)
    check_instance("rng", rng, np.random.Generator)
    if distinct and n_trigger > n_vocab:
        raise ValueError(f"n_trigger must be <= n_vocab ({n_vocab}) for distinct words")
    n_docs = qvecs.shape[0]
    words = emb[:n_vocab].astype(np.float64)
    w_dot_q = words @ qvecs.T  # (V, B)
    w_sq = np.einsum("vd,vd->v", words, words)[:, None]
    trigger = np.array(
        [
            rng.choice(n_vocab, size=n_trigger, replace=not distinct)
            for _ in range(n_docs)
        ]
    ).reshape(n_docs, n_trigger)
    total = emb[payloads].sum(axis=1) + words[trigger].sum(axis=1)
    cols = np.arange(n_docs)
    for _ in range(n_sweeps):
        for pos in range(n_trigger):
            rest = total - words[trigger[:, pos]]
            norm_sq = np.einsum("bd,bd->b", rest, rest) + 2 * (words @ rest.T) + w_sq
            dot = np.einsum("bd,bd->b", rest, qvecs) + w_dot_q
            cand = dot / np.sqrt(np.maximum(norm_sq, 1e-12))
            if distinct:
                others = np.delete(trigger, pos, axis=1)
                cand[others, cols[:, None]] = -np.inf
            trigger[:, pos] = np.argmax(cand, axis=0)
            total = rest + words[trigger[:, pos]]
    return trigger.astype(np.int32)


def trigger_attack(
    corpus: Corpus,
    emb: np.ndarray,
    targets: np.ndarray,
    rng: np.random.Generator,
    *,
    n_poison: int = 5,
    payload_len: int = 10,
    n_trigger: int = 5,
    n_sweeps: int = 2,
    distinct: bool = True,
) -> tuple[Docs, np.ndarray]:
    """White-box trigger attack: searched trigger words, then a random payload.

    Returns ``(poison, owner)`` as :func:`injection_attack` does.
    """
    check_instance("corpus", corpus, Corpus)
    targets = check_array("targets", targets, ndim=1)
    n_poison = check_int("n_poison", n_poison, minimum=1)
    owner = np.repeat(np.arange(targets.size), n_poison)
    payloads = np.array([_payload(corpus, payload_len, rng) for _ in owner])
    payloads = payloads.reshape(owner.size, payload_len)
    qvecs = embed(emb, corpus.queries[targets])[owner]
    trig = trigger_search(
        emb,
        qvecs,
        payloads,
        n_trigger,
        rng,
        n_vocab=corpus.n_vocab,
        n_sweeps=n_sweeps,
        distinct=distinct,
    )
    docs = list(np.hstack([trig, payloads]))
    return _stack_docs(docs, corpus.docs.pad), owner


def attack_success_rate(
    scores: np.ndarray, owner: np.ndarray, n_benign: int, top_k: int = 5
) -> float:
    """Share of target queries with a poisoned document of theirs in the top k.

    Parameters
    ----------
    scores : ndarray, shape (n_targets, n_benign + n_poison)
        Scores over the benign documents followed by the poisoned ones.
    owner : ndarray of int, shape (n_poison,)
        Target (row of ``scores``) of each poisoned document.
    n_benign : int
        Number of benign columns.
    top_k : int
        Retrieval depth.
    """
    scores = check_array("scores", scores, ndim=2)
    owner = check_array("owner", owner, ndim=1)
    n_benign = check_int("n_benign", n_benign, minimum=0)
    top_k = check_int("top_k", top_k, minimum=1)
    if n_benign + owner.size != scores.shape[1]:
        raise ValueError(
            f"scores must have n_benign + len(owner) = {n_benign + owner.size} "
            f"columns, got {scores.shape[1]}"
        )
    ranks = rank_of_targets(scores[owner], n_benign + np.arange(owner.size))
    best = np.full(scores.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(best, owner, ranks)
    return float(np.mean(best < top_k))


def fragment_alignment(
    emb: np.ndarray,
    docs: Docs,
    n_fragments: int = 5,
    rng: np.random.Generator | None = None,
) -> tuple[float, float]:
    """Mean cosine of a fragment to its own document and to a random other document.

    The property RAGPart relies on: a crop-trained retriever puts a fragment near
    the document it came from.

    Returns
    -------
    own, other : float
        Mean ``cos(fragment, own document)`` and ``cos(fragment, other document)``
        over all fragments of all documents (``other`` is a random permutation).
    """
    emb = check_array("emb", emb, ndim=2)
    check_instance("docs", docs, Docs)
    rng = np.random.default_rng(0) if rng is None else rng
    whole = embed(emb, docs)
    bounds = fragment_bounds(docs.lengths, n_fragments)
    vecs = emb[docs.tokens]
    prefix = np.concatenate(
        [np.zeros_like(vecs[:, :1]), np.cumsum(vecs, axis=1)], axis=1
    )
    rows = np.arange(len(docs))[:, None]
    frags = prefix[rows, bounds[:, 1:]] - prefix[rows, bounds[:, :-1]]
    frags /= np.maximum(np.linalg.norm(frags, axis=2, keepdims=True), 1e-12)
    own = np.einsum("nfd,nd->nf", frags, whole).mean()
    other = np.einsum("nfd,nd->nf", frags, whole[rng.permutation(len(docs))]).mean()
    return float(own), float(other)


# ----------------------------------------------------------------- experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the variant: the paper's defenses or the plain retriever."""

    variant: str = "mechanism"  # "mechanism": the defenses; "baseline": plain retriever
    seeds: tuple[int, ...] = (0, 1, 2)  # one corpus and retriever per seed
    n_docs: int = 2000  # benign documents
    doc_len: int = 30  # tokens per benign document
    n_queries: int = 100  # evaluation queries (and as many calibration queries)
    d_model: int = 64  # embedding width
    n_steps: int = 200  # InfoNCE training steps
    n_targets: int = 30  # attacked queries
    n_poison: int = 5  # poisoned documents per attacked query
    payload_len: int = 14  # payload words in each poisoned document
    n_trigger: int = 5  # searched trigger words (trigger attack)
    n_fragments: int = 5  # RAGPart's N
    subset_size: int = 3  # RAGPart's k
    n_mask: int = 2  # RAGMask: tokens masked together
    n_candidates: int = 10  # RAGMask: top documents checked per query
    calib_quantile: float = 0.99  # RAGMask: threshold quantile of benign shifts
    top_k: int = 5  # retrieval depth for Recall@k and attack success

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, VARIANTS)
        if not isinstance(self.seeds, tuple) or not self.seeds:
            raise TypeError(f"seeds must be a non-empty tuple, got {self.seeds!r}")
        for seed in self.seeds:
            check_int("seeds[i]", seed, minimum=0)
        for name in ("n_docs", "doc_len", "n_queries", "d_model", "n_targets"):
            check_int(name, getattr(self, name), minimum=2)
        for name in ("n_poison", "n_trigger", "n_fragments", "n_mask", "n_candidates"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("n_steps", self.n_steps, minimum=0)
        check_int("payload_len", self.payload_len, minimum=0)
        check_int("subset_size", self.subset_size, minimum=1, maximum=self.n_fragments)
        check_int("n_targets", self.n_targets, maximum=self.n_queries)
        check_int("top_k", self.top_k, minimum=1, maximum=self.n_docs)
        check_probability("calib_quantile", self.calib_quantile)


@dataclass(frozen=True)
class Setup:
    """One seed's corpus, trained retriever and RAGMask threshold."""

    corpus: Corpus
    emb: np.ndarray  # (V + 1, d) trained token embeddings, zero padding row
    losses: np.ndarray  # training loss per step
    threshold: float  # RAGMask's flagging threshold
    targets: np.ndarray  # indices of the attacked queries


@dataclass(frozen=True)
class SeedResult:
    """What one seed measured."""

    seed: int
    recall: dict[str, float]  # defense -> benign Recall@top_k
    asr: dict[str, dict[str, float]]  # attack -> defense -> attack success rate
    threshold: float  # RAGMask's threshold
    final_loss: float  # mean InfoNCE loss of the last 10 steps


@dataclass(frozen=True)
class Result:
    """All seeds' measurements, and the first seed's setup for the figures."""

    config: Config
    seeds: tuple[SeedResult, ...]
    setup: Setup

    def asr(self, attack: str, defense: str) -> float:
        """Attack success rate averaged over seeds."""
        return float(np.mean([s.asr[attack][defense] for s in self.seeds]))

    def recall(self, defense: str) -> float:
        """Benign Recall@top_k averaged over seeds."""
        return float(np.mean([s.recall[defense] for s in self.seeds]))


def prepare(config: Config, seed: int) -> Setup:
    """Draw the corpus, train the retriever and calibrate RAGMask for one seed."""
    check_instance("config", config, Config)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    corpus = make_corpus(
        rng, n_docs=config.n_docs, doc_len=config.doc_len, n_queries=config.n_queries
    )
    emb, losses = train_retriever(
        corpus, rng, d_model=config.d_model, n_steps=config.n_steps
    )
    threshold = calibrate_threshold(
        emb,
        corpus.calib_queries,
        corpus.docs,
        n_candidates=config.top_k,
        n_mask=config.n_mask,
        quantile=config.calib_quantile,
    )
    targets = rng.choice(config.n_queries, size=config.n_targets, replace=False)
    return Setup(corpus, emb, losses, threshold, targets)


def defended_scores(
    setup: Setup,
    config: Config,
    queries: np.ndarray,
    docs: Docs,
    known: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Scores of every document for every query under each defense.

    ``known`` may hold the plain and RAGPart scores of the first documents of
    ``docs`` (both per-document, so they need no recomputing when poisoned
    documents are appended); RAGMask always looks at the top candidates among all.
    With ``config.variant == "baseline"`` every defense is replaced by the plain
    retriever, which is what the claim's counter-test runs.
    """
    n_known = 0 if known is None else known["none"].shape[1]
    new = Docs(docs.tokens[n_known:], docs.lengths[n_known:], docs.pad)
    plain = plain_scores(setup.emb, queries, new)
    if known is not None:
        plain = np.hstack([known["none"], plain])
    if config.variant == "baseline":
        return {defense: plain for defense in DEFENSES}
    part = ragpart_scores(
        setup.emb, queries, new, config.n_fragments, config.subset_size
    )
    if known is not None:
        part = np.hstack([known["ragpart"], part])
    masked, _ = ragmask_scores(
        setup.emb,
        queries,
        docs,
        setup.threshold,
        n_candidates=config.n_candidates,
        n_mask=config.n_mask,
        scores=plain,
    )
    return {"none": plain, "ragpart": part, "ragmask": masked}


def poison(
    setup: Setup,
    config: Config,
    attack: str,
    rng: np.random.Generator,
    n_trigger: int | None = None,
) -> tuple[Docs, np.ndarray]:
    """The poisoned documents of one attack on the setup's target queries."""
    attack = check_choice("attack", attack, ATTACKS)
    if attack == "injection":
        return injection_attack(
            setup.corpus,
            setup.targets,
            rng,
            n_poison=config.n_poison,
            payload_len=config.payload_len,
        )
    return trigger_attack(
        setup.corpus,
        setup.emb,
        setup.targets,
        rng,
        n_poison=config.n_poison,
        payload_len=config.payload_len,
        n_trigger=config.n_trigger if n_trigger is None else n_trigger,
    )


def attack_rates(
    setup: Setup,
    config: Config,
    poisoned: Docs,
    owner: np.ndarray,
    benign: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Attack success rate under each defense once ``poisoned`` joins the corpus.

    ``benign`` may hold the target queries' scores over the benign documents
    (from :func:`defended_scores`), which are then reused.
    """
    docs = concat_docs(setup.corpus.docs, poisoned)
    queries = setup.corpus.queries[setup.targets]
    scores = defended_scores(setup, config, queries, docs, known=benign)
    n_benign = len(setup.corpus.docs)
    return {
        d: attack_success_rate(s, owner, n_benign, config.top_k)
        for d, s in scores.items()
    }


def trigger_sweep(
    setup: Setup, config: Config, n_triggers: tuple[int, ...] = tuple(range(1, 11))
) -> dict[str, np.ndarray]:
    """Trigger-attack success under each defense as the trigger grows.

    Returns
    -------
    dict
        Defense name to an array of attack success rates, one per ``n_triggers``.
    """
    queries = setup.corpus.queries[setup.targets]
    benign = defended_scores(setup, config, queries, setup.corpus.docs)
    rates = {d: [] for d in DEFENSES}
    for n in n_triggers:
        rng = np.random.default_rng([n, 2])
        poisoned, owner = poison(setup, config, "trigger", rng, n_trigger=n)
        for d, r in attack_rates(setup, config, poisoned, owner, benign).items():
            rates[d].append(r)
    return {d: np.array(r) for d, r in rates.items()}


def run_seed(config: Config, seed: int) -> tuple[SeedResult, Setup]:
    """Benign recall and both attacks' success rates for one seed."""
    setup = prepare(config, seed)
    corpus = setup.corpus
    benign = defended_scores(setup, config, corpus.queries, corpus.docs)
    recall = {
        d: recall_at_k(rank_of_targets(s, corpus.gold), config.top_k)
        for d, s in benign.items()
    }
    rng = np.random.default_rng([seed, 1])
    known = {d: s[setup.targets] for d, s in benign.items()}
    asr = {
        a: attack_rates(setup, config, *poison(setup, config, a, rng), known)
        for a in ATTACKS
    }
    result = SeedResult(
        seed, recall, asr, setup.threshold, float(setup.losses[-10:].mean())
    )
    log.info("seed %d: recall %s, asr %s", seed, recall, asr)
    return result, setup


def run_experiment(config: Config) -> Result:
    """Run every seed of ``config`` (about 1.5 s per seed on the book's machine)."""
    check_instance("config", config, Config)
    runs = [run_seed(config, seed) for seed in config.seeds]
    return Result(config, tuple(r for r, _ in runs), runs[0][1])


def check_claim(result: Result) -> None:
    """The paper's central claim, on the seed-averaged numbers of the toy.

    1. The trained retriever works: benign Recall@5 >= 0.8 without a defense.
    2. Both attacks work: undefended attack success >= 0.7.
    3. Each defense at least halves the attack success of one attack, and RAGMask
       halves that of the trigger attack.
    4. Utility is kept: each defense's benign Recall@5 is within 0.05 of the
       undefended retriever's.

    Raises
    ------
    paperlab.claims.ClaimFailed
        Naming the first part that fails.
    """
    check_instance("result", result, Result)
    base_recall = result.recall("none")
    require(
        base_recall >= MIN_BENIGN_RECALL,
        f"the retriever's benign Recall@5 is {base_recall:.2f} < {MIN_BENIGN_RECALL}",
    )
    for attack in ATTACKS:
        undefended = result.asr(attack, "none")
        require(
            undefended >= MIN_UNDEFENDED_ASR,
            f"the {attack} attack succeeds only {undefended:.2f} < "
            f"{MIN_UNDEFENDED_ASR} undefended",
        )
    for defense in ("ragpart", "ragmask"):
        ratios = {a: result.asr(a, defense) / result.asr(a, "none") for a in ATTACKS}
        require(
            min(ratios.values()) <= MAX_ASR_RATIO,
            f"{defense} does not halve attack success for any attack "
            f"(ratios {', '.join(f'{a} {r:.2f}' for a, r in ratios.items())})",
        )
        if defense == "ragmask":
            require(
                ratios["trigger"] <= MAX_ASR_RATIO,
                f"ragmask keeps {ratios['trigger']:.2f} of the trigger attack's "
                "success",
            )
        loss = base_recall - result.recall(defense)
        require(
            loss <= MAX_RECALL_LOSS,
            f"{defense} costs {loss:.3f} > {MAX_RECALL_LOSS} of benign Recall@5",
        )


# ------------------------------------------------------------------ figures


def word_names(corpus: Corpus) -> list[str]:
    """Readable names of the word ids: ``t3.7`` (topic 3, word 7), ``e42``, ``p5``."""
    check_instance("corpus", corpus, Corpus)
    per_topic = corpus.words_per_topic
    n_topic_words = corpus.n_topics * per_topic
    n_entities = int(corpus.payload_words[0]) - n_topic_words
    names = [f"t{i // per_topic}.{i % per_topic}" for i in range(n_topic_words)]
    names += [f"e{i}" for i in range(n_entities)]
    names += [f"p{i}" for i in range(corpus.payload_words.size)]
    return names


def token_drops(setup: Setup, doc_tokens: np.ndarray, query_index: int) -> np.ndarray:
    """Single-token masking drops of one document for one query (the kernel)."""
    qvec = embed(setup.emb, setup.corpus.queries[query_index][None])[0]
    return masked_similarity_drops(np.asarray(doc_tokens), setup.emb, qvec)


def plot_token_strip(ax, names: list[str], doc_tokens: np.ndarray, drops: np.ndarray):
    """Draw a document as a strip of cells coloured by each token's masking drop."""
    image = ax.imshow(drops[None, :], aspect="auto", cmap="viridis", vmin=0.0)
    ax.set_yticks([])
    ax.set_xticks(range(len(doc_tokens)))
    ax.set_xticklabels([names[t] for t in doc_tokens], rotation=90, fontsize=7)
    ax.grid(False)
    return image


def plot_results(result: Result):
    """Attack success per attack and defense, and benign Recall@5 per defense."""
    from paperlab import plotting

    fig, (ax_asr, ax_rec) = plotting.subplots(1, 2, width=9.0, height=3.4)
    width = 0.26
    for j, defense in enumerate(DEFENSES):
        means, lows, highs = [], [], []
        for attack in ATTACKS:
            values = [s.asr[attack][defense] for s in result.seeds]
            means.append(np.mean(values))
            lows.append(np.mean(values) - min(values))
            highs.append(max(values) - np.mean(values))
        x = np.arange(len(ATTACKS)) + (j - 1) * width
        ax_asr.bar(
            x,
            means,
            width,
            yerr=[lows, highs],
            capsize=3,
            color=plotting.COLORS[j],
            label=DEFENSE_NAMES[defense],
        )
        recalls = [s.recall[defense] for s in result.seeds]
        ax_rec.bar(j, np.mean(recalls), 0.6, color=plotting.COLORS[j])
    ax_asr.set_xticks(range(len(ATTACKS)), [ATTACK_NAMES[a] for a in ATTACKS])
    ax_asr.set_ylim(0, 1.3)
    plotting.label_axes(
        ax_asr,
        title="Attack success (30 targets, 5 poisons each)",
        xlabel="attack",
        ylabel="attack success rate (fraction)",
        legend=False,
    )
    ax_asr.legend(ncol=3, loc="upper center")
    ax_rec.set_xticks(range(len(DEFENSES)), [DEFENSE_NAMES[d] for d in DEFENSES])
    ax_rec.set_ylim(0.8, 1.0)
    plotting.label_axes(
        ax_rec,
        title="Utility without an attack",
        xlabel="defense",
        ylabel="benign Recall@5 (fraction)",
    )
    return fig


def plot_explore(
    sweep: dict[str, np.ndarray],
    n_triggers: tuple[int, ...],
    n_trigger: int,
    names: list[str],
    doc_tokens: np.ndarray,
    drops: np.ndarray,
):
    """Trigger-attack success against trigger length, and one poisoned document."""
    from paperlab import plotting

    fig, (ax, ax_doc) = plotting.subplots(
        2, 1, width=7.5, height=5.0, gridspec_kw={"height_ratios": [3, 1]}
    )
    for j, defense in enumerate(DEFENSES):
        ax.plot(
            n_triggers,
            sweep[defense],
            marker="o",
            color=plotting.COLORS[j],
            label=DEFENSE_NAMES[defense],
        )
    ax.axvline(n_trigger, color="0.4", linestyle=":", linewidth=1)
    ax.set_ylim(-0.03, 1.03)
    plotting.label_axes(
        ax,
        title="Trigger attack against trigger length",
        xlabel="trigger words per poisoned document (count)",
        ylabel="attack success rate",
    )
    image = plot_token_strip(ax_doc, names, doc_tokens, drops)
    fig.colorbar(image, ax=ax_doc, label="drop (cosine)")
    plotting.label_axes(
        ax_doc,
        title=f"One poisoned document, {n_trigger} trigger "
        "words: similarity drop when each token is masked",
        xlabel="token",
        ylabel="document",
    )
    return fig

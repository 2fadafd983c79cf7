"""Leave-one-out similarity drops of a mean-pooled retriever (RAGMask's inner loop).

A mean-pooled retriever embeds a document as the direction of the sum of its token
vectors, ``s = sum_i e[t_i]``, and scores it against a query ``q`` by the cosine
``cos(q, s) = q . s / (|q| |s|)`` (the mean and the sum point the same way). Masking
token ``i`` removes its vector from the sum, so the similarity of the masked document
is ``cos(q, s - e[t_i])``. RAGMask (Pathmanathan et al., arXiv 2512.24268) ranks the
tokens of a retrieved document by how far the similarity falls when each is masked,

    drop_i = cos(q, s) - cos(q, s - e[t_i]),

and the kernels here compute every ``drop_i`` of a document in ``O(L d)`` from one
running sum, instead of re-embedding ``L`` masked copies in ``O(L^2 d)``. The cosine
of a zero vector is taken as 0 (a one-token document with its token masked).

The kernels accumulate in float64 and return float32. They are serial: a ``prange``
over documents did not pay for its thread start-up at the chapter's sizes on the
book's shared two-core machine.
"""

from __future__ import annotations

import numba
import numpy as np

from paperlab.kernels import BenchCase
from paperlab.validation import check_array

__all__ = [
    "masked_similarity_drops",
    "masked_similarity_drops_reference",
    "batch_masked_drops",
    "batch_masked_drops_reference",
    "benchmarks",
]


def _check_emb(emb: np.ndarray) -> np.ndarray:
    emb = check_array("emb", emb, ndim=2, dtype=np.float32, min_size=1)
    return np.ascontiguousarray(emb)


def _check_tokens(name: str, tokens: np.ndarray, n_vocab: int, ndim: int) -> np.ndarray:
    tokens = check_array(name, tokens, ndim=ndim)
    if not np.issubdtype(tokens.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {tokens.dtype}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= n_vocab):
        raise ValueError(f"{name} must index rows 0..{n_vocab - 1} of emb")
    return np.ascontiguousarray(tokens, dtype=np.int32)


@numba.njit(cache=True)
def _cosine(q, q_norm, s):
    dot = 0.0
    ss = 0.0
    for j in range(s.shape[0]):
        dot += q[j] * s[j]
        ss += s[j] * s[j]
    if ss == 0.0 or q_norm == 0.0:
        return 0.0
    return dot / (q_norm * np.sqrt(ss))


@numba.njit(cache=True)
def _drops_into(out, doc_tokens, length, emb, qvec):
    """Write the ``length`` drops of one document into ``out[:length]``."""
    d = emb.shape[1]
    s = np.zeros(d)
    q = np.empty(d)
    q_norm = 0.0
    for j in range(d):
        q[j] = qvec[j]
        q_norm += q[j] * q[j]
    q_norm = np.sqrt(q_norm)
    for i in range(length):
        row = emb[doc_tokens[i]]
        for j in range(d):
            s[j] += row[j]
    full = _cosine(q, q_norm, s)
    s_sq = 0.0
    for j in range(d):
        s_sq += s[j] * s[j]
    for i in range(length):
        row = emb[doc_tokens[i]]
        dot = 0.0
        rest_sq = 0.0
        for j in range(d):
            rest = s[j] - row[j]
            dot += q[j] * rest
            rest_sq += rest * rest
        # A masked copy whose sum cancels to (numerically) zero has no direction.
        if rest_sq <= 1e-12 * s_sq or q_norm == 0.0:
            masked = 0.0
        else:
            masked = dot / (q_norm * np.sqrt(rest_sq))
        out[i] = full - masked


@numba.njit(cache=True)
def _single_kernel(doc_tokens, emb, qvec):
    out = np.zeros(doc_tokens.shape[0], dtype=np.float32)
    _drops_into(out, doc_tokens, doc_tokens.shape[0], emb, qvec)
    return out


@numba.njit(cache=True)
def _batch_kernel(tokens, lengths, emb, queries):
    out = np.zeros(tokens.shape, dtype=np.float32)
    for n in range(tokens.shape[0]):
        _drops_into(out[n], tokens[n], lengths[n], emb, queries[n])
    return out


def masked_similarity_drops(
    doc_tokens: np.ndarray, emb: np.ndarray, qvec: np.ndarray
) -> np.ndarray:
    """Similarity drop of each token of one document when it alone is masked (Numba).

    Parameters
    ----------
    doc_tokens : ndarray of int, shape (L,)
        The document's token ids, rows of ``emb``.
    emb : ndarray of float32, shape (V, d)
        Token embeddings of the mean-pooled retriever.
    qvec : ndarray of float32, shape (d,)
        The query embedding.

    Returns
    -------
    ndarray of float32, shape (L,)
        ``cos(q, s) - cos(q, s - e[t_i])`` for every position ``i``, with
        ``s = sum_i e[t_i]`` (RAGMask's targeted-masking score).

    Raises
    ------
    TypeError, ValueError
        If the shapes, dtypes or token ids are invalid.
    """
    emb = _check_emb(emb)
    doc_tokens = _check_tokens("doc_tokens", doc_tokens, emb.shape[0], ndim=1)
    qvec = check_array("qvec", qvec, shape=(emb.shape[1],), dtype=np.float32)
    return _single_kernel(doc_tokens, emb, np.ascontiguousarray(qvec))


def _check_batch(
    tokens: np.ndarray, lengths: np.ndarray, emb: np.ndarray, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    emb = _check_emb(emb)
    tokens = _check_tokens("tokens", tokens, emb.shape[0], ndim=2)
    lengths = check_array("lengths", lengths, shape=(tokens.shape[0],))
    if not np.issubdtype(lengths.dtype, np.integer):
        raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > tokens.shape[1]):
        raise ValueError(f"lengths must lie in [0, {tokens.shape[1]}]")
    queries = check_array(
        "queries", queries, shape=(tokens.shape[0], emb.shape[1]), dtype=np.float32
    )
    return (
        tokens,
        np.ascontiguousarray(lengths, dtype=np.int64),
        emb,
        np.ascontiguousarray(queries),
    )


def batch_masked_drops(
    tokens: np.ndarray, lengths: np.ndarray, emb: np.ndarray, queries: np.ndarray
) -> np.ndarray:
    """:func:`masked_similarity_drops` for many (query, document) pairs (Numba).

    Parameters
    ----------
    tokens : ndarray of int, shape (n, L_max)
        Row ``n`` holds document ``n``'s ids in its first ``lengths[n]`` entries;
        the rest is padding (any valid id) and is ignored.
    lengths : ndarray of int, shape (n,)
        Document lengths, each in ``[0, L_max]``.
    emb : ndarray of float32, shape (V, d)
        Token embeddings.
    queries : ndarray of float32, shape (n, d)
        The query each document is scored against.

    Returns
    -------
    ndarray of float32, shape (n, L_max)
        The drops; entries past a document's length are 0.

    Raises
    ------
    TypeError, ValueError
        If the shapes, dtypes, lengths or token ids are invalid.
    """
    return _batch_kernel(*_check_batch(tokens, lengths, emb, queries))


def _cosine_reference(q: list[float], s: list[float]) -> float:
    q_norm = sum(x * x for x in q) ** 0.5
    s_norm = sum(x * x for x in s) ** 0.5
    if q_norm == 0.0 or s_norm == 0.0:
        return 0.0
    return sum(a * b for a, b in zip(q, s, strict=True)) / (q_norm * s_norm)


def _drops_reference(doc: list[int], emb: np.ndarray, q: list[float]) -> list[float]:
    rows = [[float(x) for x in emb[t]] for t in doc]
    total = [sum(col) for col in zip(*rows, strict=True)] if rows else [0.0] * len(q)
    full = _cosine_reference(q, total)
    drops = []
    for row in rows:
        rest = [a - b for a, b in zip(total, row, strict=True)]
        small = sum(x * x for x in rest) <= 1e-12 * sum(x * x for x in total)
        drops.append(full - (0.0 if small else _cosine_reference(q, rest)))
    return drops


def masked_similarity_drops_reference(
    doc_tokens: np.ndarray, emb: np.ndarray, qvec: np.ndarray
) -> np.ndarray:
    """Plain Python: re-embed each masked copy of the document, ``O(L^2 d)``."""
    emb = _check_emb(emb)
    doc_tokens = _check_tokens("doc_tokens", doc_tokens, emb.shape[0], ndim=1)
    qvec = check_array("qvec", qvec, shape=(emb.shape[1],), dtype=np.float32)
    q = [float(x) for x in qvec]
    return np.array(_drops_reference(list(doc_tokens), emb, q), dtype=np.float32)


def batch_masked_drops_reference(
    tokens: np.ndarray, lengths: np.ndarray, emb: np.ndarray, queries: np.ndarray
) -> np.ndarray:
    """Plain Python loop over documents of :func:`masked_similarity_drops_reference`."""
    tokens, lengths, emb, queries = _check_batch(tokens, lengths, emb, queries)
    out = np.zeros(tokens.shape, dtype=np.float32)
    for n in range(tokens.shape[0]):
        q = [float(x) for x in queries[n]]
        doc = list(tokens[n, : lengths[n]])
        out[n, : lengths[n]] = _drops_reference(doc, emb, q)
    return out


def _batch_numpy(
    tokens: np.ndarray, lengths: np.ndarray, emb: np.ndarray, queries: np.ndarray
) -> np.ndarray:
    """Vectorised NumPy formulation: gather all token vectors, then one broadcast."""
    valid = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
    vecs = emb[tokens] * valid[:, :, None]
    total = vecs.sum(axis=1)
    rest = total[:, None, :] - vecs
    q_norm = np.linalg.norm(queries, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        full = np.einsum("nd,nd->n", queries, total) / (
            q_norm * np.linalg.norm(total, axis=1)
        )
        masked = np.einsum("nd,nld->nl", queries, rest) / (
            q_norm[:, None] * np.linalg.norm(rest, axis=2)
        )
    full = np.nan_to_num(full, nan=0.0, posinf=0.0, neginf=0.0)
    masked = np.nan_to_num(masked, nan=0.0, posinf=0.0, neginf=0.0)
    return np.where(valid, full[:, None] - masked, 0.0).astype(np.float32)


def benchmarks() -> list[BenchCase]:
    """Benchmark case: 2,000 documents of 30 tokens, d = 64, vocabulary 1,000."""
    rng = np.random.default_rng(0)
    n_docs, length, n_vocab, d = 2000, 30, 1000, 64
    emb = rng.standard_normal((n_vocab, d)).astype(np.float32)
    tokens = rng.integers(0, n_vocab, size=(n_docs, length)).astype(np.int32)
    lengths = np.full(n_docs, length, dtype=np.int64)
    queries = rng.standard_normal((n_docs, d)).astype(np.float32)
    args = (tokens, lengths, emb, queries)
    return [
        BenchCase(
            name="batch_masked_drops",
            size=f"{n_docs:,} docs x {length} tokens, d={d}",
            kernel=lambda: batch_masked_drops(*args),
            reference=lambda: batch_masked_drops_reference(*args),
            numpy=lambda: _batch_numpy(*args),
            bytes_moved=tokens.nbytes + n_docs * length * d * 4 + queries.nbytes,
        )
    ]

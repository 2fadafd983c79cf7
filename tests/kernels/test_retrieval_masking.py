"""The leave-one-out masking kernels agree with their plain-Python references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import retrieval_masking as rm


@st.composite
def batches(draw):
    """Random embeddings, padded documents of random lengths, and queries."""
    n_vocab = draw(st.integers(1, 30))
    d = draw(st.integers(1, 8))
    n_docs = draw(st.integers(0, 6))
    max_len = draw(st.integers(0, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    emb = rng.standard_normal((n_vocab, d)).astype(np.float32)
    tokens = rng.integers(0, n_vocab, size=(n_docs, max_len)).astype(np.int32)
    lengths = rng.integers(0, max_len + 1, size=n_docs)
    queries = rng.standard_normal((n_docs, d)).astype(np.float32)
    return tokens, lengths, emb, queries


@settings(max_examples=80, deadline=None)
@given(batches())
def test_batch_kernel_matches_reference(batch):
    out = rm.batch_masked_drops(*batch)
    ref = rm.batch_masked_drops_reference(*batch)
    assert out.shape == ref.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(batches())
def test_numpy_formulation_matches_reference(batch):
    np.testing.assert_allclose(
        rm._batch_numpy(*batch), rm.batch_masked_drops_reference(*batch), atol=1e-4
    )


@settings(max_examples=40, deadline=None)
@given(batches())
def test_single_document_kernel_matches_batch_rows(batch):
    tokens, lengths, emb, queries = batch
    full = rm.batch_masked_drops(*batch)
    for n in range(tokens.shape[0]):
        doc = tokens[n, : lengths[n]]
        np.testing.assert_allclose(
            rm.masked_similarity_drops(doc, emb, queries[n]),
            rm.masked_similarity_drops_reference(doc, emb, queries[n]),
            rtol=1e-5,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            rm.masked_similarity_drops(doc, emb, queries[n]), full[n, : lengths[n]]
        )


def test_drops_equal_reembedding_each_masked_copy():
    """Independent check: embed every masked copy from scratch with NumPy."""
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((40, 16)).astype(np.float32)
    doc = rng.integers(0, 40, size=25)
    q = rng.standard_normal(16).astype(np.float32)

    def cos(x):
        return float(q @ x / (np.linalg.norm(q) * np.linalg.norm(x)))

    full = cos(emb[doc].mean(axis=0))
    expected = [
        full - cos(np.delete(emb[doc], i, axis=0).mean(axis=0)) for i in range(25)
    ]
    np.testing.assert_allclose(
        rm.masked_similarity_drops(doc, emb, q), expected, atol=1e-5
    )


def test_edge_cases_empty_and_single_token():
    emb = np.eye(3, dtype=np.float32)
    q = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    assert rm.masked_similarity_drops(np.array([], dtype=np.int32), emb, q).shape == (
        0,
    )
    # One token: masking it leaves nothing, whose cosine counts as 0.
    np.testing.assert_allclose(rm.masked_similarity_drops(np.array([0]), emb, q), [1.0])
    empty = rm.batch_masked_drops(
        np.zeros((0, 4), np.int32),
        np.zeros(0, np.int64),
        emb,
        np.zeros((0, 3), np.float32),
    )
    assert empty.shape == (0, 4)


def test_nan_propagates_like_the_reference():
    emb = np.ones((4, 2), dtype=np.float32)
    emb[2, 0] = np.nan
    q = np.array([1.0, 0.5], dtype=np.float32)
    doc = np.array([0, 2, 1])
    out = rm.masked_similarity_drops(doc, emb, q)
    ref = rm.masked_similarity_drops_reference(doc, emb, q)
    assert np.isnan(out).all() and np.isnan(ref).all()


def test_bad_inputs_are_rejected():
    emb = np.ones((4, 2), dtype=np.float32)
    q = np.ones(2, dtype=np.float32)
    with pytest.raises(ValueError, match="doc_tokens must index rows"):
        rm.masked_similarity_drops(np.array([0, 4]), emb, q)
    with pytest.raises(TypeError, match="doc_tokens must hold integers"):
        rm.masked_similarity_drops(np.array([0.5]), emb, q)
    with pytest.raises(ValueError, match="qvec must have shape"):
        rm.masked_similarity_drops(np.array([0]), emb, np.ones(3))
    with pytest.raises(ValueError, match="lengths must lie in"):
        rm.batch_masked_drops(
            np.zeros((1, 2), np.int32), np.array([3]), emb, np.ones((1, 2), np.float32)
        )


def test_benchmark_cases_run():
    (case,) = rm.benchmarks()
    assert case.kernel().shape == (2000, 30)
    assert case.bytes_moved > 0

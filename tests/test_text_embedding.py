"""Tests of the offline MiniLM embedder (skipped where the package is absent)."""

import numpy as np
import pytest

from paperlab.text_embedding import embed, minilm_available

pytestmark = pytest.mark.skipif(not minilm_available(), reason="MiniLM not installed")


def test_embeddings_are_unit_vectors_and_rank_paraphrases_first():
    vectors = embed(["the battery lasts long", "battery life is long", "a red scarf"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.3


@pytest.mark.parametrize(
    ("texts", "error", "match"),
    [
        ("one string", TypeError, "not one string"),
        ([], ValueError, "at least one"),
        (["ok", 3], TypeError, "only strings"),
    ],
)
def test_embed_rejects_bad_input(texts, error, match):
    with pytest.raises(error, match=match):
        embed(texts)

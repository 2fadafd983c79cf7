"""The packed-sign matrix-vector kernel agrees with its reference and dense algebra."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import binary_factor as kb


@st.composite
def factor_inputs(draw):
    n_rows, n_cols = draw(st.integers(0, 7)), draw(st.integers(0, 7))
    rank, n_env = draw(st.integers(0, 130)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    Sa = np.where(rng.random((n_rows, rank)) < 0.5, -1.0, 1.0)
    Sb = np.where(rng.random((n_cols, rank)) < 0.5, -1.0, 1.0)
    f32 = np.float32
    A, B = (
        rng.standard_normal((n_rows, n_env)).astype(f32),
        rng.standard_normal((n_cols, n_env)).astype(f32),
    )
    Q, G = (rng.standard_normal((rank, n_env)).astype(f32) for _ in range(2))
    x = rng.standard_normal(n_cols).astype(f32)
    return Sa, Sb, A, Q, B, G, x, rank


@settings(max_examples=60, deadline=None)
@given(factor_inputs())
def test_matvec_matches_reference_and_dense(inputs):
    Sa, Sb, A, Q, B, G, x, rank = inputs
    a, b = kb.pack_sign_words(Sa), kb.pack_sign_words(Sb)
    np.testing.assert_array_equal(kb.unpack_sign_words(a, rank), Sa)
    y = kb.binary_factor_matvec(a, b, A, Q, B, G, x, rank)
    ref = kb.binary_factor_matvec_reference(a, b, A, Q, B, G, x, rank)
    dense = (Sa * (A.astype(float) @ Q.T)) @ (Sb * (B.astype(float) @ G.T)).T @ x
    assert y.shape == (Sa.shape[0],) and y.dtype == np.float32
    scale = 1.0 + np.abs(dense).max(initial=0.0)
    np.testing.assert_allclose(y, ref, atol=1e-4 * scale)
    np.testing.assert_allclose(y, dense, atol=1e-4 * scale)


def test_one_element_and_empty():
    one = kb.pack_sign_words(np.array([[-1.0]]))
    f = np.ones((1, 1), dtype=np.float32)
    y = kb.binary_factor_matvec(one, one, f * 2, f * 3, f * 5, f * 7, f[0] * 1.5, 1)
    assert y[0] == pytest.approx(2 * 3 * 5 * 7 * 1.5)  # (-1)(-1) = 1
    empty = kb.pack_sign_words(np.ones((0, 5)))
    assert kb.binary_factor_matvec(empty, empty, np.ones((0, 1)), np.ones((5, 1)),
                                   np.ones((0, 1)), np.ones((5, 1)), np.ones(0),
                                   5).shape == (0,)  # fmt: skip


def test_nan_input_propagates():
    ones = kb.pack_sign_words(np.ones((2, 3)))
    f = np.ones((2, 1), dtype=np.float32)
    g = np.ones((3, 1), dtype=np.float32)
    x = np.array([np.nan, 1.0], dtype=np.float32)
    assert np.all(np.isnan(kb.binary_factor_matvec(ones, ones, f, g, f, g, x, 3)))


def test_bad_inputs():
    with pytest.raises(ValueError, match="only \\+1 and -1"):
        kb.pack_sign_words(np.array([[0.5, 1.0]]))
    words = kb.pack_sign_words(np.ones((2, 3)))
    f = np.ones((2, 1), dtype=np.float32)
    with pytest.raises(ValueError, match="Q must have shape"):
        kb.binary_factor_matvec(words, words, f, f, f, f, np.ones(2), 3)
    with pytest.raises(ValueError, match="rank must be <= 64"):
        kb.binary_factor_matvec(words, words, f, f, f, f, np.ones(2), 65)

"""The SPM kernels agree with their plain-Python references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import spm

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}


@st.composite
def spm_inputs(draw, max_log_n: int = 4):
    """Random batch, blocks and disjoint pairings (one permutation per stage)."""
    n = 2 ** draw(st.integers(1, max_log_n))
    n_stages = draw(st.integers(0, 4))
    n_batch = draw(st.integers(0, 5))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_batch, n)).astype(dtype)
    grad_y = rng.standard_normal((n_batch, n)).astype(dtype)
    blocks = rng.standard_normal((n_stages, n // 2, 4)).astype(dtype)
    pairs = np.array(
        [rng.permutation(n).reshape(n // 2, 2) for _ in range(n_stages)], dtype=np.int32
    ).reshape(n_stages, n // 2, 2)
    return x, grad_y, blocks, pairs


def close(actual, expected, dtype):
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(spm_inputs())
def test_forward_matches_reference(inputs):
    x, _, blocks, pairs = inputs
    out = spm.spm_forward(x, blocks, pairs)
    assert out.dtype == x.dtype and out.shape == x.shape
    close(out, spm.spm_forward_reference(x, blocks, pairs), x.dtype.type)


@settings(max_examples=60, deadline=None)
@given(spm_inputs())
def test_backward_matches_reference(inputs):
    x, grad_y, blocks, pairs = inputs
    grad_x, grad_blocks = spm.spm_backward(grad_y, x, blocks, pairs)
    ref_x, ref_blocks = spm.spm_backward_reference(grad_y, x, blocks, pairs)
    assert grad_blocks.shape == blocks.shape and grad_blocks.dtype == x.dtype
    close(grad_x, ref_x, x.dtype.type)
    scale = max(1.0, float(np.abs(ref_blocks).max(initial=0.0)))
    close(grad_blocks / scale, ref_blocks / scale, x.dtype.type)


@settings(max_examples=30, deadline=None)
@given(spm_inputs(max_log_n=3))
def test_numpy_formulations_match_reference(inputs):
    x, grad_y, blocks, pairs = inputs
    close(
        spm._numpy_forward(x, blocks, pairs),
        spm.spm_forward_reference(x, blocks, pairs),
        x.dtype.type,
    )
    ours = spm._numpy_backward(grad_y, x, blocks, pairs)
    theirs = spm.spm_backward_reference(grad_y, x, blocks, pairs)
    for a, b in zip(ours, theirs, strict=True):
        close(a, b, x.dtype.type)


def test_overlapping_pairs_follow_the_sequential_order():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4))
    blocks = rng.standard_normal((2, 2, 4))
    pairs = np.array([[[0, 1], [1, 1]], [[3, 0], [0, 2]]])
    np.testing.assert_allclose(
        spm.spm_forward(x, blocks, pairs), spm.spm_forward_reference(x, blocks, pairs)
    )
    for a, b in zip(
        spm.spm_backward(x, x, blocks, pairs),
        spm.spm_backward_reference(x, x, blocks, pairs),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_empty_batch_and_zero_stages():
    blocks = np.ones((3, 2, 4))
    pairs = np.tile(np.array([[0, 1], [2, 3]]), (3, 1, 1))
    x = np.empty((0, 4))
    assert spm.spm_forward(x, blocks, pairs).shape == (0, 4)
    grad_x, grad_blocks = spm.spm_backward(x, x, blocks, pairs)
    assert grad_x.shape == (0, 4)
    np.testing.assert_array_equal(grad_blocks, 0.0)
    x = np.arange(8.0).reshape(2, 4)
    no_stages = (np.empty((0, 2, 4)), np.empty((0, 2, 2), dtype=np.int32))
    np.testing.assert_array_equal(spm.spm_forward(x, *no_stages), x)
    grad_x, grad_blocks = spm.spm_backward(x, x, *no_stages)
    np.testing.assert_array_equal(grad_x, x)
    assert grad_blocks.shape == (0, 2, 4)


def test_single_pair_is_a_2x2_product():
    block = np.array([[[2.0, 3.0, 5.0, 7.0]]])
    x = np.array([[1.0, 10.0]])
    out = spm.spm_forward(x, block, np.array([[[0, 1]]]))
    np.testing.assert_array_equal(out, [[32.0, 75.0]])
    grad_x, grad_block = spm.spm_backward(
        np.array([[1.0, 0.0]]), x, block, np.array([[[0, 1]]])
    )
    np.testing.assert_array_equal(grad_x, [[2.0, 3.0]])
    np.testing.assert_array_equal(grad_block, [[[1.0, 10.0, 0.0, 0.0]]])


def test_nan_propagates_like_the_reference():
    x = np.array([[np.nan, 1.0, 2.0, 3.0]])
    blocks = np.ones((1, 2, 4))
    pairs = np.array([[[0, 1], [2, 3]]])
    out = spm.spm_forward(x, blocks, pairs)
    np.testing.assert_array_equal(np.isnan(out), [[True, True, False, False]])
    np.testing.assert_array_equal(out, spm.spm_forward_reference(x, blocks, pairs))
    grad_x, grad_blocks = spm.spm_backward(np.ones_like(x), x, blocks, pairs)
    ref_x, ref_blocks = spm.spm_backward_reference(np.ones_like(x), x, blocks, pairs)
    np.testing.assert_array_equal(grad_x, ref_x)
    np.testing.assert_array_equal(grad_blocks, ref_blocks)


@pytest.mark.parametrize(
    ("x", "blocks", "pairs", "error", "match"),
    [
        (
            np.ones((2, 3)),
            np.ones((1, 1, 4)),
            np.zeros((1, 1, 2), int),
            ValueError,
            "even number of columns",
        ),
        (
            np.ones((2, 4), int),
            np.ones((1, 2, 4)),
            np.zeros((1, 2, 2), int),
            TypeError,
            "float32 or float64",
        ),
        (
            np.ones((2, 4)),
            np.ones((1, 2, 4)),
            np.full((1, 2, 2), 4),
            ValueError,
            "index columns 0..3",
        ),
        (
            np.ones((2, 4)),
            np.ones((1, 2, 4)),
            np.full((1, 2, 2), -1),
            ValueError,
            "index columns",
        ),
        (
            np.ones((2, 4)),
            np.ones((2, 2, 4)),
            np.zeros((1, 2, 2), int),
            ValueError,
            "blocks must have shape",
        ),
        (
            np.ones((2, 4)),
            np.ones((1, 2, 4)),
            np.zeros((1, 2, 2)),
            TypeError,
            "pairs must hold integers",
        ),
        (
            np.ones(4),
            np.ones((1, 2, 4)),
            np.zeros((1, 2, 2), int),
            ValueError,
            "x must have 2 dimension",
        ),
    ],
)
def test_bad_inputs_are_rejected(x, blocks, pairs, error, match):
    with pytest.raises(error, match=match):
        spm.spm_forward(x, blocks, pairs)
    with pytest.raises(error, match=match):
        spm.spm_backward(np.ones(np.shape(x)), x, blocks, pairs)


def test_backward_rejects_a_gradient_of_the_wrong_shape():
    with pytest.raises(ValueError, match="grad_y must have shape"):
        spm.spm_backward(
            np.ones((3, 4)),
            np.ones((2, 4)),
            np.ones((1, 2, 4)),
            np.array([[[0, 1], [2, 3]]]),
        )


def test_benchmarks_run_and_agree():
    for case in spm.benchmarks():
        ours, numpy_result = case.kernel(), case.numpy()
        if isinstance(ours, tuple):
            for a, b in zip(ours, numpy_result, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
        else:
            np.testing.assert_allclose(ours, numpy_result, rtol=1e-5, atol=1e-5)
        assert case.bytes_moved > 0

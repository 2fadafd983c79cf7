"""The federated MF kernels agree with their plain-Python references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import BenchCase
from paperlab.kernels.federated_mf import (
    benchmarks,
    federated_round,
    federated_round_reference,
    local_mf_sgd,
    local_mf_sgd_reference,
)


@st.composite
def rounds(draw):
    n_users = draw(st.integers(1, 5))
    n_items = draw(st.integers(1, 8))
    dim = draw(st.integers(1, 5))
    n_epochs = draw(st.integers(0, 3))
    n_neg = draw(st.integers(0, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    counts = rng.integers(0, 4, size=n_users)
    pos_items = rng.integers(0, n_items, size=int(counts.sum()))
    return dict(
        user_mat=rng.normal(0.0, 1.0, size=(n_users, dim)),
        item_mat=rng.normal(0.0, 1.0, size=(n_items, dim)),
        pos_ptr=np.concatenate(([0], np.cumsum(counts))),
        pos_items=pos_items,
        neg_items=rng.integers(0, n_items, size=(n_epochs, pos_items.size, n_neg)),
        lr=draw(st.floats(1e-3, 0.5)),
        reg=draw(st.sampled_from([0.0, 1e-3, 0.1])),
    )


@settings(max_examples=60, deadline=None)
@given(rounds())
def test_round_matches_reference(args):
    users, delta = federated_round(**args)
    ref_users, ref_delta = federated_round_reference(**args)
    np.testing.assert_allclose(users, ref_users, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(delta, ref_delta, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(rounds())
def test_round_is_sum_of_clients(args):
    _, delta = federated_round(**args)
    total = np.zeros_like(args["item_mat"])
    ptr = args["pos_ptr"]
    for u in range(args["user_mat"].shape[0]):
        sl = slice(ptr[u], ptr[u + 1])
        p, d = local_mf_sgd(
            args["user_mat"][u],
            args["item_mat"],
            args["pos_items"][sl],
            args["neg_items"][:, sl],
            args["lr"],
            args["reg"],
        )
        ref_p, ref_d = local_mf_sgd_reference(
            args["user_mat"][u],
            args["item_mat"],
            args["pos_items"][sl],
            args["neg_items"][:, sl],
            args["lr"],
            args["reg"],
        )
        np.testing.assert_allclose(p, ref_p, rtol=1e-12, atol=1e-12)
        total += d
    np.testing.assert_allclose(delta, total, rtol=1e-10, atol=1e-12)


def test_one_step_by_hand():
    p, q = np.array([0.5, -1.0]), np.array([[2.0, 1.0]])
    new_p, delta = local_mf_sgd(p, q, [0], np.zeros((1, 1, 0), dtype=int), 0.1, 0.0)
    g = 1.0 / (1.0 + np.exp(-(p @ q[0]))) - 1.0  # positive: label 1
    np.testing.assert_allclose(new_p, p - 0.1 * g * q[0])
    np.testing.assert_allclose(delta[0], -0.1 * g * p)


def test_empty_client_and_untouched_rows():
    item_mat = np.ones((4, 3))
    p, delta = local_mf_sgd(
        np.ones(3), item_mat, [], np.zeros((2, 0, 1), dtype=int), 0.1
    )
    np.testing.assert_array_equal(p, np.ones(3))
    assert not delta.any()
    _, delta = local_mf_sgd(np.ones(3), item_mat, [1], [[[2]]], 0.1)
    assert not delta[[0, 3]].any() and delta[[1, 2]].all()
    users, total = federated_round(
        np.ones((0, 3)), item_mat, [0], [], np.zeros((1, 0, 2), dtype=int), 0.1
    )
    assert users.shape == (0, 3) and not total.any()


def test_inputs_not_modified():
    rng = np.random.default_rng(0)
    user_mat, item_mat = rng.normal(size=(2, 4)), rng.normal(size=(5, 4))
    before = user_mat.copy(), item_mat.copy()
    federated_round(
        user_mat, item_mat, [0, 2, 3], [0, 1, 4], rng.integers(0, 5, (1, 3, 2)), 0.1
    )
    np.testing.assert_array_equal(user_mat, before[0])
    np.testing.assert_array_equal(item_mat, before[1])


def test_bad_inputs():
    q = np.zeros((3, 2))
    no_neg = np.zeros((1, 1, 0), dtype=int)
    with pytest.raises(ValueError, match="item ids"):
        local_mf_sgd(np.zeros(2), q, [3], no_neg, 0.1)
    with pytest.raises(TypeError, match="integer item ids"):
        local_mf_sgd(np.zeros(2), q, [0.5], no_neg, 0.1)
    with pytest.raises(ValueError, match="user_vec"):
        local_mf_sgd(np.zeros(3), q, [0], no_neg, 0.1)
    with pytest.raises(ValueError, match="neg must have shape"):
        local_mf_sgd(np.zeros(2), q, [0, 1], no_neg, 0.1)
    with pytest.raises(ValueError, match="lr"):
        local_mf_sgd(np.zeros(2), q, [0], no_neg, 0.0)
    with pytest.raises(ValueError, match="finite"):
        local_mf_sgd(np.array([np.nan, 0.0]), q, [0], no_neg, 0.1)
    with pytest.raises(ValueError, match="CSR"):
        federated_round(np.zeros((1, 2)), q, [0, 2], [0], no_neg, 0.1)
    with pytest.raises(ValueError, match="columns"):
        federated_round(np.zeros((1, 3)), q, [0, 1], [0], no_neg, 0.1)


def test_benchmarks_registered():
    cases = benchmarks()
    assert cases and all(isinstance(c, BenchCase) for c in cases)
    assert cases[0].name == "federated_round"

"""The slate reward kernel against its plain-Python and NumPy references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import slate_sim as k

SETTINGS = settings(max_examples=40, deadline=None)


@SETTINGS
@given(
    n_slates=st.integers(0, 30),
    n_slots=st.integers(0, 7),
    n_topics=st.integers(1, 5),
    discount=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_kernel_matches_references(n_slates, n_slots, n_topics, discount, seed):
    args = list(k.random_slate_inputs(n_slates, n_slots, 7, n_topics, 12, seed))
    args[5] = discount
    got = k.slate_rewards(*args)
    assert got.dtype == np.float32 and got.shape == (n_slates,)
    np.testing.assert_allclose(got, k.slate_rewards_reference(*args), rtol=1e-5)
    np.testing.assert_allclose(got, k.slate_rewards_numpy(*args), rtol=1e-5, atol=1e-6)


def test_hand_computed_slate():
    slates = np.array([[0, 1, 2]], dtype=np.int32)
    pref = np.array([[0.5, 0.25]], dtype=np.float32)
    topic = np.array([0, 0, 1], dtype=np.int32)
    quality = np.array([1.0, 0.8, 0.4], dtype=np.float32)
    got = k.slate_rewards(slates, pref, np.zeros(1, np.int32), topic, quality, 0.6)
    assert got[0] == pytest.approx(0.5 + 0.5 * 0.8 * 0.6 + 0.25 * 0.4)


def test_edge_cases_empty_single_and_nan():
    args = list(k.random_slate_inputs(0, 5))
    assert k.slate_rewards(*args).shape == (0,)
    args = list(k.random_slate_inputs(1, 1))
    single = k.slate_rewards(*args)
    item, user = args[0][0, 0], args[2][0]
    assert single[0] == pytest.approx(args[1][user, args[3][item]] * args[4][item])
    args = list(k.random_slate_inputs(4, 3))
    args[1] = args[1].copy()
    args[1][args[2][0], :] = np.nan  # a user with unknown preferences
    got = k.slate_rewards(*args)
    ref = k.slate_rewards_reference(*args)
    assert np.isnan(got[0]) and np.array_equal(np.isnan(got), np.isnan(ref))


def test_discount_one_ignores_repeats_and_zero_keeps_first_only():
    slates = np.array([[3, 3, 3]], dtype=np.int32)
    pref = np.ones((1, 1), dtype=np.float32)
    topic = np.zeros(4, dtype=np.int32)
    quality = np.full(4, 0.5, dtype=np.float32)
    users = np.zeros(1, np.int32)
    assert k.slate_rewards(slates, pref, users, topic, quality, 1.0)[0] == 1.5
    assert k.slate_rewards(slates, pref, users, topic, quality, 0.0)[0] == 0.5


def test_benchmarks_cases():
    (case,) = k.benchmarks()
    assert case.name == "slate_rewards" and case.numpy is not None

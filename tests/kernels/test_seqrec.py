"""Property tests: the session sampler kernel against its plain-Python reference."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels.seqrec import (
    random_session_inputs,
    sample_sessions,
    sample_sessions_reference,
)


@settings(max_examples=40, deadline=None)
@given(
    n_users=st.integers(0, 6),
    seq_len=st.integers(1, 8),
    n_cats=st.integers(1, 5),
    extra_items=st.integers(0, 12),
    n_spans=st.integers(1, 3),
    seed=st.integers(0, 10_000),
)
def test_kernel_matches_reference(n_users, seq_len, n_cats, extra_items, n_spans, seed):
    args = random_session_inputs(
        n_users, seq_len, n_cats, n_cats + extra_items, n_spans, seed
    )
    items, cats = sample_sessions(*args)
    ref_items, ref_cats = sample_sessions_reference(*args)
    assert np.array_equal(items, ref_items)
    assert np.array_equal(cats, ref_cats)


def test_items_belong_to_the_chain_category_without_noise():
    args = list(random_session_inputs(50, 10, 4, 30, 2, seed=1))
    args[6] = 0.0
    items, cats = sample_sessions(*args)
    cat_items, offsets = args[4], args[3]
    item_cat = np.empty(len(cat_items), dtype=int)
    for c in range(len(offsets) - 1):
        item_cat[cat_items[offsets[c] : offsets[c + 1]]] = c
    assert np.array_equal(item_cat[items], cats)


def test_chain_follows_a_deterministic_transition():
    args = list(random_session_inputs(5, 6, 3, 9, 1, seed=2))
    cdf = np.zeros((1, 3, 3))
    for c in range(3):
        cdf[0, c, (c + 1) % 3 :] = 1.0
    args[0] = cdf
    _, cats = sample_sessions(*args)
    assert np.array_equal(np.diff(cats, axis=1) % 3, np.ones((5, 5)))

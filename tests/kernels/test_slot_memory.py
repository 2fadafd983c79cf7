"""Slot memory scan: the Numba kernel against its plain-Python reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import slot_memory as sm


def _inputs(rng, n_tokens, d, m, dtype=np.float64):
    keys = rng.standard_normal((n_tokens, d)).astype(dtype)
    values = rng.standard_normal((n_tokens, d)).astype(dtype)
    mk = rng.standard_normal((m, d)).astype(dtype)
    mv = rng.standard_normal((m, d)).astype(dtype)
    return keys, values, mk, mv


@settings(max_examples=40, deadline=None)
@given(
    n_tokens=st.integers(0, 12),
    d=st.integers(1, 6),
    m=st.integers(1, 5),
    eta=st.floats(0.0, 1.5),
    gamma=st.floats(0.0, 1.0),
    inv_t=st.floats(0.0, 8.0),
    error_term=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_kernel_matches_reference(n_tokens, d, m, eta, gamma, inv_t, error_term, seed):
    args = _inputs(np.random.default_rng(seed), n_tokens, d, m)
    got = sm.slot_memory_scan(*args, eta, gamma, inv_t, error_term)
    want = sm.slot_memory_scan_reference(*args, eta, gamma, inv_t, error_term)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_float64(dtype):
    args = _inputs(np.random.default_rng(1), 20, 8, 4, dtype)
    got = sm.slot_memory_scan(*args, 0.5, 0.99, 3.0)
    want = sm.slot_memory_scan_reference(*args, 0.5, 0.99, 3.0)
    assert got[0].dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def test_empty_stream_returns_a_copy_of_the_memory():
    keys, values, mk, mv = _inputs(np.random.default_rng(2), 0, 4, 3)
    out_k, out_v = sm.slot_memory_scan(keys, values, mk, mv, 0.5, 0.9, 1.0)
    np.testing.assert_array_equal(out_k, mk)
    np.testing.assert_array_equal(out_v, mv)
    assert out_k is not mk


def test_one_token_by_hand():
    rng = np.random.default_rng(3)
    keys, values, mk, mv = _inputs(rng, 1, 5, 3)
    k, v = keys[0], values[0]
    s = np.exp(2.0 * mk @ k)
    s /= s.sum()
    mk1 = 0.9 * mk + 0.4 * np.outer(s, k - mk.T @ s)
    s1 = np.exp(2.0 * mk1 @ k)
    s1 /= s1.sum()
    mv1 = 0.9 * mv + 0.4 * np.outer(s1, v - mv.T @ s1)
    got_k, got_v = sm.slot_memory_scan(keys, values, mk, mv, 0.4, 0.9, 2.0)
    np.testing.assert_allclose(got_k, mk1, rtol=1e-12)
    np.testing.assert_allclose(got_v, mv1, rtol=1e-12)


def test_inputs_not_modified():
    args = _inputs(np.random.default_rng(4), 6, 3, 2)
    before = [a.copy() for a in args]
    sm.slot_memory_scan(*args, 0.5, 0.9, 1.0)
    for a, b in zip(args, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_nan_propagates_like_the_reference():
    keys, values, mk, mv = _inputs(np.random.default_rng(5), 4, 3, 2)
    values[1, 0] = np.nan
    got = sm.slot_memory_scan(keys, values, mk, mv, 0.5, 0.9, 1.0)
    want = sm.slot_memory_scan_reference(keys, values, mk, mv, 0.5, 0.9, 1.0)
    assert np.isnan(got[1]).any()
    np.testing.assert_array_equal(np.isnan(got[1]), np.isnan(want[1]))
    np.testing.assert_allclose(got[0], want[0])  # keys stay finite


def test_numpy_formulation_agrees():
    case = sm.benchmarks()[0]
    got, want = case.kernel(), case.numpy()
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_bad_inputs():
    keys, values, mk, mv = _inputs(np.random.default_rng(6), 3, 4, 2)
    with pytest.raises(TypeError, match="keys"):
        sm.slot_memory_scan(keys.astype(int), values, mk, mv, 0.5, 0.9, 1.0)
    with pytest.raises(ValueError, match="values"):
        sm.slot_memory_scan(keys, values[:2], mk, mv, 0.5, 0.9, 1.0)
    with pytest.raises(ValueError, match="key_memory"):
        sm.slot_memory_scan(keys, values, mk[:, :3], mv, 0.5, 0.9, 1.0)
    with pytest.raises(ValueError, match="at least one slot"):
        sm.slot_memory_scan(keys, values, mk[:0], mv[:0], 0.5, 0.9, 1.0)
    with pytest.raises(ValueError, match="value_memory"):
        sm.slot_memory_scan(keys, values, mk, mv[:1], 0.5, 0.9, 1.0)
    with pytest.raises(ValueError, match="gamma"):
        sm.slot_memory_scan(keys, values, mk, mv, 0.5, 1.5, 1.0)
    with pytest.raises(ValueError, match="eta"):
        sm.slot_memory_scan(keys, values, mk, mv, -0.5, 0.9, 1.0)
    with pytest.raises(TypeError, match="error_term"):
        sm.slot_memory_scan(keys, values, mk, mv, 0.5, 0.9, 1.0, error_term=1)

"""The OMWU self-play kernel agrees with its plain-Python reference and NumPy form."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import BenchCase
from paperlab.kernels.omwu import (
    benchmarks,
    omwu_run,
    omwu_run_numpy,
    omwu_run_reference,
)


@st.composite
def runs(draw):
    n = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return dict(
        P=rng.uniform(0.0, 1.0, size=(n, n)),
        eta=draw(st.floats(0.01, 3.0)),
        n_iters=draw(st.integers(0, 40)),
        tau=draw(st.sampled_from([0.0, 0.05, 0.5])),
        optimistic=draw(st.booleans()),
        log_pi0=rng.uniform(-20.0, 5.0, size=n),
    )


@settings(max_examples=60, deadline=None)
@given(runs())
def test_kernel_matches_reference(args):
    gaps, log_pi = omwu_run(**args)
    ref_gaps, ref_log_pi = omwu_run_reference(**args)
    np.testing.assert_allclose(gaps, ref_gaps, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(log_pi, ref_log_pi, rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(runs())
def test_kernel_matches_numpy_form(args):
    gaps, log_pi = omwu_run(**args)
    np_gaps, np_log_pi = omwu_run_numpy(**args)
    np.testing.assert_allclose(gaps, np_gaps, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(log_pi, np_log_pi, rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(runs())
def test_iterates_are_distributions(args):
    _, log_pi = omwu_run(**args)
    np.testing.assert_allclose(np.exp(log_pi).sum(axis=1), 1.0, rtol=1e-12)


def test_one_action_stays_put():
    P = np.array([[0.5]])
    for fn in (omwu_run, omwu_run_reference, omwu_run_numpy):
        gaps, log_pi = fn(P, 1.0, 5)
        np.testing.assert_array_equal(gaps, np.zeros(6))
        np.testing.assert_array_equal(log_pi, np.zeros((6, 1)))


def test_zero_iterations_records_the_start_only():
    P = np.array([[0.5, 0.9], [0.1, 0.5]])
    gaps, log_pi = omwu_run(P, 1.0, 0, log_pi0=np.array([0.0, np.log(3.0)]))
    assert gaps.shape == (1,) and log_pi.shape == (1, 2)
    np.testing.assert_allclose(np.exp(log_pi[0]), [0.25, 0.75])
    np.testing.assert_allclose(gaps[0], 2 * max(0.5 * 0.25 + 0.9 * 0.75, 0.4) - 1)


def test_tiny_probabilities_stay_finite():
    P = np.array([[0.5, 0.9, 0.2], [0.1, 0.5, 0.7], [0.8, 0.3, 0.5]])
    log_pi0 = np.array([0.0, -700.0, -650.0])
    gaps, log_pi = omwu_run(P, 2.0, 200, log_pi0=log_pi0)
    ref_gaps, ref_log_pi = omwu_run_reference(P, 2.0, 200, log_pi0=log_pi0)
    assert np.all(np.isfinite(log_pi)) and np.all(np.isfinite(gaps))
    np.testing.assert_allclose(log_pi, ref_log_pi, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("fn", [omwu_run, omwu_run_reference, omwu_run_numpy])
def test_bad_inputs_raise(fn):
    P = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match="at least 1 element"):
        fn(np.empty((0, 0)), 1.0, 3)
    with pytest.raises(ValueError, match="P must be square"):
        fn(np.full((2, 3), 0.5), 1.0, 3)
    with pytest.raises(ValueError, match="P must contain only finite"):
        fn(np.array([[0.5, np.nan], [0.5, 0.5]]), 1.0, 3)
    with pytest.raises(ValueError, match="log_pi0 must contain only finite"):
        fn(P, 1.0, 3, log_pi0=np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="log_pi0 must have shape"):
        fn(P, 1.0, 3, log_pi0=np.zeros(3))
    with pytest.raises(ValueError, match="eta must be > 0"):
        fn(P, 0.0, 3)
    with pytest.raises(ValueError, match="tau must be >= 0"):
        fn(P, 1.0, 3, tau=-0.1)
    with pytest.raises(TypeError, match="n_iters must be an integer"):
        fn(P, 1.0, 3.5)


def test_benchmarks_are_registered():
    cases = benchmarks()
    assert [c.name for c in cases] == ["omwu_run"]
    assert all(isinstance(c, BenchCase) and c.numpy is not None for c in cases)

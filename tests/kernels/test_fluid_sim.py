"""The fluid-queue kernel against its plain-Python reference and a closed form."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from paperlab.kernels import fluid_sim as k

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def queue_inputs(draw, max_steps=60):
    """Random demand and replica counts (zero replicas included), mu, buffer and
    initial backlog."""
    n_steps = draw(st.integers(min_value=0, max_value=max_steps))
    n_clusters = draw(st.integers(min_value=1, max_value=4))
    values = st.floats(min_value=0.0, max_value=500.0)
    demand = draw(arrays(np.float64, (n_steps, n_clusters), elements=values))
    capacity = draw(
        arrays(np.float64, (n_steps, n_clusters), elements=st.integers(0, 8))
    )
    mu = draw(st.floats(min_value=0.5, max_value=80.0))
    buffer = draw(st.one_of(st.just(math.inf), st.floats(0.0, 2000.0)))
    initial = draw(arrays(np.float64, (n_clusters,), elements=values))
    return demand, capacity, mu, buffer, initial


@SETTINGS
@given(queue_inputs())
def test_kernel_matches_reference(inputs):
    got = k.simulate_fluid(*inputs)
    want = k.simulate_fluid_reference(*inputs)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


@SETTINGS
@given(queue_inputs())
def test_requests_are_conserved_and_bounded(inputs):
    demand, capacity, mu, buffer, initial = inputs
    backlog, wait, drops = k.simulate_fluid(*inputs)
    if demand.shape[0] == 0:
        return
    # what was there plus what came = what was served + what waits + what dropped
    previous = np.vstack((initial, backlog[:-1]))
    served = previous + demand - backlog - drops
    scale = 1.0 + demand.max() + initial.max()
    assert np.all(served >= -1e-9 * scale)
    assert np.all(served <= capacity * mu + 1e-9 * scale)
    assert np.all(backlog >= 0) and np.all(drops >= 0)
    assert np.all(backlog <= buffer)
    # the wait is the backlog over the service rate (infinite with no replicas)
    rate = capacity * mu
    ok = rate > 0
    np.testing.assert_allclose(wait[ok], backlog[ok] / rate[ok])
    stuck = (rate == 0) & (backlog > 0)
    assert np.all(np.isinf(wait[stuck]))


@SETTINGS
@given(queue_inputs())
def test_unbounded_backlog_matches_lindley_closed_form(inputs):
    demand, capacity, mu, _, initial = inputs
    backlog, _, drops = k.simulate_fluid(demand, capacity, mu, math.inf, initial)
    closed = k.simulate_fluid_numpy(demand, capacity, mu, initial)
    scale = 1.0 + np.abs(demand - capacity * mu).sum() + initial.sum()
    np.testing.assert_allclose(backlog, closed, rtol=0, atol=1e-9 * scale)
    assert not drops.any()


def test_empty_and_single_interval():
    empty = np.zeros((0, 2))
    out = k.simulate_fluid(empty, empty, 50.0, math.inf, np.zeros(2))
    assert all(a.shape == (0, 2) for a in out)
    backlog, wait, drops = k.simulate_fluid(
        np.array([[130.0]]), np.array([[2.0]]), 50.0, 20.0, np.array([5.0])
    )
    # 5 waiting + 130 arriving - 100 served = 35, of which 15 overflow the buffer
    assert backlog.tolist() == [[20.0]] and drops.tolist() == [[15.0]]
    assert wait.tolist() == [[0.2]]


def test_nan_demand_propagates_like_the_reference():
    demand = np.array([[10.0], [np.nan], [10.0]])
    capacity = np.ones((3, 1))
    got = k.simulate_fluid(demand, capacity, 5.0, math.inf, np.zeros(1))
    want = k.simulate_fluid_reference(demand, capacity, 5.0, math.inf, np.zeros(1))
    assert got[0][0, 0] == 5.0
    assert np.isnan(got[0][1:]).all() and np.isnan(got[1][1:]).all()
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_zero_capacity_holds_everything():
    backlog, wait, _ = k.simulate_fluid(
        np.full((3, 1), 4.0), np.zeros((3, 1)), 10.0, math.inf, np.zeros(1)
    )
    assert backlog[:, 0].tolist() == [4.0, 8.0, 12.0]
    assert np.isinf(wait).all()


def test_benchmark_case():
    (case,) = k.benchmarks()
    assert case.name == "simulate_fluid" and case.bytes_moved > 0
    small = np.ones((4, 3))
    backlog, _, _ = k.simulate_fluid(small, small, 2.0, math.inf, np.zeros(3))
    assert backlog.sum() == pytest.approx(0.0)

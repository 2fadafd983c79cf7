"""The exhaustive allocation search against its plain-Python reference."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from paperlab.kernels import crms as k

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def instances(draw, special=False):
    """A cost table of half-integers (sums are exact, so ties are reproducible),
    optionally with inf and NaN entries, and two budgets."""
    n_apps = draw(st.integers(1, 3))
    n_cpu = draw(st.integers(0, 5))
    n_mem = draw(st.integers(0, 4))
    values = st.integers(0, 8).map(lambda v: v / 2)
    if special:
        values = st.one_of(values, st.sampled_from([np.inf, np.nan]))
    table = draw(arrays(np.float64, (n_apps, n_cpu, n_mem), elements=values))
    return table, draw(st.integers(0, 9)), draw(st.integers(0, 7))


def brute_force(table, cpu_units, mem_units):
    """An independent check: every product of choices, filtered by the budgets."""
    n_apps, n_cpu, n_mem = table.shape
    choices = list(itertools.product(range(n_cpu), range(n_mem)))
    best, count = np.inf, 0
    for combo in itertools.product(choices, repeat=n_apps):
        if sum(a + 1 for a, _ in combo) > cpu_units:
            continue
        if sum(b + 1 for _, b in combo) > mem_units:
            continue
        count += 1
        cost = sum(table[i, a, b] for i, (a, b) in enumerate(combo))
        if cost < best:
            best = cost
    return best, count


def assert_same(got, ref):
    assert got[0] == ref[0] or (np.isinf(got[0]) and np.isinf(ref[0]))
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_array_equal(got[2], ref[2])
    assert got[3] == ref[3]


@SETTINGS
@given(instance=instances())
def test_kernel_matches_reference_and_brute_force(instance):
    table, cpu_units, mem_units = instance
    got = k.exhaustive_search(table, cpu_units, mem_units)
    assert_same(got, k.exhaustive_search_reference(table, cpu_units, mem_units))
    best, count = brute_force(table, cpu_units, mem_units)
    assert got[3] == count
    assert got[0] == best or (np.isinf(got[0]) and np.isinf(best))
    if np.isfinite(got[0]):
        picked = sum(
            table[i, a, b] for i, (a, b) in enumerate(zip(got[1], got[2], strict=True))
        )
        assert picked == got[0]
        assert np.sum(got[1] + 1) <= cpu_units and np.sum(got[2] + 1) <= mem_units


@SETTINGS
@given(instance=instances(special=True))
def test_kernel_matches_reference_with_inf_and_nan(instance):
    table, cpu_units, mem_units = instance
    got = k.exhaustive_search(table, cpu_units, mem_units)
    assert_same(got, k.exhaustive_search_reference(table, cpu_units, mem_units))
    assert not np.isnan(got[0])


def test_edge_cases():
    # one container, one grid point
    got = k.exhaustive_search(np.array([[[2.5]]]), 1, 1)
    assert got[0] == 2.5 and got[1].tolist() == [0] and got[3] == 1
    # budget too small for one unit each: nothing is feasible
    got = k.exhaustive_search(np.zeros((3, 4, 4)), 2, 9)
    assert np.isinf(got[0]) and got[1].tolist() == [-1, -1, -1] and got[3] == 0
    # empty grid
    got = k.exhaustive_search(np.zeros((2, 0, 3)), 5, 5)
    assert np.isinf(got[0]) and got[3] == 0
    # every cost NaN: scored but never chosen
    got = k.exhaustive_search(np.full((2, 2, 2), np.nan), 4, 4)
    assert np.isinf(got[0]) and got[3] == 16 and got[1].tolist() == [-1, -1]


def test_ties_keep_the_first_allocation():
    got = k.exhaustive_search(np.ones((2, 3, 3)), 6, 6)
    assert got[1].tolist() == [0, 0] and got[2].tolist() == [0, 0]


def test_numpy_formulation_agrees():
    rng = np.random.default_rng(3)
    table = rng.uniform(0, 1, size=(3, 6, 5))
    assert k.exhaustive_search_numpy(table, 8, 7) == pytest.approx(
        k.exhaustive_search(table, 8, 7)[0]
    )
    with pytest.raises(ValueError, match="3 containers"):
        k.exhaustive_search_numpy(table[:2], 8, 7)


def test_benchmarks_are_registered():
    (case,) = k.benchmarks()
    assert case.name == "exhaustive_search" and case.numpy is not None
    assert case.kernel()[3] == 1_133_440

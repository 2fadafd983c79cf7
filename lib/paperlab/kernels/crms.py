"""Exhaustive search over discrete container allocations (the CRMS chapter's baseline).

The CRMS chapter (Zhang et al., arXiv 2512.23952) gives each of ``A`` containers a
whole number of CPU units and memory units from a shared budget. Its exact baseline
scores every feasible allocation: an exponential number of them, which is why the paper
needs a polynomial-time scheme. The objective is separable over containers, so each
container's cost at every grid point is computed once into a table (cheap NumPy), and
the search itself only adds table entries, one allocation at a time. That enumeration,
with its budget pruning, is a loop NumPy cannot express for a general ``A``.

Conventions
-----------
``table[i, a, b]`` is container ``i``'s cost with ``a + 1`` CPU units and ``b + 1``
memory units (every container gets at least one unit of each). ``inf`` marks a grid
point that is not allowed (an unstable queue); ``NaN`` entries are never chosen. An
allocation is feasible when its CPU units sum to at most ``cpu_units`` and its memory
units to at most ``mem_units``. Allocations are enumerated in lexicographic order of
``(a_0, b_0, a_1, b_1, ...)``; ties keep the first, so the kernel and the reference
return the same allocation.
"""

from __future__ import annotations

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = [
    "exhaustive_search",
    "exhaustive_search_reference",
    "exhaustive_search_numpy",
    "benchmarks",
]


@numba.njit(cache=True)
def _search_rest(table, first, start_cost, cpu_left, mem_left, cpu_idx, mem_idx):
    """Best completion of containers ``first..A-1`` within the budgets left.

    Containers ``first..A-2`` are walked like an odometer over the digits
    ``(a_first, b_first, a_first+1, ...)``: increment the last digit, reset the later
    ones to their minimum, and carry when the budget would be exceeded (sums only grow
    with a digit, so no larger value of it fits). For each setting, the last
    container's choices form a rectangle that two plain loops scan. The best digits go
    to ``cpu_idx[first:]`` and ``mem_idx[first:]``; costs add up left to right from
    ``start_cost``, as in the reference.

    Returns ``(best total cost, number of allocations scored)``.
    """
    n_apps, n_cpu, n_mem = table.shape
    k = n_apps - first
    if k == 0:
        return start_cost, 1
    if k > cpu_left or k > mem_left or n_cpu == 0 or n_mem == 0:
        return np.inf, 0
    last = n_apps - 1
    n_digits = 2 * (k - 1)
    digits = np.zeros(n_digits, dtype=np.int64)
    best = np.inf
    count = 0
    while True:
        partial = start_cost
        used_cpu = 0
        used_mem = 0
        for j in range(k - 1):
            partial += table[first + j, digits[2 * j], digits[2 * j + 1]]
            used_cpu += digits[2 * j] + 1
            used_mem += digits[2 * j + 1] + 1
        n_a = min(n_cpu, cpu_left - used_cpu)
        n_b = min(n_mem, mem_left - used_mem)
        count += n_a * n_b
        for a in range(n_a):
            for b in range(n_b):
                cost = partial + table[last, a, b]
                if cost < best:
                    best = cost
                    for j in range(k - 1):
                        cpu_idx[first + j] = digits[2 * j]
                        mem_idx[first + j] = digits[2 * j + 1]
                    cpu_idx[last] = a
                    mem_idx[last] = b
        p = n_digits - 1
        while p >= 0:
            digits[p] += 1
            for q in range(p + 1, n_digits):
                digits[q] = 0
            used_cpu = 1  # the last container's minimum
            used_mem = 1
            for j in range(k - 1):
                used_cpu += digits[2 * j] + 1
                used_mem += digits[2 * j + 1] + 1
            limit = n_cpu if p % 2 == 0 else n_mem
            if digits[p] < limit and used_cpu <= cpu_left and used_mem <= mem_left:
                break
            digits[p] = 0
            p -= 1
        if p < 0:
            return best, count


@numba.njit(cache=True)
def exhaustive_search(table, cpu_units, mem_units):
    """Score every feasible allocation; return the cheapest.

    For each ``(CPU, memory)`` choice of the first container, the other containers'
    allocations in the budget left are enumerated by :func:`_search_rest`. (A
    ``prange`` over the first container's choices did not help reliably on two shared
    cores, so the loop is serial.)

    Parameters
    ----------
    table : ndarray of float64, shape (A, n_cpu, n_mem)
        Per-container cost with ``a + 1`` CPU and ``b + 1`` memory units; ``A >= 1``.
    cpu_units, mem_units : int
        Budgets in units.

    Returns
    -------
    best : float
        The lowest total cost (``inf`` if no allocation has a finite cost).
    cpu_idx, mem_idx : ndarray of int64, shape (A,)
        Unit indices (units minus one) of the best allocation; ``-1`` when none.
    count : int
        Feasible allocations scored.
    """
    n_apps, n_cpu, n_mem = table.shape
    n_first = n_cpu * n_mem
    bests = np.full(n_first, np.inf)
    counts = np.zeros(n_first, dtype=np.int64)
    picks_cpu = np.full((n_first, n_apps), -1, dtype=np.int64)
    picks_mem = np.full((n_first, n_apps), -1, dtype=np.int64)
    for f in range(n_first):
        a0 = f // n_mem
        b0 = f % n_mem
        cpu_left = cpu_units - a0 - 1
        mem_left = mem_units - b0 - 1
        if cpu_left < n_apps - 1 or mem_left < n_apps - 1:
            continue
        bests[f], counts[f] = _search_rest(
            table,
            1,
            0.0 + table[0, a0, b0],
            cpu_left,
            mem_left,
            picks_cpu[f],
            picks_mem[f],
        )
        picks_cpu[f, 0] = a0
        picks_mem[f, 0] = b0
    best = np.inf
    cpu_idx = np.full(n_apps, -1, dtype=np.int64)
    mem_idx = np.full(n_apps, -1, dtype=np.int64)
    for f in range(n_first):
        if bests[f] < best:
            best = bests[f]
            cpu_idx[:] = picks_cpu[f]
            mem_idx[:] = picks_mem[f]
    return best, cpu_idx, mem_idx, counts.sum()


def exhaustive_search_reference(table, cpu_units, mem_units):
    """Plain-Python :func:`exhaustive_search`: a recursive walk with the same order."""
    table = np.asarray(table, dtype=np.float64)
    n_apps, n_cpu, n_mem = table.shape
    state = {"best": np.inf, "pick": None, "count": 0}

    def walk(i, cpu_left, mem_left, cost, chosen):
        if i == n_apps:
            state["count"] += 1
            if cost < state["best"]:
                state["best"], state["pick"] = cost, list(chosen)
            return
        need = n_apps - i - 1  # units the later containers need at least
        for a in range(n_cpu):
            if a + 1 + need > cpu_left:
                break
            for b in range(n_mem):
                if b + 1 + need > mem_left:
                    break
                chosen.append((a, b))
                walk(
                    i + 1,
                    cpu_left - a - 1,
                    mem_left - b - 1,
                    cost + table[i, a, b],
                    chosen,
                )
                chosen.pop()

    walk(0, cpu_units, mem_units, 0.0, [])
    if state["pick"] is None:
        none = np.full(n_apps, -1, dtype=np.int64)
        return np.inf, none, none.copy(), state["count"]
    pick = np.array(state["pick"], dtype=np.int64)
    return state["best"], pick[:, 0], pick[:, 1], state["count"]


def exhaustive_search_numpy(table, cpu_units, mem_units):
    """Three containers by broadcasting: loop over the first, broadcast the other two.

    The best NumPy formulation we found; it needs ``A == 3`` and builds a
    ``(n_cpu * n_mem)**2`` array per choice of the first container. Returns the best
    cost only.
    """
    table = np.asarray(table, dtype=np.float64)
    n_apps, n_cpu, n_mem = table.shape
    if n_apps != 3:
        raise ValueError(f"table must describe 3 containers, got {n_apps}")
    units_c = np.repeat(np.arange(1, n_cpu + 1), n_mem)
    units_m = np.tile(np.arange(1, n_mem + 1), n_cpu)
    flat = table.reshape(3, -1)
    pair_cost = flat[1][:, None] + flat[2][None, :]
    pair_cpu = units_c[:, None] + units_c[None, :]
    pair_mem = units_m[:, None] + units_m[None, :]
    best = np.inf
    for f in range(flat.shape[1]):
        ok = (pair_cpu <= cpu_units - units_c[f]) & (pair_mem <= mem_units - units_m[f])
        if ok.any():
            best = min(best, flat[0, f] + pair_cost[ok].min())
    return best


def benchmarks() -> list[BenchCase]:
    """The chapter's three-container search against Python and NumPy."""
    rng = np.random.default_rng(0)
    table = rng.uniform(0.0, 1.0, size=(3, 22, 14)).cumsum(axis=1).cumsum(axis=2)
    table = table[:, ::-1, ::-1].copy()  # costs fall as units grow, as in the chapter
    return [
        BenchCase(
            name="exhaustive_search",
            size="A=3, 24 CPU x 16 memory units (1,133,440 allocations)",
            kernel=lambda: exhaustive_search(table, 24, 16),
            reference=lambda: exhaustive_search_reference(table, 24, 16),
            numpy=lambda: exhaustive_search_numpy(table, 24, 16),
        )
    ]

"""A fluid queue per cluster: the hot loop of the multi-cluster scaling chapter.

Each cluster is a fluid queue. In interval ``t`` it receives ``demand[t, k]``
requests and can serve ``capacity[t, k] * mu`` of them (``capacity`` counts
replicas, ``mu`` is requests per replica per interval). What it cannot serve waits in
a backlog of at most ``buffer`` requests; the excess is dropped:

    x = backlog[t - 1, k] + demand[t, k] - capacity[t, k] * mu
    backlog[t, k] = min(max(x, 0), buffer),  drops[t, k] = max(x - buffer, 0).

The wait of a request that arrives at the end of the interval is the backlog divided
by the service rate, ``backlog / (capacity * mu)`` intervals (infinite when a backlog
meets zero capacity). The recursion is sequential in time, which is why it is a Numba
loop; without a buffer it has a closed form (Lindley's recursion as a running
minimum of cumulative sums), which :func:`simulate_fluid_numpy` uses.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = [
    "simulate_fluid",
    "simulate_fluid_reference",
    "simulate_fluid_numpy",
    "benchmarks",
]


@numba.njit(cache=True)
def simulate_fluid(demand, capacity, mu, buffer, initial):
    """Run the fluid queues of all clusters over all intervals.

    Parameters
    ----------
    demand : ndarray of float64, shape (n_steps, n_clusters)
        Requests arriving in each interval.
    capacity : ndarray of float64, shape (n_steps, n_clusters)
        Replicas serving in each interval.
    mu : float
        Requests one replica serves per interval.
    buffer : float
        Largest backlog a cluster holds (``inf`` for none); the excess is dropped.
    initial : ndarray of float64, shape (n_clusters,)
        Backlog before the first interval.

    Returns
    -------
    backlog, wait, drops : ndarray of float64, shape (n_steps, n_clusters)
        Backlog at the end of each interval, the wait (in intervals) of a request
        arriving then, and the requests dropped in it. NaN inputs propagate.
    """
    n_steps, n_clusters = demand.shape
    backlog = np.empty((n_steps, n_clusters))
    wait = np.empty((n_steps, n_clusters))
    drops = np.empty((n_steps, n_clusters))
    for k in range(n_clusters):
        level = initial[k]
        for t in range(n_steps):
            rate = capacity[t, k] * mu
            x = level + demand[t, k] - rate
            if x < 0.0:
                x = 0.0
            dropped = 0.0
            if x > buffer:
                dropped = x - buffer
                x = buffer
            if x == 0.0:
                w = 0.0
            elif rate > 0.0:
                w = x / rate
            else:
                w = math.inf
            backlog[t, k] = x
            wait[t, k] = w
            drops[t, k] = dropped
            level = x
    return backlog, wait, drops


def simulate_fluid_reference(demand, capacity, mu, buffer, initial):
    """Plain-Python :func:`simulate_fluid`, element by element (same arguments)."""
    n_steps, n_clusters = demand.shape
    backlog = np.empty((n_steps, n_clusters))
    wait = np.empty((n_steps, n_clusters))
    drops = np.empty((n_steps, n_clusters))
    for k in range(n_clusters):
        level = float(initial[k])
        for t in range(n_steps):
            rate = float(capacity[t, k]) * mu
            x = level + float(demand[t, k]) - rate
            if x < 0.0:
                x = 0.0
            dropped = 0.0
            if x > buffer:
                dropped = x - buffer
                x = buffer
            if x == 0.0:
                w = 0.0
            elif rate > 0.0:
                w = x / rate
            else:
                w = math.inf
            backlog[t, k] = x
            wait[t, k] = w
            drops[t, k] = dropped
            level = x
    return backlog, wait, drops


def simulate_fluid_numpy(demand, capacity, mu, initial):
    """The backlog without a buffer, in closed form (Lindley's recursion).

    With ``S_t`` the cumulative sum of ``demand - capacity * mu``, the backlog is
    ``S_t - min(-initial, min_{s <= t} S_s)``. It equals :func:`simulate_fluid`'s
    backlog for ``buffer = inf`` up to rounding.

    Returns
    -------
    ndarray of float64, shape (n_steps, n_clusters)
    """
    net = np.cumsum(demand - capacity * mu, axis=0)
    lowest = np.minimum.accumulate(net, axis=0)
    return net - np.minimum(lowest, -np.asarray(initial, dtype=np.float64))


def benchmarks() -> list[BenchCase]:
    """One case: 200,000 intervals of 3 clusters with no buffer limit."""
    rng = np.random.default_rng(0)
    n_steps, n_clusters = 200_000, 3
    demand = rng.uniform(0.0, 100.0, size=(n_steps, n_clusters))
    capacity = rng.integers(1, 3, size=(n_steps, n_clusters)).astype(np.float64)
    initial = np.zeros(n_clusters)
    args = (demand, capacity, 50.0, math.inf, initial)
    return [
        BenchCase(
            name="simulate_fluid",
            size=f"steps={n_steps:,}, clusters={n_clusters}",
            kernel=lambda: simulate_fluid(*args),
            reference=lambda: simulate_fluid_reference(*args),
            numpy=lambda: simulate_fluid_numpy(demand, capacity, 50.0, initial),
            # reads demand and capacity, writes backlog, wait and drops
            bytes_moved=5 * demand.nbytes,
        )
    ]

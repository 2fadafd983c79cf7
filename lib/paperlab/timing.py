"""Timing that reports medians of repeated runs (the machine is shared and noisy)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paperlab.validation import check_int

__all__ = ["Timing", "median_time"]


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated calls to one function."""

    times: tuple[float, ...]  # one entry per timed call, in seconds

    @property
    def median(self) -> float:
        """Median seconds per call."""
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        """Fastest call, in seconds."""
        return min(self.times)


def median_time(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> Timing:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls.

    The warm-up call absorbs one-off costs such as Numba compilation, so the timings
    measure steady state.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    repeats = check_int("repeats", repeats, minimum=1)
    warmup = check_int("warmup", warmup, minimum=0)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timing(tuple(times))

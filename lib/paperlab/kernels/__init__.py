"""Numba kernels for the loops NumPy cannot vectorise well.

One module per topic (``paperlab.kernels.<topic>``). Every kernel there

- is compiled with ``numba.njit(cache=True)`` (``parallel=True`` with ``prange`` where
  it measurably helps),
- has a plain-Python reference implementation beside it, named ``<kernel>_reference``,
  that the property tests in ``tests/kernels`` compare it with, and
- is listed by the module's ``benchmarks()`` function, which returns
  :class:`BenchCase` records for ``make bench``.

Kernels never live in notebook cells; chapters import them from here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BenchCase", "kernel_modules", "all_benchmarks"]


@dataclass(frozen=True)
class BenchCase:
    """One row of the kernel benchmark table.

    Each callable runs the whole computation once on inputs prepared in advance.
    """

    name: str  # the kernel's name, e.g. "spm_forward"
    size: str  # the problem size in words, e.g. "batch=64, n=4096"
    kernel: Callable[[], Any]  # the Numba kernel
    reference: Callable[[], Any]  # the plain-Python reference, same inputs
    numpy: Callable[[], Any] | None = None  # the best NumPy formulation, if one exists
    bytes_moved: int | None = (
        None  # bytes read + written per call (memory-bound kernels)
    )


def kernel_modules() -> list[str]:
    """Names of the kernel modules in this package, sorted."""
    return sorted(
        f"{__name__}.{info.name}"
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    )


def all_benchmarks() -> list[BenchCase]:
    """Collect the :class:`BenchCase` records of every kernel module."""
    cases: list[BenchCase] = []
    for name in kernel_modules():
        module = importlib.import_module(name)
        factory = getattr(module, "benchmarks", None)
        if factory is None:
            raise RuntimeError(f"kernel module {name} has no benchmarks() function")
        cases.extend(factory())
    return cases

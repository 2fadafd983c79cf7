"""Every kernel module follows the convention `make bench` relies on."""

from __future__ import annotations

import importlib

import pytest

from paperlab import bench
from paperlab.kernels import BenchCase, all_benchmarks, kernel_modules


def test_every_kernel_has_a_reference_and_a_benchmark():
    cases = all_benchmarks()
    names = {case.name for case in cases}
    for module_name in kernel_modules():
        module = importlib.import_module(module_name)
        for case in module.benchmarks():
            assert isinstance(case, BenchCase)
            # A case is named after its kernel, optionally followed by a variant in
            # parentheses: "rips_h1_z2 (chapter)".
            kernel = case.name.split(" ")[0]
            assert callable(getattr(module, kernel, None)), (
                f"{module_name} lacks {kernel}"
            )
            assert hasattr(module, f"{kernel}_reference"), (
                f"{module_name}.{kernel} has no {kernel}_reference"
            )
    assert len(names) == len(cases), "two benchmark cases share a name"


def test_copy_bandwidth_is_positive():
    assert bench.copy_bandwidth(n_bytes=8 * 2**20, repeats=2) > 0.01


@pytest.mark.parametrize("repeats", [0, -1])
def test_median_time_rejects_bad_repeats(repeats):
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        bench.median_time(lambda: None, repeats=repeats)

"""``make bench``: every kernel against its reference and the best NumPy formulation.

Prints one row per kernel: median seconds per call of the Numba kernel, its plain-Python
reference and the NumPy formulation, the speed-ups, and for memory-bound kernels the
achieved bandwidth next to this machine's measured memory-copy bandwidth.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from paperlab.display import Table
from paperlab.kernels import BenchCase, all_benchmarks
from paperlab.timing import median_time

__all__ = ["copy_bandwidth", "run_benchmarks", "main"]


def copy_bandwidth(n_bytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """Measured memory-copy bandwidth in GB/s (bytes read + written per second)."""
    src = np.ones(n_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    timing = median_time(lambda: np.copyto(dst, src), repeats=repeats)
    return 2 * src.nbytes / timing.median / 1e9


def _row(case: BenchCase, repeats: int, bandwidth: float) -> list:
    kernel = median_time(case.kernel, repeats=repeats).median
    reference = median_time(case.reference, repeats=1, warmup=0).median
    numpy_time = median_time(case.numpy, repeats=repeats).median if case.numpy else None
    gbps = case.bytes_moved / kernel / 1e9 if case.bytes_moved else None
    return [
        case.name,
        case.size,
        kernel * 1e3,
        reference * 1e3,
        f"{reference / kernel:.1f}x",
        "-" if numpy_time is None else numpy_time * 1e3,
        "-" if numpy_time is None else f"{numpy_time / kernel:.2f}x",
        "-" if gbps is None else f"{gbps:.1f} ({gbps / bandwidth:.0%})",
    ]


def run_benchmarks(repeats: int = 5, only: str | None = None) -> tuple[Table, float]:
    """Time every registered kernel; return the table and the copy bandwidth (GB/s)."""
    bandwidth = copy_bandwidth()
    cases = [c for c in all_benchmarks() if only is None or only in c.name]
    rows = [_row(case, repeats, bandwidth) for case in cases]
    columns = [
        "kernel",
        "size",
        "numba ms",
        "python ms",
        "vs python",
        "numpy ms",
        "vs numpy",
        "GB/s (of copy)",
    ]
    caption = (
        f"Median of {repeats} runs (python reference: 1 run). "
        f"Memory-copy bandwidth: {bandwidth:.1f} GB/s."
    )
    return Table(rows, columns, digits=3, caption=caption), bandwidth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per kernel")
    parser.add_argument("--only", help="run only kernels whose name contains this")
    parser.add_argument(
        "--markdown", action="store_true", help="print a Markdown table"
    )
    args = parser.parse_args(argv)
    table, _ = run_benchmarks(args.repeats, args.only)
    print(table.to_markdown() if args.markdown else repr(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())

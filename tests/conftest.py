"""Shared test fixtures and paths."""

from __future__ import annotations

import os
from pathlib import Path

# One BLAS/OpenMP thread, set before NumPy loads: two threads stall on a shared 2-core
# machine. (`make test` exports it too; this covers a bare `pytest`.)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent

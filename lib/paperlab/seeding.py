"""One call that makes a chapter reproducible."""

from __future__ import annotations

import random
import sys

import numpy as np

from paperlab.validation import check_int

__all__ = ["seed_everything", "torch_device"]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's, NumPy's and (if imported) Torch's generators.

    Parameters
    ----------
    seed : int
        A non-negative seed.

    Returns
    -------
    numpy.random.Generator
        A fresh generator seeded with ``seed``; library code takes an explicit ``rng``
        rather than relying on global state.
    """
    seed = check_int("seed", seed, minimum=0)
    random.seed(seed)
    # Legacy global state, for third-party code that still draws from it.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)


def torch_device(prefer_gpu: bool = True):
    """Return the Torch device to run on: a GPU when one is present, else the CPU.

    The book's sizes are set for a laptop CPU; a reader with a GPU can raise them.
    """
    import torch

    if prefer_gpu and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")

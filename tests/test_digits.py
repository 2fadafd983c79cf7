"""The digits MLP: data split, training, accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from paperlab import digits


@pytest.fixture(scope="module")
def trained():
    return digits.train_digits_mlp(seed=0)


def test_split_is_standardized_stratified_and_seeded():
    X_train, X_test, y_train, y_test = digits.load_digits_split(seed=0)
    assert X_train.dtype == X_test.dtype == np.float32
    assert X_train.shape[1] == 64 and len(X_train) + len(X_test) == 1797
    assert len(X_test) == pytest.approx(0.3 * 1797, abs=10)
    varying = X_train.std(axis=0) > 0
    np.testing.assert_allclose(X_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(X_train.std(axis=0)[varying], 1.0, atol=1e-4)
    train_share = np.bincount(y_train, minlength=10) / len(y_train)
    test_share = np.bincount(y_test, minlength=10) / len(y_test)
    np.testing.assert_allclose(train_share, test_share, atol=0.01)
    again = digits.load_digits_split(seed=0)
    np.testing.assert_array_equal(again[1], X_test)
    other = digits.load_digits_split(seed=1)
    assert not np.array_equal(other[3], y_test)


def test_data_equal_scikit_learns_load_digits():
    from sklearn.datasets import load_digits

    images, labels = digits._load_digits()
    reference = load_digits()
    np.testing.assert_array_equal(images, reference.data)
    np.testing.assert_array_equal(labels, reference.target)


def test_trained_mlp_is_accurate(trained):
    shapes = [(W.shape, b.shape) for W, b in trained]
    assert shapes == [((256, 64), (256,)), ((256, 256), (256,)), ((10, 256), (10,))]
    assert all(W.dtype == np.float32 for W, _ in trained)
    _, X_test, _, y_test = digits.load_digits_split(seed=0)
    assert digits.mlp_accuracy(trained, X_test, y_test) >= 0.95


def test_training_is_deterministic(trained):
    again = digits.train_digits_mlp(seed=0)
    for (W, b), (W2, b2) in zip(trained, again, strict=True):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    other = digits.train_digits_mlp(hidden=[32], epochs=2, seed=1)
    assert other[0][0].shape == (32, 64)


def test_damaged_weights_lose_accuracy(trained):
    _, X_test, _, y_test = digits.load_digits_split(seed=0)
    broken = [(W, b) for W, b in trained]
    broken[1] = (np.zeros_like(trained[1][0]), trained[1][1])
    assert digits.mlp_accuracy(broken, X_test, y_test) < 0.5


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    layers = [
        (rng.standard_normal((5, 4)), rng.standard_normal(5)),
        (rng.standard_normal((3, 5)), rng.standard_normal(3)),
    ]
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)

    def loss(layers):
        logits = digits.mlp_forward(layers, X)
        logits = logits - logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -log_probs[np.arange(6), y].mean()

    grads = digits._gradients(layers, X, y)
    W = layers[0][0]
    eps = 1e-6
    W[2, 1] += eps
    up = loss(layers)
    W[2, 1] -= 2 * eps
    down = loss(layers)
    W[2, 1] += eps
    assert grads[0][2, 1] == pytest.approx((up - down) / (2 * eps), rel=1e-5)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: digits.load_digits_split(seed=-1), ValueError, "seed must be >= 0"),
        (
            lambda: digits.load_digits_split(0, test_fraction=1.0),
            ValueError,
            "test_fraction must be < 1",
        ),
        (
            lambda: digits.train_digits_mlp(hidden=8, epochs=1),
            TypeError,
            "hidden must be a tuple",
        ),
        (
            lambda: digits.train_digits_mlp(hidden=(0,), epochs=1),
            ValueError,
            r"hidden\[0\] must be >= 1",
        ),
        (lambda: digits.train_digits_mlp(epochs=0), ValueError, "epochs must be >= 1"),
        (lambda: digits.train_digits_mlp(lr=-1.0), ValueError, "lr must be > 0"),
        (
            lambda: digits.mlp_accuracy([], np.ones((2, 4)), [0, 1]),
            TypeError,
            "non-empty list",
        ),
        (
            lambda: digits.mlp_accuracy(
                [(np.ones((3, 4)), np.ones(3)), (np.ones((2, 5)), np.ones(2))],
                np.ones((2, 4)),
                [0, 1],
            ),
            ValueError,
            r"layers\[1\] W takes 5 inputs",
        ),
        (
            lambda: digits.mlp_accuracy(
                [(np.ones((3, 4)), np.ones(3))], np.ones((2, 5)), [0, 1]
            ),
            ValueError,
            "X must have shape",
        ),
        (
            lambda: digits.mlp_accuracy(
                [(np.ones((3, 4)), np.ones(3))], np.ones((2, 4)), [0]
            ),
            ValueError,
            "y must have shape",
        ),
        (
            lambda: digits.mlp_accuracy(
                [(np.ones((3, 4)), np.ones(3))], np.ones((2, 4)), [0.0, 1.0]
            ),
            TypeError,
            "integer labels",
        ),
    ],
)
def test_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_pretrained_mlp_is_trained_once_and_handed_out_as_copies():
    first = digits.pretrained_digits_mlp(seed=0, epochs=1)
    first[0][0][:] = 0.0
    second = digits.pretrained_digits_mlp(seed=0, epochs=1)
    assert np.abs(second[0][0]).max() > 0  # the caller's change did not leak
    trained = digits.train_digits_mlp(epochs=1, seed=0)
    for (W, b), (W2, b2) in zip(second, trained, strict=True):
        assert np.array_equal(W, W2) and np.array_equal(b, b2)

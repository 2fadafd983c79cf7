r"""Balanced classification with GLA and GCA surrogate losses (Cortes, Mohri, Zhong).

The balanced error averages the per-class error rates, so every class counts the same
however rare it is. Its Bayes classifier predicts :math:`\arg\max_y \eta_y(x)/p_y`,
where :math:`\eta_y(x)` is the class posterior and :math:`p_y` the class prior. The
paper studies two families of surrogate losses whose minimisers approach that
classifier:

* **GLA** (generalised logit-adjusted): shift every score by :math:`\tau \log p_k`
  during training and apply a generalised cross-entropy :math:`\Phi_q` to the
  softmax probability of the true class; predict with the unshifted scores.
* **GCA** (generalised class-aware weighted): weight each example by
  :math:`1/(c\,p_y)` and divide its scores by a class-dependent confidence margin
  :math:`\rho_y \ge 1` (larger for rarer classes) before the same :math:`\Phi_q`.

Both are members of one *comp-sum* family, implemented once in :func:`comp_sum_loss`:

.. math::

    \ell(h, x, y) = w_y\,\Phi_q\Big(\mathrm{softmax}\big(h(x)/\rho_y
    + \tau \log p\big)_y\Big), \qquad
    \Phi_q(u) = \frac{1 - u^q}{q},\ \Phi_0(u) = -\log u.

Cross-entropy, class-weighted cross-entropy and the logit-adjusted (LA) loss are the
members with :math:`q = 0` that the paper compares against.

The toy experiment trains linear classifiers, full batch, on a long-tailed Gaussian
problem whose training set is linearly separable (as a deep network's training set is),
and compares balanced test errors.

Notes
-----
The exact form of GCA's margins could not be checked against the paper's full text
when this module was written; it follows the authors' usual *confidence margin*
convention, in which a margin :math:`\rho` rescales scores (a :math:`\rho`-margin loss
:math:`\Phi(t/\rho)`), and tunes the margin exponent on a balanced validation set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from paperlab.claims import require
from paperlab.optim import Adam
from paperlab.plotting import COLORS, label_axes
from paperlab.seeding import torch_device
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "VARIANTS",
    "LossSpec",
    "Config",
    "Split",
    "Result",
    "generalized_cross_entropy",
    "comp_sum_loss",
    "gla_loss",
    "gca_loss",
    "confidence_margins",
    "class_counts",
    "make_data",
    "loss_specs",
    "train_linear_models",
    "per_class_accuracy",
    "balanced_error",
    "run_experiment",
    "check_claim",
    "check_balanced_agreement",
    "plot_balanced_errors",
    "plot_per_class_accuracy",
]

logger = logging.getLogger(__name__)

VARIANTS = ("mechanism", "baseline")

# Claim thresholds, in balanced-error points (percent), set from the per-seed
# measurements reported in the chapter: both paper losses must beat plain
# cross-entropy and class-weighted cross-entropy by at least these margins.
MIN_GAIN_OVER_CE = 3.0
MIN_GAIN_OVER_WEIGHTED_CE = 2.0
# With balanced classes every loss in the comparison should agree this closely.
MAX_SPREAD_WHEN_BALANCED = 1.5


# ----------------------------------------------------------------------------------
# The losses
# ----------------------------------------------------------------------------------


def generalized_cross_entropy(log_prob: torch.Tensor, q: Any) -> torch.Tensor:
    r"""Generalised cross-entropy :math:`\Phi_q(u) = (1 - u^q)/q` of a probability.

    It interpolates between the log loss (:math:`q \to 0`) and the mean absolute
    error :math:`1 - u` (:math:`q = 1`); the paper's GLA and GCA families apply it to
    the (adjusted) softmax probability of the true class.

    Parameters
    ----------
    log_prob : torch.Tensor
        Logarithms of probabilities :math:`\log u \le 0`, any shape.
    q : float or torch.Tensor
        The exponent, :math:`q \ge 0`; a tensor broadcasts against ``log_prob``
        (one value per model when several models are trained at once).

    Returns
    -------
    torch.Tensor
        :math:`\Phi_q(u)`, same shape as the broadcast of ``log_prob`` and ``q``.

    Raises
    ------
    TypeError
        If ``log_prob`` is not a tensor or ``q`` is not a number or tensor.
    ValueError
        If ``q`` is negative.
    """
    if not isinstance(log_prob, torch.Tensor):
        raise TypeError(
            f"log_prob must be a torch.Tensor, got {type(log_prob).__name__}"
        )
    q = _as_exponent(q, log_prob)
    return _phi(log_prob, q)


def _as_exponent(q: Any, like: torch.Tensor) -> torch.Tensor:
    if isinstance(q, torch.Tensor):
        if bool((q < 0).any()):
            raise ValueError("q must be >= 0 everywhere")
        return q.to(dtype=like.dtype, device=like.device)
    q = check_float("q", q, minimum=0.0)
    return torch.tensor(q, dtype=like.dtype, device=like.device)


def _phi(log_prob: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    # expm1 keeps (1 - u^q)/q accurate for small q; q = 0 takes the log-loss branch.
    safe_q = torch.where(q > 0, q, torch.ones_like(q))
    power = -torch.expm1(safe_q * log_prob) / safe_q
    return torch.where(q > 0, power, -log_prob)


def comp_sum_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    log_shift: Any = 0.0,
    example_weight: Any = 1.0,
    example_scale: Any = 1.0,
    q: Any = 0.0,
) -> torch.Tensor:
    r"""Mean over examples of :math:`w_i \Phi_q(\mathrm{softmax}(h_i/s_i + a)_{y_i})`.

    The common form of every loss in the chapter: cross-entropy, class-weighted
    cross-entropy, LA, GLA and GCA (the paper's two families). Leading dimensions
    of ``scores`` index independent models that share the same data.

    Parameters
    ----------
    scores : torch.Tensor, shape (..., n, c)
        Scores :math:`h(x_i)` of ``n`` examples over ``c`` classes.
    labels : torch.Tensor of int64, shape (n,)
        True classes in ``[0, c)``.
    log_shift : float or torch.Tensor, shape (..., c)
        Additive score shift :math:`a` (GLA: :math:`\tau \log p`).
    example_weight : float or torch.Tensor, shape (..., n)
        Weight :math:`w_i` of each example (GCA: :math:`1/(c\,p_{y_i})`).
    example_scale : float or torch.Tensor, shape (..., n)
        Positive divisor :math:`s_i` of the example's scores (GCA: the confidence
        margin :math:`\rho_{y_i}`).
    q : float or torch.Tensor, shape (...)
        Generalised cross-entropy exponent, :math:`q \ge 0`.

    Returns
    -------
    torch.Tensor, shape (...)
        The mean loss of each model.

    Raises
    ------
    TypeError
        If ``scores`` or ``labels`` is not a tensor of the right kind.
    ValueError
        If shapes disagree, labels are out of range or scales are not positive.
    """
    _check_scores_labels(scores, labels)
    lead = scores.shape[:-2]
    n, c = scores.shape[-2:]
    log_shift = _broadcastable("log_shift", log_shift, scores, (*lead, c))
    example_weight = _broadcastable(
        "example_weight", example_weight, scores, (*lead, n)
    )
    example_scale = _broadcastable("example_scale", example_scale, scores, (*lead, n))
    if bool((example_scale <= 0).any()):
        raise ValueError("example_scale must be positive")
    q = _as_exponent(q, scores)
    return _comp_sum_loss(scores, labels, log_shift, example_weight, example_scale, q)


def _comp_sum_loss(scores, labels, log_shift, example_weight, example_scale, q):
    # Work class-major, shape (..., c, n): log_softmax over a short last axis is
    # several times slower in torch on the CPU than over the middle axis.
    z = scores.transpose(-1, -2) / example_scale.unsqueeze(-2) + log_shift.unsqueeze(-1)
    log_prob = torch.log_softmax(z, dim=-2)
    one_hot = torch.nn.functional.one_hot(labels, z.shape[-2]).T.to(z.dtype)
    log_prob_true = (log_prob * one_hot).sum(-2)
    per_example = example_weight * _phi(log_prob_true, q.unsqueeze(-1))
    return per_example.mean(-1)


def _check_scores_labels(scores: Any, labels: Any) -> None:
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        raise TypeError(
            f"scores must be a floating torch.Tensor, got {type(scores).__name__}"
        )
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        raise TypeError("labels must be a torch.Tensor of dtype int64")
    if scores.ndim < 2:
        raise ValueError(
            f"scores must have shape (..., n, c), got {tuple(scores.shape)}"
        )
    n, c = scores.shape[-2:]
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= c):
        raise ValueError(f"labels must lie in [0, {c}), got values outside")


def _broadcastable(
    name: str, value: Any, like: torch.Tensor, shape: tuple
) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    try:
        return torch.broadcast_to(tensor, shape)
    except RuntimeError as err:
        raise ValueError(
            f"{name} must broadcast to shape {shape}, got {tuple(tensor.shape)}"
        ) from err


def _check_prior(prior: Any, n_classes: int) -> torch.Tensor:
    if not isinstance(prior, torch.Tensor):
        raise TypeError(f"prior must be a torch.Tensor, got {type(prior).__name__}")
    if prior.shape != (n_classes,):
        raise ValueError(
            f"prior must have shape ({n_classes},), got {tuple(prior.shape)}"
        )
    if bool((prior <= 0).any()) or abs(float(prior.sum()) - 1.0) > 1e-4:
        raise ValueError("prior must be positive and sum to 1")
    return prior


def gla_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    prior: torch.Tensor,
    q: float,
    tau: float = 1.0,
) -> torch.Tensor:
    r"""Generalised logit-adjusted (GLA) loss, mean over examples.

    :math:`\ell = \Phi_q(\mathrm{softmax}(h + \tau \log p)_y)`.

    With ``q = 0`` and ``tau = 1`` it is the logit-adjusted (LA) loss. Training shifts
    the scores by the log prior; prediction uses :math:`\arg\max_y h_y(x)` unshifted,
    which for a minimiser estimates :math:`\arg\max_y \eta_y(x)/p_y`, the balanced
    Bayes classifier (the paper's abstract: GLA is Bayes-consistent).

    Parameters
    ----------
    scores : torch.Tensor, shape (..., n, c)
    labels : torch.Tensor of int64, shape (n,)
    prior : torch.Tensor, shape (c,)
        Training class frequencies :math:`p_k`, positive and summing to 1.
    q : float
        Generalised cross-entropy exponent, :math:`q \ge 0`.
    tau : float
        Strength of the logit adjustment (1 is the consistent choice).

    Returns
    -------
    torch.Tensor, shape (...)
        The mean loss.
    """
    _check_scores_labels(scores, labels)
    prior = _check_prior(prior, scores.shape[-1])
    tau = check_float("tau", tau)
    return comp_sum_loss(scores, labels, log_shift=tau * torch.log(prior), q=q)


def gca_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    prior: torch.Tensor,
    margins: torch.Tensor,
    q: float,
) -> torch.Tensor:
    r"""Generalised class-aware weighted (GCA) loss, mean over examples.

    :math:`\ell = \frac{1}{c\,p_y}\Phi_q(\mathrm{softmax}(h/\rho_y)_y)`.

    The class weight :math:`1/(c\,p_y)` makes the empirical loss the balanced
    (class-averaged) loss; the confidence margin :math:`\rho_y` asks for score gaps
    about :math:`\rho_y` times larger before an example of class :math:`y` stops
    contributing (the paper's abstract: class weights plus class-dependent
    confidence margins).

    Parameters
    ----------
    scores : torch.Tensor, shape (..., n, c)
    labels : torch.Tensor of int64, shape (n,)
    prior : torch.Tensor, shape (c,)
        Training class frequencies, positive and summing to 1.
    margins : torch.Tensor, shape (c,)
        Positive confidence margins :math:`\rho_k`, e.g. from
        :func:`confidence_margins`.
    q : float
        Generalised cross-entropy exponent, :math:`q \ge 0`.

    Returns
    -------
    torch.Tensor, shape (...)
        The mean loss.
    """
    _check_scores_labels(scores, labels)
    c = scores.shape[-1]
    prior = _check_prior(prior, c)
    if not isinstance(margins, torch.Tensor) or margins.shape != (c,):
        raise ValueError(f"margins must be a torch.Tensor of shape ({c},)")
    weight = 1.0 / (c * prior[labels])
    return comp_sum_loss(
        scores, labels, example_weight=weight, example_scale=margins[labels], q=q
    )


def confidence_margins(prior: torch.Tensor, exponent: float) -> torch.Tensor:
    r"""Class margins :math:`\rho_k = (p_{\max}/p_k)^{\gamma}`; 1 for the top class.

    Rarer classes get larger margins; ``exponent`` :math:`\gamma = 0` turns them off,
    :math:`\gamma = 1/4` is the label-distribution-aware rate of Cao et al. (2019).

    Parameters
    ----------
    prior : torch.Tensor, shape (c,)
        Class frequencies, positive and summing to 1.
    exponent : float
        :math:`\gamma \ge 0`.

    Returns
    -------
    torch.Tensor, shape (c,)
    """
    if not isinstance(prior, torch.Tensor) or prior.ndim != 1:
        raise TypeError("prior must be a one-dimensional torch.Tensor")
    prior = _check_prior(prior, prior.shape[0])
    exponent = check_float("exponent", exponent, minimum=0.0)
    return (prior.max() / prior) ** exponent


# ----------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------


def class_counts(n_head: int, imbalance: float, n_classes: int) -> np.ndarray:
    r"""Long-tailed class sizes :math:`n_k = \mathrm{round}(n_0 r^{-k/(c-1)})`, >= 1.

    Parameters
    ----------
    n_head : int
        Size of the largest class :math:`n_0`.
    imbalance : float
        Ratio :math:`r = n_0 / n_{c-1}` of the largest to the smallest class, >= 1.
    n_classes : int
        Number of classes :math:`c \ge 2`.

    Returns
    -------
    numpy.ndarray of int, shape (n_classes,)
    """
    n_head = check_int("n_head", n_head, minimum=1)
    imbalance = check_float("imbalance", imbalance, minimum=1.0)
    n_classes = check_int("n_classes", n_classes, minimum=2)
    decay = imbalance ** (-np.arange(n_classes) / (n_classes - 1))
    return np.maximum(1, np.round(n_head * decay)).astype(int)


@dataclass(frozen=True)
class Split:
    """One seed's data: inputs and labels for training, validation and test."""

    X_train: torch.Tensor  # (n_train, dim)
    y_train: torch.Tensor  # (n_train,) int64, long-tailed
    X_val: torch.Tensor  # (n_val, dim), balanced, used only to tune GCA's margins
    y_val: torch.Tensor
    X_test: torch.Tensor  # (n_test, dim), balanced
    y_test: torch.Tensor
    prior: torch.Tensor  # (n_classes,) training class frequencies


def make_data(config: Config, rng: np.random.Generator) -> Split:
    """Draw a long-tailed Gaussian classification problem.

    Class means are random directions of length ``config.separation`` in
    ``config.dim`` dimensions; every class has identity covariance. Training counts
    follow :func:`class_counts`; the validation and test sets are balanced.

    Parameters
    ----------
    config : Config
    rng : numpy.random.Generator

    Returns
    -------
    Split
    """
    check_instance("config", config, Config)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    c, d = config.n_classes, config.dim
    means = rng.normal(size=(c, d))
    means *= config.separation / np.linalg.norm(means, axis=1, keepdims=True)
    counts = class_counts(config.n_head, config.imbalance, c)
    device = torch_device()

    def draw(per_class: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        y = np.repeat(np.arange(c), per_class)
        X = means[y] + rng.normal(size=(y.size, d))
        return (
            torch.tensor(X, dtype=torch.float32, device=device),
            torch.tensor(y, dtype=torch.int64, device=device),
        )

    X_train, y_train = draw(counts)
    X_val, y_val = draw(np.full(c, config.n_val_per_class))
    X_test, y_test = draw(np.full(c, config.n_test_per_class))
    prior = torch.tensor(counts / counts.sum(), dtype=torch.float32, device=device)
    return Split(X_train, y_train, X_val, y_val, X_test, y_test, prior)


# ----------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LossSpec:
    """One member of the comp-sum family (see :func:`comp_sum_loss`)."""

    name: str  # label in tables and figures
    tau: float = 0.0  # logit shift strength: scores + tau * log p (GLA)
    weighted: bool = False  # weight examples by 1 / (c p_y) (GCA, weighted CE)
    margin_exponent: float = 0.0  # rho_k = (p_max / p_k) ** margin_exponent (GCA)
    q: float = 0.0  # generalised cross-entropy exponent; 0 is the log loss

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("name must be a non-empty string")
        check_float("tau", self.tau)
        if not isinstance(self.weighted, bool):
            raise TypeError(
                f"weighted must be a bool, got {type(self.weighted).__name__}"
            )
        check_float("margin_exponent", self.margin_exponent, minimum=0.0)
        check_float("q", self.q, minimum=0.0)


def train_linear_models(
    split: Split,
    specs: Sequence[LossSpec],
    *,
    epochs: int,
    lr: float,
    weight_bound: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train one linear classifier :math:`h(x) = Wx + b` per loss, full batch, Adam.

    The models share the data and are trained side by side as one batched tensor
    (Adam's update, :class:`paperlab.optim.Adam`, is per coordinate, so they do not
    interact). Weights start at zero, so training is deterministic.

    Parameters
    ----------
    split : Split
        The data; only the training part is used.
    specs : sequence of LossSpec
        One loss per model.
    epochs : int
        Number of full-batch Adam steps.
    lr : float
        Adam's learning rate.
    weight_bound : float
        If positive, project each ``W`` onto the Frobenius ball of this radius after
        every step (a bounded hypothesis set); 0 leaves it unbounded.

    Returns
    -------
    W : torch.Tensor, shape (n_models, c, dim)
    b : torch.Tensor, shape (n_models, c)
    """
    check_instance("split", split, Split)
    specs = list(specs)
    if not specs or not all(isinstance(s, LossSpec) for s in specs):
        raise ValueError("specs must be a non-empty sequence of LossSpec")
    epochs = check_int("epochs", epochs, minimum=1)
    lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
    weight_bound = check_float("weight_bound", weight_bound, minimum=0.0)

    X, y, prior = split.X_train, split.y_train, split.prior
    m, c, d = len(specs), prior.shape[0], X.shape[1]
    log_shift, weight, scale, q = _family_tensors(specs, y, prior)
    W = torch.zeros(m, c, d, device=X.device, requires_grad=True)
    b = torch.zeros(m, 1, c, device=X.device, requires_grad=True)
    optimizer = Adam([W, b], lr)
    for _ in range(epochs):
        # One (m*c, d) x (d, n) product, viewed as (m, n, c) without a copy.
        scores = (W.reshape(m * c, d) @ X.T).view(m, c, -1).transpose(1, 2) + b
        loss = _comp_sum_loss(scores, y, log_shift, weight, scale, q).sum()
        optimizer.step(torch.autograd.grad(loss, (W, b)))
        if weight_bound > 0:
            _project_to_ball(W, weight_bound)
    return W.detach(), b.detach().squeeze(1)


def _family_tensors(specs: Sequence[LossSpec], y: torch.Tensor, prior: torch.Tensor):
    """Per-model shift (m, c), example weight (m, n), scale (m, n) and q (m,)."""
    c = prior.shape[0]
    log_shift = torch.stack([s.tau * torch.log(prior) for s in specs])
    ones = torch.ones_like(y, dtype=prior.dtype)
    weight = torch.stack([1.0 / (c * prior[y]) if s.weighted else ones for s in specs])
    scale = torch.stack(
        [confidence_margins(prior, s.margin_exponent)[y] for s in specs]
    )
    q = torch.tensor([s.q for s in specs], dtype=prior.dtype, device=prior.device)
    return log_shift, weight, scale, q


def _project_to_ball(W: torch.Tensor, radius: float) -> None:
    with torch.no_grad():
        norms = W.flatten(1).norm(dim=1).clamp_min(radius)
        W.mul_((radius / norms)[:, None, None])


def _predict(W: torch.Tensor, b: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (X @ W.transpose(1, 2) + b[:, None, :]).argmax(-1)


# ----------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------


def per_class_accuracy(predictions: Any, labels: Any, n_classes: int) -> np.ndarray:
    """Accuracy within each true class.

    Parameters
    ----------
    predictions : array_like of int, shape (..., n)
        Predicted classes; leading dimensions index models.
    labels : array_like of int, shape (n,)
    n_classes : int

    Returns
    -------
    numpy.ndarray, shape (..., n_classes)
        NaN for a class absent from ``labels``.
    """
    n_classes = check_int("n_classes", n_classes, minimum=2)
    labels = check_array("labels", _numpy(labels), ndim=1)
    predictions = check_array("predictions", _numpy(predictions))
    if predictions.ndim < 1 or predictions.shape[-1] != labels.shape[0]:
        raise ValueError(
            f"predictions must have shape (..., {labels.shape[0]}), "
            f"got {predictions.shape}"
        )
    correct = predictions == labels
    out = np.full(predictions.shape[:-1] + (n_classes,), np.nan)
    for k in range(n_classes):
        mask = labels == k
        if mask.any():
            out[..., k] = correct[..., mask].mean(-1)
    return out


def balanced_error(predictions: Any, labels: Any, n_classes: int) -> np.ndarray:
    r"""Balanced error :math:`1 - \frac{1}{c}\sum_k \mathrm{acc}_k` (classes present).

    Parameters and shapes as :func:`per_class_accuracy`; returns shape (...).
    """
    return 1.0 - np.nanmean(per_class_accuracy(predictions, labels, n_classes), axis=-1)


def _numpy(value: Any) -> Any:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


# ----------------------------------------------------------------------------------
# Experiment
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the variant: the paper's losses or their mechanisms removed."""

    variant: str = "mechanism"  # "baseline": GLA without its shift, GCA unweighted
    imbalance: float = 100.0  # largest / smallest training class
    n_classes: int = 10
    dim: int = 50  # input dimension; 50 makes the training set separable
    separation: float = 4.0  # distance of each class mean from the origin
    n_head: int = 500  # training examples in the largest class
    n_val_per_class: int = 20  # balanced validation set, to tune GCA's margins
    n_test_per_class: int = 200  # balanced test set
    q: float = 0.3  # generalised cross-entropy exponent of GLA and GCA
    margin_exponents: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)  # GCA tuning grid
    epochs: int = 300  # full-batch Adam steps
    lr: float = 0.05
    weight_bound: float = 0.0  # > 0: Frobenius-norm bound on W (bounded hypotheses)
    n_seeds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, VARIANTS)
        check_float("imbalance", self.imbalance, minimum=1.0)
        check_int("n_classes", self.n_classes, minimum=2)
        check_int("dim", self.dim, minimum=1)
        check_float("separation", self.separation, minimum=0.0)
        check_int("n_head", self.n_head, minimum=1)
        check_int("n_val_per_class", self.n_val_per_class, minimum=1)
        check_int("n_test_per_class", self.n_test_per_class, minimum=1)
        check_float("q", self.q, minimum=0.0)
        if not isinstance(self.margin_exponents, tuple) or not self.margin_exponents:
            raise TypeError("margin_exponents must be a non-empty tuple of floats")
        for value in self.margin_exponents:
            check_float("margin_exponents entry", value, minimum=0.0)
        check_int("epochs", self.epochs, minimum=1)
        check_float("lr", self.lr, minimum=0.0, strict_minimum=True)
        check_float("weight_bound", self.weight_bound, minimum=0.0)
        check_int("n_seeds", self.n_seeds, minimum=1)
        check_int("seed", self.seed, minimum=0)


@dataclass(frozen=True)
class Result:
    """Balanced test errors and per-class accuracies of every loss, seed by seed."""

    config: Config
    losses: tuple[str, ...]  # names, in table order
    balanced_error: dict[str, np.ndarray]  # name -> (n_seeds,) balanced test error
    class_accuracy: dict[str, np.ndarray]  # name -> (n_seeds, n_classes) test accuracy
    chosen_exponent: np.ndarray  # (n_seeds,) GCA margin exponent picked on validation
    counts: np.ndarray = field(repr=False)  # (n_classes,) training class sizes

    def mean_error(self, name: str) -> float:
        """Balanced test error of loss ``name`` averaged over seeds."""
        check_choice("name", name, self.losses)
        return float(self.balanced_error[name].mean())

    def rows(self) -> list[list[Any]]:
        """Table rows: loss, mean and spread of the balanced error in percent."""
        return [
            [
                name,
                100 * self.mean_error(name),
                100 * float(self.balanced_error[name].std()),
                100 * float(np.nanmin(self.class_accuracy[name], axis=1).mean()),
            ]
            for name in self.losses
        ]


def loss_specs(config: Config) -> tuple[list[LossSpec], list[LossSpec]]:
    """The fixed losses and the GCA candidates (one per margin exponent) of a run.

    In the ``"baseline"`` variant the paper's mechanisms are removed: "GLA" loses its
    logit shift and "GCA" its class weights and margins, leaving plain generalised
    cross-entropy under both names.

    Returns
    -------
    fixed : list of LossSpec
        Cross-entropy, weighted cross-entropy, LA and GLA.
    gca_candidates : list of LossSpec
        GCA with each exponent in ``config.margin_exponents``.
    """
    check_instance("config", config, Config)
    mechanism = config.variant == "mechanism"
    fixed = [
        LossSpec("CE"),
        LossSpec("weighted CE", weighted=True),
        LossSpec("LA", tau=1.0),
        LossSpec(f"GLA (q={config.q:g})", tau=1.0 if mechanism else 0.0, q=config.q),
    ]
    gca = [
        LossSpec(
            f"GCA (q={config.q:g})",
            weighted=mechanism,
            margin_exponent=gamma if mechanism else 0.0,
            q=config.q,
        )
        for gamma in config.margin_exponents
    ]
    return fixed, gca


def run_experiment(config: Config) -> Result:
    """Train every loss on ``config.n_seeds`` fresh problems and measure balanced error.

    For each seed: draw data (:func:`make_data`), train the fixed losses and one GCA
    model per candidate margin exponent side by side (:func:`train_linear_models`),
    keep the GCA model with the lowest balanced validation error, and evaluate all on
    the balanced test set.

    Parameters
    ----------
    config : Config

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    fixed, gca = loss_specs(config)
    names = tuple(s.name for s in fixed) + (gca[0].name,)
    errors = {name: [] for name in names}
    accuracy = {name: [] for name in names}
    chosen = []
    c = config.n_classes
    for child in np.random.SeedSequence(config.seed).spawn(config.n_seeds):
        split = make_data(config, np.random.default_rng(child))
        W, b = train_linear_models(
            split,
            fixed + gca,
            epochs=config.epochs,
            lr=config.lr,
            weight_bound=config.weight_bound,
        )
        val_error = balanced_error(_predict(W, b, split.X_val), split.y_val, c)
        best = len(fixed) + int(np.argmin(val_error[len(fixed) :]))
        chosen.append(config.margin_exponents[best - len(fixed)])
        keep = list(range(len(fixed))) + [best]
        test_acc = per_class_accuracy(_predict(W, b, split.X_test), split.y_test, c)
        for name, j in zip(names, keep, strict=True):
            accuracy[name].append(test_acc[j])
            errors[name].append(1.0 - test_acc[j].mean())
        logger.info("seed done: GCA margin exponent %s", chosen[-1])
    return Result(
        config=config,
        losses=names,
        balanced_error={k: np.array(v) for k, v in errors.items()},
        class_accuracy={k: np.array(v) for k, v in accuracy.items()},
        chosen_exponent=np.array(chosen),
        counts=class_counts(config.n_head, config.imbalance, c),
    )


def check_claim(result: Result) -> None:
    """Raise :class:`~paperlab.claims.ClaimFailed` unless GLA and GCA both win clearly.

    The claim (the paper's abstract, at toy scale): at imbalance ratio 100 both
    GLA and GCA reach a mean balanced error at least ``MIN_GAIN_OVER_CE`` points below
    plain cross-entropy and ``MIN_GAIN_OVER_WEIGHTED_CE`` points below class-weighted
    cross-entropy.
    """
    check_instance("result", result, Result)
    require(
        result.config.imbalance >= 50, "the claim is about strong imbalance (>= 50)"
    )
    ce = 100 * result.mean_error(result.losses[0])
    weighted = 100 * result.mean_error(result.losses[1])
    for name in result.losses[3:]:
        ours = 100 * result.mean_error(name)
        require(
            ce - ours >= MIN_GAIN_OVER_CE,
            f"{name}: balanced error {ours:.1f}% is not {MIN_GAIN_OVER_CE} points "
            f"below cross-entropy's {ce:.1f}%",
        )
        require(
            weighted - ours >= MIN_GAIN_OVER_WEIGHTED_CE,
            f"{name}: balanced error {ours:.1f}% is not {MIN_GAIN_OVER_WEIGHTED_CE} "
            f"points below weighted cross-entropy's {weighted:.1f}%",
        )


def check_balanced_agreement(result: Result) -> None:
    """Raise :class:`~paperlab.claims.ClaimFailed` unless balanced data make all agree.

    With equal class sizes every adjustment vanishes (the log prior is a constant,
    weights and margins are 1), so the mean balanced errors must lie within
    ``MAX_SPREAD_WHEN_BALANCED`` points of each other.
    """
    check_instance("result", result, Result)
    require(result.config.imbalance == 1.0, "the sanity check needs imbalance == 1")
    means = [100 * result.mean_error(name) for name in result.losses]
    spread = max(means) - min(means)
    require(
        spread <= MAX_SPREAD_WHEN_BALANCED,
        f"balanced errors spread over {spread:.2f} points "
        f"(> {MAX_SPREAD_WHEN_BALANCED}) although the classes are balanced",
    )


# ----------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------


# Colours by position in Result.losses (CE, weighted CE, LA, GLA, GCA): the book's
# baseline colour for CE, its mechanism colour for GCA.
_LOSS_COLORS = (COLORS[1], COLORS[3], COLORS[4], COLORS[2], COLORS[0])


def _color(result: Result, name: str) -> str:
    return _LOSS_COLORS[result.losses.index(name) % len(_LOSS_COLORS)]


def plot_balanced_errors(ax, result: Result) -> None:
    """Bar per loss: mean balanced test error (%), with each seed as a dot."""
    check_instance("result", result, Result)
    for i, name in enumerate(result.losses):
        values = 100 * result.balanced_error[name]
        ax.bar(i, values.mean(), color=_color(result, name), alpha=0.85)
        ax.plot(np.full(values.size, i), values, "o", color="black", ms=3)
    ax.set_xticks(range(len(result.losses)), result.losses, rotation=20)
    label_axes(
        ax,
        title=f"Imbalance ratio {result.config.imbalance:g}, "
        f"{result.config.n_seeds} seeds",
        xlabel="training loss",
        ylabel="balanced test error (%)",
        legend=False,
    )


def plot_per_class_accuracy(ax, result: Result, losses: Sequence[str] | None = None):
    """Grouped bars: test accuracy (%) per class, averaged over seeds, for each loss."""
    check_instance("result", result, Result)
    losses = list(result.losses if losses is None else losses)
    for name in losses:
        check_choice("losses entry", name, result.losses)
    c = result.config.n_classes
    width = 0.8 / len(losses)
    for i, name in enumerate(losses):
        accuracy = 100 * result.class_accuracy[name].mean(0)
        ax.bar(
            np.arange(c) + (i - (len(losses) - 1) / 2) * width,
            accuracy,
            width,
            label=name,
            color=_color(result, name),
        )
    ticks = [f"{k}\n({n})" for k, n in enumerate(result.counts)]
    ax.set_xticks(range(c), ticks)
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    label_axes(
        ax,
        title=f"Per-class test accuracy, imbalance ratio {result.config.imbalance:g}",
        xlabel="class (training examples)",
        ylabel="test accuracy (%)",
        legend=False,
    )
    ax.legend(ncol=len(losses), loc="upper center")

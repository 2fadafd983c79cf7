r"""MDiffFR: a diffusion model on the server generates embeddings for cold-start items.

Fu, Zhang, Zou and Li, "MDiffFR: Modality-Guided Diffusion Generation for Cold-start
Items in Federated Recommendation", arXiv 2512.24715.

In federated recommendation each client keeps one user's vector and interactions; the
server only sees item embeddings, aggregated from the clients' updates. A new
(cold-start) item has no interactions, so no client ever trains its embedding. The
mapping paradigm fits a deterministic network from the item's modality feature
:math:`c` to its embedding; IFedRec, an earlier federated cold-start method, is of
this kind (a network from item attributes to embeddings, trained on the warm items).
MDiffFR instead trains a conditional diffusion model on the warm items' embeddings and
samples a new item's embedding from noise, guided by :math:`c`:

.. math::

    e_t = \sqrt{\bar\alpha_t}\, e_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon, \qquad
    \mathcal{L} = \mathbb{E}_{e_0, t, \epsilon}
        \lVert \epsilon - \epsilon_\theta(e_t, t, c) \rVert^2 .

This module builds a synthetic world whose item latents have a part the modality
feature explains and a "style" part it cannot see, trains federated matrix
factorisation on it (the client loop is :mod:`paperlab.kernels.federated_mf`), fits
both server models (NumPy MLPs trained with :class:`paperlab.optim.Adam`), and
compares the generated cold-item embeddings with the warm ones.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from paperlab.claims import require
from paperlab.kernels.federated_mf import federated_round
from paperlab.optim import Adam
from paperlab.ranking import rank_of_targets, recall_at_k
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "VARIANTS",
    "VARIANT_NAMES",
    "World",
    "make_world",
    "train_federated_mf",
    "mlp_init",
    "mlp_forward",
    "mlp_backward",
    "Schedule",
    "make_schedule",
    "time_embedding",
    "q_sample",
    "fit_regressor",
    "predict_regressor",
    "fit_denoiser",
    "denoiser_eps",
    "sample_embeddings",
    "rbf_mmd2",
    "mmd2_null_quantile",
    "median_bandwidth",
    "sliced_wasserstein",
    "cold_recall_at_k",
    "inversion_r2",
    "Config",
    "SeedMetrics",
    "Result",
    "run_experiment",
    "check_claim",
    "condition_alignment",
    "plot_norms",
    "plot_reverse_steps",
    "ServerModels",
    "fit_server",
    "generate",
]

log = logging.getLogger(__name__)

VARIANTS = ("mdifffr", "mapping", "no_time", "one_step")
VARIANT_NAMES = {
    "mdifffr": "MDiffFR (conditional diffusion)",
    "mapping": "mapping MLP (IFedRec-style)",
    "no_time": "diffusion, denoiser blind to t",
    "one_step": "diffusion, one reverse step",
}

# The claim's thresholds (see check_claim).
MAX_MMD_FRACTION = 0.5
MMD_NULL_QUANTILE = 0.95  # seeds 0-7: mapping MMD^2 6.5-16x this quantile
NORM_TOLERANCE = 0.2
MAPPING_NORM_SHORTFALL = 0.2
MIN_RECALL_FRACTION = 0.9


# ------------------------------------------------------------------ the world


@dataclass(frozen=True)
class World:
    """Users, items, modality features and interactions of the synthetic world."""

    user_latent: np.ndarray = field(repr=False)  # (n_users, dim_latent)
    item_latent: np.ndarray = field(repr=False)  # (n_items, dim_latent): [s, u]
    cond: np.ndarray = field(repr=False)  # (n_items, dim_cond): c = A s + noise
    interactions: np.ndarray = field(repr=False)  # (n_users, n_items) bool
    n_warm: int  # items 0 .. n_warm-1 are warm, the rest cold

    @property
    def n_users(self) -> int:
        """Number of users (one client each)."""
        return int(self.interactions.shape[0])

    @property
    def n_items(self) -> int:
        """Number of items, warm and cold."""
        return int(self.interactions.shape[1])


def make_world(
    rng: np.random.Generator,
    *,
    n_users: int = 300,
    n_items: int = 500,
    n_cold: int = 100,
    dim_shared: int = 6,
    dim_style: int = 10,
    dim_cond: int = 16,
    cond_noise: float = 0.1,
    signal: float = 2.5,
    bias: float = -4.5,
) -> World:
    """Draw the synthetic world.

    Each item has a latent :math:`z = [s, u]`: the shared part :math:`s`
    (``dim_shared``) is what its modality feature :math:`c = A s + \\text{noise}`
    (``dim_cond``) describes; the style part :math:`u` (``dim_style``) is invisible to
    :math:`c`. A user with latent :math:`w` interacts with an item with probability
    :math:`\\sigma(\\text{signal}\\cdot w^\\top z + \\text{bias})`. The last ``n_cold``
    items are cold: their interactions are held out for evaluation.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_users, n_items, n_cold : int
        Sizes; ``n_cold`` is at least 1 and below ``n_items``.
    dim_shared, dim_style, dim_cond : int
        Latent and feature widths.
    cond_noise : float
        Standard deviation of the noise added to ``A s``.
    signal, bias : float
        Scale and offset of the interaction logit.

    Returns
    -------
    World
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    n_users = check_int("n_users", n_users, minimum=2)
    n_items = check_int("n_items", n_items, minimum=4)
    n_cold = check_int("n_cold", n_cold, minimum=1, maximum=n_items - 2)
    dim_shared = check_int("dim_shared", dim_shared, minimum=1)
    dim_style = check_int("dim_style", dim_style, minimum=0)
    dim_cond = check_int("dim_cond", dim_cond, minimum=1)
    cond_noise = check_float("cond_noise", cond_noise, minimum=0.0)
    signal = check_float("signal", signal, minimum=0.0)
    bias = check_float("bias", bias)
    dim_latent = dim_shared + dim_style
    scale = 1.0 / math.sqrt(dim_latent)
    user_latent = rng.normal(0.0, 1.0, size=(n_users, dim_latent))
    item_latent = rng.normal(0.0, scale, size=(n_items, dim_latent))
    mixing = rng.normal(0.0, 1.0, size=(dim_shared, dim_cond))
    cond = item_latent[:, :dim_shared] @ mixing * math.sqrt(dim_latent / dim_cond)
    cond = cond + cond_noise * rng.standard_normal(cond.shape)
    logits = signal * user_latent @ item_latent.T + bias
    interactions = rng.random(logits.shape) < 1.0 / (1.0 + np.exp(-logits))
    return World(user_latent, item_latent, cond, interactions, n_items - n_cold)


# ------------------------------------------------------- federated training


def train_federated_mf(
    world: World,
    rng: np.random.Generator,
    *,
    dim: int = 16,
    n_rounds: int = 20,
    local_epochs: int = 2,
    n_neg: int = 4,
    lr: float = 0.05,
    reg: float = 1e-3,
    server_lr: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Federated matrix factorisation on the warm items.

    Every round each client trains its user vector and a local copy of the item rows
    on its warm positives and ``n_neg`` negatives per positive, drawn from the warm
    items it has not interacted with (see :mod:`paperlab.kernels.federated_mf`); the
    server adds ``server_lr`` times the sum of the clients' item updates to the item
    matrix. Cold items never appear, so they get no embedding.

    Parameters
    ----------
    world : World
    rng : numpy.random.Generator
        Draws the initial vectors and the negatives.
    dim : int
        Embedding width.
    n_rounds, local_epochs, n_neg : int
        Rounds, local epochs per round, negatives per positive.
    lr, reg, server_lr : float
        Client step size, L2 weight, server step on the summed updates.

    Returns
    -------
    user_mat : ndarray, shape (n_users, dim)
    item_mat : ndarray, shape (n_warm, dim)
        The warm items' embeddings.
    """
    check_instance("world", world, World)
    dim = check_int("dim", dim, minimum=1)
    n_rounds = check_int("n_rounds", n_rounds, minimum=0)
    local_epochs = check_int("local_epochs", local_epochs, minimum=1)
    n_neg = check_int("n_neg", n_neg, minimum=0)
    server_lr = check_float("server_lr", server_lr, minimum=0.0, strict_minimum=True)
    warm = world.interactions[:, : world.n_warm]
    counts = warm.sum(axis=1)
    pos_ptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    pos_items = np.nonzero(warm)[1].astype(np.int64)
    user_mat = rng.normal(0.0, 0.1, size=(world.n_users, dim))
    item_mat = rng.normal(0.0, 0.1, size=(world.n_warm, dim))
    for r in range(n_rounds):
        neg = _draw_negatives(warm, pos_ptr, local_epochs, n_neg, rng)
        user_mat, delta = federated_round(
            user_mat, item_mat, pos_ptr, pos_items, neg, lr, reg
        )
        item_mat = item_mat + server_lr * delta
        log.debug(
            "round %d: mean item norm %.3f", r, np.linalg.norm(item_mat, axis=1).mean()
        )
    return user_mat, item_mat


def _draw_negatives(warm, pos_ptr, n_epochs: int, n_neg: int, rng) -> np.ndarray:
    """Uniform negatives per positive, redrawn where they hit the user's positives."""
    n_users, n_warm = warm.shape
    owner = np.repeat(np.arange(n_users), np.diff(pos_ptr))
    neg = rng.integers(0, n_warm, size=(n_epochs, owner.size, n_neg))
    for _ in range(5):
        clash = warm[owner[None, :, None], neg]
        if not clash.any():
            break
        neg[clash] = rng.integers(0, n_warm, size=int(clash.sum()))
    return neg


# ----------------------------------------------------------- NumPy MLP


def mlp_init(sizes: tuple[int, ...], rng: np.random.Generator) -> list[np.ndarray]:
    """Weights and biases ``[W1, b1, W2, b2, ...]`` of an MLP with layer ``sizes``.

    Float32 (training speed); weights drawn with standard deviation
    ``1 / sqrt(fan_in)``, biases zero.
    """
    if len(sizes) < 2:
        raise ValueError(f"sizes must name at least 2 layer widths, got {sizes!r}")
    sizes = tuple(check_int(f"sizes[{i}]", s, minimum=1) for i, s in enumerate(sizes))
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        W = rng.normal(0.0, 1.0 / math.sqrt(fan_in), (fan_in, fan_out))
        params.append(W.astype(np.float32))
        params.append(np.zeros(fan_out, dtype=np.float32))
    return params


def _silu(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sig = 1.0 / (1.0 + np.exp(-x))
    return x * sig, sig


def mlp_forward(params: list[np.ndarray], X: np.ndarray):
    """Output of the MLP (SiLU between layers, linear last layer) and its cache.

    Parameters
    ----------
    params : list of ndarray
        As returned by :func:`mlp_init`.
    X : ndarray, shape (batch, sizes[0])

    Returns
    -------
    out : ndarray, shape (batch, sizes[-1])
    cache : list
        What :func:`mlp_backward` needs.
    """
    cache = []
    h = X
    n_layers = len(params) // 2
    for layer in range(n_layers):
        W, b = params[2 * layer], params[2 * layer + 1]
        pre = h @ W + b
        cache.append(h)
        if layer < n_layers - 1:
            h, sig = _silu(pre)
            cache.append((pre, sig))
        else:
            h = pre
    return h, cache


def mlp_backward(params: list[np.ndarray], cache, grad_out: np.ndarray):
    """Gradients of a loss with respect to every parameter, by backpropagation.

    ``grad_out`` is the loss's gradient with respect to the MLP's output; the result
    lists one gradient per entry of ``params``, in order.
    """
    n_layers = len(params) // 2
    grads = [np.empty(0)] * len(params)
    g = grad_out
    for layer in range(n_layers - 1, -1, -1):
        W = params[2 * layer]
        h_in = cache[2 * layer]
        grads[2 * layer] = h_in.T @ g
        grads[2 * layer + 1] = g.sum(axis=0)
        if layer > 0:
            pre, sig = cache[2 * layer - 1]
            g = (g @ W.T) * (sig * (1.0 + pre * (1.0 - sig)))
    return grads


# ------------------------------------------------------------- diffusion


@dataclass(frozen=True)
class Schedule:
    """The noise schedule: :math:`\\beta_t`, :math:`\\alpha_t = 1 - \\beta_t` and
    :math:`\\bar\\alpha_t = \\prod_{s \\le t} \\alpha_s`, for ``t = 1..n_steps``
    (index ``t - 1``)."""

    betas: np.ndarray = field(repr=False)
    alpha_bars: np.ndarray = field(repr=False)

    @property
    def n_steps(self) -> int:
        """:math:`T`, the number of noising steps."""
        return int(self.betas.shape[0])


def make_schedule(
    n_steps: int = 100, beta_min: float = 1e-4, beta_max: float = 0.1
) -> Schedule:
    """A linear :math:`\\beta` schedule from ``beta_min`` to ``beta_max``."""
    n_steps = check_int("n_steps", n_steps, minimum=1)
    beta_min = check_float("beta_min", beta_min, minimum=0.0, strict_minimum=True)
    beta_max = check_float("beta_max", beta_max, minimum=beta_min, maximum=0.999)
    betas = np.linspace(beta_min, beta_max, n_steps)
    return Schedule(betas, np.cumprod(1.0 - betas))


def time_embedding(t: np.ndarray, dim: int = 16, n_steps: int = 100) -> np.ndarray:
    """Sinusoidal embedding of integer steps ``t`` (shape ``(len(t), dim)``)."""
    dim = check_int("dim", dim, minimum=2)
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    t = np.asarray(t, dtype=np.float64) / n_steps
    freqs = np.exp(np.linspace(0.0, math.log(1000.0), dim // 2))
    angles = t[:, None] * freqs[None, :]
    return np.concatenate((np.sin(angles), np.cos(angles)), axis=1)


def q_sample(x0: np.ndarray, t: np.ndarray, eps: np.ndarray, schedule: Schedule):
    """The forward process in closed form:
    :math:`e_t = \\sqrt{\\bar\\alpha_t} e_0 + \\sqrt{1 - \\bar\\alpha_t}\\,\\epsilon`.

    ``t`` holds steps in ``1..T``, one per row of ``x0``.
    """
    ab = schedule.alpha_bars[np.asarray(t) - 1][:, None]
    return np.sqrt(ab) * x0 + np.sqrt(1.0 - ab) * eps


def _denoiser_input(x_t, t, cond, schedule: Schedule, use_time: bool, t_dim: int):
    temb = time_embedding(t, t_dim, schedule.n_steps)
    if not use_time:
        temb = np.zeros_like(temb)
    return np.concatenate((x_t, temb, cond), axis=1)


def _fit(params, batches, lr: float, n_iters: int):
    """Adam on mean squared error; ``batches()`` returns (inputs, targets)."""
    optimizer = Adam(params, lr=lr)
    losses = np.empty(n_iters)
    for it in range(n_iters):
        X, Y = (a.astype(np.float32) for a in batches())
        out, cache = mlp_forward(params, X)
        resid = out - Y
        losses[it] = float(np.mean(resid**2))
        optimizer.step(mlp_backward(params, cache, 2.0 * resid / resid.size))
    return losses


def fit_regressor(
    cond: np.ndarray,
    emb: np.ndarray,
    rng: np.random.Generator,
    *,
    hidden: int = 64,
    n_iters: int = 500,
    batch: int = 128,
    lr: float = 3e-3,
) -> tuple[list[np.ndarray], np.ndarray]:
    """The mapping baseline: an MLP ``c -> e`` fitted by mean squared error.

    Returns the parameters and the training loss per iteration.
    """
    cond, emb = _check_pairs(cond, emb)
    n_iters = check_int("n_iters", n_iters, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
    params = mlp_init((cond.shape[1], hidden, hidden, emb.shape[1]), rng)

    def batches():
        idx = rng.integers(0, cond.shape[0], size=batch)
        return cond[idx], emb[idx]

    return params, _fit(params, batches, lr, n_iters)


def predict_regressor(params: list[np.ndarray], cond: np.ndarray) -> np.ndarray:
    """The mapping baseline's embeddings for modality features ``cond``."""
    return mlp_forward(params, check_array("cond", cond, ndim=2, finite=True))[0]


def fit_denoiser(
    emb: np.ndarray,
    cond: np.ndarray,
    schedule: Schedule,
    rng: np.random.Generator,
    *,
    use_time: bool = True,
    t_dim: int = 16,
    hidden: int = 64,
    n_iters: int = 1200,
    batch: int = 128,
    lr: float = 3e-3,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Train :math:`\\epsilon_\\theta(e_t, t, c)` with the noise-prediction loss.

    Each iteration draws warm items, steps :math:`t \\sim U\\{1..T\\}` and noise
    :math:`\\epsilon`, forms :math:`e_t` with :func:`q_sample` and takes an Adam step
    on :math:`\\lVert \\epsilon - \\epsilon_\\theta(e_t, t, c) \\rVert^2`. The
    denoiser is an MLP on the concatenation of :math:`e_t`, the sinusoidal embedding
    of :math:`t` (zeros if ``use_time`` is false) and :math:`c`.

    Returns the parameters and the training loss per iteration.
    """
    cond, emb = _check_pairs(cond, emb)
    check_instance("schedule", schedule, Schedule)
    n_iters = check_int("n_iters", n_iters, minimum=1)
    batch = check_int("batch", batch, minimum=1)
    lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
    dim = emb.shape[1]
    params = mlp_init((dim + t_dim + cond.shape[1], hidden, hidden, dim), rng)

    def batches():
        idx = rng.integers(0, emb.shape[0], size=batch)
        t = rng.integers(1, schedule.n_steps + 1, size=batch)
        eps = rng.standard_normal((batch, dim))
        x_t = q_sample(emb[idx], t, eps, schedule)
        return _denoiser_input(x_t, t, cond[idx], schedule, use_time, t_dim), eps

    return params, _fit(params, batches, lr, n_iters)


def denoiser_eps(params, x_t, t, cond, schedule: Schedule, use_time: bool = True):
    """The denoiser's noise estimate :math:`\\epsilon_\\theta(x_t, t, c)`."""
    t_dim = params[0].shape[0] - x_t.shape[1] - cond.shape[1]
    return mlp_forward(
        params, _denoiser_input(x_t, t, cond, schedule, use_time, t_dim)
    )[0]


def sample_embeddings(
    params: list[np.ndarray],
    cond: np.ndarray,
    schedule: Schedule,
    rng: np.random.Generator,
    *,
    n_reverse: int | None = None,
    use_time: bool = True,
    clip: float = 4.0,
) -> np.ndarray:
    """Generate one embedding per row of ``cond`` by the reverse process.

    Start from :math:`x_T \\sim \\mathcal{N}(0, I)` and walk down ``n_reverse``
    evenly spaced steps :math:`T = \\tau_K > \\dots > \\tau_1` (all ``T`` when
    ``None``). At each step the denoiser's noise estimate gives
    :math:`\\hat x_0 = (x_\\tau - \\sqrt{1 - \\bar\\alpha_\\tau}\\,\\hat\\epsilon) /
    \\sqrt{\\bar\\alpha_\\tau}` (clipped to ``[-clip, clip]``), and the next state is
    drawn from the Gaussian posterior :math:`q(x_{\\tau'} \\mid x_\\tau, \\hat x_0)`
    of the forward process; the last step returns :math:`\\hat x_0`. With
    ``n_reverse=1`` this is one guess of :math:`x_0` from pure noise, made at
    :math:`\\tau = T` where the division by :math:`\\sqrt{\\bar\\alpha_T}` amplifies
    the noise estimate's error: the guess has about the right spread but hardly
    depends on the condition.

    Returns
    -------
    ndarray, shape (len(cond), dim)
    """
    cond = check_array("cond", cond, ndim=2, finite=True)
    check_instance("schedule", schedule, Schedule)
    T = schedule.n_steps
    n_reverse = T if n_reverse is None else check_int("n_reverse", n_reverse, minimum=1)
    n_reverse = min(n_reverse, T)
    dim = params[-1].shape[0]
    steps = np.unique(np.round(np.linspace(1, T, n_reverse)).astype(int))[::-1]
    x = rng.standard_normal((cond.shape[0], dim))
    for k, tau in enumerate(steps):
        ab = schedule.alpha_bars[tau - 1]
        t = np.full(cond.shape[0], tau)
        eps = denoiser_eps(params, x, t, cond, schedule, use_time)
        x0 = np.clip((x - math.sqrt(1.0 - ab) * eps) / math.sqrt(ab), -clip, clip)
        if k == len(steps) - 1:
            return x0
        ab_prev = schedule.alpha_bars[steps[k + 1] - 1]
        beta = 1.0 - ab / ab_prev
        mean = (
            math.sqrt(ab_prev) * beta / (1.0 - ab) * x0
            + math.sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab) * x
        )
        var = beta * (1.0 - ab_prev) / (1.0 - ab)
        x = mean + math.sqrt(var) * rng.standard_normal(x.shape)
    return x


def _check_pairs(cond, emb) -> tuple[np.ndarray, np.ndarray]:
    cond = check_array("cond", cond, ndim=2, dtype=np.float64, finite=True, min_size=1)
    emb = check_array("emb", emb, ndim=2, dtype=np.float64, finite=True)
    if emb.shape[0] != cond.shape[0]:
        raise ValueError(
            f"emb must have one row per row of cond ({cond.shape[0]}), "
            f"got {emb.shape[0]}"
        )
    return cond, emb


# ---------------------------------------------------------------- metrics


def rbf_mmd2(X: np.ndarray, Y: np.ndarray, bandwidth: float) -> float:
    """Squared maximum mean discrepancy with a Gaussian kernel (unbiased estimate).

    :math:`\\mathrm{MMD}^2 = \\overline{k(x, x')} + \\overline{k(y, y')}
    - 2\\,\\overline{k(x, y)}` with :math:`k(a, b) = \\exp(-\\lVert a - b\\rVert^2 /
    (2 h^2))`; the within-sample averages skip the pairs of a point with itself, so
    two samples from one distribution score about zero (slightly negative values
    happen), whatever their sizes. Each sample needs at least two points.
    """
    X = check_array("X", X, ndim=2, dtype=np.float64, finite=True, min_size=1)
    Y = check_array("Y", Y, ndim=2, dtype=np.float64, finite=True, min_size=1)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y must have equal widths, got {X.shape}, {Y.shape}")
    h = check_float("bandwidth", bandwidth, minimum=0.0, strict_minimum=True)

    if X.shape[0] < 2 or Y.shape[0] < 2:
        raise ValueError("X and Y must have at least 2 rows each")

    def kernel(A, B):
        sq = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2.0 * A @ B.T
        return np.exp(-np.maximum(sq, 0.0) / (2.0 * h * h))

    def within(A):
        n = A.shape[0]
        return float((kernel(A, A).sum() - n) / (n * (n - 1)))

    return within(X) + within(Y) - 2.0 * float(kernel(X, Y).mean())


def mmd2_null_quantile(
    X: np.ndarray,
    Y: np.ndarray,
    bandwidth: float,
    rng: np.random.Generator,
    *,
    n_perm: int = 200,
    quantile: float = MMD_NULL_QUANTILE,
) -> float:
    """A permutation test's threshold for :func:`rbf_mmd2`.

    Pool the two samples, split the pool at random into groups of the original sizes
    ``n_perm`` times, and return the ``quantile`` of the unbiased MMD^2 over those
    splits: the values the estimate takes when there is no difference at all. An
    MMD^2 above it is a real difference at level ``1 - quantile``; values around
    zero, negative ones included, are sampling noise.

    Every split is scored at once from the pooled kernel matrix ``K``: with the 0/1
    membership vector ``s`` of the first group, its within sum is ``s^T K s``.
    """
    X = check_array("X", X, ndim=2, dtype=np.float64, finite=True, min_size=1)
    Y = check_array("Y", Y, ndim=2, dtype=np.float64, finite=True, min_size=1)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y must have equal widths, got {X.shape}, {Y.shape}")
    h = check_float("bandwidth", bandwidth, minimum=0.0, strict_minimum=True)
    n_perm = check_int("n_perm", n_perm, minimum=1)
    quantile = check_float("quantile", quantile, minimum=0.0, maximum=1.0)
    n, m = X.shape[0], Y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("X and Y must have at least 2 rows each")
    Z = np.concatenate((X, Y), axis=0)
    sq = (Z**2).sum(1)[:, None] + (Z**2).sum(1)[None, :] - 2.0 * Z @ Z.T
    K = np.exp(-np.maximum(sq, 0.0) / (2.0 * h * h))
    member = np.zeros((n + m, n_perm))
    for p in range(n_perm):
        member[rng.permutation(n + m)[:n], p] = 1.0
    K_member = K @ member
    within_x = (member * K_member).sum(axis=0)  # s^T K s
    x_to_all = K_member.sum(axis=0)  # 1^T K s
    within_y = K.sum() - 2.0 * x_to_all + within_x
    across = x_to_all - within_x
    diag = float(np.trace(K)) / (n + m)  # 1 for the Gaussian kernel
    stats = (
        (within_x - n * diag) / (n * (n - 1))
        + (within_y - m * diag) / (m * (m - 1))
        - 2.0 * across / (n * m)
    )
    return float(np.quantile(stats, quantile))


def median_bandwidth(X: np.ndarray) -> float:
    """The median heuristic: :math:`h` with :math:`2h^2` the median squared distance
    between distinct rows of ``X``."""
    X = check_array("X", X, ndim=2, dtype=np.float64, finite=True)
    if X.shape[0] < 2:
        raise ValueError(f"X must have at least 2 rows, got {X.shape[0]}")
    sq = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    return math.sqrt(float(np.median(sq[np.triu_indices(X.shape[0], 1)])) / 2)


def sliced_wasserstein(
    X: np.ndarray, Y: np.ndarray, rng: np.random.Generator, n_proj: int = 64
) -> float:
    """Mean 1-Wasserstein distance of the two samples along random unit directions.

    Along each direction the distance is the mean absolute gap between the two
    projected samples' quantile functions, read on a common grid of 200 levels.
    """
    X = check_array("X", X, ndim=2, dtype=np.float64, finite=True, min_size=1)
    Y = check_array("Y", Y, ndim=2, dtype=np.float64, finite=True, min_size=1)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y must have equal widths, got {X.shape}, {Y.shape}")
    n_proj = check_int("n_proj", n_proj, minimum=1)
    dirs = rng.standard_normal((X.shape[1], n_proj))
    dirs /= np.linalg.norm(dirs, axis=0)
    levels = (np.arange(200) + 0.5) / 200
    qx = np.quantile(X @ dirs, levels, axis=0)
    qy = np.quantile(Y @ dirs, levels, axis=0)
    return float(np.abs(qx - qy).mean())


def cold_recall_at_k(
    world: World,
    user_mat: np.ndarray,
    warm_emb: np.ndarray,
    cold_emb: np.ndarray,
    k: int = 20,
) -> float:
    """Recall@K of held-out cold interactions, ranked in the mixed warm+cold pool.

    One query per (user, cold item it interacted with): all items are scored by
    :math:`p_u^\\top e_i`; the user's warm positives and other cold positives are
    excluded, and the query counts as a hit when the target ranks in the top ``k``.
    """
    check_instance("world", world, World)
    items = np.concatenate((warm_emb, cold_emb), axis=0)
    if items.shape[0] != world.n_items or user_mat.shape[0] != world.n_users:
        raise ValueError("user_mat, warm_emb and cold_emb must match the world's sizes")
    users, targets = np.nonzero(world.interactions[:, world.n_warm :])
    targets = targets + world.n_warm
    if users.size == 0:
        raise ValueError("the world has no cold interactions to evaluate")
    scores = user_mat[users] @ items.T
    exclude = world.interactions[users].copy()
    ranks = rank_of_targets(scores, targets, exclude=exclude)
    return recall_at_k(ranks, k)


def inversion_r2(
    emb: np.ndarray, cond: np.ndarray, rng: np.random.Generator, ridge: float = 1e-2
) -> float:
    """An inversion probe: held-out :math:`R^2` of ridge regression ``emb -> cond``.

    Half of the items (at random) fit the ridge map, the other half score it. A value
    near 1 means the modality feature can be read back from the embedding.
    """
    cond, emb = _check_pairs(cond, emb)
    ridge = check_float("ridge", ridge, minimum=0.0)
    n = emb.shape[0]
    if n < 4:
        raise ValueError(f"emb must have at least 4 rows, got {n}")
    order = rng.permutation(n)
    fit, test = order[: n // 2], order[n // 2 :]
    A = np.hstack((emb, np.ones((n, 1))))
    gram = A[fit].T @ A[fit] + ridge * np.eye(A.shape[1])
    W = np.linalg.solve(gram, A[fit].T @ cond[fit])
    resid = cond[test] - A[test] @ W
    total = cond[test] - cond[test].mean(axis=0)
    return float(1.0 - (resid**2).sum() / (total**2).sum())


# ------------------------------------------------------------ experiment


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the variant the claim is checked on."""

    variant: str = "mdifffr"  # one of VARIANTS
    seeds: tuple[int, ...] = (0, 1, 2)  # one world and training run per seed
    n_users: int = 300  # clients, one user each
    n_items: int = 500  # warm + cold
    n_cold: int = 100  # held-out cold-start items
    dim: int = 16  # embedding width
    n_rounds: int = 20  # federated rounds
    n_steps: int = 100  # diffusion steps T
    diffusion_iters: int = 1200  # denoiser training iterations
    regressor_iters: int = 500  # mapping-MLP training iterations
    k: int = 20  # Recall@K

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        if not isinstance(self.seeds, tuple) or not self.seeds:
            raise ValueError(f"seeds must be a non-empty tuple, got {self.seeds!r}")
        for s in self.seeds:
            check_int("seeds", s, minimum=0)
        check_int("n_users", self.n_users, minimum=2)
        check_int("n_items", self.n_items, minimum=4)
        check_int("n_cold", self.n_cold, minimum=1, maximum=self.n_items - 2)
        check_int("dim", self.dim, minimum=1)
        check_int("n_rounds", self.n_rounds, minimum=1)
        check_int("n_steps", self.n_steps, minimum=2)
        check_int("diffusion_iters", self.diffusion_iters, minimum=1)
        check_int("regressor_iters", self.regressor_iters, minimum=1)
        check_int("k", self.k, minimum=1)


@dataclass(frozen=True)
class SeedMetrics:
    """One method's cold-item embeddings on one seed, compared with the warm ones."""

    seed: int
    method: str  # a VARIANTS name
    mmd2: float  # RBF MMD^2 to the warm embeddings (unbiased: can be < 0)
    mmd2_null: float  # 95th percentile of that MMD^2 under a permutation null
    sliced_w1: float  # sliced Wasserstein-1 distance to the warm embeddings
    norm_ratio: float  # mean norm / warm mean norm
    recall: float  # mixed-pool Recall@K of cold interactions
    inversion_r2: float  # ridge probe emb -> c, held-out R^2 (an illustration)


@dataclass(frozen=True)
class ServerModels:
    """What the server fitted on one seed (for the widget and the exercises)."""

    world: World = field(repr=False)
    user_mat: np.ndarray = field(repr=False)
    warm_emb: np.ndarray = field(repr=False)  # standardised warm embeddings
    cond: np.ndarray = field(repr=False)  # standardised modality features
    regressor: list = field(repr=False)
    denoiser: list = field(repr=False)
    schedule: Schedule = field(repr=False)
    scale: float  # embedding standardisation: e_std = (e - mean) / scale
    mean: np.ndarray = field(repr=False)
    losses: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Result:
    """Per-seed metrics of every method run, and one seed's embeddings for plots."""

    config: Config
    metrics: tuple[SeedMetrics, ...]
    warm_emb: np.ndarray = field(repr=False)  # first seed, standardised
    generated: dict = field(repr=False)  # method -> (n_cold, dim), first seed
    diffusion_losses: np.ndarray = field(repr=False)  # first seed
    models: ServerModels = field(repr=False)  # the first seed's fitted server

    def get(self, method: str) -> list[SeedMetrics]:
        """The metrics of ``method``, one per seed."""
        rows = [m for m in self.metrics if m.method == method]
        if not rows:
            raise KeyError(f"no metrics for method {method!r}")
        return rows

    def mean(self, method: str, name: str) -> float:
        """Mean over seeds of one metric of one method."""
        return float(np.mean([getattr(m, name) for m in self.get(method)]))


def fit_server(config: Config, seed: int, use_time: bool = True) -> ServerModels:
    """Draw the world, train federated MF, and fit both server models for ``seed``."""
    check_instance("config", config, Config)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng([seed, 11])
    world = make_world(
        rng, n_users=config.n_users, n_items=config.n_items, n_cold=config.n_cold
    )
    user_mat, item_mat = train_federated_mf(
        world, rng, dim=config.dim, n_rounds=config.n_rounds
    )
    mean = item_mat.mean(axis=0)
    scale = float((item_mat - mean).std())
    warm_emb = (item_mat - mean) / scale
    cond = world.cond / world.cond[: world.n_warm].std()
    schedule = make_schedule(config.n_steps)
    regressor, _ = fit_regressor(
        cond[: world.n_warm], warm_emb, rng, n_iters=config.regressor_iters
    )
    denoiser, losses = fit_denoiser(
        warm_emb,
        cond[: world.n_warm],
        schedule,
        rng,
        use_time=use_time,
        n_iters=config.diffusion_iters,
    )
    return ServerModels(
        world,
        user_mat,
        warm_emb,
        cond,
        regressor,
        denoiser,
        schedule,
        scale,
        mean,
        losses,
    )


def generate(models: ServerModels, method: str, rng: np.random.Generator):
    """Standardised cold-item embeddings from one method (a VARIANTS name)."""
    check_choice("method", method, VARIANTS)
    cold_cond = models.cond[models.world.n_warm :]
    if method == "mapping":
        return predict_regressor(models.regressor, cold_cond)
    n_reverse = 1 if method == "one_step" else None
    return sample_embeddings(
        models.denoiser,
        cold_cond,
        models.schedule,
        rng,
        n_reverse=n_reverse,
        use_time=method != "no_time",
    )


def _measure(models: ServerModels, method, emb, seed, k) -> SeedMetrics:
    rng = np.random.default_rng([seed, 23])
    warm = models.warm_emb
    bandwidth = median_bandwidth(warm)
    world = models.world
    return SeedMetrics(
        seed=seed,
        method=method,
        mmd2=rbf_mmd2(emb, warm, bandwidth),
        mmd2_null=mmd2_null_quantile(
            emb, warm, bandwidth, np.random.default_rng([seed, 29])
        ),
        sliced_w1=sliced_wasserstein(emb, warm, rng),
        norm_ratio=float(
            np.linalg.norm(emb, axis=1).mean() / np.linalg.norm(warm, axis=1).mean()
        ),
        recall=cold_recall_at_k(
            world,
            models.user_mat,
            warm * models.scale + models.mean,
            emb * models.scale + models.mean,
            k,
        ),
        inversion_r2=inversion_r2(emb, world.cond[world.n_warm :], rng),
    )


def run_experiment(config: Config) -> Result:
    """Train, generate and measure every method on every seed.

    Per seed: draw the world, run federated MF on the warm items, standardise the
    warm embeddings, fit the mapping MLP and the conditional denoiser on them, and
    generate the cold items' embeddings with the mapping MLP, MDiffFR and, if
    ``config.variant`` names one, an ablation. Every method is compared with the warm
    embeddings (MMD, sliced Wasserstein, norm ratio), ranked in the mixed pool
    (Recall@K) and probed for inversion.

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    methods = ["mapping", "mdifffr"]
    if config.variant not in methods:
        methods.append(config.variant)
    metrics, generated = [], {}
    first = None
    for seed in config.seeds:
        models = fit_server(config, seed)
        extra = None
        if "no_time" in methods:
            extra = fit_server(config, seed, use_time=False)
        for method in methods:
            source = extra if method == "no_time" else models
            emb = generate(source, method, np.random.default_rng([seed, 37]))
            metrics.append(_measure(source, method, emb, seed, config.k))
            if first is None or first == seed:
                generated[method] = emb
        if first is None:
            first = seed
            first_models = models
        log.info("seed %d done", seed)
    return Result(
        config,
        tuple(metrics),
        first_models.warm_emb,
        generated,
        first_models.losses,
        first_models,
    )


def check_claim(result: Result) -> None:
    """Check the chapter's claim for ``result.config.variant`` on every seed.

    1. Its cold embeddings' MMD^2 to the warm embeddings is at most half the
       mapping MLP's, and the mapping MLP's is above the 95th percentile of its
       permutation null (:func:`mmd2_null_quantile`). The estimate is unbiased, so a
       sample from the warm distribution scores about zero, sometimes below; the
       second condition makes sure the gap being halved is a real one, not noise;
    2. their mean norm is within 20% of the warm items' mean norm;
    3. the mapping MLP's mean norm is at least 20% below the warm items' (the
       misalignment the mechanism is meant to remove);
    4. its cold items' mixed-pool Recall@K is at least 0.9 x the mapping MLP's, so
       the samples still follow their modality condition (an unconditional or
       noise-dominated generator matches the warm spread but fails here).

    Raises
    ------
    paperlab.claims.ClaimFailed
        If any part fails on any seed; the message names the seed and the numbers.
    """
    check_instance("result", result, Result)
    variant = result.config.variant
    mapping = {m.seed: m for m in result.get("mapping")}
    for m in result.get(variant):
        base = mapping[m.seed]
        require(
            base.mmd2 > base.mmd2_null,
            f"seed {m.seed}: the mapping MLP's MMD^2 {base.mmd2:.4f} is within its "
            f"permutation null (95th percentile {base.mmd2_null:.4f})",
        )
        require(
            m.mmd2 <= MAX_MMD_FRACTION * base.mmd2,
            f"seed {m.seed}: {variant} MMD^2 {m.mmd2:.4f} is not at most "
            f"{MAX_MMD_FRACTION} x the mapping MLP's {base.mmd2:.4f}",
        )
        require(
            abs(m.norm_ratio - 1.0) <= NORM_TOLERANCE,
            f"seed {m.seed}: {variant} mean norm is {m.norm_ratio:.2f} x the warm "
            f"items', not within {NORM_TOLERANCE:.0%}",
        )
        require(
            base.norm_ratio <= 1.0 - MAPPING_NORM_SHORTFALL,
            f"seed {m.seed}: the mapping MLP's mean norm is {base.norm_ratio:.2f} x "
            f"the warm items', not {MAPPING_NORM_SHORTFALL:.0%} lower",
        )
        require(
            m.recall >= MIN_RECALL_FRACTION * base.recall,
            f"seed {m.seed}: {variant} Recall@{result.config.k} {m.recall:.3f} is "
            f"below {MIN_RECALL_FRACTION} x the mapping MLP's {base.recall:.3f}",
        )


# ----------------------------------------------------------------- plots


def _norm_histogram(ax, samples: dict, bins: np.ndarray, title: str) -> None:
    """Step histograms (share of items per bin) of the row norms of each sample,
    labelled, with the legend in head room above the bars."""
    from paperlab.plotting import label_axes

    top = 0.0
    for label, (emb, color) in samples.items():
        norms = np.linalg.norm(np.asarray(emb), axis=1)
        weights = np.full(norms.shape, 1.0 / norms.size)
        counts, _, _ = ax.hist(
            norms,
            bins=bins,
            weights=weights,
            histtype="step",
            lw=2.0,
            color=color,
            label=f"{label} (mean {norms.mean():.2f})",
        )
        top = max(top, float(np.max(counts)))
    ax.set_ylim(0.0, top * (1.15 + 0.13 * len(samples)))
    label_axes(
        ax,
        title=title,
        xlabel="embedding norm (standardised units)",
        ylabel="share of items",
        legend=False,
    )
    ax.legend(loc="upper left")


def _norm_bins(*samples: np.ndarray) -> np.ndarray:
    top = max(float(np.linalg.norm(e, axis=1).max()) for e in samples)
    return np.linspace(0.0, top * 1.02, 26)


def plot_norms(warm_emb: np.ndarray, mapped: np.ndarray, sampled: np.ndarray, title):
    """Histograms of the embedding norms of the warm items, the mapping MLP's cold
    items and the MDiffFR samples; returns ``(figure, alt_text)``."""
    from paperlab.plotting import COLORS, subplots

    warm_emb = check_array("warm_emb", warm_emb, ndim=2, finite=True)
    mapped = check_array("mapped", mapped, ndim=2, finite=True)
    sampled = check_array("sampled", sampled, ndim=2, finite=True)
    fig, ax = subplots(width=5.6, height=3.6)
    _norm_histogram(
        ax,
        {
            "warm items (trained)": (warm_emb, "0.45"),
            "mapping MLP": (mapped, COLORS[1]),
            "MDiffFR samples": (sampled, COLORS[0]),
        },
        _norm_bins(warm_emb, mapped, sampled),
        title,
    )
    means = [np.linalg.norm(e, axis=1).mean() for e in (warm_emb, mapped, sampled)]
    alt = (
        f"Histograms of embedding norms: {len(warm_emb)} warm items (grey, mean "
        f"{means[0]:.2f}), the mapping MLP's {len(mapped)} cold items (vermillion, "
        f"mean {means[1]:.2f}, shifted to shorter norms) and {len(sampled)} MDiffFR "
        f"samples (blue, mean {means[2]:.2f}, over the warm items' range)."
    )
    return fig, alt


def condition_alignment(mapped: np.ndarray, sampled: np.ndarray):
    """How far generated embeddings follow their modality condition.

    Both sets are projected on the first principal axis of ``mapped`` (the mapping
    MLP's outputs, an estimate of the conditional mean: the direction along which
    the modality feature moves the embedding most).

    Parameters
    ----------
    mapped, sampled : ndarray, shape (n, dim)
        The mapping MLP's and the generator's embeddings of the same ``n`` items.

    Returns
    -------
    x, y : ndarray, shape (n,)
        The projections of ``mapped`` and ``sampled``.
    corr : float
        Their correlation: near 1 when each sample moves with its condition, near 0
        when the samples ignore it.
    """
    mapped = check_array("mapped", mapped, ndim=2, dtype=np.float64, finite=True)
    sampled = check_array(
        "sampled", sampled, ndim=2, dtype=np.float64, finite=True, shape=mapped.shape
    )
    if mapped.shape[0] < 3:
        raise ValueError(f"mapped must have at least 3 rows, got {mapped.shape[0]}")
    center = mapped.mean(axis=0)
    axis = np.linalg.svd(mapped - center, full_matrices=False)[2][0]
    x, y = (mapped - center) @ axis, (sampled - center) @ axis
    return x, y, float(np.corrcoef(x, y)[0, 1])


def plot_reverse_steps(models: ServerModels, n_reverse: int, seed: int = 0):
    """What ``n_reverse`` reverse steps give; returns ``(figure, alt_text)``.

    Left: every cold item's diffusion sample against the mapping MLP's output for
    the same modality feature, both projected on the first principal axis of the
    mapping outputs (the direction along which the feature moves the embedding
    most); samples that follow their condition lie along the diagonal. Right: the
    samples' norms against the warm items'.
    """
    from paperlab.plotting import COLORS, label_axes, subplots

    check_instance("models", models, ServerModels)
    n_reverse = check_int("n_reverse", n_reverse, minimum=1)
    cold_cond = models.cond[models.world.n_warm :]
    rng = np.random.default_rng([seed, 37])
    diff = sample_embeddings(
        models.denoiser, cold_cond, models.schedule, rng, n_reverse=n_reverse
    )
    mapped = predict_regressor(models.regressor, cold_cond)
    x, y, corr = condition_alignment(mapped, diff)
    corr_text = f"{corr:.2f}".replace("-0.00", "0.00")
    warm = models.warm_emb
    mmd = rbf_mmd2(diff, warm, median_bandwidth(warm))
    fig, (left, right) = subplots(1, 2, width=9.6, height=3.8)
    lim = 1.05 * float(max(np.abs(x).max(), np.abs(y).max()))
    left.plot(
        [-lim, lim],
        [-lim, lim],
        ls="--",
        color="0.5",
        lw=1.0,
        label="sample = mapping output",
    )
    left.scatter(
        x, y, s=12, color=COLORS[0], alpha=0.85, label=f"diffusion, {n_reverse} step(s)"
    )
    left.set_xlim(-lim, lim)
    left.set_ylim(-lim, lim)
    label_axes(
        left,
        title=f"Follows its condition? correlation {corr_text}",
        xlabel="mapping MLP output on its PC 1 (standardised units)",
        ylabel="diffusion sample on that axis",
    )
    _norm_histogram(
        right,
        {
            "warm items": (warm, "0.45"),
            f"diffusion, {n_reverse} step(s)": (diff, COLORS[0]),
        },
        _norm_bins(warm, diff),
        f"Warm spread? MMD^2 {mmd:.4f}",
    )
    norm_ratio = (
        np.linalg.norm(diff, axis=1).mean() / np.linalg.norm(warm, axis=1).mean()
    )
    alt = (
        f"Two panels for diffusion samples drawn with {n_reverse} reverse step(s). "
        f"Left: each cold item's sample against the mapping MLP's output on the "
        f"mapping outputs' first principal axis, correlation {corr_text}. Right: "
        f"histograms of embedding norms of the warm items (grey) and the samples "
        f"(blue), whose mean norm is {norm_ratio:.2f} times the warm mean and whose "
        f"MMD^2 to the warm items is {mmd:.4f}."
    )
    return fig, alt

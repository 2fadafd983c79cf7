"""RABO: distributed bilevel optimisation with dual pruning for weak clients.

Li, Zhang, Zheng, Shi, Yuan, Cheng and Yu, "Distributed Bilevel Optimization with Dual
Pruning for Resource-limited Clients", arXiv 2512.24667.

``N`` clients share an outer variable ``x`` and each solves its own inner problem:

    min_x F(x) = (1/N) sum_i f_i(x, y_i*(x)),   y_i*(x) = argmin_y g_i(x, y).

The hypergradient of one client is ``grad_x f - H_xy v`` with ``H_yy v = grad_y f``
(implicit differentiation). RABO estimates it without second derivatives: ``v`` comes
from a few first-order iterations whose Hessian-vector products are central finite
differences of gradients, and ``H_xy v`` is a finite difference of ``grad_x g``. Dual
pruning gives each client masks over the outer and the inner coordinates sized to its
capacity: it trains only its inner coordinates and estimates the hypergradient only on
its outer coordinates. The server averages every outer coordinate over the clients
that covered it; the smallest such count, the minimum coverage ``C_x*``, governs the
convergence rate ``O(1 / sqrt(C_x* Q))`` that the paper proves.

The toy task tunes 40 per-feature ridge penalties ``exp(x_j)`` (outer) for ten clients
whose ridge weights ``y_i`` (inner) are fitted on 200 training samples and judged on
100 validation samples. The training is real distributed training: a server process
and worker processes, each hosting a few clients, exchange tensors with
``torch.distributed`` over the gloo backend on the loopback interface
(:func:`run_distributed`). The baselines are naive ``1/N`` averaging, dropping the
clients that cannot hold the whole model, and the full model with exact implicit
hypergradients (autograd Hessian-vector products inside conjugate gradients).
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing as mp
import os
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from paperlab.claims import require
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
    "ESTIMATORS",
    "DEFAULT_CAPACITIES",
    "SWEEP_CAPACITIES",
    "ClientData",
    "ClientStats",
    "make_client_data",
    "client_stats",
    "stack_stats",
    "capacity_profile",
    "coverage_masks",
    "min_coverage",
    "inner_grad",
    "outer_grad",
    "fd_hvp",
    "fd_cross",
    "fd_hypergradient",
    "exact_hypergradient",
    "batched_cg",
    "implicit_hypergradient",
    "global_objective",
    "optimal_objective",
    "estimator_check",
    "evals_per_coordinate",
    "partial_inner_steps",
    "aggregate",
    "RunSpec",
    "Trace",
    "run_distributed",
    "Config",
    "Result",
    "run_experiment",
    "check_claim",
    "EXPLORE_R_MIN",
    "plot_masks",
    "plot_training",
    "plot_coverage_sweep",
    "plot_explore",
]

log = logging.getLogger(__name__)

VARIANTS = ("rabo", "naive", "drop_weak", "full")
VARIANT_NAMES = {
    "rabo": "RABO (coverage average)",
    "naive": "naive 1/N average",
    "drop_weak": "drop weak clients",
    "full": "full model, exact",
}
ESTIMATORS = ("fd", "exact")
N_CLIENTS_RING = 10  # clients sit on a ring of this size (see make_client_data)
DTYPE = torch.float64

# Capacities of the ten clients: four weak, four middling, two full (C_x* = 5).
DEFAULT_CAPACITIES = (0.3,) * 4 + (0.5,) * 4 + (1.0,) * 2
# Profiles of the coverage sweep: minimum coverage 2, 5 and 10 over 40 coordinates.
SWEEP_CAPACITIES = (
    (0.1,) * 4 + (0.2,) * 4 + (0.4,) * 2,
    DEFAULT_CAPACITIES,
    (1.0,) * 10,
)

# Capacities of the weakest clients in the Explore section's profiles.
EXPLORE_R_MIN = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)

# The claim's thresholds (see check_claim), set from runs over seeds 0-9.
MIN_COSINE = 0.99
MAX_COST_RATIO = 0.6
MAX_EXCESS_VS_FULL = 1.25
MAX_EXCESS_VS_NAIVE = 0.9


# --------------------------------------------------------------------- the task


@dataclass(frozen=True)
class ClientData:
    """One client's samples: ``b = Z w + noise`` with features ``A = Z diag(s)``."""

    A: np.ndarray  # (n_train, d) training features (client-scaled)
    b: np.ndarray  # (n_train,) training targets
    V: np.ndarray  # (n_val, d) validation features (same scaling)
    c: np.ndarray  # (n_val,) validation targets
    scales: np.ndarray  # (d,) the client's feature scaling s


def make_client_data(
    seed: int,
    client: int,
    n_features: int = 40,
    n_active: int = 10,
    n_train: int = 200,
    n_val: int = 100,
    noise: float = 0.5,
    scale_range: float = 3.0,
) -> ClientData:
    """Draw one client's ridge-regression data, reproducibly from ``(seed, client)``.

    The true weights ``w`` are shared by all clients of a seed: ``n_active`` of the
    ``n_features`` entries are nonzero, of magnitude uniform in [0.5, 1.5] and random
    sign. Each client measures the latent features ``Z`` (standard normal) in its own
    units, ``A = Z diag(s)`` with

        log s_j = log(R) cos(2 pi (j / d - client / 10)) + U(-0.5, 0.5),

    ``R = scale_range``: clients sit on a ring of ten, neighbours measure alike, and
    the best penalty for feature ``j`` differs from client to client (the
    heterogeneity). Targets are ``Z w`` plus Gaussian noise.

    Parameters
    ----------
    seed, client : int
        Non-negative; the data depend on nothing else.
    n_features, n_active, n_train, n_val : int
        Sizes; ``1 <= n_active <= n_features``.
    noise : float
        Standard deviation of the target noise, at least 0.
    scale_range : float
        ``R >= 1`` above.

    Returns
    -------
    ClientData
    """
    seed = check_int("seed", seed, minimum=0)
    client = check_int("client", client, minimum=0)
    d = check_int("n_features", n_features, minimum=1)
    n_active = check_int("n_active", n_active, minimum=1, maximum=d)
    n_train = check_int("n_train", n_train, minimum=1)
    n_val = check_int("n_val", n_val, minimum=1)
    noise = check_float("noise", noise, minimum=0.0)
    scale_range = check_float("scale_range", scale_range, minimum=1.0)
    shared = np.random.default_rng([seed, 0])
    w = np.zeros(d)
    active = shared.choice(d, n_active, replace=False)
    w[active] = shared.uniform(0.5, 1.5, n_active) * shared.choice(
        [-1.0, 1.0], n_active
    )
    rng = np.random.default_rng([seed, 1, client])
    log_r = np.log(scale_range)
    phase = 2 * np.pi * (np.arange(d) / d - client / N_CLIENTS_RING)
    scales = np.exp(log_r * np.cos(phase) + rng.uniform(-0.5, 0.5, d))
    Z = rng.standard_normal((n_train, d))
    b = Z @ w + noise * rng.standard_normal(n_train)
    Zv = rng.standard_normal((n_val, d))
    c = Zv @ w + noise * rng.standard_normal(n_val)
    return ClientData(A=Z * scales, b=b, V=Zv * scales, c=c, scales=scales)


@dataclass(frozen=True)
class ClientStats:
    """Sufficient statistics of the client objectives (batched over a leading axis).

    With ``g(x, y) = |A y - b|^2 / (2 n) + sum_j exp(x_j) y_j^2 / 2`` and
    ``f(y) = |V y - c|^2 / (2 m)``: ``grad_y g = G y - r + exp(x) * y`` and
    ``f(y) = y' P y / 2 - q' y + c0``.
    """

    G: torch.Tensor  # (..., d, d) A'A / n
    r: torch.Tensor  # (..., d) A'b / n
    P: torch.Tensor  # (..., d, d) V'V / m
    q: torch.Tensor  # (..., d) V'c / m
    c0: torch.Tensor  # (...,) |c|^2 / (2 m)

    @property
    def diag(self) -> torch.Tensor:
        """Diagonal of ``G``: per-coordinate curvature of the data term, (..., d)."""
        return torch.diagonal(self.G, dim1=-2, dim2=-1)

    def index(self, idx) -> ClientStats:
        """The statistics of the clients ``idx`` along the leading axis."""
        return ClientStats(
            self.G[idx], self.r[idx], self.P[idx], self.q[idx], self.c0[idx]
        )


def client_stats(data: ClientData) -> ClientStats:
    """The :class:`ClientStats` of one client's data, as float64 tensors."""
    check_instance("data", data, ClientData)
    n, m = data.A.shape[0], data.V.shape[0]
    t = lambda a: torch.as_tensor(a, dtype=DTYPE)  # noqa: E731
    return ClientStats(
        G=t(data.A.T @ data.A / n),
        r=t(data.A.T @ data.b / n),
        P=t(data.V.T @ data.V / m),
        q=t(data.V.T @ data.c / m),
        c0=t(data.c @ data.c / (2 * m)),
    )


def stack_stats(stats: Sequence[ClientStats]) -> ClientStats:
    """Stack single-client statistics along a new leading axis."""
    if len(stats) == 0:
        raise ValueError("stats must hold at least one ClientStats")
    return ClientStats(
        *(
            torch.stack([getattr(s, k) for s in stats])
            for k in ("G", "r", "P", "q", "c0")
        )
    )


# ------------------------------------------------------------ submodel masks


def capacity_profile(r_min: float, n_clients: int = 10) -> tuple[float, ...]:
    """Capacities with the weakest at ``r_min``: 40% weak, 40% middling, 20% full.

    The middling clients hold ``max(0.5, r_min)`` of the model, the strongest all of
    it, so ``r_min = 0.3`` gives :data:`DEFAULT_CAPACITIES`.
    """
    r_min = check_float("r_min", r_min, minimum=0.0, strict_minimum=True, maximum=1.0)
    n_clients = check_int("n_clients", n_clients, minimum=5)
    n_weak = n_mid = (2 * n_clients) // 5
    n_full = n_clients - n_weak - n_mid
    return (r_min,) * n_weak + (max(0.5, r_min),) * n_mid + (1.0,) * n_full


def _block_sizes(capacities, n_features: int) -> np.ndarray:
    caps = check_array("capacities", capacities, ndim=1, dtype=np.float64, min_size=1)
    if np.any(caps <= 0) or np.any(caps > 1):
        raise ValueError("capacities must lie in (0, 1]")
    return np.maximum(1, np.rint(caps * n_features)).astype(np.int64)


def coverage_masks(capacities, offset: int, n_features: int = 40) -> np.ndarray:
    """Cyclic submodel masks: which coordinates each client holds this round.

    Client ``i`` holds ``k_i = round(capacity_i * d)`` consecutive coordinates (modulo
    ``d``); the clients' blocks are laid end to end around the circle starting at
    ``offset``. Every coordinate is then covered by ``floor(sum k / d)`` or
    ``ceil(sum k / d)`` clients, and the server rotates the layout by drawing a new
    ``offset`` each round. The same mask serves the outer coordinates (``M_i^x``) and
    the inner ones (``M_i^y``): here penalty ``x_j`` acts on weight ``y_j`` alone.

    Parameters
    ----------
    capacities : array_like of float, shape (n_clients,)
        Fractions of the model each client can hold, in (0, 1].
    offset : int
        Where the first client's block starts.
    n_features : int
        ``d``, the number of coordinates.

    Returns
    -------
    ndarray of bool, shape (n_clients, n_features)
    """
    d = check_int("n_features", n_features, minimum=1)
    k = _block_sizes(capacities, d)
    offset = check_int("offset", offset)
    starts = offset + np.concatenate(([0], np.cumsum(k)[:-1]))
    return (np.arange(d)[None, :] - starts[:, None]) % d < k[:, None]


def min_coverage(capacities, n_features: int = 40) -> int:
    """``C_x*``: the fewest clients that cover any coordinate under cyclic masks."""
    masks = coverage_masks(capacities, 0, n_features)
    return int(masks.sum(axis=0).min())


# ----------------------------------------------------- the hypergradient estimator
#
# Batched tensors: ``stats`` holds B clients; ``x``, ``y`` and ``v`` have shape
# (B, d), or (B, R, d) for R runs that share each client's data (one matrix product
# then serves all R runs).


def _matvec(M: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``M_b y_b`` for symmetric ``M`` (B, d, d) and ``y`` (B, d) or (B, R, d)."""
    if y.dim() == 2:
        return torch.bmm(M, y[:, :, None])[:, :, 0]
    return torch.bmm(y, M)


def _lift(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """View per-client (B, ...) statistics so they broadcast against ``y``."""
    return t[:, None] if y.dim() == 3 else t


def _check_batch(stats, **tensors: torch.Tensor) -> None:
    """Check ``stats`` and that every tensor is (B, d) or (B, R, d), all alike."""
    check_instance("stats", stats, ClientStats)
    _check_tensors(stats.r.shape, **tensors)


def _check_tensors(batch_shape=None, **tensors: torch.Tensor) -> None:
    shape = None
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if shape is None:
            shape = tuple(t.shape)
        ok = tuple(t.shape) == shape and t.dim() in (2, 3)
        if batch_shape is not None:
            B, d = batch_shape
            ok = ok and t.shape[0] == B and t.shape[-1] == d
        if not ok:
            want = f"({B}, {d}) or ({B}, R, {d})" if batch_shape else f"{shape}"
            raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")


def _inner_grad(stats: ClientStats, ex: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _matvec(stats.G, y) - _lift(stats.r, y) + ex * y


def _outer_grad(stats: ClientStats, y: torch.Tensor) -> torch.Tensor:
    return _matvec(stats.P, y) - _lift(stats.q, y)


def _fd_hvp(stats, ex, y, v, delta: float) -> torch.Tensor:
    plus = _inner_grad(stats, ex, y + delta * v)
    minus = _inner_grad(stats, ex, y - delta * v)
    return (plus - minus) / (2 * delta)


def _fd_cross(ex, y, v, delta: float) -> torch.Tensor:
    plus = 0.5 * ex * (y + delta * v) ** 2
    minus = 0.5 * ex * (y - delta * v) ** 2
    return (plus - minus) / (2 * delta)


def inner_grad(stats: ClientStats, ex: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``grad_y g(x, y) = G y - r + exp(x) * y``, shaped like ``y``.

    ``ex`` is ``exp(x)``; both tensors are (B, d) or (B, R, d).
    """
    _check_batch(stats, ex=ex, y=y)
    return _inner_grad(stats, ex, y)


def outer_grad(stats: ClientStats, y: torch.Tensor) -> torch.Tensor:
    """``grad_y f(y) = P y - q``, shaped like ``y`` ((B, d) or (B, R, d))."""
    _check_batch(stats, y=y)
    return _outer_grad(stats, y)


def fd_hvp(
    stats: ClientStats, ex: torch.Tensor, y: torch.Tensor, v: torch.Tensor, delta: float
) -> torch.Tensor:
    """Central difference ``H_yy v ~ [grad_y g(y + d v) - grad_y g(y - d v)] / (2 d)``.

    Two gradient evaluations and no second derivative (RABO's estimate of the
    Hessian-vector product). For this quadratic ``g`` the difference is exact up to
    rounding. ``ex = exp(x)``, ``y`` and ``v`` are (B, d) or (B, R, d); ``delta > 0``.
    """
    _check_batch(stats, ex=ex, y=y, v=v)
    delta = check_float("delta", delta, minimum=0.0, strict_minimum=True)
    return _fd_hvp(stats, ex, y, v, delta)


def fd_cross(
    ex: torch.Tensor, y: torch.Tensor, v: torch.Tensor, delta: float
) -> torch.Tensor:
    """``H_xy v ~ [grad_x g(y + d v) - grad_x g(y - d v)] / 2d`` with
    ``grad_x g = exp(x) * y**2 / 2``; ``ex = exp(x)``, ``y`` and ``v`` of one shape."""
    _check_tensors(ex=ex, y=y, v=v)
    delta = check_float("delta", delta, minimum=0.0, strict_minimum=True)
    return _fd_cross(ex, y, v, delta)


def fd_hypergradient(
    stats: ClientStats,
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    v_steps: int,
    delta: float,
    step: float = 0.8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RABO's second-order-free hypergradient on the masked coordinates.

    ``v`` solves ``H_yy v = grad_y f`` by ``v_steps`` first-order iterations
    ``v_S <- v_S - step * (H_yy v - grad_y f)_S / L_S`` on the client's coordinates
    ``S`` (``mask``), with ``H_yy v`` from :func:`fd_hvp` and per-coordinate step sizes
    ``1 / L_j``, ``L_j = G_jj + exp(x_j)`` (the coordinate-wise smoothness of ``g``).
    Coordinates outside the mask keep their values. The hypergradient on ``S`` is
    ``grad_x f - H_xy v`` with :func:`fd_cross` (here ``grad_x f = 0``).

    Parameters
    ----------
    stats : ClientStats
        Batched over B clients.
    x, y, v : Tensor, shape (B, d) or (B, R, d)
        Outer point, inner iterate, and the warm start for ``v``.
    mask : Tensor, shaped like ``y``
        1 on the client's coordinates, 0 elsewhere.
    v_steps : int
        ``K``, iterations of the ``v`` solve.
    delta : float
        Finite-difference step.
    step : float
        Relative step size of the ``v`` iterations.

    Returns
    -------
    h : Tensor, shaped like ``y``
        Hypergradient estimate, zero off the mask.
    v : Tensor, shaped like ``y``
        The updated ``v``.
    """
    _check_batch(stats, x=x, y=y, v=v, mask=mask)
    v_steps = check_int("v_steps", v_steps, minimum=0)
    delta = check_float("delta", delta, minimum=0.0, strict_minimum=True)
    step = check_float("step", step, minimum=0.0, strict_minimum=True)
    ex = torch.exp(x)
    lip = _lift(stats.diag, y) + ex
    b = _outer_grad(stats, y)
    for _ in range(v_steps):
        residual = _fd_hvp(stats, ex, y, v, delta) - b
        v = v - step * mask * residual / lip
    return -_fd_cross(ex, y, v, delta) * mask, v


def _inner_objective(stats: ClientStats, x: torch.Tensor, y: torch.Tensor):
    """Sum over the batch of ``g(x, y)`` (constant term dropped), for autograd."""
    quad = 0.5 * (y * _matvec(stats.G, y)).sum()
    return quad - (_lift(stats.r, y) * y).sum() + 0.5 * (torch.exp(x) * y**2).sum()


def batched_cg(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor,
    rtol: float = 1e-10,
    max_iter: int | None = None,
    diag: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Preconditioned) conjugate gradients for many independent SPD systems.

    Parameters
    ----------
    matvec : callable
        Maps ``p`` of shape (..., d) to the products ``H p`` system by system.
    b, x0 : Tensor, shape (..., d)
        Right-hand sides and starting points.
    rtol : float
        A system stops when its residual norm is at most ``rtol * |b|``.
    max_iter : int, optional
        At most this many iterations (default ``d``).
    diag : Tensor, shape (..., d), optional
        Diagonal preconditioner ``M`` (positive): iterate on ``M^{-1} H``.

    Returns
    -------
    x : Tensor, shape (..., d)
    iterations : Tensor of int64, shape (...)
        Iterations (matrix-vector products after the first) each system used.
    """
    if not callable(matvec):
        raise TypeError(f"matvec must be callable, got {type(matvec).__name__}")
    _check_tensors(b=b, x0=x0, **({} if diag is None else {"diag": diag}))
    rtol = check_float("rtol", rtol, minimum=0.0)
    d = b.shape[-1]
    max_iter = d if max_iter is None else check_int("max_iter", max_iter, minimum=0)
    scale = torch.ones_like(b) if diag is None else 1.0 / diag
    x = x0.clone()
    res = b - matvec(x)
    z = scale * res
    p = z.clone()
    rz = (res * z).sum(-1)
    target = (rtol * b.norm(dim=-1)) ** 2
    active = (res * res).sum(-1) > target
    iterations = torch.zeros(b.shape[:-1], dtype=torch.int64)
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        Ap = matvec(p)
        curvature = (p * Ap).sum(-1)
        alpha = torch.where(active, rz / torch.where(active, curvature, 1.0), 0.0)
        x = x + alpha[..., None] * p
        res = res - alpha[..., None] * Ap
        z = scale * res
        rz_new = (res * z).sum(-1)
        beta = torch.where(active, rz_new / torch.where(active, rz, 1.0), 0.0)
        p = torch.where(active[..., None], z + beta[..., None] * p, p)
        rz = torch.where(active, rz_new, rz)
        iterations += active.long()
        active = active & ((res * res).sum(-1) > target)
    return x, iterations


def exact_hypergradient(
    stats: ClientStats,
    x: torch.Tensor,
    y: torch.Tensor,
    v0: torch.Tensor,
    rtol: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The implicit hypergradient with autograd Hessian-vector products and CG.

    Solves ``H_yy v = grad_y f`` by :func:`batched_cg`, each product a double backward
    pass through ``g``, preconditioned by the same per-coordinate curvature
    ``G_jj + exp(x_j)`` that scales RABO's steps; then returns ``grad_x f - H_xy v``
    with ``H_xy v`` the gradient of ``<grad_y g, v>`` with respect to ``x`` (the
    full-model baseline).

    Parameters
    ----------
    stats : ClientStats
        Batched over B clients.
    x, y, v0 : Tensor, shape (B, d) or (B, R, d)
        Outer point, inner iterate and the CG starting point.
    rtol : float
        CG tolerance.

    Returns
    -------
    h : Tensor, shaped like ``y``
    v : Tensor, shaped like ``y``
    iterations : Tensor of int64, shape ``y.shape[:-1]``
        CG iterations per client (and run).
    """
    _check_batch(stats, x=x, y=y, v0=v0)
    rtol = check_float("rtol", rtol, minimum=0.0)
    x = x.detach().requires_grad_(True)
    y = y.detach().requires_grad_(True)
    (grad_y,) = torch.autograd.grad(_inner_objective(stats, x, y), y, create_graph=True)

    def hvp(p: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(grad_y, y, grad_outputs=p, retain_graph=True)[0]

    b = _outer_grad(stats, y.detach())
    diag = _lift(stats.diag, y) + torch.exp(x.detach())
    v, iterations = batched_cg(hvp, b, v0.detach(), rtol=rtol, diag=diag)
    (cross,) = torch.autograd.grad(grad_y, x, grad_outputs=v)
    return -cross.detach(), v.detach(), iterations


def implicit_hypergradient(
    stats: ClientStats, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each client's ``f_i(y_i*(x))`` and exact hypergradient, in closed form.

    ``y* = (G + diag(exp x))^{-1} r``, ``v* = (G + diag(exp x))^{-1} (P y* - q)`` and
    ``grad F_i = -exp(x) * y* * v*``: the implicit function theorem's
    ``grad_x f - H_xy H_yy^{-1} grad_y f`` for this task.

    Parameters
    ----------
    stats : ClientStats
        Batched over B clients.
    x : Tensor, shape (B, d) or (B, R, d)

    Returns
    -------
    f : Tensor, shape ``x.shape[:-1]``
    h : Tensor, shaped like ``x``
    """
    _check_batch(stats, x=x)
    ex = torch.exp(x)
    chol = torch.linalg.cholesky(_lift(stats.G, x) + torch.diag_embed(ex))
    r = _lift(stats.r, x).expand_as(x)
    y = torch.cholesky_solve(r[..., None], chol)[..., 0]
    v = torch.cholesky_solve(_outer_grad(stats, y)[..., None], chol)[..., 0]
    f = 0.5 * (y * _matvec(stats.P, y)).sum(-1) - (_lift(stats.q, x) * y).sum(-1)
    return f + _lift(stats.c0, x), -ex * y * v


def global_objective(stats: ClientStats, x) -> tuple[float, np.ndarray]:
    """``F(x)`` and its exact gradient for the clients in ``stats`` (NumPy in and out).

    Parameters
    ----------
    stats : ClientStats
        All N clients of one task, batched.
    x : array_like, shape (d,)

    Returns
    -------
    F : float
    grad : ndarray, shape (d,)
    """
    d = stats.r.shape[-1]
    x = check_array("x", x, ndim=1, dtype=np.float64, shape=(d,), finite=True)
    xs = torch.as_tensor(x, dtype=DTYPE).expand(stats.r.shape[0], d)
    f, h = implicit_hypergradient(stats, xs)
    return float(f.mean()), h.mean(0).numpy()


def optimal_objective(
    stats: ClientStats, x0=None, bound: float = 15.0
) -> tuple[float, np.ndarray]:
    """``F* = min F(x)`` over the box ``|x_j| <= bound``, by L-BFGS-B.

    The reference for excess validation loss. Penalties of irrelevant features want
    to grow without limit, so the box keeps the search finite.

    Parameters
    ----------
    stats : ClientStats
        All N clients of one task, batched.
    x0 : array_like, shape (d,), optional
        Starting point (default zeros); a good one saves most of the iterations.
    bound : float
        Half-width of the box, positive.

    Returns
    -------
    F_star : float
    x_star : ndarray, shape (d,)
    """
    bound = check_float("bound", bound, minimum=0.0, strict_minimum=True)
    d = stats.r.shape[-1]
    x0 = np.zeros(d) if x0 is None else check_array("x0", x0, shape=(d,), finite=True)
    out = minimize(
        lambda x: global_objective(stats, x),
        np.clip(x0, -bound, bound),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-bound, bound)] * d,
        options={"maxiter": 5000, "gtol": 1e-9, "ftol": 1e-15},
    )
    return float(out.fun), out.x


def estimator_check(
    seed: int,
    n_clients: int = 10,
    v_steps: int = 10,
    delta: float = 1e-4,
    x_scale: float = 2.0,
) -> dict[str, float]:
    """Compare the finite-difference estimator with the autograd + CG hypergradient.

    At a random point ``x ~ U(-x_scale, x_scale)^d`` with every client's ``y`` at its
    exact inner solution, run :func:`fd_hypergradient` (full masks, ``v`` from zero,
    ``v_steps`` iterations) and :func:`exact_hypergradient`, and report the cosine
    similarity of the averaged hypergradients, the smallest per-client cosine, and the
    largest gap between the autograd result and the closed form.

    Returns
    -------
    dict
        ``cosine``, ``min_client_cosine``, ``autograd_vs_closed_form``.
    """
    seed = check_int("seed", seed, minimum=0)
    n_clients = check_int("n_clients", n_clients, minimum=1)
    v_steps = check_int("v_steps", v_steps, minimum=0)
    delta = check_float("delta", delta, minimum=0.0, strict_minimum=True)
    x_scale = check_float("x_scale", x_scale, minimum=0.0)
    stats = stack_stats(
        [client_stats(make_client_data(seed, i)) for i in range(n_clients)]
    )
    d = stats.r.shape[-1]
    rng = np.random.default_rng([seed, 2])
    x = torch.as_tensor(rng.uniform(-x_scale, x_scale, d), dtype=DTYPE).expand(
        n_clients, d
    )
    H = stats.G + torch.diag_embed(torch.exp(x))
    y = torch.linalg.solve(H, stats.r)
    zeros = torch.zeros_like(y)
    h_fd, _ = fd_hypergradient(stats, x, y, zeros, torch.ones_like(y), v_steps, delta)
    h_ex, _, _ = exact_hypergradient(stats, x, y, zeros)
    _, h_cf = implicit_hypergradient(stats, x)
    cos = torch.nn.functional.cosine_similarity
    return {
        "cosine": float(cos(h_fd.mean(0), h_ex.mean(0), dim=0)),
        "min_client_cosine": float(cos(h_fd, h_ex, dim=1).min()),
        "autograd_vs_closed_form": float((h_ex - h_cf).abs().max()),
    }


# ------------------------------------------------------------ the local round


def evals_per_coordinate(inner_steps: int, v_steps: int) -> int:
    """Coordinate-gradient evaluations per held coordinate per round (FD estimator).

    ``inner_steps`` inner gradients, one outer gradient, two gradients per
    finite-difference Hessian-vector product in each of the ``v_steps`` iterations,
    and two for ``H_xy v``.
    """
    inner_steps = check_int("inner_steps", inner_steps, minimum=0)
    v_steps = check_int("v_steps", v_steps, minimum=0)
    return inner_steps + 1 + 2 * v_steps + 2


def partial_inner_steps(
    stats: ClientStats,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    step: float = 0.8,
) -> torch.Tensor:
    """Partial inner training: ``steps`` gradient steps on the client's own y_j.

    ``y_S <- y_S - step * (grad_y g(x, y))_S / L_S`` with ``L_j = G_jj + exp(x_j)``,
    the coordinate-wise smoothness of ``g``; coordinates outside the mask are neither
    computed nor changed (they keep the values of the last round that held them).

    Parameters
    ----------
    stats : ClientStats
        Batched over B clients.
    x, y, mask : Tensor, shape (B, d) or (B, R, d)
    steps : int
        Number of inner steps.
    step : float
        Relative step size.

    Returns
    -------
    Tensor, shaped like ``y``
    """
    _check_batch(stats, x=x, y=y, mask=mask)
    steps = check_int("steps", steps, minimum=0)
    step = check_float("step", step, minimum=0.0, strict_minimum=True)
    ex = torch.exp(x)
    lip = _lift(stats.diag, y) + ex
    for _ in range(steps):
        y = y - step * mask * _inner_grad(stats, ex, y) / lip
    return y


def aggregate(sum_h, coverage, variant: str, n_clients: int) -> np.ndarray:
    """The server's update direction from the clients' summed hypergradients.

    RABO (and the drop-weak and full baselines) average every outer coordinate over
    the clients that covered it, ``sum_{i covers j} h_ij / C_x(j)``; a coordinate no
    client covered is left alone. The naive baseline divides by ``N`` instead.

    Parameters
    ----------
    sum_h, coverage : array_like, shape (..., d)
        Sums over clients of the masked hypergradients and of the masks.
    variant : {"rabo", "naive", "drop_weak", "full"}
    n_clients : int
        ``N``.

    Returns
    -------
    ndarray, shape (..., d)
    """
    variant = check_choice("variant", variant, VARIANTS)
    n_clients = check_int("n_clients", n_clients, minimum=1)
    sum_h = check_array("sum_h", sum_h, dtype=np.float64)
    coverage = check_array("coverage", coverage, dtype=np.float64, shape=sum_h.shape)
    if variant == "naive":
        return sum_h / n_clients
    return np.where(coverage > 0, sum_h / np.maximum(coverage, 1.0), 0.0)


# ---------------------------------------------------- distributed training


@dataclass(frozen=True)
class RunSpec:
    """One training run: a variant on one task with one capacity profile."""

    label: str  # name of the run in the results
    variant: str  # one of VARIANTS
    seed: int  # the task (data) and the rotation of the masks
    capacities: tuple[float, ...]  # one per client, in (0, 1]
    lr: float  # server step size eta

    def __post_init__(self):
        if not isinstance(self.label, str):
            raise TypeError(f"label must be a string, got {type(self.label).__name__}")
        check_choice("variant", self.variant, VARIANTS)
        check_int("seed", self.seed, minimum=0)
        _block_sizes(self.capacities, 1)
        check_float("lr", self.lr, minimum=0.0, strict_minimum=True)

    @property
    def estimator(self) -> str:
        """``"exact"`` for the full-model baseline, ``"fd"`` for everything else."""
        return "exact" if self.variant == "full" else "fd"

    def client_capacities(self) -> np.ndarray:
        """Capacities as trained: full for the baseline, zero for dropped clients."""
        caps = np.asarray(self.capacities, dtype=np.float64)
        if self.variant == "full":
            return np.ones_like(caps)
        if self.variant == "drop_weak":
            return np.where(caps >= 1.0, 1.0, 0.0)
        return caps

    def key(self) -> tuple:
        """What the training depends on: runs with equal keys train identically."""
        rule = "naive" if self.variant == "naive" else "coverage"
        caps = tuple(self.client_capacities().tolist())
        return (self.seed, self.estimator, rule, caps, self.lr)


@dataclass(frozen=True)
class _Settings:
    n_rounds: int
    inner_steps: int
    v_steps: int
    delta: float
    n_workers: int
    timeout: float
    eval_every: int

    def eval_rounds(self) -> np.ndarray:
        """Rounds at which the diagnostics are computed: every ``eval_every``-th and
        the last."""
        return np.union1d(np.arange(0, self.n_rounds, self.eval_every), [self.n_rounds])


@dataclass(frozen=True)
class Trace:
    """What the server recorded, one row per run (in the order of ``runs``)."""

    runs: tuple[RunSpec, ...]
    eval_rounds: np.ndarray  # (E,) rounds q where the diagnostics were taken, Q last
    loss: np.ndarray  # (R, E) F(x_q): mean validation loss at the exact y*(x_q)
    grad_norm: np.ndarray  # (R, E) |grad F(x_q)|
    agg_error: np.ndarray  # (R, E - 1) |server direction - grad F(x_q)|, q < Q
    cost: np.ndarray  # (R, Q) coordinate-gradient evaluations in each round
    x_final: np.ndarray  # (R, d)
    world_size: int  # processes: one server and the workers
    startup_s: float  # from starting the processes to all of them joined the group
    train_s: float  # server wall time of the rounds
    worker_compute_s: tuple[float, ...]  # each worker's time computing, not waiting
    collectives: int  # broadcasts plus reduces the server took part in

    def index(self, label: str, seed: int) -> int:
        """Row of the run with ``label`` and ``seed``."""
        for i, run in enumerate(self.runs):
            if run.label == label and run.seed == seed:
                return i
        raise KeyError(f"no run labelled {label!r} with seed {seed}")


def _loopback_interface() -> str | None:
    for _, name in socket.if_nameindex():
        if name.startswith("lo"):
            return name
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hosted_clients(rank: int, n_workers: int, n_clients: int) -> np.ndarray:
    """Clients that worker ``rank`` (1-based) hosts: every ``n_workers``-th one."""
    return np.arange(rank - 1, n_clients, n_workers)


def _server(runs, settings: _Settings, n_clients: int, d: int) -> dict:
    """Rank 0: draw mask rotations, broadcast x, reduce the clients' sums, step."""
    import torch.distributed as dist

    n_runs, n_rounds = len(runs), settings.n_rounds
    x = np.zeros((n_runs, d))
    offsets = np.stack(
        [
            np.random.default_rng([run.seed, 3]).integers(0, d, n_rounds + 1)
            for run in runs
        ]
    )
    lr = np.array([run.lr for run in runs])[:, None]
    naive = np.array([run.variant == "naive" for run in runs])
    eval_rounds = settings.eval_rounds()
    loss = np.zeros((n_runs, eval_rounds.size))
    grad_norm = np.zeros_like(loss)
    agg_error = np.zeros((n_runs, eval_rounds.size - 1))
    cost = np.zeros((n_runs, n_rounds))
    start = time.perf_counter()
    for q in range(n_rounds + 1):
        message = torch.as_tensor(np.hstack([x, offsets[:, q : q + 1]]), dtype=DTYPE)
        dist.broadcast(message, src=0)
        sums = torch.zeros((n_runs, 3 * d + 2), dtype=DTYPE)
        dist.reduce(sums, dst=0)
        sums = sums.numpy()
        sum_h, coverage = sums[:, :d], sums[:, d : 2 * d]
        grad = sums[:, 2 * d : 3 * d] / n_clients
        e = int(np.searchsorted(eval_rounds, q))
        if e < eval_rounds.size and eval_rounds[e] == q:
            loss[:, e] = sums[:, 3 * d] / n_clients
            grad_norm[:, e] = np.linalg.norm(grad, axis=1)
        if q == n_rounds:
            break
        cost[:, q] = sums[:, 3 * d + 1]
        direction = aggregate(sum_h, coverage, "rabo", n_clients)
        direction[naive] = aggregate(sum_h[naive], coverage[naive], "naive", n_clients)
        if e < eval_rounds.size and eval_rounds[e] == q:
            agg_error[:, e] = np.linalg.norm(direction - grad, axis=1)
        x = x - lr * direction
    return {
        "eval_rounds": eval_rounds,
        "loss": loss,
        "grad_norm": grad_norm,
        "agg_error": agg_error,
        "cost": cost,
        "x_final": x,
        "train_s": time.perf_counter() - start,
        "collectives": 2 * (n_rounds + 1),
    }


class _Slots:
    """A grid of (run, client) pairs a worker hosts that use one estimator.

    Row ``u`` is one hosted client of one task (its data); its columns are the runs
    of that task, so one matrix product per row serves all of them. Tasks in one
    grid have the same number of runs.
    """

    def __init__(
        self, runs, grid: list[list[int]], rows: list[tuple[int, int]], d, data
    ):
        self.stats = stack_stats([data[row] for row in rows])
        self.run_index = torch.as_tensor(grid, dtype=torch.int64)  # (U, R)
        sizes = np.zeros(self.run_index.shape, dtype=np.int64)
        starts = np.zeros_like(sizes)
        for u, (_, client) in enumerate(rows):
            for col, k in enumerate(grid[u]):
                caps = runs[k].client_capacities()
                blocks = np.where(caps > 0, np.maximum(1, np.rint(caps * d)), 0)
                sizes[u, col] = int(blocks[client])
                starts[u, col] = int(blocks[:client].sum())
        self.size = torch.as_tensor(sizes)[..., None]
        self.start = torch.as_tensor(starts)[..., None]
        self.y = torch.zeros((*self.run_index.shape, d), dtype=DTYPE)
        self.v = torch.zeros_like(self.y)
        self.coords = torch.arange(d)

    def masks(self, offsets: torch.Tensor) -> torch.Tensor:
        """This round's masks (see :func:`coverage_masks`), (U, R, d) of 0 and 1."""
        d = self.coords.shape[0]
        shift = offsets[self.run_index][..., None] + self.start
        return ((self.coords - shift) % d < self.size).to(DTYPE)


def _local_round(slots: _Slots, x, offsets, settings: _Settings, exact: bool):
    """One round of every slot: partial inner steps, hypergradient, evaluation count."""
    mask = slots.masks(offsets)
    slots.y = partial_inner_steps(slots.stats, x, slots.y, mask, settings.inner_steps)
    if exact:
        h, slots.v, iters = exact_hypergradient(slots.stats, x, slots.y, slots.v)
        per = settings.inner_steps + 1 + 2 * (iters.to(DTYPE) + 1) + 2
    else:
        h, slots.v = fd_hypergradient(
            slots.stats, x, slots.y, slots.v, mask, settings.v_steps, settings.delta
        )
        per = evals_per_coordinate(settings.inner_steps, settings.v_steps)
    return h, mask, mask.sum(-1) * per


def _worker(rank: int, runs, settings: _Settings, n_clients: int, d: int) -> dict:
    """A worker: hosts some clients of every run and does their local rounds."""
    import torch.distributed as dist

    clients = [int(i) for i in _hosted_clients(rank, settings.n_workers, n_clients)]
    seeds = sorted({run.seed for run in runs})
    rows = [(seed, i) for seed in seeds for i in clients]
    data = {row: client_stats(make_client_data(*row, n_features=d)) for row in rows}
    groups = []
    for estimator in ESTIMATORS:
        columns = {
            seed: [
                k
                for k, r in enumerate(runs)
                if r.seed == seed and r.estimator == estimator
            ]
            for seed in seeds
        }
        for width in sorted({len(c) for c in columns.values()} - {0}):
            grid_rows = [row for row in rows if len(columns[row[0]]) == width]
            grid = [columns[seed] for seed, _ in grid_rows]
            slots = _Slots(runs, grid, grid_rows, d, data)
            groups.append((slots, estimator == "exact"))
    eval_rounds = set(settings.eval_rounds().tolist())
    compute_s = 0.0
    for q in range(settings.n_rounds + 1):
        message = torch.zeros((len(runs), d + 1), dtype=DTYPE)
        dist.broadcast(message, src=0)
        tick = time.perf_counter()
        sums = torch.zeros((len(runs), 3 * d + 2), dtype=DTYPE)
        for slots, exact in groups:
            x = message[:, :d][slots.run_index]
            f_exact = torch.zeros(x.shape[:-1], dtype=DTYPE)
            h_exact = h = mask = torch.zeros_like(x)
            if q in eval_rounds:  # diagnostics only; the algorithm never sees them
                f_exact, h_exact = implicit_hypergradient(slots.stats, x)
            cost = torch.zeros_like(f_exact)
            if q < settings.n_rounds:
                offsets = message[:, d].long()
                h, mask, cost = _local_round(slots, x, offsets, settings, exact)
            out = torch.cat([h, mask, h_exact, f_exact[..., None], cost[..., None]], -1)
            sums.index_add_(0, slots.run_index.flatten(), out.flatten(0, 1))
        compute_s += time.perf_counter() - tick
        dist.reduce(sums, dst=0)
    return {"compute_s": compute_s}


def _process_main(rank, world_size, port, runs, settings, n_clients, d, conn) -> None:
    """Entry point of every process: join the group, play server or worker, report."""
    import torch.distributed as dist

    try:
        torch.set_num_threads(1)
        interface = _loopback_interface()
        if interface is not None:
            os.environ["GLOO_SOCKET_IFNAME"] = interface
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=settings.timeout),
        )
        dist.barrier()
        ready = time.perf_counter()
        if rank == 0:
            out = _server(runs, settings, n_clients, d)
        else:
            out = _worker(rank, runs, settings, n_clients, d)
        dist.barrier()
        dist.destroy_process_group()
        out["ready"] = ready
        conn.send(("ok", rank, out))
    except BaseException:  # report any failure to the parent, then exit
        conn.send(("error", rank, traceback.format_exc()))
    finally:
        conn.close()


def _start_method(name: str | None) -> str:
    available = mp.get_all_start_methods()
    if name is None:
        return "fork" if "fork" in available else "spawn"
    return check_choice("start_method", name, tuple(available))


def run_distributed(
    runs: Sequence[RunSpec],
    n_rounds: int = 150,
    inner_steps: int = 10,
    v_steps: int = 10,
    delta: float = 1e-4,
    n_workers: int = 3,
    start_method: str | None = None,
    timeout: float = 120.0,
    n_features: int = 40,
    eval_every: int = 10,
) -> Trace:
    """Train every run in ``runs`` with one server and ``n_workers`` worker processes.

    Processes talk through ``torch.distributed`` (gloo backend, TCP on 127.0.0.1,
    loopback interface). Rank 0 is the server; worker ``w`` hosts clients ``w - 1``,
    ``w - 1 + n_workers``, ... of every run, so all runs train side by side and each
    round costs two collectives however many runs there are. Round ``q``:

    1. the server broadcasts each run's ``x`` and a fresh mask rotation;
    2. every worker, for each hosted client, builds its mask (:func:`coverage_masks`),
       takes ``inner_steps`` partial inner steps, estimates the hypergradient on its
       coordinates (:func:`fd_hypergradient`, or :func:`exact_hypergradient` for the
       full baseline) and sums masked hypergradients, masks, evaluation counts and,
       for diagnostics only, the exact ``f_i`` and ``grad F_i`` at ``x``;
    3. a reduce brings the sums to the server, which applies :func:`aggregate` and
       steps ``x <- x - lr * direction``.

    Parameters
    ----------
    runs : sequence of RunSpec
        All with the same number of clients.
    n_rounds : int
        ``Q``, communication rounds.
    inner_steps, v_steps : int
        Inner steps and ``v`` iterations per round.
    delta : float
        Finite-difference step.
    n_workers : int
        Worker processes (the world has ``n_workers + 1``), at most the client count.
    start_method : {"fork", "spawn", "forkserver"}, optional
        Default: ``fork`` where available (milliseconds; ``spawn`` re-imports torch in
        every process, seconds each).
    timeout : float
        Seconds to wait for the processes, and gloo's collective timeout.
    n_features : int
        ``d``.
    eval_every : int
        The diagnostics (exact ``F`` and ``grad F``) are computed every
        ``eval_every`` rounds and after the last.

    Returns
    -------
    Trace

    Raises
    ------
    RuntimeError
        If a process fails or the run exceeds ``timeout``; every process started here
        is stopped first.

    Notes
    -----
    Everything stays on this machine: the processes bind to 127.0.0.1 only and
    write no files. The tensors are CPU tensors, the ones gloo moves; at 40
    dimensions a GPU would only add transfers, so ``torch_device()`` is not used.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_gloo_available()):
        raise RuntimeError("run_distributed needs torch.distributed with gloo")
    runs = tuple(runs)
    if not runs or not all(isinstance(r, RunSpec) for r in runs):
        raise TypeError("runs must be a non-empty sequence of RunSpec")
    n_clients = len(runs[0].capacities)
    if any(len(r.capacities) != n_clients for r in runs):
        raise ValueError("runs must all have the same number of clients")
    settings = _Settings(
        n_rounds=check_int("n_rounds", n_rounds, minimum=1),
        inner_steps=check_int("inner_steps", inner_steps, minimum=0),
        v_steps=check_int("v_steps", v_steps, minimum=0),
        delta=check_float("delta", delta, minimum=0.0, strict_minimum=True),
        n_workers=check_int("n_workers", n_workers, minimum=1, maximum=n_clients),
        timeout=check_float("timeout", timeout, minimum=1.0),
        eval_every=check_int("eval_every", eval_every, minimum=1),
    )
    d = check_int("n_features", n_features, minimum=1)
    ctx = mp.get_context(_start_method(start_method))
    world_size = settings.n_workers + 1
    port = _free_port()
    pipes = [ctx.Pipe(duplex=False) for _ in range(world_size)]
    start = time.perf_counter()
    procs = [
        ctx.Process(
            target=_process_main,
            args=(rank, world_size, port, runs, settings, n_clients, d, pipes[rank][1]),
            daemon=True,
        )
        for rank in range(world_size)
    ]
    for proc in procs:
        proc.start()
    for _, send_end in pipes:
        send_end.close()
    try:
        reports = _collect(procs, [recv for recv, _ in pipes], settings.timeout)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()
    server = reports[0]
    log.info("distributed run: %d processes, %d runs", world_size, len(runs))
    return Trace(
        runs=runs,
        eval_rounds=server["eval_rounds"],
        loss=server["loss"],
        grad_norm=server["grad_norm"],
        agg_error=server["agg_error"],
        cost=server["cost"],
        x_final=server["x_final"],
        world_size=world_size,
        startup_s=max(r["ready"] for r in reports.values()) - start,
        train_s=server["train_s"],
        worker_compute_s=tuple(reports[k]["compute_s"] for k in range(1, world_size)),
        collectives=server["collectives"],
    )


def _collect(procs, conns, timeout: float) -> dict[int, dict]:
    """Wait for one report per process; raise on the first failure or at timeout."""
    from multiprocessing.connection import wait

    reports: dict[int, dict] = {}
    pending = list(conns)
    deadline = time.monotonic() + timeout
    while pending:
        ready = wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            raise RuntimeError(f"distributed run timed out after {timeout:g} s")
        for conn in ready:
            pending.remove(conn)
            try:
                status, rank, payload = conn.recv()
            except EOFError as err:
                codes = [p.exitcode for p in procs]
                raise RuntimeError(f"a process died; exit codes {codes}") from err
            if status != "ok":
                raise RuntimeError(f"process {rank} failed:\n{payload}")
            reports[rank] = payload
    return reports


# ------------------------------------------------------------ the experiment


@dataclass(frozen=True)
class Config:
    """The experiment: variants, tasks (seeds), rounds and the process layout."""

    variant: str = "rabo"  # the variant the claim is checked on: one of VARIANTS
    seeds: tuple[int, ...] = (0, 1, 2)  # one task per seed
    capacities: tuple[float, ...] = DEFAULT_CAPACITIES  # per client, in (0, 1]
    sweep_capacities: tuple[tuple[float, ...], ...] = SWEEP_CAPACITIES  # C_x* sweep
    n_rounds: int = 150  # Q, communication rounds
    inner_steps: int = 10  # inner steps per round
    v_steps: int = 10  # K, iterations of the v solve per round
    delta: float = 1e-4  # finite-difference step
    lr: float = 10.0  # server step size eta
    n_workers: int = 3  # worker processes (plus one server process)
    start_method: str | None = None  # multiprocessing start method; None: fork
    timeout: float = 120.0  # seconds before a stuck distributed run is stopped
    eval_every: int = 10  # rounds between diagnostics (exact F and grad F)
    explore_r_min: tuple[float, ...] = EXPLORE_R_MIN  # first seed: r_min to explore

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        if not isinstance(self.seeds, tuple) or not self.seeds:
            raise ValueError("seeds must be a non-empty tuple of integers")
        for seed in self.seeds:
            check_int("seeds[i]", seed, minimum=0)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be distinct")
        _block_sizes(self.capacities, 40)
        if (
            not isinstance(self.sweep_capacities, tuple)
            or len(self.sweep_capacities) < 2
        ):
            raise ValueError("sweep_capacities must be a tuple of at least 2 profiles")
        for profile in self.sweep_capacities:
            _block_sizes(profile, 40)
            if len(profile) != len(self.capacities):
                raise ValueError("sweep_capacities profiles need one entry per client")
        check_int("n_rounds", self.n_rounds, minimum=1)
        check_int("inner_steps", self.inner_steps, minimum=0)
        check_int("v_steps", self.v_steps, minimum=0)
        check_float("delta", self.delta, minimum=0.0, strict_minimum=True)
        check_float("lr", self.lr, minimum=0.0, strict_minimum=True)
        check_int("n_workers", self.n_workers, minimum=1, maximum=len(self.capacities))
        if self.start_method is not None:
            _start_method(self.start_method)
        check_float("timeout", self.timeout, minimum=1.0)
        check_int("eval_every", self.eval_every, minimum=1)
        if not isinstance(self.explore_r_min, tuple):
            raise ValueError("explore_r_min must be a tuple of capacities in (0, 1]")
        for r in self.explore_r_min:
            capacity_profile(r, len(self.capacities))

    @property
    def sweep_coverages(self) -> tuple[int, ...]:
        """``C_x*`` of each sweep profile."""
        return tuple(min_coverage(p) for p in self.sweep_capacities)

    def runs(self) -> tuple[RunSpec, ...]:
        """The runs of the experiment, in order; runs that would train identically to
        an earlier one are left out.

        Per seed: the four variants on ``capacities``; ``rabo_full``, RABO with every
        client holding the whole model (the cost reference); RABO on every sweep
        profile (``rabo_c{C_x*}``). For the first seed also RABO and naive averaging
        on :func:`capacity_profile` of every ``explore_r_min`` (``rabo@r``,
        ``naive@r``).
        """
        out: list[RunSpec] = []
        seen: set[tuple] = set()

        def add(label: str, variant: str, seed: int, profile) -> None:
            run = RunSpec(label, variant, seed, tuple(profile), self.lr)
            if run.key() not in seen:
                seen.add(run.key())
                out.append(run)

        n = len(self.capacities)
        for seed in self.seeds:
            for variant in VARIANTS:
                add(variant, variant, seed, self.capacities)
            add("rabo_full", "rabo", seed, (1.0,) * n)
            for cov, profile in zip(
                self.sweep_coverages, self.sweep_capacities, strict=True
            ):
                add(f"rabo_c{cov}", "rabo", seed, profile)
        for r in self.explore_r_min:
            for variant in ("rabo", "naive"):
                add(f"{variant}@{r:g}", variant, self.seeds[0], capacity_profile(r, n))
        return tuple(out)

    @property
    def sweep_labels(self) -> tuple[str, ...]:
        """Labels of the runs of the coverage sweep, in the order of the profiles."""
        labels: dict[tuple, str] = {}
        for run in self.runs():
            labels.setdefault(run.key(), run.label)
        seed = self.seeds[0]
        return tuple(
            labels[RunSpec("", "rabo", seed, tuple(p), self.lr).key()]
            for p in self.sweep_capacities
        )


@dataclass(frozen=True)
class Result:
    """The trace of every run and the reference numbers of every task."""

    config: Config
    trace: Trace
    f_star: dict[int, float]  # min F per seed (L-BFGS-B on the exact objective)
    estimator: dict[int, dict[str, float]]  # estimator_check per seed
    min_coverage: int  # C_x* of config.capacities

    def excess(self, label: str, seed: int) -> float:
        """Final validation loss above the best achievable, ``F(x_Q) - F*``."""
        return float(
            self.trace.loss[self.trace.index(label, seed), -1] - self.f_star[seed]
        )

    def total_cost(self, label: str, seed: int) -> float:
        """Coordinate-gradient evaluations over all rounds and clients."""
        return float(self.trace.cost[self.trace.index(label, seed)].sum())

    def relative_agg_error(self, label: str, seed: int) -> float:
        """Mean over rounds of ``|direction - grad F|``, over the mean ``|grad F|``."""
        k = self.trace.index(label, seed)
        return float(
            self.trace.agg_error[k].mean() / self.trace.grad_norm[k, :-1].mean()
        )

    def explore_curve(self, variant: str, r_min: float) -> np.ndarray:
        """Excess loss per evaluated round of ``variant`` on the first task when the
        weakest clients hold ``r_min`` of the model (:func:`capacity_profile`)."""
        check_choice("variant", variant, VARIANTS)
        r_min = check_float("r_min", r_min, minimum=0.0, strict_minimum=True, maximum=1)
        seed = self.config.seeds[0]
        profile = capacity_profile(r_min, len(self.config.capacities))
        key = RunSpec("", variant, seed, profile, self.config.lr).key()
        for k, run in enumerate(self.trace.runs):
            if run.key() == key:
                return self.trace.loss[k] - self.f_star[seed]
        raise ValueError(f"no run trained {variant} with r_min = {r_min:g}")

    def final_grad_norm(self, label: str, seed: int) -> float:
        """``|grad F(x_Q)|``."""
        return float(self.trace.grad_norm[self.trace.index(label, seed), -1])


def run_experiment(config: Config) -> Result:
    """Train all runs of ``config`` in one distributed job and add the references.

    The estimator check runs in this process first (it also loads the modules that
    autograd imports lazily, before the worker processes are forked); ``F*`` is
    polished by L-BFGS-B from the best final ``x`` of each task.

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    n_clients = len(config.capacities)
    estimator = {
        seed: estimator_check(
            seed, n_clients, v_steps=config.v_steps, delta=config.delta
        )
        for seed in config.seeds
    }
    trace = run_distributed(
        config.runs(),
        n_rounds=config.n_rounds,
        inner_steps=config.inner_steps,
        v_steps=config.v_steps,
        delta=config.delta,
        n_workers=config.n_workers,
        start_method=config.start_method,
        timeout=config.timeout,
        eval_every=config.eval_every,
    )
    f_star = {}
    for seed in config.seeds:
        stats = stack_stats(
            [client_stats(make_client_data(seed, i)) for i in range(n_clients)]
        )
        rows = [k for k, run in enumerate(trace.runs) if run.seed == seed]
        best = min(rows, key=lambda k: trace.loss[k, -1])
        f_star[seed] = optimal_objective(stats, x0=trace.x_final[best])[0]
    return Result(
        config=config,
        trace=trace,
        f_star=f_star,
        estimator=estimator,
        min_coverage=min_coverage(config.capacities),
    )


def check_claim(result: Result) -> None:
    """Check the chapter's claim on the variant named by ``result.config.variant``.

    On every seed:

    1. the finite-difference hypergradient has cosine at least 0.99 with the
       autograd + CG implicit hypergradient at a random point;
    2. the variant spends at most 60% of the coordinate-gradient evaluations that the
       same algorithm spends when every client holds the whole model
       (``rabo_full``), and its excess validation loss ``F(x_Q) - F*`` is at most
       1.25 times that of the full-model baseline with exact hypergradients;
    3. its excess loss is at most 0.9 times that of naive ``1/N`` averaging (at least
       10% lower);
    4. with RABO, the error of the server's direction against ``grad F`` falls
       strictly as the minimum coverage grows through the sweep (C_x* = 2, 5, 10).

    Raises
    ------
    paperlab.claims.ClaimFailed
        If any part fails; the message names the seed and the numbers.
    """
    check_instance("result", result, Result)
    variant = result.config.variant
    for seed in result.config.seeds:
        cos = result.estimator[seed]["cosine"]
        require(cos >= MIN_COSINE, f"seed {seed}: estimator cosine {cos:.4f} < 0.99")
        cost = result.total_cost(variant, seed)
        cost_ratio = cost / result.total_cost("rabo_full", seed)
        require(
            cost_ratio <= MAX_COST_RATIO,
            f"seed {seed}: {variant} used {cost_ratio:.0%} of the coordinate-gradient "
            f"evaluations of RABO on the full model (> {MAX_COST_RATIO:.0%})",
        )
        excess = result.excess(variant, seed)
        vs_full = excess / result.excess("full", seed)
        require(
            vs_full <= MAX_EXCESS_VS_FULL,
            f"seed {seed}: {variant}'s excess loss {excess:.2e} is {vs_full:.2f}x "
            f"the full model's (> {MAX_EXCESS_VS_FULL})",
        )
        vs_naive = excess / result.excess("naive", seed)
        require(
            vs_naive <= MAX_EXCESS_VS_NAIVE,
            f"seed {seed}: {variant}'s excess loss is {vs_naive:.2f}x naive "
            f"averaging's (> {MAX_EXCESS_VS_NAIVE})",
        )
        errors = [
            result.relative_agg_error(label, seed)
            for label in result.config.sweep_labels
        ]
        require(
            all(a > b for a, b in zip(errors, errors[1:], strict=False)),
            f"seed {seed}: aggregation error {np.round(errors, 3).tolist()} does not "
            f"fall with C_x* {list(result.config.sweep_coverages)}",
        )


# ------------------------------------------------------------ exploring and plots


def _subplots(ncols: int = 1, width: float | None = None):
    from paperlab import plotting

    return plotting.subplots(1, ncols, width=width)


def _label(ax, title: str, xlabel: str, ylabel: str) -> None:
    from paperlab import plotting

    plotting.label_axes(ax, title=title, xlabel=xlabel, ylabel=ylabel)


def plot_masks(capacities=DEFAULT_CAPACITIES, offset: int = 0, n_features: int = 40):
    """Heat map of one round's masks and a bar chart of the coverage per coordinate."""
    from paperlab import plotting

    masks = coverage_masks(capacities, offset, n_features)
    fig, (top, bottom) = plotting.subplots(
        2, 1, width=7.0, height=4.6, gridspec_kw={"height_ratios": [2.2, 1]}
    )
    top.imshow(masks, aspect="auto", cmap="Blues", vmin=0, vmax=1.4, origin="upper")
    top.set_yticks(range(len(capacities)))
    top.set_yticklabels([f"{i} ({c:g})" for i, c in enumerate(capacities)])
    top.grid(False)
    _label(
        top,
        f"Submodel masks at rotation offset {offset}",
        "outer/inner coordinate j",
        "client (capacity)",
    )
    coverage = masks.sum(axis=0)
    bottom.bar(np.arange(n_features), coverage, color=plotting.COLORS[0], width=0.8)
    bottom.axhline(
        coverage.min(),
        color=plotting.COLORS[1],
        ls="--",
        label=f"C_x* = {coverage.min()}",
    )
    bottom.set_xlim(-0.5, n_features - 0.5)
    bottom.set_ylim(0, coverage.max() + 3)
    _label(bottom, "Coverage C_x(j)", "coordinate j", "clients covering j")
    bottom.legend(loc="upper right")
    return fig


def plot_training(result: Result, seed: int | None = None):
    """Excess validation loss against rounds and against coordinate-gradient work."""
    from paperlab import plotting

    check_instance("result", result, Result)
    seed = result.config.seeds[0] if seed is None else seed
    trace = result.trace
    fig, (left, right) = _subplots(2, width=10.0)
    for color, variant in zip(plotting.COLORS, VARIANTS, strict=False):
        k = trace.index(variant, seed)
        excess = trace.loss[k] - result.f_star[seed]
        work = np.concatenate(([0.0], np.cumsum(trace.cost[k])))[trace.eval_rounds]
        style = {"color": color, "label": VARIANT_NAMES[variant]}
        left.semilogy(trace.eval_rounds, excess, **style)
        right.semilogy(work / 1e6, excess, **style)
    _label(
        left,
        f"Excess validation loss per round (task {seed})",
        "communication round q",
        "F(x_q) - F*",
    )
    _label(
        right,
        "... and per unit of client computation",
        "coordinate-gradient evaluations (millions)",
        "F(x_q) - F*",
    )
    return fig


def plot_coverage_sweep(result: Result):
    """Aggregation error and final gradient norm against the minimum coverage."""
    from paperlab import plotting

    check_instance("result", result, Result)
    cov = np.array(result.config.sweep_coverages)
    fig, (left, right) = _subplots(2, width=9.0)
    for color, seed in zip(plotting.COLORS, result.config.seeds, strict=False):
        labels = result.config.sweep_labels
        err = [result.relative_agg_error(label, seed) for label in labels]
        norm = [result.final_grad_norm(label, seed) for label in labels]
        left.plot(cov, err, "o-", color=color, label=f"task {seed}")
        right.plot(cov, np.array(norm) * 1e3, "o-", color=color, label=f"task {seed}")
    _label(
        left,
        "Error of the server's direction",
        "minimum coverage C_x*",
        "mean |direction - grad F| / mean |grad F|",
    )
    _label(
        right,
        "Stationarity after the last round",
        "minimum coverage C_x*",
        "|grad F(x_Q)| (x 1e-3)",
    )
    for ax in (left, right):
        ax.set_xticks(cov)
    right.set_ylim(bottom=0)
    return fig


def plot_explore(result: Result, r_min: float):
    """Excess validation loss per round of the four variants at one ``r_min``."""
    from paperlab import plotting

    check_instance("result", result, Result)
    profile = capacity_profile(r_min, len(result.config.capacities))
    fig, ax = _subplots(1, width=6.4)
    for color, variant in zip(plotting.COLORS, VARIANTS, strict=False):
        ax.semilogy(
            result.trace.eval_rounds,
            result.explore_curve(variant, r_min),
            color=color,
            label=VARIANT_NAMES[variant],
        )
    _label(
        ax,
        f"Weakest capacity r_min = {r_min:g}: C_x* = {min_coverage(profile)}",
        "communication round q",
        "F(x_q) - F*",
    )
    return fig

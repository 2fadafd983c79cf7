"""Optimistic multiplicative weights for Nash learning from human feedback (NLHF).

Chen, Zhou, Zhang, Fazel and Du, "Unregularized Linear Convergence in Zero-Sum Game from
Preference Feedback", arXiv:2512.24818.

NLHF treats alignment as a symmetric two-player zero-sum game on a preference matrix
``P`` (``P[a, b] = Pr(a preferred to b)``, so ``P + P^T = 1``): a policy ``pi`` is
good when no policy beats it, and the equilibrium (NE) maximises
``min_{pi'} pi^T P pi'``. The paper runs optimistic multiplicative weights (OMWU) in
self-play with one policy,

    pi_{t+1}(a)  proportional to  pi_t(a) * exp(eta * [2 (P pi_t)_a - (P pi_{t-1})_a]),

and proves that its last iterate converges linearly in the duality gap of the
*unregularised* game after a burn-in phase, whenever an NE with full support exists,
without requiring that NE to be unique. This module plants such games, runs OMWU and
its two baselines (plain MWU, whose last iterate cycles, and a KL-regularised update,
which converges to a biased point), and measures the claim.

The hot loop lives in :mod:`paperlab.kernels.omwu`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from paperlab.claims import require
from paperlab.kernels.omwu import omwu_run
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "VARIANTS",
    "GAP_THRESHOLD",
    "RATE_R2_MIN",
    "MARGINAL_R2_MIN",
    "POLICY_REL_TOL",
    "MWU_GAP_FLOOR",
    "REG_BIAS_FRACTION",
    "PreferenceGame",
    "plant_preference_game",
    "duality_gap",
    "nash_set_dimension",
    "rotation_plane",
    "rare_action_start",
    "run_dynamics",
    "linear_rate",
    "marginal_rise",
    "projected_paths",
    "Config",
    "Result",
    "run_experiment",
    "check_claim",
    "check_baselines",
]

logger = logging.getLogger(__name__)

VARIANTS = ("omwu", "mwu", "regularised")

GAP_THRESHOLD = 1e-4  # OMWU's last-iterate duality gap must end below this
RATE_R2_MIN = 0.8  # log(gap) must be this close to a straight line after burn-in
MARGINAL_R2_MIN = 0.85  # the rare action's log-probability must rise this linearly
POLICY_REL_TOL = 0.10  # final policy within 10 % (relative, per action) of pi*
MWU_GAP_FLOOR = 0.05  # plain MWU's gap never falls below this in the second half
REG_BIAS_FRACTION = 0.05  # regularised gap stays above this fraction of tau


@dataclass(frozen=True)
class PreferenceGame:
    """A preference matrix with a planted full-support equilibrium."""

    P: np.ndarray  # (n, n): P[a, b] = Pr(a preferred to b); P + P.T = 1
    pi_star: np.ndarray  # (n,): the planted NE, P @ pi_star = 1/2 everywhere


def plant_preference_game(
    n_actions: int,
    rng: np.random.Generator,
    *,
    scale: float = 0.45,
    concentration: float = 10.0,
) -> PreferenceGame:
    """Draw a preference game whose equilibrium set contains a known full-support NE.

    ``pi_star ~ Dirichlet(concentration * 1)``. The centred matrix ``A = P - 1/2``
    must be skew-symmetric (``P + P^T = 1``) with ``A pi_star = 0`` (every response
    wins exactly half the time against ``pi_star``, which makes ``pi_star`` an NE).
    We build ``A`` from rotations in planes orthogonal to ``pi_star``: an orthonormal
    basis ``u_1..u_{n-1}`` of that complement is split into ``floor((n-1)/2)`` pairs,
    and pair ``k`` adds ``w_k (u u'^T - u' u^T)`` with ``w_k ~ U(0.5, 1)``. Finally
    ``A`` is scaled so that ``max |A| = scale``.

    For odd ``n`` every direction except ``pi_star`` rotates, so the NE is unique.
    For even ``n`` one direction is left over: the null space of ``A`` is two-
    dimensional and the equilibria form a segment through ``pi_star`` (the null space
    of a skew-symmetric matrix has the parity of ``n``).

    Parameters
    ----------
    n_actions : int
        Number of responses ``n`` (>= 3).
    rng : numpy.random.Generator
        Source of randomness.
    scale : float
        ``max |P - 1/2|``, in (0, 0.5].
    concentration : float
        Dirichlet concentration of ``pi_star`` (> 0); large values keep it away from
        the simplex boundary.

    Returns
    -------
    PreferenceGame

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or range.

    Notes
    -----
    The rotation rates ``w_k`` are kept within a factor of two of each other. With
    a fully random skew matrix some rates can be tiny, and the instance-dependent
    constants in the paper's rate then make convergence arbitrarily slow; the chapter's
    exercises show this.
    """
    n = check_int("n_actions", n_actions, minimum=3)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    scale = check_float("scale", scale, minimum=0.0, maximum=0.5, strict_minimum=True)
    concentration = check_float(
        "concentration", concentration, minimum=0.0, strict_minimum=True
    )

    pi_star = rng.dirichlet(np.full(n, concentration))
    basis, _ = np.linalg.qr(np.column_stack([pi_star, rng.standard_normal((n, n - 1))]))
    complement = basis[:, 1:]
    A = np.zeros((n, n))
    for k in range((n - 1) // 2):
        u, v = complement[:, 2 * k], complement[:, 2 * k + 1]
        A += rng.uniform(0.5, 1.0) * (np.outer(u, v) - np.outer(v, u))
    A *= scale / np.abs(A).max()
    return PreferenceGame(P=0.5 + A, pi_star=pi_star)


def _check_game(P) -> np.ndarray:
    P = check_array("P", P, ndim=2, dtype=np.float64, finite=True, min_size=1)
    if P.shape[0] != P.shape[1]:
        raise ValueError(f"P must be square, got shape {P.shape}")
    if not np.allclose(P + P.T, 1.0, atol=1e-9):
        raise ValueError("P must satisfy P + P.T = 1 (a preference matrix)")
    return P


def duality_gap(P: np.ndarray, pi: np.ndarray) -> np.ndarray | float:
    """Duality gap of the unregularised preference game at policy ``pi``.

    ``gap(pi) = max_a (P pi)_a - min_b (pi^T P)_b``, the sum of what each player would
    gain by best-responding. Because ``P^T = 1 - P``, this equals
    ``2 max_a (P pi)_a - 1``; it is zero exactly at the equilibria.

    Parameters
    ----------
    P : ndarray of shape (n, n)
        Preference matrix with ``P + P^T = 1``.
    pi : ndarray of shape (n,) or (k, n)
        One policy or a batch of policies (rows sum to one).

    Returns
    -------
    float or ndarray of shape (k,)

    Raises
    ------
    TypeError, ValueError
        If ``P`` is not a preference matrix or ``pi`` is not a distribution.
    """
    P = _check_game(P)
    pi = check_array("pi", pi, dtype=np.float64, finite=True, min_size=1)
    if pi.ndim not in (1, 2) or pi.shape[-1] != P.shape[0]:
        raise ValueError(f"pi must have shape (n,) or (k, n) with n={P.shape[0]}")
    if np.any(pi < 0) or not np.allclose(pi.sum(axis=-1), 1.0, atol=1e-9):
        raise ValueError("pi must be non-negative and sum to one along its last axis")
    gaps = 2.0 * (pi @ P.T).max(axis=-1) - 1.0
    return float(gaps) if pi.ndim == 1 else gaps


def nash_set_dimension(P: np.ndarray, tol: float = 1e-9) -> int:
    """Dimension of the null space of ``A = P - 1/2`` (1: a unique interior NE).

    For a game with a full-support NE, the interior equilibria are the
    probability vectors in this null space, so a dimension above one means a whole
    set of equilibria.
    """
    P = _check_game(P)
    tol = check_float("tol", tol, minimum=0.0, strict_minimum=True)
    singular_values = np.linalg.svd(P - 0.5, compute_uv=False)
    return int(np.sum(singular_values <= tol * max(1.0, singular_values.max())))


def rotation_plane(P: np.ndarray) -> np.ndarray:
    """Orthonormal basis (2, n) of the plane where ``A = P - 1/2`` rotates fastest.

    ``A`` is skew-symmetric, so its eigenvalues are ``+-i w``; the real and imaginary
    parts of the eigenvector with the largest ``w`` span the plane used to draw the
    policy trajectories in two dimensions.
    """
    P = _check_game(P)
    values, vectors = np.linalg.eig(P - 0.5)
    top = np.argmax(values.imag)
    plane, _ = np.linalg.qr(
        np.column_stack([vectors[:, top].real, vectors[:, top].imag])
    )
    return plane.T


def rare_action_start(n_actions: int, action: int, log_prob: float) -> np.ndarray:
    """Initial log-probabilities with ``action`` at ``exp(log_prob)``, others equal.

    Returns
    -------
    ndarray of shape (n_actions,)
        Log-probabilities that sum (after ``exp``) to one.
    """
    n = check_int("n_actions", n_actions, minimum=2)
    action = check_int("action", action, minimum=0, maximum=n - 1)
    log_prob = check_float("log_prob", log_prob, maximum=0.0)
    if log_prob == 0.0:
        raise ValueError("log_prob must be < 0, got 0.0")
    rest = np.log(-np.expm1(log_prob) / (n - 1))
    log_pi0 = np.full(n, rest)
    log_pi0[action] = log_prob
    return log_pi0


def run_dynamics(
    P: np.ndarray,
    variant: str,
    *,
    eta: float,
    n_iters: int,
    tau: float = 0.02,
    log_pi0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run one of the three self-play dynamics and record every iterate.

    ``"omwu"``: the paper's optimistic step along ``2 P pi_t - P pi_{t-1}``.
    ``"mwu"``: plain multiplicative weights along ``P pi_t``.
    ``"regularised"``: the optimistic step on the KL-regularised game
    ``pi^T P pi' - tau KL(pi || uniform) + tau KL(pi' || uniform)``, which converges
    linearly to that game's equilibrium ``pi_tau`` proportional to
    ``exp(P pi_tau / tau)``, not to an NE of ``P``.

    Parameters
    ----------
    P : ndarray of shape (n, n)
        Preference matrix with ``P + P^T = 1``.
    variant : {"omwu", "mwu", "regularised"}
    eta : float
        Step size, > 0.
    n_iters : int
        Number of updates, >= 0.
    tau : float
        Regularisation strength, > 0; used only by ``"regularised"``.
    log_pi0 : ndarray of shape (n,), optional
        Initial log-probabilities (uniform when omitted).

    Returns
    -------
    gaps : ndarray of shape (n_iters + 1,)
        Unregularised duality gap of every iterate.
    log_pi : ndarray of shape (n_iters + 1, n)
        Log-probabilities of every iterate.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type, shape or range.
    """
    P = _check_game(P)
    variant = check_choice("variant", variant, VARIANTS)
    tau = check_float("tau", tau, minimum=0.0, strict_minimum=True)
    optimistic = variant != "mwu"
    strength = tau if variant == "regularised" else 0.0
    return omwu_run(P, eta, n_iters, strength, optimistic, log_pi0)


def projected_paths(
    game: PreferenceGame, *, eta: float, n_iters: int, tau: float = 0.02
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Run every variant from uniform and project its policies onto 2-D.

    The projection is onto :func:`rotation_plane`, centred on ``game.pi_star``, so
    the equilibrium sits at the origin.

    Returns
    -------
    dict
        ``variant -> (gaps, xy)`` with ``gaps`` of shape (n_iters + 1,) and ``xy``
        of shape (n_iters + 1, 2), for every variant in :data:`VARIANTS`.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or range.
    """
    check_instance("game", game, PreferenceGame)
    plane = rotation_plane(game.P)
    paths = {}
    for variant in VARIANTS:
        gaps, log_pi = run_dynamics(game.P, variant, eta=eta, n_iters=n_iters, tau=tau)
        paths[variant] = (gaps, (np.exp(log_pi) - game.pi_star) @ plane.T)
    return paths


def _fit_line(y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of ``y`` against ``0..len(y)-1`` and the fit's R^2."""
    t = np.arange(y.size, dtype=np.float64)
    slope, intercept = np.polyfit(t, y, 1)
    spread = np.var(y)
    r2 = 1.0 - np.var(y - (intercept + slope * t)) / spread if spread > 0 else 1.0
    return float(slope), float(r2)


def linear_rate(
    gaps: np.ndarray,
    *,
    upper: float = 1e-3,
    lower: float = 1e-12,
    min_points: int = 50,
) -> tuple[float, float]:
    """Slope of ``log(gap)`` per iteration after burn-in, and how straight it is.

    The window starts when the gap first drops to ``upper`` (the end of burn-in) and
    stops when it first reaches ``lower`` (before round-off floors it) or at the last
    iterate. A negative slope with an R^2 near one is linear (geometric) convergence.

    Returns
    -------
    slope : float
        Least-squares slope of ``log(gap)`` per iteration (NaN if the window is
        shorter than ``min_points``: the gap never got below ``upper``).
    r2 : float
        Coefficient of determination of that straight-line fit (NaN likewise).

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or range.
    """
    gaps = check_array("gaps", gaps, ndim=1, dtype=np.float64, min_size=1)
    upper = check_float("upper", upper, minimum=0.0, strict_minimum=True)
    lower = check_float("lower", lower, minimum=0.0, strict_minimum=True)
    if lower >= upper:
        raise ValueError(f"lower must be < upper, got lower={lower}, upper={upper}")
    min_points = check_int("min_points", min_points, minimum=3)

    below = np.flatnonzero(gaps <= upper)
    if below.size == 0:
        return float("nan"), float("nan")
    start = below[0]
    floor = np.flatnonzero(gaps[start:] <= lower)
    stop = start + floor[0] if floor.size else gaps.size - 1
    if stop - start + 1 < min_points:
        return float("nan"), float("nan")
    return _fit_line(np.log(gaps[start : stop + 1]))


def marginal_rise(log_prob: np.ndarray, target: float) -> tuple[float, float, int]:
    """How a rarely played action's log-probability climbs toward its NE value.

    The rise ends at the first iterate within a factor ``e`` of the target
    (``log_prob >= target - 1``); a straight line fitted up to there measures the
    exponential growth of the probability that the paper's marginal-convergence
    analysis describes.

    Parameters
    ----------
    log_prob : ndarray of shape (T,)
        The action's log-probability at every iterate.
    target : float
        Its log-probability at the equilibrium, ``log pi_star[a]``.

    Returns
    -------
    slope : float
        Growth of the log-probability per iteration during the rise (NaN if the
        action never got near the target).
    r2 : float
        R^2 of the straight-line fit (NaN likewise).
    t_rise : int
        Iterations the rise took (-1 if it never ended).

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or range.
    """
    log_prob = check_array("log_prob", log_prob, ndim=1, dtype=np.float64, min_size=1)
    target = check_float("target", target, maximum=0.0)
    reached = np.flatnonzero(log_prob >= target - 1.0)
    if reached.size == 0 or reached[0] < 2:
        return float("nan"), float("nan"), -1
    t_rise = int(reached[0])
    slope, r2 = _fit_line(log_prob[: t_rise + 1])
    return slope, r2, t_rise


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the variant: the paper's OMWU or one of its baselines."""

    variant: str = "omwu"  # "omwu" (the paper), "mwu" or "regularised" (baselines)
    sizes: tuple[int, ...] = (7, 8)  # numbers of responses: odd = unique NE, even = set
    n_seeds: int = 4  # planted games per size
    n_iters: int = 5_000  # self-play updates per run
    eta: float = 2.0  # step size, the same for every variant
    tau: float = 0.02  # KL strength of the regularised baseline
    scale: float = 0.45  # max |P - 1/2|
    concentration: float = 10.0  # Dirichlet concentration of the planted NE
    marginal_size: int = 7  # responses in the rare-action run (odd: unique NE)
    rare_log_prob: float = -10.0  # initial log-probability of the rare action
    seed: int = 0  # base seed; game (size n, index i) uses seed sequence (seed, n, i)

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, VARIANTS)
        if not isinstance(self.sizes, tuple) or not self.sizes:
            raise TypeError(f"sizes must be a non-empty tuple, got {self.sizes!r}")
        for n in self.sizes:
            check_int("sizes[i]", n, minimum=3, maximum=64)
        check_int("n_seeds", self.n_seeds, minimum=1)
        check_int("n_iters", self.n_iters, minimum=100)
        check_float("eta", self.eta, minimum=0.0, strict_minimum=True)
        check_float("tau", self.tau, minimum=0.0, strict_minimum=True)
        check_float("scale", self.scale, minimum=0.0, maximum=0.5, strict_minimum=True)
        check_float(
            "concentration", self.concentration, minimum=0.0, strict_minimum=True
        )
        check_int("marginal_size", self.marginal_size, minimum=3, maximum=64)
        if self.marginal_size % 2 == 0:
            raise ValueError(
                f"marginal_size must be odd (unique NE), got {self.marginal_size}"
            )
        check_float("rare_log_prob", self.rare_log_prob, maximum=-1.0)
        check_int("seed", self.seed, minimum=0)

    def game(self, n_actions: int, index: int) -> PreferenceGame:
        """The planted game number ``index`` with ``n_actions`` responses."""
        n = check_int("n_actions", n_actions, minimum=3)
        index = check_int("index", index, minimum=0)
        rng = np.random.default_rng((self.seed, n, index))
        return plant_preference_game(
            n, rng, scale=self.scale, concentration=self.concentration
        )


@dataclass(frozen=True)
class Result:
    """What one variant did on every planted game, plus the rare-action run.

    Arrays indexed ``[size, seed]`` follow ``config.sizes`` and seed indices
    ``0..n_seeds-1``.
    """

    config: Config
    gaps: np.ndarray  # (n_sizes, n_seeds, n_iters + 1): duality gap of every iterate
    final_gap: np.ndarray  # (n_sizes, n_seeds): gap of the last iterate
    min_gap_last_half: np.ndarray  # (n_sizes, n_seeds): smallest gap, second half
    rate: np.ndarray  # (n_sizes, n_seeds): slope of log(gap) per iteration, NaN: none
    rate_r2: np.ndarray  # (n_sizes, n_seeds): R^2 of that slope's line
    policy_error: np.ndarray  # (n_sizes, n_seeds): max_a |pi_T(a) - pi*(a)| / pi*(a)
    marginal_action: int  # the action started at exp(rare_log_prob)
    marginal_log_prob: np.ndarray  # (n_iters + 1,): its log-probability over time
    marginal_target: float  # log pi*(action)
    marginal_slope: float  # growth of its log-probability per iteration, during rise
    marginal_r2: float  # R^2 of that straight-line fit
    marginal_t_rise: int  # iterations until within a factor e of pi*(action)
    marginal_policy_error: float  # max relative error of the final policy vs pi*


def _relative_error(log_pi: np.ndarray, pi_star: np.ndarray) -> float:
    return float(np.max(np.abs(np.exp(log_pi) - pi_star) / pi_star))


def run_experiment(config: Config) -> Result:
    """Run ``config.variant`` on every planted game and on the rare-action start.

    Returns
    -------
    Result

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`Config`.
    """
    check_instance("config", config, Config)
    shape = (len(config.sizes), config.n_seeds)
    gaps = np.empty(shape + (config.n_iters + 1,))
    rate = np.empty(shape)
    rate_r2 = np.empty(shape)
    policy_error = np.empty(shape)
    for i, n in enumerate(config.sizes):
        for j in range(config.n_seeds):
            game = config.game(n, j)
            gaps[i, j], log_pi = run_dynamics(
                game.P,
                config.variant,
                eta=config.eta,
                n_iters=config.n_iters,
                tau=config.tau,
            )
            rate[i, j], rate_r2[i, j] = linear_rate(gaps[i, j])
            policy_error[i, j] = _relative_error(log_pi[-1], game.pi_star)
            logger.debug("n=%d seed=%d final gap %.3g", n, j, gaps[i, j, -1])

    game = config.game(config.marginal_size, 0)
    action = int(np.argmin(game.pi_star))
    _, log_pi = run_dynamics(
        game.P,
        config.variant,
        eta=config.eta,
        n_iters=config.n_iters,
        tau=config.tau,
        log_pi0=rare_action_start(config.marginal_size, action, config.rare_log_prob),
    )
    target = float(np.log(game.pi_star[action]))
    slope, r2, t_rise = marginal_rise(log_pi[:, action], target)
    half = config.n_iters // 2
    return Result(
        config=config,
        gaps=gaps,
        final_gap=gaps[:, :, -1].copy(),
        min_gap_last_half=gaps[:, :, half:].min(axis=2),
        rate=rate,
        rate_r2=rate_r2,
        policy_error=policy_error,
        marginal_action=action,
        marginal_log_prob=log_pi[:, action].copy(),
        marginal_target=target,
        marginal_slope=slope,
        marginal_r2=r2,
        marginal_t_rise=t_rise,
        marginal_policy_error=_relative_error(log_pi[-1], game.pi_star),
    )


def check_claim(result: Result) -> None:
    """Raise :class:`~paperlab.claims.ClaimFailed` unless the paper's claim holds.

    The claim, on every planted game (odd and even ``n``, so with a unique NE and
    with a whole segment of NEs):

    1. the last iterate's duality gap is at most ``GAP_THRESHOLD``;
    2. after burn-in, ``log(gap)`` falls along a straight line (negative slope,
       R^2 >= ``RATE_R2_MIN``): linear convergence;
    3. in the rare-action run, the action's log-probability rises along a straight
       line (positive slope, R^2 >= ``MARGINAL_R2_MIN``), and the final policy is
       within ``POLICY_REL_TOL`` of ``pi_star`` on every action.

    Raises
    ------
    TypeError
        If ``result`` is not a :class:`Result`.
    ClaimFailed
        If any part of the claim fails, with the measured numbers.
    """
    check_instance("result", result, Result)
    name = result.config.variant
    parities = {n % 2 for n in result.config.sizes}
    require(
        parities == {0, 1},
        f"{name}: the claim covers games with a unique equilibrium (odd n) and with a "
        f"set of equilibria (even n); sizes {result.config.sizes} miss one of them",
    )
    worst = float(np.max(result.final_gap))
    require(
        worst <= GAP_THRESHOLD,
        f"{name}: last-iterate duality gap {worst:.3g} > {GAP_THRESHOLD:g} "
        "on some game",
    )
    require(
        bool(np.all(np.isfinite(result.rate))),
        f"{name}: the gap never fell below 1e-3 long enough to measure a rate",
    )
    require(
        float(np.max(result.rate)) < 0.0,
        f"{name}: log(gap) does not decrease after burn-in "
        f"(largest slope {np.max(result.rate):.3g} per iteration)",
    )
    require(
        float(np.min(result.rate_r2)) >= RATE_R2_MIN,
        f"{name}: log(gap) is not linear after burn-in "
        f"(smallest R^2 {np.min(result.rate_r2):.3f} < {RATE_R2_MIN})",
    )
    require(
        result.marginal_t_rise > 0
        and result.marginal_slope > 0.0
        and result.marginal_r2 >= MARGINAL_R2_MIN,
        f"{name}: the rare action's log-probability did not rise linearly "
        f"(slope {result.marginal_slope:.3g}, R^2 {result.marginal_r2:.3f})",
    )
    require(
        result.marginal_policy_error <= POLICY_REL_TOL,
        f"{name}: final policy is {result.marginal_policy_error:.1%} away from "
        f"pi* on some action (> {POLICY_REL_TOL:.0%})",
    )


def check_baselines(mwu: Result, regularised: Result) -> None:
    """Raise :class:`~paperlab.claims.ClaimFailed` unless both baselines fall short.

    Plain MWU's gap must stay at or above ``MWU_GAP_FLOOR`` throughout the second
    half of every run (its last iterate cycles instead of converging), and the
    regularised update's gap must settle at or above ``REG_BIAS_FRACTION * tau``
    (the bias of the regularised equilibrium).

    Raises
    ------
    TypeError, ValueError
        If the arguments are not results of the named variants.
    ClaimFailed
        If a baseline gets closer to the equilibrium than that.
    """
    for label, result in (("mwu", mwu), ("regularised", regularised)):
        if not isinstance(result, Result):
            raise TypeError(f"{label} must be a Result, got {type(result).__name__}")
        if result.config.variant != label:
            raise ValueError(
                f"{label} must be a result of variant {label!r}, "
                f"got {result.config.variant!r}"
            )
    mwu_low = float(np.min(mwu.min_gap_last_half))
    require(
        mwu_low >= MWU_GAP_FLOOR,
        f"mwu: gap fell to {mwu_low:.3g} < {MWU_GAP_FLOOR} in the second half",
    )
    floor = REG_BIAS_FRACTION * regularised.config.tau
    reg_low = float(np.min(regularised.min_gap_last_half))
    require(
        reg_low >= floor,
        f"regularised: gap fell to {reg_low:.3g} < {floor:.3g} in the second half",
    )

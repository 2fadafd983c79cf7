"""Paired seed evaluation: compare two stochastic simulators under the same seeds.

Sharma (2025), "Paired Seed Evaluation: Statistical Reliability for Learning-Based
Simulators", arXiv:2512.24145.

A learning-based simulator is random only through its seeded generator, so two systems
A and B (here: two tax rates) can be run under the *same* seed ``s_i``. Every random
component (initial values, exploration, shocks) then takes the same value in both
runs, the per-seed outcomes ``Y_A(s_i)`` and ``Y_B(s_i)`` are correlated (correlation
``rho``), and the mean of the per-seed differences ``D_i = Y_A(s_i) - Y_B(s_i)``
estimates ``Delta = E[Y_A - Y_B]`` with variance

    Var(mean D) = (sigma_A^2 + sigma_B^2 - 2 rho sigma_A sigma_B) / n,

against ``(sigma_A^2 + sigma_B^2) / n`` when B runs under seeds of its own. With
``sigma_A = sigma_B`` the paired design is worth ``1 / (1 - rho)`` independent
designs of the same size; with ``rho = 0`` the two coincide.

This module runs that comparison as a Monte Carlo study of many small "studies" on the
toy economic simulator of :mod:`paperlab.kernels.econ_sim`, and checks the chapter's
claim on coverage, interval width and power.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from paperlab.claims import ClaimFailed
from paperlab.kernels.econ_sim import run_econ_sim_batch
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
    check_probability,
)

__all__ = [
    "VARIANTS",
    "SIM_CONSTANTS",
    "Config",
    "DesignSummary",
    "Result",
    "study_seeds",
    "simulate_welfare",
    "paired_ci",
    "welch_ci",
    "seed_correlation",
    "paired_variance_factor",
    "effective_sample_size_gain",
    "summarise_intervals",
    "add_private_noise",
    "run_experiment",
    "check_claim",
    "MIN_COVERAGE",
    "MIN_RHO",
    "MAX_WIDTH_RATIO",
    "MIN_POWER_GAIN",
    "CONTROL_TOLERANCE",
]

logger = logging.getLogger(__name__)

VARIANTS = ("mechanism", "baseline")

# Settings of the toy economy that the chapter never changes (see the kernel module).
SIM_CONSTANTS = {
    "n_actions": 11,  # hour levels 0, 0.1, ..., 1
    "kappa": 1.0,  # weight of the disutility of work
    "agg_scale": 0.2,  # economy-wide productivity shock, uniform in [0.8, 1.2]
    "idio_scale": 0.5,  # personal productivity shock, uniform in [0.5, 1.5]
}

# Thresholds of the claim (measured margins are in the chapter and its tests).
MIN_COVERAGE = 0.90  # both designs' 95% intervals must cover the true Delta this often
MIN_RHO = 0.75  # the seed-level correlation that pairing should deliver
MAX_WIDTH_RATIO = 0.5  # paired width / independent width
MIN_POWER_GAIN = 0.30  # paired power - independent power
CONTROL_TOLERANCE = 0.15  # |width ratio - 1| when B's seeds are disjoint from A's


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the variant of the Monte Carlo study.

    ``variant="mechanism"`` runs B under A's seeds (paired seed evaluation);
    ``variant="baseline"`` gives B a disjoint stream of seeds, so the "paired" runs
    share no randomness (the standard practice of independent seeds).
    """

    variant: str = "mechanism"  # "mechanism" (shared seeds) or "baseline" (disjoint)
    n_studies: int = 200  # simulated studies in the Monte Carlo
    n_seeds: int = 10  # runs per system in each study
    n_truth: int = 1000  # paired seeds used once to pin down the true Delta
    tax_a: float = 0.10  # system A's tax rate
    tax_b: float = 0.11  # system B's tax rate
    n_agents: int = 20  # workers in the economy
    n_steps: int = 1000  # Q-learning steps per run
    eps: float = 0.2  # exploration probability
    lr: float = 0.1  # Q-learning step size
    level: float = 0.95  # confidence level of the intervals
    seed: int = 0  # master seed: picks the blocks of simulator seeds

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, VARIANTS)
        check_int("n_studies", self.n_studies, minimum=2)
        check_int("n_seeds", self.n_seeds, minimum=2)
        check_int("n_truth", self.n_truth, minimum=2)
        check_float("tax_a", self.tax_a, minimum=0.0, maximum=0.99)
        check_float("tax_b", self.tax_b, minimum=0.0, maximum=0.99)
        check_int("n_agents", self.n_agents, minimum=1)
        check_int("n_steps", self.n_steps, minimum=10)
        check_probability("eps", self.eps)
        check_float("lr", self.lr, minimum=0.0, maximum=1.0, strict_minimum=True)
        check_float("level", self.level, minimum=0.5, maximum=0.999)
        check_int("seed", self.seed, minimum=0)


@dataclass(frozen=True)
class DesignSummary:
    """How one evaluation design's confidence intervals behaved over the studies."""

    coverage: float  # share of intervals that contain the true Delta
    mean_width: float  # mean interval width (welfare units)
    power: float  # share of intervals that exclude 0 (two-sided test at 1 - level)
    estimate_sd: float  # spread of the point estimates over the studies


@dataclass(frozen=True, eq=False)
class Result:
    """Everything the claim and the chapter's figures need."""

    config: Config
    delta_true: float  # Delta = E[Y_A - Y_B], from config.n_truth paired seeds
    rho: float  # correlation of Y_A and Y_B over the matched runs
    rho_control: float  # the same for runs under disjoint seeds
    paired: DesignSummary  # paired t-interval on the matched runs
    independent: DesignSummary  # Welch interval, B's runs taken under other seeds
    control: DesignSummary  # paired t-interval applied to those independent runs
    y_a: np.ndarray = field(repr=False)  # (n_studies, n_seeds) welfare of A
    y_b: np.ndarray = field(repr=False)  # (n_studies, n_seeds) B, matched run by run
    y_b_other: np.ndarray = field(repr=False)  # (n_studies, n_seeds) B, other seeds


def study_seeds(config: Config) -> dict[str, np.ndarray]:
    """The simulator seeds of a study: A's, B's (per the variant) and the truth's.

    All seeds come from one block of consecutive integers whose start is drawn from
    ``config.seed``; the blocks of A, the baseline's B and the truth never overlap.

    Returns
    -------
    dict
        ``"a"`` and ``"b"``: int64 arrays of shape (n_studies, n_seeds), row ``k``
        holding study ``k``'s seeds (``"b"`` equals ``"a"`` for the mechanism);
        ``"truth"``: int64 array of shape (n_truth,).
    """
    check_instance("config", config, Config)
    rng = np.random.default_rng(config.seed)
    n_runs = config.n_studies * config.n_seeds
    start = int(rng.integers(0, 2**40))
    block = np.arange(n_runs, dtype=np.int64).reshape(config.n_studies, config.n_seeds)
    seeds_a = start + block
    seeds_b = seeds_a if config.variant == "mechanism" else seeds_a + n_runs
    truth = start + 2 * n_runs + np.arange(config.n_truth, dtype=np.int64)
    return {"a": seeds_a, "b": seeds_b, "truth": truth}


def simulate_welfare(seeds, tax_rate: float, config: Config) -> np.ndarray:
    """Welfare of one simulator run per seed, under one tax rate.

    Parameters
    ----------
    seeds : array_like of int, any shape
        Non-negative simulator seeds.
    tax_rate : float
        The flat tax rate of the system being run, in [0, 0.99].
    config : Config
        Supplies the economy's size and learning settings.

    Returns
    -------
    ndarray of float64, same shape as ``seeds``
        Mean reward per worker over the last tenth of the run's steps.
    """
    seeds = check_array("seeds", seeds)
    if seeds.size and not np.issubdtype(seeds.dtype, np.integer):
        raise TypeError(f"seeds must be integers, got dtype {seeds.dtype}")
    if seeds.size and seeds.min() < 0:
        raise ValueError("seeds must be non-negative")
    tax_rate = check_float("tax_rate", tax_rate, minimum=0.0, maximum=0.99)
    check_instance("config", config, Config)
    flat = np.ascontiguousarray(seeds.reshape(-1), dtype=np.int64)
    welfare = run_econ_sim_batch(
        flat,
        tax_rate,
        config.n_agents,
        config.n_steps,
        config.eps,
        config.lr,
        max(1, config.n_steps // 10),
        SIM_CONSTANTS["n_actions"],
        SIM_CONSTANTS["kappa"],
        SIM_CONSTANTS["agg_scale"],
        SIM_CONSTANTS["idio_scale"],
    )
    return welfare.reshape(seeds.shape)


def _check_pair(y_a, y_b, level: float) -> tuple[np.ndarray, np.ndarray, float]:
    y_a = check_array("y_a", y_a, dtype=np.float64, finite=True)
    y_b = check_array("y_b", y_b, dtype=np.float64, finite=True)
    if y_a.ndim == 0 or y_a.shape[-1] < 2 or y_b.ndim == 0 or y_b.shape[-1] < 2:
        raise ValueError("y_a and y_b need at least 2 runs along their last axis")
    level = check_float("level", level, minimum=0.5, maximum=0.999)
    return y_a, y_b, level


def paired_ci(y_a, y_b, level: float = 0.95):
    """Paired t-interval for ``Delta`` from runs matched seed by seed.

    With ``D_i = Y_A(s_i) - Y_B(s_i)``, the estimate is the mean difference and the
    interval is ``mean(D) +- t_{n-1} s_D / sqrt(n)``: the paired seed estimator and its
    confidence interval.

    Parameters
    ----------
    y_a, y_b : array_like, shape (..., n)
        Outcomes of A and B; entry ``i`` of the last axis comes from seed ``s_i``.
    level : float
        Confidence level in [0.5, 0.999].

    Returns
    -------
    estimate, lower, upper : ndarray, shape (...)

    Raises
    ------
    ValueError
        If the shapes differ, fewer than 2 runs are given, or values are not finite.
    """
    y_a, y_b, level = _check_pair(y_a, y_b, level)
    if y_a.shape != y_b.shape:
        raise ValueError(
            f"y_a and y_b must have the same shape (one pair per seed), "
            f"got {y_a.shape} and {y_b.shape}"
        )
    n = y_a.shape[-1]
    diff = y_a - y_b
    estimate = diff.mean(axis=-1)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * diff.std(axis=-1, ddof=1) / np.sqrt(n)
    return estimate, estimate - half, estimate + half


def welch_ci(y_a, y_b, level: float = 0.95):
    """Welch interval for ``Delta`` from two independent samples of runs.

    ``mean(Y_A) - mean(Y_B) +- t_nu sqrt(s_A^2/n_A + s_B^2/n_B)``, with the
    Welch-Satterthwaite degrees of freedom ``nu``: the independent-seed baseline.

    Parameters
    ----------
    y_a : array_like, shape (..., n_a)
    y_b : array_like, shape (..., n_b)
        Outcomes of A and B under unrelated seeds; leading axes must match.
    level : float
        Confidence level in [0.5, 0.999].

    Returns
    -------
    estimate, lower, upper : ndarray, shape (...)
    """
    y_a, y_b, level = _check_pair(y_a, y_b, level)
    if y_a.shape[:-1] != y_b.shape[:-1]:
        raise ValueError(
            f"y_a and y_b must agree on their leading axes, "
            f"got {y_a.shape} and {y_b.shape}"
        )
    n_a, n_b = y_a.shape[-1], y_b.shape[-1]
    var_a = y_a.var(axis=-1, ddof=1) / n_a
    var_b = y_b.var(axis=-1, ddof=1) / n_b
    se2 = var_a + var_b
    denom = var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1)
    # Both samples constant: no spread, any df gives a zero-width interval.
    dof = np.where(denom > 0, se2**2 / np.where(denom > 0, denom, 1.0), n_a + n_b - 2)
    estimate = y_a.mean(axis=-1) - y_b.mean(axis=-1)
    half = stats.t.ppf(0.5 + level / 2, dof) * np.sqrt(se2)
    return estimate, estimate - half, estimate + half


def seed_correlation(y_a, y_b) -> float:
    """Pearson correlation ``rho`` of ``Y_A(s_i)`` and ``Y_B(s_i)`` over all pairs.

    Parameters
    ----------
    y_a, y_b : array_like, same shape, at least 3 entries
        Matched outcomes (flattened).
    """
    y_a = check_array("y_a", y_a, dtype=np.float64, finite=True, min_size=3)
    y_b = check_array("y_b", y_b, dtype=np.float64, finite=True, min_size=3)
    if y_a.shape != y_b.shape:
        raise ValueError(
            f"y_a and y_b must have the same shape, got {y_a.shape} and {y_b.shape}"
        )
    return float(np.corrcoef(y_a.ravel(), y_b.ravel())[0, 1])


def paired_variance_factor(
    rho: float, sigma_a: float = 1.0, sigma_b: float = 1.0
) -> float:
    """Variance of the paired estimator over that of the independent one.

    ``(sigma_A^2 + sigma_B^2 - 2 rho sigma_A sigma_B) / (sigma_A^2 + sigma_B^2)``:
    below 1 exactly when ``rho > 0``.

    Parameters
    ----------
    rho : float
        Seed-level correlation in [-1, 1].
    sigma_a, sigma_b : float
        Seed-level standard deviations of the two outcomes (not both 0).
    """
    rho = check_float("rho", rho, minimum=-1.0, maximum=1.0)
    sigma_a = check_float("sigma_a", sigma_a, minimum=0.0)
    sigma_b = check_float("sigma_b", sigma_b, minimum=0.0)
    total = sigma_a**2 + sigma_b**2
    if total == 0:
        raise ValueError("sigma_a and sigma_b must not both be 0")
    return (total - 2 * rho * sigma_a * sigma_b) / total


def effective_sample_size_gain(
    rho: float, sigma_a: float = 1.0, sigma_b: float = 1.0
) -> float:
    """How many independent-seed runs one paired run is worth: the inverse variance
    factor, ``1 / (1 - rho)`` when ``sigma_A = sigma_B`` (infinite at ``rho = 1``)."""
    factor = paired_variance_factor(rho, sigma_a, sigma_b)
    return np.inf if factor == 0 else 1.0 / factor


def summarise_intervals(estimate, lower, upper, delta_true: float) -> DesignSummary:
    """Coverage, mean width, power and estimate spread of a set of intervals.

    Parameters
    ----------
    estimate, lower, upper : array_like, shape (n_studies,)
        One point estimate and interval per study.
    delta_true : float
        The true difference the intervals should cover.
    """
    estimate = check_array(
        "estimate", estimate, ndim=1, dtype=np.float64, finite=True, min_size=1
    )
    shape = (estimate.shape[0],)
    lower = check_array("lower", lower, shape=shape, dtype=np.float64, finite=True)
    upper = check_array("upper", upper, shape=shape, dtype=np.float64, finite=True)
    if np.any(lower > upper):
        raise ValueError("lower must not exceed upper")
    delta_true = check_float("delta_true", delta_true)
    return DesignSummary(
        coverage=float(np.mean((lower <= delta_true) & (delta_true <= upper))),
        mean_width=float(np.mean(upper - lower)),
        power=float(np.mean((lower > 0) | (upper < 0))),
        estimate_sd=float(estimate.std()),
    )


def add_private_noise(y_b, noise_sd: float, seed: int = 0) -> np.ndarray:
    """Add seed-independent Gaussian noise to B's outcomes (lowers ``rho``).

    Stands for randomness in B that A's run does not share, e.g. a component of B that
    draws from a generator of its own.

    Parameters
    ----------
    y_b : array_like
        B's outcomes.
    noise_sd : float
        Standard deviation of the added noise (welfare units, >= 0).
    seed : int
        Seed of the noise generator.
    """
    y_b = check_array("y_b", y_b, dtype=np.float64, finite=True)
    noise_sd = check_float("noise_sd", noise_sd, minimum=0.0)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    return y_b + noise_sd * rng.standard_normal(y_b.shape)


def run_experiment(config: Config) -> Result:
    """Run the Monte Carlo study of paired against independent seed evaluation.

    1. Pin down ``Delta`` once from ``config.n_truth`` paired runs.
    2. Run A and B for every study's seeds (B's seeds per ``config.variant``).
    3. Paired design: study ``k`` pairs A's and B's runs seed by seed.
       Independent design: study ``k`` sets A's runs against the B runs of the study
       half-way round the list, whose seeds are disjoint from study ``k``'s. Both
       designs thus spend the same ``2 n_seeds`` runs per study.
    4. Control: the paired formula applied to the independent design's runs.

    Parameters
    ----------
    config : Config

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    seeds = study_seeds(config)
    truth_a = simulate_welfare(seeds["truth"], config.tax_a, config)
    truth_b = simulate_welfare(seeds["truth"], config.tax_b, config)
    delta_true = float(np.mean(truth_a - truth_b))
    y_a = simulate_welfare(seeds["a"], config.tax_a, config)
    y_b = simulate_welfare(seeds["b"], config.tax_b, config)
    y_b_other = np.roll(y_b, config.n_studies // 2, axis=0)
    logger.info("Delta=%.5f from %d paired seeds", delta_true, config.n_truth)
    return Result(
        config=config,
        delta_true=delta_true,
        rho=seed_correlation(y_a, y_b),
        rho_control=seed_correlation(y_a, y_b_other),
        paired=summarise_intervals(*paired_ci(y_a, y_b, config.level), delta_true),
        independent=summarise_intervals(
            *welch_ci(y_a, y_b_other, config.level), delta_true
        ),
        control=summarise_intervals(
            *paired_ci(y_a, y_b_other, config.level), delta_true
        ),
        y_a=y_a,
        y_b=y_b,
        y_b_other=y_b_other,
    )


def check_claim(result: Result) -> None:
    """Raise :class:`~paperlab.claims.ClaimFailed` unless the chapter's claim holds.

    (1) Both designs' intervals cover the true ``Delta`` in at least
    ``MIN_COVERAGE`` of the studies (the control's too). (2) The matched runs are
    correlated (``rho >= MIN_RHO``), the paired intervals are at most
    ``MAX_WIDTH_RATIO`` times as wide as the independent ones, and the paired design's
    power is at least ``MIN_POWER_GAIN`` higher. (3) With disjoint seeds, the paired
    formula's width is within ``CONTROL_TOLERANCE`` of the independent one: pairing
    loses nothing when there is nothing to share.

    Every failed part is listed in the message.
    """
    check_instance("result", result, Result)
    paired, independent, control = result.paired, result.independent, result.control
    failures = []
    for name, summary in (
        ("paired", paired),
        ("independent", independent),
        ("control", control),
    ):
        if summary.coverage < MIN_COVERAGE:
            failures.append(f"{name} coverage {summary.coverage:.3f} < {MIN_COVERAGE}")
    if result.rho < MIN_RHO:
        failures.append(f"seed-level correlation rho={result.rho:.3f} < {MIN_RHO}")
    width_ratio = paired.mean_width / independent.mean_width
    if width_ratio > MAX_WIDTH_RATIO:
        failures.append(
            f"paired/independent width ratio {width_ratio:.3f} > {MAX_WIDTH_RATIO}"
        )
    gain = paired.power - independent.power
    if gain < MIN_POWER_GAIN:
        failures.append(f"power gain {gain:.3f} < {MIN_POWER_GAIN}")
    control_ratio = control.mean_width / independent.mean_width
    if abs(control_ratio - 1) > CONTROL_TOLERANCE:
        failures.append(
            f"control width ratio {control_ratio:.3f} is not within "
            f"{CONTROL_TOLERANCE} of 1"
        )
    if failures:
        raise ClaimFailed("claim does not hold: " + "; ".join(failures))

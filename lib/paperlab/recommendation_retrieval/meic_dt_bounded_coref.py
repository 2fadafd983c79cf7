"""MEIC-DT: incremental coreference clustering under a dual-threshold memory budget.

Luo et al., "MEIC-DT: Memory-Efficient Incremental Clustering for Long-Text
Coreference Resolution with Dual-Threshold Constraints", arXiv 2512.24711.

An incremental coreference system reads mentions in order and attaches each one to a
cluster (an entity seen so far) or opens a new cluster. MEIC-DT bounds what its
scorer reads with two thresholds: at most ``c_max`` clusters in the cache and at most
``m_max`` mentions kept per cluster, so a step never reads more than
``c_max * m_max`` mentions. Two policies decide what the cache gives up: a
statistics-aware eviction strategy (SAES) picks the cluster to drop, and an internal
regularization policy (IRP) picks the mentions a full cluster keeps.

This module is a toy of the cache logic only. Mentions are noisy vectors of known
entities, the scorer is a cosine against the mean of a cluster's kept mentions, and
SAES and IRP are replaced by stand-ins (the paper's exact formulas were not available
to us): SAES keeps the clusters a logistic model, fitted on gold clusters of training
documents, rates most likely to be mentioned again from their mention count and age;
IRP keeps the mentions nearest the cluster's running centroid. The stream itself runs
in :func:`paperlab.kernels.coref_cache.incremental_cluster_stream`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from paperlab.claims import require
from paperlab.kernels.coref_cache import (
    EVICT_LRU,
    EVICT_SAES,
    RETAIN_IRP,
    RETAIN_RECENT,
    incremental_cluster_stream,
)
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
    "BOUNDED",
    "Document",
    "make_document",
    "gold_cluster_features",
    "fit_saes_weights",
    "cluster_stream",
    "contingency",
    "muc",
    "b_cubed",
    "ceaf_e",
    "conll_f1",
    "tune_threshold",
    "Config",
    "Result",
    "run_experiment",
    "check_claim",
    "BudgetGrid",
    "budget_sweep",
    "plot_results",
    "plot_budget",
]

log = logging.getLogger(__name__)

# variant -> (evict code, retain code, bounded?)
_POLICIES = {
    "unbounded": (EVICT_LRU, RETAIN_RECENT, False),
    "lru_recent": (EVICT_LRU, RETAIN_RECENT, True),
    "saes_recent": (EVICT_SAES, RETAIN_RECENT, True),
    "lru_irp": (EVICT_LRU, RETAIN_IRP, True),
    "saes_irp": (EVICT_SAES, RETAIN_IRP, True),
}
VARIANTS = tuple(_POLICIES)
BOUNDED = tuple(v for v in VARIANTS if _POLICIES[v][2])
VARIANT_NAMES = {
    "unbounded": "unbounded cache",
    "lru_recent": "LRU + keep recent (baseline)",
    "saes_recent": "SAES-lite + keep recent",
    "lru_irp": "LRU + IRP-lite",
    "saes_irp": "SAES-lite + IRP-lite (MEIC-DT toy)",
}
BASELINE = "lru_recent"
THRESHOLD_GRID = tuple(np.round(np.arange(0.10, 0.91, 0.05), 2))

# The claim's thresholds (see check_claim), set from the per-seed measurements
# reported in the chapter.
MIN_GAIN_OVER_BASELINE = 6.0  # CoNLL F1 points above LRU + keep recent
MIN_GAP_CLOSED = 0.25  # share of the LRU-to-unbounded F1 gap the policy recovers


# ------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Document:
    """A synthetic long document: mention vectors in reading order and their entity."""

    X: np.ndarray = field(repr=False)  # float32, (n_mentions, dim)
    entities: np.ndarray = field(repr=False)  # int64, (n_mentions,): gold entity ids


def make_document(
    rng: np.random.Generator,
    *,
    n_entities: int = 40,
    n_mentions: int = 1500,
    dim: int = 16,
    noise: float = 0.6,
    zipf_exponent: float = 1.0,
    burst_prob: float = 0.5,
) -> Document:
    """Draw a document whose entities follow Zipf popularity with bursts.

    Entity ``e`` (rank ``e + 1``) has popularity proportional to
    ``(e + 1) ** -zipf_exponent``. Each mention repeats the previous mention's entity
    with probability ``burst_prob`` and otherwise draws a fresh entity by popularity.
    A mention is its entity's prototype (standard normal in ``R^dim``) plus Gaussian
    noise of standard deviation ``noise`` per coordinate.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_entities, n_mentions, dim : int
        Sizes, each at least 1.
    noise : float
        Noise standard deviation, at least 0.
    zipf_exponent : float
        Popularity skew, at least 0 (0 is uniform).
    burst_prob : float
        Probability of repeating the previous entity, in [0, 1).

    Returns
    -------
    Document
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    n_entities = check_int("n_entities", n_entities, minimum=1)
    n_mentions = check_int("n_mentions", n_mentions, minimum=1)
    dim = check_int("dim", dim, minimum=1)
    noise = check_float("noise", noise, minimum=0.0)
    zipf_exponent = check_float("zipf_exponent", zipf_exponent, minimum=0.0)
    burst_prob = check_float("burst_prob", burst_prob, minimum=0.0, maximum=0.99)
    prototypes = rng.standard_normal((n_entities, dim))
    popularity = np.arange(1, n_entities + 1, dtype=np.float64) ** -zipf_exponent
    draws = rng.choice(n_entities, size=n_mentions, p=popularity / popularity.sum())
    fresh = rng.random(n_mentions) >= burst_prob
    fresh[0] = True
    # each mention takes the entity of the latest fresh draw at or before it
    source = np.maximum.accumulate(np.where(fresh, np.arange(n_mentions), 0))
    entities = draws[source].astype(np.int64)
    X = prototypes[entities] + noise * rng.standard_normal((n_mentions, dim))
    return Document(X.astype(np.float32), entities)


# ------------------------------------------------------- SAES statistics (train)


def gold_cluster_features(
    entities, horizon: int = 100, stride: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Cache statistics of gold clusters and whether each cluster is needed soon.

    Every ``stride`` mentions, for every entity already mentioned, record its
    features ``[log(1 + count), log(1 + age)]`` (mentions so far; mentions since its
    last one) and the label "mentioned again within the next ``horizon`` mentions".
    This is the training-phase profile: the statistics come from gold clusters.

    Parameters
    ----------
    entities : array_like of int, shape (n,)
        Gold entity of each mention, in reading order.
    horizon, stride : int
        Look-ahead window and sampling step, each at least 1.

    Returns
    -------
    features : ndarray of float64, shape (m, 2)
    labels : ndarray of float64, shape (m,)
    """
    entities = check_array("entities", entities, ndim=1, dtype=np.int64, min_size=1)
    horizon = check_int("horizon", horizon, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    n, n_ent = entities.shape[0], int(entities.max()) + 1
    counts = np.zeros(n_ent)
    last = np.full(n_ent, -1)
    rows, labels = [], []
    for t in range(n):
        counts[entities[t]] += 1
        last[entities[t]] = t
        if t % stride or t + 1 >= n:
            continue
        seen = np.flatnonzero(counts > 0)
        upcoming = np.zeros(n_ent, dtype=bool)
        upcoming[entities[t + 1 : t + 1 + horizon]] = True
        rows.append(np.column_stack((np.log1p(counts[seen]), np.log1p(t - last[seen]))))
        labels.append(upcoming[seen])
    if not rows:
        return np.zeros((0, 2)), np.zeros(0)
    return np.concatenate(rows), np.concatenate(labels).astype(np.float64)


def fit_saes_weights(
    features, labels, ridge: float = 1e-3, n_iter: int = 25
) -> np.ndarray:
    """Fit the SAES-lite keep score by logistic regression (Newton's method).

    Models ``P(needed soon) = sigmoid(b + a_c * log(1 + count) + a_t * log(1 + age))``
    and returns the eviction weights ``(w_count, w_age) = (a_c, -a_t)``: the kernel
    evicts the cluster with the lowest ``w_count * log(1 + count) - w_age *
    log(1 + age)``, the one least likely to be needed (the intercept ``b`` does not
    change the ranking).

    Parameters
    ----------
    features : array_like, shape (m, 2)
        As returned by :func:`gold_cluster_features`.
    labels : array_like of {0, 1}, shape (m,)
    ridge : float
        L2 penalty on the two slopes, at least 0.
    n_iter : int
        Newton steps, at least 1.

    Returns
    -------
    ndarray of float64, shape (2,)
    """
    features = check_array(
        "features", features, ndim=2, dtype=np.float64, shape=(None, 2), finite=True
    )
    labels = check_array(
        "labels", labels, ndim=1, dtype=np.float64, shape=(features.shape[0],)
    )
    if features.shape[0] < 2 or np.unique(labels).size < 2:
        raise ValueError("labels must contain both classes (0 and 1)")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("labels must be 0 or 1")
    ridge = check_float("ridge", ridge, minimum=0.0)
    n_iter = check_int("n_iter", n_iter, minimum=1)
    A = np.column_stack((np.ones(features.shape[0]), features))
    penalty = np.diag([0.0, ridge, ridge]) * features.shape[0]
    w = np.zeros(3)
    for _ in range(n_iter):
        p = 1.0 / (1.0 + np.exp(-A @ w))
        grad = A.T @ (p - labels) + penalty @ w
        hess = (A * (p * (1 - p))[:, None]).T @ A + penalty + 1e-9 * np.eye(3)
        w -= np.linalg.solve(hess, grad)
    return np.array([w[1], -w[2]])


# ---------------------------------------------------------- the bounded stream


def cluster_stream(
    X,
    variant: str,
    threshold: float,
    *,
    c_max: int = 8,
    m_max: int = 4,
    saes_weights=(1.0, 1.0),
) -> tuple[np.ndarray, int]:
    """Cluster one document's mentions with the cache policy ``variant``.

    Parameters
    ----------
    X : array_like of float, shape (n, d)
        Mention vectors in reading order.
    variant : str
        One of :data:`VARIANTS`; ``"unbounded"`` ignores ``c_max`` and ``m_max``.
    threshold : float
        Cosine at or above which a mention joins its best cluster, in [-1, 1].
    c_max, m_max : int
        The dual thresholds: live clusters and kept mentions per cluster.
    saes_weights : array_like, shape (2,)
        ``(w_count, w_age)`` from :func:`fit_saes_weights`.

    Returns
    -------
    labels : ndarray of int32, shape (n,)
    peak_kept : int
        Most mention vectors the scorer could read at one step.
    """
    X = check_array("X", X, ndim=2, dtype=np.float32, finite=True)
    variant = check_choice("variant", variant, VARIANTS)
    threshold = check_float("threshold", threshold, minimum=-1.0, maximum=1.0)
    c_max = check_int("c_max", c_max, minimum=1)
    m_max = check_int("m_max", m_max, minimum=1)
    weights = check_array(
        "saes_weights", saes_weights, ndim=1, dtype=np.float64, shape=(2,), finite=True
    )
    evict, retain, bounded = _POLICIES[variant]
    if not bounded:
        c_max = m_max = max(1, X.shape[0])
    labels, peak = incremental_cluster_stream(
        X, c_max, m_max, threshold, evict, retain, weights
    )
    return labels, int(peak)


# ------------------------------------------------------------------ the metrics


def contingency(gold, pred) -> np.ndarray:
    """Overlap counts between gold clusters (rows) and predicted clusters (columns).

    Parameters
    ----------
    gold, pred : array_like of int, shape (n,)
        Cluster id of every mention (ids need not be contiguous).

    Returns
    -------
    ndarray of float64, shape (n_gold_clusters, n_pred_clusters)
    """
    gold = check_array("gold", gold, ndim=1, min_size=1)
    pred = check_array("pred", pred, ndim=1, shape=(gold.shape[0],))
    for name, arr in (("gold", gold), ("pred", pred)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    _, g = np.unique(gold, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    table = np.zeros((g.max() + 1, p.max() + 1))
    np.add.at(table, (g, p), 1.0)
    return table


def _f1(precision: float, recall: float) -> tuple[float, float, float]:
    total = precision + recall
    f1 = 2 * precision * recall / total if total > 0 else 0.0
    return float(precision), float(recall), float(f1)


def muc(gold, pred) -> tuple[float, float, float]:
    """MUC precision, recall and F1 (link-based; Vilain et al. 1995).

    A gold cluster ``K`` split into ``p(K)`` response pieces keeps ``|K| - p(K)`` of
    its ``|K| - 1`` links: recall is ``sum(|K| - p(K)) / sum(|K| - 1)``, and
    precision is the same with gold and response swapped.
    """
    table = contingency(gold, pred)
    n = table.sum()
    kept_r = n - np.count_nonzero(table, axis=1).sum()
    kept_p = n - np.count_nonzero(table, axis=0).sum()
    recall = kept_r / (n - table.shape[0]) if n > table.shape[0] else 0.0
    precision = kept_p / (n - table.shape[1]) if n > table.shape[1] else 0.0
    return _f1(precision, recall)


def b_cubed(gold, pred) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 (mention-based; Bagga and Baldwin 1998).

    Each mention scores the fraction of its predicted cluster that shares its gold
    cluster (precision) and the fraction of its gold cluster found in its predicted
    cluster (recall); both are averaged over mentions.
    """
    table = contingency(gold, pred)
    n = table.sum()
    squared = table**2
    recall = (squared.sum(axis=1) / table.sum(axis=1)).sum() / n
    precision = (squared.sum(axis=0) / table.sum(axis=0)).sum() / n
    return _f1(precision, recall)


def ceaf_e(gold, pred) -> tuple[float, float, float]:
    """Entity-based CEAF precision, recall and F1 (Luo 2005).

    Gold and predicted clusters are matched one to one to maximise the total
    similarity ``phi4(K, R) = 2 |K & R| / (|K| + |R|)``; recall divides that total by
    the number of gold clusters, precision by the number of predicted clusters.
    """
    table = contingency(gold, pred)
    sizes_k, sizes_r = table.sum(axis=1), table.sum(axis=0)
    phi = 2 * table / (sizes_k[:, None] + sizes_r[None, :])
    rows, cols = linear_sum_assignment(phi, maximize=True)
    total = phi[rows, cols].sum()
    return _f1(total / table.shape[1], total / table.shape[0])


def conll_f1(gold, pred) -> float:
    """CoNLL F1: the mean of the MUC, B-cubed and CEAF-e F1, in points (0-100)."""
    return 100.0 * float(
        np.mean([muc(gold, pred)[2], b_cubed(gold, pred)[2], ceaf_e(gold, pred)[2]])
    )


# ------------------------------------------------------------------ experiment


def tune_threshold(
    doc: Document,
    variant: str,
    *,
    c_max: int = 8,
    m_max: int = 4,
    saes_weights=(1.0, 1.0),
    grid: tuple[float, ...] = THRESHOLD_GRID,
) -> float:
    """The cosine threshold from ``grid`` with the best CoNLL F1 on ``doc``."""
    check_instance("doc", doc, Document)
    if not grid:
        raise ValueError("grid must hold at least one threshold")
    scores = [
        conll_f1(
            doc.entities,
            cluster_stream(
                doc.X,
                variant,
                float(th),
                c_max=c_max,
                m_max=m_max,
                saes_weights=saes_weights,
            )[0],
        )
        for th in grid
    ]
    return float(grid[int(np.argmax(scores))])


@dataclass(frozen=True)
class Config:
    """Sizes, seeds and the policy under test (the paper's mechanism or a baseline)."""

    variant: str = "saes_irp"  # policy the claim is checked on: one of BOUNDED
    n_docs: int = 5  # test documents; the claim averages over them
    n_train_docs: int = 2  # training documents (SAES statistics, thresholds)
    n_entities: int = 40  # entities per document
    n_mentions: int = 1500  # mentions per document
    dim: int = 16  # mention vector size
    noise: float = 0.6  # per-coordinate noise around the entity prototype
    zipf_exponent: float = 1.5  # entity popularity skew
    burst_prob: float = 0.5  # chance a mention repeats the previous entity
    c_max: int = 8  # first threshold: live clusters in the cache
    m_max: int = 4  # second threshold: kept mentions per cluster
    horizon: int = 100  # SAES training label: mentioned within this many mentions
    seed: int = 0  # seeds every document

    def __post_init__(self):
        check_choice("variant", self.variant, BOUNDED)
        check_int("n_docs", self.n_docs, minimum=1)
        check_int("n_train_docs", self.n_train_docs, minimum=1)
        check_int("n_entities", self.n_entities, minimum=2)
        check_int("n_mentions", self.n_mentions, minimum=10)
        check_int("dim", self.dim, minimum=1)
        check_float("noise", self.noise, minimum=0.0)
        check_float("zipf_exponent", self.zipf_exponent, minimum=0.0)
        check_float("burst_prob", self.burst_prob, minimum=0.0, maximum=0.99)
        check_int("c_max", self.c_max, minimum=1)
        check_int("m_max", self.m_max, minimum=1)
        check_int("horizon", self.horizon, minimum=1)
        check_int("seed", self.seed, minimum=0)

    def document(self, rng: np.random.Generator) -> Document:
        """Draw one document with this configuration's sizes."""
        return make_document(
            rng,
            n_entities=self.n_entities,
            n_mentions=self.n_mentions,
            dim=self.dim,
            noise=self.noise,
            zipf_exponent=self.zipf_exponent,
            burst_prob=self.burst_prob,
        )


@dataclass(frozen=True)
class Result:
    """CoNLL F1 and peak cached mentions of every variant on every test document."""

    config: Config
    saes_weights: np.ndarray  # (w_count, w_age) fitted on the training documents
    thresholds: dict  # variant -> cosine threshold tuned on a training document
    f1: dict  # variant -> ndarray (n_docs,) of CoNLL F1 in points
    peak_kept: dict  # variant -> ndarray (n_docs,) of peak cached mentions

    def mean_f1(self, variant: str) -> float:
        """CoNLL F1 of ``variant`` averaged over the test documents."""
        return float(np.mean(self.f1[check_choice("variant", variant, VARIANTS)]))


def _documents(config: Config) -> tuple[list[Document], list[Document]]:
    """Training and test documents, each from its own seeded stream."""
    train = [
        config.document(np.random.default_rng([config.seed, 0, i]))
        for i in range(config.n_train_docs)
    ]
    test = [
        config.document(np.random.default_rng([config.seed, 1, i]))
        for i in range(config.n_docs)
    ]
    return train, test


def run_experiment(config: Config) -> Result:
    """Fit SAES-lite, tune each policy's threshold, and score every policy.

    The SAES-lite weights come from gold clusters of the training documents
    (:func:`gold_cluster_features`, :func:`fit_saes_weights`); each policy's cosine
    threshold is tuned on the first training document; every policy then clusters
    each test document under the budget ``(c_max, m_max)`` (the unbounded cache
    ignores it) and is scored with CoNLL F1.

    Parameters
    ----------
    config : Config

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    train, test = _documents(config)
    feats = [gold_cluster_features(d.entities, config.horizon) for d in train]
    weights = fit_saes_weights(
        np.concatenate([f[0] for f in feats]), np.concatenate([f[1] for f in feats])
    )
    budget = {"c_max": config.c_max, "m_max": config.m_max, "saes_weights": weights}
    thresholds, f1, peaks = {}, {}, {}
    for variant in VARIANTS:
        thresholds[variant] = tune_threshold(train[0], variant, **budget)
        runs = [
            cluster_stream(d.X, variant, thresholds[variant], **budget) for d in test
        ]
        f1[variant] = np.array(
            [
                conll_f1(d.entities, labels)
                for d, (labels, _) in zip(test, runs, strict=True)
            ]
        )
        peaks[variant] = np.array([peak for _, peak in runs])
        log.info("%s: CoNLL F1 %.2f", variant, f1[variant].mean())
    return Result(config, weights, thresholds, f1, peaks)


def check_claim(result: Result) -> None:
    """Check the chapter's claim on the policy named by ``result.config.variant``.

    1. Every bounded policy's cache never held more than ``c_max * m_max`` mentions
       (the dual-threshold guarantee), on every document.
    2. The policy's CoNLL F1, averaged over the test documents, beats LRU + keep
       recent by at least :data:`MIN_GAIN_OVER_BASELINE` points.
    3. It recovers at least :data:`MIN_GAP_CLOSED` of the F1 that LRU + keep recent
       loses to the unbounded cache: ``(F1 - F1_lru) / (F1_unbounded - F1_lru)``.

    Raises
    ------
    paperlab.claims.ClaimFailed
        If any part fails; the message gives the numbers.
    """
    check_instance("result", result, Result)
    config = result.config
    budget = config.c_max * config.m_max
    for variant in BOUNDED:
        worst = int(np.max(result.peak_kept[variant]))
        require(
            worst <= budget,
            f"{variant} held {worst} mentions, over the budget "
            f"c_max * m_max = {budget}",
        )
    ours, base = result.mean_f1(config.variant), result.mean_f1(BASELINE)
    gain = ours - base
    require(
        gain >= MIN_GAIN_OVER_BASELINE,
        f"{config.variant} CoNLL F1 {ours:.2f} is only {gain:.2f} points above "
        f"LRU + keep recent (need {MIN_GAIN_OVER_BASELINE})",
    )
    closed = gain / max(result.mean_f1("unbounded") - base, 1e-9)
    require(
        closed >= MIN_GAP_CLOSED,
        f"{config.variant} recovers only {closed:.0%} of the F1 that LRU + keep "
        f"recent loses to the unbounded cache (need {MIN_GAP_CLOSED:.0%})",
    )


# ------------------------------------------------------- exploring and plots

SWEEP_VARIANTS = ("lru_recent", "saes_recent", "saes_irp")


@dataclass(frozen=True)
class BudgetGrid:
    """Mean CoNLL F1 and peak cached mentions over a grid of cache budgets."""

    c_values: tuple[int, ...]  # C_max values (rows)
    m_values: tuple[int, ...]  # M_max values (columns)
    f1: dict = field(repr=False)  # variant -> ndarray (len(c), len(m)), points
    peak_kept: dict = field(repr=False)  # variant -> ndarray (len(c), len(m))
    unbounded_f1: float  # mean CoNLL F1 of the unbounded cache


def budget_sweep(
    result: Result,
    c_values: tuple[int, ...] = (2, 4, 6, 8, 12, 16, 24),
    m_values: tuple[int, ...] = (1, 2, 4, 8, 16),
    n_docs: int = 3,
) -> BudgetGrid:
    """Rerun three policies over a grid of budgets on the first ``n_docs`` test docs.

    Thresholds and SAES weights are those of ``result`` (tuned at its own budget).
    """
    check_instance("result", result, Result)
    c_values = tuple(check_int("c_values[i]", c, minimum=1) for c in c_values)
    m_values = tuple(check_int("m_values[i]", m, minimum=1) for m in m_values)
    n_docs = check_int("n_docs", n_docs, minimum=1, maximum=result.config.n_docs)
    test = _documents(result.config)[1][:n_docs]
    shape = (len(c_values), len(m_values))
    f1 = {v: np.zeros(shape) for v in SWEEP_VARIANTS}
    peaks = {v: np.zeros(shape, dtype=np.int64) for v in SWEEP_VARIANTS}
    for v in SWEEP_VARIANTS:
        for i, c in enumerate(c_values):
            for j, m in enumerate(m_values):
                runs = [
                    cluster_stream(
                        d.X,
                        v,
                        result.thresholds[v],
                        c_max=c,
                        m_max=m,
                        saes_weights=result.saes_weights,
                    )
                    for d in test
                ]
                f1[v][i, j] = np.mean(
                    [
                        conll_f1(d.entities, lab)
                        for d, (lab, _) in zip(test, runs, strict=True)
                    ]
                )
                peaks[v][i, j] = max(p for _, p in runs)
    unbounded = float(np.mean(result.f1["unbounded"][:n_docs]))
    return BudgetGrid(c_values, m_values, f1, peaks, unbounded)


def plot_results(result: Result):
    """Figure: CoNLL F1 per policy (bars, one dot per document) and peak memory."""
    from paperlab.plotting import COLORS, label_axes, subplots

    check_instance("result", result, Result)
    order = ("lru_recent", "saes_recent", "lru_irp", "saes_irp", "unbounded")
    colors = (COLORS[1], COLORS[3], COLORS[4], COLORS[0], COLORS[7])
    short = (
        "LRU +\nrecent",
        "SAES +\nrecent",
        "LRU +\nIRP",
        "SAES +\nIRP",
        "unbounded",
    )
    fig, (left, right) = subplots(1, 2, width=10.0, height=3.8)
    x = np.arange(len(order))
    for k, (v, color) in enumerate(zip(order, colors, strict=True)):
        left.bar(k, result.mean_f1(v), color=color, alpha=0.85)
        left.plot(
            np.full(result.config.n_docs, k), result.f1[v], "o", ms=3, color="0.2"
        )
        right.bar(k, result.peak_kept[v].max(), color=color, alpha=0.85)
    budget = result.config.c_max * result.config.m_max
    right.axhline(budget, color="0.3", ls="--", lw=1, label=f"budget C x M = {budget}")
    right.set_yscale("log")
    for ax in (left, right):
        ax.set_xticks(x, short, fontsize=8)
    label_axes(
        left,
        title="Accuracy (bar: mean; dots: documents)",
        xlabel="cache policy",
        ylabel="CoNLL F1 (points)",
    )
    label_axes(
        right,
        title="Memory: mentions the scorer can read",
        xlabel="cache policy",
        ylabel="peak cached mentions (log scale)",
        legend=True,
    )
    return fig


def plot_budget(grid: BudgetGrid, c_max: int, m_max: int):
    """Figure for the widget: F1 against C_max at ``m_max``, and memory at both."""
    from paperlab.plotting import COLORS, label_axes, subplots

    check_instance("grid", grid, BudgetGrid)
    c_max = check_choice("c_max", c_max, grid.c_values)
    m_max = check_choice("m_max", m_max, grid.m_values)
    i, j = grid.c_values.index(c_max), grid.m_values.index(m_max)
    colors = {"lru_recent": COLORS[1], "saes_recent": COLORS[3], "saes_irp": COLORS[0]}
    fig, (left, right) = subplots(1, 2, width=10.0, height=3.6)
    for v in SWEEP_VARIANTS:
        left.plot(
            grid.c_values,
            grid.f1[v][:, j],
            "o-",
            color=colors[v],
            label=VARIANT_NAMES[v],
        )
    left.axhline(grid.unbounded_f1, color="0.3", ls="--", lw=1, label="unbounded")
    left.axvline(c_max, color="0.6", ls=":", lw=1)
    label_axes(
        left,
        title=f"CoNLL F1 with M_max = {m_max} mentions per cluster",
        xlabel="C_max (clusters in the cache)",
        ylabel="CoNLL F1 (points)",
    )
    left.legend(fontsize=7, loc="lower right")
    peaks = [grid.peak_kept[v][i, j] for v in SWEEP_VARIANTS]
    f1s = [grid.f1[v][i, j] for v in SWEEP_VARIANTS]
    bars = right.bar(range(3), peaks, color=[colors[v] for v in SWEEP_VARIANTS])
    right.bar_label(bars, labels=[f"F1 {f:.1f}" for f in f1s], fontsize=8)
    right.axhline(c_max * m_max, color="0.3", ls="--", lw=1, label="budget C x M")
    right.set_xticks(range(3), ["LRU+recent", "SAES+recent", "SAES+IRP"], fontsize=8)
    right.set_ylim(0, c_max * m_max * 1.25)
    label_axes(
        right,
        title=f"Memory at C_max = {c_max}, M_max = {m_max}",
        xlabel="cache policy",
        ylabel="peak cached mentions",
        legend=True,
    )
    return fig

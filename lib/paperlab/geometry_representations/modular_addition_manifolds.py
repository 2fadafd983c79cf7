"""The manifolds of modular addition: neuron clusters as shapes, compared by topology.

Moisescu-Pareja, McCracken et al., "On the geometry and topology of representations:
the manifolds of modular addition" (arXiv:2512.25060).

Networks trained on ``(a + b) mod n`` give each first-layer neuron one dominant
frequency ``f``. The paper's unit of interpretation is not the single neuron but the
whole *cluster* of neurons that share a frequency: over all ``n^2`` inputs, the
cluster's pre-activations form a point cloud whose shape is a closed form. Under the
simple neuron model (each neuron's pre-activation is
``cos(2 pi f a / n + phi_L) + cos(2 pi f b / n + phi_R)``), a cluster whose neurons
have ``phi_L = phi_R`` is a linear image of the *vector-addition disc*

    (cos 2 pi f a/n + cos 2 pi f b/n,  sin 2 pi f a/n + sin 2 pi f b/n),

while independent phases give a linear image of the *torus*
``(cos 2 pi f a/n, sin 2 pi f a/n, cos 2 pi f b/n, sin 2 pi f b/n)``
(the paper's Theorem 4.1). The toy trains three small architectures, finds the
clusters, and measures each cluster two ways: the regression R^2 of the cloud on the
disc and torus features, and the Betti-1 number (count of long H1 bars) of a
Vietoris-Rips filtration on max-min landmarks, computed by
:func:`paperlab.kernels.persistence.rips_h1_z2`.

Architectures (all read out ``ReLU(h) W_out``, ``h`` the first-layer pre-activation):

- ``"uniform"``: uniform attention over the two operand tokens, which averages their
  embeddings before the MLP (the paper's "Pizza" model, equivalent to MLP-Add);
- ``"learnable"``: softmax attention with a learned query, per head, then the MLP
  (the paper's "Clock" model);
- ``"concat"``: the two embeddings concatenated (MLP-Concat), the contrasting model.

Variants of the analysis: ``"mechanism"`` takes each frequency cluster as the unit;
``"baseline"`` takes single neurons (one per cluster, its strongest), the view the
paper argues cannot see the shape.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from paperlab.claims import require
from paperlab.kernels.persistence import rips_h1_z2
from paperlab.optim import adam_update
from paperlab.seeding import torch_device
from paperlab.validation import (
    check_array,
    check_choice,
    check_float,
    check_instance,
    check_int,
)

__all__ = [
    "ARCHITECTURES",
    "VARIANTS",
    "Config",
    "ClusterStats",
    "Result",
    "closed_form_cloud",
    "simple_neuron_cluster",
    "train_networks",
    "first_layer_preactivations",
    "neuron_frequencies",
    "frequency_clusters",
    "disc_features",
    "torus_features",
    "r_squared",
    "topological_coordinates",
    "maxmin_landmarks",
    "h1_barcode",
    "betti_1",
    "analyse_cloud",
    "analyse",
    "run_experiment",
    "reanalyse",
    "summarise",
    "check_claim",
    "unit_cloud",
    "draw_barcode",
    "draw_unit",
]

logger = logging.getLogger(__name__)

ARCHITECTURES = ("uniform", "learnable", "concat")
VARIANTS = ("mechanism", "baseline")

# Thresholds of the claim (see check_claim), set with a margin from multi-seed runs.
ACCURACY_MIN = 0.95  # test accuracy a seed must reach
SEED_FRACTION_MIN = 0.8  # fraction of seeds per architecture that must reach it
DISC_SHARE_MIN = 0.9  # R^2_disc / R^2_torus of a disc-like cluster
DISC_FRACTION_MIN = 0.8  # fraction of attention-model clusters that are disc-like
MEDIAN_GAP_MAX = 0.05  # |median disc share, uniform - learnable|
TORUS_FRACTION_MIN = 0.5  # fraction of MLP-Concat clusters with Betti-1 = 2
CONCAT_SHARE_MAX = 0.75  # median disc share of MLP-Concat clusters
MIN_CLUSTERS = 3  # an architecture must yield at least this many units


def _check_prime(name: str, value) -> int:
    value = check_int(name, value, minimum=5)
    if value % 2 == 0 or any(value % k == 0 for k in range(3, math.isqrt(value) + 1)):
        raise ValueError(f"{name} must be an odd prime, got {value}")
    return value


@dataclass(frozen=True)
class Config:
    """Sizes, training settings, the analysis variant and the topology settings."""

    variant: str = "mechanism"  # "mechanism" (clusters) or "baseline" (single neurons)
    n: int = 31  # the modulus; inputs are all pairs (a, b) in Z_n^2
    train_frac: float = 0.6  # fraction of the n^2 pairs used for training
    n_seeds: int = 3  # networks per architecture (seeds seed, seed + 1, ...)
    seed: int = 0  # first seed
    architectures: tuple[str, ...] = ARCHITECTURES  # which models to train
    steps: int = 500  # full-batch AdamW steps
    lr: float = 3e-2  # AdamW learning rate
    weight_decay: float = 1.0  # AdamW decoupled weight decay
    d_embed: int = 32  # token embedding size d
    n_heads: int = 4  # attention heads (uniform and learnable models)
    d_head: int = 8  # query/key size per head
    width: int = 128  # first-layer (MLP) neurons
    min_purity: float = 0.5  # share of a neuron's power at its frequency to cluster it
    min_cluster: int = 4  # smallest cluster analysed
    n_landmarks: int = 80  # max-min landmarks per cloud for persistent homology
    max_scale: float = 0.5  # Rips filtration stops at this fraction of the diameter
    min_persistence: float = 0.15  # a bar this long (fraction of diameter) is a loop

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        _check_prime("n", self.n)
        check_float(
            "train_frac",
            self.train_frac,
            minimum=0.0,
            strict_minimum=True,
            maximum=0.95,
        )
        check_int("n_seeds", self.n_seeds, minimum=1)
        check_int("seed", self.seed, minimum=0)
        if not isinstance(self.architectures, tuple) or not self.architectures:
            raise TypeError(
                f"architectures must be a non-empty tuple, got {self.architectures!r}"
            )
        for arch in self.architectures:
            check_choice("architectures entry", arch, ARCHITECTURES)
        if len(set(self.architectures)) != len(self.architectures):
            raise ValueError(f"architectures must not repeat, got {self.architectures}")
        check_int("steps", self.steps, minimum=1)
        check_float("lr", self.lr, minimum=0.0, strict_minimum=True)
        check_float("weight_decay", self.weight_decay, minimum=0.0)
        check_int("d_embed", self.d_embed, minimum=2)
        check_int("n_heads", self.n_heads, minimum=1)
        check_int("d_head", self.d_head, minimum=1)
        check_int("width", self.width, minimum=4)
        check_float("min_purity", self.min_purity, minimum=0.0, maximum=1.0)
        check_int("min_cluster", self.min_cluster, minimum=1)
        check_int("n_landmarks", self.n_landmarks, minimum=4)
        check_float(
            "max_scale", self.max_scale, minimum=0.0, strict_minimum=True, maximum=1.0
        )
        check_float(
            "min_persistence",
            self.min_persistence,
            minimum=0.0,
            strict_minimum=True,
            maximum=1.0,
        )


@dataclass(frozen=True)
class ClusterStats:
    """The measurements of one unit (a frequency cluster, or one neuron)."""

    architecture: str  # which model it comes from
    seed: int  # which network
    frequency: int  # the dominant frequency f, 1 <= f <= (n - 1) / 2
    neurons: tuple[int, ...]  # first-layer neuron indices in the unit
    r2_disc: float  # R^2 of the cloud on the two disc features
    r2_torus: float  # R^2 of the cloud on the four torus features
    betti1: int  # number of H1 bars at least min_persistence long
    bars: np.ndarray = field(repr=False)  # (k, 2) H1 bars in units of the diameter

    @property
    def disc_share(self) -> float:
        """R^2_disc / R^2_torus: 1 for a disc, about 1/2 for a generic torus."""
        return self.r2_disc / self.r2_torus if self.r2_torus > 0 else 0.0

    @property
    def disc_like(self) -> bool:
        """Explained by the disc features and without a loop."""
        return self.disc_share >= DISC_SHARE_MIN and self.betti1 == 0


@dataclass(frozen=True)
class Result:
    """Trained networks' accuracies and pre-activations, and the per-unit statistics."""

    config: Config
    seeds: tuple[int, ...]  # the seed of each network, per architecture
    test_accuracy: dict[str, np.ndarray]  # architecture -> (n_seeds,) held-out accuracy
    attention_spread: np.ndarray  # (n_seeds,) std of the learned attention weights
    preactivations: dict[str, np.ndarray] = field(repr=False)  # (n_seeds, n^2, width)
    units: tuple[ClusterStats, ...] = ()  # one entry per analysed unit
    train_seconds: float = 0.0  # wall time of all training

    def units_of(self, architecture: str) -> list[ClusterStats]:
        """The analysed units of one architecture."""
        check_choice("architecture", architecture, tuple(self.test_accuracy))
        return [u for u in self.units if u.architecture == architecture]


# ----------------------------------------------------------------------------------
# Closed forms (Sec. 2 and Theorem 4.1)
# ----------------------------------------------------------------------------------


def _angles(n: int, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Angles 2 pi f a / n and 2 pi f b / n over all n^2 pairs, a-major order."""
    a, b = np.divmod(np.arange(n * n), n)
    return 2 * np.pi * f * a / n, 2 * np.pi * f * b / n


def disc_features(n: int, f: int) -> np.ndarray:
    """The vector-addition disc (Pizza form), shape (n^2, 2).

    Rows are ``(cos ta + cos tb, sin ta + sin tb)`` with ``ta = 2 pi f a / n``,
    ``tb = 2 pi f b / n``, for pairs in a-major order (row ``a * n + b``).
    """
    n = _check_prime("n", n)
    f = check_int("f", f, minimum=1, maximum=(n - 1) // 2)
    ta, tb = _angles(n, f)
    return np.stack([np.cos(ta) + np.cos(tb), np.sin(ta) + np.sin(tb)], axis=1)


def torus_features(n: int, f: int) -> np.ndarray:
    """The torus: ``(cos ta, sin ta, cos tb, sin tb)``, shape (n^2, 4)."""
    n = _check_prime("n", n)
    f = check_int("f", f, minimum=1, maximum=(n - 1) // 2)
    ta, tb = _angles(n, f)
    return np.stack([np.cos(ta), np.sin(ta), np.cos(tb), np.sin(tb)], axis=1)


def closed_form_cloud(kind: str, n: int = 31, f: int = 1) -> np.ndarray:
    """The paper's closed-form clouds over all n^2 inputs.

    Parameters
    ----------
    kind : {"disc", "torus", "clock"}
        ``"disc"``: vector addition (Pizza); ``"torus"``: both angles kept apart;
        ``"clock"``: the angle sum ``(cos 2 pi f (a+b)/n, sin 2 pi f (a+b)/n)``.
    n, f : int
        Modulus (odd prime) and frequency.

    Returns
    -------
    numpy.ndarray, shape (n^2, 2) or (n^2, 4)
    """
    check_choice("kind", kind, ("disc", "torus", "clock"))
    if kind == "disc":
        return disc_features(n, f)
    if kind == "torus":
        return torus_features(n, f)
    n = _check_prime("n", n)
    f = check_int("f", f, minimum=1, maximum=(n - 1) // 2)
    ta, tb = _angles(n, f)
    return np.stack([np.cos(ta + tb), np.sin(ta + tb)], axis=1)


def simple_neuron_cluster(
    n: int, f: int, n_neurons: int, phase_coupling: float, rng: np.random.Generator
) -> np.ndarray:
    """A synthetic cluster of simple neurons (the paper's neuron model).

    Neuron ``i`` responds ``cos(2 pi f a/n + phi_L_i) + cos(2 pi f b/n + phi_R_i)``.
    ``phi_L`` is uniform on the circle; ``phi_R = phi_L`` with probability
    ``phase_coupling`` and an independent uniform phase otherwise.

    Returns
    -------
    numpy.ndarray, shape (n^2, n_neurons)
    """
    n = _check_prime("n", n)
    f = check_int("f", f, minimum=1, maximum=(n - 1) // 2)
    n_neurons = check_int("n_neurons", n_neurons, minimum=1)
    phase_coupling = check_float(
        "phase_coupling", phase_coupling, minimum=0.0, maximum=1.0
    )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    phi_left = rng.uniform(0, 2 * np.pi, n_neurons)
    coupled = rng.random(n_neurons) < phase_coupling
    phi_right = np.where(coupled, phi_left, rng.uniform(0, 2 * np.pi, n_neurons))
    ta, tb = _angles(n, f)
    return np.cos(ta[:, None] + phi_left) + np.cos(tb[:, None] + phi_right)


# ----------------------------------------------------------------------------------
# The three architectures, trained as one batch of independent networks
# ----------------------------------------------------------------------------------


def _init_one(arch: str, config: Config, seed: int) -> dict[str, torch.Tensor]:
    """Parameters of one network, drawn from its own seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    n, d, width = config.n, config.d_embed, config.width
    heads = config.n_heads

    def normal(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    params = {"E": normal(n, d, std=1.0)}
    if arch == "concat":
        params["M"] = normal(2 * d, width, std=1 / math.sqrt(d))
    else:
        params["P"] = normal(2, d, std=0.1)
        params["M"] = normal(heads, d, width, std=math.sqrt(2 / (heads * d)))
    if arch == "learnable":
        params["q"] = normal(heads, config.d_head, std=1.0)
        params["K"] = normal(heads, d, config.d_head, std=1 / math.sqrt(d))
    params["bias"] = torch.zeros(1, width)
    params["W_out"] = normal(width, n, std=1 / math.sqrt(width))
    params["b_out"] = torch.zeros(1, n)
    return params


def _attention_weights(
    params: dict[str, torch.Tensor], a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Weight of operand ``a`` per head, shape (S, B, H): a softmax over two keys."""
    rows = torch.arange(a.shape[0], device=a.device)[:, None]
    d_head = params["q"].shape[-1]
    x0 = params["E"] + params["P"][:, 0:1]
    x1 = params["E"] + params["P"][:, 1:2]
    scores0 = torch.einsum("snd,shde,she->snh", x0, params["K"], params["q"])
    scores1 = torch.einsum("snd,shde,she->snh", x1, params["K"], params["q"])
    return torch.sigmoid((scores0[rows, a] - scores1[rows, b]) / math.sqrt(d_head))


def first_layer_preactivations(
    params: dict[str, torch.Tensor], arch: str, a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Pre-activations ``h(a, b)`` of the first MLP layer, for a batch of networks.

    With ``x_a = E[a] + P_0`` and ``x_b = E[b] + P_1``:

    - uniform: ``h = (x_a + x_b)/2 . sum_h M_h + c`` (attention 1/2 on each operand);
    - learnable: ``h = sum_h (alpha_h x_a + (1 - alpha_h) x_b) . M_h + c`` with
      ``alpha_h = softmax(q_h . K_h x_a, q_h . K_h x_b)_a``;
    - concat: ``h = [E[a]; E[b]] . M + c``.

    ``M_h`` merges head ``h``'s value, output and MLP-input maps into one matrix.

    Parameters
    ----------
    params : dict of torch.Tensor
        Batched parameters (leading axis: network), as built by :func:`train_networks`.
    arch : {"uniform", "learnable", "concat"}
    a, b : torch.Tensor, shape (S, B), integer
        Operand pairs per network.

    Returns
    -------
    torch.Tensor, shape (S, B, width)
    """
    check_choice("arch", arch, ARCHITECTURES)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"a and b must be (S, B) tensors of one shape, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    rows = torch.arange(a.shape[0], device=a.device)[:, None]
    emb = params["E"]
    if arch == "concat":
        joint = torch.cat([emb[rows, a], emb[rows, b]], dim=-1)
        return joint @ params["M"] + params["bias"]
    x_a = emb[rows, a] + params["P"][:, 0:1]
    x_b = emb[rows, b] + params["P"][:, 1:2]
    if arch == "uniform":
        return 0.5 * (x_a + x_b) @ params["M"].sum(dim=1) + params["bias"]
    alpha = _attention_weights(params, a, b)[..., None]
    mixed = x_b[:, :, None, :] + alpha * (x_a - x_b)[:, :, None, :]
    n_nets, batch, heads, d = mixed.shape
    weights = params["M"].reshape(n_nets, heads * d, -1)
    return mixed.reshape(n_nets, batch, heads * d) @ weights + params["bias"]


def _logits(params, arch, a, b):
    hidden = torch.relu(first_layer_preactivations(params, arch, a, b))
    return hidden @ params["W_out"] + params["b_out"]


def _train_split(n: int, train_frac: float, seed: int) -> np.ndarray:
    """Indices (row a * n + b) of the training pairs of one network."""
    n_train = int(round(train_frac * n * n))
    return np.sort(np.random.default_rng(seed).permutation(n * n)[:n_train])


def train_networks(arch: str, config: Config, seeds: tuple[int, ...]):
    """Train one network per seed, all at once, full batch with AdamW.

    The networks share no parameter; AdamW acts element-wise and the loss is a sum
    of per-network means, so each network trains exactly as it would alone.

    Parameters
    ----------
    arch : {"uniform", "learnable", "concat"}
    config : Config
    seeds : tuple of int
        One seed per network: it draws the initial weights and the train split.

    Returns
    -------
    params : dict of torch.Tensor
        Trained, batched parameters (leading axis: network), detached.
    test_accuracy : numpy.ndarray, shape (len(seeds),)
        Accuracy on the pairs each network did not train on.
    """
    check_choice("arch", arch, ARCHITECTURES)
    check_instance("config", config, Config)
    if not isinstance(seeds, tuple) or not seeds:
        raise TypeError(f"seeds must be a non-empty tuple, got {seeds!r}")
    seeds = tuple(check_int("seed", s, minimum=0) for s in seeds)
    device = torch_device()
    n = config.n
    per_seed = [_init_one(arch, config, s) for s in seeds]
    params = {
        key: torch.stack([p[key] for p in per_seed]).to(device).requires_grad_()
        for key in per_seed[0]
    }
    train_idx = torch.as_tensor(
        np.stack([_train_split(n, config.train_frac, s) for s in seeds]), device=device
    )
    a, b = train_idx // n, train_idx % n
    target = (a + b) % n
    moments = {
        key: (torch.zeros_like(v), torch.zeros_like(v)) for key, v in params.items()
    }
    for step in range(1, config.steps + 1):
        logits = _logits(params, arch, a, b)
        losses = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), target, reduction="none"
        ).mean(dim=1)
        grads = torch.autograd.grad(losses.sum(), list(params.values()))
        _adamw_step(
            params, dict(zip(params, grads, strict=True)), moments, step, config
        )

    params = {key: value.detach() for key, value in params.items()}
    with torch.no_grad():
        all_a, all_b = _all_pairs(n, len(seeds), device)
        correct = _logits(params, arch, all_a, all_b).argmax(-1) == (all_a + all_b) % n
    held_out = torch.ones_like(correct)
    held_out[torch.arange(len(seeds), device=device)[:, None], train_idx] = False
    accuracy = (correct & held_out).sum(1).float() / held_out.sum(1).float()
    return params, accuracy.cpu().numpy()


def _adamw_step(
    params,
    grads,
    moments,
    step: int,
    config: Config,
    betas: tuple[float, float] = (0.9, 0.98),
    eps: float = 1e-8,
) -> None:
    """One AdamW step (:func:`paperlab.optim.adam_update`) on every parameter.

    ``params``, ``grads`` and ``moments`` are dicts with the same keys; ``moments``
    maps each key to its pair of moment tensors, updated in place like ``params``.
    """
    adam_update(
        list(params.values()),
        [grads[key] for key in params],
        [moments[key] for key in params],
        step,
        lr=config.lr,
        betas=betas,
        eps=eps,
        weight_decay=config.weight_decay,
    )


def _all_pairs(n: int, n_nets: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.arange(n * n, device=device)
    return (idx // n).expand(n_nets, -1), (idx % n).expand(n_nets, -1)


def _preactivations_all(params, arch: str, n: int) -> np.ndarray:
    """First-layer pre-activations over all n^2 pairs, shape (S, n^2, width)."""
    n_nets = params["E"].shape[0]
    a, b = _all_pairs(n, n_nets, params["E"].device)
    with torch.no_grad():
        return first_layer_preactivations(params, arch, a, b).cpu().numpy()


# ----------------------------------------------------------------------------------
# Neuron frequencies and clusters (Sec. 3)
# ----------------------------------------------------------------------------------


def neuron_frequencies(X, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each neuron's dominant frequency and the share of its power there.

    A neuron's response over the grid ``(a, b)`` is centred and transformed by a
    2-D DFT; the power of frequency ``f`` is the sum over the eight bins
    ``(k_a, k_b)`` in ``{0, +f, -f}^2`` other than ``(0, 0)`` (first-order terms in
    ``a`` or ``b`` and the product terms in ``a + b`` and ``a - b``).

    Parameters
    ----------
    X : array_like, shape (n^2, n_neurons)
        Responses, row ``a * n + b``.
    n : int
        The modulus (odd prime).

    Returns
    -------
    frequency : numpy.ndarray of int, shape (n_neurons,)
        Dominant frequency in ``1 .. (n - 1) / 2``.
    purity : numpy.ndarray, shape (n_neurons,)
        Share of the neuron's (non-constant) power at that frequency; 0 for a
        constant neuron.
    """
    n = _check_prime("n", n)
    X = check_array("X", X, ndim=2, dtype=np.float64, finite=True)
    if X.shape[0] != n * n:
        raise ValueError(f"X must have n^2 = {n * n} rows, got {X.shape[0]}")
    grid = X.reshape(n, n, -1)
    power = np.abs(np.fft.fft2(grid - grid.mean(axis=(0, 1)), axes=(0, 1))) ** 2
    total = power.sum(axis=(0, 1))
    n_freq = (n - 1) // 2
    masks = np.zeros((n_freq, n, n))
    for f in range(1, n_freq + 1):
        for ka in (0, f, n - f):
            for kb in (0, f, n - f):
                masks[f - 1, ka, kb] = 1.0
        masks[f - 1, 0, 0] = 0.0
    per_freq = np.einsum("fij,ijk->fk", masks, power)
    frequency = per_freq.argmax(axis=0) + 1
    safe_total = np.where(total > 0, total, 1.0)
    purity = np.where(total > 0, per_freq.max(axis=0) / safe_total, 0.0)
    return frequency, purity


def frequency_clusters(
    X, n: int, min_purity: float = 0.5, min_cluster: int = 4
) -> dict[int, np.ndarray]:
    """Group neurons by dominant frequency (the paper's unit of interpretation).

    Parameters
    ----------
    X : array_like, shape (n^2, n_neurons)
    n : int
    min_purity : float
        A neuron joins a cluster only if at least this share of its power is at its
        dominant frequency.
    min_cluster : int
        Clusters with fewer neurons are dropped.

    Returns
    -------
    dict
        Frequency -> sorted array of neuron indices, in increasing frequency.
    """
    min_purity = check_float("min_purity", min_purity, minimum=0.0, maximum=1.0)
    min_cluster = check_int("min_cluster", min_cluster, minimum=1)
    frequency, purity = neuron_frequencies(X, n)
    clustered = purity >= min_purity
    clusters = {}
    for f in np.unique(frequency[clustered]):
        members = np.flatnonzero(clustered & (frequency == f))
        if members.size >= min_cluster:
            clusters[int(f)] = members
    return clusters


# ----------------------------------------------------------------------------------
# Geometry: regression on the closed forms
# ----------------------------------------------------------------------------------


def r_squared(X, features) -> float:
    """Share of a cloud's variance explained by a linear map of the features.

    Both are centred; ``R^2 = 1 - |X - F B|^2 / |X|^2`` with ``B`` the least-squares
    fit. Summed over all coordinates, it is the R^2 of the cloud's principal
    coordinates weighted by their variance, so it does not depend on a rotation.

    Parameters
    ----------
    X : array_like, shape (N, k)
    features : array_like, shape (N, q)

    Returns
    -------
    float
        In [0, 1]; 0 for a cloud with no variance.
    """
    X = check_array("X", X, dtype=np.float64, finite=True)
    if X.ndim == 1:
        X = X[:, None]
    features = check_array("features", features, ndim=2, dtype=np.float64, finite=True)
    if X.ndim != 2 or X.shape[0] != features.shape[0]:
        raise ValueError(
            f"X and features must have the same number of rows, got "
            f"{X.shape} and {features.shape}"
        )
    Xc = X - X.mean(axis=0)
    Fc = features - features.mean(axis=0)
    total = float((Xc**2).sum())
    if total == 0.0:
        return 0.0
    coef, *_ = np.linalg.lstsq(Fc, Xc, rcond=None)
    return float(max(0.0, 1.0 - ((Xc - Fc @ coef) ** 2).sum() / total))


# ----------------------------------------------------------------------------------
# Topology: standardised coordinates, landmarks, H1 barcode, Betti-1
# ----------------------------------------------------------------------------------


def topological_coordinates(
    X, max_dims: int = 4, min_variance_ratio: float = 0.1
) -> np.ndarray:
    """Principal coordinates of a cloud, each scaled to unit variance.

    Keeps the principal axes whose variance is at least ``min_variance_ratio`` times
    the largest (at most ``max_dims``, enough for a torus). Topology ignores a linear
    stretch, but a Rips filtration does not: without the scaling a loop squashed
    along one axis would look as short-lived as noise.

    Returns
    -------
    numpy.ndarray, shape (N, r)
        ``r >= 1``; all zeros for a cloud with no variance.
    """
    X = check_array("X", X, dtype=np.float64, finite=True)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X must have 1 or 2 dimensions, got shape {X.shape}")
    max_dims = check_int("max_dims", max_dims, minimum=1)
    min_variance_ratio = check_float(
        "min_variance_ratio", min_variance_ratio, minimum=0.0, maximum=1.0
    )
    Xc = X - X.mean(axis=0)
    _, sing, vt = np.linalg.svd(Xc, full_matrices=False)
    variance = sing**2
    if variance.size == 0 or variance[0] <= 1e-12 * max(1.0, float((Xc**2).sum())):
        return np.zeros((X.shape[0], 1))
    keep = int(min(max_dims, np.sum(variance >= min_variance_ratio * variance[0])))
    coords = Xc @ vt[:keep].T
    return coords / coords.std(axis=0)


def maxmin_landmarks(points, n_landmarks: int) -> np.ndarray:
    """Indices of max-min (farthest-point) landmarks.

    The first landmark is the point farthest from the centroid; each next one is the
    point farthest from all landmarks chosen so far (ties: lowest index).

    Returns
    -------
    numpy.ndarray of int, shape (min(n_landmarks, N),)
    """
    points = check_array(
        "points", points, ndim=2, dtype=np.float64, finite=True, min_size=1
    )
    n_landmarks = check_int("n_landmarks", n_landmarks, minimum=1)
    count = min(n_landmarks, points.shape[0])
    first = int(np.argmax(((points - points.mean(axis=0)) ** 2).sum(axis=1)))
    chosen = [first]
    nearest = np.linalg.norm(points - points[first], axis=1)
    for _ in range(count - 1):
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, np.linalg.norm(points - points[nxt], axis=1))
    return np.array(chosen, dtype=np.int64)


def h1_barcode(points, n_landmarks: int = 80, max_scale: float = 0.5) -> np.ndarray:
    """H1 bars of the Rips filtration on a cloud's max-min landmarks.

    Parameters
    ----------
    points : array_like, shape (N, r)
    n_landmarks : int
    max_scale : float
        The filtration stops at ``max_scale`` times the landmarks' diameter; a bar
        still open there ends at that scale.

    Returns
    -------
    numpy.ndarray, shape (k, 2)
        ``(birth, death)`` in units of the landmarks' diameter, longest bar first.
    """
    points = check_array(
        "points", points, ndim=2, dtype=np.float64, finite=True, min_size=1
    )
    max_scale = check_float(
        "max_scale", max_scale, minimum=0.0, strict_minimum=True, maximum=1.0
    )
    landmarks = points[maxmin_landmarks(points, n_landmarks)]
    dist = np.linalg.norm(landmarks[:, None, :] - landmarks[None, :, :], axis=-1)
    diameter = float(dist.max())
    if diameter == 0.0:
        return np.zeros((0, 2))
    bars = rips_h1_z2(dist, max_scale * diameter) / diameter
    bars[:, 1] = np.minimum(bars[:, 1], max_scale)
    order = np.argsort(bars[:, 0] - bars[:, 1], kind="stable")
    return bars[order]


def betti_1(bars, min_persistence: float = 0.15) -> int:
    """Number of bars at least ``min_persistence`` long (diameter units)."""
    bars = check_array("bars", bars, ndim=2, dtype=np.float64)
    if bars.shape[1] != 2:
        raise ValueError(f"bars must have shape (k, 2), got {bars.shape}")
    min_persistence = check_float("min_persistence", min_persistence, minimum=0.0)
    return int(np.sum(bars[:, 1] - bars[:, 0] >= min_persistence))


def analyse_cloud(X, n: int, f: int, config: Config) -> dict:
    """R^2 on the disc and torus features, H1 bars and Betti-1 of one cloud.

    Returns
    -------
    dict
        ``r2_disc``, ``r2_torus``, ``bars`` (k, 2) and ``betti1``.
    """
    check_instance("config", config, Config)
    r2_disc = r_squared(X, disc_features(n, f))
    r2_torus = r_squared(X, torus_features(n, f))
    bars = h1_barcode(topological_coordinates(X), config.n_landmarks, config.max_scale)
    return {
        "r2_disc": r2_disc,
        "r2_torus": r2_torus,
        "bars": bars,
        "betti1": betti_1(bars, config.min_persistence),
    }


def analyse(
    preactivations: dict[str, np.ndarray], seeds: tuple[int, ...], config: Config
) -> tuple[ClusterStats, ...]:
    """Measure every unit of every network.

    With ``config.variant == "mechanism"`` a unit is a frequency cluster; with
    ``"baseline"`` it is the cluster's single strongest neuron.

    Parameters
    ----------
    preactivations : dict
        Architecture -> array (n_networks, n^2, width).
    seeds : tuple of int
        The seed of each network (same order as the arrays' first axis).
    config : Config
    """
    check_instance("config", config, Config)
    units = []
    for arch, stack in preactivations.items():
        check_choice("architecture", arch, ARCHITECTURES)
        stack = check_array(f"preactivations[{arch!r}]", stack, ndim=3)
        if stack.shape[0] != len(seeds):
            raise ValueError(
                f"preactivations[{arch!r}] has {stack.shape[0]} networks, "
                f"but {len(seeds)} seeds were given"
            )
        for seed, X in zip(seeds, stack, strict=True):
            clusters = frequency_clusters(
                X, config.n, config.min_purity, config.min_cluster
            )
            for f, members in clusters.items():
                if config.variant == "baseline":
                    members = members[[int(np.argmax(X[:, members].var(axis=0)))]]
                stats = analyse_cloud(X[:, members], config.n, f, config)
                units.append(
                    ClusterStats(arch, seed, f, tuple(int(i) for i in members), **stats)
                )
    return tuple(units)


# ----------------------------------------------------------------------------------
# Experiment and claim
# ----------------------------------------------------------------------------------


def run_experiment(config: Config = Config()) -> Result:
    """Train every architecture on ``config.n_seeds`` seeds, then analyse the units."""
    check_instance("config", config, Config)
    seeds = tuple(config.seed + i for i in range(config.n_seeds))
    accuracy, preacts = {}, {}
    spread = np.zeros(0)
    start = time.perf_counter()
    for arch in config.architectures:
        tic = time.perf_counter()
        params, accuracy[arch] = train_networks(arch, config, seeds)
        preacts[arch] = _preactivations_all(params, arch, config.n).astype(np.float32)
        if arch == "learnable":
            a, b = _all_pairs(config.n, len(seeds), params["E"].device)
            with torch.no_grad():
                alpha = _attention_weights(params, a, b)
            spread = alpha.reshape(len(seeds), -1).std(dim=1).cpu().numpy()
        logger.info(
            "trained %s x%d in %.2f s", arch, len(seeds), time.perf_counter() - tic
        )
    train_seconds = time.perf_counter() - start
    units = analyse(preacts, seeds, config)
    return Result(config, seeds, accuracy, spread, preacts, units, train_seconds)


def reanalyse(result: Result, variant: str) -> Result:
    """The same trained networks, analysed with another variant (no retraining)."""
    check_instance("result", result, Result)
    check_choice("variant", variant, VARIANTS)
    config = replace(result.config, variant=variant)
    units = analyse(result.preactivations, result.seeds, config)
    return replace(result, config=config, units=units)


def summarise(result: Result) -> dict[str, dict[str, float]]:
    """Per architecture: the numbers the claim is about.

    Returns
    -------
    dict
        Architecture -> ``seeds_ok`` (fraction of seeds >= 95 % test accuracy),
        ``mean_accuracy``, ``units``, ``median_disc_share``, ``disc_like``
        (fraction of units), ``torus`` (fraction with Betti-1 = 2) and
        ``median_r2_torus``.
    """
    check_instance("result", result, Result)
    summary = {}
    for arch, acc in result.test_accuracy.items():
        units = result.units_of(arch)
        shares = np.array([u.disc_share for u in units])
        summary[arch] = {
            "seeds_ok": float(np.mean(acc >= ACCURACY_MIN)),
            "mean_accuracy": float(np.mean(acc)),
            "units": len(units),
            "median_disc_share": float(np.median(shares)) if units else float("nan"),
            "disc_like": float(np.mean([u.disc_like for u in units])) if units else 0.0,
            "torus": float(np.mean([u.betti1 == 2 for u in units])) if units else 0.0,
            "median_r2_torus": (
                float(np.median([u.r2_torus for u in units])) if units else float("nan")
            ),
        }
    return summary


def check_claim(result: Result) -> None:
    """Raise :class:`paperlab.claims.ClaimFailed` unless the paper's claim holds.

    1. Every architecture learns the task: at least 80 % of seeds reach 95 % test
       accuracy.
    2. Uniform and learnable attention give the same manifold, the disc: at least
       80 % of their units have disc share >= 0.9 and Betti-1 = 0, and their median
       disc shares differ by at most 0.05.
    3. The test tells manifolds apart: at least half of the MLP-Concat units have
       Betti-1 = 2 (a torus), and their median disc share is at most 0.75.
    """
    check_instance("result", result, Result)
    missing = set(ARCHITECTURES) - set(result.test_accuracy)
    require(
        not missing,
        f"the claim compares all three architectures; missing {sorted(missing)}",
    )
    summary = summarise(result)
    for arch, row in summary.items():
        require(
            row["seeds_ok"] >= SEED_FRACTION_MIN,
            f"{arch}: only {row['seeds_ok']:.0%} of seeds reach "
            f"{ACCURACY_MIN:.0%} test accuracy",
        )
        require(
            row["units"] >= MIN_CLUSTERS,
            f"{arch}: only {row['units']} units to analyse",
        )
    for arch in ("uniform", "learnable"):
        require(
            summary[arch]["disc_like"] >= DISC_FRACTION_MIN,
            f"{arch}: only {summary[arch]['disc_like']:.0%} of units are discs "
            f"(disc share >= {DISC_SHARE_MIN}, Betti-1 = 0)",
        )
    gap = abs(
        summary["uniform"]["median_disc_share"]
        - summary["learnable"]["median_disc_share"]
    )
    require(
        gap <= MEDIAN_GAP_MAX,
        f"median disc shares of uniform and learnable attention differ by "
        f"{gap:.3f} > {MEDIAN_GAP_MAX}",
    )
    concat = summary["concat"]
    require(
        concat["torus"] >= TORUS_FRACTION_MIN,
        f"concat: only {concat['torus']:.0%} of units show a torus (Betti-1 = 2)",
    )
    require(
        concat["median_disc_share"] <= CONCAT_SHARE_MAX,
        f"concat: median disc share {concat['median_disc_share']:.2f} > "
        f"{CONCAT_SHARE_MAX}; its units are not told apart from discs",
    )


# ----------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------


def unit_cloud(result: Result, unit: ClusterStats) -> np.ndarray:
    """The unit's pre-activations over all n^2 inputs, shape (n^2, len(neurons))."""
    check_instance("result", result, Result)
    check_instance("unit", unit, ClusterStats)
    net = result.seeds.index(unit.seed)
    return result.preactivations[unit.architecture][net][:, list(unit.neurons)]


def draw_barcode(ax, bars, min_persistence: float, max_scale: float) -> None:
    """Draw H1 bars as horizontal segments, loops thick in the mechanism colour."""
    from paperlab import plotting

    bars = check_array("bars", bars, ndim=2, dtype=np.float64)
    shown = bars[:12]
    for row, (birth, death) in enumerate(shown):
        long_bar = death - birth >= min_persistence
        ax.plot(
            [birth, death],
            [row, row],
            lw=3 if long_bar else 1.5,
            color=plotting.COLORS[0] if long_bar else plotting.COLORS[7],
            alpha=1.0 if long_bar else 0.5,
        )
    ax.axvline(max_scale, color=plotting.COLORS[1], ls="--", lw=1)
    ax.text(
        0.98 * max_scale,
        0.98,
        "end of filtration",
        rotation=90,
        ha="right",
        va="top",
        fontsize=8,
        color=plotting.COLORS[1],
        transform=ax.get_xaxis_transform(),
    )
    if len(shown) == 0:
        ax.text(max_scale / 2, 1, "no H1 bar", ha="center", va="center")
    ax.set_xlim(0, max_scale * 1.05)
    ax.set_ylim(max(len(shown), 3), -1)
    ax.set_yticks(range(0, max(len(shown), 3), 2))


def draw_unit(result: Result, unit: ClusterStats):
    """The unit's cloud in its first three principal axes, beside its H1 barcode.

    Points are coloured by the angles the unit sees, ``f a mod n`` and
    ``f (a + b) mod n`` (for ``f = 1``: the operand ``a`` and the answer).
    Returns the matplotlib figure.
    """
    from paperlab import plotting

    X = unit_cloud(result, unit)
    n = result.config.n
    Xc = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    coords = Xc @ vt[:3].T
    if coords.shape[1] < 3:
        coords = np.pad(coords, ((0, 0), (0, 3 - coords.shape[1])))
    a, b = np.divmod(np.arange(n * n), n)
    fig, axes = plotting.subplots(1, 3, width=10.0, height=3.4)
    name = f"{unit.architecture}, seed {unit.seed}, f = {unit.frequency}"
    f = unit.frequency
    colourings = [(f * a % n, "f a mod n"), (f * (a + b) % n, "f (a + b) mod n")]
    for k, (colour, label) in enumerate(colourings):
        axes[k].remove()
        ax = fig.add_subplot(1, 3, k + 1, projection="3d")
        ax.scatter(*coords.T, c=colour, cmap="twilight", s=4, linewidths=0)
        ax.view_init(elev=50, azim=-60)
        ax.set_zlabel("PC 3")
        plotting.label_axes(ax, title=f"colour: {label}", xlabel="PC 1", ylabel="PC 2")
    draw_barcode(
        axes[2], unit.bars, result.config.min_persistence, result.config.max_scale
    )
    plotting.label_axes(
        axes[2],
        title=f"H1 barcode: Betti-1 = {unit.betti1}",
        xlabel="scale (fraction of landmark diameter)",
        ylabel="bar",
        legend=False,
    )
    fig.suptitle(
        f"{name}: {len(unit.neurons)} neurons, disc share {unit.disc_share:.2f}"
    )
    return fig

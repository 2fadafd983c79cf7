r"""Adam and AdamW, updating NumPy arrays or torch tensors in place.

Adam (Kingma and Ba, 2015, Algorithm 1) keeps, for every parameter :math:`\theta`,
running means of its gradient :math:`g_t` and of the gradient's square, corrects
their bias towards the zero start, and moves each coordinate by about the learning
rate :math:`\alpha`:

.. math::

    m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,

    \theta_t = \theta_{t-1} - \alpha\,
    \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}.

AdamW (Loshchilov and Hutter, 2019) adds *decoupled* weight decay: the parameter
shrinks by the factor :math:`1 - \alpha\lambda` before the step, rather than
:math:`\lambda\theta` being added to the gradient, where Adam's rescaling would weaken
it for coordinates with large gradients. (The paper scales :math:`\lambda` by a
schedule multiplier; here, as in ``torch.optim.AdamW``, by the learning rate.)

The book writes these few lines out instead of calling ``torch.optim`` because
building the first ``torch.optim`` optimiser in a process imports ``torch._dynamo``,
which took 1.05 s (median of ten fresh processes, 0.95 to 1.11 s; over 2 s on a busy
machine) on the book's two-core machine, against 4 ms for :class:`Adam`: a twentieth
of a chapter's 20 s budget.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from paperlab.validation import check_float, check_int

if TYPE_CHECKING:
    import torch

    Param = np.ndarray | torch.Tensor

__all__ = ["Adam", "adam_update"]


def adam_update(
    params: Sequence[Param],
    grads: Sequence[Param],
    moments: Sequence[tuple[Param, Param]],
    step: int,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    r"""Apply one Adam (or AdamW) step to each parameter and its moments, in place.

    Parameters
    ----------
    params : sequence of numpy.ndarray or torch.Tensor
        The parameters :math:`\theta`, floating point, of any shapes; NumPy arrays and
        tensors may be mixed.
    grads : sequence of numpy.ndarray or torch.Tensor
        One gradient :math:`g_t` per parameter, of its type and shape.
    moments : sequence of (first, second)
        Per parameter, the moment estimates :math:`m_{t-1}, v_{t-1}` (zeros before the
        first step), floating point, of its type and shape; replaced in place by
        :math:`m_t, v_t`.
    step : int
        The step number :math:`t`, counted from 1; it sets the bias corrections.
    lr : float
        The learning rate :math:`\alpha`, positive.
    betas : (float, float)
        Decay rates :math:`(\beta_1, \beta_2)` of the two moments, each in [0, 1).
    eps : float
        :math:`\epsilon`, added to the root of the corrected second moment; positive.
    weight_decay : float
        Decoupled decay :math:`\lambda` (AdamW), non-negative; 0 gives plain Adam.

    Raises
    ------
    TypeError
        If an entry is neither a NumPy array nor a torch tensor, is not of its
        parameter's type, or a parameter or moment is not floating point.
    ValueError
        If the sequences differ in length, a shape differs from its parameter's, or a
        setting is out of range.

    Notes
    -----
    Arrays and tensors get the same formulas, each written with its library's
    in-place operations, and agree with ``torch.optim.Adam`` and
    ``torch.optim.AdamW`` to rounding, not to the last bit. Keep the order of the
    operations as it is: a change moves results in the last bits, which a long
    training run with weight decay can grow into a visibly different network.
    """
    settings = _check_settings(lr, betas, eps, weight_decay)
    step = check_int("step", step, minimum=1)
    kinds = _check_params(params)
    _check_grads(kinds, params, grads)
    _check_moments(kinds, params, moments)
    _apply(kinds, params, grads, moments, step, settings)


class Adam:
    """Adam (or AdamW) over a fixed list of parameters, updated in place.

    Parameters
    ----------
    params : sequence of numpy.ndarray or torch.Tensor
        The parameters, floating point, of any shapes; NumPy arrays and tensors may
        be mixed.
    lr, betas, eps, weight_decay
        As in :func:`adam_update`.

    Attributes
    ----------
    settings : NamedTuple
        The validated ``lr, beta1, beta2, eps, weight_decay``.
    moments : list of (first, second)
        Per parameter, the moment estimates :math:`m_t, v_t` (zeros at the start).
    n_steps : int
        Steps taken so far.

    Raises
    ------
    TypeError, ValueError
        As in :func:`adam_update`, naming the offending setting or entry of
        ``params``.

    Examples
    --------
    >>> w = np.zeros(3)
    >>> optimizer = Adam([w], lr=0.1)
    >>> optimizer.step([np.array([1.0, -2.0, 0.0])])
    >>> w
    array([-0.1,  0.1,  0. ])
    """

    def __init__(
        self,
        params: Sequence[Param],
        lr: float,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.settings = _check_settings(lr, betas, eps, weight_decay)
        self._kinds = _check_params(params)
        self.params = list(params)
        self.moments = [(_zeros_like(p), _zeros_like(p)) for p in self.params]
        self.n_steps = 0

    def step(self, grads: Sequence[Param]) -> None:
        """Take one step with ``grads``, one gradient per parameter, in order.

        Raises
        ------
        TypeError, ValueError
            If ``grads`` does not match the parameters in number, types or shapes.
        """
        _check_grads(self._kinds, self.params, grads)
        self.n_steps += 1
        _apply(
            self._kinds, self.params, grads, self.moments, self.n_steps, self.settings
        )


class _Settings(NamedTuple):
    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float


def _apply(kinds, params, grads, moments, step: int, settings: _Settings) -> None:
    for kind, param, grad, (first, second) in zip(
        kinds, params, grads, moments, strict=True
    ):
        _UPDATES[kind](param, grad, first, second, step, settings)


def _update_numpy(param, grad, first, second, step: int, s: _Settings) -> None:
    """One step on NumPy arrays, in place."""
    if s.weight_decay:
        param *= 1 - s.lr * s.weight_decay
    first += (1 - s.beta1) * (grad - first)
    second += (1 - s.beta2) * (grad * grad - second)
    step_size = s.lr / (1 - s.beta1**step)
    # A NumPy float64 scalar: float32 arrays get their denominator in float64.
    root_correction = np.sqrt(1 - s.beta2**step)
    param -= step_size * first / (np.sqrt(second) / root_correction + s.eps)


def _update_torch(param, grad, first, second, step: int, s: _Settings) -> None:
    """One step on torch tensors, in place, outside autograd."""
    torch = sys.modules["torch"]  # imported: the arguments are tensors
    with torch.no_grad():
        if s.weight_decay:
            param.mul_(1 - s.lr * s.weight_decay)
        first.mul_(s.beta1).add_(grad, alpha=1 - s.beta1)
        second.mul_(s.beta2).addcmul_(grad, grad, value=1 - s.beta2)
        denom = (second / (1 - s.beta2**step)).sqrt_().add_(s.eps)
        param.addcdiv_(first, denom, value=-s.lr / (1 - s.beta1**step))


_UPDATES = {"numpy": _update_numpy, "torch": _update_torch}


def _check_settings(lr: Any, betas: Any, eps: Any, weight_decay: Any) -> _Settings:
    lr = check_float("lr", lr, minimum=0.0, strict_minimum=True)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = (
        check_float(f"betas[{i}]", beta, minimum=0.0) for i, beta in enumerate(betas)
    )
    for i, beta in enumerate((beta1, beta2)):
        if beta >= 1:
            raise ValueError(f"betas[{i}] must be < 1, got {beta}")
    eps = check_float("eps", eps, minimum=0.0, strict_minimum=True)
    weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
    return _Settings(lr, beta1, beta2, eps, weight_decay)


def _check_sequence(name: str, value: Any, length: int | None = None) -> None:
    if isinstance(value, (np.ndarray, str)) or not isinstance(value, Sequence):
        raise TypeError(
            f"{name} must be a list of arrays or tensors, got {type(value).__name__}"
        )
    if length is not None and len(value) != length:
        raise ValueError(
            f"{name} must hold one entry per parameter ({length}), got {len(value)}"
        )


def _check_params(params: Any) -> list[str]:
    """The kind (``"numpy"`` or ``"torch"``) of each parameter, after checking it."""
    _check_sequence("params", params)
    if not params:
        raise ValueError("params must not be empty")
    return [_check_floating(f"params[{i}]", p) for i, p in enumerate(params)]


def _check_grads(kinds: list[str], params: Sequence[Param], grads: Any) -> None:
    _check_sequence("grads", grads, len(params))
    for i, (kind, param, grad) in enumerate(zip(kinds, params, grads, strict=True)):
        _check_like(kind, param, f"grads[{i}]", grad)


def _check_moments(kinds: list[str], params: Sequence[Param], moments: Any) -> None:
    if not isinstance(moments, Sequence) or isinstance(moments, str):
        raise TypeError(
            f"moments must be a list of (first, second) pairs, "
            f"got {type(moments).__name__}"
        )
    if len(moments) != len(params):
        raise ValueError(
            f"moments must hold one entry per parameter ({len(params)}), "
            f"got {len(moments)}"
        )
    for i, (kind, param, pair) in enumerate(zip(kinds, params, moments, strict=True)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"moments[{i}] must be a pair (first, second)")
        for j, moment in enumerate(pair):
            _check_like(kind, param, f"moments[{i}][{j}]", moment)
            _check_floating(f"moments[{i}][{j}]", moment)


def _kind(name: str, value: Any) -> str:
    """``"numpy"`` or ``"torch"``; a ``TypeError`` naming ``name`` otherwise."""
    if isinstance(value, np.ndarray):
        return "numpy"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return "torch"
    raise TypeError(
        f"{name} must be a numpy.ndarray or a torch.Tensor, got {type(value).__name__}"
    )


def _check_floating(name: str, value: Any) -> str:
    """The kind of ``value``, after checking that it is a floating-point array."""
    kind = _kind(name, value)
    if kind == "numpy":
        floating = np.issubdtype(value.dtype, np.floating)
    else:
        floating = value.is_floating_point()
    if not floating:
        raise TypeError(f"{name} must be floating point, got dtype {value.dtype}")
    return kind


def _check_like(kind: str, param: Param, name: str, value: Any) -> None:
    """Check that ``value`` has the type (``kind``) and shape of ``param``."""
    if _kind(name, value) != kind:
        raise TypeError(
            f"{name} must be of the type of its parameter ({type(param).__name__}), "
            f"got {type(value).__name__}"
        )
    if tuple(value.shape) != tuple(param.shape):
        raise ValueError(
            f"{name} must have the shape of its parameter {tuple(param.shape)}, "
            f"got {tuple(value.shape)}"
        )


def _zeros_like(param: Param) -> Param:
    if isinstance(param, np.ndarray):
        return np.zeros_like(param)
    return sys.modules["torch"].zeros_like(param)

"""Input checks shared by the whole library.

Every public function validates its arguments with these helpers, so that bad input
fails early with a message naming the argument, what was expected and what was received.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = [
    "check_instance",
    "check_int",
    "check_float",
    "check_probability",
    "check_choice",
    "check_array",
]


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} (type {type(value).__name__})"


def check_instance(name: str, value: Any, cls: type) -> Any:
    """Return ``value`` if it is an instance of ``cls``; raise ``TypeError`` otherwise.

    The message names the argument, the expected class and the received type, e.g.
    ``config must be a Config, got dict``.
    """
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a {cls.__name__}, got {type(value).__name__}")
    return value


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Return ``value`` as an ``int`` after checking its type and bounds.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : Any
        The value to check. Booleans are rejected.
    minimum, maximum : int, optional
        Inclusive bounds.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If ``value`` lies outside the bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` after checking its type and bounds.

    ``strict_minimum=True`` makes the lower bound exclusive (for step sizes, scales).

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If ``value`` is not finite or lies outside the bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None:
        if strict_minimum and value <= minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value}")
        if not strict_minimum and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_probability(name: str, value: Any) -> float:
    """Return ``value`` as a float in [0, 1]; raise otherwise."""
    return check_float(name, value, minimum=0.0, maximum=1.0)


def check_choice(name: str, value: Any, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``; raise ``ValueError`` otherwise."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}, got {_describe(value)}")
    return value


def check_array(
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    dtype: Any = None,
    shape: tuple[int | None, ...] | None = None,
    finite: bool = False,
    min_size: int = 0,
) -> np.ndarray:
    """Return ``value`` as a NumPy array after checking its dimensions and contents.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : array_like
        The value to check.
    ndim : int, optional
        Required number of dimensions.
    dtype : dtype, optional
        The array is converted to this dtype (a copy only when needed).
    shape : tuple of int or None, optional
        Required shape; ``None`` entries match any length.
    finite : bool
        Reject NaN and infinite entries.
    min_size : int
        Minimum number of elements.

    Raises
    ------
    TypeError
        If ``value`` cannot be read as a numeric array.
    ValueError
        If its dimensions, shape, size or contents are wrong.
    """
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be array-like, got {_describe(value)}") from err
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if shape is not None:
        ok = len(shape) == arr.ndim and all(
            want is None or want == got
            for want, got in zip(shape, arr.shape, strict=True)
        )
        if not ok:
            want_text = (
                "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            )
            raise ValueError(f"{name} must have shape {want_text}, got {arr.shape}")
    if arr.size < min_size:
        raise ValueError(
            f"{name} must have at least {min_size} element(s), got {arr.size}"
        )
    if finite and np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values")
    return arr

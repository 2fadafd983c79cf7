"""The error a chapter's ``check_claim`` raises when a paper's claim does not hold."""

from __future__ import annotations

__all__ = ["ClaimFailed", "require"]


class ClaimFailed(AssertionError):
    """A measured result does not support the paper's claim.

    It subclasses ``AssertionError`` so that a notebook cell calling ``check_claim``
    fails exactly as an ``assert`` would, and the tests and the book build both stop.
    """


def require(condition: bool, message: str) -> None:
    """Raise :class:`ClaimFailed` with ``message`` unless ``condition`` holds.

    Unlike ``assert``, this check survives ``python -O``.
    """
    if not bool(condition):
        raise ClaimFailed(message)

"""Showing library code and results inside a notebook.

Chapters never paste library code into cells: they call :func:`show_source`, so the page
shows exactly the code that ran. Results go into a :class:`Table`, which renders as a
Markdown table on the website and as aligned text in a terminal.
"""

from __future__ import annotations

import inspect
import numbers
import textwrap
from collections.abc import Sequence
from typing import Any

__all__ = ["show_source", "source_markdown", "Table", "results_table"]


def source_markdown(obj: Any) -> str:
    """Return the source of a function, class or module as a fenced Markdown block."""
    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise TypeError(
            f"obj must be a function, class or module defined in Python source, "
            f"got {type(obj).__name__}"
        ) from err
    module = inspect.getmodule(obj)
    where = module.__name__ if module is not None else "?"
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", where))
    header = f"*From `{where}`:*" if name == where else f"*`{name}`, from `{where}`:*"
    return f"{header}\n\n```python\n{textwrap.dedent(source).rstrip()}\n```"


class _Markdown:
    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def show_source(obj: Any) -> None:
    """Display the source of ``obj`` (a function, class or module) in the notebook."""
    from IPython.display import display

    display(_Markdown(source_markdown(obj)))


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 10 ** (-digits)):
            return f"{value:.{max(digits - 1, 1)}e}"
        return f"{value:.{digits}f}"
    return str(value)


class Table:
    """A small results table: rows of values under named columns.

    Renders as Markdown in a notebook (and on the website), as aligned text elsewhere.
    Numbers get ``digits`` decimals; integers get thousands separators.
    """

    def __init__(
        self,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        *,
        digits: int = 3,
        caption: str | None = None,
    ):
        columns = [str(c) for c in columns]
        if not columns:
            raise ValueError("columns must name at least one column")
        rows = [list(r) for r in rows]
        for i, row in enumerate(rows):
            if len(row) != len(columns):
                raise ValueError(
                    f"rows[{i}] has {len(row)} values, expected {len(columns)}"
                    f" (one per column)"
                )
        self.columns = columns
        self.rows = rows
        self.digits = int(digits)
        self.caption = caption

    def cells(self) -> list[list[str]]:
        """The formatted cells, row by row."""
        return [[_fmt(v, self.digits) for v in row] for row in self.rows]

    def to_markdown(self) -> str:
        """The table as Markdown."""

        # A literal "|" inside a cell would end the cell: escape it.
        def row_text(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        lines = [
            row_text(self.columns),
            "|" + "|".join("---" for _ in self.columns) + "|",
        ]
        lines += [row_text(row) for row in self.cells()]
        if self.caption:
            lines = [f"**{self.caption}**", ""] + lines
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        cells = [self.columns] + self.cells()
        widths = [max(len(r[j]) for r in cells) for j in range(len(self.columns))]
        lines = [
            "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        if self.caption:
            lines.insert(0, self.caption)
        return "\n".join(lines)


def results_table(
    rows: Sequence[Sequence[Any]],
    columns: Sequence[str],
    *,
    digits: int = 3,
    caption: str | None = None,
) -> Table:
    """Build a :class:`Table`; the last expression of a cell displays it."""
    return Table(rows, columns, digits=digits, caption=caption)

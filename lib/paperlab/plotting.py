"""The book's figure style, and figure display with alt text.

Every chapter draws with :func:`subplots` and shows a figure with :func:`show_figure`,
which requires alt text: the website renders it as the image's ``alt`` attribute, so a
reader using a screen reader hears what the figure shows.
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402

__all__ = [
    "COLORS",
    "use_book_style",
    "subplots",
    "label_axes",
    "show_figure",
    "figure_png",
]

# Okabe and Ito's colour-blind-safe palette, in the order the book uses it.
COLORS = (
    "#0072B2",  # blue: the paper's mechanism
    "#D55E00",  # vermillion: the main baseline
    "#009E73",  # bluish green
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#F0E442",  # yellow
    "#000000",  # black
)

_STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "figure.figsize": (6.4, 3.8),
    "axes.prop_cycle": matplotlib.cycler(color=COLORS),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "image.cmap": "viridis",
    "svg.hashsalt": "paperlab",
}


def use_book_style() -> None:
    """Apply the book's plot style to matplotlib (idempotent)."""
    matplotlib.rcParams.update(_STYLE)


def subplots(
    nrows: int = 1,
    ncols: int = 1,
    *,
    width: float | None = None,
    height: float | None = None,
    **kwargs,
):
    """Create a figure in the book's style (arguments as ``pyplot.subplots``).

    ``width`` and ``height`` are in inches; the default is 4.2 inches wide per column
    (at most 10) and 3.4 inches high per row.
    """
    use_book_style()
    if width is None:
        width = min(10.0, 4.2 * ncols)
    if height is None:
        height = 3.4 * nrows
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)


def label_axes(ax, *, title: str, xlabel: str, ylabel: str, legend: bool | None = None):
    """Set an axis's title and labels (all required, units in the labels) and legend.

    ``legend=None`` draws a legend whenever the axis has more than one labelled artist.
    """
    for name, text in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{name} must be a non-empty string, got {text!r}")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    handles, _ = ax.get_legend_handles_labels()
    if legend or (legend is None and len(handles) > 1):
        ax.legend()
    return ax


def figure_png(fig) -> bytes:
    """Render a figure to PNG bytes (fixed metadata, so reruns give identical files)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


class _Figure:
    """A rendered figure that Jupyter displays as an image with alt text."""

    def __init__(self, png: bytes, alt: str):
        self.png = png
        self.alt = alt

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = base64.b64encode(self.png).decode("ascii")
        tag = (
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(self.alt)}" '
            'class="paperlab-figure"/>'
        )
        # One copy of the PNG only: the HTML image carries the alt text, which a bare
        # image/png output cannot, and a second copy would double every notebook.
        return {
            "text/html": tag,
            "text/plain": f"[figure: {self.alt}]",
        }


def show_figure(fig, alt: str) -> None:
    """Display ``fig`` in the notebook with ``alt`` as its alt text, then close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to show.
    alt : str
        What the figure shows, in a sentence or two (read aloud by screen readers).

    Raises
    ------
    ValueError
        If ``alt`` is empty.
    TypeError
        If ``fig`` is not a matplotlib figure.
    """
    from IPython.display import display
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if not isinstance(alt, str) or len(alt.strip()) < 10:
        raise ValueError(
            "alt must describe the figure in words (at least 10 characters)"
        )
    png = figure_png(fig)
    plt.close(fig)
    display(_Figure(png, alt.strip()))

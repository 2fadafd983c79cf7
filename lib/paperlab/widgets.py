"""The "Explore" widget every chapter uses: controls that redraw one figure.

Why not ``ipywidgets.interact``? When a notebook is executed headless (nbclient, which
runs the book build and nbval), an ``interact`` or any ``with output:`` capture that
draws a figure stalled the cell until its timeout in about one run out of four on a
loaded two-core machine (measured for this book; compare jupyter/nbclient#312). Writing
the rendered figure straight into the ``Output`` widget's state with
``append_display_data`` never stalled in 35 runs under the same load, so that is what
:func:`explore` does. It also draws the default state at once, so the website's static
snapshot of the widget shows a figure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paperlab.plotting import _Figure, figure_png, plt

__all__ = ["explore"]


def explore(make_figure: Callable[..., tuple[Any, str]], **controls: Any):
    """Return a widget whose controls redraw the figure ``make_figure(**values)``.

    Parameters
    ----------
    make_figure : callable
        Called with one keyword argument per control (its current value); returns
        ``(figure, alt_text)``, a matplotlib figure and a sentence saying what it shows.
    **controls : ipywidgets.ValueWidget
        The controls, by the keyword ``make_figure`` takes them as (sliders, dropdowns,
        toggles).

    Returns
    -------
    ipywidgets.VBox
        The controls above the figure; the last expression of a cell displays it.

    Raises
    ------
    TypeError
        If ``make_figure`` is not callable, no control is given, or a control has no
        ``value``.
    """
    import ipywidgets as widgets

    if not callable(make_figure):
        raise TypeError(
            f"make_figure must be callable, got {type(make_figure).__name__}"
        )
    if not controls:
        raise TypeError("explore needs at least one control, e.g. n=IntSlider(...)")
    for name, control in controls.items():
        if not isinstance(control, widgets.ValueWidget):
            raise TypeError(
                f"control {name!r} must be an ipywidgets value widget, "
                f"got {type(control).__name__}"
            )

    output = widgets.Output()

    def render(_change: Any = None) -> None:
        values = {name: control.value for name, control in controls.items()}
        fig, alt = make_figure(**values)
        png = figure_png(fig)
        plt.close(fig)
        output.outputs = ()
        output.append_display_data(_Figure(png, alt))

    for control in controls.values():
        control.observe(render, names="value")
    render()
    return widgets.VBox([*controls.values(), output])

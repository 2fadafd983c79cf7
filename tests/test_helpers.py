"""Unit tests of the helpers every chapter shares."""

from __future__ import annotations

import numpy as np
import pytest

from paperlab import claims, display, plotting, seeding, timing, validation


class TestValidation:
    def test_int_accepts_numpy_integers(self):
        assert validation.check_int("n", np.int64(3), minimum=1) == 3

    @pytest.mark.parametrize("bad", [True, 2.5, "3", None])
    def test_int_rejects_non_integers(self, bad):
        with pytest.raises(TypeError, match="n must be an integer"):
            validation.check_int("n", bad)

    def test_int_bounds_name_the_argument(self):
        with pytest.raises(ValueError, match=r"n_items must be >= 1, got 0"):
            validation.check_int("n_items", 0, minimum=1)
        with pytest.raises(ValueError, match=r"k must be <= 5, got 6"):
            validation.check_int("k", 6, maximum=5)

    def test_float_rejects_nan_and_strict_minimum(self):
        with pytest.raises(ValueError, match="lr must be finite"):
            validation.check_float("lr", float("nan"))
        with pytest.raises(ValueError, match=r"lr must be > 0"):
            validation.check_float("lr", 0.0, minimum=0.0, strict_minimum=True)
        assert validation.check_float("lr", 0.0, minimum=0.0) == 0.0

    def test_instance_names_the_argument_and_types(self):
        assert validation.check_instance("n", 3, int) == 3
        with pytest.raises(TypeError, match="config must be a dict, got list"):
            validation.check_instance("config", [], dict)

    def test_probability(self):
        assert validation.check_probability("p", 1) == 1.0
        with pytest.raises(ValueError, match=r"p must be <= 1"):
            validation.check_probability("p", 1.5)

    def test_choice_lists_the_options(self):
        with pytest.raises(ValueError, match=r"variant must be one of 'a', 'b'"):
            validation.check_choice("variant", "c", ("a", "b"))

    def test_array_shape_dimensions_and_contents(self):
        arr = validation.check_array("X", [[1, 2], [3, 4]], ndim=2, shape=(None, 2))
        assert arr.shape == (2, 2)
        with pytest.raises(ValueError, match=r"X must have shape \(\*, 3\)"):
            validation.check_array("X", arr, shape=(None, 3))
        with pytest.raises(ValueError, match="X must have 1 dimension"):
            validation.check_array("X", arr, ndim=1)
        with pytest.raises(ValueError, match="only finite"):
            validation.check_array("X", [1.0, np.nan], finite=True)
        with pytest.raises(ValueError, match="at least 1 element"):
            validation.check_array("X", [], min_size=1)
        with pytest.raises(TypeError, match="numeric array"):
            validation.check_array("X", [object()])


def test_seed_everything_is_reproducible():
    a = seeding.seed_everything(7).normal(size=3)
    b = seeding.seed_everything(7).normal(size=3)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        seeding.seed_everything(-1)


def test_seed_everything_seeds_torch_when_imported():
    torch = pytest.importorskip("torch")
    seeding.seed_everything(3)
    a = torch.rand(2)
    seeding.seed_everything(3)
    assert torch.equal(a, torch.rand(2))
    assert seeding.torch_device(prefer_gpu=False).type == "cpu"


def test_median_time_counts_calls():
    calls = []
    result = timing.median_time(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(result.times) == 3
    assert result.best <= result.median
    with pytest.raises(TypeError, match="fn must be callable"):
        timing.median_time(3)


def test_require_raises_claim_failed():
    claims.require(True, "never shown")
    with pytest.raises(claims.ClaimFailed, match="too slow") as info:
        claims.require(False, "too slow")
    assert isinstance(info.value, AssertionError)


class TestDisplay:
    def test_table_markdown_and_text(self):
        table = display.results_table(
            [["mechanism", 0.12345, 1200], ["baseline", 2e-9, 3]],
            ["variant", "error", "n"],
            caption="Toy",
        )
        md = table.to_markdown()
        assert "| variant | error | n |" in md
        assert "| mechanism | 0.123 | 1,200 |" in md
        assert "2.00e-09" in md
        assert md.startswith("**Toy**")
        text = repr(table).splitlines()
        assert text[0] == "Toy" and set(text[2]) <= {"-", " "}

    def test_table_escapes_pipes_in_cells(self):
        md = display.Table([["|x|", 1]], ["max |error|", "n"]).to_markdown()
        assert md.splitlines()[0] == "| max \\|error\\| | n |"
        assert md.splitlines()[2] == "| \\|x\\| | 1 |"

    def test_table_rejects_ragged_rows(self):
        with pytest.raises(ValueError, match=r"rows\[1\] has 1 values, expected 2"):
            display.Table([[1, 2], [3]], ["a", "b"])

    def test_source_markdown_shows_the_code(self):
        md = display.source_markdown(display.results_table)
        assert md.startswith("*`results_table`, from `paperlab.display`:*")
        assert "def results_table(" in md and md.rstrip().endswith("```")
        with pytest.raises(TypeError, match="obj must be a function"):
            display.source_markdown(3)

    def test_source_markdown_shows_a_numba_kernel_as_written(self):
        from paperlab.kernels.kmeans import kmeans_assign

        md = display.source_markdown(kmeans_assign)
        assert md.startswith("*`kmeans_assign`, from `paperlab.kernels.kmeans`:*")
        assert "@numba.njit(cache=True)\ndef kmeans_assign(" in md


class TestPlotting:
    def test_label_axes_requires_every_label(self):
        fig, ax = plotting.subplots()
        with pytest.raises(ValueError, match="xlabel must be a non-empty string"):
            plotting.label_axes(ax, title="t", xlabel="", ylabel="y")
        ax.plot([0, 1], label="a")
        ax.plot([1, 0], label="b")
        plotting.label_axes(ax, title="t", xlabel="x (s)", ylabel="y")
        assert ax.get_legend() is not None
        plotting.plt.close(fig)

    def test_figure_bundle_carries_alt_text(self):
        fig, ax = plotting.subplots()
        ax.plot([0, 1])
        png = plotting.figure_png(fig)
        assert png.startswith(b"\x89PNG") and png == plotting.figure_png(fig)
        bundle = plotting._Figure(png, 'a line "up"')._repr_mimebundle_()
        assert 'alt="a line &quot;up&quot;"' in bundle["text/html"]
        assert bundle["text/plain"] == '[figure: a line "up"]'
        plotting.plt.close(fig)

    def test_show_figure_rejects_missing_alt(self):
        fig, _ = plotting.subplots()
        with pytest.raises(ValueError, match="alt must describe"):
            plotting.show_figure(fig, alt="  ")
        with pytest.raises(TypeError, match="fig must be a matplotlib Figure"):
            plotting.show_figure("not a figure", alt="a real description")
        plotting.plt.close(fig)


class TestExplore:
    @staticmethod
    def make(slope):
        fig, ax = plotting.subplots()
        ax.plot([0, slope])
        return fig, f"A line rising to {slope}."

    def test_draws_the_default_and_redraws_on_change(self):
        import ipywidgets as widgets

        from paperlab.widgets import explore

        slider = widgets.IntSlider(value=2, min=0, max=5)
        box = explore(self.make, slope=slider)
        output = box.children[-1]
        assert box.children[0] is slider
        assert len(output.outputs) == 1
        assert (
            output.outputs[0]["data"]["text/plain"] == "[figure: A line rising to 2.]"
        )
        slider.value = 4
        assert len(output.outputs) == 1
        assert "rising to 4" in output.outputs[0]["data"]["text/plain"]

    def test_rejects_bad_arguments(self):
        from paperlab.widgets import explore

        with pytest.raises(TypeError, match="make_figure must be callable"):
            explore(3, slope=None)
        with pytest.raises(TypeError, match="at least one control"):
            explore(self.make)
        with pytest.raises(TypeError, match="control 'slope' must be an ipywidgets"):
            explore(self.make, slope=3)

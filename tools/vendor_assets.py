#!/usr/bin/env python3
"""Copy the pinned web assets from node_modules/ into _vendor/ for an offline site.

``npm ci`` installs the versions pinned in package.json / package-lock.json; this script
copies just what the pages load: MathJax 3 (the TeX-to-HTML bundle and its fonts),
require.js, and the ipywidgets HTML manager with its icon fonts. ``_config.yml`` names
``_vendor`` in ``html_static_path``, so Sphinx copies these files into ``_static/``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "node_modules"
VENDOR = ROOT / "_vendor"

# (source under node_modules, destination under _vendor)
FILES = [
    ("requirejs/require.js", "require.min.js"),
    ("@jupyter-widgets/html-manager/dist/embed-amd.js", "embed-amd.js"),
    ("mathjax/es5/tex-chtml-full.js", "mathjax/tex-chtml-full.js"),
]
TREES = [
    ("mathjax/es5/output/chtml/fonts/woff-v2", "mathjax/output/chtml/fonts/woff-v2"),
    ("mathjax/es5/ui", "mathjax/ui"),
    ("mathjax/es5/a11y", "mathjax/a11y"),
]
FONT_SUFFIXES = {".woff", ".woff2", ".ttf", ".eot", ".svg"}


def main() -> int:
    if not NODE.is_dir():
        print("node_modules/ is missing: run `npm ci` first", file=sys.stderr)
        return 1
    shutil.rmtree(VENDOR, ignore_errors=True)
    for src, dst in FILES:
        target = VENDOR / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(NODE / src, target)
    for src, dst in TREES:
        shutil.copytree(NODE / src, VENDOR / dst)
    # The widget manager's icon fonts are loaded relative to embed-amd.js.
    for font in (NODE / "@jupyter-widgets/html-manager/dist").iterdir():
        if font.suffix in FONT_SUFFIXES:
            shutil.copy2(font, VENDOR / font.name)
    size = sum(p.stat().st_size for p in VENDOR.rglob("*") if p.is_file())
    print(f"vendored {size / 2**20:.1f} MiB of web assets into {VENDOR.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

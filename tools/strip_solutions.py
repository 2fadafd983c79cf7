#!/usr/bin/env python3
"""Write copies of chapter notebooks without their exercise solutions, for students.

Every solution in the book sits between a markdown cell opening ``{solution-start}``
and one holding ``{solution-end}``; this removes those cells and everything between
them, and keeps the exercises. (Sphinx-exercise's own ``hide_solutions`` option fails
on such gated solutions in version 1.2.1, so the book does not rely on it.)

Usage: strip_solutions.py OUT_DIR NOTEBOOK [NOTEBOOK ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def strip(nb: dict) -> tuple[dict, int]:
    """Return ``nb`` without its solution cells, and how many solutions were removed."""
    kept, inside, removed = [], False, 0
    for cell in nb["cells"]:
        source = "".join(cell.get("source", ""))
        if cell["cell_type"] == "markdown" and "{solution-start}" in source:
            inside, removed = True, removed + 1
            continue
        if inside and cell["cell_type"] == "markdown" and "{solution-end}" in source:
            inside = False
            continue
        if not inside:
            kept.append(cell)
    if inside:
        raise ValueError("a {solution-start} cell has no matching {solution-end}")
    return {**nb, "cells": kept}, removed


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in argv[1:]:
        path = Path(name)
        nb, removed = strip(json.loads(path.read_text(encoding="utf-8")))
        (out_dir / path.name).write_text(
            json.dumps(nb, indent=1) + "\n", encoding="utf-8"
        )
        print(f"{path.name}: removed {removed} solution(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

# The book's commands. `make book` and `make test` set everything up on first use.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENDOR := _vendor
# Torch with two threads stalls badly on a shared 2-core machine; one thread is steady.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1
export MPLBACKEND := Agg
JOBS ?= 2

.PHONY: help setup book lab test test-lint test-lib test-notebooks test-book test-site \
        test-chapter bench clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(STAMP): requirements.txt lib/pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-build-isolation -e lib
	touch $(STAMP)

$(VENDOR)/.stamp: package.json package-lock.json tools/vendor_assets.py
	npm ci --no-audit --no-fund --silent
	$(BIN)/python tools/vendor_assets.py
	touch $@

setup: $(STAMP) $(VENDOR)/.stamp  ## create .venv, install everything, vendor the web assets

book: setup  ## execute every chapter and build the website into _build/html
	rm -rf _build
	timeout 1800 $(BIN)/jupyter-book build . --builder html -W -n --keep-going
	echo "Open _build/html/index.html in a browser."

lab: setup  ## open the book in JupyterLab (widgets work there)
	$(BIN)/jupyter lab book

test: setup test-lint test-lib test-notebooks test-book test-site  ## the whole test pipeline
	echo "All tests passed."

test-lint:
	$(BIN)/ruff check lib tests tools book
	$(BIN)/ruff format --check lib tests tools
	$(BIN)/python tools/sync_notebooks.py --check
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

test-lib:
	timeout 1200 $(BIN)/pytest -q -x -m "not site" -n $(JOBS) --dist loadfile

test-notebooks:
	timeout 1200 $(BIN)/pytest -q -x --nbval-lax --nbval-cell-timeout=120 \
	  -n $(JOBS) --dist loadfile book

test-book:
	rm -rf _build
	timeout 1800 $(BIN)/jupyter-book build . --builder html -W -n --keep-going

test-site:
	$(BIN)/pytest -q -m site tests/test_site.py

test-chapter: $(STAMP)  ## run one notebook under nbval and time it: make test-chapter NB=book/...
	time $(BIN)/pytest -q --nbval-lax --nbval-cell-timeout=120 $(NB)

bench: setup  ## the kernel benchmark table
	$(BIN)/python -m paperlab.bench

clean:  ## remove build products (keeps .venv)
	rm -rf _build $(VENDOR) node_modules .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

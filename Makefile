# Two commands do all the set-up on a fresh machine:
#   make reproduce   # create .venv, install, run the pipeline on the embedded default (config.yaml), write report.html
#   make test        # create .venv, install, lint, run the test suite
# Re-running either is fast when nothing changed: the install is redone only when a requirements file changes.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ecorec-installed
CORES ?= 2
PYTEST_ARGS ?=
export PATH := $(abspath $(BIN)):$(PATH)
export PIP_PROGRESS_BAR := off
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup test lint format reproduce report dryrun clean

setup: $(STAMP)

$(STAMP): requirements/cpu.txt requirements/torchrec.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements/cpu.txt 2> >(grep -v "is ignored: it is neither" >&2)
	$(BIN)/python -m pip install -q --no-deps -r requirements/torchrec.txt 2> >(grep -v "is ignored: it is neither" >&2)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e . 2> >(grep -v "is ignored: it is neither" >&2)
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check ecorec tests workflow_scripts examples
	$(BIN)/ruff format --check ecorec tests workflow_scripts examples

format: setup
	$(BIN)/ruff check --fix ecorec tests workflow_scripts examples
	$(BIN)/ruff format ecorec tests workflow_scripts examples

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

reproduce: setup
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report report.html

report: setup
	$(BIN)/snakemake --cores $(CORES) --report report.html

dryrun: setup
	$(BIN)/snakemake -n --cores $(CORES)

clean:
	rm -rf results logs benchmarks .snakemake report.html

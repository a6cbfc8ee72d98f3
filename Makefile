# The README's commands. Every target starts with the same idempotent set-up.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export BENTOML_DO_NOT_TRACK := true

.PHONY: install test-tools serve test test-unit lint format data bench gpu-corpus
.DEFAULT_GOAL := help

help:
	@echo "make install | serve | test | test-unit | lint | format | data | bench"

install: $(VENV)/.installed

# torch==2.13.0 (pinned in pyproject.toml) is the CPU build that lies on disk; pip takes it from there.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# Serves HAT_CATALOG (default: the shipped catalog/) on 127.0.0.1:3000; HAT_SLA_MS, HAT_BACKEND, HAT_THREADS apply.
serve: install
	$(VENV)/bin/hat serve --host 127.0.0.1 --port 3000

# kubectl, Chromium and apt lists for Prometheus, which the proof tests use; installed where missing.
test-tools:
	@bash tests/install-tools.sh

test: install test-tools
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest -m "not integration"

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

data: install
	$(VENV)/bin/hat data build --out data

# Every benchmark, one at a time, into bench/RESULTS.md (about half an hour on 2 cores; needs `make data`).
# The built corpus (text splits, manifest, tokenizer; no downloads) packed for a GPU machine: scripts/gpu_train.sh.
gpu-corpus:
	mkdir -p runs/gpu && cd data && tar -cJf ../runs/gpu/corpus.tar.xz manifest.json spm.model *_train.* *_valid.* *_test.*

bench: install
	@test -f data/manifest.json || $(VENV)/bin/hat data build --out data
	$(PY) bench/run_all.py

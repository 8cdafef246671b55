# The two commands of the README do all set-up themselves: a venv in .venv with pybpf installed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test lint bench score clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/seed_demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests tools bench examples

test: $(STAMP) lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py

score: $(STAMP)
	$(BIN)/python bench/verifier_score.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache

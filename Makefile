# The two commands of the README do all set-up themselves: a venv in .venv with pybpf installed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
SCORE_JOBS ?= 2

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

# The verifier scoreboard. Without $$PYBPF_VST and without a corpus in ~/.cache/pybpf/vst (or the
# development copy /work/vst), builds the Linux 6.12 verifier selftests there first
# (tools/verifier-selftests/build: apt for clang, bpftool and linux-source-6.12 on a fresh machine).
score: $(STAMP)
	$(BIN)/python bench/verifier_score.py --build --soundness --jobs $(SCORE_JOBS) --write-results

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache

# sweeplab: `make demo` and `make test` work from a fresh clone (they create .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
STAMP := $(VENV)/.sweeplab-installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e ".[torch,keras,dev,bench]"
	touch $(STAMP)

demo: install
	$(BIN)/sweeplab validate examples/seed_mlp_torch.yaml
	$(BIN)/sweeplab run examples/seed_mlp_torch.yaml --trials 20 --workers 2
	$(BIN)/sweeplab best seed-mlp-torch

test: install
	$(BIN)/python -m pytest -q tests

lint: install
	$(BIN)/ruff check sweeplab tests benchmarks
	$(BIN)/mypy sweeplab

bench: install
	# figure 2 compares with Ray Tune and plain Optuna: their extras, pinned by constraints.txt
	$(PIP_INSTALL) "ray[tune]" optuna-integration
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) mlflow.db sweeplab.db mlruns mlartifacts .pytest_cache

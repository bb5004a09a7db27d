# sweeplab: `make demo` and `make test` work from a fresh clone (they create .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
STAMP := $(VENV)/.sweeplab-installed

.PHONY: install demo test lint bench bench-service bench-cnn bench-simulated bench-defaults bench-sim-validate tables chaos clean

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

# sweeplab with the service up, sweeplab cold, plain Optuna and Ray Tune side by side (not a timed test): the seed
# study, 100 short trials that train and 100 that sleep, wall time and time to the first trial, in
# benchmarks/results/service.md. SERVICE_ARGS="--reps 5" for more repetitions, "--workloads short_train" for one.
# About 40 minutes on a quiet 2-core machine (Ray Tune's runs are most of it).
SERVICE_ARGS ?=
bench-service: install
	$(PIP_INSTALL) "ray[tune]" optuna-integration
	$(BIN)/python benchmarks/bench_service.py $(SERVICE_ARGS)

# the CNN family on the digits images, the same study in sweeplab, Ray Tune and plain Optuna (not a timed
# test): wall time and the best trial's test accuracy side by side, in benchmarks/results/cnn_digits.md.
# SWEEPLAB_BENCH_CNN_REPS=3 for medians over 3 seeds.
bench-cnn: install
	$(PIP_INSTALL) "ray[tune]" optuna-integration
	$(BIN)/python benchmarks/bench_cnn.py

# the recorded learning curves that simulated benchmarks replay (shipped in sweeplab/bench/tables/): each table
# trains the 384 configurations of the space mlp-grid with 2 seeds, 10 epochs, on one CPU (`make -j2 tables`
# records two at a time; `make -B tables` records them again). About 25 minutes on a busy 2-core machine.
TABLES := digits breast_cancer wine make_classification diabetes
tables: $(TABLES:%=sweeplab/bench/tables/%.parquet)

sweeplab/bench/tables/%.parquet: benchmarks/tables/%.yaml | install
	$(BIN)/sweeplab bench record $< -o $@

# simulated benchmarks (not a timed test): trials per second of wall time, in benchmarks/results/simulated.md
bench-simulated: install
	$(BIN)/python benchmarks/bench_simulated.py

# the evidence behind `sampler: auto` / `pruner: auto` (not a timed test): 6 samplers x 6 pruners x 4 worker counts
# x 20 seeds on every shipped table, simulated, on 2 processes at low priority, in benchmarks/results/defaults.{md,json,html},
# with the variants auto was chosen from (TPE and pruner options; 3 tables, workers 1 and 4) and held-out seeds 20-39.
# About 1.5 hours of CPU on a quiet machine (GP alone would take most of it: it runs on a subset).
# BENCH_DEFAULTS_ARGS="--cache /tmp/defaults.jsonl" resumes a stopped run; "--from-cache" reports what it holds;
# "--extend" keeps defaults.json's cells and simulates only those it lacks (new variants).
BENCH_DEFAULTS_ARGS ?=
bench-defaults: install
	nice $(BIN)/python benchmarks/bench_defaults.py $(BENCH_DEFAULTS_ARGS)

# the simulator against real studies (not a timed test): random search and the auto defaults on digits, real
# (Ray, PyTorch, MLflow) and simulated with the same specs and seeds, in benchmarks/results/sim_validation.md
bench-sim-validate: install
	nice $(BIN)/python benchmarks/bench_sim_validate.py

# chaos soak (not a timed test): one study of 200 trials on a two-node Ray cluster, PostgreSQL and an
# MLflow server, while the driver, a Ray node, the database connections and MLflow are killed under it.
# Needs PostgreSQL on 127.0.0.1:5432. CHAOS_ARGS="--trials 400 --seed 3" to change it.
CHAOS_ARGS ?= --trials 200 --seed 0 --workers 2
chaos: install
	$(BIN)/python benchmarks/chaos.py $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) mlflow.db sweeplab.db mlruns mlartifacts .pytest_cache

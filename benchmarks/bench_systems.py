"""Figure 2: the same study run by three systems.

The guide's MLP space on the seed's data, PyTorch, 20 trials, 2 at a time, 20 epochs
(no pruning, no early stopping), TPE seeded (multivariate, constant liar: sweeplab's
defaults, given to the other two as well), MLflow logging on, each in its own fresh
process whose wall time (launch -> exit) includes its start-up. Repetition ``i`` runs
all three with seed ``42 + i`` (the data split, the sampler and training), so the best
accuracies are compared over several searches, not one search repeated:

- sweeplab: ``sweeplab run spec.yaml --json --no-model`` (the spec in ``SPEC``; the
  end-of-study re-fit of the best model is skipped, the others have none);
- Ray Tune: ``systems_tune.py`` (OptunaSearch + MLflowLoggerCallback, a function
  trainable with ``tune.report`` per epoch);
- plain Optuna: ``systems_optuna.py`` (``study.optimize(n_jobs=2)`` + MLflowCallback).

The other two train with ``systems_loop.train`` (a straightforward loop over the same
``build_model``). Each writes to a fresh copy of an existing (empty) SQLite MLflow store.
Repetitions alternate the order of the systems; figures are medians over them.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import common

SPEC = """\
study: systems-mlp
direction: maximize
metric: val_accuracy
trials: 20
workers: 2
resources: {cpu: 1, gpu: 0}
seed: 42
sampler: {name: tpe}
pruner: {name: none}
objective:
  framework: torch
  task: classification
  dataset: {name: make_classification, n_samples: 1000, n_features: 20, n_classes: 3, n_informative: 5}
  epochs: 20
  validation_split: 0.2
  test_split: 0.2
space:
  n_layers:      {type: int, low: 1, high: 5}
  units:         {type: int, low: 8, high: 256, log: true}
  dropout:       {type: float, low: 0.0, high: 0.5}
  batch_norm:    {type: categorical, choices: [true, false]}
  activation:    {type: categorical, choices: [relu, tanh, sigmoid]}
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  batch_size:    {type: categorical, choices: [16, 32, 64, 128]}
  optimizer:     {type: categorical, choices: [sgd, adam, rmsprop, adagrad]}
"""

SWEEPLAB = str(Path(sys.executable).with_name("sweeplab"))


def run_system(name: str, seed: int) -> dict[str, Any]:
    work = common.system_workdir("sweeplab-systems-")
    try:
        if name == "sweeplab":
            (work / "spec.yaml").write_text(SPEC.replace("seed: 42", f"seed: {seed}"))
            wall, out = common.run_json(
                [SWEEPLAB, "run", "spec.yaml", "--json", "--no-progress", "--no-model"], work, timeout=900)
            return {"wall": wall, "best": out["best_value"], "trials": out["n_trials"],
                    "startup": (out.get("startup_s") or {}).get("total")}
        script = common.BENCH_DIR / ("systems_tune.py" if name == "ray_tune" else "systems_optuna.py")
        wall, out = common.run_json([sys.executable, str(script), str(work), str(seed)], work, timeout=900)
        return {"wall": wall, "best": out["best_value"], "trials": out["n_trials"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def tune_available() -> str | None:
    try:
        import optuna_integration.mlflow  # noqa: F401
        import ray.tune.search.optuna  # noqa: F401
        from ray.air.integrations.mlflow import MLflowLoggerCallback  # noqa: F401
    except ImportError as exc:
        return f"{exc}"
    return None


def main(args: Any) -> list[dict[str, Any]]:
    missing = tune_available()
    if missing:
        return [common.row("2. same study: sweeplab vs Ray Tune vs Optuna", "not run", "", ">= 3x, faster", False,
                           f"install the comparison's extras first: pip install -c constraints.txt "
                           f"'ray[tune]' optuna-integration ({missing})")]
    systems = ["sweeplab", "ray_tune", "optuna"]
    reps = 1 if args.quick else int(os.environ.get("SWEEPLAB_BENCH_SYSTEM_REPS", "3"))
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for rep in range(reps):
        order = systems if rep % 2 == 0 else list(reversed(systems))
        for name in order:
            res = run_system(name, 42 + rep)
            common.log(f"systems rep {rep} (seed {42 + rep}) {name}: wall {res['wall']:.1f} s, "
                       f"best {res['best']:.4f}")
            results[name].append(res)
    wall = {s: common.median(r["wall"] for r in results[s]) for s in systems}
    best = {s: max(r["best"] for r in results[s]) for s in systems}
    best_med = {s: common.median(r["best"] for r in results[s]) for s in systems}
    vs_tune = wall["ray_tune"] / wall["sweeplab"]
    vs_optuna = wall["optuna"] / wall["sweeplab"]
    acc_ok = best_med["sweeplab"] >= min(best_med["ray_tune"], best_med["optuna"]) - 1e-9
    acc_ok_all = best_med["sweeplab"] >= max(best_med["ray_tune"], best_med["optuna"]) - 1e-9
    per = "; ".join(f"{s}: wall {wall[s]:.1f} s (runs " + ", ".join(f"{r['wall']:.1f}" for r in results[s])
                    + f"), best val_accuracy median {best_med[s]:.4f} (max {best[s]:.4f})" for s in systems)
    startup = [r.get("startup") for r in results["sweeplab"] if r.get("startup")]
    per += f"; sweeplab start-up to first trial {common.median(startup):.1f} s" if startup else ""
    return [
        common.row("2. sweeplab speed-up vs Ray Tune (same study, wall incl. start-up)", vs_tune, "x", ">= 3x",
                   vs_tune >= 3.0, per),
        common.row("2. sweeplab speed-up vs plain Optuna n_jobs=2", vs_optuna, "x", "> 1x", vs_optuna > 1.0, per),
        common.row("2. best val_accuracy: sweeplab / Ray Tune / Optuna",
                   f"{best_med['sweeplab']:.3f} / {best_med['ray_tune']:.3f} / {best_med['optuna']:.3f}", "",
                   "sweeplab same or better", acc_ok_all,
                   ("" if acc_ok_all else ("better than one, " if acc_ok else "")) + per),
    ]


if __name__ == "__main__":
    common.cli(main)

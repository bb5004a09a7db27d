"""The CNN family on the digits images: one study run by sweeplab, Ray Tune and plain Optuna.

``objective.model: cnn`` on scikit-learn's digits as 8x8x1 images (1077 train / 360
validation / 360 test), PyTorch, 20 trials, 2 at a time, 10 epochs (no pruning, no early
stopping), TPE seeded (multivariate, constant liar: sweeplab's defaults, given to the
other two as well), MLflow logging on, each system in its own fresh process whose wall
time (launch -> exit) includes its start-up:

- sweeplab: ``sweeplab run spec.yaml --json --no-model`` (``SPEC``; the end-of-study
  re-fit of the best model is skipped, the others have none);
- Ray Tune: ``cnn_tune.py`` (OptunaSearch + MLflowLoggerCallback, 2 concurrent trials);
- plain Optuna: ``cnn_optuna.py`` (``study.optimize(n_jobs=2)`` + MLflowCallback).

The other two train with ``cnn_loop.train``: the same data and split, the same space,
the same network (sweeplab's torch ``build_network`` of the same ``CNNPlan``) in a
straightforward loop. Each system's figure is its best trial by validation accuracy:
that trial's validation accuracy and its test accuracy (of the epoch with the lowest
validation loss, as sweeplab's objective returns them). Repetition ``i`` runs all three
with seed ``42 + i`` (split, sampler and training); repetitions alternate the order of the
systems, figures are medians over them. Not a test: ``make bench-cnn`` runs it and writes
``benchmarks/results/cnn_digits.json`` and ``.md``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import common

SPEC = """\
study: bench-cnn-digits
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
  model: cnn
  task: classification
  dataset: {name: digits}
  epochs: 10
  validation_split: 0.2
  test_split: 0.2
space:
  n_layers:      {type: int, low: 0, high: 2}
  units:         {type: int, low: 16, high: 128, log: true}
  n_blocks:      {type: int, low: 1, high: 3}
  filters:       [8, 16, 32]
  kernel_size:   [3, 5]
  pooling:       [max, avg]
  batch_norm:    [true, false]
  conv_dropout:  {type: float, low: 0.0, high: 0.3}
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  batch_size:    [32, 64, 128]
  optimizer:     [adam, sgd]
"""

SWEEPLAB = str(Path(sys.executable).with_name("sweeplab"))
SYSTEMS = ("sweeplab", "ray_tune", "optuna")
RESULT_NAME = "cnn_digits"


def _sweeplab_test_accuracy(work: Path, study: str) -> float:
    """The best trial's test accuracy, from the final metrics sweeplab recorded on it."""
    import optuna

    from sweeplab.core.keys import ATTR_METRICS

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    best = optuna.load_study(study_name=study, storage=f"sqlite:///{work / 'sweeplab.db'}").best_trial
    return float(best.user_attrs[ATTR_METRICS]["test_accuracy"])


def run_system(name: str, seed: int) -> dict[str, Any]:
    work = common.system_workdir("sweeplab-cnn-bench-")
    try:
        if name == "sweeplab":
            (work / "spec.yaml").write_text(SPEC.replace("seed: 42", f"seed: {seed}"))
            wall, out = common.run_json(
                [SWEEPLAB, "run", "spec.yaml", "--json", "--no-progress", "--no-model"], work, timeout=1800)
            return {"wall": wall, "best": out["best_value"], "test": _sweeplab_test_accuracy(work, out["study"]),
                    "trials": out["n_trials"], "failed": out["n_failed"]}
        script = common.BENCH_DIR / ("cnn_tune.py" if name == "ray_tune" else "cnn_optuna.py")
        wall, out = common.run_json([sys.executable, str(script), str(work), str(seed)], work, timeout=1800)
        return {"wall": wall, "best": out["best_value"], "test": out["test_accuracy"], "trials": out["n_trials"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(args: Any) -> list[dict[str, Any]]:
    import bench_systems

    missing = bench_systems.tune_available()
    if missing:
        return [common.row("cnn: same study, sweeplab vs Ray Tune vs Optuna", "not run", "", "", None,
                           f"install the comparison's extras first: pip install -c constraints.txt "
                           f"'ray[tune]' optuna-integration ({missing})")]
    reps = 1 if args.quick else int(os.environ.get("SWEEPLAB_BENCH_CNN_REPS", "1"))
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
    for rep in range(reps):
        order = SYSTEMS if rep % 2 == 0 else tuple(reversed(SYSTEMS))
        for name in order:
            res = run_system(name, 42 + rep)
            common.log(f"cnn rep {rep} (seed {42 + rep}) {name}: wall {res['wall']:.1f} s, "
                       f"best val_accuracy {res['best']:.4f}, its test_accuracy {res['test']:.4f}, "
                       f"{res['trials']} trials")
            results[name].append(res)
    wall = {s: common.median(r["wall"] for r in results[s]) for s in SYSTEMS}
    val = {s: common.median(r["best"] for r in results[s]) for s in SYSTEMS}
    test = {s: common.median(r["test"] for r in results[s]) for s in SYSTEMS}
    per = "; ".join(f"{s}: wall " + ", ".join(f"{r['wall']:.1f}" for r in results[s]) + " s, best val_accuracy "
                    + ", ".join(f"{r['best']:.4f}" for r in results[s]) + ", its test_accuracy "
                    + ", ".join(f"{r['test']:.4f}" for r in results[s]) for s in SYSTEMS)
    setup = f"{reps} repetition(s), seeds 42..{41 + reps}, medians; 20 trials, 2 workers, 10 epochs"
    return [
        common.row("cnn: wall s, sweeplab / Ray Tune / Optuna (incl. start-up)",
                   " / ".join(f"{wall[s]:.1f}" for s in SYSTEMS), "s", "", None, f"{setup}; {per}"),
        common.row("cnn: sweeplab speed-up vs Ray Tune", wall["ray_tune"] / wall["sweeplab"], "x", "", None),
        common.row("cnn: sweeplab speed-up vs plain Optuna n_jobs=2", wall["optuna"] / wall["sweeplab"], "x", "",
                   None),
        common.row("cnn: best trial's test accuracy, sweeplab / Ray Tune / Optuna",
                   " / ".join(f"{test[s]:.3f}" for s in SYSTEMS), "", "", None,
                   "the trial with the best validation accuracy (" + " / ".join(f"{val[s]:.3f}" for s in SYSTEMS)
                   + "); its test accuracy"),
    ]


def write_results(rows: list[dict[str, Any]], elapsed: float) -> None:
    """``benchmarks/results/cnn_digits.json`` and ``.md`` (run_all's latest.* stay those of ``make bench``)."""
    env = {"python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "load_average_at_end": round(os.getloadavg()[0], 2), "elapsed_s": round(elapsed, 1),
           "date": time.strftime("%Y-%m-%d %H:%M")}
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (common.RESULTS_DIR / f"{RESULT_NAME}.json").write_text(
        json.dumps({"environment": env, "rows": rows}, indent=2, default=str) + "\n")
    md = [f"`make bench-cnn` on {env['machine']}, {env['date']}, {elapsed / 60:.1f} min "
          f"(load average at the end {env['load_average_at_end']})", "", common.table(rows, markdown=True), "",
          "Details:", ""]
    md += [f"- **{r['figure']}**: {r['details']}" for r in rows if r.get("details")]
    (common.RESULTS_DIR / f"{RESULT_NAME}.md").write_text("\n".join(md) + "\n")


def _main_writing_results(args: Any) -> list[dict[str, Any]]:
    t = time.time()
    rows = main(args)
    if not args.out:  # run alone (make bench-cnn): keep the figures in results/
        write_results(rows, time.time() - t)
    return rows


if __name__ == "__main__":
    common.cli(_main_writing_results)

"""Validate the simulator: real studies against simulated ones, same spec and seeds (not a timed test).

For each cell of ``CELLS`` (random search without pruning, and what ``sampler: auto`` /
``pruner: auto`` resolve to) the same study spec runs twice:

- **real**: ``sweeplab``'s study on a local Ray (2 CPUs), the real PyTorch objective
  training the table's task (``digits``: the table's objective, 10 epochs) over the
  table's space (``mlp-grid``), MLflow and Optuna in SQLite files of a temporary folder,
  ``REAL_SEEDS`` seeds, two trials at a time (``workers: 2``, one CPU each);
- **simulated**: :func:`~sweeplab.search.simulated.simulate_study` of that spec on the
  shipped table, for the same seeds and more (``SIM_SEEDS``), so that its spread across
  seeds is known.

The data split is the table's in both: a study splits its dataset with its ``seed``, and the
table was recorded on the split of its ``data_seed``, which the simulator keeps for every
seed. So the real studies here load the dataset with the table's ``data_seed``
(:func:`table_split` wraps the driver's ``load_study_dataset``; nothing else changes):
otherwise seed 1 would validate on other rows than the table holds, and reach other values.

Both are measured with :mod:`sweeplab.bench.evidence` against the table's target (the top
3 % of its recorded trials): trials to target (in completion order, a study that never
reaches it counts as not reached) and the best value. A cell agrees when the real median
lies within the simulated seeds' interquartile range, for trials to target and for the
best value. A real trial's seed is not a recorded one (the table holds trial seeds 0 and
1; the simulator maps a trial's seed onto them), and real training on a busy machine
takes other times than recorded, so seed by seed the two differ; across seeds they
should not.

Writes ``benchmarks/results/sim_validation.md`` (and ``.json``). Run:
``make bench-sim-validate`` or ``nice python benchmarks/bench_sim_validate.py [--seeds N]``.
About 5 minutes of CPU (a 40-trial study took 12 minutes of wall time on a 2-core machine
loaded 15-fold by other work).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
TABLE = "digits"
TRIALS = 40
WORKERS = 2
REAL_SEEDS = 6  # what the README's table holds: 12 real studies, about 2 minutes on a quiet 2-core machine
SIM_SEEDS = 20
CELLS: dict[str, dict[str, Any]] = {
    "random / none": {"sampler": {"name": "random"}, "pruner": {"name": "none"}},
    "auto / auto": {"sampler": "auto", "pruner": "auto"},
}


def spec_of(label: str, seed: int, table: Any, metric: str, direction: str) -> Any:
    from sweeplab.spec import parse_spec

    slug = label.replace(" / ", "-")
    return parse_spec({"study": f"simval.{slug}.s{seed}", "metric": metric, "direction": direction,
                       "trials": TRIALS, "workers": WORKERS, "seed": seed, **CELLS[label],
                       "objective": dict(table.info.objective), "space": dict(table.info.space)})


def table_split(data_seed: int) -> None:
    """Make real studies of this process load their dataset split with ``data_seed`` (the table's)."""
    import dataclasses

    import sweeplab.study.session as session

    load = session.load_study_dataset

    def load_with_table_split(spec: Any, tracking_uri: str | None = None) -> Any:
        return load(dataclasses.replace(spec, seed=data_seed), tracking_uri)

    session.load_study_dataset = load_with_table_split


def real_cell(spec: Any, stores: dict[str, str], target: float) -> dict[str, Any]:
    """Run ``spec`` for real and measure it like a simulated cell."""
    import optuna

    from sweeplab.bench.results import cell_result
    from sweeplab.bench.spec import BenchCell
    from sweeplab.study.run import run_study
    from sweeplab.study.session import RunOptions

    t0 = time.perf_counter()
    run_study(spec, RunOptions(storage_url=stores["storage"], tracking_uri=stores["tracking"], progress=False,
                               package_best=False, allow_local_stores=True, fail_fast=0))
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=spec.study, storage=stores["storage"])
    cell = BenchCell(sampler=spec.sampler.name, pruner=spec.pruner.name, framework=spec.objective.framework,
                     seed=spec.seed, spec=spec)
    result = cell_result(cell, study)
    reach = result.to_target(target)
    return {"seed": spec.seed, "trials": reach["trials"], "epochs": reach["epochs"], "best": result.best_value,
            "total_epochs": result.total_epochs, "pruned": result.count("PRUNED"), "wall_s": round(wall, 1)}


def _read_log(path: str) -> dict[str, list[dict[str, Any]]]:
    """The real results printed by a run (``CELL seed N: real {...}``), by cell."""
    import ast

    out: dict[str, list[dict[str, Any]]] = {}
    for line in Path(path).read_text().splitlines():
        label, sep, rest = line.partition(" seed ")
        if sep and label in CELLS and ": real " in rest:
            out.setdefault(label, []).append(ast.literal_eval(rest.split(": real ", 1)[1]))
    return out


def _shown(values: list[Any]) -> str:
    return ", ".join("n/r" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in values)


def _fmt(v: float) -> str:
    import math

    return "not reached" if math.isinf(v) else f"{v:.4g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=REAL_SEEDS, help=f"real seeds per cell (default {REAL_SEEDS})")
    parser.add_argument("--real-log", help="reuse the real results in the stderr of a run stopped early (its "
                                           "`CELL seed N: real {...}` lines); run only the missing ones")
    parser.add_argument("--no-real", action="store_true", help="run no real study (with --real-log: report those)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for var in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE"):
        os.environ.pop(var, None)
    import warnings

    import optuna
    import ray

    from sweeplab.bench.evidence import run_cell, spread, table_target
    from sweeplab.bench.simulate import resolve_table
    from sweeplab.search.curves import read_table

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    table = read_table(resolve_table(TABLE))
    metric, direction = "val_accuracy", "maximize"
    target = table_target(table, metric, direction)
    table_split(table.info.data_seed)
    load_before = os.getloadavg()
    started = time.perf_counter()
    out: dict[str, Any] = {"table": TABLE, "target": target, "trials": TRIALS, "workers": WORKERS, "cells": {}}
    logged = _read_log(args.real_log) if args.real_log else {}
    real: dict[str, dict[int, dict[str, Any]]] = {label: {r["seed"]: r for r in logged.get(label, [])}
                                                  for label in CELLS}
    todo = [] if args.no_real else [(label, seed) for seed in range(args.seeds) for label in CELLS
                                    if seed not in real[label]]  # cells interleaved: a stopped run has both
    with tempfile.TemporaryDirectory(prefix="sweeplab-simval-") as tmp:
        stores = {"storage": f"sqlite:///{tmp}/optuna.db", "tracking": f"sqlite:///{tmp}/mlflow.db"}
        if todo:
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for label, seed in todo:
                r = real_cell(spec_of(label, seed, table, metric, direction), stores, target)
                print(f"{label} seed {seed}: real {r!r}", file=sys.stderr, flush=True)
                real[label][seed] = r
        finally:
            if todo:
                ray.shutdown()
    for label in CELLS:
        if not real[label]:
            continue
        sim = [{"seed": s, **run_cell(spec_of(label, s, table, metric, direction), table, target).to_dict()}
               for s in range(SIM_SEEDS)]
        resolved = spec_of(label, 0, table, metric, direction)
        out["cells"][label] = {"sampler": resolved.sampler.name, "pruner": resolved.pruner.name,
                               "real": [real[label][k] for k in sorted(real[label])], "sim": sim}
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    stamp = time.strftime("%Y-%m-%d %H:%M")
    out["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, {stamp} (load average {load_before[0]:.2f} -> "
                      f"{load_after[0]:.2f})")
    out["wall_s"] = round(wall, 1)
    real_wall = sum(float(r.get("wall_s", 0.0)) for c in out["cells"].values() for r in c["real"])
    real_seeds = "; ".join(f"{k}: seeds {', '.join(str(r['seed']) for r in c['real'])}"
                           for k, c in out["cells"].items())
    lines = ["# Simulator validation: real studies against simulated ones", "",
             f"`benchmarks/bench_sim_validate.py`, {out['machine']}, {wall:.0f} s of wall time; the real studies "
             f"took {real_wall:.0f} s in all (each one's `wall_s` in `sim_validation.json`; some reused from a run "
             f"stopped early, `--real-log`). Table `{TABLE}` "
             f"(target val_accuracy {target:.4g}: the top 3 % of its recorded trials), {TRIALS} trials, workers "
             f"{WORKERS}; real: {real_seeds} (Ray, PyTorch, MLflow), simulated: seeds 0-{SIM_SEEDS - 1}. "
             "Both on the table's data split (its `data_seed`). Agree: the real median lies within the simulated "
             "interquartile range.", "",
             "| cell | measure | real, per seed | real median | simulated, same seeds | simulated median (IQR; range), "
             f"{SIM_SEEDS} seeds | agree? |", "| --- | --- | --- | --- | --- | --- | --- |"]
    agreements: list[bool] = []
    ranges: list[bool] = []
    for label, c in out["cells"].items():
        for key, name in (("trials", "trials to target"), ("best", "best val_accuracy"),
                          ("total_epochs", "epochs trained")):
            real_v = [r[key] for r in c["real"]]
            sim_same = [c["sim"][r["seed"]][key] for r in c["real"]]
            rs, ss = spread(real_v), spread([s[key] for s in c["sim"]])
            ok = ss["q25"] <= rs["median"] <= ss["q75"]
            in_range = ss["min"] <= rs["median"] <= ss["max"]
            agreements.append(ok)
            ranges.append(in_range)
            c.setdefault("agree", {})[key] = ok
            lines.append(f"| {label} ({c['sampler']} / {c['pruner']}) | {name} | {_shown(real_v)} | "
                         f"{_fmt(rs['median'])} | {_shown(sim_same)} | {_fmt(ss['median'])} ({_fmt(ss['q25'])} - "
                         f"{_fmt(ss['q75'])}; range {_fmt(ss['min'])} - {_fmt(ss['max'])}) | {'yes' if ok else 'NO'}"
                         f"{'' if ok else (', within the range' if in_range else ', outside the range')} |")
    lines += ["", f"{sum(agreements)} of {len(agreements)} comparisons agree within the interquartile range, "
              f"{sum(ranges)} within the range of the simulated seeds. n/r: the study did not reach the target in "
              "its budget."]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sim_validation.md").write_text(text)
    (RESULTS / "sim_validation.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

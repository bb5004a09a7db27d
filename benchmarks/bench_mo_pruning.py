"""Multi-objective pruning on the simulator: compute saved vs hypervolume lost (not a timed test).

Two-objective studies (``val_accuracy`` up, ``val_loss`` down, both reported every epoch)
on every shipped classification table, replayed by the simulator
(:mod:`sweeplab.search.simulated`): the real coordinator, TPE sampler (multi-objective,
constant liar) and trial loop. Each study runs ``TRIALS`` trials with ``WORKERS`` in
flight, once without pruning and once with each setting of ``mo_successive_halving`` in
``VARIANTS`` (its defaults: rungs at epochs 1, 2, 4, 8, half promoted at each), for
``SEEDS`` seeds.

Per study: compute is the epochs trained and the simulated time; quality is the
hypervolume of the Pareto front of its COMPLETE trials, from the table's median point
(the median val_accuracy and the median val_loss its recorded configurations ended with:
only results better than a typical configuration count; from the worst point, the few
diverged runs' huge losses would make every front look alike) and given as a share of the
hypervolume of every configuration the table holds (the best front any search of this
space could find). Figures are medians over seeds, with the quartiles, of
the pruned study's value relative to the unpruned study of the same seed.

Writes ``benchmarks/results/mo_pruning.md`` and ``mo_pruning.json``. Run:
``python benchmarks/bench_mo_pruning.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
TABLES = ["breast_cancer", "digits", "make_classification", "wine"]
METRICS = ["val_accuracy", "val_loss"]
DIRECTIONS = ["maximize", "minimize"]
MAXIMIZE = (True, False)
SEEDS = 20
TRIALS = 40
WORKERS = 4
VARIANTS = {  # every option given, so the figures do not move with the defaults
    "reduction_factor 3 (rungs 1, 3, 9; keep 1/3)": {"name": "mo_successive_halving", "reduction_factor": 3},
    "reduction_factor 2, the default (rungs 1, 2, 4, 8; keep 1/2)": {"name": "mo_successive_halving",
                                                                     "reduction_factor": 2},
    "min_resource 3, reduction_factor 3 (rungs 3, 9; keep 1/3)": {"name": "mo_successive_halving",
                                                                  "min_resource": 3, "reduction_factor": 3},
    "min_resource 2, reduction_factor 2 (rungs 2, 4, 8; keep 1/2)": {"name": "mo_successive_halving",
                                                                     "min_resource": 2, "reduction_factor": 2},
}


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return q[0], statistics.median(values), q[2]


def table_front(table: Any) -> tuple[list[float], float]:
    """The table's reference point (its median final values) and the hypervolume of all its results."""
    from sweeplab.core.pareto import hypervolume_2d

    points = [[t.result[m] for m in METRICS] for t in table.trials if t.state == "COMPLETE"]
    reference = [statistics.median(p[0] for p in points), statistics.median(p[1] for p in points)]
    return reference, hypervolume_2d(points, MAXIMIZE, reference)


def one_study(table: Any, seed: int, pruner: dict[str, Any], reference: list[float]) -> dict[str, float]:
    import optuna

    from sweeplab.core.pareto import hypervolume_2d
    from sweeplab.search.simulated import simulate_study
    from sweeplab.spec import parse_spec

    spec = parse_spec({"study": f"mo-{table.info.name}-{seed}", "metric": METRICS, "direction": DIRECTIONS,
                       "trials": TRIALS, "workers": WORKERS, "seed": seed, "sampler": {"name": "tpe"},
                       "pruner": pruner, "objective": dict(table.info.objective), "space": dict(table.info.space)})
    sim = simulate_study(spec, table)
    complete = [t.values for t in sim.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {"epochs": float(sum(t.epochs for t in sim.times.values())), "simulated_s": sim.elapsed,
            "hypervolume": hypervolume_2d(complete, MAXIMIZE, reference),
            "pruned": float(sum(t.state == "PRUNED" for t in sim.times.values()))}


def bench_table(name: str, seeds: int) -> dict[str, Any]:
    from sweeplab.bench.simulate import resolve_table
    from sweeplab.search.curves import read_table

    table = read_table(resolve_table(name))
    reference, best = table_front(table)
    rows = []
    for seed in range(seeds):
        row = {"seed": seed, "none": one_study(table, seed, {"name": "none"}, reference)}
        for variant, pruner in VARIANTS.items():
            row[variant] = one_study(table, seed, pruner, reference)
        rows.append(row)

    def rel(variant: str, key: str) -> tuple[float, float, float]:
        return quartiles([r[variant][key] / r["none"][key] for r in rows])

    def share(which: str) -> tuple[float, float, float]:
        return quartiles([r[which]["hypervolume"] / best for r in rows])

    return {"table": name, "reference": reference, "table_hypervolume": best, "seeds": seeds,
            "hv_share_none": share("none"),
            "variants": {v: {"epochs_ratio": rel(v, "epochs"), "time_ratio": rel(v, "simulated_s"),
                             "hv_ratio": rel(v, "hypervolume"), "hv_share": share(v),
                             "pruned_trials": quartiles([r[v]["pruned"] for r in rows])} for v in VARIANTS},
            "rows": rows}


def shown(q: tuple[float, float, float], pct: bool = False) -> str:
    if pct:
        return f"{100 * q[1]:.1f} % ({100 * q[0]:.1f}-{100 * q[2]:.1f})"
    return f"{q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, nothing written (a smoke run)")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = 3 if args.quick else SEEDS
    started = time.perf_counter()
    load_before = os.getloadavg()
    results = [bench_table(name, seeds) for name in TABLES]
    wall = time.perf_counter() - started
    stamp = time.strftime("%Y-%m-%d %H:%M")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {stamp} (load average {load_before[0]:.2f})"
    lines = [
        "# Multi-objective pruning on the simulator: compute saved vs hypervolume", "",
        f"`benchmarks/bench_mo_pruning.py`: {len(TABLES)} shipped tables x {seeds} seeds, {TRIALS} trials, "
        f"{WORKERS} workers, TPE; objectives val_accuracy (max) and val_loss (min), both reported every epoch; "
        f"`mo_successive_halving` vs no pruning. {machine}; {wall:.0f} s of wall time.", "",
        "Medians over seeds (quartiles in brackets). Ratios: the pruned study over the unpruned study of the "
        "same seed. Hypervolume share: the hypervolume of the study's Pareto front (COMPLETE trials) over the "
        "hypervolume of every configuration the table recorded, from the table's median point (median "
        "val_accuracy, median val_loss of its configurations).", "",
        "| pruner | table | epochs trained (pruned / none) | simulated time (pruned / none) "
        "| hypervolume (pruned / none) | hypervolume share, none | hypervolume share, pruned | trials pruned of 40 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    summary = []
    for variant in VARIANTS:
        for r in results:
            v = r["variants"][variant]
            lines.append(f"| {variant} | {r['table']} | {shown(v['epochs_ratio'])} | {shown(v['time_ratio'])} | "
                         f"{shown(v['hv_ratio'])} | {shown(r['hv_share_none'], True)} | "
                         f"{shown(v['hv_share'], True)} | {v['pruned_trials'][1]:.0f} |")
        epochs = statistics.median([r["variants"][variant]["epochs_ratio"][1] for r in results])
        hv = statistics.median([r["variants"][variant]["hv_ratio"][1] for r in results])
        summary.append(f"- {variant}: **{epochs:.2f}x the epochs** ({1 / epochs:.1f}x less compute) for "
                       f"**{hv:.2f}x the hypervolume**")
    lines += ["", "Across tables (median of the tables' medians):", "", *summary]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "mo_pruning.md").write_text(text)
        (RESULTS / "mo_pruning.json").write_text(json.dumps({"machine": machine, "tables": results}, indent=2)
                                                 + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Simulated benchmarks: trials per second of wall time (not a timed test).

Every study here is a simulated one (:mod:`sweeplab.search.simulated`): the real
coordinator, sampler, pruner and trial loop on Optuna's in-memory storage, with each
trial's epochs and durations replayed from a shipped table (``digits``: the guide's MLP
space discretised to 384 configurations, 2 seeds, 10 epochs). Nothing trains and nothing
sleeps, so the wall time is the search's own cost: sampling, pruning decisions, tells.

1. A bench of ``samplers x pruners x SEEDS`` cells of ``TRIALS`` trials with ``WORKERS``
   trials in flight (the shape of issue 14's comparison): wall seconds and trials per
   second for all of it, per sampler, and the simulated time it stands for.
2. One long study per sampler (``LONG`` trials, 16 workers): trials per second over the
   whole study (TPE's cost per ask grows with the number of trials; random's does not).

Writes ``benchmarks/results/simulated.md`` and ``simulated.json``. Run:
``make bench-simulated`` or ``python benchmarks/bench_simulated.py [--quick]``.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
TABLE = "digits"
SAMPLERS = ["random", "tpe", "qmc"]
PRUNERS = [{"name": "none"}, {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 2},
           {"name": "hyperband"}]
SEEDS = 20
TRIALS = 40
WORKERS = 4
LONG = 2000


def bench_cells(quick: bool) -> dict[str, object]:
    from sweeplab.bench.simulate import resolve_table
    from sweeplab.bench.spec import parse_bench_spec
    from sweeplab.search.curves import read_table
    from sweeplab.search.simulated import simulate_study

    seeds = 4 if quick else SEEDS
    bench = parse_bench_spec({"bench": "throughput", "simulate": {"table": TABLE}, "metric": "val_accuracy",
                              "direction": "maximize", "trials": TRIALS, "workers": WORKERS,
                              "factors": {"samplers": SAMPLERS, "pruners": PRUNERS, "seeds": seeds}})
    table = read_table(resolve_table(TABLE))
    seconds = dict.fromkeys(SAMPLERS, 0.0)
    counts = dict.fromkeys(SAMPLERS, 0)
    simulated = 0.0
    started = time.perf_counter()
    for cell in bench.cells:
        t0 = time.perf_counter()
        sim = simulate_study(cell.spec, table)
        seconds[cell.sampler] += time.perf_counter() - t0
        counts[cell.sampler] += len(sim.times)
        simulated += sim.elapsed
    wall = time.perf_counter() - started
    trials = sum(counts.values())
    return {"cells": len(bench.cells), "seeds": seeds, "trials": trials, "wall_s": round(wall, 2),
            "trials_per_s": round(trials / wall, 1), "simulated_s": round(simulated, 1),
            "per_sampler": {s: {"trials": counts[s], "wall_s": round(seconds[s], 2),
                                "trials_per_s": round(counts[s] / seconds[s], 1)} for s in SAMPLERS}}


def long_study(sampler: str, trials: int) -> dict[str, object]:
    from sweeplab.bench.simulate import resolve_table
    from sweeplab.search.curves import read_table
    from sweeplab.search.simulated import simulate_study
    from sweeplab.spec import parse_spec

    table = read_table(resolve_table(TABLE))
    spec = parse_spec({"study": f"long-{sampler}", "metric": "val_accuracy", "direction": "maximize",
                       "trials": trials, "workers": 16, "sampler": {"name": sampler},
                       "pruner": {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 2},
                       "objective": dict(table.info.objective), "space": dict(table.info.space)})
    t0 = time.perf_counter()
    sim = simulate_study(spec, table)
    wall = time.perf_counter() - t0
    return {"sampler": sampler, "trials": len(sim.times), "wall_s": round(wall, 2),
            "trials_per_s": round(len(sim.times) / wall, 1), "simulated_s": round(sim.elapsed, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 seeds and 500-trial long studies (a smoke run)")
    args = parser.parse_args()
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # QMC is experimental
    load_before = os.getloadavg()
    cells = bench_cells(args.quick)
    longs = [long_study(s, 500 if args.quick else LONG) for s in ("random", "tpe")]
    load_after = os.getloadavg()
    stamp = time.strftime("%Y-%m-%d %H:%M")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {stamp} (load average {load_before[0]:.2f} -> " \
              f"{load_after[0]:.2f})"
    lines = ["# Simulated benchmarks: trials per second of wall time", "",
             f"`benchmarks/bench_simulated.py` on the shipped table `{TABLE}`; {machine}.", "",
             "| run | trials | wall s | trials / s | simulated s (sum over cells) |", "| --- | --- | --- | --- | --- |",
             f"| bench: {len(SAMPLERS)} samplers x {len(PRUNERS)} pruners x {cells['seeds']} seeds, "
             f"{TRIALS} trials, {WORKERS} workers | {cells['trials']} | {cells['wall_s']} | "
             f"**{cells['trials_per_s']}** | {cells['simulated_s']} |"]
    per = cells["per_sampler"]
    assert isinstance(per, dict)
    for s, v in per.items():
        lines.append(f"| bench, {s} cells only | {v['trials']} | {v['wall_s']} | {v['trials_per_s']} | |")
    for r in longs:
        lines.append(f"| one study, {r['sampler']}, median pruner, 16 workers | {r['trials']} | {r['wall_s']} | "
                     f"{r['trials_per_s']} | {r['simulated_s']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "simulated.md").write_text(text)
        (RESULTS / "simulated.json").write_text(json.dumps({"machine": machine, "bench": cells, "long": longs},
                                                           indent=2) + "\n")
    median = statistics.median([float(r["trials_per_s"]) for r in longs])  # type: ignore[arg-type]
    print(f"median trials/s over the long studies: {median:.0f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

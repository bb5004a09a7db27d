"""What ``deterministic: true`` costs in wall time (not a timed test).

1. Real studies on a local Ray: a function whose trials take uneven times (each epoch
   sleeps ``BASE * (0.25 + 1.5 x)`` seconds, times a random factor in [0.5, 1.5] drawn
   from the OS, so trials finish in a different order every run), ``TRIALS`` trials, TPE
   with the constant liar and the median pruner, with 2 and 4 workers, not deterministic,
   ``deterministic: true`` (lag = workers) and ``deterministic: {lag: 2 x workers}``,
   ``REPS`` times each, side by side. Wall time is the loop's (``sweeplab.run``
   end to end on a Ray already started). The deterministic study with 4 workers is also
   checked to give the same trials in every repetition.
2. Simulated studies on the shipped ``digits`` table (:mod:`sweeplab.search.simulated`):
   TPE, no pruner and the median pruner, 4 and 16 workers, ``SEEDS`` seeds, 40 trials,
   the same three modes: the simulated time deterministic over not (the same work, so the
   ratio is the idle time the rule adds), and the best val_accuracy each way.

Writes ``benchmarks/results/deterministic.md`` and ``deterministic.json``. Run:
``python benchmarks/bench_deterministic.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
TRIALS = 24
EPOCHS = 4
BASE = 0.25
REPS = 3
SEEDS = 20
PRUNER = {"name": "median", "n_startup_trials": 4, "n_warmup_steps": 1}


def uneven(trial: Any) -> dict[str, float]:
    """A 2-D bowl whose epochs take uneven, randomly jittered times (see the module docstring)."""
    x, y = float(trial.params["x"]), float(trial.params["y"])
    jitter = random.SystemRandom()
    score = 0.0
    for epoch in range(1, trial.epochs + 1):
        time.sleep(float(trial.options["base"]) * (0.25 + 1.5 * x) * jitter.uniform(0.5, 1.5))
        score = (1.0 - (x - 0.3) ** 2 - (y + 0.2) ** 2) * (1 - 0.5 ** epoch)
        trial.report(epoch, {"score": score})
    return {"score": score}


MODES = ("free", "lag = workers", "lag = 2 x workers")


def deterministic_key(mode: str, workers: int) -> Any:
    """The spec's ``deterministic`` for ``mode``."""
    return {"free": False, "lag = workers": True, "lag = 2 x workers": {"lag": 2 * workers}}[mode]


def real_study(name: str, workers: int, deterministic: Any, stores: dict[str, str]) -> tuple[float, list[Any]]:
    import optuna

    import sweeplab

    spec = {"study": name, "direction": "maximize", "metric": "score", "trials": TRIALS, "workers": workers,
            "resources": {"cpu": 0.5}, "seed": 5, "deterministic": deterministic,
            "sampler": {"name": "tpe", "n_startup_trials": 4}, "pruner": PRUNER,
            "objective": {"epochs": EPOCHS, "options": {"base": BASE}},
            "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}, "y": {"type": "float", "low": -1.0,
                                                                            "high": 1.0}}}
    started = time.perf_counter()
    sweeplab.run(spec, uneven, storage=stores["storage"], tracking_uri=stores["tracking"], progress=False,
                 log_model=False)
    wall = time.perf_counter() - started
    trials = optuna.load_study(study_name=name, storage=stores["storage"]).trials
    return wall, [(t.number, sorted(t.params.items()), t.state.name, t.values) for t in trials]


def real_part(reps: int) -> dict[str, Any]:
    import ray

    folder = Path(tempfile.mkdtemp(prefix="sweeplab-determ-bench-"))
    stores = {"storage": f"sqlite:///{folder / 'optuna.db'}", "tracking": f"sqlite:///{folder / 'mlflow.db'}"}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        real_study("warm-up", 2, False, stores)  # Ray workers, MLflow schema: paid once, outside the figures
        out: dict[str, Any] = {}
        for workers in (2, 4):
            walls: dict[str, list[float]] = {m: [] for m in MODES}
            outcomes: dict[str, list[Any]] = {m: [] for m in MODES}
            for rep in range(reps):
                for i, mode in enumerate(MODES):  # interleaved, so load drifts hit every mode alike
                    wall, trials = real_study(f"w{workers}-{i}-{rep}", workers, deterministic_key(mode, workers),
                                              stores)
                    walls[mode].append(wall)
                    outcomes[mode].append(trials)
            out[str(workers)] = {
                mode: {"wall_s": walls[mode],
                       "ratio_median": statistics.median(w / f for w, f in zip(walls[mode], walls["free"],
                                                                                strict=True)),
                       "identical": all(o == outcomes[mode][0] for o in outcomes[mode])}
                for mode in MODES}
        return out
    finally:
        ray.shutdown()


def simulated_part(seeds: int) -> dict[str, Any]:
    from sweeplab.bench.simulate import resolve_table
    from sweeplab.search.curves import read_table
    from sweeplab.search.simulated import simulate_study
    from sweeplab.spec import parse_spec

    table = read_table(resolve_table("digits"))
    out: dict[str, Any] = {}
    for pruner in ({"name": "none"}, PRUNER):
        for workers in (4, 16):
            ratios: dict[str, list[float]] = {m: [] for m in MODES}
            best: dict[str, list[float]] = {m: [] for m in MODES}
            for seed in range(seeds):
                elapsed = {}
                for mode in MODES:
                    spec = parse_spec({"study": "sim", "metric": "val_accuracy", "direction": "maximize",
                                       "trials": 40, "workers": workers, "seed": seed,
                                       "deterministic": deterministic_key(mode, workers),
                                       "sampler": {"name": "tpe"}, "pruner": pruner,
                                       "objective": dict(table.info.objective), "space": dict(table.info.space)})
                    sim = simulate_study(spec, table)
                    elapsed[mode] = sim.elapsed
                    best[mode].append(sim.study.best_value)
                for mode in MODES:
                    ratios[mode].append(elapsed[mode] / elapsed["free"])
            for mode in MODES:
                q = statistics.quantiles(ratios[mode], n=4, method="inclusive")
                out[f"{pruner['name']}-{workers}-{mode}"] = {
                    "pruner": pruner["name"], "workers": workers, "mode": mode,
                    "ratio": [q[0], statistics.median(ratios[mode]), q[2]], "best": statistics.median(best[mode])}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition, 3 seeds, nothing written")
    parser.add_argument("--simulated-only", action="store_true", help="skip the real studies")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load = os.getloadavg()[0]
    sim = simulated_part(3 if args.quick else SEEDS)
    real = {} if args.simulated_only else real_part(1 if args.quick else REPS)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {stamp} (load average {load:.2f} at the start)"
    lines = ["# What `deterministic: true` costs", "", f"`benchmarks/bench_deterministic.py`; {machine}.", ""]
    if real:
        lines += [f"Real studies on a local Ray: {TRIALS} trials of {EPOCHS} epochs whose durations vary 12x with "
                  "the params and +-50 % at random, TPE (constant liar), median pruner; wall seconds of "
                  f"`sweeplab.run`, {REPS if not args.quick else 1} repetitions each, interleaved. On a shared, "
                  "loaded machine the same study's wall time varies several-fold from run to run: read the "
                  "ratios loosely, and the identical runs strictly.", "",
                  "| workers | mode | wall s | wall / not deterministic (median) | runs identical |",
                  "| --- | --- | --- | --- | --- |"]
        for workers, modes in real.items():
            for mode, r in modes.items():
                same = "-" if mode == "free" else ("yes" if r["identical"] else "NO")
                lines.append(f"| {workers} | {mode} | {', '.join(f'{w:.1f}' for w in r['wall_s'])} | "
                             f"**{r['ratio_median']:.2f}x** | {same} |")
        lines.append("")
    lines += [f"Simulated studies on the `digits` table: 40 trials, TPE, {3 if args.quick else SEEDS} seeds; "
              "simulated time over the same seed's study without `deterministic`, median (quartiles), and the "
              "median best val_accuracy.", "",
              "| pruner | workers | mode | simulated time / not deterministic | best val_accuracy |",
              "| --- | --- | --- | --- | --- |"]
    for r in sim.values():
        q = r["ratio"]
        lines.append(f"| {r['pruner']} | {r['workers']} | {r['mode']} | **{q[1]:.2f}x** ({q[0]:.2f}-{q[2]:.2f}) | "
                     f"{r['best']:.4f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "deterministic.md").write_text(text)
        (RESULTS / "deterministic.json").write_text(json.dumps({"machine": machine, "real": real,
                                                                "simulated": sim}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

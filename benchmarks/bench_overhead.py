"""Figure 1: orchestration overhead of a study with a fixed-cost objective.

40 trials on 2 workers; each trial sleeps 0.5 s split over 5 epochs and reports every
epoch (pruning decision through the coordinator), with full MLflow logging. Figure:
wall time after start-up (first trial's start -> last trial's record in the driver)
divided by the ideal wall time (sum of the trials' own times / workers). Median of
several studies run one after another on one local Ray.
"""

from __future__ import annotations

import time
from typing import Any

import common

TRIALS, WORKERS, SECONDS, EPOCHS = 40, 2, 0.5, 5


def fixed_cost_spec(name: str, trials: int = TRIALS, workers: int = WORKERS, sampler: str = "tpe") -> Any:
    from sweeplab.spec import parse_spec

    return parse_spec({
        "study": name,
        "direction": "maximize",
        "metric": "score",
        "trials": trials,
        "workers": workers,
        "seed": 1,
        "sampler": {"name": sampler},
        "pruner": {"name": "median", "n_startup_trials": 1000},  # decides every epoch, never prunes
        "objective": {"framework": "python", "callable": "bench_objectives:fixed_cost", "epochs": EPOCHS,
                      "options": {"seconds": SECONDS}},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    })


def run_once(i: int) -> dict[str, float]:
    import baseline

    from sweeplab.study import run_study

    stores = common.fresh_stores()
    records: list[tuple[float, Any]] = []
    spec = fixed_cost_spec(f"overhead-{i}")
    t0 = time.time()
    summary = run_study(spec, baseline.run_options(storage_url=stores["storage"], tracking_uri=stores["tracking"],
                                                   progress=False, package_best=False,
                                                   on_record=lambda r: records.append((time.time(), r))))
    t_return = time.time()
    assert summary.n_complete == TRIALS, summary
    first_start = min(r.metrics["t_start"] for _, r in records)
    last_record = max(t for t, _ in records)
    work = sum(r.metrics["t_end"] - r.metrics["t_start"] for _, r in records)
    wall = last_record - first_start
    return {
        "ratio": wall / (work / WORKERS),
        "ratio_ideal": wall / (TRIALS * SECONDS / WORKERS),
        "wall": wall,
        "work": work,
        "startup": first_start - t0,
        "teardown": t_return - last_record,
        "mlflow_requests": summary.run.mlflow_requests if summary.run else 0,
    }


def main(args: Any) -> list[dict[str, Any]]:
    common.quiet_logs()
    common.init_ray(2)
    runs = []
    for i in range(args.studies or (2 if args.quick else 3)):
        res = run_once(i)
        common.log(f"overhead run {i}: ratio {res['ratio']:.3f} wall {res['wall']:.2f}s work {res['work']:.2f}s")
        runs.append(res)
    ratio = common.median(r["ratio"] for r in runs)
    details = (f"median of {len(runs)} studies: wall after start-up {common.median(r['wall'] for r in runs):.2f} s, "
               f"trial time sum {common.median(r['work'] for r in runs):.2f} s / {WORKERS} workers; "
               f"vs pure sleep ({TRIALS}x{SECONDS}s/{WORKERS}) {common.median(r['ratio_ideal'] for r in runs):.3f}; "
               f"start-up {common.median(r['startup'] for r in runs):.2f} s, "
               f"teardown {common.median(r['teardown'] for r in runs):.2f} s; all ratios "
               + ", ".join(f"{r['ratio']:.3f}" for r in runs))
    return [common.row("1. orchestration overhead (40x0.5 s trials, 2 workers)", ratio, "x", "<= 1.10",
                       ratio <= 1.10, details)]


if __name__ == "__main__":
    common.cli(main, lambda p: p.add_argument("--studies", type=int, default=0))

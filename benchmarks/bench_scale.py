"""Figure 6: scale. 1,000 no-op trials on 2 workers with the default stores (SQLite
Optuna storage, SQLite MLflow tracking), MLflow logging on.

The sampler is ``random`` so that the figure measures sweeplab (storage, dispatch,
tracking) rather than TPE's own cost, which grows with the history by design and is
measured in figure 3. Figures: trials per second (first trial's start -> last record;
and up to ``run_study``'s return, which includes draining the MLflow queue), and the
per-trial cost at trial ~1,000 over the cost at trial ~100 (median interval between
consecutive finished trials in a window of 100 trials around each).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import common


def main(args: Any) -> list[dict[str, Any]]:
    import baseline

    from sweeplab.spec import parse_spec
    from sweeplab.study import run_study

    common.quiet_logs()
    common.init_ray(2)
    n = 300 if args.quick else 1000
    stores = common.fresh_stores()
    spec = parse_spec({
        "study": "scale", "direction": "maximize", "metric": "score", "trials": n, "workers": 2, "seed": 5,
        "sampler": {"name": "random"}, "pruner": {"name": "none"},
        "objective": {"framework": "python", "callable": "bench_objectives:noop", "epochs": 1},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    })
    stamps: list[float] = []
    starts: list[float] = []

    def on_record(record: Any) -> None:
        stamps.append(time.time())
        if "t_start" in record.metrics:
            starts.append(record.metrics["t_start"])
        if len(stamps) % 100 == 0:
            common.log(f"scale: {len(stamps)} trials")

    t0 = time.time()
    summary = run_study(spec, baseline.run_options(storage_url=stores["storage"], tracking_uri=stores["tracking"],
                                                   progress=False, package_best=False, on_record=on_record))
    t_end = time.time()
    assert summary.n_trials == n, summary
    first = min(starts)
    loop_rate = (n - 1) / (stamps[-1] - first)
    total_rate = n / (t_end - first)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    early = common.median(gaps[50:150])
    late = common.median(gaps[-100:])
    growth = late / early
    details = (f"{n} trials (random sampler, no-op objective): loop {stamps[-1] - first:.1f} s, "
               f"drain + end of study {t_end - stamps[-1]:.1f} s, start-up {first - t0:.1f} s; per-trial interval "
               f"{early * 1000:.1f} ms at trial ~100 -> {late * 1000:.1f} ms at trial ~{n}; "
               f"MLflow writer ops {summary.run.mlflow_requests if summary.run else None}")
    return [
        common.row(f"6. throughput, {n} no-op trials on 2 workers (SQLite stores)", loop_rate, "trials/s", "", None,
                   details + f"; including the MLflow drain: {total_rate:.1f} trials/s"),
        common.row(f"6. per-trial cost growth, trial 100 -> {n}", growth, "x", "", None, details),
    ]


if __name__ == "__main__":
    common.cli(main)

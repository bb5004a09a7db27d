"""Does the chosen model hold on unseen rows? The champion against the best trial and baselines.

For each bundled dataset (wine, breast_cancer, digits, iris) and split seed, one torch MLP
study (``--trials`` trials, TPE, a test part of ``test_split`` rows that the study never
sees), then ``sweeplab.promote(..., refit=True, baselines=True)``. Per study it records:

- the best trial's validation value and its held-out test accuracy (its own
  ``test_accuracy``: the model trained on the training rows, scored on the test rows);
- the champion's held-out accuracy (re-seeded top-k, refit on train + validation);
- the scikit-learn baselines' accuracy on the same test rows (fitted on train + validation);
- the optimism gap before (best trial's validation - its held-out accuracy) and after
  (the promotion's estimate: cross-validated or re-seeded mean - the champion's held-out).

Writes ``benchmarks/results/selection.md`` and ``selection.json``. The targets (issue 15):
the champion within 1 point of the best baseline on each dataset (mean over split seeds),
and the median optimism gap after under 2 points. Real Ray, real MLflow (SQLite under a
temporary folder), 2 workers. Usage::

    python benchmarks/bench_selection.py                 # the full measurement (~15 min on 2 cores)
    python benchmarks/bench_selection.py --datasets iris --seeds 1 --trials 4   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS_DIR, setup_env

DATASETS = ("wine", "breast_cancer", "digits", "iris")


def study_spec(dataset: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The study of one dataset and split seed: a small MLP space, early stopping, a test part."""
    objective: dict[str, Any] = {
        "framework": "torch", "task": "classification", "dataset": {"name": dataset}, "epochs": args.epochs,
        "validation_split": 0.2, "test_split": 0.2, "early_stopping": {"patience": 8},
    }
    if args.kfold:  # the folds cut the rows left after the test part: no validation_split
        objective["validation"] = {"kfold": args.kfold}
        del objective["validation_split"]
    return {
        "study": f"select-{dataset}-s{seed}", "direction": "maximize", "metric": "val_accuracy",
        "trials": args.trials, "workers": 2, "seed": seed, "sampler": {"name": "tpe"},
        "pruner": {"name": "median", "n_warmup_steps": 5},
        "objective": objective,
        "space": {
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "units": {"type": "int", "low": 16, "high": 128, "log": True},
            "dropout": {"type": "float", "low": 0.0, "high": 0.3},
            "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
            "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
            "optimizer": {"type": "categorical", "choices": ["adam", "rmsprop"]},
        },
    }


def one_study(dataset: str, seed: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Run and promote one study; return its row of figures (accuracies as fractions)."""
    import sweeplab

    stores = {"storage": f"sqlite:///{folder / 'optuna.db'}", "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"}
    spec = study_spec(dataset, seed, args)
    start = time.time()
    summary = sweeplab.run(spec, progress=False, log_model=False, **stores)
    promotion = sweeplab.promote(spec["study"], f"{dataset}-s{seed}", top_k=args.top_k, seeds=args.promote_seeds,
                                 refit=True, baselines=True, **stores)
    e = promotion.estimate
    assert e is not None and e.heldout_value is not None
    best_test = (summary.best_metrics or {})["test_accuracy"]
    baselines = {b.name: b.value for b in promotion.baselines}
    return {
        "dataset": dataset, "seed": seed, "n_complete": summary.n_complete, "best_trial": summary.best_trial,
        "best_val": summary.best_value, "best_trial_test": best_test, "winner": e.trial,
        "champion_test": e.heldout_value, "estimate": e.cv_mean if e.cv_mean is not None else e.reseeded_mean,
        "estimate_kind": "cv" if e.cv_mean is not None else "reseeded",
        "gap_before": summary.best_value - best_test, "gap_after": e.estimate_gap,
        "refit_rows": promotion.refit.n_rows if promotion.refit else None,
        "refit_epochs": promotion.refit.epochs if promotion.refit else None,
        "test_rows": e.heldout_rows, "baselines": baselines, "best_baseline": max(baselines.values()),
        "seconds": round(time.time() - start, 1),
    }


def pts(x: float) -> str:
    return f"{100 * x:+.1f}" if x < 0 or x > 0 else "0.0"


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def write_report(rows: list[dict[str, Any]], args: argparse.Namespace, elapsed: float) -> tuple[str, bool]:
    """The Markdown report (per dataset: means over split seeds) and whether both targets were met."""
    names = sorted({n for r in rows for n in r["baselines"]})
    lines = [
        "# Selection that holds on unseen data (benchmarks/bench_selection.py)",
        "",
        f"torch MLP, {args.trials} trials per study (TPE, median pruner, early stopping), {args.epochs} epochs max, "
        f"2 workers; split seeds {list(range(args.seeds))}; {'' if args.kfold else 'validation 20 %, '}test 20 % "
        f"(never seen by the search "
        f"or the refit); promote: top {args.top_k} x {args.promote_seeds} seeds, refit on train + validation"
        + (f"; {args.kfold}-fold cross-validation per trial" if args.kfold else "")
        + f". Wall time {elapsed / 60:.1f} min.",
        "",
        "Held-out accuracy (%), mean over split seeds:",
        "",
        "| dataset | test rows | best trial | champion | " + " | ".join(names)
        + " | champion - best baseline (pts) | gap before (pts, median) | gap after (pts, median) |",
        "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: | ---: |",
    ]
    met_baseline = True
    for d in [d for d in DATASETS if any(r["dataset"] == d for r in rows)]:
        rs = [r for r in rows if r["dataset"] == d]

        def mean(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.fmean(r[key] for r in rs)

        base = {n: statistics.fmean(r["baselines"][n] for r in rs) for n in names}
        margin = mean("champion_test") - max(base.values())
        met_baseline &= margin >= -0.01
        lines.append(
            f"| {d} | {rs[0]['test_rows']} | {pct(mean('best_trial_test'))} | {pct(mean('champion_test'))} | "
            + " | ".join(pct(base[n]) for n in names)
            + f" | {pts(margin)} | {pts(statistics.median(r['gap_before'] for r in rs))} | "
            f"{pts(statistics.median(r['gap_after'] for r in rs))} |")
    before = statistics.median(r["gap_before"] for r in rows)
    after = statistics.median(r["gap_after"] for r in rows)
    met_gap = after < 0.02
    kind = "cross-validated" if all(r["estimate_kind"] == "cv" for r in rows) else "re-seeded"
    lines += [
        "",
        f"Median optimism gap over all {len(rows)} studies: before {pts(before)} pts (best trial's validation "
        f"accuracy - its held-out accuracy), after {pts(after)} pts ({kind} estimate - champion's held-out accuracy).",
        "",
        f"Targets: champion within 1 point of the best baseline on every dataset: "
        f"**{'met' if met_baseline else 'not met'}**; median optimism gap after under 2 points: "
        f"**{'met' if met_gap else 'not met'}**.",
        "",
        "Per study:",
        "",
        "| dataset | seed | best trial (val / test) | winner | estimate | champion test | best baseline | refit |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['best_trial']}: {pct(r['best_val'])} / "
                     f"{pct(r['best_trial_test'])} | {r['winner']} | {pct(r['estimate'])} | "
                     f"{pct(r['champion_test'])} | "
                     f"{pct(r['best_baseline'])} | {r['refit_rows']} rows, {r['refit_epochs']} epochs |")
    return "\n".join(lines) + "\n", met_baseline and met_gap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", type=int, default=3, help="split seeds 0..N-1 (default 3)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--promote-seeds", type=int, default=2)
    parser.add_argument("--kfold", type=int, default=0, help="objective.validation: {kfold: K} (0: a validation split)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "selection.md"), help="Markdown report to write")
    args = parser.parse_args(argv)
    setup_env()
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    rows = []
    start = time.time()
    try:
        with tempfile.TemporaryDirectory(prefix="sweeplab-selection-") as tmp:
            for dataset in args.datasets:
                for seed in range(args.seeds):
                    row = one_study(dataset, seed, args, Path(tmp))
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
    report, met = write_report(rows, args, time.time() - start)
    out = Path(args.out)
    out.write_text(report, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2), encoding="utf-8")
    print(report)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

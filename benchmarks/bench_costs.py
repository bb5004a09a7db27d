"""Figure 3: what one trial costs besides its own work.

a) Sampler + storage: a harness drives :class:`StudyCoordinator` directly (in process,
   the default SQLite storage) through 200 trials of the guide's MLP space with TPE
   (sweeplab's settings: multivariate, constant_liar) and the seed example's median
   pruner, 20 reported epochs per trial (values from a learning-curve surrogate, so TPE
   and the pruner see a real signal). ask + every report + tell of trials 181-200,
   divided by the median time of the real objective (the guide's PyTorch MLP, 20
   epochs, on the seed's data, measured here on a few sampled configs).
b) A real study (Ray, 2 workers, MLflow on; no-op objective reporting 5 epochs,
   40 trials): MLflow requests per trial and their time (the writer's real requests,
   counted per child run), dispatch latency (driver submits -> objective starts).
c) Import cost paid once per worker: a fresh process importing what a worker needs for
   a torch trial, and the number of distinct worker processes that ran a torch study.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import common

from sweeplab.spaces.catalog import load_builtin

MLP_SPACE = load_builtin("mlp")  # the guide's space (DESIGN.md's default), as the seed example spells it out
SEED_DATASET = {"name": "make_classification", "n_samples": 1000, "n_features": 20, "n_classes": 3,
                "n_informative": 5}


def mlp_spec_dict(name: str, trials: int, epochs: int = 20, workers: int = 2, pruner: dict | None = None,
                  sampler: dict | None = None, seed: int = 42) -> dict[str, Any]:
    return {
        "study": name,
        "direction": "maximize",
        "metric": "val_accuracy",
        "trials": trials,
        "workers": workers,
        "seed": seed,
        "sampler": sampler or {"name": "tpe"},
        "pruner": pruner or {"name": "median", "n_warmup_steps": 5},
        "objective": {"framework": "torch", "task": "classification", "dataset": dict(SEED_DATASET),
                      "epochs": epochs, "validation_split": 0.2},
        "space": dict(MLP_SPACE),
    }


def surrogate_curve(params: dict[str, Any], epoch: int, rng: random.Random) -> float:
    """A plausible validation-accuracy curve: best near lr 1e-2, adam, 2-3 layers of ~64 units."""
    lr = float(params["learning_rate"])
    quality = 0.9 - 0.08 * abs(math.log10(lr) + 2.0) - 0.03 * abs(int(params["n_layers"]) - 2.5)
    quality -= 0.02 * abs(math.log2(int(params["units"])) - 6) + 0.1 * float(params["dropout"]) ** 2
    quality += {"adam": 0.02, "rmsprop": 0.01, "sgd": -0.02, "adagrad": -0.03}[params["optimizer"]]
    return max(0.3, quality) * (1 - math.exp(-epoch / 4)) + rng.uniform(-0.01, 0.01)


def coordinator_costs(n_trials: int, epochs: int = 20) -> dict[str, Any]:
    import baseline

    from sweeplab.core.records import COMPLETE, PRUNED, TrialOutcome
    from sweeplab.search.coordinator import StudyCoordinator

    stores = common.fresh_stores()
    coord = StudyCoordinator(mlp_spec_dict("costs", n_trials, epochs), stores["storage"], 60.0,
                             storage_options=baseline.storage_options())
    rng = random.Random(0)
    rows = []
    for n in range(n_trials):
        t = time.perf_counter()
        ticket = coord.ask()
        t_ask = time.perf_counter() - t
        t_report = 0.0
        n_reports = 0
        pruned = None
        value = 0.0
        for epoch in range(1, epochs + 1):
            value = surrogate_curve(ticket.raw_params, epoch, rng)
            metrics = {"val_accuracy": value, "val_loss": 1 - value, "loss": 1 - value, "accuracy": value, "lr": 0.01}
            t = time.perf_counter()
            stop = coord.report(ticket.number, epoch, metrics)
            t_report += time.perf_counter() - t
            n_reports += 1
            if stop:
                pruned = epoch
                break
        outcome = (TrialOutcome(ticket.number, PRUNED, {}, pruned_epoch=pruned) if pruned
                   else TrialOutcome(ticket.number, COMPLETE, {"val_accuracy": value}))
        t = time.perf_counter()
        coord.tell(outcome, f"run-{n}")
        t_tell = time.perf_counter() - t
        rows.append({"ask": t_ask, "report": t_report, "reports": n_reports, "tell": t_tell})
    return {"rows": rows}


def in_memory_costs(n_trials: int, epochs: int = 20) -> dict[str, Any]:
    """The same trials with Optuna alone (in-memory storage, same sampler and pruner): the
    sampler's and pruner's own cost, i.e. the floor under what the coordinator adds."""
    import optuna

    from sweeplab.search.samplers import build_pruner, build_sampler
    from sweeplab.spec import parse_spec

    spec = parse_spec(mlp_spec_dict("floor", n_trials, epochs))
    study = optuna.create_study(direction="maximize", sampler=build_sampler(spec), pruner=build_pruner(spec))
    rng = random.Random(0)
    rows = []
    for _ in range(n_trials):
        t = time.perf_counter()
        trial = study.ask()
        params = spec.space.suggest(trial)
        t_ask = time.perf_counter() - t
        t_report, pruned, value = 0.0, False, 0.0
        for epoch in range(1, epochs + 1):
            value = surrogate_curve(params, epoch, rng)
            t = time.perf_counter()
            trial.report(value, epoch)
            pruned = trial.should_prune()
            t_report += time.perf_counter() - t
            if pruned:
                break
        t = time.perf_counter()
        study.tell(trial, state=optuna.trial.TrialState.PRUNED) if pruned else study.tell(trial, value)
        rows.append({"ask": t_ask, "report": t_report, "tell": time.perf_counter() - t})
    return {"rows": rows}


def mlp_trial_seconds(n_configs: int, epochs: int = 20) -> list[float]:
    """Time the guide's torch MLP objective (1 thread) on the seed's data for sampled configs."""
    import optuna

    from sweeplab.objectives.base import NullReporter, TrialContext
    from sweeplab.objectives.torch_mlp import TorchMLPObjective
    from sweeplab.spec import parse_spec
    from sweeplab.study.run import load_study_dataset

    spec = parse_spec(mlp_spec_dict("mlp-time", n_configs, epochs))
    dataset = load_study_dataset(spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3), direction="maximize")
    objective = TorchMLPObjective()
    times = []
    for i in range(n_configs):
        trial = study.ask()
        params = spec.space.resolve(spec.space.suggest(trial))
        ctx = TrialContext(params=params, dataset=dataset, seed=i, reporter=NullReporter(), settings=spec.objective,
                           cpus=1.0)
        t = time.perf_counter()
        objective.run(ctx)
        times.append(time.perf_counter() - t)
        study.tell(trial, 0.0)
    return times


class _RunTracker:
    """Per-run request counts: wraps the MlflowClient methods with the run id they touch."""

    def __init__(self) -> None:
        self.by_run: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.lock = threading.Lock()
        self.saved: dict[str, Any] = {}

    def __enter__(self) -> _RunTracker:
        from mlflow.tracking import MlflowClient

        for name in ("create_run", "log_batch", "set_terminated", "update_run", "log_artifacts"):
            original = getattr(MlflowClient, name)
            self.saved[name] = original

            def wrapper(client: Any, *args: Any, __name: str = name, __orig: Any = original, **kw: Any) -> Any:
                t = time.perf_counter()
                out = __orig(client, *args, **kw)
                dt = time.perf_counter() - t
                run_id = out.info.run_id if __name == "create_run" else (args[0] if args else kw.get("run_id"))
                with self.lock:
                    self.by_run[run_id] = self.by_run.get(run_id, 0) + 1
                    self.seconds[run_id] = self.seconds.get(run_id, 0.0) + dt
                return out

            setattr(MlflowClient, name, wrapper)
        return self

    def __exit__(self, *exc: Any) -> None:
        from mlflow.tracking import MlflowClient

        for name, original in self.saved.items():
            setattr(MlflowClient, name, original)


def real_study_costs(trials: int = 40) -> dict[str, Any]:
    import baseline
    from harness import SubmitClock

    from sweeplab.spec import parse_spec
    from sweeplab.study import run_study

    stores = common.fresh_stores()
    spec = parse_spec({
        "study": "costs-real", "direction": "maximize", "metric": "score", "trials": trials, "workers": 2,
        "seed": 3, "sampler": {"name": "tpe"}, "pruner": {"name": "median", "n_startup_trials": 1000},
        "objective": {"framework": "python", "callable": "bench_objectives:noop", "epochs": 5},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    })
    records: list[Any] = []
    with SubmitClock() as clock, _RunTracker() as runs:
        summary = run_study(spec, baseline.run_options(storage_url=stores["storage"], tracking_uri=stores["tracking"],
                                                       progress=False, package_best=False, on_record=records.append))
    parent = summary.mlflow_parent_run_id
    child = {k: v for k, v in runs.by_run.items() if k != parent}
    latency = [r.metrics["t_start"] - clock.submitted[r.number] for r in records if r.number in clock.submitted]
    return {
        "requests_per_trial": sum(child.values()) / max(1, len(child)),
        "seconds_per_trial": sum(runs.seconds[k] for k in child) / max(1, len(child)),
        "n_child_runs": len(child),
        "writer_ops": summary.run.mlflow_requests if summary.run else None,
        "dispatch_latency": latency,
        "startup_s": summary.run.startup_s if summary.run else None,
    }


IMPORT_PROBE = r"""
import time, json
t0 = time.perf_counter()
import sweeplab.search.worker  # what every trial's task needs
t1 = time.perf_counter()
import torch  # noqa
from sweeplab.objectives.torch_mlp import TorchMLPObjective  # noqa
t2 = time.perf_counter()
print(json.dumps({"worker_module": t1 - t0, "torch_objective": t2 - t1}))
"""


def import_costs(runs: int) -> dict[str, float]:
    import json

    out: list[dict[str, float]] = []
    for _ in range(runs):
        res = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True,
                             env=dict(os.environ))
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return {k: common.median(o[k] for o in out) for k in out[0]}


def torch_study_workers(trials: int = 8) -> dict[str, Any]:
    import baseline

    from sweeplab.spec import parse_spec
    from sweeplab.study import run_study

    stores = common.fresh_stores()
    spec = parse_spec(mlp_spec_dict("costs-torch", trials, epochs=2, pruner={"name": "none"}))
    records: list[Any] = []
    run_study(spec, baseline.run_options(storage_url=stores["storage"], tracking_uri=stores["tracking"], progress=False,
                                         package_best=False, on_record=records.append))
    pids = {r.node.rsplit("pid=", 1)[-1] for r in records}
    return {"trials": len(records), "worker_pids": len(pids)}


def main(args: Any) -> list[dict[str, Any]]:
    common.quiet_logs()
    n_trials = args.harness or (100 if args.quick else 200)
    common.log(f"coordinator harness: {n_trials} TPE trials x 20 epochs")
    coord = coordinator_costs(n_trials)
    tail = coord["rows"][-20:]
    head = coord["rows"][:20]

    def per_trial(rows: list[dict[str, float]]) -> float:
        return common.median(r["ask"] + r["report"] + r["tell"] for r in rows)

    if args.harness:
        return [common.row(f"ask+report+tell per trial at {n_trials} trials", per_trial(tail) * 1000, "ms", "", None,
                           f"ask {common.median(r['ask'] for r in tail) * 1000:.1f} ms, reports "
                           f"{common.median(r['report'] for r in tail) * 1000:.1f} ms, tell "
                           f"{common.median(r['tell'] for r in tail) * 1000:.1f} ms")]

    cost_tail = per_trial(tail)
    floor_tail = in_memory_costs(n_trials)["rows"][-20:]
    common.log("timing the real objective")
    obj_times = mlp_trial_seconds(4 if args.quick else 12)
    obj = common.median(obj_times)
    share = cost_tail / obj
    rep_each = [r["report"] / r["reports"] for r in tail]
    details_a = (f"trials {n_trials - 19}-{n_trials}: ask {common.median(r['ask'] for r in tail) * 1000:.1f} ms, "
                 f"reports {common.median(r['report'] for r in tail) * 1000:.1f} ms/trial "
                 f"({common.median(rep_each) * 1000:.2f} ms each, {common.median(r['reports'] for r in tail):.0f}"
                 f" per trial), tell {common.median(r['tell'] for r in tail) * 1000:.1f} ms; trials 1-20: "
                 f"{per_trial(head) * 1000:.0f} ms/trial; objective (torch MLP, 20 epochs) median {obj:.2f} s over "
                 f"{len(obj_times)} random configs; the same trials with Optuna alone (in-memory storage, same "
                 f"sampler and pruner): {per_trial(floor_tail) * 1000:.1f} ms/trial (ask "
                 f"{common.median(r['ask'] for r in floor_tail) * 1000:.1f} ms)")

    common.init_ray(2)
    common.log("real study: 40 no-op trials, MLflow on")
    real = real_study_costs(20 if args.quick else 40)
    lat = sorted(real["dispatch_latency"])
    common.log("import costs")
    imports = import_costs(1 if args.quick else 3)
    workers = torch_study_workers(6 if args.quick else 8)
    return [
        common.row("3a. sampler+storage / objective time at 200 trials (TPE)", share * 100, "%", "< 5 %",
                   share < 0.05, details_a),
        common.row("3a. ask+report+tell per trial at 200 trials", cost_tail * 1000, "ms", "", None, details_a),
        common.row("3b. MLflow requests per trial (per-epoch metrics)", real["requests_per_trial"], "", "<= 3",
                   real["requests_per_trial"] <= 3,
                   f"{real['n_child_runs']} child runs; writer ops {real['writer_ops']}"),
        common.row("3b. MLflow time per trial (writer thread)", real["seconds_per_trial"] * 1000, "ms", "", None,
                   "off the driver's loop: the background writer sends them"),
        common.row("3b. dispatch latency (submit -> objective start)", statistics.median(lat) * 1000, "ms", "", None,
                   f"p90 {lat[int(0.9 * (len(lat) - 1))] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms over "
                   f"{len(lat)} trials"),
        common.row("3c. import cost once per worker (torch objective)",
                   imports["worker_module"] + imports["torch_objective"], "s", "", None,
                   f"sweeplab.search.worker {imports['worker_module']:.2f} s + torch objective "
                   f"{imports['torch_objective']:.2f} s (fresh process); a torch study of {workers['trials']} trials "
                   f"ran in {workers['worker_pids']} worker processes"),
    ]


if __name__ == "__main__":
    common.cli(main, lambda p: p.add_argument("--harness", type=int, default=0, help="only the harness, N trials"))

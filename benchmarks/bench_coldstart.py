"""Cold start of one ``sweeplab run`` on the seed study, phase by phase, and this round's
cut measured before/after side by side.

The study: ``examples/seed_mlp_torch.yaml`` (PyTorch MLP on the seed's data, 20 trials,
2 workers), in a fresh directory holding copies of existing empty stores (a user's second
study), without the end-of-study model re-fit (``--no-model``). "First trial running" is
the first epoch reported by any trial, as logged in MLflow with the worker's clock
(:func:`common.first_report_time`).

- Phases: ``sweeplab run ... --json`` as a user runs it; the driver's own phases come from
  ``startup_s`` of its JSON; "process start, imports, CLI, spec" is what is left between the
  launch and the first report once those are subtracted (it includes the first epoch, a few
  tens of milliseconds). Also ``sweeplab validate`` of the spec in-process (the CLI's import
  and spec load alone).
- Before/after of this round's cut (:data:`CUT`: trials in worker processes of this machine
  instead of a local Ray): the same study run by a small driver script (``DRIVER``:
  ``load_spec`` + ``run_study`` with :func:`baseline.run_options`), alternating a process
  with ``SWEEPLAB_BENCH_CUT=local_processes`` (a local Ray, as before) and one without;
  medians of the time to the first report and of the whole run.

Every run prints the load average, since the machine may be shared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_startup
import common
from baseline import CUT_ENV

SPEC = common.ROOT / "examples" / "seed_mlp_torch.yaml"
SWEEPLAB = str(Path(sys.executable).with_name("sweeplab"))
METRIC = "val_accuracy"
PHASES = ("preflight", "ray_init", "dataset_storage_mlflow_import", "dataset_storage", "coordinator", "mlflow_import",
          "mlflow_open", "resume_checks", "resume_checks_dataset_put", "first_dispatch", "first_trial_start")
CUT = "local_processes"
"""This round's cut (a start-up speed-up of sweeplab.study.session): measured before/after."""
LABELS = {"before": "a local Ray (before)", "after": "worker processes (after)"}

DRIVER = r"""
import json, sys
import baseline
from sweeplab.spec import load_spec
from sweeplab.study import run_study
spec = load_spec(sys.argv[1], {"trials": int(sys.argv[2]), "workers": 2})
summary = run_study(spec, baseline.run_options(storage_url="sqlite:///sweeplab.db", tracking_uri="sqlite:///mlflow.db",
                                               progress=False, package_best=False))
print(json.dumps({"parent": summary.mlflow_parent_run_id, "startup_s": summary.run.startup_s,
                  "n_trials": summary.n_trials}))
"""


def _measure(cmd: list[str], env: dict[str, str], trials: int) -> dict[str, Any]:
    work = common.system_workdir("sweeplab-coldstart-")
    try:
        load = common.load_text()
        t_launch = time.time()
        res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1200)
        wall = time.time() - t_launch
        if res.returncode != 0:
            raise RuntimeError(f"{cmd[:3]} failed ({res.returncode}): {res.stderr[-3000:]}")
        out = json.loads(res.stdout.strip().splitlines()[-1])
        parent = out.get("mlflow_parent_run_id") or out["parent"]
        first = common.first_report_time(f"sqlite:///{work / 'mlflow.db'}", parent, METRIC)
        startup = dict(out.get("startup_s") or (out.get("run") or {}).get("startup_s") or {})
        if int(out["n_trials"]) != trials:
            raise RuntimeError(f"{cmd[:3]}: {out['n_trials']} trials, expected {trials}")
        return {"wall": wall, "to_first_report": first - t_launch, "startup": startup, "load": load}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cli_run(trials: int) -> dict[str, Any]:
    cmd = [SWEEPLAB, "run", str(SPEC), "--trials", str(trials), "--workers", "2", "--json", "--no-progress",
           "--no-model"]
    env = dict(os.environ)
    env.pop("SWEEPLAB_SPEEDUPS", None)
    r = _measure(cmd, env, trials)
    total = float(r["startup"].get("total", 0.0))
    r["process_imports_cli_spec"] = r["to_first_report"] - total
    return r


def driver_run(trials: int, cut: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop(CUT_ENV, None)
    if cut:
        env[CUT_ENV] = cut
    return _measure([sys.executable, "-c", DRIVER, str(SPEC), str(trials)], env, trials)


def main(args: Any) -> list[dict[str, Any]]:
    trials = args.trials
    runs = []
    for i in range(args.runs or (1 if args.quick else 3)):
        r = cli_run(trials)
        common.log(f"cold run {i}: first report {r['to_first_report']:.2f} s, wall {r['wall']:.1f} s, "
                   f"load {r['load']}; phases {r['startup']}")
        runs.append(r)
    med = {k: common.median(float(r["startup"].get(k, 0.0)) for r in runs) for k in PHASES}
    med_cli = common.median(r["process_imports_cli_spec"] for r in runs)
    to_first = common.median(r["to_first_report"] for r in runs)
    t_validate, heavy = bench_startup.light_command(["validate", str(SPEC)])
    phases = f"process start, imports, CLI, spec {med_cli:.2f}, " + ", ".join(f"{k} {v:.2f}" for k, v in med.items())
    rows = [common.row("cold `sweeplab run` seed study -> first trial's first report", to_first, "s", "", None,
                       f"median of {len(runs)}; phases (s): {phases}; `sweeplab validate` in-process "
                       f"{t_validate:.2f} s (heavy imports: {heavy}); whole run "
                       + ", ".join(f"{r['wall']:.1f}" for r in runs) + " s; load "
                       + ", ".join(r["load"] for r in runs))]
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    for rep in range(args.pairs or (1 if args.quick else 3)):
        for cut in ((CUT, None) if rep % 2 == 0 else (None, CUT)):
            r = driver_run(trials, cut)
            (before if cut else after).append(r)
            common.log(f"pair {rep} {LABELS['before'] if cut else LABELS['after']}: first report "
                       f"{r['to_first_report']:.2f} s, wall {r['wall']:.1f} s, coordinator phase "
                       f"{r['startup'].get('coordinator', 0.0):.2f} s, load {r['load']}")
    for key, label in (("to_first_report", "to the first report"), ("wall", "whole study")):
        b = common.median(r[key] for r in before)
        a = common.median(r[key] for r in after)
        rows.append(common.row(f"before/after: {LABELS['after']}, {label}", f"{b:.2f} -> {a:.2f} s", "", "",
                               None, f"medians of {len(before)} alternating pairs; {LABELS['before']} "
                               + ", ".join(f"{r[key]:.2f}" for r in before) + f"; {LABELS['after']} "
                               + ", ".join(f"{r[key]:.2f}" for r in after) + "; load "
                               + ", ".join(r["load"] for r in before + after)))
    return rows


if __name__ == "__main__":
    def _args(p: Any) -> None:
        p.add_argument("--runs", type=int, default=0, help="cold CLI runs for the phases (default 3)")
        p.add_argument("--pairs", type=int, default=0, help="before/after pairs (default 3)")
        p.add_argument("--trials", type=int, default=20)

    common.cli(main, _args)

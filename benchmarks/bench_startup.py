"""Figure 4: start-up, from launching ``sweeplab run`` (a subprocess) to the first trial
running on a worker, split into phases.

The study: a python objective that writes the time it starts to a file (the first
trial's start as the worker sees it), on the seed's dataset (so loading and shipping it
is part of start-up), 2 trials on 2 workers, existing SQLite stores in a fresh working
directory (a user's second study; creating MLflow's schema the first time adds several
seconds once). Phases come from the driver's ``startup_s`` (``--json``); "process start,
imports, CLI" is what remains between the launch and ``run_study``'s first line.
Also: ``sweeplab validate`` and ``--help`` must not import torch, tensorflow or ray.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import baseline
import common

SPEC = """\
study: startup
direction: maximize
metric: score
trials: 2
workers: 2
seed: 1
sampler: {name: tpe}
pruner: {name: none}
objective:
  framework: python
  callable: bench_objectives:startup_probe
  epochs: 1
  dataset: {name: make_classification, n_samples: 1000, n_features: 20, n_classes: 3, n_informative: 5}
  options: {probe_dir: PROBE, seconds: 0.05}
space:
  x: {type: float, low: 0.0, high: 1.0}
"""

SWEEPLAB = str(Path(sys.executable).with_name("sweeplab"))

LIGHT_PROBE = r"""
import sys, time, io, contextlib
t = time.perf_counter()
from sweeplab.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:  # --help
        code = exc.code
heavy = sorted(m for m in ("torch", "tensorflow", "ray") if m in sys.modules)
print(f"{code} {time.perf_counter() - t:.3f} {','.join(heavy) or '-'}")
"""


def run_once() -> dict[str, float]:
    tpl = common.store_templates()
    work = Path(tempfile.mkdtemp(prefix="sweeplab-startup-"))
    probe = work / "probe"
    probe.mkdir()
    shutil.copy(tpl / "mlflow.db", work / "mlflow.db")
    shutil.copy(tpl / "optuna.db", work / "sweeplab.db")
    spec = work / "startup.yaml"
    spec.write_text(SPEC.replace("PROBE", str(probe)))
    env = baseline.cli_env(dict(os.environ))  # SWEEPLAB_SPEEDUPS=off in a "before" process
    t_launch = time.time()
    cmd = [SWEEPLAB, "run", str(spec), "--json", "--no-progress", "--no-model"]
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    t_exit = time.time()
    if res.returncode != 0:
        raise RuntimeError(f"sweeplab run failed ({res.returncode}): {res.stderr[-2000:]}")
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    first = min(float(p.read_text()) for p in probe.glob("*.start"))
    phases = dict(summary.get("startup_s") or {})
    total_in_driver = phases.pop("total", None)
    out = {"to_first_trial": first - t_launch, "exit": t_exit - t_launch}
    if total_in_driver is not None:
        out["process_imports_cli"] = (first - total_in_driver) - t_launch
    out.update({k: float(v) for k, v in phases.items()})
    shutil.rmtree(work, ignore_errors=True)
    return out


def light_command(argv: list[str]) -> tuple[float, str]:
    res = subprocess.run([sys.executable, "-c", LIGHT_PROBE, *argv], capture_output=True, text=True, check=True,
                         env=dict(os.environ))
    _code, seconds, heavy = res.stdout.strip().splitlines()[-1].split()
    return float(seconds), heavy


def main(args: Any) -> list[dict[str, Any]]:
    runs = []
    for i in range(args.runs or (2 if args.quick else 3)):
        r = run_once()
        common.log(f"startup run {i}: {r['to_first_trial']:.2f} s to the first trial")
        runs.append(r)
    keys = [k for k in runs[0] if k not in ("to_first_trial", "exit")]
    med = {k: common.median(r.get(k, 0.0) for r in runs) for k in keys}
    total = common.median(r["to_first_trial"] for r in runs)
    parts = ", ".join(f"{k} {v:.2f}" for k, v in med.items())
    spec_path = Path(tempfile.mkdtemp()) / "s.yaml"
    spec_path.write_text(SPEC.replace("PROBE", "/tmp"))
    t_validate, heavy_validate = light_command(["validate", str(spec_path)])
    t_help, heavy_help = light_command(["--help"])
    light_ok = heavy_validate == "-" and heavy_help == "-"
    return [
        common.row("4. start-up: `sweeplab run` -> first trial running", total, "s", "", None,
                   f"median of {len(runs)}; phases (s): {parts}; whole run to exit "
                   f"{common.median(r['exit'] for r in runs):.1f} s"),
        common.row("4. `sweeplab validate` / `--help` import no torch, tensorflow, ray", "yes" if light_ok else "NO",
                   "", "none imported", light_ok,
                   f"validate {t_validate:.2f} s (imports: {heavy_validate}), --help {t_help:.2f} s "
                   f"(imports: {heavy_help}), in-process after interpreter start"),
    ]


if __name__ == "__main__":
    common.cli(main, lambda p: p.add_argument("--runs", type=int, default=0))

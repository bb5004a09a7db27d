"""sweeplab with the service up, sweeplab cold, plain Optuna and Ray Tune, side by side in one run.

Three workloads, each run by four systems, 2 trials at a time, MLflow logging on:

- ``seed``: the seed's MLP study as figure 2 runs it (``bench_systems.SPEC``: PyTorch, the
  seed's data and the guide's space, 20 trials, 20 epochs, no pruning; the peers train with
  ``systems_loop.train``);
- ``short_train``: 100 short trials that train: the same study with 100 trials of 2 epochs;
- ``short``: 100 short trials that only sleep (``systems_loop.short_train``: 0.2 s of sleep
  over 4 reported epochs, a 2-D space), where orchestration is all the cost besides the sleep.
  Its wall time has a floor (the sleep spread over the workers) that is 0.69x of plain
  Optuna's, so the ratio targets measure what orchestration costs there, not what can be met.

Systems, each launched as the command a user types, in its own process:

- ``service``: ``sweeplab run spec.yaml --json`` with a service up in its directory
  (``sweeplab up --workers 2 --no-ui``, started once before the runs and not timed; a first
  2-trial study warms it, reported apart). "not available" when this checkout has no
  ``sweeplab up``;
- ``cold``: ``sweeplab run spec.yaml --json`` with no service (a fresh directory);
- ``optuna``: ``systems_optuna.py`` (``study.optimize(n_jobs=2)`` + MLflowCallback);
- ``ray_tune``: ``systems_tune.py`` (OptunaSearch + MLflowLoggerCallback).

Figures per workload: wall time (launch -> exit) and time from the launch to the first
trial running (its first reported epoch: for sweeplab the earliest epoch its MLflow child
runs logged, stamped by the worker; for the peers the probe ``systems_loop`` writes at a
process's first report), medians over ``--reps`` repetitions whose order alternates; ratios
against plain Optuna and Ray Tune against the service. The load average is recorded with
every run: on a shared machine absolute figures move with it. Writes
``benchmarks/results/service.md`` and ``service.json`` (``--no-write``: print only).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_systems
import common
import systems_loop
import yaml

SWEEPLAB = str(Path(sys.executable).with_name("sweeplab"))
SYSTEMS = ("service", "cold", "optuna", "ray_tune")
WORKLOADS = ("seed", "short_train", "short")
METRIC = {"seed": "val_accuracy", "short_train": "val_accuracy", "short": "score"}
TRIALS = {"seed": systems_loop.TRIALS, "short_train": systems_loop.SHORT_TRIALS, "short": systems_loop.SHORT_TRIALS}

SHORT_SPEC = f"""\
study: short
direction: maximize
metric: score
trials: {systems_loop.SHORT_TRIALS}
workers: {systems_loop.WORKERS}
seed: 42
sampler: {{name: tpe}}
pruner: {{name: none}}
objective:
  framework: python
  callable: bench_objectives:short_trial
  epochs: {systems_loop.SHORT_EPOCHS}
  options: {{seconds: {systems_loop.SHORT_SECONDS}}}
space:
  x: {{type: float, low: -1.0, high: 1.0}}
  y: {{type: float, low: -1.0, high: 1.0}}
"""


def _training_spec(workload: str) -> str:
    """The seed study's spec (``bench_systems.SPEC``) with the workload's trials and epochs."""
    spec = yaml.safe_load(bench_systems.SPEC)
    spec["trials"], spec["objective"]["epochs"] = systems_loop.TRAINING_WORKLOADS[workload]
    return yaml.safe_dump(spec, sort_keys=False)


SPECS = {"seed": bench_systems.SPEC, "short_train": _training_spec("short_train"), "short": SHORT_SPEC}
# The short workload's trials sleep a fixed time, so no system can finish before the total
# sleep spread over the workers: its wall time's floor (the other workloads' trials train: none).
FLOOR_S = {"seed": None, "short_train": None,
           "short": systems_loop.SHORT_TRIALS * systems_loop.SHORT_SECONDS / systems_loop.WORKERS}

TARGETS = {  # the targets
    "service_first_s": 1.0,  # the first trial runs within 1 s of `sweeplab run` (service up)
    "service_vs_optuna": 0.67,  # service wall <= 0.67x plain Optuna's
    "cold_vs_optuna": 0.90,  # cold wall <= 0.9x plain Optuna's
    "tune_vs_service": 8.0,  # Ray Tune >= 8x slower than the service
}


def service_available() -> str | None:
    """None when this checkout has ``sweeplab up``; else why the service column is not measured."""
    if importlib.util.find_spec("sweeplab.service") is None:
        return "this checkout has no `sweeplab up` (sweeplab.service): the service column is not available"
    return None


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("SWEEPLAB_SPEEDUPS", "SWEEPLAB_SERVICE", systems_loop.PROBE_ENV):
        env.pop(var, None)
    env.update(extra or {})
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 1800) -> tuple[float, float, dict[str, Any]]:
    """Launch ``cmd``; return its launch time, wall time and the JSON object on its last stdout line."""
    t = time.time()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.time() - t
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({res.returncode}): {res.stderr[-3000:]}")
    return t, wall, json.loads(res.stdout.strip().splitlines()[-1])


class Service:
    """A service started with ``sweeplab up`` in its own directory; studies submitted there."""

    def __init__(self) -> None:
        self.dir = common.system_workdir("sweeplab-service-")
        for workload, text in SPECS.items():
            (self.dir / f"{workload}.yaml").write_text(text)
        t = time.time()
        res = subprocess.run([SWEEPLAB, "up", "--workers", str(systems_loop.WORKERS), "--no-ui", "--json"],
                             cwd=self.dir, env=_env(), capture_output=True, text=True, timeout=600)
        self.up_s = time.time() - t
        if res.returncode != 0:
            raise RuntimeError(f"sweeplab up failed ({res.returncode}): {res.stderr[-3000:]}")
        self.count = 0

    def run(self, workload: str, seed: int, trials: int | None = None) -> dict[str, Any]:
        self.count += 1
        name = f"{workload}-svc-{self.count}"
        spec = self.dir / f"{workload}-{self.count}.yaml"
        spec.write_text(SPECS[workload].replace("seed: 42", f"seed: {seed}"))
        cmd = [SWEEPLAB, "run", spec.name, "--study", name, "--json", "--no-progress", "--no-model"]
        if trials is not None:
            cmd += ["--trials", str(trials)]
        return _sweeplab_result(cmd, self.dir, workload)

    def down(self) -> None:
        subprocess.run([SWEEPLAB, "down", "--json"], cwd=self.dir, env=_env(), capture_output=True, text=True,
                       timeout=600)
        shutil.rmtree(self.dir, ignore_errors=True)


def _sweeplab_result(cmd: list[str], cwd: Path, workload: str) -> dict[str, Any]:
    load = common.load_text()
    launched, wall, out = _run(cmd, cwd, _env())
    first = common.first_report_time(f"sqlite:///{cwd / 'mlflow.db'}", out["mlflow_parent_run_id"], METRIC[workload])
    return {"wall": wall, "first": first - launched, "best": out["best_value"], "trials": out["n_trials"],
            "load": load}


def run_system(system: str, workload: str, seed: int, service: Service | None) -> dict[str, Any]:
    if system == "service":
        assert service is not None
        return service.run(workload, seed)
    work = common.system_workdir(f"sweeplab-{system}-")
    try:
        if system == "cold":
            (work / "spec.yaml").write_text(SPECS[workload].replace("seed: 42", f"seed: {seed}"))
            cmd = [SWEEPLAB, "run", "spec.yaml", "--json", "--no-progress", "--no-model"]
            if service is not None:
                cmd.append("--no-service")  # never the service, even if one were found
            return _sweeplab_result(cmd, work, workload)
        probe = work / "probe"
        probe.mkdir()
        script = common.BENCH_DIR / ("systems_tune.py" if system == "ray_tune" else "systems_optuna.py")
        load = common.load_text()
        launched, wall, out = _run([sys.executable, str(script), str(work), str(seed), workload], work,
                                   _env({systems_loop.PROBE_ENV: str(probe)}))
        return {"wall": wall, "first": common.probe_time(probe) - launched, "best": out["best_value"],
                "trials": out["n_trials"], "load": load}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(value: float | None, unit: str = "") -> str:
    return "not available" if value is None else common.fmt_value(value, unit)


def summarize(results: dict[str, dict[str, list[dict[str, Any]]]], missing: str | None) -> list[dict[str, Any]]:
    rows = []
    for workload in WORKLOADS:
        runs = results.get(workload)
        if not runs or not any(runs.values()):
            continue
        wall = {s: common.median(r["wall"] for r in runs[s]) if runs[s] else None for s in SYSTEMS}
        first = {s: common.median(r["first"] for r in runs[s]) if runs[s] else None for s in SYSTEMS}
        per = "; ".join(
            f"{s}: wall {_fmt(wall[s], 's')} (runs " + ", ".join(f"{r['wall']:.1f}" for r in runs[s])
            + f"), first trial {_fmt(first[s], 's')} (runs " + ", ".join(f"{r['first']:.2f}" for r in runs[s])
            + "), best median " + (f"{common.median(r['best'] for r in runs[s]):.4f}" if runs[s] else "-")
            + ", load " + ", ".join(r["load"] for r in runs[s])
            for s in SYSTEMS if runs[s])
        if missing:
            per += f"; service: not available ({missing})"
        label = f"{workload} ({TRIALS[workload]} trials, 2 workers)"
        svc_first, svc_vs_opt = first["service"], _ratio(wall["service"], wall["optuna"])
        cold_vs_opt, tune_vs_svc = _ratio(wall["cold"], wall["optuna"]), _ratio(wall["ray_tune"], wall["service"])
        rows += [
            common.row(f"{label}: wall time service / cold / Optuna / Ray Tune",
                       " / ".join(_fmt(wall[s], "s") for s in SYSTEMS), "", "", None, per),
            common.row(f"{label}: command -> first trial, service / cold / Optuna / Ray Tune",
                       " / ".join(_fmt(first[s], "s") for s in SYSTEMS), "", "", None, per),
            common.row(f"{label}: service, command -> first trial", _fmt(svc_first, "s"), "",
                       f"<= {TARGETS['service_first_s']:g} s",
                       None if svc_first is None else svc_first <= TARGETS["service_first_s"], per),
            common.row(f"{label}: service wall / plain Optuna", _fmt(svc_vs_opt, "x"), "",
                       f"<= {TARGETS['service_vs_optuna']}x",
                       None if svc_vs_opt is None else svc_vs_opt <= TARGETS["service_vs_optuna"], per),
            common.row(f"{label}: cold wall / plain Optuna", _fmt(cold_vs_opt, "x"), "",
                       f"<= {TARGETS['cold_vs_optuna']}x",
                       None if cold_vs_opt is None else cold_vs_opt <= TARGETS["cold_vs_optuna"], per),
            common.row(f"{label}: Ray Tune wall / service", _fmt(tune_vs_svc, "x"), "",
                       f">= {TARGETS['tune_vs_service']:g}x",
                       None if tune_vs_svc is None else tune_vs_svc >= TARGETS["tune_vs_service"], per),
        ]
        floor = FLOOR_S[workload]
        if floor is not None and wall["optuna"]:
            above = " / ".join("not available" if wall[s] is None else f"{wall[s] - floor:.1f} s"
                               for s in ("service", "cold", "optuna"))
            rows += [
                common.row(f"{label}: floor (the trials' own sleep / {systems_loop.WORKERS} workers) / plain Optuna",
                           f"{floor:.1f} s / {wall['optuna']:.1f} s = {floor / wall['optuna']:.2f}x", "", "", None,
                           "no system can take less than the floor: a wall-time ratio to plain Optuna below this "
                           "one cannot be reached on this workload"),
                common.row(f"{label}: wall time above the floor, service / cold / Optuna", above, "", "", None,
                           "what orchestration (start-up, per-trial work, end of study) costs each system"),
            ]
    return rows


def write_results(rows: list[dict[str, Any]], meta: dict[str, Any],
                  runs: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (common.RESULTS_DIR / "service.json").write_text(json.dumps({"meta": meta, "rows": rows, "runs": runs},
                                                                indent=2, default=str))
    lines = [f"# sweeplab service vs cold vs plain Optuna vs Ray Tune ({meta['when']})", "",
             f"{meta['machine']}, {meta['elapsed_s']:.0f} s, load average {meta['load_before']} -> "
             f"{meta['load_after']}; medians of {meta['reps']} alternating repetitions. "
             "Produced by `make bench-service` (benchmarks/bench_service.py).", "",
             common.table(rows, markdown=True), ""]
    for key, value in meta.items():
        if key.startswith("service_") or key == "kept_from_earlier_run":
            lines.append(f"- {key}: {value}")
    lines.append("")
    lines += [f"- **{r['figure']}**: {r['details']}" for r in rows if r["figure"].endswith("Ray Tune")]
    (common.RESULTS_DIR / "service.md").write_text("\n".join(lines) + "\n")


def main(args: Any) -> list[dict[str, Any]]:
    missing_tune = bench_systems.tune_available()
    if missing_tune:
        raise SystemExit(f"install the comparison's extras first: pip install -c constraints.txt 'ray[tune]' "
                         f"optuna-integration ({missing_tune})")
    missing = service_available()
    reps = args.reps or (1 if args.quick else 3)
    load_before = common.load_text()
    t0 = time.time()
    meta: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M"), "reps": reps,
                            "workloads": list(args.workloads or WORKLOADS),
                            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_before": load_before}
    service = None
    if missing is None:
        service = Service()
        warm = service.run("short", 42, trials=2)
        meta["service_up_s"] = round(service.up_s, 2)
        meta["service_first_study_after_up"] = (f"first trial {warm['first']:.2f} s, wall {warm['wall']:.1f} s "
                                                "(2 short trials, right after `sweeplab up`; not in the medians)")
        common.log(f"service up in {service.up_s:.1f} s; warm-up study: first trial {warm['first']:.2f} s")
    systems = [s for s in SYSTEMS if s != "service" or service is not None]
    workloads = [w for w in WORKLOADS if w in (args.workloads or WORKLOADS)]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {w: {s: [] for s in SYSTEMS} for w in WORKLOADS}
    try:
        for rep in range(reps):
            order = systems if rep % 2 == 0 else list(reversed(systems))
            for workload in workloads:
                for system in order:
                    r = run_system(system, workload, 42 + rep, service)
                    if r["trials"] != TRIALS[workload]:
                        raise RuntimeError(f"{system} {workload}: {r['trials']} trials, expected {TRIALS[workload]}")
                    results[workload][system].append(r)
                    common.log(f"rep {rep} {workload} {system}: wall {r['wall']:.1f} s, first trial "
                               f"{r['first']:.2f} s, best {r['best']:.4f}, load {r['load']}")
    finally:
        if service is not None:
            service.down()
    rows = summarize(results, missing)
    meta.update(elapsed_s=time.time() - t0, load_after=common.load_text())
    kept = [w for w in WORKLOADS if w not in workloads]
    if kept and (common.RESULTS_DIR / "service.json").exists():
        # a run of some workloads keeps the others' rows (and runs) from the file's previous run, and says so
        old = json.loads((common.RESULTS_DIR / "service.json").read_text())
        rows += [r for r in old["rows"] if any(r["figure"].startswith(f"{w} (") for w in kept)]
        for w in kept:
            results[w] = old.get("runs", {}).get(w, {})
        meta["kept_from_earlier_run"] = f"{', '.join(kept)}: rows of the run of {old['meta']['when']}"
    if not args.no_write:
        write_results(rows, meta, results)
    return rows


if __name__ == "__main__":
    def _args(p: Any) -> None:
        p.add_argument("--reps", type=int, default=0, help="repetitions (default 3; --quick: 1)")
        p.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/service.*")
        p.add_argument("--workloads", nargs="+", choices=WORKLOADS,
                       help="run only these workloads (default: all; the others' rows are kept from the last run)")

    common.cli(main, _args)

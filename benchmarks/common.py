"""Helpers shared by the benchmark scripts (not a test module; nothing here is timed).

Every benchmark script has ``main(args) -> list[row]`` where a row is a dict with
``figure``, ``value`` (a number or text), ``unit``, ``target`` (text), ``met``
(True / False / None for figures without a target) and ``details``. Run alone, a
script prints its rows; ``--out FILE`` also writes them as JSON for ``run_all.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
TEMPLATE_ENV = "SWEEPLAB_BENCH_TEMPLATES"


def setup_env() -> None:
    """Make the benchmark objectives importable by Ray workers (before ray.init) and
    clear the variables that would point sweeplab at other stores or clusters."""
    parts = [str(BENCH_DIR), str(ROOT)]
    old = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([*parts, *([old] if old else [])])
    for p in parts:
        if p not in sys.path:
            sys.path.insert(0, p)
    for var in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE"):
        os.environ.pop(var, None)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def baseline() -> bool:
    """True in a process that measures the code as it was before its speed-ups (see baseline.py)."""
    import baseline as before

    return before.active()


def store_templates() -> Path:
    """Empty MLflow and Optuna SQLite stores with their schemas (created once per run_all).

    MLflow's SQLite schema takes ~50 migrations (several seconds); a user's store
    already exists after their first study, so benchmarks copy these files.
    """
    given = os.environ.get(TEMPLATE_ENV)
    if given and (Path(given) / "mlflow.db").exists() and (Path(given) / "optuna.db").exists():
        return Path(given)
    base = Path(tempfile.mkdtemp(prefix="sweeplab-bench-templates-"))
    import optuna
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{base / 'mlflow.db'}").search_experiments()
    optuna.storages.RDBStorage(f"sqlite:///{base / 'optuna.db'}")
    os.environ[TEMPLATE_ENV] = str(base)
    return base


def system_workdir(prefix: str) -> Path:
    """A fresh directory holding copies of the template stores as ``mlflow.db`` and
    ``sweeplab.db`` (the CLI's default names), for a study run by the ``sweeplab`` command."""
    tpl = store_templates()
    work = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.copy(tpl / "mlflow.db", work / "mlflow.db")
    shutil.copy(tpl / "optuna.db", work / "sweeplab.db")
    return work


def run_json(cmd: list[str], cwd: Path, timeout: float) -> tuple[float, dict[str, Any]]:
    """Run ``cmd`` (the CLI or a peer system's script) with the baseline's environment; return its
    wall time and the JSON object on its last stdout line. Raises RuntimeError when it fails."""
    import subprocess

    import baseline

    env = baseline.cli_env(dict(os.environ))
    t = time.time()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.time() - t
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({res.returncode}): {res.stderr[-3000:]}")
    return wall, json.loads(res.stdout.strip().splitlines()[-1])


def fresh_stores(workdir: Path | None = None) -> dict[str, str]:
    """A private directory with a copy of the template stores: storage + tracking URLs."""
    tpl = store_templates()
    d = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sweeplab-bench-"))
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(tpl / "mlflow.db", d / "mlflow.db")
    shutil.copy(tpl / "optuna.db", d / "optuna.db")
    return {"storage": f"sqlite:///{d / 'optuna.db'}", "tracking": f"sqlite:///{d / 'mlflow.db'}", "dir": str(d)}


def init_ray(num_cpus: int = 2) -> Any:
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    return ray


def quiet_logs() -> None:
    import logging

    for name in ("mlflow", "alembic", "optuna", "ray", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
    except ImportError:  # pragma: no cover
        pass


def median(values: Iterable[float]) -> float:
    vals = [float(v) for v in values]
    return statistics.median(vals) if vals else float("nan")


def row(figure: str, value: Any, unit: str = "", target: str = "", met: bool | None = None,
        details: str = "") -> dict[str, Any]:
    return {"figure": figure, "value": value, "unit": unit, "target": target, "met": met, "details": details}


def fmt_value(value: Any, unit: str = "") -> str:
    if isinstance(value, float):
        if abs(value) >= 100:
            text = f"{value:.0f}"
        elif abs(value) >= 10:
            text = f"{value:.1f}"
        elif abs(value) >= 0.1:
            text = f"{value:.2f}"
        else:
            text = f"{value:.3g}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def fmt_met(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "NO")


def table(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    head = ["figure", "measured", "target", "met?"]
    body = [[r["figure"], fmt_value(r["value"], r.get("unit", "")), r.get("target") or "-", fmt_met(r.get("met"))]
            for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in body]
    return "\n".join(out)


def cli(main: Callable[[argparse.Namespace], list[dict[str, Any]]],
        add_args: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Run a benchmark script: parse ``--out`` (and its own flags), print its rows."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", help="write the rows as JSON here")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    if add_args is not None:
        add_args(parser)
    args = parser.parse_args()
    setup_env()
    t0 = time.time()
    rows = main(args)
    elapsed = time.time() - t0
    for r in rows:
        r.setdefault("script", Path(sys.argv[0]).stem)
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "elapsed_s": elapsed}, indent=2, default=str))
    print(table(rows))
    for r in rows:
        if r.get("details"):
            print(f"  {r['figure']}: {r['details']}")
    print(f"({Path(sys.argv[0]).name}: {elapsed:.0f} s)")
    sys.stdout.flush()
    # Ray's and MLflow's threads can keep a finished benchmark alive: leave now.
    os._exit(0)


def log(msg: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def first_report_time(tracking_uri: str, parent_run_id: str, metric: str) -> float:
    """When the first trial of a sweeplab study reported its first epoch (epoch seconds): the
    earliest step of ``metric`` among the parent run's child runs. sweeplab logs each epoch
    with the time the worker reported it, so this is "the first trial was running" as seen
    from the worker (plus one epoch)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=5000)
    stamps = [m.timestamp for r in runs for m in client.get_metric_history(r.info.run_id, metric)]
    if not stamps:
        raise RuntimeError(f"no child run of {parent_run_id} logged {metric!r}")
    return min(stamps) / 1000.0


def probe_time(probe_dir: Path) -> float:
    """The earliest time written by a peer system's first report (``systems_loop.PROBE_ENV``)."""
    stamps = [float(p.read_text()) for p in Path(probe_dir).glob("*.first")]
    if not stamps:
        raise RuntimeError(f"no first-report probe in {probe_dir}")
    return min(stamps)


def load_text() -> str:
    """The 1/5/15-minute load averages, for a figure measured on a shared machine."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f}"

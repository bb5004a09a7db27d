"""Run a benchmark: one sweeplab study per cell, one MLflow bench run over them, one report.

How the cells relate (in Optuna and MLflow):

- every cell is an ordinary, resumable study named
  ``{bench}.{sampler}.{pruner}.{framework}.s{seed}`` in the Optuna storage, run by
  :func:`sweeplab.search.run_study` exactly like ``sweeplab run`` (so ``sweeplab status
  / best / report / audit`` work on a cell);
- every cell logs to the MLflow experiment named after the bench (or the bench spec's
  ``experiment``): its study parent run (``sweeplab.role=parent``) with one child run
  per trial, as for any study;
- one bench run (``sweeplab.role=bench``, ``sweeplab.bench=NAME``) in that experiment
  is the parent of every cell's study run (tag ``mlflow.parentRunId``, set when the cell
  has run), so the MLflow UI nests bench -> cell studies -> trials. The cell runs also
  carry ``sweeplab.bench`` and ``sweeplab.bench_cell`` (the config label and seed). The
  bench run holds the bench spec (``bench_spec.json``), the result (``bench.json``), the
  report (``{bench}-report.html``) and a few metrics; it is found again by its tags on a
  re-run, never duplicated.

Re-running a bench resumes it: a cell whose study already holds ``trials`` finished
trials is skipped (no coordinator, no new trial), an unfinished one is resumed by
``run_study`` (stale RUNNING trials reaped and retried), and a cell whose stored spec
differs from the bench's (other than run-level keys such as ``trials``) is refused
before anything runs, as ``sweeplab run`` refuses it.

Cells run ``parallel_cells`` at a time (default 1: one after the other, each with
``workers`` trials in flight). With more, cells run from threads of this one driver,
sharing one Ray runtime (each cell has its own coordinator actor, so concurrent
studies do not interfere). Ray queues trials beyond the cluster's CPUs, so
``parallel_cells x workers x resources.cpu`` above the cluster's CPUs gives no speed-up
and makes cells wait for each other, which the wall-time curves then include; a
warning says so. Ctrl-C stops every running cell cleanly (their trials in flight are
failed and retried on resume) and prints the command that resumes.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeplab.bench.results import BenchResult, CellResult, build_result, cell_result
from sweeplab.core.errors import Problem, SpecError, StorageError, SweeplabError, UsageError
from sweeplab.core.keys import (
    ROLE_BENCH,
    STUDY_ATTR_PARENT_RUN_ID,
    TAG_BENCH,
    TAG_BENCH_BEST_CONFIG,
    TAG_CELL,
    TAG_STATUS,
)

if TYPE_CHECKING:
    from sweeplab.bench.spec import BenchCell, BenchSpec

__all__ = ["TAG_BENCH", "TAG_CELL", "BenchOptions", "bench_text", "collect", "run_bench"]

log = logging.getLogger("sweeplab.bench")



@dataclass
class BenchOptions:
    """How to run a benchmark: stores, cluster, report file and what to show.

    ``report_path``: the HTML report to write (default ``{bench}-report.html`` in the
    current directory). ``progress``: one line per cell on stderr.
    """

    storage_url: str
    tracking_uri: str
    address: str | None = None
    progress: bool = True
    report_path: str | Path | None = None
    resume_command: str = ""
    lease_seconds: float = 60.0
    ray_init_kwargs: dict[str, Any] = field(default_factory=dict)


class _Cancelled(Exception):
    """A cell that never started because the benchmark was interrupted."""


# ---------------------------------------------------------------------- preflight
def _check_components(bench: BenchSpec) -> None:
    """Build every sampler and pruner level once, so a bad option fails before anything runs."""
    from sweeplab.search.samplers import build_pruner, build_sampler

    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    samplers = {lv.label: i for i, lv in enumerate(bench.samplers)}
    pruners = {lv.label: i for i, lv in enumerate(bench.pruners)}
    factors = bench.data.get("factors") or {}
    for cell in bench.cells:
        for kind, label, build, index in (("samplers", cell.sampler, build_sampler, samplers),
                                          ("pruners", cell.pruner, build_pruner, pruners)):
            if (kind, label) in seen:
                continue
            seen.add((kind, label))
            try:
                build(cell.spec)
            except SpecError as exc:
                where = f"factors.{kind}[{index[label]}]" if kind in factors else kind[:-1]
                problems.extend(Problem(where, p.message) for p in exc.problems)
    if problems:
        raise SpecError(problems, bench.source)


def _existing(bench: BenchSpec, storage_url: str) -> dict[str, dict[str, Any]]:
    """For every cell whose study exists: its stored spec and finished-trial count.

    Raises UsageError listing every cell whose stored spec differs from the bench's.
    """
    from sweeplab.core.keys import STUDY_ATTR_RETRIES, STUDY_ATTR_SPEC
    from sweeplab.search.coordinator import count_states
    from sweeplab.search.storage import open_storage
    from sweeplab.study.resume import spec_diff

    storage = open_storage(storage_url)
    out: dict[str, dict[str, Any]] = {}
    diffs: dict[str, list[str]] = {}  # diff text -> cells with that diff
    for cell in bench.cells:
        try:
            study_id = storage.get_study_id_from_name(cell.study)
        except KeyError:
            continue
        attrs = storage.get_study_user_attrs(study_id)
        stored = dict(attrs.get(STUDY_ATTR_SPEC, {}))
        trials = storage.get_all_trials(study_id, deepcopy=False)
        counts = count_states(trials, set(attrs.get(STUDY_ATTR_RETRIES, {})))
        out[cell.study] = {"finished": counts["finished"], "running": counts["RUNNING"], "attrs": attrs}
        diff = spec_diff(stored, cell.spec.to_dict()) if stored else []
        if diff:
            diffs.setdefault("\n    ".join(diff), []).append(cell.study)
    if diffs:
        n = sum(len(v) for v in diffs.values())
        groups = [f"{', '.join(cells) if len(cells) <= 3 else f'{len(cells)} cells ({cells[0]}, ...)'}:\n    {text}"
                  for text, cells in diffs.items()]
        raise UsageError(
            f"bench {bench.bench!r}: {n} cell studies already exist with a different spec; refusing to mix "
            "trials.\n  " + "\n  ".join(groups)
            + "\nRevert the bench spec, or run it as a new benchmark under another `bench:` name."
        )
    return out


# ---------------------------------------------------------------------- MLflow bench run
def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


def _open_bench_run(bench: BenchSpec, tracking_uri: str) -> tuple[str, str]:
    """Find (by tags) or create the bench's MLflow run; mark it RUNNING. Returns ``(experiment_id, run_id)``."""
    from mlflow.entities import Param, RunStatus
    from mlflow.tracking import MlflowClient

    from sweeplab.core.keys import TAG_ROLE

    try:
        client = MlflowClient(tracking_uri)
        exp = client.get_experiment_by_name(bench.experiment)
        if exp is None:
            experiment_id = client.create_experiment(bench.experiment)
        else:
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
            experiment_id = exp.experiment_id
        runs = client.search_runs([experiment_id], max_results=5, filter_string=(
            f"tags.`{TAG_BENCH}` = '{bench.bench}' and tags.`{TAG_ROLE}` = '{ROLE_BENCH}'"))
        if runs:
            run_id = runs[0].info.run_id
            client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            return experiment_id, run_id
        run = client.create_run(experiment_id, run_name=bench.bench,
                                tags={TAG_BENCH: bench.bench, TAG_ROLE: ROLE_BENCH})
        run_id = run.info.run_id
        params: dict[str, str] = {
            "factors.samplers": json.dumps([lv.label for lv in bench.samplers]),
            "factors.pruners": json.dumps([lv.label for lv in bench.pruners]),
            "factors.frameworks": json.dumps(list(bench.frameworks)),
            "factors.seeds": json.dumps(list(bench.seeds)),
            "n_cells": str(len(bench.cells)),
            "metric": bench.metric,
            "direction": bench.direction,
            "target": str(bench.target),
            "parallel_cells": str(bench.parallel_cells),
        }
        first = bench.cells[0].spec.to_dict()
        for key in ("trials", "workers", "timeout"):
            params[key] = str(first[key])
        _flat("objective", {k: v for k, v in first["objective"].items() if k != "framework"}, params)
        client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in params.items()])
        client.log_dict(run_id, json.loads(json.dumps(dict(bench.data), default=str)), "bench_spec.json")
        return experiment_id, run_id
    except Exception as exc:
        raise StorageError(
            f"cannot use the MLflow tracking store {tracking_uri}: {type(exc).__name__}: {exc}. "
            "Check --tracking-uri / $MLFLOW_TRACKING_URI and that the server is running."
        ) from exc


def _link_cell(client: Any, cell: BenchCell, run_id: str | None, bench_run_id: str, bench: str) -> None:
    """Nest a cell's study parent run under the bench run (tags; warn on failure)."""
    if not run_id:
        return
    from mlflow.entities import RunTag

    try:
        client.log_batch(run_id, tags=[RunTag("mlflow.parentRunId", bench_run_id), RunTag(TAG_BENCH, bench),
                                       RunTag(TAG_CELL, f"{cell.config_label} / seed {cell.seed}")])
    except Exception as exc:
        log.warning("could not link the MLflow run of %s to the bench run: %s", cell.study, exc)


def _close_bench_run(client: Any, run_id: str, result: BenchResult | None, status: str,
                     report: Path | None) -> None:
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    try:
        if result is not None:
            metrics = [Metric("n_cells", float(len(result.cells)), now, 0),
                       Metric("n_trials", float(sum(len(c.counted()) for c in result.cells)), now, 0),
                       Metric("total_epochs", float(sum(c.total_epochs for c in result.cells)), now, 0)]
            if result.target is not None:
                metrics.append(Metric("target", float(result.target), now, 0))
            for cfg in result.configs:
                med = cfg.median_best()
                if med is not None and math.isfinite(med):
                    metrics.append(Metric("median_best." + ".".join(cfg.config), float(med), now, 0))
            tags = [RunTag(TAG_STATUS, status)]
            if result.configs:
                tags.append(RunTag(TAG_BENCH_BEST_CONFIG, result.configs[0].label))
            client.log_batch(run_id, metrics=metrics, tags=tags)
            client.log_dict(run_id, json.loads(json.dumps(result.to_dict(), default=str)), "bench.json")
        if report is not None:
            client.log_artifact(run_id, str(report))
        client.set_terminated(run_id, status=status, end_time=now)
    except Exception as exc:  # the report on disk is what the user asked for; MLflow is a copy
        log.warning("could not finish the MLflow bench run %s: %s", run_id, exc)


# ---------------------------------------------------------------------- threads
def _run_parallel(cells: list[BenchCell], n: int, run_one: Callable[[BenchCell], None],
                  stop: threading.Event) -> None:
    """Run ``run_one`` for every cell, ``n`` at a time on threads. On Ctrl-C, set ``stop``
    (every running cell's ``run_study`` watches it: it fails its trials in flight cleanly
    and raises StudyInterrupted), cancel the cells not started, wait for the running
    ones, and re-raise KeyboardInterrupt."""

    def wrapped(cell: BenchCell) -> None:
        if stop.is_set():
            raise _Cancelled(cell.study)
        run_one(cell)

    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="sweeplab-cell") as pool:
        futures: list[Future[None]] = [pool.submit(wrapped, c) for c in cells]
        try:
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        except KeyboardInterrupt:
            stop.set()
            for f in futures:
                f.cancel()
            wait(futures)
            raise
    for f in futures:
        if not f.cancelled() and isinstance(f.exception(), KeyboardInterrupt):
            raise KeyboardInterrupt


# ---------------------------------------------------------------------- the benchmark
def run_bench(bench: BenchSpec, options: BenchOptions) -> BenchResult:
    """Run (or resume) every cell of ``bench``, then write its report; return the result.

    A simulated bench (``simulate:``) is replayed on its table instead
    (:func:`~sweeplab.bench.simulate.run_simulated_bench`): only ``options.report_path``
    and ``options.progress`` apply.

    Before anything is created: sampler and pruner options are built (SpecError), the
    dataset is loaded once (DataError), and existing cell studies are checked against
    the bench (UsageError on a different spec). A cell that raises (storage, data...)
    is recorded as ``failed`` and the others go on; the report is written either way and
    then SweeplabError names the failed cells. Ctrl-C raises StudyInterrupted (exit 130)
    with the command that resumes, after marking the bench run KILLED.
    """
    if bench.simulate is not None:  # replayed on a recorded table: no Ray, no stores (sweeplab.bench.simulate)
        from sweeplab.bench.simulate import run_simulated_bench

        return run_simulated_bench(bench, options)
    import ray

    from sweeplab.study.run import RunOptions, StudyInterrupted, init_ray, load_study_dataset, run_study

    started = time.time()
    _check_components(bench)
    load_study_dataset(bench.cells[0].spec)  # bad data fails here, before any store is touched
    existing = _existing(bench, options.storage_url)
    experiment_id, bench_run_id = _open_bench_run(bench, options.tracking_uri)
    init_ray(options.address, **options.ray_init_kwargs)
    _warn_oversubscribed(bench, ray)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(options.tracking_uri)
    n = len(bench.cells)
    status: dict[str, str] = {}
    errors: dict[str, str] = {}
    done = [0]
    lock = threading.Lock()
    todo: list[BenchCell] = []
    for cell in bench.cells:
        info = existing.get(cell.study)
        if info is not None and info["finished"] >= cell.spec.trials and not info["running"]:
            status[cell.study] = "skipped"
            _link_cell(client, cell, info["attrs"].get(STUDY_ATTR_PARENT_RUN_ID), bench_run_id, bench.bench)
            done[0] += 1
            _say(options, f"[{done[0]}/{n}] {cell.study}: finished before ({info['finished']} trials), skipped")
        else:
            todo.append(cell)

    stop = threading.Event()  # set on Ctrl-C: every running cell stops like `sweeplab run` does

    def run_one(cell: BenchCell) -> None:
        t0 = time.time()
        run_options = RunOptions(storage_url=options.storage_url, tracking_uri=options.tracking_uri,
                                 address=options.address, progress=False, lease_seconds=options.lease_seconds,
                                 resume_command=options.resume_command, ray_init_kwargs=options.ray_init_kwargs,
                                 stop=stop)
        try:
            summary = run_study(cell.spec, run_options)
        except StudyInterrupted:
            with lock:
                status[cell.study] = "interrupted"
            raise KeyboardInterrupt from None
        except SweeplabError as exc:
            with lock:
                status[cell.study], errors[cell.study] = "failed", str(exc)
                done[0] += 1
            _say(options, f"[{done[0]}/{n}] {cell.study}: FAILED: {str(exc).splitlines()[0]}")
            return
        _link_cell(client, cell, summary.mlflow_parent_run_id, bench_run_id, bench.bench)
        with lock:
            status[cell.study] = "ran"
            done[0] += 1
        best = summary.best_value
        best_text = f"best {best:.6g}" if isinstance(best, float) else "no complete trial"
        _say(options, f"[{done[0]}/{n}] {cell.study}: {summary.n_trials} trials (complete {summary.n_complete}, "
                      f"pruned {summary.n_pruned}, failed {summary.n_failed}), {best_text}, "
                      f"{time.time() - t0:.1f} s")

    try:
        if bench.parallel_cells > 1 and len(todo) > 1:
            _run_parallel(todo, bench.parallel_cells, run_one, stop)
        else:
            for cell in todo:
                run_one(cell)
    except KeyboardInterrupt:
        _close_bench_run(client, bench_run_id, None, "KILLED", None)
        finished = sum(1 for s in status.values() if s in ("ran", "skipped"))
        raise StudyInterrupted(
            f"bench {bench.bench!r} interrupted with {finished} of {n} cells finished; nothing is lost. "
            f"Resume with: {options.resume_command or 'the same sweeplab bench command'}"
        ) from None

    result = collect(bench, options, status, errors)
    result.experiment_id, result.bench_run_id = experiment_id, bench_run_id
    from sweeplab.bench.report import write_bench_report

    path = Path(options.report_path) if options.report_path else Path(f"{_stem(bench.bench)}-report.html")
    result.elapsed_s = round(time.time() - started, 3)
    result.report = str(write_bench_report(result, path))
    failed = sorted(s for s, st in status.items() if st == "failed")
    _close_bench_run(client, bench_run_id, result, "FAILED" if failed else "FINISHED", Path(result.report))
    if failed:
        raise SweeplabError(
            f"bench {bench.bench!r}: {len(failed)} of {n} cells failed ({', '.join(failed)}); the report "
            f"{result.report} shows the others.\n  " + "\n  ".join(f"{s}: {errors[s]}" for s in failed)
            + f"\nFix the cause and resume with: {options.resume_command or 'the same sweeplab bench command'}"
        )
    return result


def collect(bench: BenchSpec, options: BenchOptions, status: dict[str, str] | None = None,
            errors: dict[str, str] | None = None) -> BenchResult:
    """Read every cell's study, run or reuse the pruning audits, and aggregate.

    The audit of a cell (``bench.audit`` > 0, the cell has pruned trials) is reused from
    its MLflow run's ``audit.json`` when that one re-trained at least as many trials of
    the same pruned set; otherwise it runs now and is stored there. With ``audit: 0``,
    audits stored by ``sweeplab audit`` are shown when present.
    """
    import optuna

    from sweeplab.bench.audit import audit_study, load_audit
    from sweeplab.search.storage import open_storage

    status = status or {}
    errors = errors or {}
    storage = open_storage(options.storage_url)
    cells: list[CellResult] = []
    to_audit: list[tuple[CellResult, Any, int]] = []
    for cell in bench.cells:
        try:
            study = optuna.load_study(study_name=cell.study, storage=storage)
        except KeyError:
            study = None
        result = cell_result(cell, study, status.get(cell.study, "skipped"))
        result.error = errors.get(cell.study)
        if study is not None and result.mlflow_parent_run_id:
            n_pruned = sum(1 for e in result.events if e.state == "PRUNED")
            audit = load_audit(options.tracking_uri, result.mlflow_parent_run_id)
            fresh = audit is not None and audit.n_pruned == n_pruned and (
                audit.sample >= bench.audit or audit.n_audited == n_pruned)
            result.audit = audit
            if bench.audit > 0 and n_pruned and not fresh:
                to_audit.append((result, study, n_pruned))
        cells.append(result)

    def audit_one(item: tuple[CellResult, Any, int]) -> None:
        result, study, n_pruned = item
        _say(options, f"auditing {min(bench.audit, n_pruned)} of {n_pruned} pruned trials of {result.study}")
        result.audit = audit_study(result.study, storage_url=options.storage_url, tracking_uri=options.tracking_uri,
                                   sample=bench.audit, seed=result.seed, address=options.address, study=study)

    if to_audit:  # the audits' trials run on Ray: submit every cell's at once
        with ThreadPoolExecutor(max_workers=min(8, len(to_audit)), thread_name_prefix="sweeplab-audit") as pool:
            list(pool.map(audit_one, to_audit))
    factors: dict[str, list[Any]] = {
        "samplers": [lv.label for lv in bench.samplers], "pruners": [lv.label for lv in bench.pruners],
        "frameworks": list(bench.frameworks), "seeds": list(bench.seeds)}
    out = build_result(bench.bench, bench.metric, bench.direction, bench.trials, factors, cells, bench.target,
                       bench.audit)
    out.experiment = bench.experiment
    return out


def _warn_oversubscribed(bench: BenchSpec, ray: Any) -> None:
    if bench.parallel_cells <= 1:
        return
    spec = bench.cells[0].spec
    want = min(bench.parallel_cells, len(bench.cells)) * spec.workers * spec.resources.cpu
    have = float(ray.cluster_resources().get("CPU", 0.0))
    if have and want > have:
        log.warning("parallel_cells=%d x workers=%d x cpu=%g asks for %g CPUs but the cluster has %g: cells will "
                    "wait for each other, and the wall-time curves include that wait", bench.parallel_cells,
                    spec.workers, spec.resources.cpu, want, have)


def _stem(name: str) -> str:
    from sweeplab.dashboards.report import safe_file_stem

    return safe_file_stem(name)


def _say(options: BenchOptions, line: str) -> None:
    if options.progress:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def bench_text(result: BenchResult) -> str:
    """The benchmark's ranking as text for the terminal."""

    def fmt(v: Any) -> str:
        return "–" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    d = result.to_dict()
    target = f"{fmt(result.target)} ({result.target_source})" if result.target is not None else "none"
    lines = [f"bench      {result.bench}: {d['n_cells']} cells ({d['cells_ran']} ran, {d['cells_skipped']} skipped, "
             f"{d['cells_failed']} failed), {d['n_trials']} trials, {d['total_epochs']} epochs",
             f"metric     {result.metric} ({result.direction}), target {target}",
             "  rank  config                                  median best   min–max            "
             "to target  med. epochs to target  epochs/cell"]
    for c in d["configs"]:
        spread = f"{fmt(c['min_best'])}–{fmt(c['max_best'])}"
        lines.append(f"  {c['rank']:>4}  {c['config']:<38}  {fmt(c['median_best']):>11}   {spread:<17}  "
                     f"{c['reached_target']}/{c['n_seeds']:<7}  {fmt(c['median_epochs_to_target']):>21}  "
                     f"{fmt(c['mean_epochs_per_cell']):>11}")
    lines.append(f"seeds      {result.comparison.get('verdict')}")
    if result.report:
        lines.append(f"report     {result.report}")
    if result.bench_run_id:
        lines.append(f"mlflow     bench run {result.bench_run_id} (experiment {result.experiment_id})")
    return "\n".join(lines)

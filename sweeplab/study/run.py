"""Run a study: open it, run its trial loop, finish it.

Flow: :func:`~sweeplab.study.session.open_session`
gets everything in place (stores, Ray or not, the coordinator, the MLflow parent run,
the dataset, the study resumed); :class:`~sweeplab.search.loop.TrialLoop` keeps at most
``workers`` trials in flight until the study holds ``trials`` finished trials (or
``timeout`` passes); :func:`finish_study` writes the summary, the best model and the
report, and closes the MLflow runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from sweeplab.core.records import RunDetails, StudySummary, TrialOutcome, TrialRecord, failure_key
from sweeplab.search.loop import FAILED, FINISHED, KILLED, LoopResult, LoopSettings, TrialLoop
from sweeplab.study.session import (
    RunOptions,
    StudyInterrupted,
    StudySession,
    in_background,
    init_ray,
    load_study_dataset,
    open_session,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sweeplab.spec import StudySpec

__all__ = ["RunOptions", "StudyInterrupted", "finish_study", "init_ray", "load_study_dataset", "run_study"]

log = logging.getLogger("sweeplab.search")


def run_study(spec: StudySpec, options: RunOptions) -> StudySummary:
    """Run (or resume) ``spec``'s study to completion; return its summary (``run`` set).

    Raises StudyInterrupted on Ctrl-C (or ``options.stop``) after failing the trials in
    flight (they are retried on resume) and closing the MLflow runs.
    """
    phases = _Phases()
    started = time.time()
    session = open_session(spec, options, phases.mark)
    if options.on_open is not None:
        options.on_open(session.finished)
    report_imports = None
    if options.overlap_startup and session.has_workers:  # this process mostly waits while the workers train
        report_imports = in_background(lambda: _import_report_dependencies(session), "sweeplab-report-imports")
    progress = _Progress(options.progress, spec.trials, session.finished, spec.study)
    loop = TrialLoop(
        session.coordinator, session.executor, session.tracker,
        LoopSettings(trials=spec.trials, workers=spec.workers,
                     deadline=started + spec.timeout if spec.timeout else None,
                     lease_seconds=options.lease_seconds, check_exhausted=spec.sampler.name == "grid",
                     maximize=None if spec.multi_objective else spec.direction[0] == "maximize",
                     study=spec.study, fail_fast=options.fail_fast, deterministic=spec.deterministic,
                     lag=spec.deterministic_lag or 0, ask_ahead=session.has_workers),
        session.finished,
        progress=progress,
        on_record=options.on_record, stop=options.stop,
        on_first_start=phases.first_submit, on_outcome=phases.first_outcome,
        on_failure=progress.failed, succeeded=session.succeeded, gate=options.gate,
        check=session.check_tracking,
    )
    try:
        with _quick_thread_switches(session.has_workers):
            result = loop.run()
    except BaseException:
        session.wait_tracking()  # an MLflow store that could not be opened: cleaned up, raised here
        raise
    finally:
        loop.progress.close()
    session.wait_tracking()
    if report_imports is not None:
        # A short study can end before them: two threads importing plotly at once can meet
        # Python's import deadlock detection, which would cost the study its report.
        report_imports.join()
    return finish_study(spec, options, session, result, started, phases.phases)


def finish_study(spec: StudySpec, options: RunOptions, session: StudySession, result: LoopResult, started: float,
                 startup: dict[str, float]) -> StudySummary:
    """Summarize the study, package its best model, write its report, close its MLflow runs
    and give back what the session started; raise what stopped the loop, if anything."""
    summary = session.coordinator.summary()
    tracker = session.tracker
    if summary.best_trial is not None and not summary.best_run_id:
        summary = dataclasses.replace(summary, best_run_id=tracker.run_id(summary.best_trial, timeout=30.0))
    best_model = None
    if result.status == FINISHED and options.package_best and session.has_workers:
        from sweeplab.study.packaging import package_best_trial

        best_model = package_best_trial(spec, summary, storage_url=options.storage_url, session=session)
    elapsed = round(time.time() - started, 3)
    # Ray and the workers are no longer needed once every trial's run is linked: they stop
    # while the report is written and the parent run closed. Links to a coordinator in this
    # process need neither, so the MLflow requests still queued are delivered meanwhile too;
    # links to a coordinator actor go through Ray, which waits for them.
    links_here = session.actor is None
    stopping = session.release() if links_here or tracker.writer.wait_idle(timeout=30.0) else None
    html = _write_report(spec, summary, options.storage_url)
    delivered = tracker.close(summary, status="FAILED" if result.status == FAILED else result.status,
                              html_report=html)
    if html is not None and delivered:  # it is the parent run's artifact now; each report is megabytes
        shutil.rmtree(os.path.dirname(html), ignore_errors=True)
    summary = dataclasses.replace(summary, run=RunDetails(
        elapsed_s=elapsed, startup_s=startup, mlflow_delivered=delivered, mlflow_requests=tracker.writer.requests,
        storage=options.storage_url, tracking_uri=options.tracking_uri, best_model=best_model))
    if stopping is None:
        stopping = session.release()
    if stopping is not None:
        stopping.join()
    if result.error is not None:
        raise result.error
    if result.status == KILLED:
        raise StudyInterrupted(
            f"study {spec.study!r} interrupted after {summary.n_trials} of {spec.trials} trials; "
            f"nothing is lost. Resume with: {options.resume_command or 'the same sweeplab run command'}"
        )
    return summary


DISPATCH_SWITCH_INTERVAL_S = 0.001
"""The interpreter's thread switch interval while a driver dispatches trials to workers (Python's
default: 5 ms). A worker's report or result waits until the thread that answers it gets the
GIL from the driver's other threads (the loop, the MLflow writer); with 1 ms, 100 trials of
0.2 s on 2 workers took 0.2 s less, in three pairs of runs out of three."""


class _SwitchInterval:
    """The process's thread switch interval while drivers dispatch; several studies may run
    at once in one process (a supervisor, a notebook's threads), so the first one in saves
    the interval and the last one out restores it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0.0

    @contextlib.contextmanager
    def quick(self, enabled: bool) -> Iterator[None]:
        """:data:`DISPATCH_SWITCH_INTERVAL_S` for the block when ``enabled``."""
        if not enabled:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(DISPATCH_SWITCH_INTERVAL_S)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    sys.setswitchinterval(self._saved)


_switch_interval = _SwitchInterval()
_quick_thread_switches = _switch_interval.quick


class _Progress:
    """A tqdm bar: trials done, best so far, ETA (the widget in Jupyter, text on stderr elsewhere)."""

    def __init__(self, enabled: bool, total: int, initial: int, study: str) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm  # the notebook widget in Jupyter, the text bar in a terminal

            self.bar = tqdm(total=total, initial=initial, desc=study, unit="trial", file=sys.stderr,
                            dynamic_ncols=True, leave=True)

    def failed(self, record: TrialRecord) -> None:
        """Say once, on stderr (above the bar), that a trial failed for good and why."""
        reason = failure_key(record.reason)
        line = f"trial {record.number} failed: {reason}"
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def update(self, record: TrialRecord, best: Any) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        post = {"best": f"{best:.4g}" if isinstance(best, float) else str(best), "last": record.state.lower()}
        self.bar.set_postfix(post, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Phases:
    """Seconds spent in each start-up phase, up to the first trial's start on its worker.

    ``first_dispatch``: the first ask and trial start; ``first_trial_start``: from that
    start to the objective's start on the worker (worker process start, imports, the
    dataset fetch); ``total``: from entering ``run_study`` to the first trial's start.
    """

    def __init__(self) -> None:
        self.t0 = self.last = time.time()
        self.phases: dict[str, float] = {}
        self.submitted: tuple[int, float] | None = None
        self.done = False

    def mark(self, name: str) -> None:
        now = time.time()
        self.phases[name] = round(now - self.last, 4)
        self.last = now

    def first_submit(self, number: int) -> None:
        if self.submitted is None and not self.done:
            self.mark("first_dispatch")
            self.submitted = (number, self.last)

    def first_outcome(self, outcome: TrialOutcome) -> None:
        if self.done or self.submitted is None:
            return
        self.done = True
        if outcome.started_at > 0:
            self.phases["first_trial_start"] = round(max(0.0, outcome.started_at - self.submitted[1]), 4)
            self.phases["total"] = round(outcome.started_at - self.t0, 4)
        log.info("start-up: %s", ", ".join(f"{k} {v:.2f}s" for k, v in self.phases.items()))


def _import_report_dependencies(session: StudySession) -> None:
    """The report's imports, after the MLflow side is open (both are this process's CPU)."""
    try:
        if session.opening is not None:
            session.opening.thread.join()
        from sweeplab.dashboards import import_report_dependencies

        import_report_dependencies()
    except Exception as exc:  # only an optimization: the report says what it lacks itself
        log.debug("could not import the report's libraries ahead: %s", exc)


def _write_report(spec: StudySpec, summary: StudySummary, storage_url: str) -> str | None:
    """Write the study's HTML dashboard to a private temp folder for the parent run, if available
    (:func:`finish_study` removes the folder once the run has it)."""
    try:
        from sweeplab.dashboards import write_study_report

        return str(write_study_report(spec.study, summary, storage_url=storage_url))
    except Exception as exc:  # a report must never fail a study
        log.warning("could not write the study report: %s", exc)
        return None

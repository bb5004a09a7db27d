"""The MLflow side of a study: one parent run, exactly one child run per trial.

Layout in MLflow: experiment (the spec's ``experiment`` or the study name) -> one
parent run tagged ``sweeplab.role=parent`` and ``sweeplab.study`` (found again on
resume, never duplicated) -> one child run per Optuna trial, tagged
``sweeplab.trial_number`` and linked both ways (Optuna trial attr ``mlflow_run_id``).
A trial the study's ``constraints`` rejected before it ran (it never trained) has no
child run: it lives in Optuna only (PRUNED, attrs ``sweeplab.rejected`` and
``sweeplab.fail_reason``); the parent run's ``n_rejected`` metric counts them.

Requests per trial: create the run (tags), one ``log_batch`` with params, per-epoch
metrics and final metrics, and one ``update_run`` with the terminal status; a COMPLETE
torch/keras trial adds one artifact upload (its ``evaluation.json``), and so does a user
function's trial that logged a model or files (``trial.log_model``, ``trial.log_artifact``). They go through
:class:`~sweeplab.tracking.writer.TrackingWriter`, off the driver's loop. Once per
study, the best trial's run gets its model and evaluation files (one folder upload and
one ``log_batch`` of tags; see :mod:`sweeplab.study.packaging`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sweeplab.core.errors import StorageError
from sweeplab.core.keys import (
    ATTR_NODE,
    ATTR_PRUNED_EPOCH,
    ATTR_REASON,
    ROLE_PARENT,
    TAG_BEST_RUN_ID,
    TAG_BEST_TRIAL,
    TAG_DURATION,
    TAG_LOGGED_MODEL,
    TAG_REPAIRED,
    TAG_RETRIED_BY,
    TAG_ROLE,
    TAG_STATE,
    TAG_STATUS,
    TAG_STUDY,
    TAG_TRIAL,
)
from sweeplab.core.records import FAILED, StudySummary, TrialDigest, TrialRecord

log = logging.getLogger("sweeplab.tracking")

STATUS_OF_STATE = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
MAX_BATCH = 1000


def resolve_tracking_uri(flag: str | None = None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else MLflow's default
    (``sqlite:///mlflow.db`` in the current directory, made absolute)."""
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + os.path.abspath(uri[len("sqlite:///") :])
    return uri


UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
"""What the UI's environment sets unless the user's already does: MLflow's server otherwise starts
job-runner processes for GenAI features sweeplab never uses (with MLflow's four web workers: 15
processes, 3.1 GB and 43 CPU-seconds in their first 25 s here; without either, 2, 0.5 GB, 4 s)."""


def mlflow_ui_command(tracking_uri: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The command (argv, environment) that serves the MLflow UI of ``tracking_uri`` on
    ``host:port`` (``sweeplab ui`` runs it in place of itself; ``sweeplab up`` runs it in the
    background): one web worker (MLflow's default is four, for one local user) and no job
    runners (:data:`UI_ENV`)."""
    import sys

    argv = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri, "--host", host,
            "--port", str(port), "--workers", "1"]
    return argv, {**UI_ENV, **os.environ}


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


class StudyTracker:
    """Logs a study to MLflow. All writes after :meth:`open` are asynchronous.

    Making one imports nothing of MLflow (its import is a large part of a study's start-up);
    :attr:`client` does, on first use. Trial operations may be queued before :meth:`open`:
    they wait, in order, until it has found or created the parent run.
    """

    def __init__(self, tracking_uri: str, experiment_name: str, study_name: str) -> None:
        from sweeplab.tracking.writer import TrackingWriter

        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.study_name = study_name
        self.writer = TrackingWriter(held=True)
        self.experiment_id = ""
        self.parent_run_id = ""
        self._run_ids: dict[int, str] = {}
        self._run_ready = threading.Condition()
        self.on_run_created: Callable[[int, str], None] | None = None

    @functools.cached_property
    def client(self) -> Any:
        """The ``MlflowClient`` of the tracking store (MLflow is imported here, once)."""
        from mlflow.tracking import MlflowClient

        from sweeplab.tracking.store_template import seed_sqlite_store

        seed_sqlite_store(self.tracking_uri)  # a new SQLite store: a copy, not MLflow's migrations one by one
        return MlflowClient(tracking_uri=self.tracking_uri)

    # ------------------------------------------------------------ parent run
    def open(self, spec_dict: Mapping[str, Any], parent_run_id: str | None = None) -> tuple[str, str]:
        """Find or create the experiment and the study's parent run (synchronously), then
        deliver the trial operations queued meanwhile.

        Raises StorageError naming the URI when the tracking store cannot be reached.
        """
        from mlflow.entities import RunStatus

        try:
            exp = self.client.get_experiment_by_name(self.experiment_name)
            if exp is None:
                self.experiment_id = self.client.create_experiment(self.experiment_name)
            else:
                if exp.lifecycle_stage == "deleted":
                    self.client.restore_experiment(exp.experiment_id)
                self.experiment_id = exp.experiment_id
            run_id = parent_run_id or self._find_parent()
            if run_id:
                self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            else:
                run = self.client.create_run(
                    self.experiment_id,
                    run_name=self.study_name,
                    tags={TAG_STUDY: self.study_name, TAG_ROLE: ROLE_PARENT},
                )
                run_id = run.info.run_id
                params: dict[str, str] = {}
                for key in ("sampler", "pruner", "objective", "resources"):
                    _flatten(key, spec_dict.get(key, {}), params)
                for key in ("direction", "metric", "trials", "workers", "seed", "timeout"):
                    _flatten(key, spec_dict.get(key), params)
                _flatten("deterministic", spec_dict.get("deterministic", False), params)
                self._log_batch(run_id, params=params)
                self.client.log_dict(run_id, dict(spec_dict), "spec.json")
            self.parent_run_id = run_id
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(
                f"cannot use the MLflow tracking store {self.tracking_uri}: {type(exc).__name__}: {exc}. "
                "Check --tracking-uri / $MLFLOW_TRACKING_URI and that the server is running."
            ) from exc
        self.writer.release()
        return self.experiment_id, self.parent_run_id

    def _find_parent(self) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG_STUDY}` = '{self.study_name}' and tags.`{TAG_ROLE}` = '{ROLE_PARENT}'",
            max_results=5,
        )
        return runs[0].info.run_id if runs else None

    def child_runs(self) -> dict[int, list[Any]]:
        """Child runs of the parent run by trial number (synchronous; for resume and tests)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_run_id}'",
            max_results=50000,
        )
        out: dict[int, list[Any]] = {}
        for run in runs:
            number = run.data.tags.get(TAG_TRIAL)
            if number is not None:
                out.setdefault(int(number), []).append(run)
        return out

    # ------------------------------------------------------------ child runs
    def trial_started(self, number: int, raw_params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        """Queue the creation of trial ``number``'s child run, with its params."""
        created = {"tried": False}

        def create() -> None:
            run_id = self._existing_child(number) if created["tried"] else None
            created["tried"] = True
            if run_id is None:
                all_tags = {
                    "mlflow.parentRunId": self.parent_run_id,
                    TAG_STUDY: self.study_name,
                    TAG_TRIAL: str(number),
                    TAG_STATE: "RUNNING",
                    **tags,
                }
                run = self.client.create_run(self.experiment_id, run_name=f"trial-{number:04d}", tags=all_tags)
                run_id = run.info.run_id
            with self._run_ready:
                self._run_ids[number] = run_id
                self._run_ready.notify_all()
            if self.on_run_created is not None:
                self.on_run_created(number, run_id)

        self.writer.submit(f"create run of trial {number}", create)

    def _existing_child(self, number: int) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`mlflow.parentRunId` = '{self.parent_run_id}' and tags.`{TAG_TRIAL}` = '{number}'"
            ),
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def tracking_is_down(self) -> bool:
        """True while an MLflow request is failing and being retried, or has been stuck for
        over a few seconds (MLflow's HTTP client retries inside one call during an outage):
        callers should not wait on the tracker then. So it counts before :meth:`open` (MLflow
        is still being imported, or its store opened), and while the requests queued until
        then are delivered."""
        return self.writer.held or self.writer.catching_up or self.writer.retrying or self.writer.stalled(after=2.0)

    def run_id(self, number: int, timeout: float = 0.0) -> str | None:
        """The child run id of trial ``number``, waiting up to ``timeout`` seconds."""
        with self._run_ready:
            self._run_ready.wait_for(lambda: number in self._run_ids, timeout=timeout)
            return self._run_ids.get(number)

    def trial_finished(self, record: TrialRecord) -> None:
        """Queue params, per-epoch metrics, final metrics, tags and status of a finished trial."""

        number = record.number

        def finish() -> None:
            run_id = self._run_ids.get(number) or self._existing_child(number)
            if run_id is None:
                raise RuntimeError(f"child run of trial {number} not created yet")
            self._finish_now(run_id, record)

        self.writer.submit(f"finish run of trial {number}", finish)

    def _finish_now(self, run_id: str, record: TrialRecord) -> None:
        """Log params, per-epoch and final metrics, tags and the terminal status of ``record``."""
        params: dict[str, str] = {k: str(v) for k, v in record.raw_params.items()}
        if "hidden_units" in record.params:
            params["hidden_units"] = json.dumps(list(record.params["hidden_units"]))
        metrics: list[tuple[str, float, int, int]] = []
        for epoch, stamp, values in record.history:
            for key, value in values.items():
                metrics.append((key, value, int(stamp * 1000), epoch))
        now = int(time.time() * 1000)
        for key, value in record.metrics.items():
            metrics.append((f"final_{key}", value, now, 0))
        if record.values:
            for i, value in enumerate(record.values):
                metrics.append(("objective_value" if i == 0 else f"objective_value_{i}", value, now, 0))
        tags = {TAG_STATE: record.state}
        if record.pruned_epoch is not None:
            tags[ATTR_PRUNED_EPOCH] = str(record.pruned_epoch)
        if record.reason:
            tags[ATTR_REASON] = record.reason[:4900]
        if record.node:
            tags[ATTR_NODE] = record.node
        if record.retried_by is not None:
            tags[TAG_RETRIED_BY] = str(record.retried_by)
        tags[TAG_DURATION] = f"{record.duration:.3f}"
        self._log_batch(run_id, params=params, metrics=metrics, tags=tags)
        status = STATUS_OF_STATE.get(record.state, "FAILED")
        self.client.set_terminated(run_id, status=status, end_time=now)

    def reconcile(self, digest: list[TrialDigest], metric: str) -> dict[str, int]:
        """Make MLflow agree with Optuna after a crash (synchronously, before new trials).

        For every finished Optuna trial in ``digest`` (see the coordinator's
        ``finished_digest``): a child run left RUNNING is completed from what Optuna
        holds (params, the study metric per epoch, final metrics, status, reason, retry
        link); a missing child run is created the same way; duplicates of one trial
        (a create retried across an outage) are deleted, keeping the linked one. Returns
        counts of what was repaired.
        """
        fixed = {"closed": 0, "created": 0, "deleted": 0}
        runs = self.child_runs()
        for item in digest:
            number = item.number
            existing = runs.get(number, [])
            if len(existing) > 1:
                keep = next((r for r in existing if r.info.run_id == item.run_id), existing[0])
                for extra in existing:
                    if extra.info.run_id != keep.info.run_id:
                        self.client.delete_run(extra.info.run_id)
                        fixed["deleted"] += 1
                existing = [keep]
            if existing and existing[0].info.status != "RUNNING":
                self._relink(number, existing[0].info.run_id, item.run_id)
                continue
            if existing:
                run_id = existing[0].info.run_id
                fixed["closed"] += 1
                has_history = metric in existing[0].data.metrics
            else:
                tags = {"mlflow.parentRunId": self.parent_run_id, TAG_STUDY: self.study_name, TAG_TRIAL: str(number),
                        TAG_REPAIRED: "true"}
                created = self.client.create_run(self.experiment_id, run_name=f"trial-{number:04d}", tags=tags)
                run_id = created.info.run_id
                fixed["created"] += 1
                has_history = False
            reason = item.reason
            if item.state == FAILED and not reason:
                reason = "lost: the driver stopped before the trial finished"
            history = [] if has_history else [(epoch, time.time(), {metric: value})
                                              for epoch, value in sorted(item.intermediate.items())]
            record = TrialRecord(number=number, state=item.state, values=item.values, params={},
                                 raw_params=item.raw_params, metrics=item.metrics, history=history, reason=reason,
                                 pruned_epoch=item.pruned_epoch, node=item.node, duration=0.0, attempt=0,
                                 retry_of=item.retry_of, retried_by=item.retried_by)
            self._finish_now(run_id, record)
            with self._run_ready:
                self._run_ids[number] = run_id
            self._relink(number, run_id, item.run_id)
        return fixed

    def _relink(self, number: int, run_id: str, linked: str | None) -> None:
        """Record trial ``number``'s run in the study when the study does not point to it (a run
        created by the repair, or a link that was in flight when the driver died)."""
        if linked != run_id and self.on_run_created is not None:
            self.on_run_created(number, run_id)

    def log_artifacts(
        self,
        run_id: str | None,
        files: Mapping[str, bytes | str | Mapping[str, Any]],
        *,
        trial: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Queue the upload of ``files`` (artifact path -> content) into a run, then ``tags``.

        The run is ``run_id``, or trial ``trial``'s child run (resolved when the op runs,
        after its creation). Content: bytes as they are, str as UTF-8, a mapping as JSON.
        Paths are relative POSIX paths (``model/MLmodel``); absolute ones or ones with
        ``..`` raise ValueError here, before anything is queued. One ``log_artifacts``
        request (a folder upload) plus one ``log_batch`` when there are tags; retried as a
        whole (uploads overwrite, so a retry duplicates nothing).
        """
        blobs: dict[str, bytes] = {}
        for name, content in files.items():
            parts = Path(name).parts
            if not name or Path(name).is_absolute() or ".." in parts or "\\" in name or "\0" in name:
                raise ValueError(f"artifact paths must be relative and stay inside the run, got {name!r}")
            if isinstance(content, bytes):
                blobs[name] = content
            elif isinstance(content, str):
                blobs[name] = content.encode("utf-8")
            else:
                blobs[name] = json.dumps(content, indent=2, default=str).encode("utf-8")
        if run_id is None and trial is None:
            raise ValueError("log_artifacts needs a run_id or a trial number")
        what = f"trial {trial}" if run_id is None else f"run {run_id}"

        def upload() -> None:
            target = run_id
            if target is None and trial is not None:
                target = self._run_ids.get(trial) or self._existing_child(trial)
            if target is None:
                raise RuntimeError(f"child run of trial {trial} not created yet")
            if blobs:
                with tempfile.TemporaryDirectory(prefix="sweeplab-artifacts-") as tmp:
                    for name, data in blobs.items():
                        path = Path(tmp, name)
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(data)
                    self.client.log_artifacts(target, tmp)
            if tags:
                self._log_batch(target, tags=tags)

        self.writer.submit(f"artifacts of {what} ({len(blobs)} file(s))", upload)

    def trial_artifacts(self, number: int, files: Mapping[str, bytes | str | Mapping[str, Any]]) -> None:
        """Queue ``files`` (e.g. ``evaluation.json``, what a user function logged) into trial
        ``number``'s child run; a model a user function logged (``model/MLmodel``) also tags
        the run ``sweeplab.logged_model=model``."""
        if files:
            tags = {TAG_LOGGED_MODEL: "model"} if "model/MLmodel" in files else None
            self.log_artifacts(None, files, trial=number, tags=tags)

    def _log_batch(
        self,
        run_id: str,
        params: Mapping[str, str] | None = None,
        metrics: list[tuple[str, float, int, int]] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """One ``log_batch`` request (several when over MLflow's 1000-entity limit)."""
        from mlflow.entities import Metric, Param, RunTag

        p = [Param(k[:250], str(v)[:6000]) for k, v in (params or {}).items()]
        m = [Metric(k, v, ts, step) for k, v, ts, step in (metrics or [])]
        t = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        while p or m or t:
            batch_p, p = p[:100], p[100:]
            batch_t, t = t[:100], t[100:]
            room = MAX_BATCH - len(batch_p) - len(batch_t)
            batch_m, m = m[:room], m[room:]
            self.client.log_batch(run_id, metrics=batch_m, params=batch_p, tags=batch_t)

    # ------------------------------------------------------------ end of study
    def close(self, summary: StudySummary | None, status: str = "FINISHED", timeout: float = 60.0,
              html_report: str | None = None) -> bool:
        """Log the best value and params on the parent run, end it, drain the queue.

        Returns True when every queued request was delivered within ``timeout``.
        """

        def finish_parent() -> None:
            metrics: list[tuple[str, float, int, int]] = []
            params: dict[str, str] = {}
            tags = {TAG_STATUS: status}
            now = int(time.time() * 1000)
            if summary is not None:
                for key, count in (("n_trials", summary.n_trials), ("n_complete", summary.n_complete),
                                   ("n_pruned", summary.n_pruned), ("n_failed", summary.n_failed),
                                   ("n_rejected", summary.n_rejected)):
                    metrics.append((key, float(count), now, 0))
                if isinstance(summary.best_value, (int, float)):
                    metrics.append(("best_value", float(summary.best_value), now, 0))
                if summary.best_trial is not None:
                    tags[TAG_BEST_TRIAL] = str(summary.best_trial)
                if summary.best_run_id:
                    tags[TAG_BEST_RUN_ID] = str(summary.best_run_id)
                for k, v in (summary.best_params or {}).items():
                    tags[f"best.{k}"] = str(v)
            self._log_batch(self.parent_run_id, params=params, metrics=metrics, tags=tags)
            if html_report:
                self.client.log_artifact(self.parent_run_id, html_report)
            self.client.set_terminated(self.parent_run_id, status=status, end_time=now)

        self.writer.submit("finish parent run", finish_parent)
        ok = self.writer.close(timeout)
        if not ok:
            log.warning("MLflow: %d request(s) could not be delivered: %s (last error: %s)",
                        len(self.writer.undelivered), ", ".join(self.writer.undelivered[:5]), self.writer.last_error)
        return ok

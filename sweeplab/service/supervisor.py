"""The study supervisor: a detached Ray actor that runs the studies submitted to the service.

Each study runs on a thread of the supervisor with the same code as a plain ``sweeplab
run`` (:func:`sweeplab.api.plan_run` then :func:`sweeplab.study.run.run_study`): same
stores, same MLflow parent and child runs, same resume path, same summary. Its trials
are Ray tasks of the supervisor's job, so they run on the worker processes the service
warmed at ``up`` (frameworks already imported), and they share those workers by weight
(:mod:`sweeplab.service.fairshare`).

Clients talk to it over a Unix socket on its machine (one JSON line each way, see
:mod:`sweeplab.service.client`); the kernel tells it who is calling (``SO_PEERCRED``), so
only the OS user who submitted a study, or the operator who ran ``up`` (or root), can
cancel it. The socket is readable by its operator only, unless ``up --shared``.

What it knows is kept in ``studies.json`` beside the state file: when Ray restarts the
actor (it was killed, its process died), the studies that were running are resumed
through the study's own resume path (trials lost in flight are failed and retried).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import socket
import socketserver
import struct
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeplab.core.checks import did_you_mean
from sweeplab.core.errors import SweeplabError
from sweeplab.core.records import FAILED as TRIAL_FAILED
from sweeplab.core.records import TrialRecord, failure_key
from sweeplab.service.fairshare import FairShare, StudyShare

log = logging.getLogger("sweeplab.service")

QUEUED, RUNNING, FINISHED, FAILED, CANCELLED, STOPPED = (
    "queued", "running", "finished", "failed", "cancelled", "stopped")
ACTIVE = (QUEUED, RUNNING)
"""States of a study the supervisor is running (resumed after a restart of the supervisor)."""
CANCEL_WAIT_S = 120.0
"""How long ``cancel`` waits for a study to stop (its trials in flight told, its runs closed)."""
MAX_STATUS_WAIT_S = 5.0
"""The longest a ``status`` request with ``wait_s`` is held (see :meth:`Supervisor.handle`)."""
_THREAD_PREFIX = "study:"


@dataclass
class _Study:
    """One submitted study, as the supervisor tracks it."""

    name: str
    request: dict[str, Any]  # what the client sent (the resolved spec, stores, options)
    owner_uid: int
    priority: float
    state: str = QUEUED
    trials: int = 0
    initial: int = 0  # trials already finished when this run started (resumed studies)
    seen: int = 0  # trials finished by this run
    counts: dict[str, int] = field(default_factory=dict)
    best: float | None = None
    error: str | None = None
    exit_code: int = 0
    summary: dict[str, Any] | None = None
    submitted_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    first_trial_at: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    cancelled_by: int | None = None
    thread: threading.Thread | None = None
    share: StudyShare | None = None

    def opened(self, finished: int) -> None:
        """The study's session is open; ``finished``: its trials finished before this run."""
        self.initial = finished

    @property
    def done(self) -> int:
        """Trials finished: before this run, and by it."""
        return self.initial + self.seen

    def view(self, held: int) -> dict[str, Any]:
        return {
            "study": self.name, "state": self.state, "owner_uid": self.owner_uid, "owner": _user_name(self.owner_uid),
            "priority": self.priority, "trials": self.trials, "done": self.done,
            "counts": dict(self.counts), "best": self.best, "in_flight": held, "error": self.error,
            "exit_code": self.exit_code, "submitted_at": self.submitted_at, "ended_at": self.ended_at,
            "first_trial_at": self.first_trial_at, "storage": self.request.get("storage"),
            "tracking_uri": self.request.get("tracking_uri"), "summary": self.summary,
        }

    def persisted(self) -> dict[str, Any]:
        return {"request": self.request, "owner_uid": self.owner_uid, "priority": self.priority,
                "state": self.state, "submitted_at": self.submitted_at, "error": self.error}


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class ServiceRequestError(SweeplabError):
    """A request the supervisor refuses (its message goes back to the client, with ``exit_code``)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Supervisor:
    """The service's study supervisor (run as a detached, named Ray actor; see the module docstring).

    ``home``: its working directory (where ``up`` ran); ``state_dir``: the folder of the
    state file (``studies.json`` and ``logs/`` go there); ``socket_path``: where it listens;
    ``workers``: the pool's trial slots; ``frameworks``: imported in the pool's worker
    processes at start; ``shared``: let every local user connect (else its operator only);
    ``warm_stores``: the Optuna storage URL and MLflow tracking URI that studies default to,
    opened ahead of the first study (None: not opened, only imported); ``local``: Ray is the
    service's own, on this machine alone, so each study's coordinator runs in this process
    (trials reach it on 127.0.0.1); else (a cluster) it is an actor on this node, one of the
    :class:`~sweeplab.service.spares.Spares` started ahead.
    """

    def __init__(self, home: str, state_dir: str, socket_path: str, workers: int, frameworks: list[str],
                 shared: bool = False, warm_stores: tuple[str | None, str | None] = (None, None),
                 local: bool = False) -> None:
        os.chdir(home)
        self.home, self.state_dir, self.socket_path = home, Path(state_dir), socket_path
        self.logs_dir = self.state_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.operator_uid = os.getuid()
        self.pool = FairShare(workers)
        self.workers, self.frameworks, self.shared = workers, list(frameworks), shared
        self.warm_stores = warm_stores
        self._warm = threading.Event()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # a study's progress or state changed
        self.studies: dict[str, _Study] = {}
        self._registry = self.state_dir / "studies.json"
        _route_study_logs(self.logs_dir)
        self.local = local
        self.spares = None
        if not local:
            from sweeplab.service.spares import Spares

            self.spares = Spares(_node_id())
        self._resume_known()  # before listening: a client never sees a restarted supervisor without its studies
        self._server = self._serve()
        threading.Thread(target=self._warm_up, name="sweeplab-warm-up", daemon=True).start()

    # ------------------------------------------------------------------ actor methods
    def ready(self) -> dict[str, Any]:
        """Where it listens and its process (``up`` waits on this)."""
        return {"pid": os.getpid(), "socket": self.socket_path, "node_id": _node_id()}

    def warmed(self, timeout: float) -> bool:
        """Wait until the pool and the driver side are warm (see :meth:`_warm_up`); True when
        they are, False after ``timeout`` seconds (``up`` waits on this before saying ready)."""
        return self._warm.wait(timeout)

    def shutdown(self, timeout: float = CANCEL_WAIT_S) -> list[str]:
        """Stop every running study cleanly (as ``cancel`` does, state ``stopped``: resumed by
        ``sweeplab run`` on the same spec, not at the next start), stop listening; return their names."""
        with self._lock:
            active = [s for s in self.studies.values() if s.state in ACTIVE]
            for study in active:
                study.stop.set()
        deadline = time.time() + timeout
        for study in active:
            if study.thread is not None:
                study.thread.join(max(0.0, deadline - time.time()))
        self._server.shutdown()
        self._server.server_close()
        if self.spares is not None:
            self.spares.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        return [s.name for s in active]

    # ------------------------------------------------------------------ requests
    def handle(self, request: dict[str, Any], uid: int) -> dict[str, Any]:
        """Answer one client request (``op``: ping, submit, list, status, logs, cancel) from OS user ``uid``.

        ``status`` with ``wait_s`` (at most :data:`MAX_STATUS_WAIT_S`) is answered when the study
        ends, or when it has finished more than ``seen_done`` trials if that is given (the
        ``done`` of the client's last view), or after ``wait_s`` (:meth:`_wait_for_change`);
        its answer says ``waited``.
        """
        op = request.get("op")
        try:
            if op == "ping":
                return {"ok": True, "pid": os.getpid(), "workers": self.workers, "frameworks": self.frameworks,
                        "warm": self._warm.is_set()}
            if op == "submit":
                return {"ok": True, **self.submit(request, uid)}
            if op == "list":
                with self._lock:
                    held = self.pool.held()
                    views = [s.view(held.get(s.name, 0)) for s in self.studies.values()]
                return {"ok": True, "studies": sorted(views, key=lambda v: v["submitted_at"]),
                        "workers": self.workers}
            if op == "status":
                study = self._find(request)
                wait_s = min(float(request.get("wait_s") or 0.0), MAX_STATUS_WAIT_S)
                if wait_s > 0:
                    seen = request.get("seen_done")
                    self._wait_for_change(study, None if seen is None else int(seen), wait_s)
                return {"ok": True, **self._view(study), "waited": wait_s > 0}
            if op == "logs":
                study = self._find(request)
                path = self.logs_dir / f"{study.name}.log"
                return {"ok": True, "text": path.read_text() if path.exists() else ""}
            if op == "cancel":
                return {"ok": True, **self.cancel(self._find(request), uid)}
            raise ServiceRequestError(f"unknown request {op!r}", 2)
        except ServiceRequestError as exc:
            return {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
        except SweeplabError as exc:
            return {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
        except Exception as exc:  # a bug must not take the supervisor down; the client says it
            log.exception("request %s failed", op)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "exit_code": 1}

    def _find(self, request: dict[str, Any]) -> _Study:
        name = str(request.get("study", ""))
        with self._lock:
            study = self.studies.get(name)
            known = list(self.studies)
        if study is None:
            raise ServiceRequestError(
                f"the service knows no study {name!r}{did_you_mean(name, known)} (`sweeplab status` lists the studies "
                "it runs; a study run without the service is read with `sweeplab status STUDY` from its stores)", 1)
        return study

    def _wait_for_change(self, study: _Study, seen_done: int | None, wait_s: float) -> None:
        """Return once ``study`` has left the active states, or finished more than ``seen_done``
        trials when that is given, or after ``wait_s``: a client that follows a study learns of
        its end (and its progress) at once, not at its next poll."""
        deadline = time.monotonic() + wait_s
        with self._changed:
            while study.state in ACTIVE and (seen_done is None or study.done <= seen_done):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _view(self, study: _Study) -> dict[str, Any]:
        return study.view(self.pool.held().get(study.name, 0))

    def submit(self, request: dict[str, Any], uid: int, resumed: bool = False) -> dict[str, Any]:
        """Check the study (its spec against the stored one) and start it on a thread; return its view."""
        from sweeplab.api import plan_run
        from sweeplab.spec import parse_spec

        spec = parse_spec(request["spec"], request.get("source", "spec"))
        name = spec.study if not request.get("fork") else str(request["fork"])
        with self._lock:
            known = self.studies.get(name)
            if known is not None and known.state in ACTIVE and known.thread is not None:
                raise ServiceRequestError(
                    f"study {name!r} is already running in the service; follow it with `sweeplab status {name} "
                    f"--watch`, stop it with `sweeplab cancel {name}`", 1)
        priority = float(request.get("priority") or spec.priority)
        resolved, options = plan_run(
            spec, fork=request.get("fork"), storage=request["storage"], tracking_uri=request["tracking_uri"],
            fail_fast=int(request.get("fail_fast", 3)), progress=False, log_model=bool(request.get("log_model", True)),
            allow_local_stores=bool(request.get("allow_local_stores", False)),
            resume_command=request.get("resume_command") or f"sweeplab run SPEC  (study {name})",
            speedups=bool(request.get("speedups", True)))
        study = _Study(name=resolved.study, request=request, owner_uid=uid, priority=priority,
                       trials=resolved.trials)
        study.share = self.pool.join(study.name, priority, resolved.workers)

        import dataclasses

        options = dataclasses.replace(
            options, stop=study.stop, gate=study.share, workers_here=self.local, on_open=study.opened,
            coordinator_actor=self.spares.take if self.spares is not None else None,
            on_record=lambda record: self._recorded(study, record))
        with self._lock:
            self.studies[study.name] = study
            self._save()
        _study_log(self.logs_dir, study.name,
                   f"{'resumed after a restart of the supervisor' if resumed else 'submitted'} by "
                   f"{_user_name(uid)} (uid {uid}): {resolved.trials} trials, {resolved.workers} workers, priority "
                   f"{priority:g}, storage {options.storage_url}, tracking {options.tracking_uri}")
        study.thread = threading.Thread(target=self._run, args=(study, resolved, options),
                                        name=_THREAD_PREFIX + study.name, daemon=True)
        study.thread.start()
        return self._view(study)

    def cancel(self, study: _Study, uid: int) -> dict[str, Any]:
        """Stop ``study`` cleanly (trials in flight failed as lost, retried on resume); only its
        owner, the operator or root may."""
        if uid not in (study.owner_uid, self.operator_uid, 0):
            raise ServiceRequestError(
                f"permission denied: study {study.name!r} was started by {_user_name(study.owner_uid)} "
                f"(uid {study.owner_uid}); only that user or the service's operator "
                f"{_user_name(self.operator_uid)} (uid {self.operator_uid}) can cancel it", 1)
        if study.state not in ACTIVE:
            return self._view(study)
        study.cancelled_by = uid
        study.stop.set()
        _study_log(self.logs_dir, study.name, f"cancel requested by {_user_name(uid)} (uid {uid})")
        if study.thread is not None:
            study.thread.join(CANCEL_WAIT_S)
        return self._view(study)

    # ------------------------------------------------------------------ running a study
    def _run(self, study: _Study, spec: Any, options: Any) -> None:
        from sweeplab.study.run import StudyInterrupted, run_study

        study.state = RUNNING
        try:
            summary = run_study(spec, options)
        except StudyInterrupted:
            study.state = CANCELLED if study.cancelled_by is not None else STOPPED
            study.exit_code = 130
            _study_log(self.logs_dir, study.name, f"{study.state}: trials in flight were failed as lost and are "
                                                  "retried when the study resumes (`sweeplab run SPEC`)")
        except SweeplabError as exc:
            study.state, study.error, study.exit_code = FAILED, str(exc), exc.exit_code
            _study_log(self.logs_dir, study.name, f"failed: {exc}")
        except BaseException as exc:  # the supervisor outlives any study's bug
            study.state, study.error, study.exit_code = FAILED, f"{type(exc).__name__}: {exc}", 1
            _study_log(self.logs_dir, study.name, "failed:\n" + traceback.format_exc())
        else:
            study.state, study.summary = FINISHED, summary.to_json()
            best = "" if summary.best_value is None else f", best {summary.best_value} (trial {summary.best_trial})"
            _study_log(self.logs_dir, study.name, f"finished: {summary.n_trials} trials{best}")
        finally:
            study.ended_at = time.time()
            if study.share is not None:
                study.share.leave()
            with self._changed:
                self._save()
                self._changed.notify_all()

    def _recorded(self, study: _Study, record: TrialRecord) -> None:
        if study.first_trial_at is None:
            study.first_trial_at = time.time()
        if record.retried_by is None:
            study.seen += 1
            study.counts[record.state] = study.counts.get(record.state, 0) + 1
        if record.state == TRIAL_FAILED:
            retry = f" (retried as trial {record.retried_by})" if record.retried_by is not None else ""
            _study_log(self.logs_dir, study.name, f"trial {record.number} failed{retry}: {failure_key(record.reason)}")
        if record.state == "COMPLETE" and record.values:
            value = record.values[0]
            maximize = study.request.get("spec", {}).get("direction", "maximize") == "maximize"
            if study.best is None or (value > study.best if maximize else value < study.best):
                study.best = value
        self._notify()

    # ------------------------------------------------------------------ persistence, restart
    def _save(self) -> None:
        data = {name: s.persisted() for name, s in self.studies.items()}
        tmp = self._registry.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str))
        os.replace(tmp, self._registry)

    def _resume_known(self) -> None:
        """Resume the studies a previous supervisor was running (it was killed or its process died)."""
        try:
            known = json.loads(self._registry.read_text())
        except (OSError, ValueError):
            return
        for name, entry in known.items():
            if entry.get("state") in ACTIVE:
                try:
                    self.submit(entry["request"], int(entry["owner_uid"]), resumed=True)
                except Exception as exc:
                    log.error("could not resume study %s: %s", name, exc)
                    _study_log(self.logs_dir, name, f"could not resume after a restart of the supervisor: {exc}")
            else:
                with self._lock:
                    self.studies[name] = _Study(name=name, request=entry["request"], owner_uid=int(entry["owner_uid"]),
                                                priority=float(entry["priority"]), state=entry["state"],
                                                error=entry.get("error"), submitted_at=entry.get("submitted_at", 0))

    def _warm_up(self) -> None:
        """Import the frameworks (and the study code) in ``workers`` worker processes of this job,
        so the first trials of every study start warm, and meanwhile pay the driver side's
        one-time costs here (:func:`~sweeplab.study.session.warm_driver`); then set ``_warm``."""
        try:
            import ray

            from sweeplab.service.pool import warm_pool_worker
            from sweeplab.study.session import warm_driver

            task = ray.remote(num_cpus=1, max_retries=0)(warm_pool_worker)
            refs = [task.remote(self.frameworks) for _ in range(self.workers)]
            try:
                warm_driver(*self.warm_stores)
            except Exception as exc:  # the first study reports a store it cannot open, with its context
                log.warning("could not open the stores ahead of the first study: %s", exc)
            pids = ray.get(refs, timeout=600)
            log.info("warm pool: %d worker processes with %s imported", len(set(pids)), self.frameworks)
        except Exception as exc:  # only an optimization: trials import what they need anyway
            log.warning("could not warm the worker pool: %s", exc)
        finally:
            self._warm.set()

    # ------------------------------------------------------------------ socket server
    def _serve(self) -> socketserver.ThreadingUnixStreamServer:
        return serve_socket(self.socket_path, self.shared, self.handle)


def serve_socket(path: str, shared: bool, handle: Any) -> socketserver.ThreadingUnixStreamServer:
    """Answer requests on the Unix socket ``path`` on a background thread: each connection sends
    one JSON line, ``handle(request, uid)`` answers it (``uid``: the caller's OS user, from the
    kernel). The socket is read-write for its owner only, or for every local user when ``shared``."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            creds = self.request.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            line = self.rfile.readline()
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                answer: dict[str, Any] = {"ok": False, "error": f"bad request: {exc}", "exit_code": 2}
            else:
                answer = handle(request, uid)
            self.wfile.write((json.dumps(answer, default=str) + "\n").encode())

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    old = os.umask(0o111 if shared else 0o177)  # the socket: rw for all (shared), else its owner only
    try:
        server = socketserver.ThreadingUnixStreamServer(path, Handler)
    finally:
        os.umask(old)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="sweeplab-service-socket", daemon=True).start()
    return server


def _node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


class _StudyLogHandler(logging.Handler):
    """Sends each log record of a study's thread to that study's log file."""

    def __init__(self, logs_dir: Path) -> None:
        super().__init__(logging.INFO)
        self.logs_dir = logs_dir
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        name = threading.current_thread().name
        if name.startswith(_THREAD_PREFIX):
            _study_log(self.logs_dir, name[len(_THREAD_PREFIX):], self.format(record))


def _route_study_logs(logs_dir: Path) -> None:
    logging.getLogger("sweeplab").setLevel(logging.INFO)
    logging.getLogger().addHandler(_StudyLogHandler(logs_dir))


_LOG_LOCK = threading.Lock()


def _study_log(logs_dir: Path, study: str, line: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with _LOG_LOCK, open(logs_dir / f"{study}.log", "a") as out:
        out.write(f"{stamp} {line}\n")

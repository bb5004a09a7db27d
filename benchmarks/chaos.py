"""Chaos soak: one long study on a real cluster while its infrastructure is killed under it.

One study of ``--trials`` trials (median pruner, an analytic objective that reports a few
epochs and takes about half a second) runs on a two-node Ray cluster on loopback
addresses (``ray start --head`` plus ``ray start --address``, token auth on), with
PostgreSQL as the Optuna storage and a real ``mlflow server`` on PostgreSQL as tracking.
The driver is ``python -m sweeplab.cli run SPEC --json --address ADDR ...`` in its own
process group. A fault injector, at moments drawn from ``random.Random(seed)``, one
fault at a time:

- ``driver_kill``: SIGKILLs the driver's process group and starts the same command again
  (the study resumes);
- ``worker_kill``: SIGKILLs every process of the worker node, then starts the node again;
- ``db_backends``: terminates every PostgreSQL backend of the Optuna database;
- ``mlflow_outage``: stops the MLflow server for a few seconds, then starts it again on
  the same port.

Each fault waits until a drawn number of trials has finished and at least one trial
finished since the previous fault (so a restarted driver is past its start-up), then a
drawn fraction of a trial's duration, so it lands while trials are in flight. The kinds
are drawn so that each one happens at least once when there are at least four faults.

When the driver exits 0 every invariant of README "What sweeplab guarantees" that the
faults could break is checked and printed with PASS/FAIL (see :func:`check_invariants`);
the exit status is 1 when one fails. This is a soak, not a timed test: ``make chaos``.
``tests/cluster/test_chaos.py`` runs a short one through :func:`run_chaos`.

    .venv/bin/python benchmarks/chaos.py --trials 200 --seed 0 --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SUPPORT = ROOT / "tests" / "support"

FAULT_KINDS = ("driver_kill", "worker_kill", "db_backends", "mlflow_outage")
STUDY = "chaos"
METRIC = "score"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
MAX_UNEXPECTED_EXITS = 5


def setup_paths() -> None:
    """Put tests/support (the services and the objective) on sys.path and on the PYTHONPATH
    that the Ray nodes inherit, and clear variables that would point sweeplab elsewhere."""
    if str(SUPPORT) not in sys.path:
        sys.path.insert(0, str(SUPPORT))
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(SUPPORT) not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), *parts])
    for var in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE"):
        os.environ.pop(var, None)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class PlannedFault:
    """One fault of the plan: its kind and when it fires."""

    kind: str
    after_trials: int  # fires once this many trials finished (and one more since the last fault)
    delay_s: float  # then after this long: a random moment of the trials in flight
    downtime_s: float  # how long the driver / worker node / MLflow server stays down


@dataclass
class Fault:
    """A fault that happened."""

    kind: str
    at_s: float  # seconds since the first driver start
    duration_s: float  # from the fault to the service being back
    progress: int  # trials finished (COMPLETE or PRUNED) when it hit
    running: int  # trials RUNNING in Optuna when it hit
    detail: str
    epoch: float = 0.0  # time.time() when it hit


@dataclass
class Invariant:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class ChaosResult:
    trials: int
    seed: int
    workers: int
    faults: list[Fault] = field(default_factory=list)
    skipped: list[PlannedFault] = field(default_factory=list)  # planned, but the study finished first
    invariants: list[Invariant] = field(default_factory=list)
    wall_s: float = 0.0
    driver_starts: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    tmp_dir: str = ""
    error: str | None = None  # why the soak stopped before the driver finished

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.invariants) and all(i.ok for i in self.invariants)

    def faults_by_kind(self) -> dict[str, int]:
        counts = Counter(f.kind for f in self.faults)
        return {kind: counts[kind] for kind in FAULT_KINDS if counts[kind]}

    def failed(self) -> list[Invariant]:
        return [i for i in self.invariants if not i.ok]

    def report(self) -> str:
        lines = [f"chaos soak: {self.trials} trials, seed {self.seed}, {self.workers} workers, "
                 f"wall {self.wall_s:.1f}s, driver started {self.driver_starts} time(s)"]
        if self.stats:
            lines.append("study: " + ", ".join(f"{k} {v}" for k, v in self.stats.items()))
        lines.append(f"faults injected: {len(self.faults)} "
                     f"({', '.join(f'{k} {v}' for k, v in self.faults_by_kind().items()) or 'none'})")
        for i, f in enumerate(self.faults, 1):
            lines.append(f"  {i:>3}. t={f.at_s:7.1f}s  {f.kind:<14} at {f.progress:>4} finished, "
                         f"{f.running} running, back after {f.duration_s:5.1f}s: {f.detail}")
        if self.skipped:
            lines.append(f"faults skipped (the study finished first): {[p.kind for p in self.skipped]}")
        for text in self.unexpected_exits:
            lines.append(f"UNEXPECTED driver exit: {text}")
        if self.error:
            lines.append(f"ABORTED: {self.error}")
        lines.append(f"invariants: {sum(i.ok for i in self.invariants)}/{len(self.invariants)} pass")
        for inv in self.invariants:
            lines.append(f"  {'PASS' if inv.ok else 'FAIL'}  {inv.name}" + (f": {inv.detail}" if inv.detail else ""))
        lines.append(f"logs: {self.tmp_dir}")
        lines.append("RESULT: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["faults_by_kind"] = self.faults_by_kind()
        return out


class ChaosAborted(Exception):
    """The soak could not go on (timeout, stall, a driver that keeps failing)."""


# --------------------------------------------------------------------------- plan
def plan_faults(rng: random.Random, trials: int, n_faults: int, trial_seconds: float) -> list[PlannedFault]:
    """``n_faults`` faults drawn from ``rng``; each kind at least once when ``n_faults >= 4``.

    The trial counts they wait for are spread over the first three quarters of the study:
    one drawn in each of ``n_faults`` equal slices, so the last ones still find trials to hit.
    """
    kinds = list(FAULT_KINDS[:n_faults]) if n_faults < len(FAULT_KINDS) else list(FAULT_KINDS)
    kinds += [rng.choice(FAULT_KINDS) for _ in range(n_faults - len(kinds))]
    rng.shuffle(kinds)
    low, high = max(1.0, trials * 0.03), max(1.0, trials * 0.75)
    width = (high - low) / max(n_faults, 1)
    points = [max(1, int(low + width * (i + rng.random()))) for i in range(n_faults)]
    downtime = {"driver_kill": (0.0, 1.0), "worker_kill": (1.0, 4.0), "db_backends": (0.0, 0.0),
                "mlflow_outage": (2.0, 6.0)}
    return [PlannedFault(kind, after, round(rng.uniform(0.0, trial_seconds), 3),
                         round(rng.uniform(*downtime[kind]), 3))
            for kind, after in zip(kinds, points, strict=True)]


def study_spec(trials: int, workers: int, seed: int, epochs: int, trial_seconds: float,
               max_retries: int | None) -> dict[str, Any]:
    return {
        "study": STUDY,
        "direction": "maximize",
        "metric": METRIC,
        "trials": trials,
        "workers": workers,
        "resources": {"cpu": 1, "gpu": 0},
        "seed": seed,
        **({"max_retries": max_retries} if max_retries is not None else {}),
        "sampler": {"name": "tpe"},
        "pruner": {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 1},
        "objective": {"framework": "python", "callable": "sweeplab_test_objectives:sleepy", "epochs": epochs,
                      "options": {"seconds": trial_seconds}},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    }


# --------------------------------------------------------------------------- processes
def _dsn(sqlalchemy_url: str) -> str:
    """A libpq DSN from a SQLAlchemy URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return "postgresql://" + sqlalchemy_url.split("://", 1)[1]


class Driver:
    """``sweeplab run`` as a subprocess in its own process group; each start logs to its own files."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        self.cmd, self.env, self.cwd = cmd, env, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        n = self.starts
        with open(self.cwd / f"driver-{n:02d}.out", "wb") as out, open(self.cwd / f"driver-{n:02d}.err", "wb") as err:
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=out, stderr=err,
                                         start_new_session=True)

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the driver's whole process group (as when its machine dies)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)

    def tail(self, limit: int = 3000) -> str:
        path = self.cwd / f"driver-{self.starts:02d}.err"
        try:
            return path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def result(self) -> dict[str, Any] | None:
        try:
            lines = (self.cwd / f"driver-{self.starts:02d}.out").read_text().strip().splitlines()
            return json.loads(lines[-1]) if lines else None
        except (OSError, ValueError):
            return None


class StudyProbe:
    """Reads the study's progress straight from PostgreSQL, with a fresh connection each
    time (the chaos terminates every backend of the database, this one's too)."""

    def __init__(self, storage_url: str, study: str) -> None:
        self.dsn = _dsn(storage_url)
        self.study = study

    def _query(self, sql: str) -> list[tuple[Any, ...]] | None:
        import psycopg

        try:
            with psycopg.connect(self.dsn, connect_timeout=5) as conn:
                return conn.execute(sql, (self.study,)).fetchall()
        except psycopg.Error:
            return None  # no schema yet, or the backend was just terminated: ask again later

    def states(self) -> Counter[str] | None:
        rows = self._query("SELECT t.state, count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
                           "WHERE s.study_name = %s GROUP BY t.state")
        return None if rows is None else Counter({str(state): int(n) for state, n in rows})

    def finished(self) -> dict[int, tuple[str, float | None, str]] | None:
        """number -> (state, value, completion time) of every finished trial."""
        rows = self._query(
            "SELECT t.number, t.state, v.value, t.datetime_complete FROM trials t "
            "JOIN studies s ON s.study_id = t.study_id "
            "LEFT JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0 "
            "WHERE s.study_name = %s AND t.state IN ('COMPLETE', 'PRUNED', 'FAIL')")
        if rows is None:
            return None
        return {int(n): (str(state), None if value is None else float(value), str(done))
                for n, state, value, done in rows}


def terminate_backends(storage_url: str) -> int:
    """Terminate every PostgreSQL backend connected to the database of ``storage_url``."""
    import psycopg

    name = storage_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
    return sum(1 for (ok,) in rows if ok)


def kill_processes_naming(ips: list[str]) -> int:
    """SIGKILL every process whose command line names one of ``ips`` (what is left of a
    Ray node after ``ray start --block`` was stopped: its addresses are this soak's own)."""
    import re

    pattern = re.compile("|".join(r"(?<![\d.])" + re.escape(ip) + r"(?!\d)" for ip in ips))
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pattern.search(cmdline):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


# --------------------------------------------------------------------------- the soak
def _log(message: str) -> None:
    sys.stderr.write(f"[chaos {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def run_chaos(
    trials: int = 200,
    seed: int = 0,
    workers: int = 2,
    tmp_dir: str | Path | None = None,
    *,
    n_faults: int | None = None,
    epochs: int = 4,
    trial_seconds: float = 0.6,
    max_retries: int | None = None,
    ip_base: int | None = None,
    database_factory: Callable[[str], str] | None = None,
    keep_databases: bool | None = None,
    timeout_s: float = 3600.0,
    stall_s: float = 300.0,
    log: Callable[[str], None] = _log,
) -> ChaosResult:
    """Run one study of ``trials`` trials under injected faults and check every invariant.

    ``n_faults`` defaults to ``max(4, trials // 10)``. ``database_factory(prefix) -> URL``
    creates the two PostgreSQL databases (Optuna, MLflow); by default they are created
    here and dropped at the end, except when an invariant failed (``keep_databases=None``:
    kept for a post-mortem, their URLs in ``result.stats``; True: always kept; False:
    always dropped). Every process started here (driver, Ray nodes, MLflow server) is
    stopped before returning, even on failure.
    """
    setup_paths()
    import yaml
    from sweeplab_services import MlflowServer, RayCluster, create_database, drop_database, free_ip_base, sweeplab_cmd

    tmp = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.mkdtemp(prefix="sweeplab-chaos-"))
    tmp.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    n_faults = max(4, trials // 10) if n_faults is None else n_faults
    plan = plan_faults(rng, trials, n_faults, trial_seconds)
    result = ChaosResult(trials=trials, seed=seed, workers=workers, tmp_dir=str(tmp))
    (tmp / "plan.json").write_text(json.dumps([asdict(p) for p in plan], indent=1))
    log(f"plan: {len(plan)} faults {dict(Counter(p.kind for p in plan))}; logs in {tmp}")

    t_wall = time.time()
    created: list[str] = []
    cleanup = contextlib.ExitStack()
    with cleanup:
        def make_db(prefix: str) -> str:
            if database_factory is not None:
                return database_factory(prefix)
            url = create_database(prefix)
            created.append(url)
            return url

        def drop_databases() -> None:
            if keep_databases or (keep_databases is None and created and not result.ok):
                log(f"databases kept: {', '.join(created)}")
                return
            for url in created:
                _quietly(drop_database, url)

        cleanup.callback(drop_databases)
        storage = make_db("sweeplab_chaos_optuna")
        mlflow_db = make_db("sweeplab_chaos_mlflow")
        server = MlflowServer(mlflow_db, tmp / "artifacts", tmp / "mlflow-server.log")
        cleanup.callback(lambda: _quietly(server.stop))
        base = free_ip_base() if ip_base is None else ip_base
        ips = [f"127.0.0.{base}", f"127.0.0.{base + 1}"]
        cleanup.callback(lambda: kill_processes_naming(ips))  # runs last: anything the stops left behind
        cluster = RayCluster(tmp, head_cpus=1, ip_base=base,
                             head_args=(f"--ray-client-server-port={_free_port()}",))
        cleanup.callback(lambda: _quietly(cluster.stop))
        cluster.wait_nodes(1)
        cluster.add_worker(1, cpus=1)
        cluster.wait_nodes(2)
        server.wait()
        log(f"cluster {cluster.address} (head {ips[0]}, worker {ips[1]}), MLflow {server.uri}, "
            f"storage {storage.rsplit('/', 1)[1]}; set up in {time.time() - t_wall:.1f}s")

        spec_path = tmp / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(study_spec(trials, workers, seed, epochs, trial_seconds, max_retries)))
        cmd = sweeplab_cmd("run", str(spec_path), "--json", "--address", cluster.address, "--storage", storage,
                           "--tracking-uri", server.uri)
        env = {**cluster.env, "PYTHONPATH": os.environ["PYTHONPATH"]}
        driver = Driver(cmd, env, tmp)
        cleanup.callback(driver.kill)
        injector = Injector(driver, cluster, server, storage)
        probe = StudyProbe(storage, STUDY)
        snapshots: list[dict[int, tuple[str, float | None, str]]] = []
        t0 = time.time()
        state: dict[str, Any] = {"progress": 0, "progress_at": time.time(), "restarted": None}

        def progress() -> int:
            states = probe.states()
            if states is not None:
                done = states["COMPLETE"] + states["PRUNED"]
                if done != state["progress"]:
                    state["progress"], state["progress_at"] = done, time.time()
                    restarted: Fault | None = state["restarted"]
                    if restarted is not None:  # a killed driver is back when its successor finishes a trial
                        restarted.duration_s = round(time.time() - restarted.epoch, 2)
                        restarted.detail += f"; first trial finished again after {restarted.duration_s:.1f}s"
                        state["restarted"] = None
            return state["progress"]

        def supervise(until: Callable[[], bool]) -> bool:
            """Watch the driver until ``until()`` holds (True) or the driver finished (False).

            A driver exit that is neither ours nor a success is recorded and restarted.
            """
            while True:
                rc = driver.poll()
                if rc == 0:
                    return False
                if rc is not None:
                    text = f"start {driver.starts} exited with {rc}; stderr tail: {driver.tail(1500)!r}"
                    result.unexpected_exits.append(text)
                    log(f"UNEXPECTED: driver {text[:300]}")
                    if len(result.unexpected_exits) > MAX_UNEXPECTED_EXITS:
                        raise ChaosAborted(f"the driver exited with an error {len(result.unexpected_exits)} times")
                    time.sleep(2.0)
                    injector.mlflow_up()
                    driver.start()
                if until():
                    return True
                now = time.time()
                if now - t0 > timeout_s:
                    raise ChaosAborted(f"the study did not finish within {timeout_s:.0f}s")
                if now - state["progress_at"] > stall_s:
                    raise ChaosAborted(f"no trial finished for {stall_s:.0f}s (at {state['progress']} finished)")
                time.sleep(0.25)

        driver.start()
        try:
            last_fault_progress = -1
            for index, planned in enumerate(plan):
                def ready(p: PlannedFault = planned, last: int = last_fault_progress) -> bool:
                    done = progress()
                    return done >= p.after_trials and done > last

                if not supervise(ready):
                    result.skipped = plan[index:]
                    break
                time.sleep(planned.delay_s)
                if driver.poll() == 0:
                    result.skipped = plan[index:]
                    break
                finished = probe.finished()
                if finished is not None:
                    snapshots.append(finished)
                states = probe.states() or Counter()
                fault = Fault(planned.kind, round(time.time() - t0, 2), 0.0, progress(), states["RUNNING"], "",
                              epoch=time.time())
                injector.inject(planned, fault)
                result.faults.append(fault)
                log(f"fault {index + 1}/{len(plan)} t={fault.at_s:.1f}s {fault.kind} at {fault.progress}/{trials} "
                    f"finished ({fault.running} running): {fault.detail}")
                if fault.kind == "driver_kill":
                    state["restarted"] = fault
                last_fault_progress = progress()
                state["progress_at"] = time.time()  # a stall is counted from the service being back
            supervise(lambda: False)  # until the driver finishes
            injector.mlflow_up()
            log(f"driver finished after {time.time() - t0:.1f}s and {driver.starts} start(s)")
        except ChaosAborted as exc:
            result.error = str(exc)
            log(f"ABORTED: {exc}; driver stderr tail: {driver.tail(1500)}")
        finally:
            result.driver_starts = driver.starts
        result.summary = driver.result() if result.error is None else None
        final = probe.finished()
        try:
            result.invariants, result.stats = check_invariants(
                storage, server.uri, trials, result.summary, snapshots, final or {},
                driver_ok=result.error is None, unexpected_exits=result.unexpected_exits)
            result.stats.update(throughput(storage, result.faults))
        except Exception as exc:  # a check that cannot run is a failure, with the reason
            result.invariants.append(Invariant("the invariants could be checked", False,
                                               f"{type(exc).__name__}: {exc}"))
        result.wall_s = round(time.time() - t_wall, 1)
        result.stats["optuna storage"], result.stats["mlflow backend"] = storage, mlflow_db
        log("stopping the driver, the Ray cluster and the MLflow server")
    (tmp / "chaos-result.json").write_text(json.dumps(result.to_dict(), indent=1, default=str))
    return result


def _free_port() -> int:
    from sweeplab_services import free_port

    return free_port()


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:  # cleanup goes on with the next step
        _log(f"cleanup: {getattr(fn, '__name__', fn)} failed: {type(exc).__name__}: {exc}")


class Injector:
    """Injects one fault at a time and brings the service back.

    A stopped MLflow server is started again after its downtime and comes back in the
    background (its start-up is part of the outage), so the study goes on meanwhile; the
    next driver start waits for it (a driver refuses to start against a tracking server
    that does not answer: preflight, by design).
    """

    def __init__(self, driver: Driver, cluster: Any, server: Any, storage: str) -> None:
        self.driver, self.cluster, self.server, self.storage = driver, cluster, server, storage
        self._mlflow_back: threading.Thread | None = None

    def mlflow_up(self) -> None:
        if self._mlflow_back is not None:
            self._mlflow_back.join()
            self._mlflow_back = None

    def inject(self, planned: PlannedFault, fault: Fault) -> None:
        """Inject ``planned``; fill in ``fault.detail`` and ``fault.duration_s`` (until the service is back)."""
        started = time.time()
        kind = planned.kind
        if kind == "driver_kill":
            pid = self.driver.pid
            self.driver.kill()
            time.sleep(planned.downtime_s)
            self.mlflow_up()
            self.driver.start()
            fault.detail = f"driver pid {pid} SIGKILLed (process group); restarted after {planned.downtime_s:.1f}s"
        elif kind == "worker_kill":
            self.cluster.kill_node("worker1")
            time.sleep(planned.downtime_s)
            self.cluster.add_worker(1, cpus=1)
            try:
                self.cluster.wait_nodes(2, timeout=180)
                back = "rejoined"
            except RuntimeError as exc:
                back = f"NOT back: {exc}"
            fault.detail = (f"worker node {self.cluster.worker_ip(1)} SIGKILLed; started again after "
                            f"{planned.downtime_s:.1f}s, {back}")
        elif kind == "db_backends":
            n = terminate_backends(self.storage)
            fault.detail = f"{n} PostgreSQL backend(s) of the Optuna database terminated"
        elif kind == "mlflow_outage":
            self.mlflow_up()
            self.server.stop()
            time.sleep(planned.downtime_s)
            self.server.start_again()
            fault.detail = (f"MLflow server stopped, started again on port {self.server.port} after "
                            f"{planned.downtime_s:.1f}s")

            def back() -> None:
                try:
                    self.server.wait(180)
                    fault.detail += ", answering again"
                except RuntimeError as exc:
                    fault.detail += f", NOT back: {exc}"
                fault.duration_s = round(time.time() - started, 2)

            self._mlflow_back = threading.Thread(target=back, name="chaos-mlflow-back", daemon=True)
            self._mlflow_back.start()
            return
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        fault.duration_s = round(time.time() - started, 2)


# --------------------------------------------------------------------------- invariants
def _mlflow_runs(client: Any, experiment_id: str, view: int | None = None) -> list[Any]:
    from mlflow.entities import ViewType

    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token,
                                  run_view_type=ViewType.ACTIVE_ONLY if view is None else view)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _short(items: Any, limit: int = 12) -> str:
    items = list(items)
    text = ", ".join(str(i) for i in items[:limit])
    return text + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def check_invariants(
    storage: str,
    tracking_uri: str,
    trials: int,
    summary: dict[str, Any] | None,
    snapshots: list[dict[int, tuple[str, float | None, str]]],
    final: dict[int, tuple[str, float | None, str]],
    driver_ok: bool = True,
    unexpected_exits: list[str] | None = None,
) -> tuple[list[Invariant], dict[str, Any]]:
    """Every invariant the faults could break, checked on what Optuna and MLflow hold."""
    import optuna
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    from sweeplab.search.summary import summarize

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: list[Invariant] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        out.append(Invariant(name, bool(ok), detail))

    check("the driver finished with exit 0", driver_ok and summary is not None,
          "" if summary is not None else "no JSON summary from the last driver run")
    check("the driver never exited with an error on its own (every exit was a kill of ours or the end)",
          not unexpected_exits, f"{len(unexpected_exits or [])} unexpected exit(s)")

    study = optuna.load_study(study_name=STUDY, storage=storage)
    all_trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    by_number = {t.number: t for t in all_trials}
    retries: dict[str, int | None] = dict(study.user_attrs.get("sweeplab.retries", {}))
    run_links: dict[str, str] = dict(study.user_attrs.get("sweeplab.run_ids", {}))
    counts = summarize(study)
    superseded = [t for t in all_trials if str(t.number) in retries]
    counted = [t for t in all_trials if str(t.number) not in retries and not t.user_attrs.get("sweeplab.rejected")
               and t.state.is_finished()]
    good = [t for t in counted if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    stats = {"trials (M)": len(all_trials), "complete": sum(t.state == TrialState.COMPLETE for t in counted),
             "pruned": sum(t.state == TrialState.PRUNED for t in counted), "retried attempts": len(superseded)}
    reasons = Counter(_reason_kind(str(t.user_attrs.get("sweeplab.fail_reason", ""))) for t in superseded)
    stats["retried because"] = dict(reasons)

    # ---- Optuna
    check(f"exactly {trials} finished trials count toward `trials` (COMPLETE or PRUNED)",
          len(good) == trials and len(counted) == trials and counts.n_trials == trials
          and (summary is None or summary.get("n_trials") == trials),
          f"COMPLETE+PRUNED {len(good)}, counted {len(counted)}, summarize n_trials {counts.n_trials}, "
          f"driver n_trials {None if summary is None else summary.get('n_trials')}")
    numbers = [t.number for t in all_trials]
    check("trial numbers are dense: 0..M-1, no gap, no duplicate", numbers == list(range(len(numbers))),
          f"M={len(numbers)}")
    open_trials = [(t.number, t.state.name) for t in all_trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    check("nothing RUNNING or WAITING in Optuna", not open_trials, _short(open_trials))
    lost = [(t.number, str(t.user_attrs.get("sweeplab.fail_reason", ""))[:160]) for t in counted
            if t.state == TrialState.FAIL and str(t.user_attrs.get("sweeplab.fail_reason", "")).startswith("lost:")]
    check("no trial in the final count FAILED for infrastructure (`lost:` and not retried)", not lost, _short(lost, 4))
    other_fail = [(t.number, str(t.user_attrs.get("sweeplab.fail_reason", ""))[:160]) for t in counted
                  if t.state == TrialState.FAIL
                  and not str(t.user_attrs.get("sweeplab.fail_reason", "")).startswith("lost:")]
    check("no trial in the final count FAILED at all (the objective never fails)", not other_fail,
          _short(other_fail, 4))
    bad_links = []
    for failed, retry in retries.items():
        t = by_number.get(int(failed))
        if t is None or t.state != TrialState.FAIL:
            bad_links.append(f"{failed}: superseded but {None if t is None else t.state.name}")
            continue
        if not str(t.user_attrs.get("sweeplab.fail_reason", "")).startswith("lost:"):
            bad_links.append(f"{failed}: superseded without a `lost:` reason")
        if retry is None:
            continue  # an orphan of a dropped ask: failed, no retry needed
        r = by_number.get(int(retry))
        if r is None:
            bad_links.append(f"{failed} -> {retry}: no such retry")
        elif r.user_attrs.get("sweeplab.retry_of") != int(failed) or r.params != t.params:
            bad_links.append(f"{failed} -> {retry}: retry_of {r.user_attrs.get('sweeplab.retry_of')}, "
                             f"params {'same' if r.params == t.params else 'differ'}")
    linked = {int(v) for v in retries.values() if v is not None}
    for t in all_trials:
        if "sweeplab.retry_of" in t.user_attrs and t.number not in linked:
            bad_links.append(f"{t.number}: retry_of {t.user_attrs['sweeplab.retry_of']} but not linked from it")
    check("every superseded attempt FAILED `lost:` and links to its retry (same params, retry_of back)",
          not bad_links, _short(bad_links, 6))
    changed = []
    seen: dict[int, tuple[str, float | None, str]] = {}
    for snap in snapshots:
        seen.update(snap)
    for number, before in sorted(seen.items()):
        after = final.get(number)
        if after != before and not (after and before[0] == after[0] and _same(before[1], after[1])
                                    and before[2] == after[2]):
            changed.append(f"{number}: {before} -> {after}")
    check("finished trials never changed (state, value, completion time seen at each fault)", not changed,
          f"{len(seen)} watched; " + _short(changed, 4))
    bad_steps = []
    for t in good:
        steps = sorted(t.intermediate_values)
        expected = list(range(1, len(steps) + 1))
        if not steps or steps != expected:
            bad_steps.append(f"{t.number}: {steps}")
    check("every counted trial's reported epochs are stored in Optuna, 1..k without gaps", not bad_steps,
          _short(bad_steps, 6))

    # ---- MLflow
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(STUDY)
    if exp is None:
        check("the MLflow experiment exists", False, STUDY)
        return out, stats
    runs = _mlflow_runs(client, exp.experiment_id)
    deleted = _mlflow_runs(client, exp.experiment_id, ViewType.DELETED_ONLY)
    stats["mlflow runs deleted by repair"] = len(deleted)
    parents = [r for r in runs if r.data.tags.get("sweeplab.role") == "parent"]
    check("exactly one MLflow parent run (sweeplab.role=parent)", len(parents) == 1,
          f"{len(parents)} parent run(s)")
    if not parents:
        return out, stats
    parent = parents[0]
    check("the parent run is the one the study links (mlflow_parent_run_id)",
          study.user_attrs.get("mlflow_parent_run_id") == parent.info.run_id
          and (summary is None or summary.get("mlflow_parent_run_id") == parent.info.run_id))
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    strays = [r.info.run_id for r in runs if r not in children and r is not parent]
    check("no MLflow run outside the parent and its children", not strays, _short(strays, 4))
    by_trial: dict[int, list[Any]] = {}
    untagged = []
    for r in children:
        tag = r.data.tags.get("sweeplab.trial_number")
        if tag is None:
            untagged.append(r.info.run_id)
        else:
            by_trial.setdefault(int(tag), []).append(r)
    dupes = {n: len(v) for n, v in by_trial.items() if len(v) > 1}
    missing = sorted(set(numbers) - set(by_trial))
    extra = sorted(set(by_trial) - set(numbers))
    check("one MLflow child run per Optuna trial (attempt), tagged sweeplab.trial_number",
          not dupes and not missing and not extra and not untagged,
          f"{len(children)} children for {len(numbers)} trials; duplicated {_short(dupes.items(), 6)}; "
          f"missing {_short(missing, 8)}; without an Optuna trial {_short(extra, 6)}; untagged {len(untagged)}")
    running = [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    check("no MLflow run left RUNNING", not running, _short(running, 6))
    check("the parent run FINISHED", parent.info.status == "FINISHED", parent.info.status)
    expected_status = {TrialState.COMPLETE: ("FINISHED",), TrialState.PRUNED: ("KILLED",),
                       TrialState.FAIL: ("FAILED", "KILLED")}
    wrong_status, unlinked = [], []
    for number, rs in sorted(by_trial.items()):
        t = by_number.get(number)
        if t is None:
            continue
        if rs[0].info.status not in expected_status.get(t.state, ()):
            wrong_status.append(f"{number}: {t.state.name} but run {rs[0].info.status}")
        link = t.user_attrs.get("mlflow_run_id") or run_links.get(str(number))
        if link not in {r.info.run_id for r in rs}:
            unlinked.append(f"{number}: linked {link}")
    check("each child run's status matches its trial (COMPLETE=FINISHED, PRUNED=KILLED, FAIL=FAILED)",
          not wrong_status, _short(wrong_status, 6))
    check("each trial links its child run (attr mlflow_run_id or study attr sweeplab.run_ids)", not unlinked,
          _short(unlinked, 6))
    lineage = []
    for failed, retry in retries.items():
        if retry is None:
            continue
        failed_runs, retry_runs = by_trial.get(int(failed), []), by_trial.get(int(retry), [])
        if failed_runs and failed_runs[0].data.tags.get("sweeplab.retried_by") != str(retry):
            lineage.append(f"{failed}: retried_by {failed_runs[0].data.tags.get('sweeplab.retried_by')}")
        if retry_runs and retry_runs[0].data.tags.get("sweeplab.retry_of") != str(failed):
            lineage.append(f"{retry}: retry_of {retry_runs[0].data.tags.get('sweeplab.retry_of')}")
    check("MLflow runs carry each retry's lineage both ways (tags sweeplab.retried_by, sweeplab.retry_of)",
          not lineage, _short(lineage, 6))
    duplicated_steps, wrong_history = [], []
    good_numbers = {t.number for t in good}
    for number, rs in sorted(by_trial.items()):
        t = by_number.get(number)
        for r in rs:
            history = client.get_metric_history(r.info.run_id, METRIC)
            steps = [m.step for m in history]
            if len(steps) != len(set(steps)):
                duplicated_steps.append(f"{number}: steps {sorted(steps)}")
            if t is not None and number in good_numbers:
                got = {m.step: m.value for m in history}
                want = {int(k): float(v) for k, v in t.intermediate_values.items()}
                if sorted(got) != sorted(want) or any(not _same(got[k], want[k]) for k in want if k in got):
                    wrong_history.append(f"{number}: mlflow steps {sorted(got)} optuna {sorted(want)}")
    check(f"no child run has a duplicated step in its `{METRIC}` history", not duplicated_steps,
          _short(duplicated_steps, 4))
    check(f"every counted trial's `{METRIC}` history in MLflow equals its reported epochs in Optuna",
          not wrong_history, _short(wrong_history, 4))
    if summary is not None:
        check("the last driver run delivered every MLflow request (mlflow_delivered)",
              summary.get("mlflow_delivered") is True, str(summary.get("mlflow_delivered")))
    return out, stats


def throughput(storage: str, faults: list[Fault], window_s: float = 30.0) -> dict[str, Any]:
    """Trials finished per minute: over the whole study, and in the ``window_s`` after each
    kind of fault hit (side by side in one run; a figure, not an invariant)."""
    import optuna

    study = optuna.load_study(study_name=STUDY, storage=storage)
    done = sorted(t.datetime_complete.timestamp() for t in study.get_trials(deepcopy=False)
                  if t.state.name in ("COMPLETE", "PRUNED") and t.datetime_complete is not None)
    if len(done) < 2:
        return {}
    started = min(t.datetime_start.timestamp() for t in study.get_trials(deepcopy=False) if t.datetime_start)
    overall = len(done) / max(done[-1] - started, 1e-9) * 60
    out: dict[str, Any] = {"trials/min overall": round(overall, 1)}
    for kind in FAULT_KINDS:
        hits = [f for f in faults if f.kind == kind and f.epoch and f.epoch + window_s <= done[-1]]
        if hits:
            n = sum(1 for f in hits for d in done if f.epoch <= d < f.epoch + window_s)
            rate = n / (len(hits) * window_s) * 60
            out[f"trials/min in the {window_s:.0f}s after a {kind}"] = f"{rate:.1f} ({rate / overall:.2f}x)"
    gaps = [b - a for a, b in itertools.pairwise(done)]
    out["longest wait between two finished trials (s)"] = round(max(gaps), 1)
    return out


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _reason_kind(reason: str) -> str:
    text = reason.lower()
    for key, words in (("driver died", ("driver process died",)), ("lease expired", ("lease expired",)),
                       ("node lost", ("ray node was lost", "node", "raylet")), ("worker died", ("worker died",)),
                       ("database dropped", ("database connection",)), ("ctrl-c", ("interrupted by the user",))):
        if any(w in text for w in words):
            return key
    return reason[:60] or "no reason"


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200, help="trials of the study (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the faults and of the study (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="trials in flight (default 2)")
    parser.add_argument("--faults", type=int, default=None, help="faults to inject (default max(4, trials/10))")
    parser.add_argument("--epochs", type=int, default=4, help="epochs reported per trial (default 4)")
    parser.add_argument("--trial-seconds", type=float, default=0.6, help="seconds per trial (default 0.6)")
    parser.add_argument("--max-retries", type=int, default=None,
                        help="the spec's max_retries (default: the spec's default, 2; driver and node losses "
                             "spend none of it)")
    parser.add_argument("--ip-base", type=int, default=None,
                        help="Ray head on 127.0.0.N, worker on N+1 (default: a free block)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    parser.add_argument("--tmp-dir", default=None, help="where logs go (default: a new temp folder)")
    parser.add_argument("--keep-databases", action=argparse.BooleanOptionalAction, default=None,
                        help="keep (or drop) the two databases at the end (default: keep them only on failure)")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON to FILE")
    args = parser.parse_args(argv)
    result = run_chaos(args.trials, args.seed, args.workers, args.tmp_dir, n_faults=args.faults, epochs=args.epochs,
                       trial_seconds=args.trial_seconds, max_retries=args.max_retries, ip_base=args.ip_base,
                       keep_databases=args.keep_databases, timeout_s=args.timeout)
    print(result.report())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1, default=str))
    return 0 if result.ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (finally blocks) on `kill`
    sys.exit(main())

"""Trials in worker processes of this machine, without Ray: the executor of local studies.

A study that runs on this machine only (no cluster address, no service, CPU trials) needs
none of Ray's processes: on a small machine, starting them takes the CPU that the
driver's own start-up and the workers' imports need. Here the driver starts its workers
itself, one plain Python process per parallel trial
(:mod:`sweeplab.search.pool_worker`), each connected by a private socket pair; trials
report to the coordinator in the driver through its
:class:`~sweeplab.search.channel.CoordinatorServer`, as Ray's workers on a local Ray do.

- :class:`WorkerPool` owns the processes: it starts them at once (they import the
  objective's framework while the driver opens the study), sends each the study's
  arguments once, replaces one that died, and stops them all on :meth:`WorkerPool.close`.
- :class:`ProcessExecutor` is the :class:`~sweeplab.search.executor.TrialExecutor` over a
  pool, with Ray's semantics: tickets beyond the free workers wait, in order; a worker that
  dies mid-trial makes that trial LOST (one retry spent), and only that one; ``cancel``
  kills the workers running trials (as Ray's forced cancel does) and returns every ticket.

Each worker holds its own copy of the study's dataset (Ray's object store shares one
between the workers of a node): for a dataset of several GB, run on Ray (``--address
local``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from sweeplab.core.errors import Problem, ResourceError, SweeplabError
from sweeplab.core.records import LOST, TrialOutcome, TrialTicket

if TYPE_CHECKING:
    from collections.abc import Callable

    from sweeplab.objectives.dataset import Dataset
    from sweeplab.spec import ObjectiveSpec

STOP_GRACE_S = 2.0
"""How long :meth:`WorkerPool.close` lets idle workers exit before killing them."""


def local_cpus() -> int:
    """The CPUs this process may use (its affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def check_fits_here(cpus_per_trial: float, source: str = "spec", cpus: int | None = None) -> None:
    """Refuse a trial that asks for more CPUs than this machine has (it could never start),
    with :class:`~sweeplab.core.errors.ResourceError` naming ``resources.cpu`` and the fix."""
    cpus = local_cpus() if cpus is None else cpus
    if cpus_per_trial > cpus + 1e-9:
        raise ResourceError([Problem("resources.cpu", f"a trial asks for {cpus_per_trial:g} CPUs, but this machine "
                                                      f"has {cpus}. Lower resources.cpu to at most {cpus}, or run "
                                                      "the study on a Ray cluster with a node that large "
                                                      "(--address)")], source)


def parallel_trials(workers: int, cpus_per_trial: float, cpus: int | None = None) -> int:
    """How many trials run at once on this machine: ``workers``, but no more than its CPUs hold
    at ``cpus_per_trial`` each (what a local Ray would schedule); at least one."""
    cpus = local_cpus() if cpus is None else cpus
    return max(1, min(workers, int(cpus / cpus_per_trial + 1e-9)))  # the spec keeps resources.cpu > 0


def death_reason(returncode: int | None) -> str:
    """Why a worker process ended, in words: its signal or exit code."""
    if returncode is None:
        return "it closed its connection"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _forward(pipe: Any, stream: str) -> None:
    """Copy a worker's output, line by line, to this process's ``sys.stdout`` or ``sys.stderr``
    as they are at each line: what a trial prints shows where the driver's own prints do (a
    notebook's cell, a terminal; ``sweeplab run --json`` keeps its stdout for the JSON)."""
    with pipe:
        for line in iter(pipe.readline, b""):
            out = getattr(sys, stream)
            try:
                out.write(line.decode(errors="replace"))
                out.flush()
            except (OSError, ValueError):  # the driver's stream is closed: the line is dropped
                pass


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    job: TrialTicket | str | None = None  # the trial it runs, "call", or None when idle
    setup_sent: bool = False

    def ended(self) -> str:
        """Reap the process (it closed its end) and say why it ended."""
        try:
            code = self.process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return death_reason(code)


@dataclass
class WorkerPool:
    """``size`` worker processes of this machine; see the module docstring.

    ``warm``: ``(framework, callable_path)`` of the objective the workers import at start
    (None: import it with the first trial).
    """

    size: int
    warm: tuple[str, str | None] | None = None
    _workers: list[_Worker] = field(default_factory=list, init=False)
    _setup: tuple[Any, ...] | None = field(default=None, init=False)
    _closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {self.size}")
        for _ in range(self.size):
            self._workers.append(self._spawn())

    def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair()
        framework, callable_path = self.warm or ("", None)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "sweeplab.search.pool_worker", str(theirs.fileno()), framework,
                 callable_path or ""],
                pass_fds=(theirs.fileno(),), start_new_session=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        except OSError as exc:
            ours.close()
            raise SweeplabError(f"cannot start a trial worker process ({exc})") from exc
        finally:
            theirs.close()
        for pipe, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            threading.Thread(target=_forward, args=(pipe, name), name=f"sweeplab-worker-{name}", daemon=True).start()
        return _Worker(process, Connection(ours.detach()))

    def setup(self, sys_path: list[str], blob: bytes) -> None:
        """Keep the study's trial arguments (cloudpickled) for each worker: sent with its first job
        (a worker still importing would block the send until it reads), and to replacements."""
        self._setup = ("setup", list(sys_path), blob)

    def _ready(self, worker: _Worker) -> None:
        if not worker.setup_sent:
            if self._setup is None:
                raise SweeplabError("the worker pool got a trial before the study's setup")
            worker.conn.send(self._setup)
            worker.setup_sent = True

    def idle(self) -> _Worker | None:
        """An idle worker, started now if the pool is short of one (after a death or a cancel)."""
        found = next((w for w in self._workers if w.job is None), None)
        if found is None and len(self._workers) < self.size and not self._closed:
            found = self._spawn()
            self._workers.append(found)
        return found

    def refill(self) -> None:
        """Start the workers the pool is short of now, so that they warm up before they are needed."""
        while len(self._workers) < self.size and not self._closed:
            self._workers.append(self._spawn())

    def busy(self) -> list[_Worker]:
        return [w for w in self._workers if w.job is not None]

    def give(self, worker: _Worker, job: TrialTicket | str, message: tuple[Any, ...]) -> None:
        """Hand ``message`` to an idle ``worker``; a worker already dead raises OSError/EOFError
        (the caller replaces it)."""
        self._ready(worker)
        worker.conn.send(message)
        worker.job = job

    def discard(self, worker: _Worker) -> str:
        """Drop a dead worker (killing it first if it still runs); return why it ended."""
        if worker.process.poll() is None:
            worker.process.kill()
        reason = worker.ended()
        worker.conn.close()
        self._workers.remove(worker)
        return reason

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` on an idle worker (with its warm imports) and return its
        value; its exception comes back as a :class:`SweeplabError` with its type and message."""
        import cloudpickle

        worker = self.idle()
        if worker is None:
            raise SweeplabError("no idle trial worker to run a call on")
        try:
            self.give(worker, "call", ("call", cloudpickle.dumps((fn, args, kwargs))))
            answer = worker.conn.recv()
        except (EOFError, OSError) as exc:
            raise SweeplabError(f"the trial worker died while running {getattr(fn, '__name__', fn)}: "
                                f"{self.discard(worker)}") from exc
        worker.job = None
        _, ok, value = answer
        if not ok:
            raise SweeplabError(value)
        return value

    def close(self) -> None:
        """Stop every worker: idle ones that served the study are asked to exit; the rest (busy,
        never used: a study that did not start, or still importing) and the slow are killed."""
        self._closed = True
        for worker in self._workers:
            try:
                if worker.job is None and worker.setup_sent:
                    worker.conn.send(("stop",))
                else:
                    worker.process.kill()
            except OSError:
                pass
        for worker in self._workers:
            try:
                worker.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            worker.conn.close()
        self._workers.clear()


class ProcessExecutor:
    """Runs trials on a :class:`WorkerPool`; see the module docstring for the contract.

    ``coordinator``: the :class:`~sweeplab.search.channel.CoordinatorLink` of the study's
    coordinator server; ``user_fn``: the study's function (framework python), sent by value.
    """

    def __init__(self, pool: WorkerPool, coordinator: Any, dataset: Dataset | None, settings: ObjectiveSpec,
                 metric_names: list[str], cpus: float, *, user_fn: Callable[..., Any] | None = None) -> None:
        import cloudpickle

        self.pool = pool
        # execute_trial's arguments after the ticket (no GPU, the default reporter), and the function apart
        arguments = (dataset, settings, list(metric_names), coordinator, cpus, 0.0, None)
        pool.setup(sys.path, cloudpickle.dumps((arguments, user_fn)))
        self._waiting: deque[TrialTicket] = deque()

    def start(self, ticket: TrialTicket) -> None:
        self._waiting.append(ticket)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand waiting tickets to idle workers; a worker found dead is replaced and tried again."""
        deaths = []
        while self._waiting:
            worker = self.pool.idle()
            if worker is None:
                break
            ticket = self._waiting[0]
            try:
                self.pool.give(worker, ticket, ("trial", ticket))
            except (EOFError, OSError):
                worker.job = None
                # It died idle: the trial never started, and the next worker takes it.
                deaths.append(self.pool.discard(worker))
                if len(deaths) > self.pool.size:
                    raise SweeplabError(f"trial worker processes die as they start ({', '.join(deaths)}); "
                                        "their error is printed above") from None
                continue
            self._waiting.popleft()

    def collect(self, timeout: float) -> list[tuple[TrialTicket, TrialOutcome]]:
        busy = {w.conn: w for w in self.pool.busy()}
        if not busy:
            return []
        ended: list[tuple[TrialTicket, TrialOutcome]] = []
        for ready in wait(list(busy), timeout=timeout):
            worker = busy[ready]  # type: ignore[index]
            ticket = worker.job
            assert isinstance(ticket, TrialTicket)
            outcome: TrialOutcome
            try:
                _, outcome = worker.conn.recv()
                worker.job = None
            except (EOFError, OSError):
                why = self.pool.discard(worker)
                self.pool.refill()
                outcome = TrialOutcome(ticket.number, LOST, {}, reason=f"lost: its worker died ({why})")
            ended.append((ticket, outcome))
        self._dispatch()
        return ended

    def cancel(self) -> list[TrialTicket]:
        tickets = [w.job for w in self.pool.busy() if isinstance(w.job, TrialTicket)]
        for worker in self.pool.busy():
            self.pool.discard(worker)  # killed: as Ray's forced cancel, the trial stops now
        tickets.extend(self._waiting)
        self._waiting.clear()
        return tickets

    def in_flight(self) -> int:
        return len(self.pool.busy()) + len(self._waiting)

    def close(self) -> None:
        self.pool.close()

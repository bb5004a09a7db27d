"""A background thread that delivers MLflow requests in order and retries them.

Tracking must never slow down or fail a study: the driver enqueues operations and
moves on; this thread performs them one at a time, and when the tracking store is
unreachable it waits and retries the same operation (with backoff) until it goes
through, so an outage delays logging but loses and duplicates nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("sweeplab.tracking")


def is_transient(exc: BaseException) -> bool:
    """True for failures an outage explains (connection refused, timeouts, 5xx, locked
    database); programming errors and rejected requests are not retried forever."""
    text = f"{type(exc).__name__} {exc}".lower()
    transient_words = ("connection", "timeout", "timed out", "temporarily", "unavailable", "max retries",
                       "database is locked", "operationalerror", "503", "502", "500", "internal_error",
                       "resource_exhausted", "remote end closed", "broken pipe")
    return isinstance(exc, (ConnectionError, TimeoutError, OSError)) or any(w in text for w in transient_words)


@dataclass
class _Op:
    name: str
    fn: Callable[[], None]


class TrackingWriter:
    """Performs queued operations in FIFO order on one thread, retrying failures.

    ``max_backoff`` caps the wait between retries. ``retry_until`` (epoch seconds,
    set by :meth:`close`) bounds retries at shutdown; operations still undelivered
    then are counted in :attr:`undelivered` and reported by the caller.

    ``held``: operations are queued but none runs until :meth:`release` (what they need,
    such as the parent run, does not exist yet); :meth:`discard` drops them instead.
    """

    def __init__(self, max_backoff: float = 5.0, *, held: bool = False) -> None:
        self._queue: queue.Queue[_Op | None] = queue.Queue()
        self._released = threading.Event()
        self._catching_up = False
        self._discarded = False
        if not held:
            self._released.set()
        self._max_backoff = max_backoff
        self.max_permanent_attempts = 3
        self._deadline: float | None = None
        self.requests = 0
        self.failures = 0
        self.undelivered: list[str] = []
        self.last_error: str | None = None
        self.retrying = False  # True while an operation is failing and being retried
        self._attempt_started: float | None = None  # when the request in progress began
        self._thread = threading.Thread(target=self._loop, name="sweeplab-mlflow", daemon=True)
        self._thread.start()

    def submit(self, name: str, fn: Callable[[], None]) -> None:
        """Queue ``fn`` (one MLflow request or a few) to run after every earlier op."""
        self._queue.put(_Op(name, fn))

    @property
    def held(self) -> bool:
        """True until :meth:`release`: queued operations wait."""
        return not self._released.is_set()

    @property
    def catching_up(self) -> bool:
        """True from a :meth:`release` that found operations queued until the queue first
        empties: the backlog of a held writer is being delivered."""
        return self._catching_up

    def release(self) -> None:
        """Let the queued operations run, in order (no-op when not held)."""
        if not self._released.is_set():
            self._catching_up = self._queue.qsize() > 0
            self._released.set()

    def discard(self) -> None:
        """Drop every operation queued and still to come, and stop the thread: what they
        were for will not exist (the study stopped before its MLflow run could be opened)."""
        self._discarded = True
        self._queue.put(None)
        self._released.set()

    def pending(self) -> int:
        return self._queue.qsize()

    def stalled(self, after: float) -> bool:
        """True when the request in progress has been running for more than ``after`` seconds."""
        started = self._attempt_started
        return started is not None and time.time() - started > after

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every operation queued so far has finished (delivered or given up).

        True when that happened within ``timeout`` seconds; the writer keeps running.
        """
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout=timeout)

    def _loop(self) -> None:
        self._released.wait()
        while True:
            op = self._queue.get()
            if op is None:
                self._queue.task_done()
                return
            try:
                if not self._discarded:
                    self._perform(op)
            finally:
                self._queue.task_done()
                if self._catching_up and self._queue.empty():
                    self._catching_up = False

    def _perform(self, op: _Op) -> None:
        """Run ``op``, retrying it until it is delivered or given up (then named in ``undelivered``)."""
        delay = 0.2
        attempts = 0
        while True:
            self._attempt_started = time.time()
            try:
                op.fn()
                self.requests += 1
                self.retrying = False
                break
            except Exception as exc:  # any tracking failure is retried, never raised
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                attempts += 1
                if not is_transient(exc) and attempts >= self.max_permanent_attempts:
                    log.error("MLflow request %s failed for good: %s", op.name, self.last_error[:500])
                    self.undelivered.append(op.name)
                    break
                if self.failures in (1, 10) or self.failures % 100 == 0:
                    log.warning("MLflow request %s failed (%s); retrying", op.name, self.last_error[:300])
                self.retrying = True
                if self._deadline is not None and time.time() > self._deadline:
                    self.undelivered.append(op.name)
                    break
                self._attempt_started = None
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
        self._attempt_started = None

    def close(self, timeout: float = 60.0) -> bool:
        """Deliver what is queued (retrying up to ``timeout`` s), then stop. True if all delivered.
        A writer still held delivers nothing: every queued operation is undelivered."""
        if self.held:
            with self._queue.mutex:
                self.undelivered.extend(op.name for op in self._queue.queue if op is not None)
            self.discard()
            self._thread.join(timeout)
            return False
        self._deadline = time.time() + timeout
        self._queue.put(None)
        self._thread.join(timeout + 5.0)
        return not self.undelivered and not self._thread.is_alive()

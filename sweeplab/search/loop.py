"""The trial loop: keep ``workers`` trials in flight until the study has ``trials`` finished.

One pass: fill the free slots (ask the coordinator, open the trial's MLflow run, start it
on the executor), collect the trials that ended, tell each (linking its MLflow run first:
a finished trial's attrs are frozen), log it, count it. The loop ends when the target is
reached, the timeout passed, the sampler has nothing left to propose (a covered grid),
the constraints reject every proposal, the study's first ``fail_fast`` trials all failed
with the same error (a bug in the objective or the data, not bad luck of the params),
it is stopped (Ctrl-C or ``stop``), or ``check`` raises (a failure outside the loop, such
as an MLflow store that could not be opened; the loop then re-raises it). Then the trials
in flight are cancelled and told INTERRUPTED, so they are retried on resume without spending ``max_retries``. Each
trial that fails for good is passed to ``on_failure`` as it happens; each distinct
warning a trial brings back (a user function's mistake, see ``TrialOutcome.warnings``)
is logged once per run.

Asking ahead (``LoopSettings.ask_ahead``, when the trials run in other processes): while
every worker is busy, the loop asks the next trial, so a worker whose trial ends gets it at
once and the tell of the ended trial and the next ask happen while the workers run, not
between their trials (an ask and a tell are 20-30 ms of the driver's time each trial). The
price: that trial is sampled without the result of the one it follows, as if one more
worker ran. It is a trial of the study like any other (RUNNING, leased); a stop tells it
INTERRUPTED with the trials in flight, so it is retried on resume. Not done where it could
change what a study runs: deterministic studies, grid samplers (the next point may not
exist), a deadline (no trial starts after it). With a gate, the trial asked ahead waits for
a slot like any other: the slot of the trial that ended is given back first, so a study the
gate ranks needier gets it, and the one asked ahead starts when the gate next says yes.

Deterministic studies (``LoopSettings.deterministic``): the sampler sees the trials in the
order of their numbers, whatever order they finish in. A trial that ends is held until
every trial asked before it was told; trials are told in the order they were asked (their
numbers), and after each tell the freed slot is filled before the next tell. At most
``lag`` (default ``workers``) trials are asked and not told, and at most ``workers`` run.
So when trial ``n`` is asked, the trials told are exactly those up to ``n - lag`` and the
ones not told (what TPE's constant liar sees as running) are ``n - lag + 1 .. n - 1``: a
function of the numbers alone. The price is wall time: a worker whose trial ended stays
idle while ``lag`` trials are not told, i.e. until the trial ``lag`` numbers before the
next one ends (a larger ``lag`` idles less and lets the sampler see less). What a stop
leaves held is told at once, in number order.

The loop knows neither Ray nor MLflow: it talks to a :class:`~sweeplab.search.executor.
Coordinator`, a :class:`~sweeplab.search.executor.TrialExecutor` and a :class:`TrialTracker`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sweeplab.core.errors import SweeplabError
from sweeplab.core.keys import ATTR_ATTEMPT, ATTR_RETRY_OF, TAG_FRAMEWORK
from sweeplab.core.records import FAILED as TRIAL_FAILED
from sweeplab.core.records import INTERRUPTED, TrialOutcome, TrialRecord, TrialTicket, failure_key
from sweeplab.search.constraints import ConstraintUnsatisfiable
from sweeplab.search.executor import Coordinator, TrialExecutor

log = logging.getLogger("sweeplab.search")

FINISHED, KILLED, FAILED = "FINISHED", "KILLED", "FAILED"
GATE_RETRY_S = 0.2
"""How soon a study with nothing in flight asks its gate again after a refusal."""


class TrialGate(Protocol):
    """Who may start a trial now, when several studies share one pool of workers (the
    service's fair share). :meth:`try_acquire` never blocks: False means "not now, ask again
    on the next pass"; every True is paired with one :meth:`release` when that trial ends."""

    def try_acquire(self) -> bool: ...
    def release(self) -> None: ...


class TrialTracker(Protocol):
    """What the loop logs each trial to (the MLflow :class:`~sweeplab.tracking.mlflow_tracker.StudyTracker`)."""

    def trial_started(self, number: int, raw_params: Mapping[str, Any], tags: Mapping[str, str]) -> None: ...
    def run_id(self, number: int, timeout: float = 0.0) -> str | None: ...
    def trial_finished(self, record: Any) -> None: ...
    def trial_artifacts(self, number: int, files: Mapping[str, Any]) -> None: ...
    def tracking_is_down(self) -> bool: ...


@dataclass(frozen=True)
class LoopSettings:
    """What bounds the loop: the study's target, parallelism and deadline (epoch seconds)."""

    trials: int
    workers: int
    deadline: float | None
    lease_seconds: float
    check_exhausted: bool  # ask the coordinator after each tell (grid samplers only)
    maximize: bool | None  # None for multi-objective studies (no single best to show)
    study: str = ""
    fail_fast: int = 0  # stop once the study's first N trials failed with one error (0: never)
    deterministic: bool = False  # tell in number order, ask once the trial `lag` numbers before was told
    lag: int = 0  # deterministic: at most this many trials asked and not told (0: workers)
    ask_ahead: bool = False  # the trials run elsewhere: the driver may ask the next one while they run


class TrialsKeepFailing(SweeplabError):
    """The study's first trials all failed with the same error: the objective (or its data)
    is broken, and running more trials would only repeat it."""


@dataclass(frozen=True)
class LoopResult:
    """How the loop ended: ``status`` FINISHED, KILLED (stopped) or FAILED (``error``)."""

    status: str
    finished: int
    error: SweeplabError | None = None


class TrialLoop:
    """One study's loop; :meth:`run` drives it to its end (see the module docstring)."""

    def __init__(self, coordinator: Coordinator, executor: TrialExecutor, tracker: TrialTracker,
                 settings: LoopSettings, finished: int, *, progress: Any = None,
                 on_record: Callable[[TrialRecord], None] | None = None, stop: threading.Event | None = None,
                 on_first_start: Callable[[int], None] | None = None,
                 on_outcome: Callable[[TrialOutcome], None] | None = None,
                 on_failure: Callable[[TrialRecord], None] | None = None, succeeded: int = 0,
                 gate: TrialGate | None = None, check: Callable[[], None] | None = None) -> None:
        self.coordinator, self.executor, self.tracker, self.settings = coordinator, executor, tracker, settings
        self.finished = finished
        self.progress = progress
        self.on_record = on_record
        self.stop = stop or threading.Event()
        self.on_first_start = on_first_start
        self.on_outcome = on_outcome
        self.on_failure = on_failure
        self.gate = gate
        self.check = check
        self._held_back = False  # the last fill left a due trial unstarted because the gate said no
        # the first failures of a study that never had a COMPLETE or PRUNED trial, by error;
        # None once a trial succeeded or two errors differed (fail-fast no longer applies)
        self._first_failures: list[str] | None = [] if succeeded == 0 and settings.fail_fast > 0 else None
        self.best: float | None = None
        self.exhausted = False
        self.error: SweeplabError | None = None
        self._last_renew = time.time()
        self._warned: set[str] = set()
        self._order: deque[tuple[int, int]] = deque()  # deterministic: (number, ask position) not told yet
        self._asked = 0  # deterministic: trials asked by this loop
        self._held: dict[int, tuple[TrialTicket, TrialOutcome]] = {}  # deterministic: ended, waiting for their turn
        self._ready: deque[TrialTicket] = deque()  # asked ahead of a free worker (at most one)
        # returned by the executor, not told yet: a stop between two tells still tells the rest
        self._collected: deque[tuple[TrialTicket, TrialOutcome]] = deque()
        self._asks_ahead = (settings.ask_ahead and not settings.deterministic and not settings.check_exhausted
                            and settings.deadline is None)

    def run(self) -> LoopResult:
        """Drive the study to its end. ``check`` (when given) runs once per pass; what it
        raises stops the study: the trials in flight are told as lost (retried on resume),
        then it propagates."""
        try:
            while not self.stop.is_set():
                self._checked()
                self._fill()
                if not self.executor.in_flight():
                    if not self._held_back:
                        break
                    self.stop.wait(GATE_RETRY_S)  # the pool is busy with other studies: ask again
                    continue
                self._collected.extend(self.executor.collect(timeout=min(1.0, self.settings.lease_seconds / 3)))
                while self._collected:
                    self._ended(*self._collected.popleft())
                self._renew()
            else:
                self._interrupt("stopped before the study finished")
                return LoopResult(KILLED, self.finished)
        except KeyboardInterrupt:
            self._interrupt("interrupted by the user (Ctrl-C)")
            return LoopResult(KILLED, self.finished)
        if self._ready:  # the study stopped on an error while a trial waited for a worker
            self._drop_ready(f"the study stopped: {str(self.error).splitlines()[0]}" if self.error
                             else "the study stopped")
        return LoopResult(FAILED if self.error else FINISHED, self.finished, self.error)

    # ------------------------------------------------------------------ steps
    def _checked(self) -> None:
        if self.check is None:
            return
        try:
            self.check()
        except BaseException as exc:
            self._interrupt(f"the study stopped: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            raise

    def _untold(self) -> int:
        """Trials asked and not told yet: in flight, asked ahead, or returned by the executor
        and not told yet (in a deterministic study: held for their turn; a trial the executor
        returned is no longer in flight before it is held)."""
        if self.settings.deterministic:
            return len(self._order)
        return self.executor.in_flight() + len(self._ready) + len(self._collected)

    def _lag(self) -> int:
        return (self.settings.lag or self.settings.workers) if self.settings.deterministic else self.settings.workers

    def _may_ask(self) -> bool:
        """Whether the study may still ask a trial (slots aside)."""
        settings = self.settings
        return (not self.exhausted and self.error is None and not self.stop.is_set()
                and (settings.deadline is None or time.time() < settings.deadline)
                and self.finished + self._untold() < settings.trials)

    def _fill(self) -> None:
        """Start trials in the free slots (a trial asked ahead first), then ask one ahead."""
        settings = self.settings
        self._held_back = False
        while self.executor.in_flight() < settings.workers and (
                self._ready_to_start() or (self._untold() < self._lag() and self._may_ask())):
            if self.gate is not None and not self.gate.try_acquire():
                self._held_back = True  # a trial is due, but the gate gives its slot to another study
                return
            ticket = self._ready.popleft() if self._ready else self._ask(acquired=True)
            if ticket is None:
                return
            self._start(ticket)
        if self._asks_ahead and not self._ready and self._may_ask():
            ticket = self._ask(acquired=False)
            if ticket is not None:
                self._ready.append(ticket)

    def _ready_to_start(self) -> bool:
        """A trial asked ahead waits, and the study goes on (a stop tells it with those in flight)."""
        return bool(self._ready) and self.error is None and not self.stop.is_set()

    def _ask(self, acquired: bool) -> TrialTicket | None:
        """The coordinator's next trial; None when the constraints reject every proposal (the
        study's error). ``acquired``: a gate slot was taken for it, given back if none comes."""
        try:
            return self.coordinator.ask()
        except ConstraintUnsatisfiable as exc:
            log.error("%s", exc)
            self.error = exc
            if acquired:
                self._release()
            return None
        except BaseException:
            if acquired:
                self._release()
            raise

    def _start(self, ticket: TrialTicket) -> None:
        """Open the trial's MLflow run and start it on the executor."""
        self._open_run(ticket)
        self.executor.start(ticket)
        if self.settings.deterministic:
            self._order.append((ticket.number, self._asked))
            self._asked += 1
        if self.on_first_start is not None:
            self.on_first_start(ticket.number)

    def _open_run(self, ticket: TrialTicket) -> None:
        tags = {TAG_FRAMEWORK: ticket.framework, ATTR_ATTEMPT: str(ticket.attempt)}
        if ticket.retry_of is not None:
            tags[ATTR_RETRY_OF] = str(ticket.retry_of)
        self.tracker.trial_started(ticket.number, ticket.raw_params, tags)

    def _ended(self, ticket: TrialTicket, outcome: TrialOutcome) -> None:
        """Tell a trial that ended; in a deterministic study, tell every trial whose turn has
        come, in number order, filling the freed slot after each."""
        if not self.settings.deterministic:
            released = self._go_on_before_the_tell()
            self._finish(ticket, outcome, release=not released)
            self._fill()
            return
        self._held[ticket.number] = (ticket, outcome)
        self._fill()  # a worker is free: with lag > workers the next trial may be due already
        while self._order and self._order[0][0] in self._held:
            # The oldest trial is told only once the trial `lag` places after it was asked (or
            # none will be), so the next ask sees exactly the trials up to its own place - lag.
            number, place = self._order[0]
            if self._asked < place + self._lag() and self._may_ask():
                break
            self._order.popleft()
            self._finish(*self._held.pop(number))
            self._fill()

    def _go_on_before_the_tell(self) -> bool:
        """A worker freed by a trial that ended starts the trial asked ahead at once, before
        that trial is told. With a gate, the ended trial's slot is given back first and the
        one asked ahead asks the gate like any other (if it says no, the next fill asks
        again); returns whether the ended trial's slot was given back."""
        if not (self._ready_to_start() and self.executor.in_flight() < self.settings.workers):
            return False
        if self.gate is None:
            self._start(self._ready.popleft())
            return False
        self.gate.release()
        if self.gate.try_acquire():
            self._start(self._ready.popleft())
        return True

    def _release(self) -> None:
        if self.gate is not None:
            self.gate.release()

    def _finish(self, ticket: TrialTicket, outcome: TrialOutcome, release: bool = True) -> None:
        """Tell the trial and record it; then give back its gate slot (unless ``release`` is
        False: given back already)."""
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        # Link the trial to its MLflow run before it finishes (a finished trial's attrs are
        # frozen); during a tracking outage do not wait, the link goes to the study's attrs.
        run_id = self.tracker.run_id(ticket.number, timeout=0.0 if self.tracker.tracking_is_down() else 10.0)
        try:
            record = self.coordinator.tell(outcome, run_id)
        finally:
            if release:
                self._release()  # after the tell: a slot counts until its trial is recorded
        if self.settings.check_exhausted:
            self.exhausted = self.coordinator.is_exhausted()
        self.tracker.trial_finished(record)
        if outcome.artifacts:
            self.tracker.trial_artifacts(record.number, outcome.artifacts)
        self._warn(record.number, outcome.warnings)
        if record.retried_by is None:
            self.finished += 1
            self._watch_failures(record)
        if record.values and record.state == "COMPLETE" and self.settings.maximize is not None:
            value = record.values[0]
            if self.best is None or (value > self.best if self.settings.maximize else value < self.best):
                self.best = value
        if self.progress is not None:
            self.progress.update(record, self.best)
        if self.on_record is not None:
            self.on_record(record)

    def _warn(self, number: int, warnings: list[str]) -> None:
        """Say each distinct warning of the trials once per run, on the driver's log (stderr)."""
        for text in warnings:
            if text not in self._warned:
                self._warned.add(text)
                log.warning("trial %d: %s", number, text)

    def _watch_failures(self, record: TrialRecord) -> None:
        """Report a trial that failed for good; stop the study when its first ``fail_fast``
        trials all failed with one error."""
        if record.state != TRIAL_FAILED:
            self._first_failures = None
            return
        if self.on_failure is not None:
            self.on_failure(record)
        if self._first_failures is None:
            return
        self._first_failures.append(failure_key(record.reason))
        if len(set(self._first_failures)) > 1:
            self._first_failures = None
        elif len(self._first_failures) >= self.settings.fail_fast and self.error is None:
            n, study = len(self._first_failures), self.settings.study
            self.error = TrialsKeepFailing(
                f"study {study!r}: its first {n} trials all failed with the same error, so no more were "
                f"started: {self._first_failures[0]}\nFix the objective or its data, then run the same command "
                f"again: the study resumes (trials stopped in flight are retried). `sweeplab status {study}` "
                "lists the failures; --fail-fast 0 keeps a study going whatever fails."
            )
            self._interrupt("stopped: the study's first trials kept failing")  # the caller says self.error

    def _renew(self) -> None:
        if time.time() - self._last_renew > self.settings.lease_seconds / 3:
            self.coordinator.renew_leases()
            self._last_renew = time.time()

    def _interrupt(self, why: str) -> None:
        """Tell the trials that ended (those collected and not told yet, those held for their
        turn); cancel the trials in flight, and those asked ahead, and tell them INTERRUPTED
        (retried on resume, for free)."""
        self._order.clear()
        while self._collected:  # they ended: told as they ended (in a deterministic study, in turn below)
            ticket, outcome = self._collected.popleft()
            if self.settings.deterministic:
                self._held[ticket.number] = (ticket, outcome)
            else:
                self._finish(ticket, outcome)
        for number in sorted(self._held):
            if number in self._held:  # telling one may stop the study, which tells the rest
                self._finish(*self._held.pop(number))
        for ticket in self.executor.cancel():
            self._release()
            self._tell_lost(ticket, f"lost: {why}")
        self._drop_ready(why)

    def _drop_ready(self, why: str) -> None:
        """Tell the trials asked ahead INTERRUPTED: never started, they are retried on resume;
        each is a trial of the study all the same, with its MLflow run."""
        while self._ready:
            ticket = self._ready.popleft()
            self._open_run(ticket)
            self._tell_lost(ticket, f"lost: {why} (asked ahead, not started yet)")

    def _tell_lost(self, ticket: TrialTicket, reason: str) -> None:
        """Tell ``ticket``'s trial INTERRUPTED (retried on resume) and finish its MLflow run."""
        record = self.coordinator.tell(TrialOutcome(ticket.number, INTERRUPTED, {}, reason=reason))
        self.tracker.trial_finished(record)

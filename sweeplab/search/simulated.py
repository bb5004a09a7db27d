"""Simulated studies: the real search replayed on recorded learning curves, in simulated time.

:class:`SimulatedExecutor` is a :class:`~sweeplab.search.executor.TrialExecutor` whose
trials do not train: each trial's epochs, their metrics and their durations come from a
recorded table (:mod:`sweeplab.search.curves`), looked up by the trial's parameters (a
space of finite values, so the lookup is exact) and its seed (which picks one of the
recorded seeds). Everything else is the real study: the
:class:`~sweeplab.search.coordinator.StudyCoordinator` asks, records every report, asks
the pruner and tells, with the spec's sampler and pruner, driven by the real
:class:`~sweeplab.search.loop.TrialLoop`.

Time is a simulated clock. A trial started at ``t`` reports epoch ``k`` at ``t`` plus
the recorded durations of epochs ``1..k``, and ends after the recorded time of its end
(the final evaluation); ``workers`` trials run at once, each taking the time it took when
it was recorded. :meth:`SimulatedExecutor.collect` replays the events of every trial in
flight in the order of simulated time (ties: lower trial number first, then earlier
epoch) until one trial ends, and returns it, so the loop starts the next trial at the
simulated moment a worker frees up. The pruner therefore decides each report with the
epochs that have happened by then, and a sampler with ``constant_liar`` sees exactly the
trials running at that moment, as on a cluster whose trials take those times.

What is not simulated: contention (a trial takes its recorded time however many run at
once), start-up, scheduling and storage latencies (zero), trials lost to a dead worker
or node (none), and the wall-clock ``timeout``. No MLflow, no Ray; the study lives in
Optuna's in-memory storage. Nothing reads the wall clock to decide anything, so the same
spec and table give the same trials, values and states, bit for bit.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweeplab.core.defaults import DEFAULT_FAIL_FAST
from sweeplab.core.errors import Problem, SpecError
from sweeplab.core.records import COMPLETE, FAILED, PRUNED, TrialOutcome, TrialTicket
from sweeplab.search.curves import CurveTable, RecordedTrial
from sweeplab.search.loop import LoopResult, LoopSettings, TrialLoop
from sweeplab.spaces.params import CategoricalParam, FixedParam, FloatParam, IntParam

if TYPE_CHECKING:
    import optuna

    from sweeplab.search.coordinator import StudyCoordinator
    from sweeplab.spec import StudySpec

__all__ = [
    "SIMULATED_NODE",
    "NoTracking",
    "SimulatedExecutor",
    "SimulatedStudy",
    "SimulatedTrialTime",
    "simulate_study",
    "table_problems",
]

SIMULATED_NODE = "simulated"
"""The ``node`` of every simulated trial's outcome."""
_END = -1  # the event index of a trial's end
_LEASE_SECONDS = 1e9  # a simulated trial is never reaped: no other driver, no wall-clock deadline


@dataclass(frozen=True)
class SimulatedTrialTime:
    """When a simulated trial ran, in simulated seconds from the study's start, and how it ended."""

    number: int
    start: float
    end: float
    epochs: int
    state: str


@dataclass
class _Running:
    ticket: TrialTicket
    recorded: RecordedTrial
    start: float
    epochs: int = 0


class SimulatedExecutor:
    """Runs trials on recorded curves in simulated time (see the module docstring).

    ``coordinator``: the study's local coordinator (reports go straight to it).
    ``table``: the recorded curves. :attr:`now` is the simulated clock (seconds since the
    executor was made); :attr:`times` holds every trial that ended, by number, in the order
    they ended.
    """

    def __init__(self, coordinator: StudyCoordinator, table: CurveTable) -> None:
        self._coordinator = coordinator
        self._table = table
        self.now = 0.0
        self.times: dict[int, SimulatedTrialTime] = {}
        self._running: dict[int, _Running] = {}
        self._events: list[tuple[float, int, int]] = []  # (simulated time, trial number, epoch index or _END)

    def start(self, ticket: TrialTicket) -> None:
        """Start ``ticket`` now; raises SpecError when the table has no such configuration."""
        recorded = self._table.lookup(ticket.raw_params, ticket.seed)
        self._running[ticket.number] = _Running(ticket, recorded, self.now)
        self._schedule(ticket.number, recorded, 0)

    def _schedule(self, number: int, recorded: RecordedTrial, index: int) -> None:
        if index < len(recorded.epochs):
            heapq.heappush(self._events, (self.now + recorded.epochs[index].seconds, number, index))
        else:
            heapq.heappush(self._events, (self.now + recorded.end_seconds, number, _END))

    def collect(self, timeout: float) -> list[tuple[TrialTicket, TrialOutcome]]:
        """Advance the clock through the next events until one trial ends; return it.

        ``timeout`` does not apply: simulated time never waits.
        """
        while self._events:
            at, number, index = heapq.heappop(self._events)
            self.now = at
            run = self._running[number]
            if index == _END:
                return [self._end(run, self._outcome(run))]
            epoch = run.recorded.epochs[index]
            run.epochs += 1
            if self._coordinator.report(number, epoch.epoch, dict(epoch.metrics), at):
                outcome = TrialOutcome(number, PRUNED, {}, reason=f"pruned at epoch {epoch.epoch}",
                                       pruned_epoch=epoch.epoch, node=SIMULATED_NODE, duration=at - run.start,
                                       started_at=run.start)
                return [self._end(run, outcome)]
            self._schedule(number, run.recorded, index + 1)
        return []

    def _outcome(self, run: _Running) -> TrialOutcome:
        recorded = run.recorded
        if recorded.state == COMPLETE:
            return TrialOutcome(run.ticket.number, COMPLETE, dict(recorded.result), node=SIMULATED_NODE,
                                duration=self.now - run.start, started_at=run.start)
        return TrialOutcome(run.ticket.number, FAILED, {}, reason=recorded.reason or "failed when recorded",
                            node=SIMULATED_NODE, duration=self.now - run.start, started_at=run.start)

    def _end(self, run: _Running, outcome: TrialOutcome) -> tuple[TrialTicket, TrialOutcome]:
        number = run.ticket.number
        del self._running[number]
        self._events = [e for e in self._events if e[1] != number]
        heapq.heapify(self._events)
        self.times[number] = SimulatedTrialTime(number, run.start, self.now, run.epochs, outcome.state)
        return run.ticket, outcome

    def cancel(self) -> list[TrialTicket]:
        """Stop every trial in flight (they never report again) and return their tickets."""
        tickets = [run.ticket for run in self._running.values()]
        self._running.clear()
        self._events.clear()
        return tickets

    def in_flight(self) -> int:
        return len(self._running)


class NoTracking:
    """The :class:`~sweeplab.search.loop.TrialTracker` of a simulated study: logs nothing."""

    def trial_started(self, number: int, raw_params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        """Nothing to log."""

    def run_id(self, number: int, timeout: float = 0.0) -> str | None:
        return None

    def trial_finished(self, record: Any) -> None:
        """Nothing to log."""

    def trial_artifacts(self, number: int, files: Mapping[str, Any]) -> None:
        """Nothing to log."""

    def tracking_is_down(self) -> bool:
        return False


# ---------------------------------------------------------------------- spec vs table
def _shown(values: Sequence[Any]) -> str:
    import json

    return ", ".join(json.dumps(v) if isinstance(v, (bool, str)) else repr(v) for v in values)


def table_problems(spec: StudySpec, table: CurveTable) -> list[Problem]:
    """What keeps ``spec`` from being simulated on ``table``, with the spec's YAML paths.

    The objective must be the table's (the recorded training is replayed as it is), every
    parameter the table varies must be in the space, every value the space can ask must
    be one the table recorded (a continuous float range cannot be), the metrics must be
    recorded ones, and ``timeout`` (wall seconds) does not apply.
    """
    problems: list[Problem] = []
    name = table.info.name
    recorded_obj = dict(table.info.objective)
    given_obj = spec.objective.to_dict()
    for key in sorted(set(recorded_obj) | set(given_obj)):
        if recorded_obj.get(key) != given_obj.get(key):
            problems.append(Problem(f"objective.{key}", f"the table {name} was recorded with {key}: "
                                    f"{recorded_obj.get(key)!r}, the spec has {given_obj.get(key)!r}; a simulated "
                                    "study replays the recorded training: leave `objective` out (it is the "
                                    f"table's) or set {key} to the table's"))
    if spec.timeout is not None:
        problems.append(Problem("timeout", "a simulated study runs on a simulated clock, so a timeout in wall "
                                           "seconds does not apply; remove it"))
    for metric in spec.metric:
        if metric not in table.info.metrics:
            problems.append(Problem("metric", f"`{metric}` was not recorded in the table {name}; recorded "
                                              f"metrics: {', '.join(table.info.metrics)}"))
    for param in table.param_names:
        if param not in spec.space:
            problems.append(Problem(f"space.{param}", f"the table {name} varies `{param}` (recorded: "
                                    f"{_shown(table.recorded_values(param))}); the space must search it or fix it "
                                    "to one of those values"))
    for p in spec.space.params:
        path = f"space.{p.name}"
        if p.name not in table.param_names:
            problems.append(Problem(path, f"`{p.name}` is not a parameter of the table {name} (it recorded "
                                          f"{', '.join(table.param_names)}); remove it"))
            continue
        recorded = table.recorded_values(p.name)
        if isinstance(p, FloatParam) and p.step is None:
            problems.append(Problem(path, f"a continuous float range cannot be simulated: the table {name} "
                                          f"recorded {_shown(recorded)}; make it categorical with those values"))
            continue
        values: list[Any]
        if isinstance(p, FixedParam):
            values = [p.raw_value]
        elif isinstance(p, (IntParam, FloatParam, CategoricalParam)):
            values = list(p.grid_values())
        else:  # pragma: no cover - every kind of param is listed above
            values = []
        missing = [v for v in values if not table.value_recorded(p.name, v)]
        if missing:
            more = f" (and {len(missing) - 8} more)" if len(missing) > 8 else ""
            problems.append(Problem(path, f"value{'s' if len(missing) > 1 else ''} {_shown(missing[:8])}{more} "
                                          f"{'were' if len(missing) > 1 else 'was'} not recorded in the table "
                                          f"{name}; recorded values: {_shown(recorded)}"))
    return problems


# ---------------------------------------------------------------------- one study
@dataclass(frozen=True)
class SimulatedStudy:
    """A simulated study once run: the Optuna study (in memory), when each trial ran in
    simulated seconds, the simulated time it took, and how its loop ended."""

    study: optuna.Study
    times: Mapping[int, SimulatedTrialTime]
    elapsed: float
    loop: LoopResult


def simulate_study(spec: StudySpec, table: CurveTable, *, fail_fast: int = DEFAULT_FAIL_FAST) -> SimulatedStudy:
    """Run ``spec`` on ``table``: the real coordinator, sampler, pruner and trial loop, with a
    :class:`SimulatedExecutor` and Optuna's in-memory storage (see the module docstring).

    Raises SpecError listing :func:`table_problems` before anything runs. ``fail_fast``:
    as a real study's (its first trials all failing alike stop it; 0: never).
    """
    import optuna

    from sweeplab.search.coordinator import StudyCoordinator
    from sweeplab.search.storage import PlainStudyStorage

    problems = table_problems(spec, table)
    if problems:
        raise SpecError(problems, spec.source)
    coordinator = StudyCoordinator(spec.to_dict(), "memory", lease_seconds=_LEASE_SECONDS,
                                   study_storage=PlainStudyStorage(optuna.storages.InMemoryStorage()))
    coordinator.set_data_shape(table.info.n_features, table.info.n_outputs)
    executor = SimulatedExecutor(coordinator, table)
    maximize = None if spec.multi_objective else spec.direction[0] == "maximize"
    settings = LoopSettings(trials=spec.trials, workers=spec.workers, deadline=None, lease_seconds=_LEASE_SECONDS,
                            check_exhausted=spec.sampler.name == "grid", maximize=maximize, study=spec.study,
                            fail_fast=fail_fast, deterministic=spec.deterministic,
                            lag=spec.deterministic_lag or 0)
    result = TrialLoop(coordinator, executor, NoTracking(), settings, finished=0).run()
    return SimulatedStudy(coordinator.study, dict(executor.times), executor.now, result)

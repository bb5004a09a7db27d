"""Where trials run: the executor seam between the trial loop and the machines.

The trial loop (:mod:`sweeplab.search.loop`) asks the coordinator for tickets, hands them
to an executor, and tells the coordinator how each ended. An executor only runs trials:

- :meth:`TrialExecutor.start` starts one trial (it returns at once);
- :meth:`TrialExecutor.collect` waits up to ``timeout`` seconds and returns the trials that
  ended since the last call, each with its outcome. A trial whose process or node died
  comes back as a LOST or INTERRUPTED outcome (see :mod:`sweeplab.core.records`);
- :meth:`TrialExecutor.cancel` stops every trial in flight and returns their tickets;
  the loop then tells them INTERRUPTED.

:class:`RayExecutor` runs each trial as a Ray task (the executor of studies);
:class:`InProcessExecutor` runs them on threads of this process, reporting straight to a
local coordinator, so the loop, pruning, resume and retries are tested without Ray;
:class:`~sweeplab.search.simulated.SimulatedExecutor` replays recorded learning curves in
simulated time (simulated benchmarks).

The coordinator is reached the same way: :class:`RemoteCoordinator` gives the coordinator
actor the synchronous methods of :class:`~sweeplab.search.coordinator.StudyCoordinator`,
so the loop is written once against :class:`Coordinator` (a coordinator in the driver is
called directly; its trials reach it through :mod:`sweeplab.search.channel`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING, Any, Protocol

from sweeplab.core.errors import SweeplabError
from sweeplab.core.records import (
    INTERRUPTED,
    LOST,
    StudySummary,
    TrialDigest,
    TrialOutcome,
    TrialRecord,
    TrialTicket,
)
from sweeplab.objectives.base import TrialPruned
from sweeplab.search.worker import execute_trial

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset
    from sweeplab.search.coordinator import StudyCoordinator
    from sweeplab.spec import ObjectiveSpec


class Coordinator(Protocol):
    """What the trial loop and the study session call on the one writer of the study."""

    def ask(self) -> TrialTicket: ...
    def tell(self, outcome: TrialOutcome, run_id: str | None = None) -> TrialRecord: ...
    def renew_leases(self) -> int: ...
    def is_exhausted(self) -> bool: ...
    def counts(self) -> dict[str, int]: ...
    def summary(self) -> StudySummary: ...
    def set_study_attr(self, key: str, value: Any) -> None: ...
    def study_attrs(self) -> dict[str, Any]: ...
    def reap_stale(self) -> list[TrialRecord]: ...
    def finished_digest(self) -> list[TrialDigest]: ...
    def link_run(self, number: int, run_id: str) -> None: ...
    def set_data_shape(self, n_features: int, n_outputs: int,
                       fixed_params: dict[str, Any] | None = None) -> None: ...


class TrialExecutor(Protocol):
    """Runs trials; see the module docstring for the contract."""

    def start(self, ticket: TrialTicket) -> None: ...
    def collect(self, timeout: float) -> list[tuple[TrialTicket, TrialOutcome]]: ...
    def cancel(self) -> list[TrialTicket]: ...
    def in_flight(self) -> int: ...


class RemoteCoordinator:
    """The coordinator actor, called synchronously. A :class:`SweeplabError` raised inside
    the actor (e.g. ``ConstraintUnsatisfiable`` from ``ask``) is raised here as itself."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def _call(self, name: str, *args: Any) -> Any:
        import ray

        try:
            return ray.get(getattr(self.actor, name).remote(*args))
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, SweeplabError):
                raise cause from exc
            raise

    def ask(self) -> TrialTicket:
        return self._call("ask")  # type: ignore[no-any-return]

    def tell(self, outcome: TrialOutcome, run_id: str | None = None) -> TrialRecord:
        return self._call("tell", outcome, run_id)  # type: ignore[no-any-return]

    def renew_leases(self) -> int:
        self.actor.renew_leases.remote()  # fire and forget: the loop must not wait on it
        return 0

    def is_exhausted(self) -> bool:
        return bool(self._call("is_exhausted"))

    def counts(self) -> dict[str, int]:
        return self._call("counts")  # type: ignore[no-any-return]

    def summary(self) -> StudySummary:
        return self._call("summary")  # type: ignore[no-any-return]

    def set_study_attr(self, key: str, value: Any) -> None:
        self._call("set_study_attr", key, value)

    def study_attrs(self) -> dict[str, Any]:
        return self._call("study_attrs")  # type: ignore[no-any-return]

    def reap_stale(self) -> list[TrialRecord]:
        return self._call("reap_stale")  # type: ignore[no-any-return]

    def finished_digest(self) -> list[TrialDigest]:
        return self._call("finished_digest")  # type: ignore[no-any-return]

    def link_run(self, number: int, run_id: str) -> None:
        self.actor.link_run.remote(number, run_id)  # called from MLflow's writer thread: do not block it

    def set_data_shape(self, n_features: int, n_outputs: int, fixed_params: dict[str, Any] | None = None) -> None:
        self._call("set_data_shape", n_features, n_outputs, fixed_params)


def lost_outcome(number: int, exc: BaseException) -> TrialOutcome:
    """The outcome of a trial whose Ray task failed with ``exc`` instead of returning.

    A lost node (or its raylet, or an object it held) is the infrastructure's doing:
    INTERRUPTED, retried without spending ``max_retries``. Anything else means the
    trial's own worker process died while its node lived (it killed itself, ran out of
    memory, crashed in native code): LOST, which spends one retry.
    """
    import ray

    text = f"{type(exc).__name__}: {str(exc)[:500]}"
    infrastructure = (ray.exceptions.NodeDiedError, ray.exceptions.LocalRayletDiedError,
                      ray.exceptions.ObjectLostError)
    if isinstance(exc, infrastructure):
        return TrialOutcome(number, INTERRUPTED, {}, reason=f"lost: its Ray node was lost ({text})")
    return TrialOutcome(number, LOST, {}, reason=f"lost: its worker died ({text})")


class RayExecutor:
    """Each trial is a Ray task (``max_retries=0``: the coordinator decides about retries),
    spread over the cluster's nodes, reporting epochs to ``coordinator``: the coordinator
    actor's handle, or the :class:`~sweeplab.search.channel.CoordinatorLink` of a
    coordinator in the driver (a local Ray).

    ``custom``: the trial's custom Ray resources. ``user_fn_ref``: the study's function
    (framework python, ``sweeplab.run(spec, objective=fn)``) in Ray's object store, put
    there once per study; every trial gets the reference, which Ray resolves to the
    function on the worker (a function of ``__main__``, a notebook's or a script's,
    was pickled by value).

    A trial with a GPU share runs in a fresh worker process (Ray's own default for GPU
    tasks): CUDA reads ``CUDA_VISIBLE_DEVICES`` once per process, so a reused worker would
    keep the device, and the memory, of the first trial it ran.
    """

    def __init__(self, coordinator: Any, dataset_ref: Any, settings: ObjectiveSpec, metric_names: list[str],
                 cpus: float, gpus: float, *, custom: Mapping[str, float] | None = None,
                 user_fn_ref: Any = None) -> None:
        import ray

        self._ray = ray
        self._task = ray.remote(max_retries=0, max_calls=1 if gpus > 0 else 0)(execute_trial)
        self._args = (dataset_ref, settings, list(metric_names), coordinator, cpus, gpus)
        self._options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus, "scheduling_strategy": "SPREAD"}
        if custom:
            self._options["resources"] = dict(custom)
        self._user_fn = user_fn_ref
        self._running: dict[Any, TrialTicket] = {}

    def start(self, ticket: TrialTicket) -> None:
        ref = self._task.options(**self._options).remote(ticket, *self._args, user_fn=self._user_fn)
        self._running[ref] = ticket

    def collect(self, timeout: float) -> list[tuple[TrialTicket, TrialOutcome]]:
        if not self._running:
            return []
        done, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        ended = []
        for ref in done:
            ticket = self._running.pop(ref)
            try:
                outcome: TrialOutcome = self._ray.get(ref)
            except self._ray.exceptions.RayError as exc:
                outcome = lost_outcome(ticket.number, exc)
            ended.append((ticket, outcome))
        return ended

    def cancel(self) -> list[TrialTicket]:
        for ref in self._running:
            self._ray.cancel(ref, force=True)
        tickets = list(self._running.values())
        self._running.clear()
        return tickets

    def in_flight(self) -> int:
        return len(self._running)


class TrialCancelled(BaseException):
    """Raised in an in-process trial at its next report once the executor was cancelled.

    A BaseException, like KeyboardInterrupt, so that an objective's ``except Exception``
    does not swallow it.
    """


class LocalReporter:
    """Reports a trial's epochs straight to a local coordinator and obeys its decision."""

    def __init__(self, coordinator: StudyCoordinator, number: int, cancelled: threading.Event) -> None:
        self._coordinator = coordinator
        self._number = number
        self._cancelled = cancelled

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self._cancelled.is_set():
            raise TrialCancelled(self._number)
        clean = {str(k): float(v) for k, v in metrics.items()}
        if self._coordinator.report(self._number, epoch, clean):
            raise TrialPruned(epoch)

    def finish(self) -> None:
        """Every report was recorded when it was made."""


class InProcessExecutor:
    """Runs trials on ``workers`` threads of this process (for tests and small local runs).

    Trials share the process: the objective must be thread-safe (the analytic test
    objectives are). Cancelling stops each trial at its next report. ``user_fn``: the
    study's function (framework python), called as it is.
    """

    def __init__(self, coordinator: StudyCoordinator, dataset: Dataset | None, settings: ObjectiveSpec,
                 metric_names: list[str],
                 workers: int, cpus: float = 1.0, *, user_fn: Callable[..., Any] | None = None) -> None:
        self._coordinator = coordinator
        self._args = (dataset, settings, list(metric_names))
        self._cpus = cpus
        self._user_fn = user_fn
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sweeplab-trial")
        self._running: dict[Future[TrialOutcome], TrialTicket] = {}
        self._cancelled = threading.Event()

    def start(self, ticket: TrialTicket) -> None:
        reporter = LocalReporter(self._coordinator, ticket.number, self._cancelled)
        future = self._pool.submit(execute_trial, ticket, *self._args, self._coordinator, self._cpus, 0.0, reporter,
                                   user_fn=self._user_fn)
        self._running[future] = ticket

    def collect(self, timeout: float) -> list[tuple[TrialTicket, TrialOutcome]]:
        if not self._running:
            return []
        done, _ = wait_futures(list(self._running), timeout=timeout, return_when=FIRST_COMPLETED)
        ended = []
        for future in done:
            ticket = self._running.pop(future)
            try:
                outcome = future.result()
            except BaseException as exc:  # the trial's thread died outside the objective
                outcome = TrialOutcome(ticket.number, LOST, {}, reason=f"lost: {type(exc).__name__}: {exc}")
            ended.append((ticket, outcome))
        return ended

    def cancel(self) -> list[TrialTicket]:
        self._cancelled.set()
        tickets = list(self._running.values())
        wait_futures(list(self._running))
        self._running.clear()
        self._pool.shutdown(wait=True)
        return tickets

    def in_flight(self) -> int:
        return len(self._running)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

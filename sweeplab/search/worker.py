"""What runs on a Ray worker: one trial, start to finish.

:func:`execute_trial` is wrapped as a Ray task by the driver. Ray reuses worker
processes between tasks, and objectives are cached per process in
:data:`_OBJECTIVES`, so torch or TensorFlow are imported once per worker, not once
per trial. Every exception of the objective becomes a FAIL outcome carrying its
reason; only the death of the worker process itself escapes (as a Ray error the
driver turns into a lost, retried trial).
"""

from __future__ import annotations

import importlib
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sweeplab.core.records import COMPLETE, FAILED, PRUNED, TrialOutcome, TrialTicket
from sweeplab.objectives.base import BaseObjective, TrialContext, TrialPruned, check_metrics
from sweeplab.registry.names import FRAMEWORK_NAMES, FRAMEWORKS_BY_NAME, MLP_FRAMEWORKS

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset
    from sweeplab.spec import ObjectiveSpec

_OBJECTIVES: dict[tuple[str, str | None], BaseObjective] = {}


class CoordinatorReporter:
    """Sends each epoch's metrics to the study coordinator and obeys its pruning decision.

    With ``wait=False`` (a study whose pruner never prunes) a report does not wait for
    the coordinator's answer, so training goes on at once; :meth:`finish` then waits
    until every report was recorded, before the outcome goes back to the driver (which
    tells the trial and logs its per-epoch history).
    """

    def __init__(self, coordinator: Any, number: int, wait: bool = True) -> None:
        self._coordinator = coordinator
        self._number = number
        self._wait = wait
        self._unanswered: list[Any] = []

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        import ray

        clean = {str(k): float(v) for k, v in metrics.items()}
        # The epoch's time as the worker saw it: reports that do not wait may arrive out of order.
        answer = self._coordinator.report.remote(self._number, epoch, clean, time.time())
        if not self._wait:
            self._unanswered.append(answer)
        elif ray.get(answer):
            raise TrialPruned(epoch)

    def finish(self) -> None:
        """Wait until the coordinator has recorded every report sent so far."""
        if self._unanswered:
            import ray

            refs, self._unanswered = self._unanswered, []
            ray.get(refs)


def get_objective(framework: str, callable_path: str | None, *, user_fn: Callable[..., Any] | None = None
                  ) -> BaseObjective:
    """Return this process's objective instance for ``framework`` (imported on first use,
    from the framework's registry entry). ``user_fn``: the study's function itself (framework
    python), used instead of ``callable_path``."""
    entry = FRAMEWORKS_BY_NAME.get(framework)
    if entry is None:
        raise ValueError(f"unknown framework {framework!r}; use one of {', '.join(FRAMEWORK_NAMES)}")
    if user_fn is not None and not entry.mlp:
        from sweeplab.objectives.python_callable import CallableObjective

        return CallableObjective(user_fn)
    key = (framework, None if entry.mlp else callable_path)
    objective = _OBJECTIVES.get(key)
    if objective is None:
        module, _, cls = entry.objective.partition(":")
        factory = getattr(importlib.import_module(module), cls)
        objective = factory() if entry.mlp else factory(callable_path or "")
        _OBJECTIVES[key] = objective
    return objective


def warm_worker(framework: str, callable_path: str | None) -> int:
    """Import (and cache) this process's objective and warm it up before its first trial; never raises."""
    try:
        get_objective(framework, callable_path).warm_up()
    except Exception:  # the first trial reports the problem with its full context
        pass
    return os.getpid()


def node_name() -> str:
    """Where this trial runs: the Ray node's IP when inside Ray, else the host name."""
    try:
        import ray

        if ray.is_initialized():
            node_id = ray.get_runtime_context().get_node_id() or ""
            return f"{ray.util.get_node_ip_address()}/{node_id[:8]}"
    except Exception:  # pragma: no cover - outside Ray
        pass
    return socket.gethostname()


def trial_artifacts(framework: str, objective: Any, dataset: Dataset | None, metrics: Mapping[str, float]
                    ) -> dict[str, Any]:
    """The small artifacts of a COMPLETE trial: ``{"evaluation.json": payload}`` for torch and
    keras objectives (held-out metrics, confusion matrix table, classification report; one
    forward pass, no plotting), else nothing. Never raises: an evaluation problem must not
    fail a trial that trained, so it is returned as ``evaluation_error.txt`` instead."""
    if framework not in MLP_FRAMEWORKS or getattr(objective, "model", None) is None:
        return {}
    try:
        from sweeplab.objectives.evaluation import EVALUATION_FILE, evaluate_objective

        payload = evaluate_objective(framework, objective, dataset, metrics)
        return {EVALUATION_FILE: payload} if payload is not None else {}
    except Exception as exc:
        return {"evaluation_error.txt": f"{type(exc).__name__}: {exc}"}


def execute_trial(
    ticket: TrialTicket,
    dataset: Dataset | None,
    settings: ObjectiveSpec,
    metric_names: list[str],
    coordinator: Any,
    cpus: float = 1.0,
    gpus: float = 0.0,
    reporter: Any = None,
    *,
    user_fn: Callable[..., Any] | None = None,
) -> TrialOutcome:
    """Run one trial and describe how it ended. Never raises for objective errors.
    ``user_fn``: the study's function (framework python) instead of ``settings.callable``."""
    started = time.time()
    sender = None if reporter is not None else CoordinatorReporter(coordinator, ticket.number, wait=ticket.prunable)
    node = f"{node_name()} pid={os.getpid()}"
    try:
        return _run_trial(ticket, dataset, settings, metric_names, cpus, gpus, reporter or sender, started, node,
                          user_fn)
    finally:
        if sender is not None:
            sender.finish()  # every report recorded before the driver tells the trial


def _run_trial(ticket: TrialTicket, dataset: Dataset | None, settings: ObjectiveSpec, metric_names: list[str],
               cpus: float, gpus: float,
               reporter: Any, started: float, node: str, user_fn: Callable[..., Any] | None = None) -> TrialOutcome:
    try:
        objective = get_objective(ticket.framework, getattr(settings, "callable", None), user_fn=user_fn)
        ctx = TrialContext(
            params=ticket.params,
            dataset=dataset,
            seed=ticket.seed,
            reporter=reporter,
            settings=settings,
            cpus=cpus,
            gpus=gpus,
            trial_number=ticket.number,
            extras={"metric": metric_names[0] if metric_names else "value"},
        )
        raw = objective.run(ctx)
        metrics = check_metrics(raw, metric_names)
        artifacts = trial_artifacts(ticket.framework, objective, dataset, metrics)
        return TrialOutcome(ticket.number, COMPLETE, metrics, node=node, duration=time.time() - started,
                            started_at=started, artifacts=artifacts)
    except TrialPruned as pruned:
        return TrialOutcome(ticket.number, PRUNED, {}, reason=f"pruned at epoch {pruned.epoch}",
                            pruned_epoch=pruned.epoch, node=node, duration=time.time() - started, started_at=started)
    except MemoryError as exc:
        reason = f"MemoryError: out of memory ({exc}); lower batch_size/units or give trials more memory"
        return TrialOutcome(ticket.number, FAILED, {}, reason=reason, node=node, duration=time.time() - started,
                            started_at=started)
    except Exception as exc:
        tb = traceback.format_exc(limit=-3)
        reason = f"{type(exc).__name__}: {exc}\n{tb}"
        return TrialOutcome(ticket.number, FAILED, {}, reason=reason, node=node, duration=time.time() - started,
                            started_at=started)

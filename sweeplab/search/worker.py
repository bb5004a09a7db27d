"""What runs on a Ray worker: one trial, start to finish.

:func:`execute_trial` is wrapped as a Ray task by the driver. Ray reuses worker
processes between tasks, and objectives are cached per process in
:data:`_OBJECTIVES`, so torch or TensorFlow are imported once per worker, not once
per trial. Every exception of the objective (``SystemExit`` included) becomes a FAIL
outcome carrying its reason; :class:`~sweeplab.objectives.trial.TrialPruned` (or Optuna's
``TrialPruned``) a PRUNED one; only the death of the worker process itself escapes (as a
Ray error the driver turns into a lost, retried trial).

The :class:`~sweeplab.objectives.trial.Trial` gets its study through
:class:`~sweeplab.objectives.trial.TrialHooks`: checkpoints go to the coordinator (an
actor, or a local object in-process), models are saved by
:mod:`sweeplab.tracking.trial_models` here and travel back in the outcome's
``artifacts`` with the files the function logged, whatever the trial's end; mistakes
the trial noticed travel in ``warnings``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sweeplab.core.records import COMPLETE, FAILED, PRUNED, TrialOutcome, TrialTicket
from sweeplab.objectives.base import BaseObjective, check_metrics
from sweeplab.objectives.trial import Trial, TrialHooks, TrialPruned
from sweeplab.registry.names import FRAMEWORK_NAMES, FRAMEWORKS_BY_NAME, MLP_FRAMEWORKS
from sweeplab.search.channel import CoordinatorChannel, open_channel

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset
    from sweeplab.spec import ObjectiveSpec

_OBJECTIVES: dict[tuple[str, str | None], BaseObjective] = {}


class CoordinatorReporter:
    """Sends each epoch's metrics to the study coordinator and obeys its pruning decision.

    ``channel``: the way to the coordinator (:mod:`sweeplab.search.channel`: its actor, or
    the driver's server). With ``wait=False`` (a study whose pruner never prunes) a report
    does not wait for the coordinator's answer, so training goes on at once, and goes to
    :meth:`StudyCoordinator.report_queued`; :meth:`finish` then waits until the coordinator
    has every report (recorded, or queued to be recorded before the trial is told), before
    the outcome goes back to the driver (which tells the trial and logs its per-epoch history).
    """

    def __init__(self, channel: CoordinatorChannel, number: int, wait: bool = True) -> None:
        self._channel = channel
        self._number = number
        self._wait = wait

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        clean = {str(k): float(v) for k, v in metrics.items()}
        # The epoch's time as the worker saw it: reports that do not wait may arrive out of order.
        args = (self._number, epoch, clean, time.time())
        if not self._wait:
            self._channel.send("report_queued", *args)
        elif self._channel.call("report", *args):
            raise TrialPruned(epoch)

    def finish(self) -> None:
        """Wait until the coordinator has recorded every report sent so far."""
        self._channel.flush()


def get_objective(framework: str, callable_path: str | None, *, user_fn: Callable[..., Any] | None = None
                  ) -> BaseObjective:
    """Return this process's objective instance for ``framework`` (imported on first use,
    from the framework's registry entry). ``user_fn``: the study's function itself (framework
    python), used instead of ``callable_path`` (a new objective each call: it is cheap, and
    each Ray task gets its own copy of the function)."""
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
    ray = sys.modules.get("ray")  # a worker process outside Ray need not import it to know
    try:
        if ray is not None and ray.is_initialized():
            node_id = ray.get_runtime_context().get_node_id() or ""
            return f"{ray.util.get_node_ip_address()}/{node_id[:8]}"
    except Exception:  # pragma: no cover - outside Ray
        pass
    return socket.gethostname()


def trial_artifacts(framework: str, objective: Any, dataset: Dataset | None, metrics: Mapping[str, float]
                    ) -> dict[str, Any]:
    """The small artifacts of a COMPLETE trial: ``{"evaluation.json": payload}`` for torch and
    keras objectives (held-out metrics, confusion matrix table, classification report; one
    forward pass, no plotting), and ``cv_folds.csv`` (each fold's curves) for a
    cross-validated one, else nothing. Never raises: an evaluation problem must not
    fail a trial that trained, so it is returned as ``evaluation_error.txt`` instead."""
    if framework not in MLP_FRAMEWORKS or getattr(objective, "model", None) is None:
        return {}
    from sweeplab.objectives.evaluation import EVALUATION_FILE, FOLDS_FILE, evaluate_objective, fold_history_csv

    out: dict[str, Any] = {}
    fold_history = getattr(objective, "fold_history", None)
    if fold_history:
        out[FOLDS_FILE] = fold_history_csv(fold_history)
    try:
        payload = evaluate_objective(framework, objective, dataset, metrics)
        if payload is not None:
            out[EVALUATION_FILE] = payload
    except Exception as exc:
        out["evaluation_error.txt"] = f"{type(exc).__name__}: {exc}"
    return out


def trial_hooks(coordinator: Any, number: int, channel: CoordinatorChannel | None = None) -> TrialHooks:
    """How trial ``number`` reaches its study: checkpoints through ``channel`` (to the actor or
    the driver's coordinator) or, without one, ``coordinator`` itself (a local
    :class:`~sweeplab.search.coordinator.StudyCoordinator`, or None: none kept, as when
    packaging re-fits a trial); models saved by
    :func:`sweeplab.tracking.trial_models.save_model_files`."""

    def save_model(model: Any, input_example: Any, dataset: Any) -> dict[str, bytes]:
        from sweeplab.tracking.trial_models import save_model_files

        return save_model_files(model, input_example, dataset)

    if channel is not None:
        def save_remote(data: bytes) -> None:
            channel.call("save_checkpoint", number, data)

        def load_remote() -> bytes | None:
            return channel.call("load_checkpoint", number)  # type: ignore[no-any-return]

        return TrialHooks(save_checkpoint=save_remote, load_checkpoint=load_remote, save_model=save_model)
    if coordinator is None:
        return TrialHooks(save_model=save_model)

    def save_local(data: bytes) -> None:
        coordinator.save_checkpoint(number, data)

    def load_local() -> bytes | None:
        return coordinator.load_checkpoint(number)  # type: ignore[no-any-return]

    return TrialHooks(save_checkpoint=save_local, load_checkpoint=load_local, save_model=save_model)


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

    ``coordinator``: the study's coordinator as this process reaches it: a Ray actor handle
    or a :class:`~sweeplab.search.channel.CoordinatorLink` (trials on Ray), a local
    :class:`~sweeplab.search.coordinator.StudyCoordinator` (in-process) or None.
    ``reporter``: where epochs go (default: the coordinator, through its channel);
    ``user_fn``: the study's function (framework python) instead of ``settings.callable``.
    """
    started = time.time()
    channel = open_channel(coordinator)
    if reporter is None:
        if channel is None:
            raise ValueError("execute_trial needs a reporter when its coordinator is local or None")
        reporter = CoordinatorReporter(channel, ticket.number, wait=ticket.prunable)
    node = f"{node_name()} pid={os.getpid()}"
    trial = Trial(
        params=ticket.params,
        dataset=dataset,
        seed=ticket.seed,
        reporter=reporter,
        settings=settings,
        cpus=cpus,
        gpus=gpus,
        trial_number=ticket.number,
        extras={"metric": metric_names[0] if metric_names else "value"},
        attempt=ticket.attempt,
        metric_names=tuple(metric_names),
        prunable=ticket.prunable,
        hooks=trial_hooks(coordinator, ticket.number, channel),
    )
    try:
        outcome = _run_trial(ticket, trial, dataset, settings, metric_names, user_fn, started, node)
    finally:
        if channel is not None:
            try:
                channel.flush()  # every report recorded before the driver tells the trial
            finally:
                channel.close()
    extra = trial.artifacts
    # a failed trial still says what it reported wrong; "never reported" would only echo its failure
    warnings = trial.warnings(ended=outcome.state != FAILED)
    if not extra and not warnings:
        return outcome
    return dataclasses.replace(outcome, artifacts={**outcome.artifacts, **extra},
                               warnings=[*outcome.warnings, *warnings])


def _pruned(ticket: TrialTicket, epoch: int | None, node: str, started: float,
            warnings: list[str] | None = None) -> TrialOutcome:
    reason = "pruned" if epoch is None else f"pruned at epoch {epoch}"
    return TrialOutcome(ticket.number, PRUNED, {}, reason=reason, pruned_epoch=epoch, node=node,
                        duration=time.time() - started, started_at=started, warnings=list(warnings or []))


def _is_optuna_pruned(exc: BaseException) -> bool:
    optuna_exceptions = sys.modules.get("optuna.exceptions")
    return optuna_exceptions is not None and isinstance(exc, optuna_exceptions.TrialPruned)


def _run_trial(ticket: TrialTicket, trial: Trial, dataset: Dataset | None, settings: ObjectiveSpec,
               metric_names: list[str], user_fn: Callable[..., Any] | None, started: float,
               node: str) -> TrialOutcome:
    def failed(reason: str) -> TrialOutcome:
        return TrialOutcome(ticket.number, FAILED, {}, reason=reason, node=node, duration=time.time() - started,
                            started_at=started)

    try:
        objective = get_objective(ticket.framework, getattr(settings, "callable", None), user_fn=user_fn)
        raw = objective.run(trial)
        swallowed = trial.pruned_and_swallowed
        if swallowed is not None:
            # The pruner's decision stands even when the function caught the signal and went on.
            return _pruned(ticket, swallowed, node, started, [
                f"the function caught TrialPruned (epoch {swallowed}) and went on; the trial is PRUNED anyway. "
                "Let it propagate (it is not an Exception: `except Exception` does not catch it), or report with "
                "raise_pruned=False and ask trial.should_prune()"])
        metrics = check_metrics(raw, metric_names)
        artifacts = trial_artifacts(ticket.framework, objective, dataset, metrics)
        return TrialOutcome(ticket.number, COMPLETE, metrics, node=node, duration=time.time() - started,
                            started_at=started, artifacts=artifacts)
    except TrialPruned as pruned:
        return _pruned(ticket, pruned.epoch if pruned.epoch is not None else trial.last_epoch, node, started)
    except MemoryError as exc:
        return failed(f"MemoryError: out of memory ({exc}); lower batch_size/units or give trials more memory")
    except SystemExit as exc:
        return failed(f"SystemExit: the objective called sys.exit({exc.code!r}); raise an exception or return "
                      "a value instead")
    except Exception as exc:
        if _is_optuna_pruned(exc):
            return _pruned(ticket, trial.last_epoch, node, started)
        tb = traceback.format_exc(limit=-3)
        return failed(f"{type(exc).__name__}: {exc}\n{tb}")

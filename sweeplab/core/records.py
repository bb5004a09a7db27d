"""Plain data passed between the driver, the coordinator and the workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COMPLETE = "COMPLETE"
PRUNED = "PRUNED"
FAILED = "FAIL"
LOST = "LOST"
"""The trial's own worker process died while its driver lived (killed itself, out of memory):
failed and retried, spending one of the lineage's ``max_retries``."""
INTERRUPTED = "INTERRUPTED"
"""The trial was cut short by the infrastructure, not by itself: its driver died or was
stopped (SIGKILL, Ctrl-C, an expired lease) or its Ray node was lost. Failed and retried
without spending ``max_retries``, up to the separate bound
:data:`sweeplab.search.coordinator.MAX_INTERRUPTIONS`."""
LOSSES = (LOST, INTERRUPTED)


@dataclass(frozen=True)
class TrialTicket:
    """One asked trial, ready to dispatch.

    ``raw_params`` are the values recorded in Optuna; ``params`` the resolved
    hyperparameters the objective gets. ``seed`` derives from the spec's seed and the
    number of the lineage's first attempt, so a retry trains exactly like its original.
    ``prunable`` is False when the study's pruner can never stop a trial (``none``):
    the worker then need not wait for the coordinator after each report.
    """

    number: int
    raw_params: dict[str, Any]
    params: dict[str, Any]
    seed: int
    framework: str
    attempt: int = 0
    retry_of: int | None = None
    prunable: bool = True


@dataclass(frozen=True)
class TrialOutcome:
    """What a worker returns for one trial."""

    number: int
    state: str
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    pruned_epoch: int | None = None
    node: str = ""
    duration: float = 0.0
    started_at: float = 0.0
    artifacts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialRecord:
    """A finished trial as the coordinator told it: for tracking and the progress bar."""

    number: int
    state: str
    values: list[float] | None
    params: dict[str, Any]
    raw_params: dict[str, Any]
    metrics: dict[str, float]
    history: list[tuple[int, float, dict[str, float]]]
    reason: str | None
    pruned_epoch: int | None
    node: str
    duration: float
    attempt: int
    retry_of: int | None
    retried_by: int | None = None

"""The objective contract: what a trial runs on a Ray worker.

An objective gets the trial's resolved hyperparameters, the dataset, a seed and a
reporter; it trains, calls ``reporter.report(epoch, metrics)`` once per epoch and
returns its final metrics. It never touches Optuna storage or MLflow: the reporter
carries the per-epoch values to the study's coordinator, which decides on pruning.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset
    from sweeplab.spec import ObjectiveSpec


class TrialPruned(Exception):
    """Raised by :meth:`Reporter.report` when the study's pruner stops the trial.

    Objectives let it propagate (Keras callbacks and torch loops both do); the worker
    turns it into a PRUNED trial whose value is the last reported one.
    """

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        super().__init__(f"pruned at epoch {epoch}")


class Reporter(Protocol):
    """Receives per-epoch metrics of one trial."""

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Record metrics of ``epoch`` (1-based). Raises :class:`TrialPruned` to stop."""


class NullReporter:
    """A reporter that records metrics and never prunes (for direct calls and tests)."""

    def __init__(self) -> None:
        self.history: list[tuple[int, dict[str, float]]] = []

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.history.append((epoch, dict(metrics)))


@dataclass(frozen=True)
class TrialContext:
    """Everything an objective needs for one trial.

    ``params`` are the resolved hyperparameters (see ``objectives.config.MLPConfig``
    for the MLP objectives). ``settings`` is the spec's ``objective`` section
    (``ObjectiveSpec``). ``cpus`` and ``gpus`` are this trial's resource share.
    """

    params: Mapping[str, Any]
    dataset: Dataset | None
    seed: int
    reporter: Reporter
    settings: ObjectiveSpec | Mapping[str, Any]
    cpus: float = 1.0
    gpus: float = 0.0
    trial_number: int = 0
    extras: Mapping[str, Any] = field(default_factory=dict)


class BaseObjective(ABC):
    """One framework's way of training and evaluating a trial.

    Contract: ``run`` is deterministic for a given context on CPU, reports every
    epoch through ``ctx.reporter`` (letting :class:`TrialPruned` propagate), and
    returns a mapping of metric name to float that includes the study's metric.
    It may raise any exception on failure; the worker records it as a FAILED trial.
    """

    @abstractmethod
    def run(self, ctx: TrialContext) -> dict[str, float]:
        """Train and evaluate one trial; return final metrics."""

    def warm_up(self) -> None:  # noqa: B027 - an optional hook: doing nothing is the default
        """Pay this process's one-time costs (lazy imports, first-call set-up) before the
        first trial. Optional; must not change what any later ``run`` computes."""


def check_metrics(metrics: Any, required: str | list[str]) -> dict[str, float]:
    """Return ``metrics`` as ``{name: float}``, or raise ValueError naming the problem.

    The study's metric(s) must be present and finite; other values must be numbers.
    """
    from sweeplab.core.errors import ObjectiveError

    if not isinstance(metrics, Mapping):
        raise ObjectiveError(
            f"objective must return a mapping of metric name to number, got {type(metrics).__name__}: {metrics!r:.80}"
        )
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
            raise ObjectiveError(f"metric {name!r} must be a number, got {type(value).__name__}: {value!r:.80}")
        out[str(name)] = float(value)
    names = [required] if isinstance(required, str) else list(required)
    for name in names:
        if name not in out:
            raise ObjectiveError(f"objective did not return the study metric {name!r}; it returned {sorted(out)}")
        if not math.isfinite(out[name]):
            raise ObjectiveError(f"metric {name!r} is {out[name]} (not finite)")
    return out

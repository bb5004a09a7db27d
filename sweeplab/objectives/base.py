"""The objective contract: what a trial runs on a Ray worker.

An objective gets the :class:`~sweeplab.objectives.trial.Trial` (the trial's resolved
hyperparameters, the dataset, a seed and a reporter); it trains, calls
``ctx.report(epoch, metrics)`` once per epoch and returns its final metrics.
It never touches Optuna storage or MLflow: the reporter carries the per-epoch values to
the study's coordinator, which decides on pruning.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from sweeplab.objectives.trial import NullReporter, Reporter, Trial, TrialPruned

__all__ = ["BaseObjective", "NullReporter", "Reporter", "Trial", "TrialContext", "TrialPruned", "check_metrics"]


TrialContext = Trial
"""The objective's view of a trial: the same class as :class:`~sweeplab.objectives.trial.Trial`
(the name the built-in objectives have always used)."""


class BaseObjective(ABC):
    """One framework's way of training and evaluating a trial.

    Contract: ``run`` is deterministic for a given context on CPU, reports every
    epoch through ``ctx.report`` (letting :class:`TrialPruned` propagate), and
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

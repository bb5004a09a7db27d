"""Objectives written as plain Python functions: ``objective.callable: pkg.mod:function``.

The function gets the :class:`~sweeplab.objectives.base.TrialContext` and returns
either a number (the study's single metric) or a mapping of metric name to number.
It reports epochs through ``ctx.reporter`` like any objective, so pruning works.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from sweeplab.objectives.base import BaseObjective, TrialContext


def load_callable(path: str) -> Callable[[TrialContext], Any]:
    """Import ``module:function``; raise ValueError naming what is wrong."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"objective.callable must look like 'package.module:function', got {path!r}")
    module = importlib.import_module(module_name)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"objective.callable {path!r}: {module_name} has no function {attr!r}")
    return fn


class CallableObjective(BaseObjective):
    """Adapts a user function to the objective contract: ``target`` is its import path
    (``objective.callable``) or the function itself (``sweeplab.run(spec, objective=fn)``)."""

    def __init__(self, target: str | Callable[[TrialContext], Any]) -> None:
        if callable(target):
            self.fn = target
            self.path = getattr(target, "__qualname__", None) or repr(target)
        else:
            self.path = target
            self.fn = load_callable(target)

    def run(self, ctx: TrialContext) -> dict[str, float]:
        result = self.fn(ctx)
        if isinstance(result, Mapping):
            return dict(result)
        if isinstance(result, bool) or not isinstance(result, (int, float)):
            from sweeplab.core.errors import ObjectiveError

            raise ObjectiveError(
                f"objective {self.path} must return a number or a mapping of metrics, "
                f"got {type(result).__name__}: {result!r:.80}"
            )
        metric = ctx.extras.get("metric") if ctx.extras else None
        return {str(metric or _first_metric(ctx)): float(result)}


def _first_metric(ctx: TrialContext) -> str:
    metric = getattr(ctx.settings, "metric", None)
    return str(metric) if metric else "value"

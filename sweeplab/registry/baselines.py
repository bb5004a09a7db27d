"""The scikit-learn baselines of ``promote --baselines``: the one list of their names and builders.

A baseline is a quick model a user would try before a network: if the champion does not
beat it on the same held-out rows, the network does not earn its cost. Each entry names
the tasks it serves and builds a fresh, seeded scikit-learn estimator (scikit-learn is
imported by the builder only, so reading this table imports nothing heavy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BASELINES", "BaselineEntry", "baselines_for"]


@dataclass(frozen=True)
class BaselineEntry:
    """One baseline: ``build(task, seed)`` returns an unfitted estimator for ``task``."""

    name: str
    tasks: tuple[str, ...]
    description: str
    build: Callable[[str, int], Any]


def _linear(task: str, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = LogisticRegression(max_iter=5000, random_state=seed) if task == "classification" else Ridge()
    return make_pipeline(StandardScaler(), model)


def _boosting(task: str, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
    return cls(random_state=seed)


BASELINES: tuple[BaselineEntry, ...] = (
    BaselineEntry("logistic_regression", ("classification",),
                  "standard scaling + LogisticRegression (L2, max_iter 5000)", _linear),
    BaselineEntry("ridge", ("regression",), "standard scaling + Ridge (alpha 1)", _linear),
    BaselineEntry("hist_gradient_boosting", ("classification", "regression"),
                  "HistGradientBoostingClassifier / Regressor with scikit-learn's defaults", _boosting),
)
"""Every baseline, in the order they are fitted and printed."""


def baselines_for(task: str) -> tuple[BaselineEntry, ...]:
    """The baselines that serve ``task`` (classification or regression)."""
    return tuple(b for b in BASELINES if task in b.tasks)

"""Fit the scikit-learn baselines (:data:`sweeplab.registry.baselines.BASELINES`) on a study's split.

:func:`fit_baselines` trains every baseline of the dataset's task on the rows the champion
trained on (``X_train``: train + validation for a refit's dataset) and scores it on the
held-out ``X_test`` rows with the task's score (accuracy, or MAE for regression), the
quantity the network objectives report as ``test_accuracy`` / ``test_mae``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from sweeplab.core.errors import DataError
from sweeplab.core.records import BaselineScore
from sweeplab.registry.baselines import baselines_for

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset

__all__ = ["baseline_metric", "fit_baselines"]


def baseline_metric(task: str) -> str:
    """The held-out score the baselines and the champion are compared on for ``task``."""
    return "test_accuracy" if task == "classification" else "test_mae"


def fit_baselines(dataset: Dataset, seed: int = 0) -> tuple[BaselineScore, ...]:
    """Every baseline of ``dataset.task`` fitted on ``X_train`` and scored on ``X_test`` (images
    flattened to rows). Raises DataError when the dataset has no held-out rows."""
    if len(dataset.y_test) == 0:
        raise DataError(f"dataset {dataset.name!r} has no held-out rows to score baselines on; "
                        "set objective.test_split > 0")
    X_train = np.asarray(dataset.X_train, dtype=np.float64).reshape(len(dataset.y_train), -1)
    X_test = np.asarray(dataset.X_test, dtype=np.float64).reshape(len(dataset.y_test), -1)
    metric = baseline_metric(dataset.task)
    scores = []
    for entry in baselines_for(dataset.task):
        model = entry.build(dataset.task, seed)
        start = time.perf_counter()
        model.fit(X_train, dataset.y_train)
        elapsed = time.perf_counter() - start
        pred = np.asarray(model.predict(X_test))
        if dataset.task == "classification":
            value = float(np.mean(pred == dataset.y_test))
        else:
            value = float(np.mean(np.abs(pred.astype(np.float64) - dataset.y_test.astype(np.float64))))
        scores.append(BaselineScore(entry.name, metric, value, round(elapsed, 4)))
    return tuple(scores)

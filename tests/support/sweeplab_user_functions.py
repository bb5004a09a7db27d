"""Users' training functions for the trial API's tests (imported by Ray workers through PYTHONPATH).

Written the way the README tells users to write them: ``def f(trial)``, hyperparameters
from ``trial.params``, settings from ``trial.options``, ``trial.report`` every epoch.
They import no torch or TensorFlow (``sweeplab_user_torch`` does).
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import numpy as np

from sweeplab.objectives import TrialPruned

NOT_A_FUNCTION = 42


def _dump(trial, name: str, payload: dict) -> None:
    out = Path(trial.options["out_dir"]) / f"{name}-{trial.number}.json"
    out.write_text(json.dumps(payload))


def inspect(trial):
    """Records what the trial shows (and the first draws of the seeded generators); reports floats."""
    draws = {"random": random.random(), "numpy": float(np.random.rand())}
    dataset = trial.dataset
    _dump(trial, "inspect", {
        "params": dict(trial.params), "number": trial.number, "attempt": trial.attempt, "seed": trial.seed,
        "device": trial.device, "cpus": trial.cpus, "gpus": trial.gpus, "options": trial.options,
        "epochs": trial.epochs, "metric": trial.metric, "metric_names": list(trial.metric_names),
        "dataset": None if dataset is None else [list(dataset.X_train.shape), list(dataset.X_val.shape)],
        "omp": os.environ.get("OMP_NUM_THREADS"), "draws": draws,
        "torch_imported": "torch" in sys.modules,
    })
    x = float(trial.params["x"])
    for epoch in range(1, trial.epochs + 1):
        trial.report(epoch, x * epoch / trial.epochs)  # a bare number: the study's metric
    return x


def swallow_everything(trial):
    """Catches every Exception around its reports, as careless training loops do."""
    for epoch in range(1, trial.epochs + 1):
        try:
            trial.report(epoch, {"score": 0.1 * epoch, "loss": 1.0 / epoch})
        except Exception:  # must not catch the pruning signal
            pass
    return {"score": 0.1 * trial.epochs}


def ask_before_stopping(trial):
    """Reports without raising, asks should_prune, cleans up, then stops itself."""
    for epoch in range(1, trial.epochs + 1):
        trial.report(epoch, {"score": 0.1 * epoch}, raise_pruned=False)
        if trial.should_prune():
            _dump(trial, "asked", {"epoch": epoch})
            raise TrialPruned()
    return {"score": 0.1 * trial.epochs}


def resumable(trial):
    """Checkpoints every epoch; the first attempt kills its own worker at epoch 3."""
    state = trial.restore()
    start = 0 if state is None else state["epoch"]
    total = 0.0 if state is None else state["total"]
    for epoch in range(start + 1, trial.epochs + 1):
        total += epoch
        trial.report(epoch, {"score": total})
        trial.checkpoint({"epoch": epoch, "total": total})
        if epoch == 3 and state is None:
            os._exit(1)  # the worker process dies; the coordinator retries the trial
    return {"score": total, "resumed_from": float(start)}


def other_metric_only(trial):
    """Reports a metric that is not the study's, returns the study's."""
    for epoch in range(1, trial.epochs + 1):
        trial.report(epoch, {"loss": 1.0 / epoch, "acc": 0.1 * epoch})
    return {"score": 0.5}


def other_metric_then_text(trial):
    """Reports a metric that is not the study's, then fails by returning text."""
    trial.report(1, {"acc": 0.1})
    return "0.1"


def never_reports(trial):
    return {"score": float(trial.params["x"])}


def epochs_backwards(trial):
    trial.report(5, 0.1)
    trial.report(3, 0.2)
    return 0.2


def returns_text(trial):
    trial.report(1, 0.1)
    return "done"


def two_args(trial, lr):
    return lr


def cross_validated(trial):
    """Softmax regression by gradient steps on every fold of ``trial.folds()``, the fold models in
    lockstep: each epoch reports the mean validation accuracy over folds (what the README shows)."""
    folds = trial.folds()
    _dump(trial, "folds", {"n_folds": len(folds), "sizes": [[len(f.y_train), len(f.y_val)] for f in folds],
                           "n_test": len(folds[0].y_test)})
    n_classes = int(max(f.y_train.max() for f in folds)) + 1
    weights = [np.zeros((f.X_train.shape[1], n_classes)) for f in folds]
    lr = float(trial.params["x"])
    mean = 0.0
    for epoch in range(1, trial.epochs + 1):
        accuracies = []
        for fold, w in zip(folds, weights, strict=True):
            logits = fold.X_train @ w
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(fold.y_train)), fold.y_train] -= 1.0
            w -= lr * fold.X_train.T @ p / len(fold.y_train)
            accuracies.append(float(np.mean((fold.X_val @ w).argmax(axis=1) == fold.y_val)))
        mean = float(np.mean(accuracies))
        trial.report(epoch, mean)
    return mean

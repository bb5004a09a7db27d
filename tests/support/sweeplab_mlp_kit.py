"""Small datasets and trial contexts for the MLP objective tests (torch and Keras alike)."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
from sklearn.datasets import make_classification, make_regression
from sklearn.preprocessing import StandardScaler

from sweeplab.objectives.base import NullReporter, TrialContext, TrialPruned
from sweeplab.objectives.dataset import Dataset

CLS_KEYS = {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
REG_KEYS = {"loss", "mae", "val_loss", "val_mae", "lr"}


def _split(X: np.ndarray, y: np.ndarray, n_train: int, n_val: int) -> tuple[np.ndarray, ...]:
    scaler = StandardScaler().fit(X[:n_train])
    X = scaler.transform(X).astype(np.float32)
    return (
        X[:n_train],
        y[:n_train],
        X[n_train : n_train + n_val],
        y[n_train : n_train + n_val],
        X[n_train + n_val :],
        y[n_train + n_val :],
    )


def make_cls_dataset(
    n: int = 300, n_train: int = 200, n_val: int = 60, class_sep: float = 1.0, test: bool = True
) -> Dataset:
    """3 classes, 10 features; ``test=False`` leaves the test part empty."""
    X, y = make_classification(
        n_samples=n, n_features=10, n_informative=6, n_redundant=2, n_classes=3, class_sep=class_sep, random_state=0
    )
    Xtr, ytr, Xva, yva, Xte, yte = _split(X, y.astype(np.int64), n_train, n_val)
    if not test:
        Xte, yte = Xte[:0], yte[:0]
    return Dataset(
        task="classification",
        X_train=Xtr,
        y_train=ytr,
        X_val=Xva,
        y_val=yva,
        X_test=Xte,
        y_test=yte,
        feature_names=tuple(f"x{i}" for i in range(10)),
        class_labels=(0, 1, 2),
        name="cls",
    )


def make_reg_dataset(n: int = 300, n_train: int = 200, n_val: int = 60) -> Dataset:
    """8 features, standardized targets (1.0 is the constant predictor's MSE)."""
    X, y = make_regression(n_samples=n, n_features=8, n_informative=5, noise=5.0, random_state=0)
    y = ((y - y[:n_train].mean()) / y[:n_train].std()).astype(np.float32)
    Xtr, ytr, Xva, yva, Xte, yte = _split(X, y, n_train, n_val)
    return Dataset("regression", Xtr, ytr, Xva, yva, Xte, yte, tuple(f"x{i}" for i in range(8)), name="reg")


CLS = make_cls_dataset()
REG = make_reg_dataset()
SMALL = make_cls_dataset(n=200, n_train=120, n_val=40)


def ctx_for(
    params: Mapping[str, Any] | None = None,
    *,
    dataset: Dataset = CLS,
    epochs: int = 3,
    seed: int = 7,
    reporter: Any = None,
    early_stopping: Any = None,
    cpus: float = 1.0,
) -> TrialContext:
    return TrialContext(
        params=dict(params or {}),
        dataset=dataset,
        seed=seed,
        reporter=reporter if reporter is not None else NullReporter(),
        settings=SimpleNamespace(task=dataset.task, epochs=epochs, early_stopping=early_stopping),
        cpus=cpus,
    )


def without_time(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in ("train_seconds", "latency_ms")}  # wall-clock times


class PruneAt:
    """A reporter that prunes at ``epoch`` (and checks the reported keys)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.epochs: list[int] = []

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        assert set(metrics) == CLS_KEYS
        self.epochs.append(epoch)
        if epoch >= self.epoch:
            raise TrialPruned(epoch)

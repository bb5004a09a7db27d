"""What the torch and Keras network objectives share, free of any framework import.

Both objectives read the trial's settings the same way (:func:`trial_settings`), cut
the same mini-batches (:func:`batch_bounds`) and judge early stopping the same way
(:func:`monitor_mode`, and :mod:`sweeplab.objectives.epochs` after every epoch), so one
spec means the same thing on either framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sweeplab.core.errors import DataError
from sweeplab.registry.families import MODEL_FAMILIES

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset
    from sweeplab.spec import ObjectiveSpec


def setting(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]`` (settings arrive as dataclasses or plain mappings)."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def monitor_mode(monitor: str) -> str:
    """``"max"`` for accuracy metrics, ``"min"`` for losses and MAE; ValueError otherwise."""
    if monitor.endswith("accuracy"):
        return "max"
    if monitor.endswith(("loss", "mae")):
        return "min"
    raise ValueError(f"early_stopping.monitor must name a loss, mae or accuracy metric, got {monitor!r}")


def batch_bounds(n: int, batch_size: int, merge_singleton: bool) -> list[tuple[int, int]]:
    """``[lo, hi)`` slices covering ``0..n`` in order; nothing dropped.

    With ``merge_singleton`` (BatchNorm, which cannot train on one row) a last batch of a
    single row is merged into the one before it.
    """
    bounds = [(lo, min(lo + batch_size, n)) for lo in range(0, n, batch_size)]
    if merge_singleton and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    if merge_singleton and n == 1:
        raise DataError("batch_norm needs at least 2 training rows, got 1")
    return bounds


def training_arrays(X: Any, y: Any, classification: bool) -> tuple[np.ndarray, np.ndarray]:
    """Features as float32 examples, targets as int64 class indices or float32 values, both C-contiguous.

    No copy when the arrays already are so (arrays from Ray's object store are read-only:
    never write to them). Raises DataError unless the features are examples (rows x
    columns, or images ``(n, H, W, C)``) with one target per example.
    """
    x = np.ascontiguousarray(X, dtype=np.float32)
    y_np = np.ascontiguousarray(np.asarray(y).reshape(-1), dtype=np.int64 if classification else np.float32)
    if x.ndim not in (2, 4) or x.shape[0] != y_np.shape[0]:
        raise DataError(f"features must be rows x columns (or images n x H x W x C) matching the targets, "
                        f"got {tuple(x.shape)} and {len(y_np)}")
    return x, y_np


def prediction_rows(X: Any, task: str) -> np.ndarray:
    """The examples ``X`` a backend's ``predict`` gets, as float32 C-contiguous; ValueError for a bad task or shape.

    Rows (a 2-D array, rows x features) or images (a 4-D array, n x H x W x C).
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    x = np.ascontiguousarray(X, dtype=np.float32)
    if x.ndim not in (2, 4):
        raise ValueError(f"X must be a 2-D array (rows x features) or images (n x H x W x C), "
                         f"got shape {tuple(x.shape)}")
    return x


@dataclass(frozen=True)
class TrialSettings:
    """The validated settings of one network trial.

    ``model``: the model family (``objective.model``, default ``mlp``).
    ``metric_names`` are the per-epoch keys in report order; ``sign`` turns the monitored
    metric into "lower is better" (``sign * value``). ``keep_last``: a refit (the dataset's
    ``refit``): every epoch runs (no early stopping) and the last epoch's weights are kept,
    since its validation rows are its training rows and cannot choose an epoch.
    """

    task: str
    epochs: int
    classification: bool
    acc_name: str
    monitor: str
    patience: int
    min_delta: float
    metric_names: tuple[str, ...]
    sign: float
    early_stopping: bool
    model: str = "mlp"
    keep_last: bool = False


def need_dataset(ds: Dataset | None, framework: str) -> Dataset:
    """``ds``, which the network objectives train on (a spec for them always names one)."""
    if ds is None:
        raise DataError(f"the {framework} objective trains on a dataset; set objective.dataset in the spec")
    return ds


def check_model_data(model: str, ds: Dataset) -> None:
    """Raise DataError when ``ds`` holds rows and family ``model`` trains on images, or the reverse."""
    images = MODEL_FAMILIES[model].data == "images"
    if len(ds.input_shape) != (3 if images else 1):
        kind = "images (n, H, W, C)" if images else "rows (n, n_features)"
        raise DataError(f"model {model} trains on {kind}, but dataset {ds.name!r} holds features of shape "
                        f"{tuple(ds.X_train.shape)}; load it for model {model} (objective.model in the spec)")


def trial_settings(settings: ObjectiveSpec | Mapping[str, Any], ds: Dataset) -> TrialSettings:
    """Read and check task, model family, epochs and early stopping from the spec's ``objective`` section.

    Raises ValueError for a bad task, model, epochs or monitor, DataError for a dataset
    that was prepared for another task or has no training or validation rows.
    """
    model = str(setting(settings, "model", "mlp") or "mlp")
    if model not in MODEL_FAMILIES:
        raise ValueError(f"objective.model must be one of {list(MODEL_FAMILIES)}, got {model!r}")
    task = setting(settings, "task") or ds.task
    if task not in ("classification", "regression"):
        raise ValueError(f"objective.task must be 'classification' or 'regression', got {task!r}")
    if getattr(ds, "task", task) != task:
        raise DataError(f"objective.task is {task!r} but the dataset {ds.name!r} was prepared for {ds.task!r}")
    epochs = setting(settings, "epochs")
    if epochs is None or int(epochs) < 1:
        raise ValueError(f"objective.epochs must be an integer >= 1, got {epochs!r}")
    classification = task == "classification"
    acc_name = "accuracy" if classification else "mae"
    refit = bool(getattr(ds, "refit", False))  # duck-typed datasets (tests, users' own) are not refits
    es = None if refit else setting(settings, "early_stopping")
    monitor = str(setting(es, "monitor", "val_loss") or "val_loss")
    patience = int(setting(es, "patience", 0) or 0) if es is not None else 0
    min_delta = abs(float(setting(es, "min_delta", 0.0) or 0.0)) if es is not None else 0.0
    metric_names = ("loss", acc_name, "val_loss", f"val_{acc_name}", "lr")
    if monitor not in metric_names[:4]:
        raise ValueError(f"early_stopping.monitor must be one of {list(metric_names[:4])} for {task}, got {monitor!r}")
    if len(ds.y_train) == 0:
        raise DataError(f"dataset {ds.name!r} has no training rows")
    if len(ds.y_val) == 0 and not getattr(ds, "folds", ()):
        raise DataError(f"dataset {ds.name!r} has no validation rows; set objective.validation_split > 0")
    sign = 1.0 if monitor_mode(monitor) == "min" else -1.0
    return TrialSettings(task, int(epochs), classification, acc_name, monitor, patience, min_delta, metric_names, sign,
                         early_stopping=es is not None, model=model, keep_last=refit)

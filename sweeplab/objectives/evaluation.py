"""Evaluation of a trained MLP: test-set metrics, confusion matrix, classification report, curves.

The seed guide's ``evaluate_model_performance`` (accuracy, confusion matrix and its
heatmap, scikit-learn's classification report) and ``plot_training_history`` (loss and
accuracy, training vs validation, one panel each) as functions that return data and
file contents instead of printing and showing:

- :func:`evaluate_predictions` builds the JSON-friendly ``evaluation.json`` payload from
  true and predicted class indices (or values, for regression);
- :func:`evaluate_objective` predicts a trained objective's held-out rows and returns that
  payload (what a worker attaches to every completed trial: cheap, no plotting);
- :func:`evaluation_files` renders the full set for the best trial: ``evaluation.json``,
  ``confusion_matrix.csv`` and ``confusion_matrix.png``, ``classification_report.txt`` and
  ``.json``, ``history.csv`` and ``training_history.png``.

Framework-free: the torch or Keras module is imported only by :func:`predict_indices`,
for the framework named. Figures use matplotlib's object API with the Agg canvas (no
pyplot, no global backend change, no display needed).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset

__all__ = [
    "EVALUATION_FILE",
    "FOLDS_FILE",
    "classification_report",
    "confusion_matrix",
    "evaluate_objective",
    "evaluate_predictions",
    "evaluation_files",
    "fold_history_csv",
    "history_csv",
    "plot_confusion_matrix",
    "plot_training_history",
    "predict_indices",
]

EVALUATION_FILE = "evaluation.json"
"""Artifact name of the evaluation payload on every completed trial's run."""

FOLDS_FILE = "cv_folds.csv"
"""Artifact name of a cross-validated trial's per-fold curves (:func:`fold_history_csv`)."""

_FRAMEWORK_MODULES = {"torch": "sweeplab.objectives.torch_mlp", "keras": "sweeplab.objectives.keras_mlp"}


def predict_indices(framework: str, model: Any, X: np.ndarray, task: str) -> np.ndarray:
    """Predict already-scaled rows ``X`` with ``model`` of ``framework`` (torch or keras).

    Returns int64 class indices for classification, float32 values for regression (the
    framework module's ``predict``). Raises ValueError for another framework.
    """
    import importlib

    try:
        module = importlib.import_module(_FRAMEWORK_MODULES[framework])
    except KeyError:
        raise ValueError(f"framework must be one of {sorted(_FRAMEWORK_MODULES)}, got {framework!r}") from None
    return np.asarray(module.predict(model, X, task))


def _label_text(label: Any) -> str:
    return str(label)


def evaluate_predictions(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_labels: Sequence[Any] = (),
    *,
    split: str = "test",
    metrics: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The evaluation payload of one model on one split (JSON-serializable).

    Classification (``y_true``/``y_pred`` are class indices into ``class_labels``):
    ``accuracy``, ``confusion_matrix`` (``labels`` and ``matrix``, rows = actual, columns
    = predicted, every class listed even when absent from the split) and
    ``classification_report`` (scikit-learn's ``output_dict`` form, plus
    ``classification_report_text``, the report the guide prints; see
    :func:`classification_report`). Regression: ``mae``, ``rmse`` and ``r2`` (``r2`` is None
    with fewer than two rows). Always: ``task``, ``split``, ``n_rows`` and ``metrics``
    (the objective's own final metrics, passed through, e.g. ``test_loss``).
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {len(y_true)} and {len(y_pred)}")
    out: dict[str, Any] = {
        "task": task,
        "split": split,
        "n_rows": len(y_true),
        "metrics": {str(k): float(v) for k, v in (metrics or {}).items() if math.isfinite(float(v))},
    }
    if task == "classification":
        n_classes = len(class_labels) or int(max(y_true.max(initial=-1), y_pred.max(initial=-1)) + 1)
        labels = list(class_labels) if class_labels else list(range(n_classes))
        cm = confusion_matrix(y_true, y_pred, n_classes)
        out["accuracy"] = float(np.mean(y_true == y_pred)) if len(y_true) else None
        out["confusion_matrix"] = {"labels": labels, "matrix": cm.tolist()}
        report, text = classification_report(cm, [_label_text(lab) for lab in labels]) if len(y_true) else ({}, "")
        out["classification_report"] = report
        out["classification_report_text"] = text
    elif task == "regression":
        err = y_pred.astype(np.float64) - y_true.astype(np.float64)
        out["mae"] = float(np.mean(np.abs(err))) if len(err) else None
        out["rmse"] = float(np.sqrt(np.mean(err**2))) if len(err) else None
        if len(err) >= 2:
            total = float(np.sum((y_true - y_true.mean()) ** 2))
            out["r2"] = 1.0 - float(np.sum(err**2)) / total if total > 0 else None
        else:
            out["r2"] = None
    else:
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of class indices: rows = actual, columns = predicted, ``n_classes`` x ``n_classes``
    (int64; a class absent from both still has its row and column)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} holds class indices outside 0..{n_classes - 1}: {sorted(set(y.tolist()))[:10]}")
    pairs = y_true * n_classes + y_pred
    return np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_report(cm: np.ndarray, names: Sequence[str], digits: int = 2) -> tuple[dict[str, Any], str]:
    """scikit-learn's ``classification_report`` of a confusion matrix, every class listed,
    ``zero_division=0``: its ``output_dict`` form and its text, the same numbers and layout.

    Computed here in numpy because every completed trial gets one on its worker, and
    importing scikit-learn's metrics there would cost each worker process over a CPU-second
    (a test holds this to scikit-learn's own output).
    """
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        den = np.asarray(den, dtype=np.float64)
        return np.divide(num, den, out=np.zeros_like(tp), where=den > 0)

    precision, recall = ratio(tp, predicted), ratio(tp, support)
    f1 = ratio(2 * tp, support + predicted)
    total = int(support.sum())
    headers = ("precision", "recall", "f1-score", "support")
    rows = [(name, float(p), float(r), float(f), int(s))
            for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)]
    accuracy = float(tp.sum() / total) if total else 0.0
    macro = [float(np.average(v)) for v in (precision, recall, f1)]
    weighted = [float(np.average(v, weights=support)) if total else 0.0 for v in (precision, recall, f1)]

    report: dict[str, Any] = {name: dict(zip(headers, (p, r, f, float(s)), strict=True)) for name, p, r, f, s in rows}
    report["accuracy"] = accuracy
    report["macro avg"] = dict(zip(headers, (*macro, float(total)), strict=True))
    report["weighted avg"] = dict(zip(headers, (*weighted, float(total)), strict=True))

    width = max(*(len(name) for name in names), len("weighted avg"), digits)
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    text = ("{:>{width}s} " + " {:>9}" * len(headers)).format("", *headers, width=width) + "\n\n"
    text += "".join(row_fmt.format(*row, width=width, digits=digits) for row in rows) + "\n"
    text += ("{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f} {:>9}\n").format(
        "accuracy", "", "", accuracy, total, width=width, digits=digits)
    text += row_fmt.format("macro avg", *macro, total, width=width, digits=digits)
    text += row_fmt.format("weighted avg", *weighted, total, width=width, digits=digits)
    return report, text


def evaluate_objective(
    framework: str, objective: Any, dataset: Dataset | None, metrics: Mapping[str, float] | None = None
) -> dict[str, Any] | None:
    """Evaluate a trained objective (``objective.model``) on the dataset's held-out rows.

    The test part when it has rows, else the validation part (``split`` says which; with
    cross-validation, the first fold's validation rows, on which its model, the trial's,
    was validated).
    Returns None when there is nothing to evaluate: no model (python objectives), or no
    dataset. One forward pass and a few scikit-learn counts: cheap enough for every trial.
    """
    model = getattr(objective, "model", None)
    if model is None or dataset is None or framework not in _FRAMEWORK_MODULES:
        return None
    if len(dataset.y_test):
        split, X, y = "test", dataset.X_test, dataset.y_test
    else:
        held = dataset.fold(0)
        split, X, y = "validation", held.X_val, held.y_val
    y_pred = predict_indices(framework, model, X, dataset.task)
    return evaluate_predictions(dataset.task, y, y_pred, dataset.class_labels, split=split, metrics=metrics)


# --------------------------------------------------------------------------- files


def history_csv(history: Sequence[Mapping[str, float]]) -> str:
    """Per-epoch metrics as CSV: an ``epoch`` column (1-based) and one column per metric."""
    keys: list[str] = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for i, row in enumerate(history, start=1):
        writer.writerow([i, *(row.get(k, "") for k in keys)])
    return buf.getvalue()


def fold_history_csv(fold_history: Sequence[Sequence[Mapping[str, float]]]) -> str:
    """Per-epoch, per-fold metrics as CSV: ``epoch`` (1-based), ``fold`` (0-based), then one column
    per metric; ``fold_history[e][f]`` is fold ``f``'s metrics at epoch ``e + 1``."""
    keys: list[str] = []
    for folds in fold_history:
        for row in folds:
            keys.extend(k for k in row if k not in keys)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["epoch", "fold", *keys])
    for epoch, folds in enumerate(fold_history, start=1):
        for fold, row in enumerate(folds):
            writer.writerow([epoch, fold, *(repr(float(row[k])) if k in row else "" for k in keys)])
    return buf.getvalue()


def _confusion_csv(labels: Sequence[Any], matrix: Sequence[Sequence[int]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["actual \\ predicted", *(_label_text(lab) for lab in labels)])
    for lab, row in zip(labels, matrix, strict=True):
        writer.writerow([_label_text(lab), *row])
    return buf.getvalue()


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def plot_confusion_matrix(labels: Sequence[Any], matrix: Sequence[Sequence[int]], title: str) -> bytes:
    """The guide's confusion-matrix heatmap (Blues, annotated counts) as PNG bytes."""
    from matplotlib.figure import Figure

    cm = np.asarray(matrix, dtype=np.int64)
    n = len(labels)
    size = min(4.0 + 0.5 * n, 16.0)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(cm, cmap="Blues", aspect="auto")
    fig.colorbar(image, ax=ax)
    names = [_label_text(lab) for lab in labels]
    ax.set_xticks(range(n), labels=names, rotation=45 if n > 5 else 0, ha="right" if n > 5 else "center")
    ax.set_yticks(range(n), labels=names)
    limit = cm.max() / 2.0 if cm.size else 0.0
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > limit else "black", fontsize=9)
    ax.set_title(title)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    fig.tight_layout()
    return _png(fig)


def plot_training_history(history: Sequence[Mapping[str, float]], task: str, title: str = "") -> bytes:
    """The guide's ``plot_training_history`` as PNG bytes: loss, then accuracy (or MAE for
    regression), training vs validation per epoch, one panel each."""
    from matplotlib.figure import Figure

    stat = "accuracy" if task == "classification" else "mae"
    epochs = list(range(1, len(history) + 1))
    fig = Figure(figsize=(12, 4.5))
    for i, (key, label) in enumerate((("loss", "Loss"), (stat, stat.upper() if stat == "mae" else "Accuracy"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for prefix, name in (("", "Training"), ("val_", "Validation")):
            values = [row.get(prefix + key, math.nan) for row in history]
            ax.plot(epochs, values, marker="o" if len(epochs) <= 20 else None, label=f"{name} {label}")
        ax.set_title(f"Model {label}")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.legend()
        ax.grid(True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def evaluation_files(
    evaluation: Mapping[str, Any], history: Sequence[Mapping[str, float]], title: str = "Model"
) -> dict[str, bytes]:
    """Every evaluation artifact of the best trial, as ``{file name: content}``.

    ``evaluation.json`` (the payload), ``history.csv`` and ``training_history.png``, and
    for classification ``confusion_matrix.csv``, ``confusion_matrix.png``,
    ``classification_report.txt`` and ``classification_report.json``.
    """
    files: dict[str, bytes] = {EVALUATION_FILE: json.dumps(evaluation, indent=2, default=str).encode()}
    task = str(evaluation.get("task", "classification"))
    if history:
        files["history.csv"] = history_csv(history).encode()
        files["training_history.png"] = plot_training_history(history, task, title)
    cm = evaluation.get("confusion_matrix")
    if cm:
        files["confusion_matrix.csv"] = _confusion_csv(cm["labels"], cm["matrix"]).encode()
        split = evaluation.get("split", "test")
        files["confusion_matrix.png"] = plot_confusion_matrix(cm["labels"], cm["matrix"],
                                                              f"Confusion Matrix - {title} ({split})")
        files["classification_report.txt"] = str(evaluation.get("classification_report_text", "")).encode()
        files["classification_report.json"] = json.dumps(evaluation.get("classification_report", {}),
                                                          indent=2).encode()
    return files

"""The per-trial evaluation computed in numpy (sweeplab.objectives.evaluation) gives
scikit-learn's own confusion matrix and classification report, numbers and text."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import classification_report as sk_report
from sklearn.metrics import confusion_matrix as sk_confusion

from sweeplab.objectives.evaluation import evaluate_predictions


def _cases():
    rng = np.random.default_rng(7)
    names = ["a", "dog", "a rather long class name", "3", "é", "x" * 13]
    for case in range(60):
        k = 1 + case % 6
        n = int(rng.integers(2, 80))  # (scikit-learn prints the supports of a one-row report as floats)
        y_true = rng.integers(0, k, n)
        # a model that is right about half the time, and sometimes never predicts a class at all
        y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, max(1, k - case % 2), n))
        yield y_true, y_pred, names[:k] if case % 3 else [f"c{i}" for i in range(k)]
    yield np.array([0, 0, 0]), np.array([0, 0, 0]), ["only", "never", "nowhere"]  # classes absent from both


@pytest.mark.parametrize("y_true,y_pred,names", list(_cases()))
def test_report_and_matrix_are_scikit_learns(y_true, y_pred, names) -> None:
    indices = list(range(len(names)))
    out = evaluate_predictions("classification", y_true, y_pred, names)

    assert out["confusion_matrix"]["matrix"] == sk_confusion(y_true, y_pred, labels=indices).tolist()
    assert out["classification_report_text"] == sk_report(y_true, y_pred, labels=indices, target_names=names,
                                                          zero_division=0)
    expected = sk_report(y_true, y_pred, labels=indices, target_names=names, zero_division=0, output_dict=True)
    report = out["classification_report"]
    assert list(report) == list(expected)
    for key, value in expected.items():
        assert report[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_indices_outside_the_classes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"y_pred holds class indices outside 0\.\.1"):
        evaluate_predictions("classification", np.array([0, 1]), np.array([0, 2]), ["a", "b"])

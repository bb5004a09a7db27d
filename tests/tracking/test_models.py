"""The model format and the evaluation payload, in-process (no Ray, no tracking store)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sweeplab_models_kit import raw_test_rows

from sweeplab.objectives.evaluation import evaluate_predictions, evaluation_files, history_csv
from sweeplab.search.coordinator import ticket_for_trial
from sweeplab.spec import parse_spec
from sweeplab.study.packaging import fit_and_package, raw_example
from sweeplab.study.run import load_study_dataset


def _write(files: dict[str, bytes], root: Path) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _spec(dataset, task, metric, direction="maximize"):
    return parse_spec({
        "study": f"unit-{task}", "direction": direction, "metric": metric, "trials": 1, "seed": 3,
        "objective": {"framework": "torch", "task": task, "dataset": dataset, "epochs": 3},
        "space": {"units": {"type": "int", "low": 8, "high": 16}},
    })


class _Trial:
    """The parts of an Optuna FrozenTrial that ticket_for_trial reads."""

    def __init__(self) -> None:
        self.number = 0
        self.params = {"units": 12}
        self.user_attrs: dict = {}


@pytest.mark.parametrize("kind", ["regression", "integer-labels"])
def test_packaged_model_predicts_raw_rows_in_process(tmp_path, kind):
    import mlflow.pyfunc

    if kind == "regression":
        spec = _spec({"name": "make_regression", "n_samples": 120, "n_features": 5}, "regression", "val_loss",
                     "minimize")
    else:  # labels 10, 20, 30: the model must return labels, not class indices
        frame = pd.DataFrame(np.random.default_rng(0).normal(size=(90, 3)), columns=["a", "b", "c"])
        frame["kind"] = np.repeat([30, 10, 20], 30)
        frame.loc[frame["kind"] == 10, "a"] += 3.0
        frame.to_csv(tmp_path / "t.csv", index=False)
        spec = _spec({"path": str(tmp_path / "t.csv"), "target": "kind"}, "classification", "val_accuracy")
    dataset = load_study_dataset(spec)
    ticket = ticket_for_trial(spec, _Trial())
    packaged = fit_and_package(ticket, dataset, spec.objective, list(spec.metric), raw_rows=raw_example(spec),
                               native=False)
    assert not any(name.startswith("model-native/") for name in packaged.files)
    root = _write(packaged.files, tmp_path / "out")
    model = mlflow.pyfunc.load_model(str(root / "model"))
    X_raw, y_raw = raw_test_rows(spec)
    predicted = np.asarray(model.predict(X_raw))
    evaluation = json.loads((root / "evaluation.json").read_text())
    if kind == "regression":
        assert predicted.dtype == np.float32 and predicted.shape == (len(y_raw),)
        mae = float(np.mean(np.abs(predicted.astype(np.float64) - y_raw.to_numpy())))
        assert mae == pytest.approx(packaged.metrics["test_mae"], rel=1e-5)
        assert evaluation["mae"] == pytest.approx(packaged.metrics["test_mae"], rel=1e-5)
        assert "confusion_matrix.png" not in packaged.files and "training_history.png" in packaged.files
    else:
        assert set(predicted) <= {10, 20, 30}
        assert float(np.mean(predicted == y_raw.to_numpy())) == pytest.approx(packaged.metrics["test_accuracy"])
        assert evaluation["confusion_matrix"]["labels"] == [10, 20, 30]
        assert (root / "confusion_matrix.csv").read_text().splitlines()[0] == "actual \\ predicted,10,20,30"
    meta = json.loads((root / "model/artifacts/sweeplab_model.json").read_text())
    assert meta["seed"] == ticket.seed and meta["framework"] == "torch"
    assert len(meta["scaler"]["mean"]) == dataset.n_features


def test_evaluation_payload_lists_every_class_and_renders_files():
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 1, 0])
    ev = evaluate_predictions("classification", y_true, y_pred, ("cat", "dog", "eel"), metrics={"test_loss": 0.5})
    assert ev["accuracy"] == pytest.approx(0.6)
    assert ev["confusion_matrix"] == {"labels": ["cat", "dog", "eel"], "matrix": [[1, 1, 0], [1, 2, 0], [0, 0, 0]]}
    assert ev["classification_report"]["dog"]["recall"] == pytest.approx(2 / 3)
    assert "eel" in ev["classification_report_text"]
    assert ev["metrics"] == {"test_loss": 0.5}
    history = [{"loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4, "lr": 0.01},
               {"loss": 0.8, "accuracy": 0.6, "val_loss": 0.9, "val_accuracy": 0.5, "lr": 0.01}]
    assert history_csv(history).splitlines()[:2] == ["epoch,loss,accuracy,val_loss,val_accuracy,lr",
                                                     "1,1.0,0.5,1.1,0.4,0.01"]
    files = evaluation_files(ev, history, "unit")
    assert set(files) == {"evaluation.json", "history.csv", "training_history.png", "confusion_matrix.csv",
                          "confusion_matrix.png", "classification_report.txt", "classification_report.json"}
    assert all(files[n][:4] == b"\x89PNG" for n in ("training_history.png", "confusion_matrix.png"))
    reg = evaluate_predictions("regression", np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.5]))
    assert reg["mae"] == pytest.approx(1 / 3) and reg["rmse"] == pytest.approx(np.sqrt(1 / 6))
    assert reg["r2"] == pytest.approx(0.75)

"""Evaluation artifacts and the best trial's model: a real torch study on Ray, logged to MLflow."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sweeplab_models_kit import artifact_paths, iris_csv, mlp_spec, raw_test_rows, tracking_uri
from sweeplab_testkit import child_runs, run

from sweeplab.study.run import load_study_dataset

BEST_FILES = {
    "evaluation.json", "confusion_matrix.csv", "confusion_matrix.png", "classification_report.txt",
    "classification_report.json", "history.csv", "training_history.png", "model/MLmodel",
    "model/artifacts/weights.pt", "model/artifacts/sweeplab_model.json", "model/pyfunc_code.py",
    "model/input_example.json", "model-native/MLmodel",
}


def test_best_trial_model_and_evaluation_artifacts(ray_local, stores, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root (./mlruns) lands in tmp_path
    spec = mlp_spec(iris_csv(tmp_path), "torch")
    summary = run(spec, stores)
    assert summary.n_complete == 4, summary
    best_model = summary.run.best_model
    assert best_model["packaged"] is True, best_model
    assert best_model["notes"] == []
    # the re-fit is deterministic: same params, seed and data give the trial's values exactly
    assert best_model["refit_matches_trial"] is True
    assert best_model["refit_metrics"]["val_accuracy"] == summary.best_value
    assert best_model["refit_metrics"]["test_accuracy"] == summary.best_metrics["test_accuracy"]

    client = MlflowClient(stores["tracking"])
    runs = {int(r.data.tags["sweeplab.trial_number"]): r for r in child_runs(stores, summary.mlflow_parent_run_id)}
    assert len(runs) == 4
    for number, r in runs.items():
        assert r.data.tags["sweeplab.state"] == "COMPLETE"
        evaluation = json.loads(open(client.download_artifacts(r.info.run_id, "evaluation.json", str(tmp_path / "d")))
                                .read())
        assert evaluation["split"] == "test" and evaluation["n_rows"] == 30
        assert evaluation["accuracy"] == pytest.approx(r.data.metrics["final_test_accuracy"], abs=1e-9)
        cm = np.asarray(evaluation["confusion_matrix"]["matrix"])
        assert evaluation["confusion_matrix"]["labels"] == ["setosa", "versicolor", "virginica"]
        assert cm.shape == (3, 3) and cm.sum() == 30 and np.trace(cm) == round(evaluation["accuracy"] * 30)
        assert set(evaluation["classification_report"]) >= {"setosa", "versicolor", "virginica", "macro avg"}
        if number != summary.best_trial:
            assert "model" not in r.data.tags.get("sweeplab.model", "")
            assert artifact_paths(client, r.info.run_id) == {"evaluation.json"}

    best_id = summary.best_run_id
    best_run = client.get_run(best_id)
    assert best_run.data.tags["sweeplab.model"] == "model"
    assert best_run.data.tags["sweeplab.refit_matches_trial"] == "true"
    paths = artifact_paths(client, best_id)
    assert paths >= BEST_FILES, BEST_FILES - paths
    assert not any(p.endswith((".pkl", ".pickle")) for p in paths)  # no pickle anywhere in the model
    png = open(client.download_artifacts(best_id, "confusion_matrix.png", str(tmp_path / "d")), "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    history = open(client.download_artifacts(best_id, "history.csv", str(tmp_path / "d"))).read().splitlines()
    assert history[0].split(",")[:5] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(history) == 1 + 5
    report = open(client.download_artifacts(best_id, "classification_report.txt", str(tmp_path / "d"))).read()
    assert "precision" in report and "virginica" in report

    # the pyfunc model predicts labels from RAW rows; its test accuracy is the recorded one
    X_raw, y_raw = raw_test_rows(spec)
    dataset = load_study_dataset(spec)
    np.testing.assert_allclose(dataset.scaler.transform(X_raw.to_numpy(float)), dataset.X_test, rtol=0, atol=1e-6)
    import mlflow.pyfunc

    with tracking_uri(stores["tracking"]):
        model = mlflow.pyfunc.load_model(f"runs:/{best_id}/model")
    predicted = np.asarray(model.predict(X_raw))
    assert set(predicted) <= {"setosa", "versicolor", "virginica"}
    accuracy = float(np.mean(predicted == y_raw.to_numpy()))
    assert accuracy == pytest.approx(best_run.data.metrics["final_test_accuracy"], abs=1e-6)
    sig = model.metadata.get_input_schema().to_dict()
    assert [c["name"] for c in sig] == ["sepal_length", "sepal_width", "petal_length", "petal_width", "petal_code"]
    assert [c["type"] for c in sig][-1] == "long"  # raw integer column, not the scaled float
    # columns in another order are matched by name
    shuffled = X_raw[list(reversed(X_raw.columns))]
    assert (np.asarray(model.predict(shuffled)) == predicted).all()
    # the native mlflow.pytorch copy: scaled float32 rows -> logits, same decisions
    with tracking_uri(stores["tracking"]):
        native = mlflow.pyfunc.load_model(f"runs:/{best_id}/model-native")
    logits = np.asarray(native.predict(dataset.X_test))
    labels = np.asarray(["setosa", "versicolor", "virginica"])
    assert (labels[logits.argmax(axis=1)] == predicted).all()


def test_python_objective_study_packages_nothing(ray_local, stores):
    from sweeplab_testkit import bowl_spec

    summary = run(bowl_spec(trials=2), stores)
    assert summary.run.best_model["packaged"] is False
    assert "framework 'python'" in summary.run.best_model["reason"]

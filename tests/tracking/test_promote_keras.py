"""The Keras twin of the packaging and promotion tests: a Keras study's best model and champion."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sweeplab_models_kit import artifact_paths, iris_csv, mlp_spec, raw_test_rows, tracking_uri
from sweeplab_testkit import run

from sweeplab.study.promote import promote_study


def _accuracy(uri: str, model_uri: str, spec) -> float:
    import mlflow.pyfunc

    X_raw, y_raw = raw_test_rows(spec)
    with tracking_uri(uri):
        model = mlflow.pyfunc.load_model(model_uri)
    return float(np.mean(np.asarray(model.predict(X_raw)) == y_raw.to_numpy()))


def test_keras_best_model_and_champion_predict_raw_rows(ray_local, stores, tmp_path, monkeypatch):
    try:
        import sweeplab.objectives.keras_mlp  # noqa: F401  (TensorFlow and the Keras objective)
    except ImportError as exc:
        pytest.skip(f"the Keras objective is not importable here: {exc}")
    monkeypatch.chdir(tmp_path)
    spec = mlp_spec(iris_csv(tmp_path), "keras", trials=3)
    summary = run(spec, stores)
    assert summary.n_complete == 3, summary
    best_model = summary.run.best_model
    assert best_model["packaged"] is True, best_model
    assert best_model["refit_matches_trial"] is True  # Keras re-fits are deterministic too (op determinism)

    client = MlflowClient(stores["tracking"], registry_uri=stores["tracking"])
    best_id = summary.best_run_id
    paths = artifact_paths(client, best_id)
    assert {"model/MLmodel", "model/artifacts/weights.keras", "confusion_matrix.png", "training_history.png",
            "classification_report.txt", "evaluation.json"} <= paths
    assert not any(p.startswith("model-native/") for p in paths)  # see sweeplab.study.packaging
    recorded = client.get_run(best_id).data.metrics["final_test_accuracy"]
    assert _accuracy(stores["tracking"], f"runs:/{best_id}/model", spec) == pytest.approx(recorded, abs=1e-6)

    result = promote_study(spec.study, "flowers-keras", storage_url=stores["storage"],
                           tracking_uri=stores["tracking"], top_k=1, seeds=2)
    version = client.get_model_version_by_alias("flowers-keras", "champion")
    assert version.run_id == result.run_id
    recorded = client.get_run(version.run_id).data.metrics["final_test_accuracy"]
    assert _accuracy(stores["tracking"], "models:/flowers-keras@champion", spec) == pytest.approx(recorded, abs=1e-6)

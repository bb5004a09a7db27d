"""A CNN trial's packaged model: rebuilt from its plan, fed raw pixel rows or raw images (in-process, no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sweeplab.search.coordinator import ticket_for_trial
from sweeplab.spec import parse_spec
from sweeplab.study.packaging import fit_and_package, raw_example
from sweeplab.study.run import load_study_dataset


class _Trial:
    """The parts of an Optuna FrozenTrial that ticket_for_trial reads."""

    def __init__(self) -> None:
        self.number = 0
        self.params = {"n_blocks": 2, "filters": 4, "batch_norm": True, "n_layers": 1, "units": 16}
        self.user_attrs: dict = {}


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_packaged_cnn_predicts_raw_rows_and_raw_images(tmp_path: Path, framework: str) -> None:
    import mlflow.pyfunc
    from sklearn.datasets import load_digits

    pytest.importorskip({"torch": "torch", "keras": "tensorflow"}[framework])
    spec = parse_spec({
        "study": "cnn-unit", "metric": "val_accuracy", "seed": 3,
        "objective": {"framework": framework, "model": "cnn", "dataset": {"name": "digits"}, "epochs": 2},
        "space": {"n_blocks": [2], "filters": [4], "batch_norm": [True], "n_layers": [1], "units": [16]},
    })
    dataset = load_study_dataset(spec)
    packaged = fit_and_package(ticket_for_trial(spec, _Trial()), dataset, spec.objective, list(spec.metric),
                               raw_rows=raw_example(spec), native=False)
    for name, data in packaged.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    meta = json.loads((tmp_path / "model/artifacts/sweeplab_model.json").read_text())
    assert meta["format"] == "sweeplab-cnn/1" and meta["model"] == "cnn" and meta["input_shape"] == [8, 8, 1]
    assert len(meta["scaler"]["mean"]) == 1  # per channel
    assert meta["config"]["n_blocks"] == 2 and meta["config"]["hidden_units"] == [16]
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    digits = load_digits()
    from_rows = np.asarray(model.predict(raw_example(spec, n=len(digits.target))))
    from_images = np.asarray(model.unwrap_python_model().predict(None, digits.images))
    assert np.array_equal(from_rows, from_images)
    # the test part's raw images, predicted by the loaded model: the re-fit's test accuracy
    test_images = dataset.scaler.inverse_transform(dataset.X_test)
    predicted = np.asarray(model.unwrap_python_model().predict(None, test_images))
    labels = np.asarray(dataset.class_labels)[dataset.y_test]
    assert float(np.mean(predicted == labels)) == pytest.approx(packaged.metrics["test_accuracy"])
    assert packaged.metrics["test_accuracy"] > 0.5

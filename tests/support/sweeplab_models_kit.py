"""Helpers for the model packaging and promotion tests: a tiny labelled CSV, its spec,
the raw held-out rows, and a scoped MLflow tracking URI."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from sweeplab.spec import parse_spec


def iris_csv(directory) -> str:
    """Iris with string labels and one integer feature column, as a CSV file; returns its path."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    frame = pd.DataFrame(bunch.data, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    frame["petal_code"] = (frame["petal_length"] * 10).round().astype(np.int64)
    frame["species"] = np.asarray(bunch.target_names)[bunch.target]
    path = os.path.join(str(directory), "flowers.csv")
    frame.to_csv(path, index=False)
    return path


def mlp_spec(csv_path: str, framework: str = "torch", **over):
    """A 4-trial, 5-epoch MLP study on the CSV (string labels), 2 workers, random sampler."""
    data = {
        "study": f"flowers-{framework}",
        "direction": "maximize",
        "metric": "val_accuracy",
        "trials": 4,
        "workers": 2,
        "seed": 5,
        "sampler": {"name": "random"},
        "pruner": {"name": "none"},
        "objective": {
            "framework": framework,
            "task": "classification",
            "dataset": {"path": csv_path, "target": "species"},
            "epochs": 5,
            "validation_split": 0.2,
            "test_split": 0.2,
        },
        "space": {
            "n_layers": {"type": "int", "low": 1, "high": 2},
            "units": {"type": "int", "low": 8, "high": 32},
            "learning_rate": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
            "batch_size": {"type": "categorical", "choices": [16, 32]},
            "optimizer": {"type": "categorical", "choices": ["adam", "rmsprop"]},
            "activation": {"type": "categorical", "choices": ["relu", "tanh"]},
        },
    }
    data.update(over)
    return parse_spec(data)


def raw_test_rows(spec):
    """The RAW test rows and targets of ``spec``'s dataset: ``load_raw`` + the split
    ``load_dataset`` makes (the spec's seed; stratified on the sorted labels for classification)."""
    from sweeplab.objectives.data import load_raw

    obj = spec.objective
    ds = obj.dataset
    X, y = load_raw(task=obj.task, name=ds.name, path=ds.path, target=ds.target, options=dict(ds.options),
                    seed=spec.seed)
    codes = None
    if obj.task == "classification":
        codes = pd.Categorical(y, categories=sorted(y.unique().tolist())).codes.astype(np.int64)
    _, test_idx = train_test_split(np.arange(len(X)), test_size=obj.test_split, random_state=spec.seed,
                                   stratify=codes)
    return X.iloc[test_idx].reset_index(drop=True), y.iloc[test_idx].reset_index(drop=True)


@contextlib.contextmanager
def tracking_uri(uri: str):
    """Point MLflow's global tracking and registry URI at ``uri`` for the block, then restore."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)
        mlflow.set_registry_uri(None)
        os.environ.pop("MLFLOW_REGISTRY_URI", None)


def artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    """Every file path under a run's artifact root (recursive)."""
    out: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            out |= artifact_paths(client, run_id, info.path)
        else:
            out.add(info.path)
    return out

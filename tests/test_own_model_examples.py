"""The own-model examples (examples/own_model_torch.py and own_model_keras.py): a CNN each on
the digits, with pruning, checkpoints and a logged model; `best` names the best trial's
model and `promote` registers the champion that `models:/NAME@champion` loads.

The functions' resume and pruning paths are called directly with a Trial (no Ray): the
spec's dataset, a checkpoint store in a dict, a reporter that prunes. The study and the
promotion run on the session's local Ray, `best` and `promote` through the command line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from sweeplab_models_kit import artifact_paths, tracking_uri
from sweeplab_testkit import run

import sweeplab
from sweeplab.objectives.trial import NullReporter, Trial, TrialHooks, TrialPruned
from sweeplab.spec import load_spec
from sweeplab.study.promote import promote_study
from sweeplab.study.session import load_study_dataset
from sweeplab.tracking.trial_models import save_model_files

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PARAMS = {"filters": 8, "n_blocks": 2, "dropout": 0.1, "lr": 0.01}
FRAMEWORKS = ["torch", "keras"]


def example(framework: str):
    """The example's module, imported from its file (as the study's workers do)."""
    path = EXAMPLES / f"own_model_{framework}.py"
    spec = importlib.util.spec_from_file_location(f"own_model_{framework}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PruneAt(NullReporter):
    """Records reports and stops the trial at ``epoch``, as the study's pruner would."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def report(self, epoch, metrics):
        super().report(epoch, metrics)
        if epoch >= self.epoch:
            raise TrialPruned(epoch)


def call(fn, framework, epochs, *, restored=None, reporter=None):
    """``fn(trial)`` as a study's trial on its own: the example spec's data, checkpoints kept in a list."""
    spec = load_spec(EXAMPLES / f"own_model_{framework}.yaml", {"objective.epochs": epochs})
    dataset = load_study_dataset(spec)
    saved: list[bytes] = []
    hooks = TrialHooks(save_checkpoint=saved.append, load_checkpoint=lambda: restored,
                       save_model=save_model_files)
    trial = Trial(PARAMS, dataset, 7, reporter or NullReporter(), spec.objective, metric_names=("val_accuracy",),
                  prunable=True, hooks=hooks)
    trial.prepare()
    try:
        result = fn(trial)
    except TrialPruned:
        result = "pruned"
    return result, trial, [pickle.loads(b) for b in saved], dataset


def accuracy_of_logged_model(trial, dataset, tmp_path):
    """Accuracy on the validation rows of the model the trial logged, loaded with mlflow.pyfunc."""
    import mlflow.pyfunc

    folder = tmp_path / "model"
    for name, data in trial.artifacts.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    predicted = np.asarray(mlflow.pyfunc.load_model(str(folder)).predict(np.array(dataset.X_val)))
    assert predicted.shape == (len(dataset.y_val), dataset.n_outputs)  # rows of 64 pixels in, one score per class
    return float(np.mean(predicted.argmax(1) == dataset.y_val))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_example_checkpoints_each_epoch_resumes_after_the_restored_one_and_stops_when_pruned(framework,
                                                                                                  tmp_path):
    fn = example(framework).train
    metrics, trial, checkpoints, dataset = call(fn, framework, 3)
    assert [c["epoch"] for c in checkpoints] == [1, 2, 3]
    assert checkpoints[-1]["metrics"] == metrics and 0.5 < metrics["val_accuracy"] <= 1.0
    assert {"model/MLmodel"} <= set(trial.artifacts)

    # a retry of a trial whose worker died after epoch 2: epoch 3 only, from the restored state
    reporter = NullReporter()
    resumed, trial, again, _ = call(fn, framework, 3, restored=pickle.dumps(checkpoints[1]), reporter=reporter)
    assert [epoch for epoch, _ in reporter.history] == [3] and [c["epoch"] for c in again] == [3]
    assert set(resumed) == {"val_accuracy", "val_loss"}

    # restored at the last epoch: nothing left to train, the logged model is the checkpoint's network
    reporter = NullReporter()
    done, trial, _, dataset = call(fn, framework, 3, restored=pickle.dumps(checkpoints[2]), reporter=reporter)
    assert reporter.history == [] and done == checkpoints[2]["metrics"]
    assert accuracy_of_logged_model(trial, dataset, tmp_path) == pytest.approx(done["val_accuracy"], abs=1e-6)

    # the pruner stops it at epoch 2: TrialPruned goes through, no epoch after it is trained
    reporter = PruneAt(2)
    result, trial, checkpoints, _ = call(fn, framework, 3, reporter=reporter)
    assert result == "pruned" and [epoch for epoch, _ in reporter.history] == [1, 2]
    assert [c["epoch"] for c in checkpoints] == [1] and trial.artifacts == {}


def _cli(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "sweeplab.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def _champion_accuracy(stores, name, dataset):
    import mlflow.pyfunc

    with tracking_uri(stores["tracking"]):
        model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    predicted = np.asarray(model.predict(np.array(dataset.X_val)))
    return float(np.mean(predicted.argmax(1) == dataset.y_val))


def test_best_names_the_torch_examples_logged_model_and_promote_registers_the_champion(ray_local, stores,
                                                                                         monkeypatch):
    monkeypatch.chdir(stores["dir"])  # MLflow's default artifact root (./mlruns) lands there
    spec = load_spec(EXAMPLES / "own_model_torch.yaml", {"trials": 3, "objective.epochs": 2})
    summary = run(spec, stores)
    assert summary.n_complete == 3
    model_uri = f"runs:/{summary.best_run_id}/model"
    assert summary.best_model_uri == model_uri

    flags = ["--storage", stores["storage"], "--tracking-uri", stores["tracking"]]
    out = _cli("best", spec.study, "--json", *flags, cwd=stores["dir"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["best_model_uri"] == model_uri
    loaded = sweeplab.load(spec.study, stores["storage"])
    assert loaded.best.model_uri == model_uri
    assert f"model      {model_uri} (logged by the function: trial.log_model)" in str(loaded)  # best's text

    address = ray_local.get_runtime_context().gcs_address
    out = _cli("promote", spec.study, "--model-name", "digits-torch", "--top-k", "2", "--seeds", "2", "--json",
               *flags, "--address", address, cwd=stores["dir"])
    assert out.returncode == 0, out.stderr[-3000:]
    payload = json.loads(out.stdout)
    assert set(payload) == {"study", "model_name", "version", "alias", "model_uri", "run_id", "tracking_uri", "metric",
                            "winner", "winner_seed", "model_metrics", "candidates", "elapsed_s", "refit", "estimate",
                            "baselines"}
    assert payload["refit"] is None  # a function decides what it trains on: never refit
    assert payload["model_uri"] == "models:/digits-torch@champion" and payload["version"] == 1

    # the same function re-trained: seed 0 of each config is its trial's seed and gives the trial's value
    study = optuna.load_study(study_name=spec.study, storage=stores["storage"])
    top = sorted(study.trials, key=lambda t: (-t.value, t.number))[:2]
    assert [c["trial"] for c in payload["candidates"]] == [t.number for t in top]
    for c, t in zip(payload["candidates"], top, strict=True):
        assert [r["state"] for r in c["runs"]] == ["COMPLETE", "COMPLETE"]
        assert c["runs"][0]["value"] == t.value
        assert c["mean"] == pytest.approx(np.mean([r["value"] for r in c["runs"]]))
    assert payload["winner"]["mean"] == max(c["mean"] for c in payload["candidates"])
    winner = next(c for c in payload["candidates"] if c["trial"] == payload["winner"]["trial"])
    assert payload["winner_seed"] == winner["runs"][0]["seed"]  # the first completed re-training's model
    assert payload["model_metrics"]["val_accuracy"] == winner["runs"][0]["value"]

    # the champion is that re-trained network: it predicts the validation rows as it scored them
    dataset = load_study_dataset(spec)
    assert _champion_accuracy(stores, "digits-torch", dataset) == pytest.approx(
        payload["model_metrics"]["val_accuracy"], abs=1e-6)
    client = MlflowClient(stores["tracking"])
    promo = client.get_run(payload["run_id"])
    assert promo.data.tags["sweeplab.role"] == "promotion"
    assert promo.data.tags["sweeplab.model_framework"] == "pytorch"
    assert promo.data.tags["mlflow.parentRunId"] == summary.mlflow_parent_run_id
    assert {"promotion.json", "model/MLmodel", "model/data/model.pt2"} <= artifact_paths(client, payload["run_id"])


@pytest.mark.slow
def test_the_keras_example_is_promoted_and_its_champion_predicts(ray_local, stores, monkeypatch):
    monkeypatch.chdir(stores["dir"])
    spec = load_spec(EXAMPLES / "own_model_keras.yaml", {"trials": 2, "objective.epochs": 2})
    summary = run(spec, stores)
    assert summary.n_complete == 2 and summary.best_model_uri == f"runs:/{summary.best_run_id}/model"
    result = promote_study(spec.study, "digits-keras", storage_url=stores["storage"],
                           tracking_uri=stores["tracking"], top_k=2, seeds=1)
    assert [r.state for c in result.candidates for r in c.runs] == ["COMPLETE", "COMPLETE"]
    assert _champion_accuracy(stores, "digits-keras", load_study_dataset(spec)) == pytest.approx(
        result.model_metrics["val_accuracy"], abs=1e-6)
    assert MlflowClient(stores["tracking"]).get_run(result.run_id).data.tags["sweeplab.model_framework"] == "keras"

"""Promoting a study of a user's own function: `sweeplab.promote(..., objective=fn)` for a
study run with `sweeplab.run(spec, objective=fn)`, and every refusal (exit 2 before
anything runs; exit 1 when the winner's function logged no model).

The functions are in tests/support (Ray's workers import them by name): ``sweeplab_user_torch.train``
logs its model, ``sweeplab_api_objectives.counted`` does not. The examples'
`objective.callable` studies are promoted through the command line in tests/test_own_model_examples.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from sweeplab_api_objectives import counted
from sweeplab_models_kit import iris_csv, mlp_spec, tracking_uri
from sweeplab_user_torch import train

import sweeplab
from sweeplab.api import resolve_spec
from sweeplab.core.errors import SweeplabError, UsageError
from sweeplab.study.session import load_study_dataset

DATASET = {"name": "make_classification", "n_samples": 120, "n_features": 6, "n_classes": 3, "n_informative": 3}


def function_spec(study: str, out_dir: Path, **objective) -> dict:
    """A spec for ``sweeplab.run(spec, objective=fn)``: no framework, no callable."""
    return {
        "study": study, "direction": "maximize", "metric": "val_accuracy", "trials": 2, "workers": 2, "seed": 11,
        "sampler": {"name": "random"}, "pruner": {"name": "none"},
        "objective": {"dataset": DATASET, "epochs": 3, **objective,
                      "options": {"out_dir": str(out_dir), "log": str(out_dir / "log")}},
        "space": {"units": [8, 16], "lr": {"type": "float", "low": 0.01, "high": 0.1},
                  "x": {"type": "float", "low": 0.0, "high": 1.0}},
    }


def stored_study(stores, spec_data: dict, value: float = 0.5) -> None:
    """A study holding ``spec_data`` (as a run stores it) and one COMPLETE trial: what promote reads first."""
    study = optuna.create_study(study_name=spec_data["study"], storage=stores["storage"], direction="maximize")
    study.set_user_attr("sweeplab.spec", spec_data)
    study.add_trial(optuna.trial.create_trial(
        params={"units": 8, "lr": 0.05, "x": 0.5}, value=value,
        distributions={"units": optuna.distributions.CategoricalDistribution([8, 16]),
                       "lr": optuna.distributions.FloatDistribution(0.01, 0.1),
                       "x": optuna.distributions.FloatDistribution(0.0, 1.0)}))


def _cli(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "sweeplab.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def test_what_promote_cannot_re_train_is_refused_before_anything_runs(stores, tmp_path):
    flags = ["--storage", stores["storage"], "--tracking-uri", stores["tracking"]]
    # a study run with sweeplab.run(spec, objective=fn): its code is not stored, the command cannot run it
    stored_study(stores, resolve_spec(function_spec("notebook-fn", tmp_path), counted).to_dict())
    out = _cli("promote", "notebook-fn", "--model-name", "m", *flags, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "sweeplab.promote('notebook-fn', 'm', objective=fn)" in out.stderr and "Traceback" not in out.stderr
    with pytest.raises(UsageError, match=r"sweeplab\.promote\('notebook-fn', 'm', objective=fn\)"):
        sweeplab.promote("notebook-fn", "m", storage=stores["storage"], tracking_uri=stores["tracking"])

    # objective= for a study that has its own: a stored callable, or sweeplab's torch model
    code = tmp_path / "gone.py"
    code.write_text("def train(trial):\n    return 1.0\n")
    data = function_spec("file-fn", tmp_path, framework="python", callable=f"{code}:train")
    stored_study(stores, resolve_spec(data).to_dict())
    with pytest.raises(UsageError, match=r"runs objective\.callable .*gone\.py:train.*drop it"):
        sweeplab.promote("file-fn", "m", objective=counted, storage=stores["storage"], tracking_uri=stores["tracking"])
    torch_spec = mlp_spec(iris_csv(tmp_path), "torch", study="builtin")
    stored_study(stores, torch_spec.to_dict())
    with pytest.raises(UsageError, match="trains sweeplab's torch model; objective= is only for"):
        sweeplab.promote("builtin", "m", objective=counted, storage=stores["storage"], tracking_uri=stores["tracking"])
    with pytest.raises(TypeError, match="objective= must be the study's training function"):
        sweeplab.promote("builtin", "m", objective="train", storage=stores["storage"])  # type: ignore[arg-type]

    # a stored callable whose file is gone: a spec problem naming it (exit 2), no Ray started, nothing logged
    code.unlink()
    out = _cli("promote", "file-fn", "--model-name", "m", *flags, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "objective.callable" in out.stderr and "gone.py" in out.stderr
    assert [e.name for e in MlflowClient(stores["tracking"]).search_experiments()] == ["Default"]


def test_sweeplab_promote_re_trains_the_function_given_and_registers_its_logged_model(ray_local, stores, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.chdir(stores["dir"])  # MLflow's default artifact root (./mlruns) lands there
    data = function_spec("notebook-torch", tmp_path)
    summary = sweeplab.run(data, objective=train, storage=stores["storage"], tracking_uri=stores["tracking"],
                           progress=False)
    assert summary.n_complete == 2 and summary.best_model_uri == f"runs:/{summary.best_run_id}/model"

    result = sweeplab.promote("notebook-torch", "user-mlp", objective=train, top_k=2, seeds=1,
                              storage=stores["storage"], tracking_uri=stores["tracking"])
    study = optuna.load_study(study_name="notebook-torch", storage=stores["storage"])
    by_number = {t.number: t for t in study.trials}
    for c in result.candidates:  # the function given, with each trial's own seed: the trial's value again
        assert [r.value for r in c.runs] == [by_number[c.trial].value]
    assert result.model_uri == "models:/user-mlp@champion" and result.version == 1
    assert result.to_json()["winner"]["trial"] == result.winner.trial

    # the champion is the winner's re-trained network: the function wrote what it predicts on 4 validation rows
    import mlflow.pyfunc

    rows = load_study_dataset(resolve_spec(data, train)).X_val[:4]
    with tracking_uri(stores["tracking"]):
        champion = mlflow.pyfunc.load_model("models:/user-mlp@champion")
    expected = json.loads((tmp_path / f"torch-{result.winner.trial}.json").read_text())["expected"]
    np.testing.assert_allclose(np.asarray(champion.predict(np.array(rows))), expected, rtol=1e-5, atol=1e-6)


def test_a_winner_whose_function_logs_no_model_cannot_be_promoted(ray_local, stores, tmp_path, monkeypatch):
    monkeypatch.chdir(stores["dir"])
    data = {**function_spec("no-model", tmp_path), "metric": "score"}
    data["objective"].pop("dataset")
    summary = sweeplab.run(data, objective=counted, storage=stores["storage"], tracking_uri=stores["tracking"],
                           progress=False)
    assert summary.n_complete == 2 and summary.best_model_uri is None  # nothing logged: best names no model
    with pytest.raises(SweeplabError, match=r"must call trial\.log_model\(model\) to be promoted") as caught:
        sweeplab.promote("no-model", "nothing", objective=counted, top_k=1, seeds=1, storage=stores["storage"],
                         tracking_uri=stores["tracking"])
    assert caught.value.exit_code == 1 and f"trial {summary.best_trial}" in str(caught.value)
    client = MlflowClient(stores["tracking"], registry_uri=stores["tracking"])
    assert client.search_registered_models() == []  # nothing registered

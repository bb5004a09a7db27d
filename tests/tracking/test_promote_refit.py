"""`sweeplab promote` refits the champion on train + validation, reports an honest estimate and baselines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.model_selection import train_test_split
from sweeplab_models_kit import iris_csv, mlp_spec, raw_test_rows, tracking_uri
from sweeplab_testkit import run

from sweeplab.core.errors import UsageError
from sweeplab.objectives.data import load_dataset, load_raw
from sweeplab.registry.baselines import baselines_for
from sweeplab.spec import parse_spec
from sweeplab.study.promote import promote_study


def _raw_train_val_rows(spec):
    """The RAW rows of the train + validation parts (everything but the test part), split as load_dataset does."""
    obj = spec.objective
    X, y = load_raw(task=obj.task, path=obj.dataset.path, target=obj.dataset.target, seed=spec.seed)
    codes = pd.Categorical(y, categories=sorted(y.unique().tolist())).codes.astype(np.int64)
    rest, _ = train_test_split(np.arange(len(X)), test_size=obj.test_split, random_state=spec.seed, stratify=codes)
    return X.iloc[rest]


def _cli(*args, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "sweeplab.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_promote_refits_on_train_and_validation_and_reports_the_held_out_estimate(ray_local, stores, tmp_path,
                                                                                   monkeypatch):
    import mlflow.pyfunc

    monkeypatch.chdir(tmp_path)
    spec = mlp_spec(iris_csv(tmp_path), "torch", study="flowers-refit")
    summary = run(spec, stores)
    assert summary.n_complete == 4 and summary.estimate is None

    result = promote_study(spec.study, "flowers-refit", storage_url=stores["storage"],
                           tracking_uri=stores["tracking"], top_k=2, seeds=2, baselines=True)
    obj = spec.objective
    plain = load_dataset(task=obj.task, path=obj.dataset.path, target=obj.dataset.target,
                         validation_split=obj.validation_split, test_split=obj.test_split, seed=spec.seed)
    n_train, n_val, n_test = len(plain.y_train), len(plain.y_val), len(plain.y_test)

    # the refit: train + validation rows, for the mean best epoch of the winner's re-seeded trainings
    refit = result.refit
    assert refit is not None
    assert (refit.n_train, refit.n_val, refit.n_rows) == (n_train, n_val, n_train + n_val)
    study = optuna.load_study(study_name=spec.study, storage=stores["storage"])
    trial = next(t for t in study.trials if t.number == result.winner.trial)
    assert refit.best_epochs[0] == trial.user_attrs["sweeplab.metrics"]["best_epoch"]  # seed 0 is the trial's
    assert len(refit.best_epochs) == 2
    assert refit.epochs == max(1, round(np.mean(refit.best_epochs)))
    assert result.model_metrics["epochs_trained"] == refit.epochs  # every epoch ran: no early stopping
    assert result.model_metrics["best_epoch"] == refit.epochs  # and the last one is the model

    client = MlflowClient(stores["tracking"], registry_uri=stores["tracking"])
    promo = client.get_run(result.run_id)
    assert promo.data.params["refit.n_rows"] == str(n_train + n_val)
    assert promo.data.params["refit.epochs"] == str(refit.epochs)

    # the registered champion is the refit model: it saw the train + validation rows (its scaler is theirs)
    version = client.get_model_version_by_alias("flowers-refit", "champion")
    assert version.run_id == result.run_id
    local = client.download_artifacts(result.run_id, "model", str(tmp_path / "dl"))
    meta = json.loads(open(os.path.join(local, "artifacts", "sweeplab_model.json")).read())
    assert meta["train_rows"] == n_train + n_val and meta["refit"] is True
    seen = _raw_train_val_rows(spec)
    assert len(seen) == n_train + n_val
    np.testing.assert_allclose(meta["scaler"]["mean"], seen.to_numpy(dtype=np.float64).mean(axis=0), rtol=1e-6)

    # its held-out value is a recomputation on the test rows, with the registered model
    X_test, y_test = raw_test_rows(spec)
    assert len(y_test) == n_test
    with tracking_uri(stores["tracking"]):
        model = mlflow.pyfunc.load_model("models:/flowers-refit@champion")
    accuracy = float(np.mean(np.asarray(model.predict(X_test)) == y_test.to_numpy()))
    e = result.estimate
    assert e is not None and e.refit and e.heldout_metric == "test_accuracy" and e.heldout_rows == n_test
    assert e.heldout_value == pytest.approx(accuracy, abs=1e-9)
    assert e.selected_value == trial.value and e.reseeded_mean == pytest.approx(result.winner.mean)
    assert e.optimism_gap == pytest.approx(trial.value - accuracy)
    assert e.estimate_gap == pytest.approx(result.winner.mean - accuracy)
    assert e.cv_mean is None  # the study did not cross-validate

    # the parent run and `best --json` carry the estimate
    parent = client.get_run(summary.mlflow_parent_run_id)
    assert parent.data.metrics["selection.heldout_value"] == pytest.approx(accuracy)
    assert parent.data.metrics["selection.optimism_gap"] == pytest.approx(e.optimism_gap)
    out = _cli("best", spec.study, "--json", "--storage", stores["storage"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    best = json.loads(out.stdout)["estimate"]
    assert best["heldout_value"] == pytest.approx(accuracy) and best["optimism_gap"] == pytest.approx(e.optimism_gap)
    assert {"selected_value", "reseeded_mean", "cv_mean", "heldout_metric", "estimate_gap"} <= set(best)
    out = _cli("best", spec.study, "--storage", stores["storage"], cwd=tmp_path)
    assert "optimism gap" in out.stdout and "held-out test_accuracy" in out.stdout

    # baselines: every classification baseline, scored on the same test rows, logged beside the champion
    assert [b.name for b in result.baselines] == [b.name for b in baselines_for("classification")]
    refit_data = load_dataset(task=obj.task, path=obj.dataset.path, target=obj.dataset.target,
                              validation_split=obj.validation_split, test_split=obj.test_split, seed=spec.seed,
                              merge_validation=True)
    for b in result.baselines:
        entry = next(x for x in baselines_for("classification") if x.name == b.name)
        fitted = entry.build("classification", spec.seed).fit(refit_data.X_train, refit_data.y_train)
        assert b.value == pytest.approx(float(np.mean(fitted.predict(refit_data.X_test) == refit_data.y_test)))
        assert promo.data.metrics[f"baseline.{b.name}.test_accuracy"] == pytest.approx(b.value)
    assert promo.data.metrics["champion.test_accuracy"] == pytest.approx(accuracy)


def test_no_refit_registers_the_winner_trained_on_the_training_rows(ray_local, stores, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = mlp_spec(iris_csv(tmp_path), "torch", study="flowers-norefit", trials=2)
    run(spec, stores)
    result = promote_study(spec.study, "flowers-norefit", storage_url=stores["storage"],
                           tracking_uri=stores["tracking"], top_k=1, seeds=1, refit=False)
    assert result.refit is None and result.baselines == ()
    study = optuna.load_study(study_name=spec.study, storage=stores["storage"])
    trial = next(t for t in study.trials if t.number == result.winner.trial)
    # the registered model is the trial's own training: its held-out value is the trial's test_accuracy
    assert result.estimate.heldout_value == trial.user_attrs["sweeplab.metrics"]["test_accuracy"]
    assert not result.estimate.refit


def test_refit_and_baselines_need_a_test_part(stores, tmp_path):
    spec = mlp_spec(iris_csv(tmp_path), "torch", study="no-test")
    data = spec.to_dict()
    data["objective"]["test_split"] = 0.0
    study = optuna.create_study(study_name="no-test", storage=stores["storage"], direction="maximize")
    study.set_user_attr("sweeplab.spec", data)
    study.add_trial(optuna.trial.create_trial(value=0.9, params={}, distributions={}))
    flags = ["--storage", stores["storage"], "--tracking-uri", stores["tracking"]]

    out = _cli("promote", "no-test", "--model-name", "m", "--refit", *flags, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "--refit" in out.stderr and "objective.test_split > 0" in out.stderr and "--no-refit" in out.stderr
    out = _cli("promote", "no-test", "--model-name", "m", "--no-refit", "--baselines", *flags, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "--baselines" in out.stderr and "test part" in out.stderr
    with pytest.raises(UsageError, match="--refit: study 'no-test' has no test part"):
        promote_study("no-test", "m", storage_url=stores["storage"], tracking_uri=stores["tracking"], refit=True)
    assert not (tmp_path / "mlruns").exists()


def test_the_estimate_comes_from_the_users_holdout_file(ray_local, stores, tmp_path, monkeypatch):
    import mlflow.pyfunc

    monkeypatch.chdir(tmp_path)
    frame = pd.read_csv(iris_csv(tmp_path)).sample(frac=1.0, random_state=1).reset_index(drop=True)
    frame.iloc[:120].to_csv(tmp_path / "train.csv", index=False)
    holdout = frame.iloc[120:]
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    spec = mlp_spec(str(tmp_path / "train.csv"), "torch", study="flowers-holdout", trials=2)
    data = spec.to_dict()
    data["objective"].pop("test_split")
    data["objective"]["holdout"] = {"path": "holdout.csv", "target": "species"}
    summary = run(parse_spec(data), stores)
    assert summary.n_complete == 2
    result = promote_study("flowers-holdout", "flowers-holdout", storage_url=stores["storage"],
                           tracking_uri=stores["tracking"], top_k=1, seeds=1)
    assert result.refit is not None and result.refit.n_rows == 120  # every row of the dataset: no test part cut
    with tracking_uri(stores["tracking"]):
        model = mlflow.pyfunc.load_model("models:/flowers-holdout@champion")
    predicted = np.asarray(model.predict(holdout.drop(columns=["species"])))
    accuracy = float(np.mean(predicted == holdout["species"].to_numpy()))
    assert result.estimate.heldout_rows == 30
    assert result.estimate.heldout_value == pytest.approx(accuracy, abs=1e-9)


def test_a_function_study_is_not_refit(stores, tmp_path):
    spec = {"study": "fn-study", "metric": "val_accuracy", "direction": "maximize", "trials": 1,
            "objective": {"framework": "python", "callable": "sweeplab_user_functions:inspect"},
            "space": {"learning_rate": {"type": "float", "low": 0.001, "high": 0.1}}}
    study = optuna.create_study(study_name="fn-study", storage=stores["storage"], direction="maximize")
    study.set_user_attr("sweeplab.spec", parse_spec(spec).to_dict())
    study.add_trial(optuna.trial.create_trial(value=0.9, params={}, distributions={}))
    flags = ["--storage", stores["storage"], "--tracking-uri", stores["tracking"]]
    out = _cli("promote", "fn-study", "--model-name", "m", "--refit", *flags, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "runs its own function (framework python)" in out.stderr and "drop --refit" in out.stderr
    out = _cli("promote", "fn-study", "--model-name", "m", "--baselines", *flags, cwd=tmp_path)
    assert out.returncode == 2 and "--baselines" in out.stderr and "dataset none" in out.stderr, out.stderr


def test_run_promote_promotes_at_the_end_of_the_study(stores, tmp_path):
    spec = mlp_spec(iris_csv(tmp_path), "torch", study="flowers-run-promote", trials=2)
    path = tmp_path / "spec.yaml"
    import yaml

    path.write_text(yaml.safe_dump(spec.to_dict()))
    flags = ["--storage", stores["storage"], "--tracking-uri", stores["tracking"]]
    out = _cli("run", path, "--promote", "bad/name", *flags, cwd=tmp_path)
    assert out.returncode == 2 and "--model-name must not contain path separators" in out.stderr, out.stderr
    assert optuna.get_all_study_names(stores["storage"]) == []  # refused before the study ran

    # a study and a promotion (3 configs x 3 seeds and a refit), each on a Ray of its own
    out = _cli("run", path, "--promote", "flowers-end", "--json", "--no-model", *flags, cwd=tmp_path, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    payload = json.loads(out.stdout)  # exactly one JSON object
    assert payload["n_complete"] == 2 and payload["promotion"]["model_uri"] == "models:/flowers-end@champion"
    assert payload["estimate"] == payload["promotion"]["estimate"] and payload["estimate"]["refit"] is True
    client = MlflowClient(stores["tracking"], registry_uri=stores["tracking"])
    assert client.get_model_version_by_alias("flowers-end", "champion").run_id == payload["promotion"]["run_id"]


def test_a_cross_validated_winners_fold_mean_is_the_estimate(ray_local, stores, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = mlp_spec(iris_csv(tmp_path), "torch", study="flowers-cv", trials=2)
    data = spec.to_dict()
    data["objective"].pop("validation_split")
    data["objective"]["validation"] = {"kfold": 3}
    run(parse_spec(data), stores)
    result = promote_study("flowers-cv", "flowers-cv", storage_url=stores["storage"],
                           tracking_uri=stores["tracking"], top_k=1, seeds=2)
    study = optuna.load_study(study_name="flowers-cv", storage=stores["storage"])
    trial = next(t for t in study.trials if t.number == result.winner.trial)
    assert "val_accuracy_std" in trial.user_attrs["sweeplab.metrics"]
    e = result.estimate
    assert e.cv_mean == trial.value and e.estimate_gap == pytest.approx(trial.value - e.heldout_value)
    assert result.refit.n_rows == 120 and result.refit.n_val == 0  # every row but the 30 test rows, no folds

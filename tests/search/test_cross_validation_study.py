"""Cross-validated studies on Ray, logged to MLflow: the fold count and spread of every trial, the
per-fold curves behind each reported mean, pruning, and users' functions training on ``trial.folds()``."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from sweeplab_testkit import child_runs, run

from sweeplab.core.keys import ATTR_CV_FOLDS, ATTR_CV_STD, ATTR_RUN_ID
from sweeplab.spec import parse_spec

SPACE = {"n_layers": 1, "units": {"type": "int", "low": 8, "high": 16},
         "learning_rate": {"type": "float", "low": 0.005, "high": 0.05, "log": True}}


def network_spec(**over):
    data = {
        "study": "cv-net", "metric": "val_accuracy", "trials": 2, "workers": 2, "seed": 3,
        "sampler": {"name": "random"}, "pruner": {"name": "none"},
        "objective": {"framework": "torch", "dataset": {"name": "wine"}, "epochs": 4,
                      "validation": {"kfold": 3}},
        "space": SPACE,
    }
    data.update(over)
    return parse_spec(data)


def test_a_cross_validated_trial_logs_its_mean_curve_fold_curves_spread_and_fold_count(ray_local, stores):
    summary = run(network_spec(), stores)
    assert summary.n_complete == 2
    client = MlflowClient(stores["tracking"])
    study = optuna.load_study(study_name="cv-net", storage=stores["storage"])
    runs = {r.info.run_id: r for r in child_runs(stores, summary.mlflow_parent_run_id)}
    for trial in study.trials:
        assert trial.user_attrs[ATTR_CV_FOLDS] == 3
        spread = trial.user_attrs[ATTR_CV_STD]
        assert set(spread) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        data = runs[trial.user_attrs[ATTR_RUN_ID]].data
        assert data.metrics["final_n_folds"] == 3
        assert data.metrics["final_val_accuracy_std"] == pytest.approx(spread["val_accuracy"])
        run_id = trial.user_attrs[ATTR_RUN_ID]
        table = list(csv.DictReader(io.StringIO(Path(client.download_artifacts(run_id, "cv_folds.csv")).read_text())))
        assert len(table) == 4 * 3 and {row["fold"] for row in table} == {"0", "1", "2"}
        curve = {m.step: m.value for m in client.get_metric_history(run_id, "val_accuracy")}
        assert sorted(curve) == [1, 2, 3, 4] and trial.intermediate_values == pytest.approx(curve)
        for epoch, value in curve.items():
            folds = [float(row["val_accuracy"]) for row in table if int(row["epoch"]) == epoch]
            assert value == pytest.approx(statistics.fmean(folds))  # the reported value is the mean over folds
        best = int(data.metrics["final_best_epoch"])
        at_best = [float(row["val_accuracy"]) for row in table if int(row["epoch"]) == best]
        assert trial.value == pytest.approx(statistics.fmean(at_best))
        assert spread["val_accuracy"] == pytest.approx(statistics.pstdev(at_best))


def test_a_pruned_cross_validated_trial_stops_at_the_pruned_epoch(ray_local, stores):
    prune_at_2 = {"name": "threshold", "lower": 0.9999, "n_warmup_steps": 2}
    summary = run(network_spec(trials=2, pruner=prune_at_2, objective={
        "framework": "torch", "dataset": {"name": "wine"}, "epochs": 8, "validation": {"kfold": 3, "repeats": 2}}),
        stores)
    assert summary.n_pruned == 2
    for trial in optuna.load_study(study_name="cv-net", storage=stores["storage"]).trials:
        assert trial.user_attrs["sweeplab.pruned_at_epoch"] == 2 and sorted(trial.intermediate_values) == [1, 2]


def test_a_users_function_trains_on_trial_folds_and_is_pruned_on_its_mean(ray_local, stores, tmp_path):
    spec = parse_spec({
        "study": "cv-fn", "metric": "score", "trials": 2, "workers": 2, "seed": 5,
        "sampler": {"name": "random"}, "pruner": {"name": "threshold", "lower": 0.9999, "n_warmup_steps": 3},
        "objective": {"framework": "python", "callable": "sweeplab_user_functions:cross_validated", "epochs": 6,
                      "dataset": {"name": "iris"}, "validation": {"kfold": 4}, "options": {"out_dir": str(tmp_path)}},
        "space": {"x": {"type": "float", "low": 0.01, "high": 0.1}},
    })
    summary = run(spec, stores)
    assert summary.n_pruned == 2
    for path in tmp_path.glob("folds-*.json"):
        seen = json.loads(path.read_text())
        # iris: 150 rows, 30 for the test split, 120 cut into 4 stratified folds of 90 / 30
        assert seen == {"n_folds": 4, "sizes": [[90, 30]] * 4, "n_test": 30}
    trials = optuna.load_study(study_name="cv-fn", storage=stores["storage"]).trials
    assert len(list(tmp_path.glob("folds-*.json"))) == 2
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in trials)

"""Keras and PyTorch studies on the same spec, pruning from Ray workers, and `framework` searched."""

from __future__ import annotations

import optuna
import pytest
from sweeplab_testkit import child_runs, run

from sweeplab.spec import parse_spec

pytest.importorskip("tensorflow", reason="the keras extra is part of `make test`")


def spec(**over):
    data = {
        "study": "frameworks",
        "metric": "val_accuracy",
        "trials": 3,
        "workers": 2,
        "seed": 11,
        "sampler": {"name": "random"},
        # prunes every trial at epoch 2, the first after warm-up: the worker -> coordinator -> decision path
        "pruner": {"name": "threshold", "lower": 0.999, "n_warmup_steps": 2},
        "objective": {"framework": "torch", "task": "classification", "epochs": 6,
                      "dataset": {"name": "make_classification", "n_samples": 300, "n_features": 8,
                                  "n_classes": 3, "n_informative": 4}},
        "space": {"n_layers": {"type": "int", "low": 1, "high": 2}, "units": [8, 16],
                  "learning_rate": {"type": "float", "low": 0.001, "high": 0.01, "log": True}},
    }
    data.update(over)
    return parse_spec(data)


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_same_spec_runs_and_prunes_on_both_frameworks(ray_local, stores, framework):
    base = spec()
    s = parse_spec({**base.to_dict(), "objective": {**base.to_dict()["objective"], "framework": framework}})
    summary = run(s, stores)
    study = optuna.load_study(study_name="frameworks", storage=stores["storage"])
    assert summary.n_trials == 3 and summary.n_pruned == 3
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["sweeplab.pruned_at_epoch"] == 2 and sorted(t.intermediate_values) == [1, 2]
    runs = child_runs(stores, summary.mlflow_parent_run_id)
    assert len(runs) == 3
    assert {r.data.tags["sweeplab.framework"] for r in runs} == {framework}
    assert all(r.info.status == "KILLED" for r in runs)


def test_framework_as_a_searched_categorical_runs_trials_of_both(ray_local, stores):
    data = spec(trials=2, pruner={"name": "none"}).to_dict()
    data["sampler"] = {"name": "grid"}
    data["space"] = {"framework": ["torch", "keras"], "n_layers": 1, "units": 8, "learning_rate": 0.01}
    data["objective"]["epochs"] = 2
    summary = run(parse_spec(data), stores)
    assert summary.n_complete == 2
    study = optuna.load_study(study_name="frameworks", storage=stores["storage"])
    assert sorted(t.params["framework"] for t in study.trials) == ["keras", "torch"]
    runs = child_runs(stores, summary.mlflow_parent_run_id)
    assert sorted(r.data.tags["sweeplab.framework"] for r in runs) == ["keras", "torch"]
    for t in study.trials:
        assert 0.0 <= t.value <= 1.0

"""The study summary record: what summarize builds and what `--json` prints from it."""

from __future__ import annotations

import dataclasses
import json

import optuna
import pytest

from sweeplab.core.records import RunDetails, StudySummary
from sweeplab.search.summary import summarize

BASE_KEYS = ["study", "n_trials", "n_complete", "n_pruned", "n_failed", "n_retried", "n_rejected", "n_running",
             "n_waiting", "trials_target", "direction", "metric", "sampler", "pruner", "best_value", "best_params",
             "best_trial", "best_metrics", "best_run_id", "best_model_uri", "pareto_front", "running_trials",
             "mlflow_experiment_id", "mlflow_parent_run_id", "failures", "estimate"]
RUN_KEYS = ["best_model", "elapsed_s", "startup_s", "mlflow_delivered", "mlflow_requests", "storage", "tracking_uri"]


def _single(logged: tuple[int, ...] = ()) -> optuna.Study:
    """Trials 0 and 1 COMPLETE (1 best), 2 PRUNED, 3 FAILED, 4 RUNNING; ``logged``: those whose function logged a
    model."""
    study = optuna.create_study(study_name="one", direction="maximize")
    study.set_user_attr("sweeplab.spec", {"trials": 5, "metric": "score", "sampler": {"name": "tpe"},
                                          "pruner": {"name": "hyperband", "min_resource": 2}})
    study.set_user_attr("mlflow_experiment_id", "7")
    study.set_user_attr("mlflow_parent_run_id", "parent")
    study.set_user_attr("sweeplab.run_ids", {"1": "run-of-1"})
    for value, state in ((0.2, None), (0.9, None), (None, optuna.trial.TrialState.PRUNED),
                         (None, optuna.trial.TrialState.FAIL)):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        if trial.number in logged:
            trial.set_user_attr("sweeplab.logged_model", "model")
        if state is None:
            trial.set_user_attr("sweeplab.metrics", {"score": value})
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
    study.ask()  # one RUNNING
    return study


def test_single_objective_summary_and_its_json():
    s = summarize(_single())
    assert isinstance(s, StudySummary) and s.run is None
    assert (s.n_trials, s.n_complete, s.n_pruned, s.n_failed, s.n_running) == (4, 2, 1, 1, 1)
    assert s.best_trial == 1 and s.best_value == 0.9 and s.best_run_id == "run-of-1"  # the study's later link
    assert s.best_metrics == {"score": 0.9} and s.running_trials == [4] and s.trials_target == 5
    assert [(g.reason, g.count, g.trials) for g in s.failures] == [("no reason recorded", 1, [3])]
    payload = s.to_json()
    assert list(payload) == BASE_KEYS
    assert json.loads(json.dumps(payload)) == payload  # plain JSON values
    assert payload["direction"] == ["maximize"] and payload["metric"] == "score" and payload["pareto_front"] is None
    assert (payload["sampler"], payload["pruner"]) == ("tpe", "hyperband")  # the names the stored spec holds
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.n_trials = 0  # type: ignore[misc]


def test_the_model_the_best_trials_function_logged_is_named_by_its_run():
    assert summarize(_single()).best_model_uri is None  # no function logged a model
    assert summarize(_single(logged=(0,))).best_model_uri is None  # not the best trial's
    s = summarize(_single(logged=(1,)))
    assert s.best_model_uri == "runs:/run-of-1/model" and s.to_json()["best_model_uri"] == "runs:/run-of-1/model"


def test_a_run_adds_its_details_to_the_json():
    s = summarize(_single())
    details = RunDetails(elapsed_s=1.5, startup_s={"total": 0.5}, mlflow_delivered=True, mlflow_requests=12,
                         storage="sqlite:///o.db", tracking_uri="sqlite:///m.db")
    payload = dataclasses.replace(s, run=details).to_json()
    assert list(payload) == BASE_KEYS + RUN_KEYS[1:]  # no packaging tried: no best_model
    assert payload["startup_s"] == {"total": 0.5} and payload["mlflow_requests"] == 12
    packaged = dataclasses.replace(s, run=dataclasses.replace(details, best_model={"packaged": False})).to_json()
    assert list(packaged) == BASE_KEYS + RUN_KEYS


def test_multi_objective_summary_has_a_pareto_front():
    study = optuna.create_study(study_name="two", directions=["maximize", "minimize"])
    study.set_user_attr("sweeplab.spec", {"trials": 3, "metric": ["acc", "cost"]})
    for values in ((0.5, 1.0), (0.9, 3.0), (0.4, 2.0)):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(trial, list(values))
    s = summarize(study)
    assert [p.trial for p in s.pareto_front] == [0, 1] and s.best_trial == 0 and s.best_value == [0.5, 1.0]
    payload = s.to_json()
    assert payload["metric"] == ["acc", "cost"] and payload["direction"] == ["maximize", "minimize"]
    assert payload["pareto_front"][1] == {"trial": 1, "values": [0.9, 3.0], "params": dict(study.trials[1].params),
                                          "run_id": None}


def test_an_empty_study_has_no_best():
    study = optuna.create_study(study_name="empty")
    payload = summarize(study).to_json()
    assert list(payload) == BASE_KEYS
    assert payload["best_trial"] is None and payload["best_value"] is None and payload["n_trials"] == 0
    assert payload["trials_target"] is None and payload["metric"] is None
    assert payload["sampler"] is None and payload["pruner"] is None  # no spec stored


def test_failures_are_grouped_by_error_most_frequent_first_and_superseded_attempts_left_out():
    study = optuna.create_study(study_name="failing")
    reasons = ["ValueError: bad shape\ntraceback...", "KeyError: 'x'", "ValueError: bad shape\nother traceback",
               "lost: its worker died"]
    for reason in reasons:
        trial = study.ask()
        trial.set_user_attr("sweeplab.fail_reason", reason)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    study.set_user_attr("sweeplab.retries", {"3": None})  # trial 3 was superseded: not a failure of the study
    groups = summarize(study).failures
    assert [(g.reason, g.count, g.trials) for g in groups] == [("ValueError: bad shape", 2, [0, 2]),
                                                               ("KeyError: 'x'", 1, [1])]
    assert summarize(study).to_json()["failures"][0] == {"reason": "ValueError: bad shape", "count": 2,
                                                         "trials": [0, 2]}


def test_the_last_promotes_estimate_is_part_of_the_summary():
    from sweeplab.core.records import SelectionEstimate

    study = _single()
    assert summarize(study).estimate is None and summarize(study).to_json()["estimate"] is None
    estimate = SelectionEstimate.build(metric="score", direction="maximize", trial=1, selected_value=0.9,
                                       reseeded_mean=0.85, cv_mean=None, heldout_value=0.8, heldout_rows=30,
                                       refit=True, model_uri="models:/m@champion")
    study.set_user_attr("sweeplab.estimate", estimate.to_json())
    summary = summarize(study)
    assert summary.estimate == estimate
    payload = json.loads(json.dumps(summary.to_json()))
    assert payload["estimate"]["optimism_gap"] == pytest.approx(0.1)
    assert payload["estimate"]["estimate_gap"] == pytest.approx(0.05)

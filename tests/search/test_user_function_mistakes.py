"""Users' functions that make mistakes say so: warnings once on the driver, failures with the reason.

In-process studies (the same loop and coordinator as on Ray, without Ray), and checkpoints
kept across a driver's death by the coordinator that resumes the study.
"""

from __future__ import annotations

import logging

import optuna
import pytest
from sweeplab_testkit import run

from sweeplab.core.records import COMPLETE, TrialOutcome
from sweeplab.search.coordinator import StudyCoordinator
from sweeplab.search.loop import TrialsKeepFailing
from sweeplab.spec import parse_spec

IN_PROCESS = {"executor": "in-process"}


def spec(fn, **over):
    data = {
        "study": "mistakes", "direction": "maximize", "metric": "score", "trials": 3, "workers": 1, "seed": 3,
        "sampler": {"name": "random"}, "pruner": {"name": "median", "n_startup_trials": 1},
        "objective": {"framework": "python", "callable": f"sweeplab_user_functions:{fn}", "epochs": 3},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    }
    data.update(over)
    return parse_spec(data)


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "sweeplab.search"]


def test_reports_without_the_study_metric_warn_once_naming_what_was_reported(stores, caplog):
    caplog.set_level(logging.WARNING, logger="sweeplab.search")
    summary = run(spec("other_metric_only"), stores, **IN_PROCESS)
    assert summary.n_complete == 3
    [warning] = warnings_of(caplog)  # three trials, one warning
    assert warning.startswith("trial 0: pruning is off for this trial")
    assert "'score'" in warning and "it reported acc, loss" in warning


def test_a_failed_trial_still_says_it_reported_without_the_study_metric(stores, caplog):
    caplog.set_level(logging.WARNING, logger="sweeplab.search")
    summary = run(spec("other_metric_then_text", trials=1), stores, **IN_PROCESS)
    assert summary.n_failed == 1
    [warning] = warnings_of(caplog)  # what it reported wrong, not a "never reported" echo of the failure
    assert "did not include the study metric 'score' (it reported acc)" in warning


def test_a_study_metric_never_reported_with_a_pruner_is_said(stores, caplog):
    caplog.set_level(logging.WARNING, logger="sweeplab.search")
    run(spec("never_reports"), stores, **IN_PROCESS)
    [warning] = warnings_of(caplog)
    assert "has a pruner, but this trial never reported the study metric 'score'" in warning
    caplog.clear()
    run(spec("never_reports", study="no-pruner", pruner={"name": "none"}), stores, **IN_PROCESS)
    assert warnings_of(caplog) == []  # nothing is lost without a pruner


def test_epochs_going_backwards_fail_the_trial_naming_both_and_fail_fast_still_stops(stores, capsys):
    with pytest.raises(TrialsKeepFailing, match="epoch 3 came after epoch 5"):
        run(spec("epochs_backwards", trials=5), stores, **IN_PROCESS)
    trials = optuna.load_study(study_name="mistakes", storage=stores["storage"]).trials
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert "ValueError: trial.report: epoch 3 came after epoch 5" in trials[0].user_attrs["sweeplab.fail_reason"]
    assert capsys.readouterr().err.count("epoch 3 came after epoch 5") >= 3  # each failure said on stderr


def test_a_function_returning_text_fails_with_what_to_return(stores):
    summary = run(spec("returns_text", trials=1), stores, **IN_PROCESS)
    assert summary.n_failed == 1
    [group] = summary.failures
    assert "returned str 'done'; return the study metric 'score' as a number" in group.reason


def test_a_checkpoint_survives_its_driver_and_is_dropped_when_the_lineage_ends(stores):
    """Driver A hands out trial 0, which checkpoints, and A dies; driver B reaps the trial, its
    retry restores the checkpoint; once told, the checkpoint is deleted."""
    data = spec("resumable").to_dict()
    folder = stores["dir"] / "ckpt"
    a = StudyCoordinator(data, stores["storage"], lease_seconds=0.05, checkpoint_dir=str(folder))
    ticket = a.ask()
    assert a.load_checkpoint(ticket.number) is None
    assert a.save_checkpoint(ticket.number, b"epoch-2") and a.save_checkpoint(ticket.number, b"epoch-3")
    assert len(list(folder.rglob("*.ckpt"))) == 1  # the last one only
    del a  # the driver is gone; its lease expires
    import time

    time.sleep(0.1)
    b = StudyCoordinator(data, stores["storage"], lease_seconds=60, checkpoint_dir=str(folder))
    [reaped] = b.reap_stale()
    retry = b.ask()
    assert retry.number == reaped.retried_by and retry.seed == ticket.seed
    assert b.load_checkpoint(retry.number) == b"epoch-3"
    b.tell(TrialOutcome(retry.number, COMPLETE, {"score": 1.0}))
    assert not folder.exists()
    assert b.save_checkpoint(retry.number, b"late") is False  # a trial no longer in flight saves nothing


def builtin_spec(metric, **over):
    data = {
        "study": "builtin", "direction": "maximize", "metric": metric, "trials": 2, "workers": 1, "seed": 3,
        "sampler": {"name": "random"}, "pruner": {"name": "median", "n_startup_trials": 1},
        "objective": {"framework": "torch", "dataset": {"name": "iris"}, "epochs": 2},
        "space": {"units": {"type": "int", "low": 4, "high": 8}},
    }
    data.update(over)
    return parse_spec(data)


def test_built_in_models_report_through_the_trial_so_its_warnings_are_right(stores, caplog):
    caplog.set_level(logging.WARNING, logger="sweeplab.search")
    summary = run(builtin_spec("val_accuracy"), stores, **IN_PROCESS)
    assert summary.n_complete + summary.n_pruned == 2
    assert warnings_of(caplog) == []  # every epoch reports val_accuracy: nothing to say
    caplog.clear()
    # test_accuracy exists only at the end: the pruner can never see it, and that is said
    summary = run(builtin_spec("test_accuracy", study="builtin-test"), stores, **IN_PROCESS)
    assert summary.n_complete == 2
    [warning] = warnings_of(caplog)
    assert "pruning is off for this trial" in warning and "'test_accuracy'" in warning

"""The trial loop on the in-process executor: the loop, pruning, resume, retries and stopping,
tested without Ray (the same loop and coordinator that `sweeplab run` drives on Ray)."""

from __future__ import annotations

import os
import threading
import time

import optuna
import pytest
from sweeplab_testkit import bowl_spec, child_runs, run

from sweeplab.core.errors import SweeplabError
from sweeplab.study import RunOptions, StudyInterrupted, run_study

IN_PROCESS = {"executor": "in-process"}


def test_a_study_runs_to_its_target_in_this_process(stores):
    summary = run(bowl_spec(trials=6, workers=2), stores, **IN_PROCESS)
    assert summary.n_trials == 6 and summary.n_complete == 6
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    assert all(t.user_attrs["sweeplab.node"].endswith(f"pid={os.getpid()}") for t in study.trials)
    runs = child_runs(stores, summary.mlflow_parent_run_id)
    assert sorted(int(r.data.tags["sweeplab.trial_number"]) for r in runs) == list(range(6))
    assert summary.best_trial == study.best_trial.number


def test_pruning_stops_bad_trials_in_process(stores):
    spec = bowl_spec(trials=14, workers=1, sampler={"name": "random"},
                     pruner={"name": "median", "n_startup_trials": 3, "n_warmup_steps": 2},
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 6})
    summary = run(spec, stores, **IN_PROCESS)
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert summary.n_pruned == len(pruned) >= 1
    for t in pruned:
        epoch = t.user_attrs["sweeplab.pruned_at_epoch"]
        assert 2 <= epoch < 6 and max(t.intermediate_values) == epoch


def test_resume_continues_in_process_without_repeating(stores):
    first = run(bowl_spec(trials=3, workers=1), stores, **IN_PROCESS)
    second = run(bowl_spec(trials=6, workers=1), stores, **IN_PROCESS)
    assert first.n_trials == 3 and second.n_trials == 6
    assert second.mlflow_parent_run_id == first.mlflow_parent_run_id
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 6


def test_stopping_interrupts_trials_in_flight_and_resume_retries_them_for_free(stores):
    """`stop` (what a bench sets on Ctrl-C) ends the loop like Ctrl-C: trials in flight are
    INTERRUPTED, retried on resume without spending max_retries (here 0)."""
    spec = bowl_spec(trials=4, workers=2, max_retries=0, sampler={"name": "random"},
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:sleepy", "epochs": 20,
                                "options": {"seconds": 2.0}},
                     space={"x": {"type": "float", "low": 0.0, "high": 1.0}})
    stop = threading.Event()

    def stop_once_both_run() -> None:  # not on a timer: a slow start-up must not stop an empty loop
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                trials = optuna.load_study(study_name="bowl", storage=stores["storage"]).trials
                if sum(t.state == optuna.trial.TrialState.RUNNING for t in trials) == 2:
                    break
            except KeyError:  # the study is not created yet
                pass
            time.sleep(0.05)
        stop.set()

    threading.Thread(target=stop_once_both_run, daemon=True).start()
    options = RunOptions(storage_url=stores["storage"], tracking_uri=stores["tracking"], progress=False,
                         executor="in-process", stop=stop, resume_command="sweeplab run again")
    with pytest.raises(StudyInterrupted, match="Resume with: sweeplab run again"):
        run_study(spec, options)
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    interrupted = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(interrupted) == 2 and all("stopped" in t.user_attrs["sweeplab.fail_reason"] for t in interrupted)
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)

    summary = run(spec, stores, **IN_PROCESS)
    assert summary.n_trials == 4 and summary.n_complete == 4 and summary.n_failed == 0
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    retries = study.user_attrs["sweeplab.retries"]
    for t in interrupted:
        retry = study.trials[retries[str(t.number)]]
        assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == t.params


def test_an_unknown_executor_is_refused(stores):
    with pytest.raises(SweeplabError, match="executor must be one of"):
        run(bowl_spec(), stores, executor="threads")


def _faulty_spec(mode: str, trials: int = 8):
    return bowl_spec(trials=trials, workers=1, sampler={"name": "random"},
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:faulty", "epochs": 1},
                     space={"mode": {"type": "categorical", "choices": [mode]}})


def test_a_study_whose_first_trials_fail_alike_stops_with_that_error(stores, capsys):
    from sweeplab.search.loop import TrialsKeepFailing

    with pytest.raises(TrialsKeepFailing, match=r"first 3 trials all failed with the same error.*boom") as caught:
        run(_faulty_spec("raise"), stores, **IN_PROCESS)
    assert caught.value.exit_code == 1 and "--fail-fast 0" in str(caught.value)
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 3  # nothing more was started
    err = capsys.readouterr().err
    for number in range(3):  # each failure said once, as it happened
        assert err.count(f"trial {number} failed: RuntimeError: boom") == 1


def test_fail_fast_spares_studies_that_worked_or_fail_in_different_ways(stores):
    summary = run(_faulty_spec("raise", trials=4), stores, fail_fast=0, **IN_PROCESS)  # turned off
    assert summary.n_failed == 4
    assert [(g.count, g.reason.split(":")[0]) for g in summary.failures] == [(4, "RuntimeError")]


def test_fail_fast_counts_only_a_study_that_never_worked(stores):
    """Trial 0 completes, then every trial fails alike: not a broken objective from the start,
    so the study runs to its target (the failures are listed, not fatal)."""
    spec = bowl_spec(trials=5, workers=1, sampler={"name": "random"},
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:works_once", "epochs": 1},
                     space={"x": {"type": "float", "low": 0.0, "high": 1.0}})
    summary = run(spec, stores, **IN_PROCESS)
    assert summary.n_complete == 1 and summary.n_failed == 4
    assert [(g.count, g.trials) for g in summary.failures] == [(4, [1, 2, 3, 4])]

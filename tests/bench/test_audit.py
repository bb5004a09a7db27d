"""The pruning audit: pruned trials re-trained to the end on Ray, the result stored on MLflow."""

from __future__ import annotations

import argparse
import json

import optuna
import pytest
from mlflow.tracking import MlflowClient
from sweeplab_testkit import bowl_spec, run

from sweeplab.bench.audit import AUDIT_ARTIFACT, audit_study, load_audit
from sweeplab.bench.commands import audit_command
from sweeplab.core.errors import UsageError

optuna.logging.set_verbosity(optuna.logging.WARNING)

EPOCHS = 8


def pruned_study(stores):
    spec = bowl_spec(trials=14, workers=2, sampler={"name": "random"},
                     pruner={"name": "median", "n_startup_trials": 3, "n_warmup_steps": 1},
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": EPOCHS})
    summary = run(spec, stores)
    assert summary.n_pruned >= 3, "the median pruner should stop several of 14 bowl trials"
    return summary


def test_audit_retrains_a_sample_of_pruned_trials_to_full_epochs(ray_local, stores, monkeypatch):
    monkeypatch.chdir(stores["dir"])
    summary = pruned_study(stores)
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    pruned = {t.number: t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED}
    complete = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]

    result = audit_study("bowl", storage_url=stores["storage"], sample=2, seed=1)
    assert result.n_pruned == len(pruned) and result.n_audited == 2 and result.n_retrain_failed == 0
    assert result.best_value == pytest.approx(max(complete))
    assert len({r.number for r in result.trials}) == 2
    for r in result.trials:
        trial = pruned[r.number]
        assert r.state == "COMPLETE" and r.epochs_trained == EPOCHS  # no pruning: every epoch
        assert r.pruned_at_epoch == trial.user_attrs["sweeplab.pruned_at_epoch"] < EPOCHS
        assert r.reproduced is True  # same params and seed: the stored curve is retraced
        assert r.beats_best == (r.final_value > result.best_value)
        assert r.beats_median == (r.final_value > result.median_value)
    assert result.would_beat_best == sum(r.beats_best for r in result.trials)
    assert 0 <= result.would_beat_best <= result.would_beat_median <= 2

    # stored as audit.json on the study's parent run, nothing written to the study
    assert result.artifact == AUDIT_ARTIFACT
    stored = load_audit(stores["tracking"], summary.mlflow_parent_run_id)
    assert stored is not None and stored.trials == result.trials and stored.to_json() == json.loads(
        json.dumps(result.to_json()))
    after = optuna.load_study(study_name="bowl", storage=stores["storage"])
    assert [(t.number, t.state, t.user_attrs) for t in after.trials] == [
        (t.number, t.state, t.user_attrs) for t in study.trials]
    tags = MlflowClient(stores["tracking"]).get_run(summary.mlflow_parent_run_id).data.tags
    assert tags["sweeplab.audit"].endswith("audited pruned trials beat the best")

    # the CLI command: a sample larger than the pruned trials audits them all
    printed = []
    args = argparse.Namespace(study="bowl", sample=50, seed=0, storage=stores["storage"], tracking_uri=None,
                              address=None, json=True)
    assert audit_command(args, lambda a, payload, text: printed.append((payload, text))) == 0
    payload, text = printed[0]
    assert payload["n_audited"] == len(pruned) and payload["sample"] == 50
    assert json.loads(json.dumps(payload))["trials"][0]["number"] in pruned  # plain JSON for --json
    assert "would beat the best" in text and "re-trained" in text


def test_audit_refuses_bad_samples_and_handles_a_study_without_pruning(ray_local, stores, monkeypatch):
    monkeypatch.chdir(stores["dir"])
    run(bowl_spec(trials=2), stores)
    with pytest.raises(UsageError, match="positive number"):
        audit_study("bowl", storage_url=stores["storage"], sample=0)
    result = audit_study("bowl", storage_url=stores["storage"], sample=3)
    assert result.n_pruned == 0 and result.n_audited == 0 and result.would_beat_best == 0
    assert "nothing to audit" in result.note

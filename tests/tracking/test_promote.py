"""`sweeplab promote`: re-train the top configs over seeds, register models:/NAME@champion."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from sweeplab_models_kit import artifact_paths, iris_csv, mlp_spec, raw_test_rows, tracking_uri
from sweeplab_testkit import run

from sweeplab.core.errors import UsageError
from sweeplab.study.promote import promote_study, promotion_seeds, validate_model_name


def _champion_accuracy(stores, name, spec):
    """Accuracy of models:/NAME@champion on the raw test rows, and the registry run's record."""
    import mlflow.pyfunc

    client = MlflowClient(stores["tracking"], registry_uri=stores["tracking"])
    version = client.get_model_version_by_alias(name, "champion")
    X_raw, y_raw = raw_test_rows(spec)
    with tracking_uri(stores["tracking"]):
        model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    predicted = np.asarray(model.predict(X_raw))
    recorded = client.get_run(version.run_id).data.metrics["final_test_accuracy"]
    return version, float(np.mean(predicted == y_raw.to_numpy())), recorded


def test_promote_registers_a_champion_that_predicts_raw_rows(ray_local, stores, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = mlp_spec(iris_csv(tmp_path), "torch", study="flowers-promote")
    summary = run(spec, stores)
    assert summary.n_complete == 4

    # in-process, on the session's Ray (the CLI runs the same function; see below)
    result = promote_study(spec.study, "flowers", storage_url=stores["storage"], tracking_uri=stores["tracking"],
                           top_k=2, seeds=2)
    assert result.model_uri == "models:/flowers@champion" and result.version == 1

    study = optuna.load_study(study_name=spec.study, storage=stores["storage"])
    top = sorted(study.trials, key=lambda t: (-t.value, t.number))[:2]
    assert [c.trial for c in result.candidates] == [t.number for t in top]
    for c, t in zip(result.candidates, top, strict=True):
        values = [r.value for r in c.runs]
        assert len(values) == 2 and c.n_ok == 2
        assert values[0] == t.value  # seed 0 is the trial's own seed: it reproduces the trial
        assert c.mean == pytest.approx(np.mean(values))
        assert c.std == pytest.approx(np.std(values, ddof=1))
    assert result.winner.mean == max(c.mean for c in result.candidates)

    version, accuracy, recorded = _champion_accuracy(stores, "flowers", spec)
    assert int(version.version) == 1
    assert accuracy == pytest.approx(recorded, abs=1e-6)

    client = MlflowClient(stores["tracking"])
    promo = client.get_run(result.run_id)
    assert promo.data.tags["sweeplab.role"] == "promotion"
    assert promo.data.tags["mlflow.parentRunId"] == summary.mlflow_parent_run_id
    assert promo.data.tags["sweeplab.winner_trial"] == str(result.winner.trial)
    for c in result.candidates:
        assert promo.data.metrics[f"trial_{c.trial}.mean_val_accuracy"] == pytest.approx(c.mean)
        assert promo.data.metrics[f"trial_{c.trial}.std_val_accuracy"] == pytest.approx(c.std)
    assert {"promotion.json", "model/MLmodel", "confusion_matrix.png", "evaluation.json"} <= artifact_paths(
        client, result.run_id)

    # the command, as a user runs it (joining the session's Ray instead of starting one): a new
    # version, the alias moves, stdout holds exactly one JSON object
    address = ray_local.get_runtime_context().gcs_address
    out = _cli("promote", spec.study, "--model-name", "flowers", "--top-k", "1", "--seeds", "1", "--json",
               "--storage", stores["storage"], "--tracking-uri", stores["tracking"], "--address", address,
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    payload = json.loads(out.stdout)
    assert payload["version"] == 2 and payload["winner"]["trial"] == top[0].number
    assert set(payload) == {"study", "model_name", "version", "alias", "model_uri", "run_id", "tracking_uri", "metric",
                            "winner", "winner_seed", "model_metrics", "candidates", "elapsed_s", "refit", "estimate",
                            "baselines"}
    assert set(payload["candidates"][0]) == {"trial", "study_value", "params", "runs", "n_ok", "mean", "std"}
    assert set(payload["candidates"][0]["runs"][0]) == {"seed_index", "seed", "state", "value", "reason"}
    version, accuracy, recorded = _champion_accuracy(stores, "flowers", spec)
    assert int(version.version) == 2
    assert accuracy == pytest.approx(recorded, abs=1e-6)


def _cli(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "sweeplab.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def test_promote_without_completed_trial_or_with_bad_input_fails_clearly(stores, tmp_path):
    spec = mlp_spec(iris_csv(tmp_path), "torch", study="never-done")
    study = optuna.create_study(study_name="never-done", storage=stores["storage"], direction="maximize")
    study.set_user_attr("sweeplab.spec", spec.to_dict())
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    flags = ["--storage", stores["storage"], "--tracking-uri", stores["tracking"]]

    out = _cli("promote", "never-done", "--model-name", "m", *flags, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "'never-done' has no completed trial" in out.stderr and "sweeplab run" in out.stderr

    out = _cli("promote", "no-such-study", "--model-name", "m", *flags, cwd=tmp_path)
    assert out.returncode == 1 and "no study named 'no-such-study'" in out.stderr

    for bad in ("a/b", "../etc", "/abs", "%2e%2e%2f", "a..b", "x%2Fy", "-rf", "C:evil", "a\\b"):
        out = _cli("promote", "never-done", "--model-name", bad, *flags, cwd=tmp_path)
        assert out.returncode == 2, (bad, out.stderr)
        assert "--model-name" in out.stderr, (bad, out.stderr)
        if bad != "-rf":  # argparse reads it as an option: "expected one argument"
            assert repr(bad) in out.stderr, (bad, out.stderr)
    out = _cli("promote", "never-done", "--model-name", "m", "--top-k", "0", *flags, cwd=tmp_path)
    assert out.returncode == 2 and "--top-k" in out.stderr
    out = _cli("promote", "never-done", *flags, cwd=tmp_path)
    assert out.returncode == 2 and "--model-name" in out.stderr
    assert not (tmp_path / "mlruns").exists()  # nothing was logged


def test_model_name_rules():
    for good in ("flowers", "Flowers-v2.1_x", "a"):
        assert validate_model_name(good) == good
    for bad, needle in (("x\0y", "NUL"), ("a/b", "separators"), ("../x", "'..'"), ("%2e%2e%2f", "'%'"),
                        ("/etc/passwd", "absolute"), ("", "non-empty"), ("a" * 300, "at most 256"),
                        ("sp ace", "letters, digits")):
        with pytest.raises(UsageError, match=needle):
            validate_model_name(bad)


def test_promotion_seeds_start_with_the_trial_seed():
    seeds = promotion_seeds(12345, 4)
    assert seeds[0] == 12345 and len(set(seeds)) == 4
    assert promotion_seeds(12345, 4) == seeds

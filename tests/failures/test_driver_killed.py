"""The driver killed with SIGKILL at random moments, then resumed until done: nothing lost."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import optuna
import yaml
from mlflow.tracking import MlflowClient

SPEC = {
    "study": "killme",
    "metric": "score",
    "trials": 8,
    "workers": 2,
    "max_retries": 20,
    "seed": 5,
    "sampler": "random",
    "objective": {"framework": "python", "callable": "sweeplab_test_objectives:sleepy", "epochs": 5,
                  "options": {"seconds": 2.0}},
    "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
}


def _schema_ready(storage: str) -> bool:
    """True once sweeplab has created the Optuna schema (read-only: polling must not create it
    at the same moment as sweeplab does)."""
    import sqlite3

    path = storage.removeprefix("sqlite:///")
    if not os.path.exists(path):
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def _finished(storage: str) -> tuple[int, int]:
    """(finished trials counting toward `trials`, RUNNING trials) as `status` counts them."""
    if not _schema_ready(storage):
        return 0, 0
    try:
        study = optuna.load_study(study_name="killme", storage=storage)
    except KeyError:
        return 0, 0
    from sweeplab.search.summary import summarize

    s = summarize(study)
    return s["n_trials"], s["n_running"]


def test_sigkill_at_random_moments_then_resume_loses_nothing(tmp_path, store_templates):
    shutil.copy(store_templates / "mlflow.db", tmp_path / "mlflow.db")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    storage = f"sqlite:///{tmp_path / 'sweeplab.db'}"
    cmd = [sys.executable, "-m", "sweeplab.cli", "run", str(spec_path), "--json"]
    rng = random.Random(1234)
    progress: list[int] = []
    kills = 0
    done = False
    for _attempt in range(10):
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        if kills < 3:
            # Kill once trials are running (start-up alone would teach nothing), at a random moment.
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None and _finished(storage)[1] == 0:
                time.sleep(0.2)
            time.sleep(rng.uniform(0.0, 3.5))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
        stdout, stderr = proc.communicate(timeout=600)
        progress.append(_finished(storage)[0])
        if proc.returncode == 0:
            summary = json.loads(stdout)
            assert summary["n_trials"] == 8
            done = True
            break
        assert proc.returncode == -signal.SIGKILL, stderr[-3000:]
    assert done and kills == 3, (kills, progress)
    assert progress == sorted(progress), f"progress went backwards: {progress}"

    study = optuna.load_study(study_name="killme", storage=storage)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states and optuna.trial.TrialState.WAITING not in states
    retries = study.user_attrs.get("sweeplab.retries", {})
    finished = [t for t in study.trials if str(t.number) not in retries]
    assert len(finished) == 8
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in finished)
    # every killed attempt failed with the reason, and its retry is linked back to it
    for number, retry in retries.items():
        failed = study.trials[int(number)]
        assert failed.state == optuna.trial.TrialState.FAIL
        assert "lost" in failed.user_attrs["sweeplab.fail_reason"]
        assert study.trials[retry].user_attrs["sweeplab.retry_of"] == int(number)
        assert study.trials[retry].params == failed.params

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("killme")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweeplab.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("sweeplab.role") != "parent"]
    assert len(parents) == 1
    assert all(r.info.status != "RUNNING" for r in runs)
    by_trial: dict[int, list] = {}
    for r in children:
        by_trial.setdefault(int(r.data.tags["sweeplab.trial_number"]), []).append(r)
    assert sorted(by_trial) == [t.number for t in study.trials]  # one child run per Optuna trial ...
    assert all(len(v) == 1 for v in by_trial.values())  # ... and exactly one
    for number, retry in retries.items():
        run = by_trial[int(number)][0]
        assert run.info.status in ("FAILED", "KILLED")
        assert run.data.tags["sweeplab.retried_by"] == str(retry)
    for t in finished:
        assert by_trial[t.number][0].info.status == "FINISHED"


def test_ctrl_c_stops_cleanly_and_prints_the_resume_command(tmp_path, store_templates):
    shutil.copy(store_templates / "mlflow.db", tmp_path / "mlflow.db")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({**SPEC, "study": "ctrlc"}))
    storage = f"sqlite:///{tmp_path / 'sweeplab.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "sweeplab.cli", "run", str(spec_path), "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            study = optuna.load_study(study_name="ctrlc", storage=storage) if _schema_ready(storage) else None
            if study is not None and any(t.state == optuna.trial.TrialState.RUNNING for t in study.trials):
                break
        except KeyError:
            pass
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert f"Resume with: sweeplab run {spec_path} --no-progress" in stderr
    study = optuna.load_study(study_name="ctrlc", storage=storage)
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ctrlc").experiment_id])
    assert runs and all(r.info.status != "RUNNING" for r in runs)

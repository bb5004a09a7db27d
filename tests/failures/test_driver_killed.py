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
    "trials": 4,  # the last start runs every trial to its end (2 at a time, 4 s each): 4 are enough
    "workers": 2,
    "seed": 5,
    "sampler": "random",
    "pruner": "none",  # every trial runs to its end (a pruned one would not be COMPLETE)
    "objective": {"framework": "python", "callable": "sweeplab_test_objectives:sleepy", "epochs": 5,
                  "options": {"seconds": 4.0}},
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


def _load(storage: str) -> optuna.Study | None:
    if not _schema_ready(storage):
        return None
    try:
        return optuna.load_study(study_name="killme", storage=storage)
    except KeyError:
        return None


def _finished(storage: str) -> tuple[int, int]:
    """(finished trials counting toward `trials`, RUNNING trials) as `status` counts them."""
    study = _load(storage)
    if study is None:
        return 0, 0
    from sweeplab.search.summary import summarize

    s = summarize(study)
    return s.n_trials, s.n_running


def _lineage_zero_running(storage: str, struck: set[int]) -> int | None:
    """The number of an attempt of trial 0 (the first trial or one of its retries) that is
    RUNNING and was not struck before (a struck attempt stays RUNNING until it is reaped)."""
    study = _load(storage)
    if study is None:
        return None
    return next((t.number for t in study.get_trials(deepcopy=False)
                 if t.state == optuna.trial.TrialState.RUNNING and t.number not in struck
                 and t.user_attrs.get("sweeplab.lineage_root", t.number) == 0), None)


def test_sigkill_at_random_moments_then_resume_loses_nothing(tmp_path, store_templates):
    """Six SIGKILLs, the first three while the same trial (trial 0, then its retries) runs.

    max_retries keeps its default (2): driver deaths are not the trial's fault, so the
    three losses of trial 0 spend none of it and every one of the 4 trials completes.
    """
    shutil.copy(store_templates / "mlflow.db", tmp_path / "mlflow.db")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    storage = f"sqlite:///{tmp_path / 'sweeplab.db'}"
    cmd = [sys.executable, "-m", "sweeplab.cli", "run", str(spec_path), "--json"]
    rng = random.Random(1234)
    progress: list[int] = []
    kills = 0
    struck: set[int] = set()  # attempts of trial 0 running when their driver was killed
    done = False
    for _attempt in range(12):
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        if kills < 6:
            # Kill once trials are running (start-up alone would teach nothing), at a random moment;
            # the first three kills wait for an attempt of trial 0 and strike while it runs.
            def ready() -> bool:
                if len(struck) < 3:
                    return _lineage_zero_running(storage, struck) is not None
                return _finished(storage)[1] > 0

            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None and not ready():
                time.sleep(0.1)
            time.sleep(rng.uniform(0.0, 2.0))
            if proc.poll() is None:
                attempt = _lineage_zero_running(storage, struck)
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
                if attempt is not None:
                    struck.add(attempt)
        stdout, stderr = proc.communicate(timeout=600)
        progress.append(_finished(storage)[0])
        if proc.returncode == 0:
            summary = json.loads(stdout)
            assert summary["n_trials"] == 4
            done = True
            break
        assert proc.returncode == -signal.SIGKILL, stderr[-3000:]
    assert done and kills == 6 and len(struck) >= 3, (kills, struck, progress)
    assert progress == sorted(progress), f"progress went backwards: {progress}"

    study = optuna.load_study(study_name="killme", storage=storage)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states and optuna.trial.TrialState.WAITING not in states
    retries = study.user_attrs.get("sweeplab.retries", {})
    finished = [t for t in study.trials if str(t.number) not in retries]
    assert len(finished) == 4
    # none failed for infrastructure reasons: every trial the user asked for completed
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in finished), \
        [(t.number, t.state.name, t.user_attrs.get("sweeplab.fail_reason")) for t in finished]
    lineage_zero = [t for t in study.trials if t.user_attrs.get("sweeplab.lineage_root", t.number) == 0]
    assert len(lineage_zero) >= 4  # trial 0 and at least three retries after its driver died
    assert lineage_zero[-1].state == optuna.trial.TrialState.COMPLETE
    assert lineage_zero[-1].user_attrs["sweeplab.interruptions"] >= 3
    assert lineage_zero[-1].user_attrs["sweeplab.own_failures"] == 0  # max_retries untouched
    # every killed attempt failed with the reason, and its retry is linked back to it
    for number, retry in retries.items():
        failed = study.trials[int(number)]
        assert failed.state == optuna.trial.TrialState.FAIL
        assert "lost" in failed.user_attrs["sweeplab.fail_reason"]
        assert study.trials[retry].user_attrs["sweeplab.retry_of"] == int(number)
    # every attempt of a lineage ran its params: an attempt whose driver died between claiming it
    # and writing its params has none stored, and the retry after it still repeats the lineage's
    lineages: dict[int, list] = {}
    for t in study.trials:
        lineages.setdefault(t.user_attrs.get("sweeplab.lineage_root", t.number), []).append(t)
    for root, attempts in lineages.items():
        distinct = {json.dumps(t.params, sort_keys=True) for t in attempts if t.params}
        assert len(distinct) == 1 and attempts[-1].params, (root, [(t.number, t.params) for t in attempts])

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

"""Trials in worker processes of this machine, without Ray (sweeplab.search.processes):
which runs get them, and that they keep Ray's contract (pruning through the driver's
coordinator, a killed study resumed, nothing left running)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from sweeplab_testkit import bowl_spec, child_runs, run

from sweeplab.core.errors import ResourceError, SpecError, UsageError
from sweeplab.search.processes import check_fits_here, death_reason, parallel_trials
from sweeplab.study.session import RunOptions, StudyInterrupted, pick_executor

POOL_WORKER = "sweeplab.search.pool_worker"


def _pool_workers(cwd: Path | None = None) -> dict[int, int]:
    """This machine's pool worker processes (those working in ``cwd``, when given): pid -> parent pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
            if cwd is not None and os.readlink(entry / "cwd") != str(cwd):
                continue
        except OSError:
            continue
        if POOL_WORKER.encode() in cmdline:
            found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def test_auto_runs_local_cpu_studies_in_processes_and_anything_asking_for_ray_on_ray(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    options = RunOptions(storage_url="sqlite:///x.db", tracking_uri="sqlite:///m.db")
    spec = bowl_spec()
    ray_here = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    assert pick_executor(spec, options) == ("ray" if ray_here else "processes")
    if ray_here:
        return  # the rest needs a process without Ray (another test of this session started it)
    assert pick_executor(spec, RunOptions(storage_url="s", tracking_uri="t", address="127.0.0.1:6379")) == "ray"
    assert pick_executor(spec, RunOptions(storage_url="s", tracking_uri="t", address="local")) == "ray"
    assert pick_executor(spec, options.without("local_processes")) == "ray"  # a benchmark's "before"
    assert pick_executor(spec, options.without_speedups()) == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert pick_executor(spec, options) == "ray"
    monkeypatch.delenv("RAY_ADDRESS")
    assert pick_executor(bowl_spec(resources={"cpu": 1, "gpu": 1}), options) == "ray"
    assert pick_executor(bowl_spec(resources={"cpu": 1, "custom": {"big_memory": 1}}), options) == "ray"
    assert pick_executor(spec, RunOptions(storage_url="s", tracking_uri="t", gate=object())) == "ray"
    assert pick_executor(spec, RunOptions(storage_url="s", tracking_uri="t", executor="ray")) == "ray"
    with pytest.raises(UsageError, match=r"executor must be one of \['auto', 'ray', 'processes', 'in-process'\]"):
        pick_executor(spec, RunOptions(storage_url="s", tracking_uri="t", executor="threads"))


def test_parallel_trials_follow_workers_and_the_cpus_a_trial_takes():
    assert parallel_trials(2, 1.0, cpus=2) == 2
    assert parallel_trials(4, 1.0, cpus=2) == 2  # a local Ray would also run 2 at a time
    assert parallel_trials(4, 0.5, cpus=2) == 4
    assert parallel_trials(2, 4.0, cpus=2) == 1
    assert death_reason(-signal.SIGKILL) == "killed by SIGKILL" and death_reason(3) == "exit code 3"
    check_fits_here(2.0, cpus=2)
    with pytest.raises(ResourceError, match=r"resources.cpu: a trial asks for 3 CPUs, but this machine has 2\. "
                                            r"Lower resources.cpu to at most 2"):
        check_fits_here(3.0, "spec.yaml", cpus=2)


def test_a_cli_study_runs_without_ray_prunes_through_the_driver_and_keeps_stdout_for_json(tmp_path):
    """`sweeplab run` with no address: no Ray is started, trials reach the driver's coordinator
    (pruned ones too), what a trial prints goes to stderr, and no worker outlives the run."""
    spec = bowl_spec(study="local", trials=10, sampler={"name": "random"},
                     pruner={"name": "median", "n_startup_trials": 3, "n_warmup_steps": 1},
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:chatty", "epochs": 6})
    (tmp_path / "spec.yaml").write_text(json.dumps(spec.to_dict()))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE")}
    proc = subprocess.run([sys.executable, "-m", "sweeplab.cli", "run", "spec.yaml", "--json", "--no-progress"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # stdout holds the JSON alone
    assert "chatty trial 0 says hello" in proc.stderr
    assert "ray_init" not in summary["startup_s"]
    assert summary["n_trials"] == 10 and summary["n_pruned"] >= 1
    study = optuna.load_study(study_name="local", storage=f"sqlite:///{tmp_path / 'sweeplab.db'}")
    for t in study.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            assert sorted(t.intermediate_values) == list(range(1, t.user_attrs["sweeplab.pruned_at_epoch"] + 1))
    runs = child_runs({"tracking": f"sqlite:///{tmp_path / 'mlflow.db'}"}, summary["mlflow_parent_run_id"])
    assert len(runs) == 10 and sum(r.info.status == "KILLED" for r in runs) == summary["n_pruned"]
    assert not _pool_workers(tmp_path)


def test_what_a_trial_prints_shows_where_the_callers_prints_do(stores, capsys):
    """From Python (a notebook), a trial's print lands in the caller's sys.stdout, as Ray's
    log_to_driver does, not only in the process's file descriptor."""
    spec = bowl_spec(trials=2, objective={"framework": "python", "callable": "sweeplab_test_objectives:chatty",
                                          "epochs": 1})
    run(spec, stores, executor="processes")
    out = capsys.readouterr().out
    assert "chatty trial 0 says hello" in out and "chatty trial 1 says hello" in out


def test_a_bad_spec_leaves_no_worker_and_no_study(stores):
    """The workers start before the spec's callable is checked: a typo stops them at once, and
    creates no study."""
    spec = bowl_spec(objective={"framework": "python", "callable": "sweeplab_test_objectives:bowel", "epochs": 1})
    here = Path.cwd()
    before = set(_pool_workers(here))
    started = time.time()
    with pytest.raises(SpecError, match="bowel"):
        run(spec, stores, executor="processes")
    assert time.time() - started < 10
    assert not set(_pool_workers(here)) - before
    assert optuna.study.get_all_study_names(stores["storage"]) == []


def test_a_stopped_study_kills_its_trials_and_resumes_to_the_end(stores):
    """Stopped mid-study (Ctrl-C's path): the trials in flight are killed and told INTERRUPTED
    (retried without spending max_retries), no worker is left, and the next run finishes."""
    spec = bowl_spec(trials=10, workers=2, max_retries=0,
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:sleepy", "epochs": 4,
                                "options": {"seconds": 1.0}})
    stop = threading.Event()
    told: list[int] = []

    def stop_mid_trial(record) -> None:  # 0.3 s into the trials that follow the second one told
        told.append(record.number)
        if len(told) == 2:
            threading.Timer(0.3, stop.set).start()

    here = Path.cwd()
    before = set(_pool_workers(here))
    with pytest.raises(StudyInterrupted, match="nothing is lost"):
        run(spec, stores, executor="processes", stop=stop, on_record=stop_mid_trial)
    assert not set(_pool_workers(here)) - before
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    interrupted = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert interrupted and all("interrupted" in t.user_attrs["sweeplab.fail_reason"] or
                               "stopped" in t.user_attrs["sweeplab.fail_reason"] for t in interrupted)
    ahead = [t for t in interrupted if "asked ahead, not started yet" in t.user_attrs["sweeplab.fail_reason"]]
    assert len(ahead) == 1  # both workers were busy: the next trial was asked, and told with the others
    summary = run(spec, stores, executor="processes")
    assert summary.n_complete == 10
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    retry = study.trials[study.user_attrs["sweeplab.retries"][str(ahead[0].number)]]
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == ahead[0].params
    runs = child_runs(stores, summary.mlflow_parent_run_id)
    numbers = sorted(int(r.data.tags["sweeplab.trial_number"]) for r in runs)
    assert numbers == [t.number for t in study.trials]  # the trial asked ahead has its run too


def test_a_ctrl_c_while_a_trial_is_told_leaves_no_trial_running(stores):
    """Ctrl-C lands while the driver tells a trial (here: raised from the record it passes on),
    with the other worker's trial ended at the same time or still running, and one asked
    ahead: every one of them is told (the ended one as it ended), nothing stays RUNNING."""
    spec = bowl_spec(trials=10, workers=2, objective={"framework": "python",
                                                      "callable": "sweeplab_test_objectives:sleepy",
                                                      "epochs": 2, "options": {"seconds": 0.5}})

    def ctrl_c(record) -> None:
        if record.number == 2:
            raise KeyboardInterrupt

    with pytest.raises(StudyInterrupted, match="nothing is lost"):
        run(spec, stores, executor="processes", on_record=ctrl_c)
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    assert optuna.trial.TrialState.RUNNING not in [t.state for t in study.trials]
    assert study.trials[2].state == optuna.trial.TrialState.COMPLETE
    summary = run(spec, stores, executor="processes")
    assert summary.n_complete == 10


def _most_asked_and_not_told(trials: list) -> int:
    """The most trials of the study that were asked (RUNNING) and not told when another was asked."""
    return max(sum(1 for other in trials if other is not t and other.datetime_start <= t.datetime_start
                   < other.datetime_complete) for t in trials)


def test_the_driver_asks_the_next_trial_while_its_workers_run_and_never_more_than_one_ahead(stores):
    """Trials in worker processes: while both workers run, the driver asks one trial ahead, so a
    worker whose trial ends starts the next at once (its tell and the next ask overlap the
    workers). On this process's threads, no trial is asked before a worker is free."""
    sleepy = {"framework": "python", "callable": "sweeplab_test_objectives:sleepy", "epochs": 2,
              "options": {"seconds": 0.4}}
    spec = bowl_spec(trials=8, workers=2, objective=sleepy)
    run(spec, stores, executor="processes")
    trials = optuna.load_study(study_name="bowl", storage=stores["storage"]).trials
    assert len(trials) == 8 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert _most_asked_and_not_told(trials) == 2  # the two running, and never a second one ahead

    run(bowl_spec(study="threads", trials=6, workers=2), stores, executor="in-process")
    trials = optuna.load_study(study_name="threads", storage=stores["storage"]).trials
    assert _most_asked_and_not_told(trials) == 1


def test_workers_exit_when_their_driver_is_killed(tmp_path):
    """A driver killed with SIGKILL cannot stop its workers: busy in their trials, they notice
    their parent is gone and exit by themselves."""
    spec = bowl_spec(study="orphans", trials=4, objective={
        "framework": "python", "callable": "sweeplab_test_objectives:napping", "epochs": 1,
        "options": {"seconds": 120.0, "marker_dir": str(tmp_path)}})
    (tmp_path / "spec.yaml").write_text(json.dumps(spec.to_dict()))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE")}
    driver = subprocess.Popen([sys.executable, "-m", "sweeplab.cli", "run", "spec.yaml", "--no-progress"],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while len(list(tmp_path.glob("started-*"))) < 2:  # both workers are inside a trial
            assert time.time() < deadline and driver.poll() is None, "the trials never started"
            time.sleep(0.2)
        assert len(_pool_workers(tmp_path)) == 2
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    deadline = time.time() + 10
    while _pool_workers(tmp_path):
        assert time.time() < deadline, f"workers {_pool_workers(tmp_path)} outlived their driver"
        time.sleep(0.2)


WORKER_TRIAL = """
import pickle, sys
from sweeplab.core.records import TrialTicket
from sweeplab.objectives.trial import NullReporter
from sweeplab.search.worker import execute_trial
dataset, settings, space = pickle.loads(sys.stdin.buffer.read())
params = {"n_layers": 1, "units": 8, "learning_rate": 0.01, "optimizer": "adam", "batch_size": 32}
outcome = execute_trial(TrialTicket(0, params, space.resolve(params), 1, "torch", prunable=False), dataset,
                        settings, ["val_accuracy"], None, 1.0, 0.0, NullReporter())
print(outcome.state, sorted(outcome.artifacts), sorted(m for m in ("sklearn", "scipy", "pandas") if m in sys.modules))
"""


def test_a_worker_runs_an_mlp_trial_with_its_evaluation_without_importing_scikit_learn() -> None:
    """What a study's dataset and a trial's evaluation need on a worker is numpy: scikit-learn,
    SciPy and pandas (about 2 CPU-seconds of imports in every worker process) stay in the driver."""
    import pickle

    from sweeplab.spec import parse_spec
    from sweeplab.study.session import load_study_dataset

    spec = parse_spec({"study": "x", "metric": "val_accuracy", "direction": "maximize", "seed": 3,
                       "objective": {"framework": "torch", "epochs": 2, "dataset": {"name": "iris"}},
                       "space": {"n_layers": {"type": "int", "low": 1, "high": 2}, "units": 8,
                                 "learning_rate": 0.01, "optimizer": "adam", "batch_size": 32}})
    blob = pickle.dumps((load_study_dataset(spec), spec.objective, spec.space))
    out = subprocess.run([sys.executable, "-c", WORKER_TRIAL], input=blob, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    assert out.stdout.decode().split("\n")[-2] == "COMPLETE ['evaluation.json'] []"


def _cli_run(tmp_path: Path, tracking_uri: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE")}
    return subprocess.run([sys.executable, "-m", "sweeplab.cli", "run", "spec.yaml", "--json", "--no-progress",
                           "--tracking-uri", tracking_uri], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)


def _run_links(study: optuna.Study) -> dict[int, str]:
    """Each trial's MLflow run as the study records it: a trial attr, or (a trial that
    finished before its run existed) the study's attr."""
    from sweeplab.core.keys import ATTR_RUN_ID, STUDY_ATTR_RUN_IDS

    links = {int(k): v for k, v in study.user_attrs.get(STUDY_ATTR_RUN_IDS, {}).items()}
    links.update({t.number: t.user_attrs[ATTR_RUN_ID] for t in study.trials if ATTR_RUN_ID in t.user_attrs})
    return links


def test_a_new_studys_first_trials_run_while_mlflow_opens_and_each_still_gets_one_linked_run(tmp_path):
    """Importing MLflow and opening its store is the largest part of a cold start: for a new
    study it happens while the first trials run. The trials start before the parent run
    exists, yet every trial gets exactly one child run, linked from the study; a resumed
    study (something to repair) opens MLflow first, as before."""
    spec = bowl_spec(study="early", trials=12, sampler={"name": "random"},
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 3})
    (tmp_path / "spec.yaml").write_text(json.dumps(spec.to_dict()))
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _cli_run(tmp_path, tracking)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert "mlflow_open" not in summary["startup_s"] and "dataset_storage" in summary["startup_s"]
    study = optuna.load_study(study_name="early", storage=f"sqlite:///{tmp_path / 'sweeplab.db'}")
    from mlflow.tracking import MlflowClient

    parent = MlflowClient(tracking).get_run(summary["mlflow_parent_run_id"])
    first_start_ms = min(t.datetime_start for t in study.trials).timestamp() * 1000
    assert first_start_ms < parent.info.start_time  # the first trial started before MLflow was open
    runs = child_runs({"tracking": tracking}, summary["mlflow_parent_run_id"])
    by_trial = {int(r.data.tags["sweeplab.trial_number"]): r for r in runs}
    assert len(runs) == len(by_trial) == 12 and {r.info.status for r in runs} == {"FINISHED"}
    assert _run_links(study) == {n: r.info.run_id for n, r in by_trial.items()}

    (tmp_path / "spec.yaml").write_text(json.dumps(dict(spec.to_dict(), trials=14)))
    proc = _cli_run(tmp_path, tracking)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mlflow_open" in json.loads(proc.stdout)["startup_s"]  # a resumed study: MLflow first
    assert len(child_runs({"tracking": tracking}, summary["mlflow_parent_run_id"])) == 14


def test_an_mlflow_store_that_fails_to_open_stops_the_study_and_keeps_its_trials_for_the_resume(tmp_path):
    """The store fails only once trials run (a SQLite file at a schema MLflow does not know):
    the run exits 1 naming the store and the way on, nothing is left RUNNING, the finished
    trials stay; resumed with a store that works, each trial gets its one run (the repair)."""
    spec = bowl_spec(study="broken-store", trials=200, sampler={"name": "random"},
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 3})
    (tmp_path / "spec.yaml").write_text(json.dumps(spec.to_dict()))
    bad = tmp_path / "unknown-schema.db"
    with sqlite3.connect(bad) as db:
        db.execute("create table alembic_version (version_num varchar(32) not null primary key)")
        db.execute("insert into alembic_version values ('0000notmlflow')")
        db.execute("create table experiments (experiment_id integer primary key)")
    proc = _cli_run(tmp_path, f"sqlite:///{bad}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"cannot use the MLflow tracking store sqlite:///{bad}" in proc.stderr
    assert "The trials that ran meanwhile are kept" in proc.stderr and "run the same command again" in proc.stderr
    study = optuna.load_study(study_name="broken-store", storage=f"sqlite:///{tmp_path / 'sweeplab.db'}")
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states and optuna.trial.TrialState.COMPLETE in states
    kept = {t.number: t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert not _pool_workers(tmp_path)

    retries = len(study.user_attrs.get("sweeplab.retries", {}))  # the trials in flight, and the one asked ahead
    (tmp_path / "spec.yaml").write_text(json.dumps(dict(spec.to_dict(), trials=len(kept) + retries)))
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _cli_run(tmp_path, tracking)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="broken-store", storage=f"sqlite:///{tmp_path / 'sweeplab.db'}")
    assert {t.number: t.value for t in study.trials if t.number in kept} == kept  # no finished trial changed
    runs = child_runs({"tracking": tracking}, json.loads(proc.stdout)["mlflow_parent_run_id"])
    numbers = [int(r.data.tags["sweeplab.trial_number"]) for r in runs]
    assert sorted(numbers) == [t.number for t in study.trials]  # one run per trial, the kept ones repaired
    repaired = {int(r.data.tags["sweeplab.trial_number"]) for r in runs if r.data.tags.get("sweeplab.repaired")}
    assert repaired >= set(kept)


def test_the_driver_switches_threads_quickly_while_it_dispatches_and_restores_the_interval(stores):
    """While trials run in worker processes, the driver's threads (the loop, the server that
    answers the workers, the MLflow writer) switch every millisecond; the interpreter's own
    interval comes back when the run ends (a notebook keeps its setting)."""
    from sweeplab.study.run import DISPATCH_SWITCH_INTERVAL_S

    seen: list[float] = []
    outer = sys.getswitchinterval()
    before = 0.004  # a notebook's own setting, not Python's default nor ours
    sys.setswitchinterval(before)
    try:
        spec = bowl_spec(study="switches", trials=3, objective={"framework": "python",
                                                               "callable": "sweeplab_test_objectives:bowl",
                                                               "epochs": 1})
        run(spec, stores, executor="processes", on_record=lambda record: seen.append(sys.getswitchinterval()))
        assert seen == [DISPATCH_SWITCH_INTERVAL_S] * 3
        assert sys.getswitchinterval() == before
        run(bowl_spec(study="switches-here", trials=2), stores, executor="in-process",
            on_record=lambda record: seen.append(sys.getswitchinterval()))
        assert seen[3:] == [before] * 2  # trials on this process's threads: the interval as it was
    finally:
        sys.setswitchinterval(outer)


def test_overlapping_studies_in_one_process_restore_the_interval_when_the_last_ends():
    """Two studies dispatching at once in one process (a supervisor's threads): the one that
    ends first leaves the quick interval to the other; the last one out restores the first's."""
    from sweeplab.study.run import DISPATCH_SWITCH_INTERVAL_S, _quick_thread_switches

    outer = sys.getswitchinterval()
    sys.setswitchinterval(0.004)
    try:
        first, second = _quick_thread_switches(True), _quick_thread_switches(True)
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)  # ends while the second still dispatches
        assert sys.getswitchinterval() == DISPATCH_SWITCH_INTERVAL_S
        second.__exit__(None, None, None)
        assert sys.getswitchinterval() == 0.004
    finally:
        sys.setswitchinterval(outer)

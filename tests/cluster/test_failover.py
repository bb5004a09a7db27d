"""Service failures mid-study: a Ray node lost, the MLflow tracking server down for a while."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from sweeplab_services import RayCluster, sweeplab_cmd
from sweeplab_testkit import bowl_spec, run

SLEEPY = {"framework": "python", "callable": "sweeplab_test_objectives:sleepy", "epochs": 4,
          "options": {"seconds": 3.0}}


@pytest.fixture
def fresh_cluster(tmp_path):
    """Head (1 CPU) on 127.0.0.10, worker node (2 CPUs) on 127.0.0.11: this test stops the worker."""
    cluster = RayCluster(tmp_path, head_cpus=1)
    try:
        cluster.wait_nodes(1)
        cluster.add_worker(1, cpus=2)
        cluster.wait_nodes(2)
        yield cluster
    finally:
        cluster.stop()


def test_lost_ray_node_reschedules_its_trials_on_the_head(fresh_cluster, postgres, mlflow_server, tmp_path):
    storage = postgres("sweeplab_nodeloss")
    # 4 trials: the 3 first fill the 3 CPUs (1 on the head, 2 on the worker node); a 4th waits, so
    # if the worker node's trials start late (its workers take a while to start on a loaded machine)
    # and the head's ends first, the 4th runs on the head meanwhile and 3 are still seen running.
    # After the loss the head runs what is left one trial at a time: each trial more is 6 s more.
    spec = {"study": "nodeloss", "metric": "score", "trials": 4, "workers": 3, "max_retries": 3, "seed": 2,
            # 6 s trials: the node is killed 1 s after 3 trials are seen reporting, and on a loaded
            # machine seeing them lags; with 3 s trials those on the worker sometimes ended first
            "sampler": "random", "pruner": "none", "objective": {**SLEEPY, "options": {"seconds": 6.0}},
            "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = subprocess.Popen(sweeplab_cmd("run", str(path), "--address", fresh_cluster.address, "--storage", storage,
                                         "--tracking-uri", mlflow_server.uri, "--json"),
                            env=fresh_cluster.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    # wait until trials run, then lose the worker node (2 of the 3 running trials live there)
    deadline = time.time() + 180
    seen = []
    while time.time() < deadline and proc.poll() is None:
        try:
            study = optuna.load_study(study_name="nodeloss", storage=storage)
            # running for real: asked AND reporting epochs (a new node's workers take a while to start)
            seen.append(sum(t.state == optuna.trial.TrialState.RUNNING and bool(t.intermediate_values)
                            for t in study.trials))
            if seen[-1] >= 3:
                break
        except KeyError:
            pass
        time.sleep(0.5)
    assert seen and seen[-1] >= 3, (seen, proc.poll())
    time.sleep(1.0)
    fresh_cluster.kill_node("worker1")
    import datetime

    killed_at = datetime.datetime.now()
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["n_trials"] == 4 and summary["n_complete"] == 4
    study = optuna.load_study(study_name="nodeloss", storage=storage)
    retries = study.user_attrs.get("sweeplab.retries", {})
    assert retries, ("no trial was lost with the node", seen[-3:], killed_at.time().isoformat(),
                     [(t.number, t.user_attrs.get("sweeplab.node", "")[:12], t.datetime_start.time().isoformat(),
                       t.datetime_complete.time().isoformat()) for t in study.trials])
    for number, retry in retries.items():
        lost = study.trials[int(number)]
        assert lost.state == optuna.trial.TrialState.FAIL and "lost" in lost.user_attrs["sweeplab.fail_reason"]
        assert "its Ray node was lost" in lost.user_attrs["sweeplab.fail_reason"]
        # the node's loss is the infrastructure's, not the trial's: it spent no max_retries
        assert study.trials[retry].user_attrs["sweeplab.interruptions"] == 1
        assert study.trials[retry].user_attrs["sweeplab.own_failures"] == 0
    finished = [t for t in study.trials if str(t.number) not in retries]
    assert len(finished) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in finished)


def test_mlflow_outage_delays_logging_but_loses_nothing(ray_local, stores, mlflow_server):
    # 4 s trials: the 6 left when the server stops outlast its stop and the outage even on a loaded machine
    spec = bowl_spec(study="outage", trials=8, workers=2,
                     objective={**SLEEPY, "options": {"seconds": 4.0}})
    result: dict = {}

    def outage() -> None:
        deadline = time.time() + 240
        while time.time() < deadline:  # a couple of trials in
            try:
                study = optuna.load_study(study_name="outage", storage=stores["storage"])
                if sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) >= 2:
                    break
            except KeyError:
                pass
            time.sleep(0.3)
        mlflow_server.stop()
        result["stopped_at"] = time.time()
        # down 3 s, then its restart (~6 s here): trials in flight end, and new ones start, while it
        # is down. MLflow's client retries a refused request after 0, 4, 12, 28 s (urllib3, backoff
        # factor 2): an outage longer than ~12 s (as 6 s + the restart was) holds the backlog until ~28 s
        time.sleep(3.0)
        mlflow_server.start_again()
        mlflow_server.wait()
        result["back_at"] = time.time()

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    summary = run(spec, {**stores, "tracking": mlflow_server.uri})
    thread.join(300)
    assert "back_at" in result
    assert summary.n_trials == 8 and summary.n_complete == 8  # the study never failed for tracking
    assert summary.run.mlflow_delivered is True
    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("outage")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweeplab.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 8  # nothing duplicated
    assert sorted(int(r.data.tags["sweeplab.trial_number"]) for r in children) == list(range(8))
    for r in children:
        assert r.info.status == "FINISHED"
        history = client.get_metric_history(r.info.run_id, "score")
        assert [m.step for m in history] == [1, 2, 3, 4]  # every epoch delivered exactly once
    study = optuna.load_study(study_name="outage", storage=stores["storage"])
    ended_during_outage = [t for t in study.trials
                           if result["stopped_at"] <= t.datetime_complete.timestamp() <= result["back_at"]]
    assert ended_during_outage, "no trial finished while the server was down: the outage tested nothing"

"""Distributed sweeps on a real two-node Ray cluster with PostgreSQL and an MLflow server."""

from __future__ import annotations

import json
import multiprocessing
import subprocess

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from sweeplab_services import free_port, sweeplab_cmd

IRIS_SPEC = {
    "study": "cluster-iris",
    "direction": "maximize",
    "metric": "val_accuracy",
    "trials": 6,
    "workers": 2,
    "seed": 3,
    "sampler": {"name": "random"},
    "objective": {"framework": "torch", "task": "classification", "dataset": {"name": "iris"}, "epochs": 4},
    "space": {"n_layers": {"type": "int", "low": 1, "high": 2}, "units": [8, 16],
              "learning_rate": {"type": "float", "low": 0.005, "high": 0.05, "log": True}},
}


def write_spec(tmp_path, **over):
    spec = {**IRIS_SPEC, **over}
    path = tmp_path / f"{spec['study']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_cli(args, env, cwd, timeout=600):
    return subprocess.run(sweeplab_cmd(*map(str, args)), env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def children_of(client, summary):
    return client.search_runs([summary["mlflow_experiment_id"]],
                              filter_string=f"tags.`mlflow.parentRunId` = '{summary['mlflow_parent_run_id']}'",
                              max_results=1000)


def test_study_runs_on_both_nodes_with_postgres_and_mlflow_server(ray_cluster, postgres, mlflow_server, tmp_path):
    storage = postgres("sweeplab_optuna")
    spec = write_spec(tmp_path)
    out = run_cli(["run", spec, "--address", ray_cluster.address, "--storage", storage,
                   "--tracking-uri", mlflow_server.uri, "--json"], ray_cluster.env, tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads(out.stdout)
    assert summary["n_trials"] == 6
    study = optuna.load_study(study_name="cluster-iris", storage=storage)
    assert len(study.trials) == 6
    client = MlflowClient(mlflow_server.uri)
    runs = client.search_runs([summary["mlflow_experiment_id"]], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweeplab.role") == "parent"]
    children = children_of(client, summary)
    assert len(parents) == 1 and len(children) == 6
    assert sorted(int(r.data.tags["sweeplab.trial_number"]) for r in children) == list(range(6))
    nodes = {r.data.tags["sweeplab.node"].split("/")[0] for r in children}
    assert nodes == {"127.0.0.10", "127.0.0.11"}, nodes
    best_run = client.get_run(summary["best_run_id"])
    assert best_run.data.tags["sweeplab.trial_number"] == str(study.best_trial.number)
    artifacts = {a.path for a in client.list_artifacts(summary["best_run_id"])}
    assert "model" in artifacts, artifacts
    local = client.download_artifacts(summary["best_run_id"], "model", str(tmp_path / "dl"))
    assert any(p.name == "MLmodel" for p in __import__("pathlib").Path(local).iterdir())


def test_two_studies_share_the_cluster_and_database(ray_cluster, postgres, mlflow_server, tmp_path):
    storage = postgres("sweeplab_optuna")
    procs = []
    for name, trials in (("share-a", 5), ("share-b", 4)):
        spec = write_spec(tmp_path, study=name, trials=trials, workers=1)
        procs.append((name, trials, subprocess.Popen(
            sweeplab_cmd("run", str(spec), "--address", ray_cluster.address, "--storage", storage,
                         "--tracking-uri", mlflow_server.uri, "--json"),
            env=ray_cluster.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    client = MlflowClient(mlflow_server.uri)
    for name, trials, proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        summary = json.loads(stdout)
        assert summary["study"] == name and summary["n_trials"] == trials
        study = optuna.load_study(study_name=name, storage=storage)
        assert len(study.trials) == trials
        children = children_of(client, summary)
        assert len(children) == trials
        assert {r.data.tags["sweeplab.study"] for r in children} == {name}
        assert {r.info.experiment_id for r in children} == {summary["mlflow_experiment_id"]}
        for t in study.trials:
            assert client.get_run(t.user_attrs["mlflow_run_id"]).data.tags["sweeplab.study"] == name


def _hammer(args):
    storage, worker, n_trials, epochs = args
    from sweeplab.core.records import COMPLETE, TrialOutcome
    from sweeplab.search.coordinator import StudyCoordinator

    spec = {"study": "hammer", "direction": "maximize", "metric": "score", "trials": 1000, "seed": 1,
            "sampler": {"name": "random"}, "pruner": {"name": "none"},
            "objective": {"framework": "python", "callable": "x:y"},
            "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}}
    coordinator = StudyCoordinator(spec, storage)
    numbers = []
    for i in range(n_trials):
        ticket = coordinator.ask()
        for epoch in range(1, epochs + 1):
            coordinator.report(ticket.number, epoch, {"score": worker + i / 100 + epoch / 1000})
        coordinator.tell(TrialOutcome(ticket.number, COMPLETE, {"score": worker + i / 100}))
        numbers.append(ticket.number)
    return numbers


def test_eight_processes_hammering_one_postgres_study_lose_nothing(postgres):
    storage = postgres("sweeplab_hammer")
    optuna.storages.RDBStorage(storage)  # schema once, as the driver does before workers start
    n_workers, n_trials, epochs = 8, 6, 4
    with multiprocessing.get_context("spawn").Pool(n_workers) as pool:
        results = pool.map(_hammer, [(storage, w, n_trials, epochs) for w in range(n_workers)])
    numbers = sorted(n for r in results for n in r)
    assert numbers == list(range(n_workers * n_trials))  # unique and dense
    study = optuna.load_study(study_name="hammer", storage=storage)
    trials = study.get_trials()
    assert len(trials) == n_workers * n_trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for t in trials:
        assert sorted(t.intermediate_values) == list(range(1, epochs + 1))
        assert t.value == pytest.approx(t.intermediate_values[1] - 1 / 1000)


def test_preflight_refuses_sqlite_with_workers_on_other_machines(ray_cluster, tmp_path):
    spec = write_spec(tmp_path)
    out = run_cli(["run", spec, "--address", ray_cluster.address], ray_cluster.env, tmp_path)
    assert out.returncode == 1
    assert "local file on this machine" in out.stderr and "127.0.0.11" in out.stderr
    assert "--storage postgresql://" in out.stderr
    assert not (tmp_path / "sweeplab.db").exists()


def test_preflight_refuses_unreachable_tracking_server(tmp_path):
    spec = write_spec(tmp_path)
    port = free_port()
    out = run_cli(["run", spec, "--tracking-uri", f"http://127.0.0.1:{port}"], None, tmp_path, timeout=120)
    assert out.returncode == 1
    assert f"MLflow tracking server http://127.0.0.1:{port} does not answer" in out.stderr
    assert not (tmp_path / "sweeplab.db").exists()


def test_preflight_refuses_ray_address_that_does_not_answer(tmp_path):
    spec = write_spec(tmp_path)
    port = free_port()
    out = run_cli(["run", spec, "--address", f"127.0.0.1:{port}"], None, tmp_path, timeout=120)
    assert out.returncode == 1
    assert f"the Ray cluster at '127.0.0.1:{port}' does not answer" in out.stderr
    assert not (tmp_path / "sweeplab.db").exists()


def test_a_driver_without_the_clusters_token_is_told_how_to_give_it(ray_cluster, tmp_path):
    """The cluster has token authentication on; a shell without RAY_AUTH_MODE=token and the token
    is refused by Ray, and sweeplab's message names both (Ray's own says only that it failed to
    connect), exit 1, before any store is created."""
    import os

    spec = write_spec(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ADDRESS")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    # Ray retries a refused connect once a second, 20 times by default, even when the answer is
    # "Unauthenticated"; its operator budget (RAY_gcs_server_port_wait_time_s) makes that 3 here
    env["RAY_gcs_server_port_wait_time_s"] = "3"
    out = run_cli(["run", spec, "--address", ray_cluster.address, "--allow-local-stores", "--no-service"], env,
                  tmp_path, timeout=300)
    assert out.returncode == 1, out.stderr[-2000:]
    assert f"cannot connect to the Ray cluster at '{ray_cluster.address}'" in out.stderr
    assert "RAY_AUTH_MODE=token" in out.stderr and "RAY_AUTH_TOKEN" in out.stderr
    assert not (tmp_path / "sweeplab.db").exists() and not (tmp_path / "mlflow.db").exists()

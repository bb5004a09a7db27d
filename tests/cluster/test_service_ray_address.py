"""A service found through RAY_ADDRESS: `sweeplab up --address CLUSTER` in one folder, `run` /
`status` / `logs` / `cancel` from another folder with no state file, on a real two-node Ray
cluster (token authentication on) with PostgreSQL and an MLflow server.

The first test runs before the module's service is up (pytest creates the module fixture at
its first use): with no supervisor on the cluster, `run` runs as it always did.
"""

from __future__ import annotations

import json
import os

import optuna
import pytest
import yaml
from sweeplab_services import sweeplab_cmd

TRAIN = '''
import time

def train(trial):
    x = trial.params["x"]
    for epoch in range(1, 3):
        time.sleep(0.05)
        trial.reporter.report(epoch, {"score": -(x - 1) ** 2})
    return {"score": -(x - 1) ** 2}
'''


def run_cli(args, env, cwd, timeout=600):
    import subprocess

    return subprocess.run(sweeplab_cmd(*map(str, args)), env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def write_spec(folder, name: str, trials: int):
    (folder / "train_fn.py").write_text(TRAIN)
    spec = {"study": name, "metric": "score", "trials": trials, "workers": 2, "seed": 0,
            "objective": {"framework": "python", "callable": "train_fn.py:train", "epochs": 2},
            "space": {"x": {"type": "float", "low": -3.0, "high": 3.0}},
            "pruner": "none"}  # every trial runs to its end: the tests count COMPLETE trials
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def complete(storage: str, name: str) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    return sum(t.state.name == "COMPLETE" for t in trials)


@pytest.fixture
def client_env(ray_cluster, postgres, mlflow_server):
    """A client's environment: RAY_ADDRESS names the cluster (its token too), the stores are servers."""
    storage = postgres("sweeplab_rayaddr")
    env = {**ray_cluster.env, "RAY_ADDRESS": ray_cluster.address, "SWEEPLAB_STORAGE": storage,
           "MLFLOW_TRACKING_URI": mlflow_server.uri}
    env.pop("SWEEPLAB_SERVICE", None)
    return env


@pytest.fixture(scope="module")
def cluster_service(ray_cluster, tmp_path_factory):
    """`sweeplab up --address CLUSTER` in a folder of its own; `down` at the end."""
    home = tmp_path_factory.mktemp("service-home")
    up = run_cli(["up", "--address", ray_cluster.address, "--no-ui", "--workers", 2, "--frameworks", "", "--json"],
                 ray_cluster.env, home)
    assert up.returncode == 0, up.stderr[-4000:]
    try:
        yield home
    finally:
        down = run_cli(["down"], ray_cluster.env, home)
        assert down.returncode == 0, down.stderr[-4000:]


def test_without_a_supervisor_run_runs_as_before_and_service_commands_say_how_to_start_one(client_env, ray_cluster,
                                                                                            tmp_path):
    spec = write_spec(tmp_path, "rayaddr-plain", trials=2)
    for args in (["status"], ["logs", "nothing"], ["cancel", "nothing"], ["run", spec, "--detach"]):
        out = run_cli(args, client_env, tmp_path)
        assert out.returncode == 2, (args, out.stderr[-4000:])
        assert f"`sweeplab up --address {ray_cluster.address}`" in out.stderr, (args, out.stderr[-4000:])
        if args[0] != "run":
            assert f"nor on the Ray cluster at {ray_cluster.address}" in out.stderr

    out = run_cli(["run", spec, "--json", "--no-progress", "--no-model"], client_env, tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads(out.stdout)
    assert summary["study"] == "rayaddr-plain" and summary["n_complete"] == 2
    assert complete(client_env["SWEEPLAB_STORAGE"], "rayaddr-plain") == 2
    assert not (tmp_path / ".sweeplab").exists()


def test_a_study_submitted_through_ray_address_runs_in_the_clusters_service(cluster_service, client_env, ray_cluster,
                                                                            tmp_path):
    assert not (tmp_path / ".sweeplab").exists()  # another folder: no state file here
    spec = write_spec(tmp_path, "rayaddr-detached", trials=3)
    submitted = run_cli(["run", spec, "--detach", "--json"], client_env, tmp_path)
    assert submitted.returncode == 0, submitted.stderr[-4000:]
    accepted = json.loads(submitted.stdout)
    assert accepted["study"] == "rayaddr-detached" and accepted["service"] == ray_cluster.address

    listed = run_cli(["status", "--json"], client_env, tmp_path)
    assert listed.returncode == 0, listed.stderr[-4000:]
    row = next(s for s in json.loads(listed.stdout)["studies"] if s["study"] == "rayaddr-detached")
    assert row["owner_uid"] == os.getuid() and row["storage"] == client_env["SWEEPLAB_STORAGE"]

    watched = run_cli(["status", "rayaddr-detached", "--watch", "--json"], client_env, tmp_path)
    assert watched.returncode == 0, watched.stderr[-4000:]
    assert json.loads(watched.stdout)["n_complete"] == 3
    assert complete(client_env["SWEEPLAB_STORAGE"], "rayaddr-detached") == 3
    log = run_cli(["logs", "rayaddr-detached"], client_env, tmp_path)
    assert "submitted by" in log.stdout and "finished: 3 trials" in log.stdout
    # the service's own folder holds the study's log: the service ran it, not this client
    assert (cluster_service / ".sweeplab" / "logs" / "rayaddr-detached.log").exists()
    cancelled = run_cli(["cancel", "rayaddr-detached", "--json"], client_env, tmp_path)
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["state"] == "finished"


def test_local_file_stores_are_refused_for_a_study_sent_through_ray_address(cluster_service, client_env, tmp_path):
    env = {k: v for k, v in client_env.items() if k not in ("SWEEPLAB_STORAGE",)}  # the default: sqlite here
    spec = write_spec(tmp_path, "rayaddr-sqlite", trials=1)
    out = run_cli(["run", spec, "--detach"], env, tmp_path)
    assert out.returncode == 2, out.stderr[-4000:]
    assert f"the Optuna storage sqlite:///{tmp_path / 'sweeplab.db'} is a local file" in out.stderr
    assert "--storage postgresql://USER@HOST/DB" in out.stderr and "--no-service" in out.stderr
    listed = json.loads(run_cli(["status", "--json"], client_env, tmp_path).stdout)
    assert "rayaddr-sqlite" not in [s["study"] for s in listed["studies"]]
    assert not (tmp_path / "sweeplab.db").exists()

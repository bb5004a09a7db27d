"""The `sweeplab` command as a user runs it: real subprocesses, real Ray, MLflow, Optuna."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from sweeplab_testkit import session_commands

ROOT = Path(__file__).resolve().parent.parent
SEED_SPEC = ROOT / "examples" / "seed_mlp_torch.yaml"
SWEEPLAB = [sys.executable, "-m", "sweeplab.cli"]


def sweeplab(*args, cwd, timeout=600, env=None):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    full_env.pop("SWEEPLAB_STORAGE", None)
    full_env.pop("RAY_ADDRESS", None)
    return subprocess.run([*SWEEPLAB, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


@pytest.fixture
def workdir(tmp_path, store_templates):
    shutil.copy(store_templates / "mlflow.db", tmp_path / "mlflow.db")
    return tmp_path


def test_help_and_validate_do_not_import_heavy_libraries(tmp_path):
    code = (
        f"import sys; from sweeplab.cli import main; rc = main(['validate', {str(SEED_SPEC)!r}]);"
        "heavy = [m for m in ('torch', 'tensorflow', 'ray', 'mlflow', 'optuna') if m in sys.modules];"
        "print(rc, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip().endswith("0 []"), out.stdout + out.stderr
    helped = subprocess.run([*SWEEPLAB, "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "run" in helped.stdout and "validate" in helped.stdout


def test_validate_reports_every_problem_with_yaml_paths_and_creates_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "study: ../escape\n"
        "metric: val_accuracy\n"
        "trials: ten\n"
        "objective: {framework: torch, task: classification, dataset: {name: iris}}\n"
        "space:\n"
        "  units: {type: int, low: 0, high: 64, log: true}\n"
        "  dropout: {type: float, low: 0.6, high: 0.2}\n"
        "  colour: {type: categorical, choices: []}\n"
    )
    out = sweeplab("validate", bad, cwd=tmp_path)
    assert out.returncode == 2
    for needle in ("study", "../escape", "trials", "ten", "space.units", "log", "space.dropout", "low",
                   "space.colour"):
        assert needle in out.stderr, (needle, out.stderr)
    as_json = sweeplab("validate", bad, "--json", cwd=tmp_path)
    payload = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and payload["valid"] is False and len(payload["problems"]) >= 5
    run = sweeplab("run", bad, cwd=tmp_path)
    assert run.returncode == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no store created


def test_bad_flags_exit_2_with_a_message(tmp_path):
    out = sweeplab("run", SEED_SPEC, "--trials", "0", cwd=tmp_path)
    assert out.returncode == 2 and "--trials" in out.stderr and "positive" in out.stderr
    out = sweeplab("status", "no-such-study", cwd=tmp_path)
    assert out.returncode == 1 and "no study named 'no-such-study'" in out.stderr
    out = sweeplab("status", "../x", cwd=tmp_path)
    assert out.returncode == 2


def test_seed_study_end_to_end(workdir):
    """The seed study: 12 trials on 2 workers; 1 parent + 12 child runs; best matches Optuna."""
    run = sweeplab("run", SEED_SPEC, "--trials", 12, "--workers", 2, "--json", cwd=workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    for key in ("study", "n_trials", "n_complete", "n_pruned", "n_failed", "best_value", "best_params", "best_trial",
                "mlflow_experiment_id", "mlflow_parent_run_id", "best_run_id"):
        assert key in summary
    assert summary["n_trials"] == 12 and summary["n_failed"] == 0

    study = optuna.load_study(study_name="seed-mlp-torch", storage=f"sqlite:///{workdir / 'sweeplab.db'}")
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("seed-mlp-torch")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweeplab.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 12 and len(runs) == 13
    for child in children:
        assert {"n_layers", "units", "dropout", "learning_rate", "optimizer"} <= set(child.data.params)
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert len(history) >= 1 and [m.step for m in history] == list(range(1, len(history) + 1))
        assert child.info.status in ("FINISHED", "KILLED")

    best = sweeplab("best", "seed-mlp-torch", "--json", cwd=workdir)
    assert best.returncode == 0, best.stderr
    best_json = json.loads(best.stdout)
    assert best_json["best_trial"] == study.best_trial.number
    assert best_json["best_value"] == pytest.approx(study.best_value)
    assert best_json["best_params"] == study.best_trial.params
    best_run = client.get_run(best_json["best_run_id"])
    assert best_run.data.tags["sweeplab.trial_number"] == str(study.best_trial.number)
    assert best_run.data.metrics["final_val_accuracy"] == pytest.approx(study.best_value)

    status = sweeplab("status", "seed-mlp-torch", cwd=workdir)
    assert status.returncode == 0 and "12 finished of 12" in status.stdout  # the --trials asked for, not the spec's
    status_json = json.loads(sweeplab("status", "seed-mlp-torch", "--json", cwd=workdir).stdout)
    assert status_json["trials_target"] == 12 and summary["trials_target"] == 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_binds_to_localhost_only(workdir):
    port = _free_port()
    env = {**os.environ}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([*SWEEPLAB, "ui", "--port", str(port)], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("sweeplab ui did not start listening within 90 s")
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        local_addresses = [line.split()[3] for line in listening.splitlines() if line.strip()]
        assert local_addresses and all(a.startswith("127.0.0.1:") for a in local_addresses), listening
        # one web worker and none of MLflow's job runners (GenAI features sweeplab does not use):
        # the server launches those right after the web server, before it listens
        time.sleep(1.0)
        ui_processes = session_commands(proc.pid)
        assert not [c for c in ui_processes if "huey" in c], ui_processes
        assert sum("uvicorn" in c for c in ui_processes) == 1, ui_processes
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_validate_help_lists_every_name_the_registries_hold(tmp_path):
    from sweeplab.registry.datasets import DATASETS
    from sweeplab.registry.names import FRAMEWORK_NAMES
    from sweeplab.registry.search import PRUNERS, SAMPLERS

    out = sweeplab("validate", "--help", cwd=tmp_path)
    assert out.returncode == 0
    listed = {line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ") and line.split()}
    assert {*FRAMEWORK_NAMES, *DATASETS, *SAMPLERS, *PRUNERS, "auto"} <= listed
    assert "the default: multivariate TPE" in out.stdout and "the default: successive_halving" in out.stdout


def test_validate_shows_what_auto_chose(tmp_path):
    import yaml

    data = {"study": "auto", "metric": "score", "trials": 4, "workers": 2,
            "objective": {"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 6},
            "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}}}
    spec = tmp_path / "auto.yaml"
    spec.write_text(yaml.safe_dump(data))
    out = sweeplab("validate", spec, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "sampler tpe (auto), pruner successive_halving (auto)" in out.stdout
    as_json = json.loads(sweeplab("validate", spec, "--json", cwd=tmp_path).stdout)
    assert as_json["sampler"] == {"name": "tpe", "auto": True}
    assert as_json["pruner"] == {"name": "successive_halving", "auto": True}
    spec.write_text(yaml.safe_dump({**data, "sampler": "random", "pruner": {"name": "median"}}))
    assert "sampler random, pruner median)" in sweeplab("validate", spec, cwd=tmp_path).stdout


DESIGN_JSON_KEYS = ("study", "n_trials", "n_complete", "n_pruned", "n_failed", "best_value", "best_params",
                    "best_trial", "mlflow_experiment_id", "mlflow_parent_run_id", "best_run_id")
"""What DESIGN.md's CLI contract requires in the ``--json`` object of run, status and best."""


def test_json_of_run_status_and_best_is_the_summary_record(stores, tmp_path):
    """`--json` of run, status and best is StudySummary.to_json(): same keys (run adds its
    RunDetails), same values, every key DESIGN.md requires."""
    import dataclasses

    import yaml
    from sweeplab_testkit import bowl_spec

    from sweeplab.core.records import RunDetails
    from sweeplab.search.summary import summarize

    spec = tmp_path / "bowl.yaml"
    spec.write_text(yaml.safe_dump(bowl_spec(trials=3, workers=1).to_dict()))
    flags = ["--storage", stores["storage"], "--tracking-uri", stores["tracking"]]
    run = sweeplab("run", spec, "--json", *flags, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    printed = {"run": json.loads(run.stdout)}
    for command in ("status", "best"):
        out = sweeplab(command, "bowl", "--json", *flags, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        printed[command] = json.loads(out.stdout)

    record = summarize(optuna.load_study(study_name="bowl", storage=stores["storage"]))
    expected = json.loads(json.dumps(record.to_json()))
    assert printed["status"] == expected and printed["best"] == expected
    details = RunDetails(elapsed_s=0.0, startup_s={}, mlflow_delivered=True, mlflow_requests=0, storage="",
                         tracking_uri="", best_model={"packaged": False})  # a python objective: no model
    assert list(printed["run"]) == list(dataclasses.replace(record, run=details).to_json())
    assert {k: printed["run"][k] for k in expected} == expected
    assert printed["run"]["best_model"]["packaged"] is False and printed["run"]["mlflow_delivered"] is True
    for payload in printed.values():
        assert set(DESIGN_JSON_KEYS) <= set(payload)
        assert (payload["sampler"], payload["pruner"]) == ("tpe", "none")  # the names the study runs with
    assert record.n_trials == 3 and record.best_trial is not None and record.best_run_id


def test_a_broken_objective_stops_the_run_with_exit_1_and_says_why(stores, tmp_path):
    """Each failure is printed once as it happens; the first 3 failing alike stop the study."""
    import yaml
    from sweeplab_testkit import bowl_spec

    spec = tmp_path / "broken.yaml"
    spec.write_text(yaml.safe_dump(bowl_spec(
        trials=10, workers=1, sampler={"name": "random"},
        objective={"framework": "python", "callable": "sweeplab_test_objectives:faulty", "epochs": 1},
        space={"mode": {"type": "categorical", "choices": ["raise"]}}).to_dict()))
    flags = ["--storage", stores["storage"], "--tracking-uri", stores["tracking"], "--no-progress"]
    run = sweeplab("run", spec, *flags, cwd=tmp_path)
    assert run.returncode == 1, run.stderr[-3000:]
    for number in range(3):
        assert run.stderr.count(f"trial {number} failed: RuntimeError: boom") == 1
    assert "first 3 trials all failed with the same error" in run.stderr and "--fail-fast 0" in run.stderr
    assert run.stderr.count("Fix the objective or its data") == 1  # said once, as the error
    status = json.loads(sweeplab("status", "bowl", "--json", *flags[:4], cwd=tmp_path).stdout)
    assert status["n_trials"] == 3 and status["failures"] == [
        {"reason": "RuntimeError: boom: the objective failed on purpose", "count": 3, "trials": [0, 1, 2]}]
    text = sweeplab("status", "bowl", *flags[:4], cwd=tmp_path).stdout
    assert "failed     3x RuntimeError: boom" in text

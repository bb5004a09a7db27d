"""Helpers shared by test modules (tests run in importlib mode, so they live here)."""

from __future__ import annotations

import subprocess

from mlflow.tracking import MlflowClient

from sweeplab.spec import parse_spec
from sweeplab.study import RunOptions, run_study


def bowl_spec(**over):
    data = {
        "study": "bowl",
        "direction": "maximize",
        "metric": "score",
        "trials": 8,
        "workers": 2,
        "seed": 7,
        "sampler": {"name": "tpe"},
        "pruner": {"name": "none"},
        "objective": {"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 4},
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}, "y": {"type": "float", "low": -1.0, "high": 1.0}},
    }
    data.update(over)
    return parse_spec(data)


def run(spec, stores, **kw):
    return run_study(spec, RunOptions(storage_url=stores["storage"], tracking_uri=stores["tracking"],
                                      progress=False, **kw))


def child_runs(stores, parent_id):
    client = MlflowClient(stores["tracking"])
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exp_ids, filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=1000)


def session_commands(sid: int) -> list[str]:
    """The command lines (process titles) of the processes of session ``sid``."""
    out = subprocess.run(["ps", "-e", "-o", "sid=,args="], capture_output=True, text=True).stdout
    return [line.split(None, 1)[1] for line in out.splitlines() if line.split(None, 1)[0] == str(sid)]

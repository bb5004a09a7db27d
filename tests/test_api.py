"""The Python API as a notebook uses it: ``sweeplab.run(spec, objective=fn)``, ``sweeplab.load(name)``.

The notebook case itself (a function of ``__main__`` sent to Ray's workers by value) is
``examples/notebook_api.py`` run as a script; the other runs use the session's local Ray
with a function of a module (sent by name).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from sweeplab_api_objectives import counted

import sweeplab
from sweeplab.api import LoadedStudy, resolve_spec
from sweeplab.core.errors import SpecError, StudyNotFoundError, UsageError
from sweeplab.core.records import StudySummary
from sweeplab.search.summary import summarize
from sweeplab.spec import StudySpec

ROOT = Path(__file__).resolve().parent.parent


def api_spec(log: Path, **over):
    """A study of ``counted`` (each execution logged to ``log``); no objective.framework nor callable."""
    data = {
        "study": "api",
        "direction": "maximize",
        "metric": "score",
        "trials": 2,
        "workers": 1,
        "seed": 3,
        "sampler": {"name": "random"},
        "pruner": {"name": "none"},
        "objective": {"options": {"log": str(log)}},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    }
    data.update(over)
    return data


def executions(log: Path) -> list[int]:
    return [int(line) for line in log.read_text(encoding="utf-8").split()] if log.exists() else []


def stores_kw(stores):
    return {"storage": stores["storage"], "tracking_uri": stores["tracking"], "progress": False}


# ------------------------------------------------------------------ bad input
def test_a_bad_spec_raises_a_value_error_listing_every_problem_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = api_spec(tmp_path / "log", trials=0, workers="two", space={"x": {"type": "float", "low": 1.0, "high": 0.0}})
    with pytest.raises(ValueError) as info:
        sweeplab.run(bad, objective=counted)
    assert isinstance(info.value, SpecError)
    message = str(info.value)
    assert "3 problems" in message
    for path in ("trials", "workers", "space.x"):
        assert f"  - {path}" in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_function_runs_as_framework_python_when_the_spec_names_none():
    spec = resolve_spec(api_spec(Path("log")), counted)
    assert isinstance(spec, StudySpec)
    assert spec.objective.framework == "python" and spec.objective.callable is None
    assert spec.objective.options == {"log": "log"}


@pytest.mark.parametrize(("objective", "path", "fragment"), [
    ({"framework": "torch", "dataset": {"name": "iris"}}, "objective.framework", "got framework 'torch'"),
    ({"framework": "python", "callable": "sweeplab_api_objectives:counted"}, "objective.callable",
     "give only one of them"),
])
def test_a_function_with_a_spec_that_names_another_objective_is_refused(objective, path, fragment):
    with pytest.raises(SpecError, match=rf"(?s){path}: .*{fragment}"):
        resolve_spec(api_spec(Path("log"), objective=objective), counted)


def test_framework_python_without_a_function_says_both_ways_to_give_one():
    with pytest.raises(SpecError, match=r"objective.callable: required for framework python.*objective=function"):
        resolve_spec(api_spec(Path("log"), objective={"framework": "python"}))


def test_a_spec_or_objective_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="spec must be a YAML file's path, a mapping or a StudySpec, got int"):
        resolve_spec(42, counted)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="objective= must be a function"):
        resolve_spec(api_spec(Path("log")), "sweeplab_api_objectives:counted")  # type: ignore[arg-type]


def test_fork_and_study_together_are_refused():
    with pytest.raises(UsageError, match="fork and study conflict"):
        sweeplab.run(api_spec(Path("log")), objective=counted, study="a", fork="b")


# ------------------------------------------------------------------ runs on Ray
@pytest.mark.parametrize("form", ["dict", "path", "StudySpec"])
def test_run_takes_a_dict_a_yaml_path_or_a_study_spec(form, ray_local, stores, tmp_path):
    log = tmp_path / "log"
    data = api_spec(log, study=f"api-{form}")
    spec: object = data
    if form == "path":
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump(data), encoding="utf-8")
    elif form == "StudySpec":
        spec = resolve_spec(data, counted)
    summary = sweeplab.run(spec, objective=counted, **stores_kw(stores))  # type: ignore[arg-type]
    assert isinstance(summary, StudySummary)
    assert summary.study == f"api-{form}" and summary.n_trials == 2 and summary.n_complete == 2, summary
    assert sorted(executions(log)) == [0, 1]
    assert summary.best_metrics and summary.best_metrics["pid"] != os.getpid()  # ran in a Ray worker
    assert summary.run is not None and summary.best_run_id


def test_a_second_call_resumes_up_to_trials_repeats_no_trial_and_load_reads_it(ray_local, stores, tmp_path):
    log = tmp_path / "log"
    data = api_spec(log, study="api-resume", trials=4)
    first = sweeplab.run(data, objective=counted, trials=2, **stores_kw(stores))
    assert (first.n_trials, first.trials_target) == (2, 2)
    second = sweeplab.run(data, objective=counted, **stores_kw(stores))
    assert (second.n_trials, second.trials_target, second.n_complete) == (4, 4, 4)
    assert second.mlflow_parent_run_id == first.mlflow_parent_run_id
    assert sorted(executions(log)) == [0, 1, 2, 3]  # every trial ran once, none again on resume
    third = sweeplab.run(data, objective=counted, **stores_kw(stores))
    assert third.n_trials == 4 and sorted(executions(log)) == [0, 1, 2, 3]  # done: nothing runs

    with pytest.raises(UsageError, match=r"already exists with a different spec.*\n  seed: 3 -> 4"):
        sweeplab.run({**data, "seed": 4}, objective=counted, **stores_kw(stores))

    study = sweeplab.load("api-resume", storage=stores["storage"])
    record = summarize(optuna.load_study(study_name="api-resume", storage=stores["storage"]))
    assert isinstance(study, LoadedStudy) and study.summary == record
    assert (study.status.n_trials, study.status.n_complete, study.status.trials_target) == (4, 4, 4)
    assert study.status.done and study.status.failures == [] and study.status.running_trials == []
    assert study.best is not None
    assert (study.best.trial, study.best.value, study.best.params) == (record.best_trial, record.best_value,
                                                                        record.best_params)
    assert study.best.run_id == record.best_run_id
    assert MlflowClient(stores["tracking"]).get_run(study.best.run_id).data.tags["sweeplab.trial_number"] == str(
        study.best.trial)
    assert f"best       trial {study.best.trial}: score = " in str(study)
    assert study.to_json() == record.to_json()
    assert len(study.optuna_study().trials) == 4

    with pytest.raises(StudyNotFoundError, match=r"no study named 'nope'.*api-resume"):
        sweeplab.load("nope", storage=stores["storage"])
    with pytest.raises(SpecError, match="study"):
        sweeplab.load("../escape", storage=stores["storage"])


def test_a_function_that_cannot_be_pickled_is_refused_before_the_study_is_created(ray_local, stores, tmp_path):
    import threading

    lock = threading.Lock()

    def locked(ctx):
        with lock:
            return 1.0

    with pytest.raises(UsageError, match=r"objective= .*locked cannot be sent to the study's workers: TypeError: "
                                         r"cannot pickle '_thread.lock' object\. .*inside the function instead$"):
        sweeplab.run(api_spec(tmp_path / "log", study="api-unpicklable"), objective=locked, **stores_kw(stores))
    assert optuna.get_all_study_summaries(stores["storage"], include_best_trial=False) == []
    assert MlflowClient(stores["tracking"]).get_experiment_by_name("api-unpicklable") is None


@pytest.mark.slow
def test_the_notebook_example_sends_its_main_function_by_value_and_resumes(tmp_path, store_templates):
    """examples/notebook_api.py as a script: ``train`` (with a helper and a constant of
    ``__main__``) runs on Ray's workers, the second run resumes to the spec's 6 trials,
    load reads the study, and the progress bar is the terminal's text bar on stderr."""
    shutil.copy(store_templates / "mlflow.db", tmp_path / "mlflow.db")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE", "RAY_ADDRESS")}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook_api.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("first run:  3 trials") and lines[1].startswith("second run: 6 trials of 6"), lines
    assert " 0 failed of 6" in lines[2], lines  # a trial that could not unpickle train would have failed
    assert "3/3" in out.stderr and "6/6" in out.stderr  # the text bar

    study = optuna.load_study(study_name="notebook-iris", storage=f"sqlite:///{tmp_path / 'sweeplab.db'}")
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6  # no parameter set run twice
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("notebook-iris").experiment_id], max_results=100)
    assert len([r for r in runs if r.data.tags.get("sweeplab.role") == "parent"]) == 1 and len(runs) == 7


def test_the_in_process_executor_calls_the_function_itself(stores):
    """RunOptions.objective_fn without Ray: a closure (which no pickle would carry) is called as it is."""
    from sweeplab.study import RunOptions, run_study

    seen: list[int] = []

    def closure(ctx):
        seen.append(ctx.trial_number)
        return 1.0 - float(ctx.params["x"])

    spec = resolve_spec(api_spec(Path("unused"), study="api-in-process", trials=3), closure)
    summary = run_study(spec, RunOptions(storage_url=stores["storage"], tracking_uri=stores["tracking"],
                                         progress=False, executor="in-process", objective_fn=closure))
    assert summary.n_complete == 3 and sorted(seen) == [0, 1, 2]
    assert summary.best_value == pytest.approx(1.0 - summary.best_params["x"])

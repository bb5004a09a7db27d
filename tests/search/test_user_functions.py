"""Users' own training functions run as studies on Ray: the documented trial API end to end.

The functions are in ``tests/support/sweeplab_user_functions.py`` (no torch) and
``sweeplab_user_torch.py``; each writes what it saw to ``options.out_dir``.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from sweeplab_models_kit import tracking_uri
from sweeplab_testkit import child_runs, run

from sweeplab.core.keys import TAG_LOGGED_MODEL
from sweeplab.search.coordinator import trial_seed
from sweeplab.spec import load_spec, parse_spec

DATASET = {"name": "make_classification", "n_samples": 120, "n_features": 6, "n_classes": 3, "n_informative": 3}


def spec(fn, out_dir, **over):
    data = {
        "study": "user-fn",
        "direction": "maximize",
        "metric": "score",
        "trials": 2,
        "workers": 2,
        "seed": 5,
        "sampler": {"name": "random"},
        "pruner": {"name": "none"},
        "objective": {"framework": "python", "callable": f"sweeplab_user_functions:{fn}", "epochs": 3,
                      "options": {"out_dir": str(out_dir)}},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    }
    data.update(over)
    return parse_spec(data)


def seen(out_dir, prefix):
    return {int(p.stem.rsplit("-", 1)[1]): json.loads(p.read_text()) for p in Path(out_dir).glob(f"{prefix}-*.json")}


def study_trials(stores, name="user-fn"):
    return optuna.load_study(study_name=name, storage=stores["storage"]).get_trials()


def test_the_trial_shows_params_seed_options_dataset_and_takes_float_reports(ray_local, stores, tmp_path):
    s = spec("inspect", tmp_path, pruner={"name": "median"},
             objective={"framework": "python", "callable": "sweeplab_user_functions:inspect", "epochs": 3,
                        "dataset": DATASET, "options": {"out_dir": str(tmp_path), "depth": [1, 2]}})
    summary = run(s, stores)
    assert summary.n_complete == 2
    views = seen(tmp_path, "inspect")
    for t in study_trials(stores):
        view = views[t.number]
        seed = trial_seed(5, t.number)
        assert view["params"] == t.params and view["number"] == t.number and view["attempt"] == 0
        assert view["seed"] == seed and view["draws"]["random"] == random.Random(seed).random()
        assert view["draws"]["numpy"] == np.random.RandomState(seed).rand()
        assert view["device"] == "cpu" and view["cpus"] == 1.0 and view["gpus"] == 0.0 and view["omp"] == "1"
        assert view["options"] == {"out_dir": str(tmp_path), "depth": [1, 2]} and view["epochs"] == 3
        assert view["metric"] == "score" and view["metric_names"] == ["score"]
        assert view["dataset"] == [[72, 6], [24, 6]]  # 120 rows: 60 % train, 20 % validation
        x = t.params["x"]
        assert t.intermediate_values == pytest.approx({1: x / 3, 2: 2 * x / 3, 3: x})  # floats: the study metric
        assert t.value == pytest.approx(x)


def test_pruning_escapes_except_exception_and_asking_works_too(ray_local, stores, tmp_path):
    prune_at_2 = {"name": "threshold", "lower": 0.99, "n_warmup_steps": 2}
    summary = run(spec("swallow_everything", tmp_path, pruner=prune_at_2), stores)
    assert summary.n_pruned == 2 and summary.n_complete == 0
    for t in study_trials(stores):
        assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["sweeplab.pruned_at_epoch"] == 2
        assert sorted(t.intermediate_values) == [1, 2]
    summary = run(spec("ask_before_stopping", tmp_path, pruner=prune_at_2, study="asking"), stores)
    assert summary.n_pruned == 2
    for t in study_trials(stores, "asking"):
        assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["sweeplab.pruned_at_epoch"] == 2
    assert {n: v["epoch"] for n, v in seen(tmp_path, "asked").items()} == {0: 2, 1: 2}


def test_a_retried_attempt_restores_the_last_checkpoint_and_goes_on(ray_local, stores, tmp_path):
    s = spec("resumable", tmp_path, trials=1, workers=1,
             objective={"framework": "python", "callable": "sweeplab_user_functions:resumable", "epochs": 6})
    summary = run(s, stores)
    assert summary.n_complete == 1 and summary.n_failed == 0
    first, retry = study_trials(stores)
    assert first.state == optuna.trial.TrialState.FAIL and "worker died" in first.user_attrs["sweeplab.fail_reason"]
    assert sorted(first.intermediate_values) == [1, 2, 3]
    assert retry.user_attrs["sweeplab.retry_of"] == 0 and retry.params == first.params
    assert sorted(retry.intermediate_values) == [4, 5, 6]  # went on from epoch 3
    assert retry.value == 21.0 and retry.user_attrs["sweeplab.metrics"]["resumed_from"] == 3.0
    assert not (stores["dir"] / ".sweeplab").exists()  # the finished lineage's checkpoint is gone


def test_a_logged_torch_model_loads_with_pyfunc_and_predicts(ray_local, stores, tmp_path, monkeypatch):
    monkeypatch.chdir(stores["dir"])  # MLflow's default artifact root (./mlruns) lands there
    s = spec("x", tmp_path, metric="val_accuracy", trials=1, workers=1,
             objective={"framework": "python", "callable": "sweeplab_user_torch:train", "epochs": 3,
                        "dataset": DATASET, "options": {"out_dir": str(tmp_path)}},
             space={"units": [8], "lr": {"type": "float", "low": 0.01, "high": 0.05}})
    summary = run(s, stores)
    assert summary.n_complete == 1
    view = seen(tmp_path, "torch")[0]
    assert view["seed_ok"] and view["threads"] == 1 and view["device"] == "cpu" and view["training_after_log"]
    [child] = child_runs(stores, summary.mlflow_parent_run_id)
    assert child.data.tags[TAG_LOGGED_MODEL] == "model"
    import mlflow.pyfunc

    from sweeplab.study.session import load_study_dataset

    rows = load_study_dataset(s).X_val[:4]
    with tracking_uri(stores["tracking"]):
        model = mlflow.pyfunc.load_model(f"runs:/{child.info.run_id}/model")
    assert model.metadata.get_input_schema().inputs[0].shape == (-1, 6)
    np.testing.assert_allclose(np.asarray(model.predict(rows)), view["expected"], rtol=1e-5, atol=1e-6)


def test_a_file_callable_relative_to_its_spec_imports_its_neighbours_and_ships_to_a_cluster(
        ray_local, stores, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "own_helpers.py").write_text("def score(x):\n    return 2 * x\n")
    (code / "own_train.py").write_text(textwrap.dedent("""
        import json, os
        from pathlib import Path

        from own_helpers import score

        def train(trial):
            out = Path(trial.options["out_dir"]) / f"file-{trial.number}-{os.getpid()}.json"
            out.write_text(json.dumps({"file": __file__, "cwd": os.getcwd()}))
            trial.report(1, score(trial.params["x"]))
            return score(trial.params["x"])
    """))
    specs = tmp_path / "specs"
    specs.mkdir()
    data = spec("x", tmp_path, trials=1, workers=1).to_dict()
    data["objective"]["callable"] = "../code/own_train.py:train"
    (specs / "study.yaml").write_text(yaml.safe_dump(data))
    s = load_spec(specs / "study.yaml")
    assert s.objective.callable == f"{code / 'own_train.py'}:train"

    summary = run(s, stores)  # a local Ray reads the file where it is
    assert summary.n_complete == 1
    [t] = study_trials(stores)
    assert t.value == pytest.approx(2 * t.params["x"])
    [local] = [json.loads(p.read_text()) for p in tmp_path.glob("file-*.json")]
    assert local["file"] == str(code / "own_train.py")

    # `sweeplab run` joining a cluster (an address): the file's folder travels to the workers as the job's working_dir
    import ray

    address = ray.get_runtime_context().gcs_address
    out = subprocess.run([sys.executable, "-m", "sweeplab.cli", "run", str(specs / "study.yaml"), "--study", "shipped",
                          "--address", address, "--storage", stores["storage"], "--tracking-uri", stores["tracking"],
                          "--no-model", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n_complete"] == 1
    [shipped] = [json.loads(p.read_text()) for p in tmp_path.glob("file-*.json")
                 if json.loads(p.read_text())["file"] != local["file"]]
    assert Path(shipped["file"]).parent == Path(shipped["cwd"]) and "runtime_resources" in shipped["cwd"]
    assert (Path(shipped["cwd"]) / "own_helpers.py").read_text() == (code / "own_helpers.py").read_text()

    # a folder that holds a Ray temp dir (as /tmp does) is refused before anything starts: Ray would pack
    # its own growing package into itself
    (code / "ray" / "session_1").mkdir(parents=True)
    (code / "ray" / "session_latest").symlink_to(code / "ray" / "session_1")
    refused = subprocess.run([sys.executable, "-m", "sweeplab.cli", "run", str(specs / "study.yaml"), "--study",
                              "not-shipped", "--address", address, "--storage", stores["storage"], "--tracking-uri",
                              stores["tracking"], "--no-model"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 2, refused.stderr
    assert f"holds a Ray temp dir ({code / 'ray'})" in refused.stderr
    assert "Move the file into a folder of its own" in refused.stderr
    assert "not-shipped" not in optuna.get_all_study_names(stores["storage"])


def test_a_logged_keras_model_loads_with_pyfunc_and_predicts(ray_local, stores, tmp_path, monkeypatch):
    pytest.importorskip("tensorflow", reason="the keras extra is part of `make test`")
    monkeypatch.chdir(stores["dir"])
    s = spec("x", tmp_path, metric="val_accuracy", trials=1, workers=1,
             objective={"framework": "python", "callable": "sweeplab_user_keras:train", "epochs": 2,
                        "dataset": DATASET, "options": {"out_dir": str(tmp_path)}},
             space={"lr": {"type": "float", "low": 0.01, "high": 0.05}})
    summary = run(s, stores)
    assert summary.n_complete == 1
    [child] = child_runs(stores, summary.mlflow_parent_run_id)
    assert child.data.tags[TAG_LOGGED_MODEL] == "model"
    import mlflow.pyfunc

    from sweeplab.study.session import load_study_dataset

    with tracking_uri(stores["tracking"]):
        model = mlflow.pyfunc.load_model(f"runs:/{child.info.run_id}/model")
    assert model.metadata.flavors.keys() >= {"keras", "python_function"}
    predicted = np.asarray(model.predict(load_study_dataset(s).X_val[:4]))
    np.testing.assert_allclose(predicted, seen(tmp_path, "keras")[0]["expected"], rtol=1e-5, atol=1e-6)

"""Transfer learning (objective.init_from): fine-tune a registered sweeplab model on a new task."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from sweeplab_testkit import child_runs, run

from sweeplab.core.errors import DataError, SpecError
from sweeplab.core.records import TrialTicket
from sweeplab.objectives.base import NullReporter, TrialContext
from sweeplab.objectives.transfer import SourceModel, TransferError, plan_trial
from sweeplab.spaces.architecture import count_mlp_params
from sweeplab.spec import parse_spec
from sweeplab.study.run import load_study_dataset
from sweeplab.tracking.sources import fetch_source_model

SOURCE_DATA = {"name": "make_classification", "n_samples": 300, "n_features": 20, "n_informative": 6,
               "n_classes": 3, "random_state": 1}
TARGET_DATA = {**SOURCE_DATA, "n_classes": 2, "random_state": 7}
SOURCE_PARAMS = {"hidden_units": [16, 8], "batch_norm": True, "activation": "tanh", "learning_rate": 0.01}
TARGET_SPACE = {
    "n_frozen_layers": {"type": "int", "low": 0, "high": 2},
    "finetune_learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "batch_size": {"type": "categorical", "choices": [16, 32]},
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
}


def study_spec(framework: str = "torch", dataset=None, **over):
    data = {
        "study": f"transfer-{framework}",
        "direction": "maximize",
        "metric": "val_accuracy",
        "trials": 3,
        "workers": 2,
        "seed": 3,
        "sampler": {"name": "random"},
        "pruner": {"name": "none"},
        "objective": {"framework": framework, "dataset": dataset or TARGET_DATA, "epochs": 3,
                      "init_from": f"models:/src-{framework}@champion"},
        "space": TARGET_SPACE,
    }
    data.update(over)
    return parse_spec(data)


def _register_source(uri: str, base: Path, framework: str) -> str:
    """Train a source model in-process, log it as a run's ``model`` and register it as ``src-FW@champion``."""
    from sweeplab.study.packaging import fit_and_package

    spec = study_spec(framework, dataset=SOURCE_DATA, space={"dropout": 0.0})
    spec = parse_spec({**spec.to_dict(), "objective": {**spec.objective.to_dict(), "init_from": None, "epochs": 5}})
    dataset = load_study_dataset(spec)
    ticket = TrialTicket(number=0, raw_params=dict(SOURCE_PARAMS), params=dict(SOURCE_PARAMS), seed=1,
                         framework=framework)
    packaged = fit_and_package(ticket, dataset, spec.objective, ["val_accuracy"], native=False)
    files = base / f"files-{framework}"
    for name, data in packaged.files.items():
        path = files / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    client = MlflowClient(uri, registry_uri=uri)
    exp = client.create_experiment(f"sources-{framework}", artifact_location=(base / "artifacts").as_uri())
    source_run = client.create_run(exp)
    client.log_artifacts(source_run.info.run_id, str(files))
    client.set_terminated(source_run.info.run_id)
    name = f"src-{framework}"
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"{source_run.info.artifact_uri}/model",
                                          run_id=source_run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return source_run.info.run_id


@pytest.fixture(scope="module")
def registry(tmp_path_factory, store_templates):
    """An MLflow store holding models:/src-torch@champion and models:/src-keras@champion (20 features, 3 classes)."""
    base = tmp_path_factory.mktemp("registry")
    shutil.copy(store_templates / "mlflow.db", base / "mlflow.db")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    run_ids = {fw: _register_source(uri, base, fw) for fw in ("torch", "keras")}
    return {"uri": uri, "dir": base, "run_ids": run_ids}


def _objective(framework: str):
    if framework == "torch":
        from sweeplab.objectives.torch_mlp import TorchMLPObjective

        return TorchMLPObjective()
    from sweeplab.objectives.keras_mlp import KerasMLPObjective

    return KerasMLPObjective()


def _hidden_state(framework: str, model, i: int) -> list[np.ndarray]:
    """Hidden layer ``i``'s kernel (in, out), bias, and BatchNorm gamma, beta, moving mean, moving variance."""
    if framework == "torch":
        from torch import nn

        linear = [m for m in model if isinstance(m, nn.Linear)][i]
        norm = [m for m in model if isinstance(m, nn.BatchNorm1d)][i]
        tensors = [linear.weight.T, linear.bias, norm.weight, norm.bias, norm.running_mean, norm.running_var]
        return [t.detach().cpu().numpy() for t in tensors]
    return [*model.get_layer(f"dense_{i}").get_weights(), *model.get_layer(f"bn_{i}").get_weights()]


def _source_state(source: SourceModel, i: int) -> list[np.ndarray]:
    layer = source.layers[i]
    assert layer.batch_norm is not None
    return [layer.kernel, layer.bias, *layer.batch_norm]


# --------------------------------------------------------------------------- spec


@pytest.mark.parametrize(
    ("over", "path", "needles"),
    [
        ({"space": {**TARGET_SPACE, "units": {"type": "int", "low": 8, "high": 32}}}, "space.units",
         ["architecture comes from objective.init_from", "remove `units`"]),
        ({"space": {**TARGET_SPACE, "batch_norm": [True, False]}}, "space.batch_norm", ["remove `batch_norm`"]),
        ({"objective": {"framework": "torch", "dataset": TARGET_DATA}}, "space.n_frozen_layers",
         ["only means something when fine-tuning", "objective.init_from"]),
        ({"objective": {"framework": "torch", "dataset": TARGET_DATA, "init_from": "src-torch"}},
         "objective.init_from", ["models:/NAME@ALIAS", "'src-torch'"]),
        ({"space": {**TARGET_SPACE, "n_frozen_layers": {"type": "int", "low": -1, "high": 2}}},
         "space.n_frozen_layers", [">= 0", "-1"]),
    ],
)
def test_spec_problems_name_their_yaml_path(over, path, needles):
    with pytest.raises(SpecError) as info:
        study_spec(**over)
    problems = [p for p in info.value.problems if p.path == path]
    assert problems, [str(p) for p in info.value.problems]
    for needle in needles:
        assert needle in problems[0].message, problems[0].message


def test_spec_round_trips_init_from():
    spec = study_spec()
    assert spec.objective.init_from == "models:/src-torch@champion"
    assert parse_spec(spec.to_dict()) == spec
    assert "init_from" not in study_spec(objective={"framework": "torch", "dataset": TARGET_DATA},
                                         space={"dropout": 0.1}).objective.to_dict()


# --------------------------------------------------------------------------- source models


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_registered_model_is_read_once_as_numpy_layers(registry, framework):
    source = fetch_source_model(f"models:/src-{framework}@champion", registry["uri"])
    assert (source.framework, source.task, source.n_features, source.n_outputs) == (framework, "classification", 20, 3)
    assert source.architecture() == {"hidden_units": [16, 8], "batch_norm": True, "activation": "tanh"}
    assert [layer.kernel.shape for layer in source.layers] == [(20, 16), (16, 8)]
    assert all(layer.batch_norm is not None and layer.batch_norm[3].shape == (16 if i == 0 else 8,)
               for i, layer in enumerate(source.layers))
    same = fetch_source_model(f"runs:/{registry['run_ids'][framework]}/model", registry["uri"])
    for a, b in zip(source.layers, same.layers, strict=True):
        assert np.array_equal(a.kernel, b.kernel) and np.array_equal(a.bias, b.bias)


def test_unknown_model_is_a_clear_error(registry):
    with pytest.raises(TransferError, match=r"cannot download 'models:/nope@champion' .*model name and alias"):
        fetch_source_model("models:/nope@champion", registry["uri"])


def test_mismatched_features_name_both_numbers(registry):
    spec = study_spec(dataset={**TARGET_DATA, "n_features": 10, "n_informative": 4})
    with pytest.raises(DataError, match=r"src-torch@champion takes 20 input features, but dataset .* has 10"):
        load_study_dataset(spec, registry["uri"])


# --------------------------------------------------------------------------- fine-tuning in-process


@pytest.mark.parametrize(("source_fw", "target_fw"), [("torch", "torch"), ("keras", "keras"), ("keras", "torch")])
@pytest.mark.parametrize("n_frozen", [1, 2])
def test_frozen_layers_keep_their_weights(registry, source_fw, target_fw, n_frozen):
    spec = study_spec(target_fw, objective={"framework": target_fw, "dataset": TARGET_DATA, "epochs": 3,
                                            "init_from": f"models:/src-{source_fw}@champion"})
    dataset = load_study_dataset(spec, registry["uri"])
    source = dataset.init_from
    assert source.framework == source_fw
    objective = _objective(target_fw)
    params = {"n_frozen_layers": n_frozen, "finetune_learning_rate": 0.05, "batch_size": 16, "optimizer": "sgd",
              "hidden_units": [64], "dropout": 0.1}
    out = objective.run(TrialContext(params=params, dataset=dataset, seed=5, reporter=NullReporter(),
                                     settings=spec.objective))
    assert objective.config.hidden_units == (16, 8) and objective.config.activation == "tanh"
    assert objective.config.learning_rate == 0.05
    for i in range(2):
        trained, original = _hidden_state(target_fw, objective.model, i), _source_state(source, i)
        if i < n_frozen:  # weights, bias, BatchNorm scale/shift and running statistics: bit for bit
            for got, want in zip(trained, original, strict=True):
                np.testing.assert_array_equal(got, want)
        else:
            assert not np.array_equal(trained[0], original[0])  # fine-tuned
    total = count_mlp_params([16, 8], 20, 2, True)  # the new head: 2 outputs
    frozen = sum(layer.n_params for layer in source.layers[:n_frozen])
    assert out["n_params"] == total and out["n_trainable_params"] == total - frozen
    assert out["latency_ms"] > 0 and 0.0 <= out["val_accuracy"] <= 1.0


def test_plan_rejects_more_frozen_layers_than_the_source_has(registry):
    dataset = load_study_dataset(study_spec(), registry["uri"])
    with pytest.raises(ValueError, match=r"n_frozen_layers must be in \[0, 2\] .* got 3"):
        plan_trial({"n_frozen_layers": 3}, dataset)
    params, plan = plan_trial({"dropout": 0.2}, dataset)
    assert plan is not None and plan.n_frozen == 0 and params["hidden_units"] == [16, 8]


# --------------------------------------------------------------------------- studies on Ray


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_init_from_study_fine_tunes_on_a_new_task(ray_local, stores, registry, monkeypatch, framework):
    monkeypatch.chdir(stores["dir"])  # the study's MLflow artifacts (./mlruns) land there
    spec = study_spec(framework)
    summary = run(spec, {"storage": stores["storage"], "tracking": registry["uri"]})
    assert summary.n_complete == 3, summary
    study = optuna.load_study(study_name=spec.study, storage=stores["storage"])
    assert {t.params["n_frozen_layers"] for t in study.trials} <= {0, 1, 2}
    runs = child_runs({"tracking": registry["uri"]}, summary.mlflow_parent_run_id)
    assert len(runs) == 3
    for r in runs:
        assert r.data.params["hidden_units"] == "[16, 8]"  # the source's architecture, not the space default
        assert r.data.metrics["final_n_params"] == count_mlp_params([16, 8], 20, 2, True)
    best_model = summary.run.best_model  # the end-of-study re-fit also fine-tunes from the source
    assert best_model["packaged"], best_model
    assert best_model["refit_matches_trial"] is True

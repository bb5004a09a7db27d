"""The study spec: YAML -> StudySpec, every rule reported with its YAML path and value."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from sweeplab.core.errors import Problem, SpecError
from sweeplab.spaces import CategoricalParam, IntParam
from sweeplab.spaces.yaml_io import load_yaml
from sweeplab.spec import (
    DatasetSpec,
    EarlyStoppingSpec,
    ObjectiveSpec,
    PrunerSpec,
    Resources,
    SamplerSpec,
    StudySpec,
    apply_overrides,
    load_spec,
    parse_spec,
    validate_study_name,
)

ROOT = Path(__file__).resolve().parent.parent

BASE: dict[str, Any] = {
    "study": "seed-mlp-torch",
    "direction": "maximize",
    "metric": "val_accuracy",
    "trials": 40,
    "timeout": None,
    "workers": 2,
    "resources": {"cpu": 1, "gpu": 0},
    "seed": 42,
    "sampler": {"name": "tpe"},
    "pruner": {"name": "median", "n_warmup_steps": 5},
    "objective": {
        "framework": "torch",
        "task": "classification",
        "dataset": {
            "name": "make_classification",
            "n_samples": 1000,
            "n_features": 20,
            "n_classes": 3,
            "n_informative": 5,
        },
        "epochs": 50,
        "validation_split": 0.2,
        "early_stopping": {"patience": 10},
    },
    "space": {
        "n_layers": {"type": "int", "low": 1, "high": 5},
        "units": {"type": "int", "low": 8, "high": 256, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "batch_norm": {"type": "categorical", "choices": [True, False]},
        "activation": {"type": "categorical", "choices": ["relu", "tanh", "sigmoid"]},
        "learning_rate": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
        "batch_size": {"type": "categorical", "choices": [16, 32, 64, 128]},
        "optimizer": {"type": "categorical", "choices": ["sgd", "adam", "rmsprop", "adagrad"]},
    },
}

PYTHON: dict[str, Any] = {
    "study": "bowl",
    "metric": "score",
    "objective": {"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 4},
    "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}, "y": {"type": "float", "low": -1.0, "high": 1.0}},
}


def spec(base: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """A copy of ``base`` (default BASE); ``a__b=value`` sets a nested key, value ``...`` deletes it."""
    data = copy.deepcopy(BASE if base is None else base)
    for key, value in changes.items():
        parts = key.split("__")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is ...:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return data


def problem_pattern(path: str, *fragments: str) -> str:
    """Regex matching one problem line ``path: ... fragment ...`` of a SpecError message."""
    head = re.escape(f"- {path}: ") if path else re.escape("- ")
    return head + ".*".join(re.escape(f) for f in ("", *fragments))


def problems_of(data: Any) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return info.value.problems


# ---------------------------------------------------------------------- valid specs
def test_design_spec_parses_into_dataclasses():
    s = parse_spec(spec(), source="design.yaml")
    assert s.study == "seed-mlp-torch"
    assert s.direction == ("maximize",) and s.metric == ("val_accuracy",)
    assert (s.trials, s.timeout, s.workers, s.seed, s.max_retries) == (40, None, 2, 42, 2)
    assert s.resources == Resources(cpu=1.0, gpu=0.0)
    assert s.sampler == SamplerSpec("tpe", {})
    assert s.pruner == PrunerSpec("median", {"n_warmup_steps": 5})
    assert s.objective.dataset == DatasetSpec(
        name="make_classification",
        options={"n_samples": 1000, "n_features": 20, "n_classes": 3, "n_informative": 5},
    )
    assert s.objective.early_stopping == EarlyStoppingSpec(patience=10, min_delta=0.0, monitor="val_loss")
    assert s.space.names() == list(BASE["space"])
    assert s.space.get("units") == IntParam("units", 8, 256, log=True)
    assert s.space.get("batch_norm") == CategoricalParam("batch_norm", (True, False))
    assert s.experiment is None and s.source == "design.yaml"
    assert not s.multi_objective


def test_defaults_of_a_minimal_spec():
    s = parse_spec(
        {"study": "m", "metric": "val_loss", "objective": {"dataset": {"name": "iris"}}, "space": "mlp-small"}
    )
    assert s.direction == ("maximize",)
    assert (s.trials, s.timeout, s.workers, s.seed, s.max_retries) == (20, None, 1, 0, 2)
    # no sampler or pruner: `auto` chooses (multivariate TPE after 5 random trials; successive halving from epoch 4)
    assert s.sampler == SamplerSpec("tpe", {"n_startup_trials": 5})
    assert s.pruner == PrunerSpec("successive_halving", {"min_early_stopping_rate": 1})
    assert s.sampler.auto and s.pruner.auto
    assert s.objective == ObjectiveSpec(dataset=DatasetSpec(name="iris"))
    assert s.objective.framework == "torch" and s.objective.epochs == 20
    assert s.resources == Resources()


def test_python_objective_spec():
    s = parse_spec(spec(PYTHON, objective__options={"seconds": 0.1}))
    assert s.objective.framework == "python" and s.objective.dataset is None
    assert s.objective.callable == "sweeplab_test_objectives:bowl"
    assert s.objective.options == {"seconds": 0.1}
    assert not s.space.mlp
    assert s.space.resolve({"x": 0.5, "y": 0.1}) == {"x": 0.5, "y": 0.1}


def test_sampler_and_pruner_accept_bare_names_and_options():
    s = parse_spec(spec(sampler="random", pruner={"name": "hyperband", "reduction_factor": 3}))
    assert s.sampler == SamplerSpec("random", {})
    assert s.pruner == PrunerSpec("hyperband", {"reduction_factor": 3})


def test_multi_objective_with_n_params():
    s = parse_spec(
        spec(direction=["maximize", "minimize"], metric=["val_accuracy", "n_params"], pruner="none", sampler="nsga2")
    )
    assert s.multi_objective
    assert s.direction == ("maximize", "minimize") and s.metric == ("val_accuracy", "n_params")


def test_regression_metrics_and_path_dataset():
    s = parse_spec(
        spec(
            metric="val_mae",
            objective__task="regression",
            objective__dataset={"path": "data/houses.parquet", "target": "price"},
        )
    )
    assert s.objective.dataset == DatasetSpec(path="data/houses.parquet", target="price")
    assert s.objective.task == "regression"


def test_python_framework_accepts_any_metric_name():
    assert parse_spec(spec(PYTHON, metric="my_custom_score")).metric == ("my_custom_score",)


def test_searched_framework_lets_objective_framework_be_omitted():
    data = spec(objective__framework=...)
    data["space"]["framework"] = {"type": "categorical", "choices": ["torch", "keras"]}
    s = parse_spec(data)
    assert s.objective.framework == "torch"
    assert s.space.resolve({"framework": "keras", "n_layers": 1, "units": 8})["framework"] == "keras"
    data["objective"]["framework"] = "keras"
    assert parse_spec(data).objective.framework == "keras"


# ---------------------------------------------------------------------- one rule per case
BAD_CASES = [
    # (changes, path, fragments echoed in the message)
    ({"trials": "ten"}, "trials", ["must be an integer", "str 'ten'"]),
    ({"trials": True}, "trials", ["must be an integer", "bool True"]),
    ({"trials": 0}, "trials", [">= 1", "got 0"]),
    ({"trials": 2.5}, "trials", ["must be an integer", "float 2.5"]),
    ({"workers": 0}, "workers", [">= 1", "got 0"]),
    ({"timeout": -5}, "timeout", ["> 0", "-5"]),
    ({"timeout": math.nan}, "timeout", ["finite", "nan"]),
    ({"timeout": math.inf}, "timeout", ["finite", "inf"]),
    ({"timeout": "soon"}, "timeout", ["must be a number", "str 'soon'"]),
    ({"seed": -1}, "seed", [">= 0", "-1"]),
    ({"seed": 2**40}, "seed", ["<= 4294967295", str(2**40)]),
    ({"seed": "42"}, "seed", ["must be an integer", "str '42'"]),
    ({"max_retries": -1}, "max_retries", [">= 0", "-1"]),
    ({"experiment": ""}, "experiment", ["non-empty string", "''"]),
    ({"direction": "max"}, "direction", ["unknown direction `max`", "maximize, minimize"]),
    ({"direction": ["maximize"]}, "direction", ["exactly two", "['maximize']"]),
    ({"direction": ["maximize", "up"], "metric": ["val_accuracy", "n_params"]}, "direction[1]", ["`up`"]),
    ({"direction": 3}, "direction", ["int 3"]),
    ({"metric": ...}, "metric", ["required"]),
    ({"metric": 5}, "metric", ["int 5"]),
    ({"metric": "f1"}, "metric", ["unknown metric `f1`", "framework torch", "val_accuracy"]),
    ({"metric": "val_mae"}, "metric", ["unknown metric `val_mae`", "task classification"]),
    ({"metric": "n_params"}, "metric", ["`n_params`", "multi-objective"]),
    (
        {"direction": ["maximize", "minimize"], "metric": "val_accuracy", "pruner": "none"},
        "metric",
        ["one metric per direction (2)", "got 1"],
    ),
    (
        {"direction": ["maximize", "minimize"], "metric": ["val_accuracy", "val_accuracy"], "pruner": "none"},
        "metric",
        ["distinct"],
    ),
    (
        {"direction": ["maximize", "minimize"], "metric": ["val_accuracy", "n_params"]},
        "pruner.name",
        ["pruner median decides on one objective", "can use: none, mo_successive_halving", "got median"],
    ),
    ({"pruner": "mo_successive_halving"}, "pruner.name",
     ["compares vectors of two objectives", "use successive_halving", "got mo_successive_halving"]),
    ({"pruner": {"name": "mo_successive_halving", "reduction_factor": 1}, "direction": ["maximize", "minimize"],
      "metric": ["val_accuracy", "val_loss"]}, "pruner.reduction_factor", [">= 2", "1"]),
    ({"pruner": {"name": "patient", "wrapped": "mo_successive_halving"}}, "pruner.wrapped",
     ["decides on two objectives, patient watches one"]),
    ({"deterministic": "yes"}, "deterministic", ["must be true, false or {lag: N}", "str 'yes'"]),
    ({"deterministic": 1}, "deterministic", ["must be true, false or {lag: N}", "int 1"]),
    ({"deterministic": {"lag": 1}}, "deterministic.lag", ["must be >= workers (2)", "would stay idle; got 1"]),
    ({"deterministic": {"lag": "4"}}, "deterministic.lag", ["must be an integer", "str '4'"]),
    ({"deterministic": {}}, "deterministic.lag", ["required", "deterministic: true"]),
    ({"deterministic": {"lag": 4, "order": "number"}}, "deterministic", ["unknown key `order`"]),
    (
        {
            "direction": ["maximize", "minimize"],
            "metric": ["val_accuracy", "n_params"],
            "pruner": "none",
            "sampler": "cmaes",
        },
        "sampler.name",
        ["single-objective", "cmaes"],
    ),
    ({"resources": {"cpu": 0}}, "resources.cpu", ["> 0", "got 0"]),
    ({"resources": {"gpu": -0.5}}, "resources.gpu", [">= 0", "-0.5"]),
    ({"resources": {"gpu": math.inf}}, "resources.gpu", ["finite", "inf"]),
    ({"resources": {"cpu": 1, "memory": 4}}, "resources", ["unknown key `memory`", "allowed: cpu, gpu"]),
    ({"resources": [1, 0]}, "resources", ["must be a mapping", "list [1, 0]"]),
    ({"sampler": {"name": "annealing"}}, "sampler.name", ["unknown sampler `annealing`", "tpe, random"]),
    ({"sampler": "bayes"}, "sampler.name", ["unknown sampler `bayes`"]),
    ({"sampler": {"n_startup_trials": 5}}, "sampler.name", ["required", "tpe"]),
    ({"sampler": {"name": "tpe", "seed": 3}}, "sampler.seed", ["top-level `seed`"]),
    ({"sampler": {"name": "nsga2", "crossover_prob": math.nan}}, "sampler.crossover_prob", ["finite", "nan"]),
    ({"sampler": {"name": "tpe", "gamma": 0.25}}, "sampler", ["unknown key `gamma`", "n_startup_trials"]),
    ({"sampler": 7}, "sampler", ["must be a mapping", "int 7"]),
    ({"pruner": {"name": "early"}}, "pruner.name", ["unknown pruner `early`", "median"]),
    ({"banana": 1}, "", ["unknown key `banana`", "allowed: study, direction"]),
    ({"objective__framework": "jax"}, "objective.framework", ["unknown framework `jax`", "torch, keras, python"]),
    ({"objective__task": "clustering"}, "objective.task", ["unknown task `clustering`"]),
    ({"objective__epochs": 0}, "objective.epochs", [">= 1", "got 0"]),
    ({"objective__epochs": "30"}, "objective.epochs", ["must be an integer", "str '30'"]),
    ({"objective__validation_split": 1.0}, "objective.validation_split", ["< 1", "1.0"]),
    ({"objective__validation_split": 0}, "objective.validation_split", ["> 0", "got 0"]),
    ({"objective__test_split": -0.1}, "objective.test_split", [">= 0", "-0.1"]),
    (
        {"objective__validation_split": 0.5, "objective__test_split": 0.5},
        "objective",
        ["`validation_split + test_split < 1`", "0.5 + 0.5"],
    ),
    ({"objective__learning_rate": 0.1}, "objective", ["unknown key `learning_rate`", "allowed: framework"]),
    ({"objective__dataset": ...}, "objective.dataset", ["required for framework torch"]),
    ({"objective__dataset": {"name": "iris", "path": "x.csv"}}, "objective.dataset", ["exactly one", "both"]),
    ({"objective__dataset": {"target": "y"}}, "objective.dataset", ["needs `name`", "or `path`", "target"]),
    ({"objective__dataset": {"name": "mnist"}}, "objective.dataset.name", ["unknown dataset `mnist`", "iris"]),
    ({"objective__dataset": {"path": "data.txt"}}, "objective.dataset.path", ["CSV or Parquet", "'data.txt'"]),
    ({"objective__dataset": {"path": "d.csv", "sep": ";"}}, "objective.dataset", ["unknown key `sep`", "path, target"]),
    ({"objective__dataset": {"path": "d.csv", "target": 3}}, "objective.dataset.target", ["int 3"]),
    (
        {"objective__dataset": {"name": "iris", "n_samples": 10}},
        "objective.dataset",
        ["unknown key `n_samples`", "allowed: name"],
    ),
    (
        {"objective__dataset": {"name": "make_classification", "n_samples": "many"}},
        "objective.dataset.n_samples",
        ["must be an integer", "str 'many'"],
    ),
    (
        {"objective__dataset": {"name": "make_classification", "n_classes": 3, "n_informative": 2}},
        "objective.dataset",
        ["n_classes * n_clusters_per_class <= 2**n_informative", "3 * 2 = 6 > 2**2 = 4", "n_informative=2 (yours)"],
    ),
    (
        {"objective__dataset": {"name": "make_classification", "n_features": 3, "n_classes": 5}},
        "objective.dataset",
        ["5 * 2 = 10 > 2**3 = 8", "n_informative=3 (default min(5, n_features))"],
    ),
    (
        {"objective__dataset": {"name": "make_classification", "n_features": 3, "n_redundant": 1}},
        "objective.dataset",
        ["n_informative + n_redundant + n_repeated <= n_features", "3 + 1 + 0 = 4 > n_features=3"],
    ),
    (
        {"objective__dataset": {"name": "make_classification", "weights": [0.4, 0.3, 0.2, 0.1]}},
        "objective.dataset.weights",
        ["n_classes or n_classes - 1", "n_classes=3 (default 3)", "got 4"],
    ),
    (
        {"objective__dataset": {"name": "make_classification", "weights": [0.7, 0.6]}},
        "objective.dataset.weights",
        ["sum to at most 1", "got sum 1.3"],
    ),
    (
        {"objective__dataset": {"name": "diabetes"}},
        "objective.task",
        ["`diabetes` is a regression set", "task classification"],
    ),
    ({"objective__early_stopping": {"patience": 0}}, "objective.early_stopping.patience", [">= 1", "got 0"]),
    ({"objective__early_stopping": {"min_delta": 0.1}}, "objective.early_stopping.patience", ["required"]),
    (
        {"objective__early_stopping": {"patience": 3, "mode": "max"}},
        "objective.early_stopping",
        ["unknown key `mode`", "patience, min_delta, monitor"],
    ),
    (
        {"objective__early_stopping": {"patience": 3, "monitor": "test_accuracy"}},
        "objective.early_stopping.monitor",
        ["`test_accuracy`", "val_loss"],
    ),
    ({"objective__callable": "pkg.mod:fn"}, "objective.callable", ["only used with framework python", "torch"]),
    ({"objective__options": {"a": 1}}, "objective.options", ["only used with framework python"]),
    ({"space": ...}, "space", ["required"]),
    ({"space": {}}, "space", ["at least one parameter"]),
    (
        {"space__units": {"type": "int", "low": 0, "high": 8, "log": True}},
        "space.units",
        ["`low > 0` must hold when log is true", "low=0"],
    ),
    ({"space__colour": ["red"]}, "space.colour", ["unknown hyperparameter `colour` for framework torch", "n_layers"]),
    ({"sampler": "grid"}, "space.dropout", ["grid sampler", "step"]),
]


@pytest.mark.parametrize(
    ("changes", "path", "fragments"), BAD_CASES, ids=[str(c[1]) + "-" + str(i) for i, c in enumerate(BAD_CASES)]
)
def test_each_rule_is_a_problem_with_path_and_value(changes, path, fragments):
    with pytest.raises(SpecError, match=problem_pattern(path, *fragments)):
        parse_spec(spec(**changes))


PYTHON_BAD = [
    ({"objective__callable": ...}, "objective.callable", ["required for framework python"]),
    ({"objective__callable": "no_colon"}, "objective.callable", ["package.module:function", "'no_colon'"]),
    ({"objective__callable": 5}, "objective.callable", ["int 5"]),
    ({"objective__options": [1]}, "objective.options", ["must be a mapping", "list [1]"]),
    ({"space__x": {"type": "float", "low": 1.0, "high": -1.0}}, "space.x", ["`low <= high`", "low=1.0, high=-1.0"]),
    ({"space__my-param": [1, 2]}, "space.my-param", ["Python identifiers", "'my-param'"]),
]


@pytest.mark.parametrize(("changes", "path", "fragments"), PYTHON_BAD)
def test_python_objective_rules(changes, path, fragments):
    with pytest.raises(SpecError, match=problem_pattern(path, *fragments)):
        parse_spec(spec(PYTHON, **changes))


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "non-empty"),
        ("a/b", "path separators"),
        ("a\\b", "path separators"),
        (".", "'.' or '..'"),
        ("..", "'.' or '..'"),
        ("a..b", "'..'"),
        ("a b", "[A-Za-z0-9._-]+"),
        ("naïve", "[A-Za-z0-9._-]+"),
        ("a\0b", "NUL"),
        ("x" * 129, "at most 128 characters"),
        (2024, "quote it"),
    ],
)
def test_bad_study_names(name, fragment):
    with pytest.raises(SpecError, match=problem_pattern("study", fragment)):
        parse_spec(spec(study=name))
    with pytest.raises(SpecError, match=re.escape(fragment)):
        validate_study_name(name)


def test_study_name_message_echoes_the_value():
    with pytest.raises(SpecError, match=re.escape("got 'my study'")):
        validate_study_name("my study")


@pytest.mark.parametrize("name", ["a", "seed-mlp-torch", "A.b_c-1", "x" * 128, "..a"[1:]])
def test_good_study_names(name):
    assert validate_study_name(name) == name


def test_every_problem_is_reported_at_once():
    problems = problems_of(spec(trials="ten", workers=0, space__units={"type": "int", "low": 5, "high": 1}))
    assert [p.path for p in problems] == ["trials", "workers", "space.units"]
    assert "str 'ten'" in problems[0].message
    assert "low=5, high=1" in problems[2].message


def test_many_problems_in_many_sections():
    data = spec(
        study="bad/name",
        banana=1,
        objective__epochs=-1,
        objective__dataset={"name": "iris", "colour": "red"},
        space__dropout={"type": "float", "low": 0.0, "high": 1.5},
        space__activation=["relu", "swish"],
    )
    paths = [p.path for p in problems_of(data)]
    assert paths == [
        "",
        "study",
        "objective.epochs",
        "objective.dataset",
        "space.dropout",
        "space.activation",
    ]


def test_not_a_mapping():
    with pytest.raises(SpecError, match="must be a mapping of keys, got list"):
        parse_spec([1, 2])  # type: ignore[arg-type]


def test_grid_sampler_accepts_a_finite_space():
    s = parse_spec(spec(sampler="grid", space="mlp-small"))
    assert s.space.grid_size() == 8


def test_grid_sampler_reports_every_infinite_param():
    problems = problems_of(spec(sampler="grid"))
    assert sorted(p.path for p in problems) == ["space.dropout", "space.learning_rate"]


def test_grid_sampler_rejects_per_layer_units():
    data = spec(
        sampler="grid",
        space={"n_layers": [1, 2], "units": {"type": "categorical", "choices": [8, 16], "layout": "per_layer"}},
    )
    with pytest.raises(SpecError, match=problem_pattern("space.units", "per_layer")):
        parse_spec(data)


def test_searched_framework_choices_must_be_torch_or_keras():
    data = spec()
    data["space"]["framework"] = ["torch", "jax"]
    with pytest.raises(SpecError, match=problem_pattern("space.framework", "unknown framework `jax`", "torch, keras")):
        parse_spec(data)


# ---------------------------------------------------------------------- round trip
@pytest.mark.parametrize(
    "data",
    [
        spec(),
        spec(PYTHON, objective__options={"seconds": 0.5, "nested": {"a": [1, 2]}}, experiment="exp", timeout=30),
        spec(direction=["maximize", "minimize"], metric=["val_accuracy", "n_params"], pruner="none", sampler="nsga2"),
        spec(space={"use": "mlp-funnel", "dropout": 0.1}, sampler={"name": "random"}),
        spec(
            space={"hidden_layers": [[64, 32], [128, 64, 32]], "dropout": [0.2, 0.3], "learning_rate": [0.001, 0.01]},
            sampler="grid",
        ),
        spec(objective__dataset={"path": "x.csv", "target": "y"}, objective__test_split=0),
        spec(pruner={"name": "patient", "wrapped": {"name": "percentile", "percentile": 40}, "patience": 2},
             objective__dataset={"name": "make_regression", "noise": 0.5}, objective__task="regression",
             metric="val_mae"),
    ],
    ids=["design", "python", "multi", "funnel", "hidden-layers-grid", "csv", "patient-regression"],
)
def test_to_dict_round_trips(data):
    s = parse_spec(data, source="a.yaml")
    plain = s.to_dict()
    assert "source" not in plain
    assert parse_spec(plain, source="a.yaml") == s
    via_json = json.loads(json.dumps(plain))
    assert parse_spec(via_json, source="a.yaml") == s
    assert parse_spec(via_json).to_dict() == plain


def test_to_dict_is_a_copy():
    s = parse_spec(spec(PYTHON, objective__options={"nested": {"a": [1]}}))
    s.to_dict()["objective"]["options"]["nested"]["a"].append(2)
    assert s.objective.options == {"nested": {"a": [1]}}


# ---------------------------------------------------------------------- files
def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL_YAML = """\
study: tiny
metric: val_accuracy
trials: 3
objective:
  dataset: {name: iris}
space: mlp-small
"""


def test_load_spec_reads_yaml_and_sets_source(tmp_path):
    path = write(tmp_path, MINIMAL_YAML)
    s = load_spec(path)
    assert s.study == "tiny" and s.trials == 3 and s.source == str(path)


def test_load_spec_applies_overrides_before_validation(tmp_path):
    path = write(tmp_path, MINIMAL_YAML.replace("trials: 3", "trials: zero"))
    with pytest.raises(SpecError, match=problem_pattern("trials", "str 'zero'")):
        load_spec(path)
    s = load_spec(path, {"trials": 20, "workers": 2, "study": "x", "timeout": None, "objective.epochs": 3})
    assert (s.trials, s.workers, s.study, s.objective.epochs) == (20, 2, "x", 3)
    with pytest.raises(SpecError, match=problem_pattern("workers", ">= 1", "got 0")):
        load_spec(path, {"trials": 5, "workers": 0})


def test_apply_overrides_does_not_touch_the_input():
    data = {"objective": {"epochs": 3}, "trials": 1}
    out = apply_overrides(data, {"objective.epochs": 9, "trials": None, "sampler.name": "random"})
    assert out == {"objective": {"epochs": 9}, "trials": 1, "sampler": {"name": "random"}}
    assert data == {"objective": {"epochs": 3}, "trials": 1}
    with pytest.raises(SpecError, match="trials is not a mapping"):
        apply_overrides(data, {"trials.x": 1})


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError, match=re.escape(f"spec file {path} does not exist")) as info:
        load_spec(path)
    assert info.value.problems[0].path == "" and info.value.source == str(path)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "study: x\nmetric: [val_accuracy\ntrials: 3\n")
    with pytest.raises(SpecError, match=re.escape(f"invalid YAML in {path} at line ")) as info:
        load_spec(path)
    assert info.value.problems[0].path == ""


def test_duplicate_keys_are_an_error(tmp_path):
    path = write(tmp_path, MINIMAL_YAML + "trials: 5\n")
    with pytest.raises(SpecError, match=r"at line 7, column 1: found duplicate key 'trials'"):
        load_spec(path)


def test_yaml_merge_keys_still_work():
    loaded = load_yaml("a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  y: 3\n", "t")
    assert loaded == {"a": {"x": 1, "y": 2}, "b": {"x": 1, "y": 3}}


def test_empty_file_and_non_mapping(tmp_path):
    with pytest.raises(SpecError, match="is empty"):
        load_spec(write(tmp_path, "# nothing\n"))
    with pytest.raises(SpecError, match="must be a mapping of keys, got list"):
        load_spec(write(tmp_path, "- a\n- b\n", "list.yaml"))


def test_exponent_floats_without_a_dot(tmp_path):
    text = MINIMAL_YAML.replace(
        "space: mlp-small", "space:\n  learning_rate: {type: float, low: 1e-4, high: 1E-1, log: true}\n"
    )
    s = load_spec(write(tmp_path, text))
    lr = s.space.get("learning_rate")
    assert lr is not None and (lr.low, lr.high) == (1e-4, 0.1)


def test_yaml_nan_is_a_problem(tmp_path):
    text = MINIMAL_YAML.replace("space: mlp-small", "space:\n  dropout: {type: float, low: .nan, high: 0.5}\n")
    with pytest.raises(SpecError, match=problem_pattern("space.dropout.low", "finite", "nan")):
        load_spec(write(tmp_path, text))


def test_example_seed_mlp_torch_loads():
    s = load_spec(ROOT / "examples" / "seed_mlp_torch.yaml")
    assert s.study == "seed-mlp-torch"
    assert (s.trials, s.workers, s.objective.epochs) == (20, 2, 30)
    assert s.pruner == PrunerSpec("median", {"n_warmup_steps": 5})
    assert s.objective.dataset is not None
    assert s.objective.dataset.options == {"n_samples": 1000, "n_features": 20, "n_classes": 3, "n_informative": 5}
    assert s.space.names() == list(BASE["space"])


def test_studyspec_is_frozen():
    s = parse_spec(spec())
    with pytest.raises(AttributeError):
        s.trials = 3  # type: ignore[misc]
    assert isinstance(s, StudySpec)


def test_a_misspelt_name_or_option_gets_the_closest_valid_one_suggested():
    from sweeplab.core.errors import SpecError

    data = {"study": "s", "metric": "val_accuracy", "sampler": {"name": "tpee"},
            "pruner": {"name": "median", "n_warmup_step": 2},
            "objective": {"dataset": {"name": "iris"}}, "space": "mlp"}
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    text = str(caught.value)
    assert "sampler.name: unknown sampler `tpee` (did you mean `tpe`?)" in text
    assert "unknown key `n_warmup_step` (did you mean `n_warmup_steps`?)" in text


def test_deterministic_is_off_by_default_and_round_trips_when_on():
    off = parse_spec(spec())
    assert off.deterministic is False and "deterministic" not in off.to_dict()
    on = parse_spec(spec(deterministic=True))
    assert on.deterministic is True and on.to_dict()["deterministic"] is True
    assert parse_spec(on.to_dict()) == on and on.deterministic_lag is None
    lagged = parse_spec(spec(deterministic={"lag": 4}))
    assert (lagged.deterministic, lagged.deterministic_lag) == (True, 4)
    assert lagged.to_dict()["deterministic"] == {"lag": 4} and parse_spec(lagged.to_dict()) == lagged


def test_mo_successive_halving_is_accepted_for_two_objectives_with_its_defaults():
    from sweeplab.core.pareto import ParetoHalving
    from sweeplab.search.samplers import build_pruner

    s = parse_spec(spec(direction=["maximize", "minimize"], metric=["val_accuracy", "val_loss"],
                        pruner={"name": "mo_successive_halving", "reduction_factor": 2}))
    assert build_pruner(s) == ParetoHalving(min_resource=1, reduction_factor=2, min_early_stopping_rate=0,
                                            bootstrap_count=0)


def test_priority_is_a_positive_run_level_weight():
    from sweeplab.study.resume import spec_diff

    assert parse_spec(spec(PYTHON)).priority == 1.0
    assert "priority" not in parse_spec(spec(PYTHON)).to_dict()  # studies stored before the key diff as before
    weighted = parse_spec(spec(PYTHON, priority=3))
    assert weighted.priority == 3.0 and parse_spec(weighted.to_dict()) == dataclasses.replace(weighted, source="spec")
    assert spec_diff(parse_spec(spec(PYTHON)).to_dict(), weighted.to_dict()) == []  # free to change on resume
    with pytest.raises(SpecError, match=r"priority: must be > 0, got 0"):
        parse_spec(spec(PYTHON, priority=0))

"""Parameter forms of a search space and every rule they must follow."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from sweeplab.core.errors import Problem, SpecError
from sweeplab.spaces import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    ParamError,
    SearchSpace,
    decode_layers,
    encode_layers,
    parse_param,
    parse_space,
)
from sweeplab.spec import parse_spec


def spec_with_space(space: Any, framework: str = "python") -> dict[str, Any]:
    if framework == "python":
        objective = {"framework": "python", "callable": "pkg.mod:fn"}
    else:
        objective = {"framework": framework, "dataset": {"name": "iris"}}
    return {"study": "s", "metric": "val_loss", "objective": objective, "space": space}


def assert_problem(space: Any, path: str, *fragments: str, framework: str = "python") -> None:
    """parse_spec of a spec with ``space`` raises a SpecError naming ``path`` and every fragment."""
    pattern = re.escape(f"- {path}: ") + ".*".join(re.escape(f) for f in ("", *fragments))
    with pytest.raises(SpecError, match=pattern):
        parse_spec(spec_with_space(space, framework))


def parse(data: Any, framework: str | None = None) -> tuple[SearchSpace, list[Problem]]:
    problems: list[Problem] = []
    return parse_space(data, "space", framework, problems), problems


# ---------------------------------------------------------------------- forms
def test_yaml_forms_of_params():
    space, problems = parse(
        {
            "a": {"type": "int", "low": 1, "high": 5},
            "b": {"type": "int", "low": 2, "high": 10, "step": 2},
            "c": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "d": {"type": "float", "low": 0, "high": 1, "step": 0.25},
            "e": {"type": "categorical", "choices": ["x", "y"]},
            "f": [0.2, 0.3, 0.4],
            "g": "relu",
            "h": [[64, 32], [128, 64, 32]],
            "i": {"type": "fixed", "value": [64, 32]},
            "j": {"type": "fixed", "value": 3},
            "k": [0, 0.5],
        }
    )
    assert problems == []
    assert space.params == (
        IntParam("a", 1, 5),
        IntParam("b", 2, 10, step=2),
        FloatParam("c", 1e-4, 1e-1, log=True),
        FloatParam("d", 0.0, 1.0, step=0.25),
        CategoricalParam("e", ("x", "y")),
        CategoricalParam("f", (0.2, 0.3, 0.4)),
        FixedParam("g", "relu"),
        CategoricalParam("h", ((64, 32), (128, 64, 32))),
        FixedParam("i", (64, 32)),
        FixedParam("j", 3),
        CategoricalParam("k", (0, 0.5)),
    )
    assert space.names() == list("abcdefghijk")
    assert not space.mlp


def test_param_to_dict_round_trips():
    for param in (
        IntParam("a", 1, 5, step=2),
        IntParam("a", 1, 64, log=True),
        FloatParam("a", 0.0, 1.0),
        FloatParam("a", 0.0, 1.0, step=0.1),
        CategoricalParam("a", (True, False)),
        CategoricalParam("a", ((64,), (128, 64))),
        FixedParam("a", 0.5),
        FixedParam("a", (8, 8)),
    ):
        problems: list[Problem] = []
        assert parse_param("a", param.to_dict(), "space.a", problems) == param
        assert problems == []


def test_layers_encoding():
    assert encode_layers([128, 64, 32]) == "128-64-32"
    assert encode_layers((64,)) == "64"
    assert decode_layers("128-64-32") == [128, 64, 32]
    assert decode_layers("64") == [64]
    assert decode_layers((8, 4)) == [8, 4]
    for bad in ("64-x", "", "-", 3.5, [1.5]):
        with pytest.raises(ValueError):
            decode_layers(bad)
    p = CategoricalParam("hidden_layers", ((64, 32), (16,)))
    assert p.is_layers and p.optuna_choices == ("64-32", "16")
    assert p.decode("64-32") == [64, 32]


def test_direct_construction_checks_every_rule():
    with pytest.raises(ParamError) as info:
        IntParam("n", 5, 1, step=0, log=True)
    assert info.value.messages == [
        "`low <= high` must hold, got low=5, high=1",
        "`step > 0` must hold, got step=0",
    ]
    with pytest.raises(ParamError, match="log and step cannot be combined"):
        FloatParam("x", 0.1, 1.0, step=0.1, log=True)
    with pytest.raises(ParamError, match="non-empty list"):
        CategoricalParam("c", ())
    with pytest.raises(ParamError, match="name must be a non-empty string"):
        FixedParam("", 1)
    with pytest.raises(ValueError, match="unique"):
        SearchSpace((IntParam("a", 1, 2), IntParam("a", 1, 3)))


# ---------------------------------------------------------------------- rules
RULES = [
    # (param form, path, fragments)
    ({"type": "int", "low": 5, "high": 1}, "space.p", ["`low <= high`", "low=5, high=1"]),
    ({"type": "float", "low": 0.5, "high": 0.1}, "space.p", ["`low <= high`", "low=0.5, high=0.1"]),
    ({"type": "int", "low": 0, "high": 8, "log": True}, "space.p", ["`low > 0` must hold when log is true", "low=0"]),
    ({"type": "float", "low": -1.0, "high": 1.0, "log": True}, "space.p", ["`low > 0`", "low=-1.0"]),
    ({"type": "int", "low": 1, "high": 8, "step": 0}, "space.p", ["`step > 0`", "step=0"]),
    ({"type": "int", "low": 1, "high": 8, "step": -2}, "space.p", ["`step > 0`", "step=-2"]),
    ({"type": "float", "low": 0.0, "high": 1.0, "step": 0}, "space.p", ["`step > 0`", "step=0"]),
    (
        {"type": "int", "low": 1, "high": 8, "step": 2, "log": True},
        "space.p",
        ["log and step cannot be combined", "step=2"],
    ),
    (
        {"type": "float", "low": 0.1, "high": 1.0, "step": 0.1, "log": True},
        "space.p",
        ["log and step cannot be combined", "step=0.1"],
    ),
    ({"type": "float", "low": math.nan, "high": 1.0}, "space.p.low", ["finite", "float nan"]),
    ({"type": "float", "low": 0.0, "high": math.inf}, "space.p.high", ["finite", "float inf"]),
    ({"type": "float", "low": 0.0, "high": 1.0, "step": math.nan}, "space.p.step", ["finite", "nan"]),
    ({"type": "float", "low": "0", "high": 1.0}, "space.p.low", ["must be a number", "str '0'"]),
    ({"type": "int", "low": 1.5, "high": 4}, "space.p.low", ["must be an integer", "float 1.5"]),
    ({"type": "int", "low": 1, "high": "4"}, "space.p.high", ["must be an integer", "str '4'"]),
    ({"type": "int", "low": True, "high": 4}, "space.p.low", ["must be an integer", "bool True"]),
    ({"type": "int", "low": 1, "high": 4, "log": "yes"}, "space.p.log", ["true or false", "str 'yes'"]),
    ({"type": "int", "high": 4}, "space.p.low", ["required for type int"]),
    ({"type": "categorical", "choices": []}, "space.p", ["non-empty list", "[]"]),
    ([], "space.p", ["non-empty list", "[]"]),
    ({"type": "categorical", "choices": "abc"}, "space.p.choices", ["must be a list", "str 'abc'"]),
    ({"type": "categorical"}, "space.p.choices", ["required for type categorical"]),
    (["relu", 3], "space.p", ["one type", "str 'relu' and int 3"]),
    ([True, 0], "space.p", ["one type", "bool True and int 0"]),
    ([[64, 32], 16], "space.p", ["one type", "and int 16"]),
    ([1, math.nan], "space.p", ["finite", "float nan"]),
    ([1, None], "space.p", ["bool, number, string or list", "NoneType None"]),
    ([[64, -1]], "space.p", ["integers >= 0", "[64, -1]"]),
    ([[]], "space.p", ["non-empty list of integers", "[]"]),
    ([[64, "a"]], "space.p", ["integers >= 0", "[64, 'a']"]),
    (["a", "b", "a"], "space.p", ["distinct", "'a' twice"]),
    ({"type": "int", "low": 1, "high": 4, "lo": 1}, "space.p", ["unknown key `lo`", "allowed: type, low, high"]),
    (
        {"type": "categorical", "choices": [1], "weights": [1]},
        "space.p",
        ["unknown key `weights`", "allowed: type, choices"],
    ),
    ({"type": "integer", "low": 1, "high": 4}, "space.p.type", ["unknown type `integer`", "int, float, categorical"]),
    ({"low": 1, "high": 4}, "space.p", ["needs `type`", "got keys: low, high"]),
    (None, "space.p", ["got None"]),
    ({"type": "fixed", "value": {"a": 1}}, "space.p", ["bool, number, string or list", "dict"]),
]


@pytest.mark.parametrize(("form", "path", "fragments"), RULES, ids=[f"rule{i}" for i in range(len(RULES))])
def test_param_rules(form, path, fragments):
    assert_problem({"p": form}, path, *fragments)


def test_all_violations_of_one_param_are_reported():
    space, problems = parse({"p": {"type": "float", "low": 0.0, "high": -1.0, "step": 0.1, "log": True, "q": 1}})
    messages = [p.message for p in problems]
    assert [p.path for p in problems] == ["space.p"] * 4
    assert messages[0].startswith("unknown key `q`")
    assert any("`low <= high`" in m for m in messages)
    assert any("log and step cannot be combined" in m for m in messages)
    assert any("`low > 0`" in m for m in messages)
    assert space.params == ()


def test_numbers_may_mix_ints_and_floats():
    space, problems = parse({"dropout": [0, 0.25, 0.5]}, "torch")
    assert problems == [] and space.get("dropout") == CategoricalParam("dropout", (0, 0.25, 0.5))


def test_python_space_names_must_be_identifiers():
    assert_problem({"2x": [1, 2]}, "space.2x", "Python identifiers", "'2x'")


def test_space_must_be_a_mapping_and_not_empty():
    assert_problem({}, "space", "at least one parameter")
    assert_problem([1, 2], "space", "mapping of parameters or the name of a built-in space", "list [1, 2]")


# ---------------------------------------------------------------------- MLP names and meanings
MLP_RULES = [
    ({"width": [8, 16]}, "space.width", ["unknown hyperparameter `width` for framework torch", "known: n_layers"]),
    ({"activation": ["relu", "swish"]}, "space.activation", ["unknown activation `swish`", "relu, tanh"]),
    ({"activation": "swish"}, "space.activation", ["unknown activation `swish`"]),
    (
        {"optimizer": {"type": "categorical", "choices": ["adam", "lamb"]}},
        "space.optimizer",
        ["unknown optimizer `lamb`", "sgd, adam"],
    ),
    ({"lr_schedule": ["cosine"]}, "space.lr_schedule", ["unknown lr_schedule `cosine`", "none, exponential"]),
    ({"framework": ["torch", "jax"]}, "space.framework", ["unknown framework `jax`", "torch, keras"]),
    ({"activation": [1, 2]}, "space.activation", ["values must be strings", "int 1"]),
    ({"dropout": {"type": "float", "low": 0.0, "high": 1.0}}, "space.dropout", ["in [0, 1)", "high=1.0"]),
    ({"dropout": [0.1, 1.2]}, "space.dropout", ["in [0, 1)", "float 1.2"]),
    ({"dropout": ["a"]}, "space.dropout", ["values must be numbers", "str 'a'"]),
    ({"learning_rate": {"type": "float", "low": 0.0, "high": 0.1}}, "space.learning_rate", ["> 0", "low=0.0"]),
    (
        {"n_layers": {"type": "float", "low": 1, "high": 3}},
        "space.n_layers",
        ["must be an integer parameter", "got type float"],
    ),
    ({"n_layers": {"type": "int", "low": 0, "high": 3}}, "space.n_layers", [">= 1", "low=0"]),
    ({"batch_size": [16, 32.0]}, "space.batch_size", ["values must be integers", "float 32.0"]),
    ({"units": 0}, "space.units", [">= 1", "int 0"]),
    (
        {"batch_norm": {"type": "int", "low": 0, "high": 1}},
        "space.batch_norm",
        ["categorical or fixed", "got type int"],
    ),
    ({"batch_norm": [1, 0]}, "space.batch_norm", ["true or false", "int 1"]),
    ({"momentum": [0.9, 1.5]}, "space.momentum", ["in [0, 1]", "1.5"]),
    ({"hidden_layers": [64, 32]}, "space.hidden_layers", ["lists of layer widths", "int 64", "[[64, 32]]"]),
    ({"hidden_layers": [[64, 0]]}, "space.hidden_layers", ["widths >= 1", "[64, 0]"]),
    (
        {"hidden_layers": [[64, 32]], "n_layers": [1, 2]},
        "space.hidden_layers",
        ["replaces n_layers and units", "n_layers"],
    ),
    (
        {"units": {"type": "int", "low": 8, "high": 64, "layout": "pyramid"}},
        "space.units.layout",
        ["unknown layout `pyramid`", "constant, per_layer, funnel"],
    ),
    ({"units": {"type": "int", "low": 8, "high": 64, "min_units": 0}}, "space.units.min_units", [">= 1", "got 0"]),
    (
        {"units": {"type": "int", "low": 4, "high": 64, "layout": "funnel"}},
        "space.units",
        ["`units >= min_units` must hold for layout funnel", "units=4, min_units=8"],
    ),
    (
        {"units": {"type": "int", "low": 8, "high": 64, "colour": 1}},
        "space.units",
        ["unknown key `colour`", "layout, min_units"],
    ),
    (
        {"n_layers": {"type": "int", "low": 1, "high": 3, "layout": "funnel"}},
        "space.n_layers",
        ["unknown key `layout`"],
    ),
]


@pytest.mark.parametrize(("space", "path", "fragments"), MLP_RULES, ids=[f"mlp{i}" for i in range(len(MLP_RULES))])
def test_mlp_rules(space, path, fragments):
    assert_problem(space, path, *fragments, framework="torch")


def test_keras_names_are_the_torch_names():
    assert_problem({"width": [8]}, "space.width", "for framework keras", framework="keras")


def test_python_space_has_no_layout():
    assert_problem(
        {"units": {"type": "int", "low": 8, "high": 64, "layout": "funnel"}}, "space.units", "unknown key `layout`"
    )


def test_layouts_parse():
    for layout in ("constant", "per_layer", "funnel"):
        space, problems = parse(
            {"n_layers": [1, 2], "units": {"type": "int", "low": 16, "high": 64, "layout": layout, "min_units": 4}},
            "torch",
        )
        assert problems == []
        assert (space.layout, space.min_units) == (layout, 4)
        assert space.get("units") == IntParam("units", 16, 64)


def test_space_to_dict_round_trips():
    data = {
        "n_layers": {"type": "int", "low": 1, "high": 4},
        "units": {"type": "categorical", "choices": [16, 32], "layout": "per_layer"},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
        "activation": "relu",
        "batch_size": [16, 32],
    }
    space, problems = parse(data, "torch")
    assert problems == []
    dumped = space.to_dict()
    assert dumped["units"] == {"type": "categorical", "choices": [16, 32], "layout": "per_layer"}
    assert dumped["activation"] == "relu"
    again, problems = parse(dumped, "torch")
    assert problems == [] and again == space
    fixed_funnel, problems = parse(
        {"units": {"type": "fixed", "value": 128, "layout": "funnel", "min_units": 16}}, "torch"
    )
    assert problems == []
    assert fixed_funnel.to_dict() == {"units": {"type": "fixed", "value": 128, "layout": "funnel", "min_units": 16}}
    assert parse(fixed_funnel.to_dict(), "torch")[0] == fixed_funnel

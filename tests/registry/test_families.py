"""The model-family table: one entry per ``objective.model``, read by the space parser, the configs and the help."""

from __future__ import annotations

import dataclasses

import pytest

from sweeplab.core.errors import Problem
from sweeplab.objectives.config import CNNConfig, MLPConfig, NetworkConfig, config_type
from sweeplab.registry.families import CONV_OPTIONS, MODEL_FAMILIES, MODEL_NAMES, family_defaults, get_family
from sweeplab.registry.options import Option
from sweeplab.spaces import parse_space
from sweeplab.spaces.space import DEFAULT_N_LAYERS, DEFAULT_UNITS, FAMILY_PARAMS

SPACE_FOLDED = {"n_layers", "units", "hidden_layers"}  # folded into hidden_units by the space
NOT_CONFIG = {"framework", "n_frozen_layers", "finetune_learning_rate"}  # read by the coordinator / fine-tuning


def test_the_families_and_their_configs() -> None:
    assert MODEL_NAMES == ("mlp", "cnn")  # mlp first: the default
    assert config_type("mlp") is MLPConfig and config_type("cnn") is CNNConfig
    assert {MODEL_FAMILIES[n].data for n in MODEL_NAMES} == {"rows", "images"}
    assert MODEL_FAMILIES["mlp"].transfer and not MODEL_FAMILIES["cnn"].transfer
    with pytest.raises(KeyError, match="unknown model family 'rnn'; use one of mlp, cnn"):
        get_family("rnn")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_defaults_are_the_registrys(name: str) -> None:
    """Every hyperparameter is a config field with the registry's default, or is folded by the space."""
    cls = config_type(name)
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    for option in get_family(name).schema.options:
        if option.name in SPACE_FOLDED | NOT_CONFIG:
            assert option.name not in fields
            continue
        assert option.name in fields, f"{name}: hyperparameter {option.name} is no field of {cls.__name__}"
        assert fields[option.name] == option.default, option.name
    # and every config field except hidden_units is a hyperparameter of the family
    assert set(fields) - {"hidden_units"} <= set(get_family(name).names)
    assert family_defaults(name)["n_layers"] == DEFAULT_N_LAYERS and family_defaults(name)["units"] == DEFAULT_UNITS


def test_space_rules_come_from_the_table() -> None:
    assert {name: list(rules) for name, rules in FAMILY_PARAMS.items()} == {
        name: list(f.names) for name, f in MODEL_FAMILIES.items()}
    problems: list[Problem] = []
    space = parse_space({o.name: o.default for o in CONV_OPTIONS}, "space", "torch", problems, model="cnn")
    assert problems == [] and space.names() == [o.name for o in CONV_OPTIONS]


def test_a_bound_of_the_table_is_the_space_rule() -> None:
    """A CNN's head may have no hidden layer; an MLP's may not (both from their entries)."""
    def check(model: str) -> list[Problem]:
        problems: list[Problem] = []
        parse_space({"n_layers": {"type": "int", "low": 0, "high": 2}}, "space", "torch", problems, model=model)
        return problems

    assert check("cnn") == []
    assert [p.message for p in check("mlp")] == ["values must be >= 1, got low=0"]


def test_option_bounds_in_words() -> None:
    assert Option("a", "number", "", minimum=0, below=1).bounds_text() == "in [0, 1)"
    assert Option("a", "number", "", above=0, maximum=1).bounds_text() == "in (0, 1]"
    assert Option("a", "number", "", above=0).rule_text() == "a number > 0"
    assert Option("a", "ints", "", minimum=1).rule_text() == "a list of integers >= 1"
    assert not Option("a", "number", "", above=0, below=1).within(1.0)


def test_network_config_is_every_family_config() -> None:
    assert all(issubclass(config_type(n), NetworkConfig) for n in MODEL_NAMES)
    cfg = CNNConfig.from_params({"n_blocks": 3, "filters": 4, "filter_growth": 1.5, "hidden_units": [], "extra": 1})
    assert cfg.plan((8, 8, 1), 10).filters == (4, 6, 9)
    with pytest.raises(ValueError, match="pooling must be one of"):
        CNNConfig.from_params({"pooling": "min"})
    with pytest.raises(ValueError, match="hidden_units must be a non-empty list"):
        MLPConfig.from_params({"hidden_units": []})


def test_validate_help_lists_the_families_and_every_hyperparameter(capsys: pytest.CaptureFixture[str]) -> None:
    from sweeplab.cli import main

    with pytest.raises(SystemExit) as done:
        main(["validate", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    listed = {line.split()[0] for line in text.splitlines() if line.startswith("  ") and line.split()}
    assert set(MODEL_NAMES) <= listed
    assert {o.name for f in MODEL_FAMILIES.values() for o in f.schema.options} <= listed
    assert "[mlp] an integer >= 1; default 2 | [cnn] an integer >= 0; default 2" in text
    assert "[cnn] one of max, avg, none; default max" in text

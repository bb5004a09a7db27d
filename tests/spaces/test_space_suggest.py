"""Sampling a space with real Optuna trials (define-by-run) and resolving objective params."""

from __future__ import annotations

import itertools
from typing import Any

import optuna
import pytest

from sweeplab.core.errors import Problem
from sweeplab.objectives.config import MLPConfig
from sweeplab.spaces import SearchSpace, funnel_widths, parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def space_of(data: Any, framework: str | None = "torch") -> SearchSpace:
    problems: list[Problem] = []
    space = parse_space(data, "space", framework, problems)
    assert problems == []
    return space


def sample(space: SearchSpace, n: int = 30, seed: int = 0, sampler: str = "random") -> list[dict[str, Any]]:
    """Raw params of ``n`` asked-and-told trials, each checked against what Optuna recorded."""
    maker = optuna.samplers.RandomSampler if sampler == "random" else optuna.samplers.TPESampler
    study = optuna.create_study(sampler=maker(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        raw = space.suggest(trial)
        fixed = {p.name for p in space.params if p.name not in trial.params and p.name in raw}
        assert {k: v for k, v in raw.items() if k not in fixed} == trial.params
        study.tell(trial, 0.0)
        out.append(raw)
    return out


ARCH = {"n_layers": {"type": "int", "low": 1, "high": 4}}


def test_constant_layout():
    space = space_of({**ARCH, "units": {"type": "int", "low": 8, "high": 256, "log": True}, "dropout": [0.0, 0.2]})
    for raw in sample(space):
        assert set(raw) == {"n_layers", "units", "dropout"}
        params = space.resolve(raw)
        assert params == {"hidden_units": [raw["units"]] * raw["n_layers"], "dropout": raw["dropout"]}
        MLPConfig.from_params(params)


def test_per_layer_samples_units_only_for_existing_layers():
    space = space_of({**ARCH, "units": {"type": "int", "low": 8, "high": 128, "log": True, "layout": "per_layer"}})
    depths = set()
    for raw in sample(space, n=40):
        n = raw["n_layers"]
        depths.add(n)
        assert set(raw) == {"n_layers"} | {f"units_{i}" for i in range(n)}
        assert all(8 <= raw[f"units_{i}"] <= 128 for i in range(n))
        assert space.resolve(raw) == {"hidden_units": [raw[f"units_{i}"] for i in range(n)]}
    assert depths == {1, 2, 3, 4}


def test_per_layer_samples_after_n_layers_even_if_declared_first():
    space = space_of({"units": {"type": "categorical", "choices": [8, 16, 32], "layout": "per_layer"}, **ARCH})
    for raw in sample(space, n=10):
        assert next(iter(raw)) == "n_layers"
        assert len(space.resolve(raw)["hidden_units"]) == raw["n_layers"]


def test_per_layer_with_fixed_depth():
    space = space_of({"n_layers": 3, "units": {"type": "int", "low": 8, "high": 16, "layout": "per_layer"}})
    for raw in sample(space, n=5):
        assert set(raw) == {"n_layers", "units_0", "units_1", "units_2"}
        assert raw["n_layers"] == 3


def test_funnel_widths_halve_down_to_min_units():
    space = space_of(
        {**ARCH, "units": {"type": "int", "low": 32, "high": 512, "log": True, "layout": "funnel", "min_units": 16}}
    )
    for raw in sample(space):
        assert set(raw) == {"n_layers", "units"}
        hidden = space.resolve(raw)["hidden_units"]
        assert len(hidden) == raw["n_layers"] and hidden[0] == raw["units"]
        for prev, nxt in itertools.pairwise(hidden):
            assert nxt == max(prev // 2, 16)
    assert funnel_widths(256, 4) == [256, 128, 64, 32]
    assert funnel_widths(20, 4) == [20, 10, 8, 8]
    assert funnel_widths(64, 0) == []


def test_mlp_funnel_builtin_matches_the_guide():
    space = space_of("mlp-funnel")
    assert space.resolve({"n_layers": 5, "units": 128})["hidden_units"] == [128, 64, 32, 16, 8]


def test_hidden_layers_are_encoded_for_optuna_and_decoded_by_resolve():
    space = space_of({"hidden_layers": [[64, 32], [128, 64, 32], [64, 32, 16]], "dropout": [0.2, 0.3, 0.4]})
    seen = set()
    for raw in sample(space):
        assert isinstance(raw["hidden_layers"], str)
        seen.add(raw["hidden_layers"])
        params = space.resolve(raw)
        assert params["hidden_units"] == [int(w) for w in raw["hidden_layers"].split("-")]
        assert "hidden_layers" not in params
    assert seen == {"64-32", "128-64-32", "64-32-16"}


def test_fixed_values_are_in_raw_and_resolved_but_not_suggested():
    space = space_of({"n_layers": 2, "units": [16, 32], "activation": "tanh"})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    raw = space.suggest(trial)
    assert set(trial.params) == {"units"}
    assert raw == {"n_layers": 2, "units": trial.params["units"], "activation": "tanh"}
    study.tell(trial, 1.0)
    frozen = study.trials[0]
    assert (
        space.resolve(frozen.params)
        == space.resolve(raw)
        == {
            "hidden_units": [raw["units"]] * 2,
            "activation": "tanh",
        }
    )


def test_fixed_layers_value():
    space = space_of({"hidden_layers": {"type": "fixed", "value": [32, 16]}, "learning_rate": [0.01]})
    raw = sample(space, n=1)[0]
    assert raw["hidden_layers"] == "32-16"
    assert space.resolve(raw)["hidden_units"] == [32, 16]
    assert space.resolve({"learning_rate": 0.01})["hidden_units"] == [32, 16]


def test_defaults_when_the_space_has_no_architecture():
    space = space_of("optimizers")
    raw = sample(space, n=1)[0]
    params = space.resolve(raw)
    assert params["hidden_units"] == [64, 64]
    assert set(params) == {"hidden_units", "optimizer", "learning_rate", "lr_schedule"}
    MLPConfig.from_params(params)


def test_resolve_passes_other_keys_through():
    space = space_of({**ARCH, "units": [8, 16]})
    assert space.resolve({"n_layers": 1, "units": 8, "framework": "keras", "extra": 1}) == {
        "hidden_units": [8],
        "framework": "keras",
        "extra": 1,
    }
    assert space.resolve({"hidden_units": [4, 2], "n_layers": 3}) == {"hidden_units": [4, 2]}


def test_python_space_is_passed_through_with_lists_decoded():
    space = space_of(
        {"x": {"type": "float", "low": -1.0, "high": 1.0}, "n_layers": [1, 2], "shape": [[2, 3], [4]], "mode": "fast"},
        framework=None,
    )
    for raw in sample(space, n=10):
        params = space.resolve(raw)
        assert set(params) == {"x", "n_layers", "shape", "mode"}
        assert params["shape"] in ([2, 3], [4]) and params["mode"] == "fast"
        assert params["x"] == raw["x"] and params["n_layers"] == raw["n_layers"]


@pytest.mark.parametrize("sampler", ["random", "tpe"])
@pytest.mark.parametrize("builtin", ["mlp", "mlp-funnel"])
def test_same_seed_same_suggestions(sampler, builtin):
    space = space_of(builtin)
    assert sample(space, n=12, seed=7, sampler=sampler) == sample(space, n=12, seed=7, sampler=sampler)
    assert sample(space, n=12, seed=7, sampler=sampler) != sample(space, n=12, seed=8, sampler=sampler)


def test_per_layer_same_seed_same_suggestions():
    space = space_of({**ARCH, "units": {"type": "int", "low": 8, "high": 128, "layout": "per_layer"}})
    assert sample(space, n=15, seed=3, sampler="tpe") == sample(space, n=15, seed=3, sampler="tpe")


def test_enqueued_raw_params_are_suggested_again():
    space = space_of(
        {**ARCH, "units": {"type": "int", "low": 8, "high": 128, "layout": "per_layer"}, "activation": ["relu", "tanh"]}
    )
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    first = study.ask()
    raw = space.suggest(first)
    study.tell(first, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial(first.params)
    again = space.suggest(study.ask())
    assert again == raw


def test_every_builtin_resolves_to_a_valid_mlp_config():
    for name in ("mlp", "mlp-small", "mlp-funnel", "optimizers"):
        space = space_of(name)
        for raw in sample(space, n=10):
            MLPConfig.from_params(space.resolve(raw))

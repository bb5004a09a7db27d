"""Finite spaces as Optuna GridSampler search spaces."""

from __future__ import annotations

import itertools
from typing import Any

import optuna
import pytest

from sweeplab.core.errors import Problem
from sweeplab.spaces import FloatParam, IntParam, SearchSpace, parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def space_of(data: Any, framework: str | None = "torch") -> SearchSpace:
    problems: list[Problem] = []
    space = parse_space(data, "space", framework, problems)
    assert problems == []
    return space


def run_grid(space: SearchSpace, n: int) -> list[dict[str, Any]]:
    """Raw params of a grid study run for ``n`` trials.

    ``study.optimize`` rather than ask/tell: GridSampler calls ``study.stop()`` after
    the last grid point, which Optuna only allows inside ``optimize``.
    """
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space.grid(), seed=0))
    raws: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        raws.append(space.suggest(trial))
        return 0.0

    study.optimize(objective, n_trials=n + 5)  # stops by itself once the grid is exhausted
    assert len(raws) == n
    return raws


def test_guide_param_grid():
    space = space_of(
        {
            "hidden_layers": [[64, 32], [128, 64, 32], [64, 32, 16]],
            "dropout": [0.2, 0.3, 0.4],
            "learning_rate": [0.001, 0.01],
        }
    )
    grid = space.grid()
    assert grid == {
        "hidden_layers": ["64-32", "128-64-32", "64-32-16"],
        "dropout": [0.2, 0.3, 0.4],
        "learning_rate": [0.001, 0.01],
    }
    assert space.grid_size() == 18
    raws = run_grid(space, 18)
    combos = {tuple(sorted(r.items())) for r in raws}
    assert len(combos) == 18
    expected = {tuple(sorted(zip(grid, values, strict=True))) for values in itertools.product(*grid.values())}
    assert combos == expected


def test_int_and_float_steps_and_fixed_values():
    space = space_of(
        {
            "n_layers": {"type": "int", "low": 1, "high": 5, "step": 2},
            "units": {"type": "int", "low": 8, "high": 10},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
            "activation": "relu",
        }
    )
    grid = space.grid()
    assert grid["n_layers"] == [1, 3, 5]
    assert grid["units"] == [8, 9, 10]
    assert grid["dropout"] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert "activation" not in grid
    assert space.grid_size() == 3 * 3 * 6
    raws = run_grid(space, space.grid_size())
    assert len({tuple(sorted(r.items())) for r in raws}) == space.grid_size()
    assert all(r["activation"] == "relu" for r in raws)


def test_grid_ranges_that_do_not_divide_evenly_stop_below_high():
    assert IntParam("a", 1, 10, step=4).grid_values() == [1, 5, 9]
    assert FloatParam("b", 0.0, 1.0, step=0.3).grid_values() == [0.0, 0.3, 0.6, 0.9]
    assert FloatParam("c", 1e-3, 1e-3, step=1e-3).grid_values() == [0.001]


def test_mlp_small_builtin_is_a_grid():
    space = space_of("mlp-small")
    assert space.grid_size() == 8
    raws = run_grid(space, 8)
    assert len({(r["n_layers"], r["units"], r["learning_rate"]) for r in raws}) == 8


def test_funnel_units_are_a_grid():
    space = space_of({"n_layers": [1, 3], "units": {"type": "categorical", "choices": [32, 64], "layout": "funnel"}})
    assert space.grid_size() == 4
    hidden = sorted(space.resolve(r)["hidden_units"] for r in run_grid(space, 4))
    assert hidden == [[32], [32, 16, 8], [64], [64, 32, 16]]


def test_float_range_without_step_is_not_a_grid():
    space = space_of({"dropout": {"type": "float", "low": 0.0, "high": 0.5}, "units": [8, 16]})
    assert space.grid_problems() == [
        (
            "dropout",
            "the grid sampler needs a finite set of values; give this float range a step or make it categorical",
        )
    ]
    with pytest.raises(ValueError, match="parameter `dropout`"):
        space.grid()
    with pytest.raises(ValueError, match="parameter `dropout`"):
        space.grid_size()


def test_per_layer_units_are_not_a_grid():
    space = space_of({"n_layers": [1, 2], "units": {"type": "categorical", "choices": [8, 16], "layout": "per_layer"}})
    with pytest.raises(ValueError, match="parameter `units`: layout per_layer"):
        space.grid()

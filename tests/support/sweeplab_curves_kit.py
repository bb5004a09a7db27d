"""Synthetic tables of learning curves for the simulator's tests: every configuration of a
small finite space with curves and epoch times chosen by the test (nothing is trained)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from sweeplab.search.curves import CurveTable, EpochRecord, RecordedTrial, TableInfo
from sweeplab.spec import StudySpec, parse_spec

OBJECTIVE = {"dataset": {"name": "iris"}, "epochs": 4}
SPACE = {"units": [16, 128], "learning_rate": [0.001, 0.01, 0.1], "dropout": {"type": "float", "low": 0.0,
                                                                           "high": 0.3, "step": 0.1}}

# (epoch seconds, val_accuracy per epoch, state) of one configuration and seed
Curve = tuple[list[float], list[float], str]


def sim_spec(**keys: Any) -> StudySpec:
    """A study spec over :data:`SPACE` (val_accuracy, maximize); ``keys`` replace its keys."""
    data: dict[str, Any] = {"study": "sim", "metric": "val_accuracy", "direction": "maximize", "trials": 12,
                            "workers": 2, "sampler": {"name": "random"}, "pruner": {"name": "none"},
                            "objective": copy.deepcopy(OBJECTIVE),
                            "space": copy.deepcopy(SPACE)}
    data.update(keys)
    return parse_spec(data)


def default_curve(params: Mapping[str, Any], seed: int) -> Curve:
    """Accuracy rises with units and falls away from learning_rate 0.01; wider nets take longer per epoch."""
    quality = 0.5 + 0.2 * (params["units"] == 128) + 0.2 * (params["learning_rate"] == 0.01) \
        - 0.3 * params["dropout"] + 0.01 * seed
    seconds = [1.0 + params["units"] / 64 + 0.1 * i for i in range(OBJECTIVE["epochs"])]
    values = [quality * (i + 1) / OBJECTIVE["epochs"] for i in range(OBJECTIVE["epochs"])]
    return seconds, values, "COMPLETE"


def synthetic_table(spec: StudySpec | None = None, curve: Callable[[Mapping[str, Any], int], Curve] = default_curve,
                    seeds: tuple[int, ...] = (0, 1), name: str = "synthetic",
                    keep: Callable[[int], bool] | None = None) -> CurveTable:
    """A table of every configuration of ``spec``'s space (``keep(index)``: only those) with each seed."""
    spec = spec or sim_spec()
    grid = spec.space.grid()
    trials = []
    n_configs = 0
    for index, combo in enumerate(itertools.product(*grid.values())):
        if keep is not None and not keep(index):
            continue
        n_configs += 1
        params = dict(zip(grid, combo, strict=True))
        for seed in seeds:
            seconds, values, state = curve(params, seed)
            epochs = tuple(EpochRecord(i + 1, s, {"val_accuracy": v, "val_loss": 1.0 - v})
                           for i, (s, v) in enumerate(zip(seconds, values, strict=True)))
            result = {"val_accuracy": max(values), "val_loss": 1.0 - max(values)} if state == "COMPLETE" else {}
            trials.append(RecordedTrial(config=index, seed=seed, params=params, epochs=epochs, state=state,
                                        result=result, reason=None if state == "COMPLETE" else "FloatingPointError: "
                                        "training loss became nan", end_seconds=0.5))
    info = TableInfo(name=name, space=spec.space.to_dict(), objective=spec.objective.to_dict(), data_seed=0,
                     seeds=tuple(seeds), n_features=4, n_outputs=3, grid_size=spec.space.grid_size(),
                     n_configs=n_configs, metrics=("val_accuracy", "val_loss"),
                     machine={"platform": "test", "cpu_count": 1})
    return CurveTable(info, trials, f"{name}.parquet")

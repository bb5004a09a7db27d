"""The published evidence (``benchmarks/results/defaults.json``) holds the cells of what ``auto`` resolves to."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from sweeplab.registry.options import Context, SpaceShape
from sweeplab.registry.search import auto_pruner, auto_sampler, resolve_pruner_options, resolve_sampler_options

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_defaults", ROOT / "benchmarks" / "bench_defaults.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _auto_labels(bench: ModuleType, workers: int) -> tuple[str | None, str | None]:
    ctx = Context(workers=workers, epochs=10, objectives=1, space=SpaceShape(params=8, categorical=6))
    return (bench._label_of(auto_sampler(ctx), bench.ALL_SAMPLERS, resolve_sampler_options, ctx),
            bench._label_of(auto_pruner(ctx), bench.ALL_PRUNERS, resolve_pruner_options, ctx))


def test_a_label_matches_auto_only_when_every_resolved_option_does(bench):
    sampler, pruner = _auto_labels(bench, 1)
    assert sampler is not None and pruner is not None
    # the grid's TPE (Optuna's 10 startup trials) and successive halving with its defaults are other cells
    assert sampler != "tpe-multi" and pruner != "successive_halving"


@pytest.mark.parametrize("workers", [1, 4, 16, 64])
def test_bench_defaults_runs_and_defaults_json_holds_auto_and_its_unpruned_sampler(bench, workers):
    sampler, pruner = _auto_labels(bench, workers)
    jobs = bench.jobs_of(list(bench.VARIANT_TABLES), bench.SEEDS, bench.GP_SEEDS)
    data = json.loads((ROOT / "benchmarks" / "results" / "defaults.json").read_text())
    seeds = list(range(bench.SEEDS))
    for pair in ((sampler, pruner), (sampler, "none")):
        planned = {j[0] for j in jobs if (j[1], j[2], j[3], j[4]) == (*pair, workers, tuple(seeds))}
        stored = {c["table"] for c in data["cells"] if (c["sampler"], c["pruner"], c["workers"]) == (*pair, workers)
                  and c["seeds"] == seeds}
        assert planned == stored == set(bench.VARIANT_TABLES), (pair, workers)

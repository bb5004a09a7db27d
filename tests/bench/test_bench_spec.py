"""Bench specs: expansion into cell studies, and errors that name the bench file's YAML paths (no Ray)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sweeplab.bench.commands import parse_sets
from sweeplab.bench.spec import load_bench_spec, parse_bench_spec
from sweeplab.core.errors import SpecError, UsageError

BASE = {
    "bench": "bw",
    "direction": "maximize",
    "metric": "score",
    "trials": 8,
    "workers": 2,
    "objective": {"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 6},
    "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}, "y": {"type": "float", "low": -1.0, "high": 1.0}},
    "factors": {"samplers": [{"name": "tpe", "n_startup_trials": 3}, "random"],
                "pruners": ["none", {"name": "median", "n_startup_trials": 2}], "seeds": 3},
    "target": 0.9,
}


def spec(**over):
    data = copy.deepcopy(BASE)
    for key, value in over.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def problems(data) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_bench_spec(data)
    out: dict[str, str] = {}
    for p in info.value.problems:
        out[p.path] = f"{out[p.path]} | {p.message}" if p.path in out else p.message
    return out


def test_cells_are_the_cross_product_seed_major_with_study_names():
    bench = parse_bench_spec(spec())
    assert len(bench.cells) == 12
    assert [c.study for c in bench.cells[:4]] == ["bw.tpe.none.python.s0", "bw.tpe.median.python.s0",
                                                  "bw.random.none.python.s0", "bw.random.median.python.s0"]
    assert bench.seeds == (0, 1, 2) and bench.configs()[1] == ("tpe", "median", "python")
    cell = bench.cells[1]
    assert cell.spec.study == "bw.tpe.median.python.s0" and cell.spec.experiment == "bw"
    assert cell.spec.sampler.name == "tpe" and dict(cell.spec.sampler.options) == {"n_startup_trials": 3}
    assert cell.spec.pruner.name == "median" and cell.spec.seed == 0 and cell.spec.trials == 8
    assert bench.metric == "score" and bench.direction == "maximize" and bench.target == 0.9
    assert bench.parallel_cells == 1 and bench.audit == 0
    assert {c.spec.seed for c in bench.cells} == {0, 1, 2}


def test_missing_factors_take_the_study_keys_and_labels_tell_levels_apart():
    bench = parse_bench_spec(spec(factors=None, sampler={"name": "random"}, seed=5))
    # no pruner anywhere: the level is `auto`, each cell's spec holds what it resolved to
    assert [c.study for c in bench.cells] == ["bw.random.auto.python.s5"]
    assert bench.cells[0].spec.pruner.name == "successive_halving" and bench.cells[0].spec.pruner.auto
    bench = parse_bench_spec(spec(factors={"samplers": [{"name": "tpe", "label": "tpe-mv", "multivariate": True},
                                                        {"name": "tpe", "label": "tpe-uni", "multivariate": False}],
                                           "seeds": [3, 7]}, experiment="shared"))
    assert [c.study for c in bench.cells] == ["bw.tpe-mv.auto.python.s3", "bw.tpe-uni.auto.python.s3",
                                              "bw.tpe-mv.auto.python.s7", "bw.tpe-uni.auto.python.s7"]
    assert dict(bench.cells[1].spec.sampler.options) == {"multivariate": False}
    assert all(c.spec.experiment == "shared" for c in bench.cells)


def test_errors_name_the_yaml_paths_of_the_bench_file():
    found = problems(spec(
        factors={"samplers": ["tpe", "bogus", {"name": "tpe", "seed": 3}], "pruners": [{"label": "x"}],
                 "seeds": 0, "colours": [1]},
        target="high", parallel_cells=0, study="bw"))
    assert "unknown sampler `bogus`" in found["factors.samplers[1].name"]
    assert "label `tpe` is used twice" in found["factors.samplers[2]"]
    assert "required" in found["factors.pruners[0].name"]
    assert "must be >= 1, got 0" in found["factors.seeds"]
    assert "unknown key `colours`" in found["factors"]
    assert "must be a number" in found["target"]
    assert "must be >= 1" in found["parallel_cells"]
    assert "names its benchmark with `bench:`" in found["study"]


def test_cell_study_problems_map_back_to_the_factor_or_key_they_come_from():
    found = problems(spec(factors={"samplers": ["random", {"name": "tpe", "seed": 3}], "frameworks": ["python"]},
                          objective={"callable": "sweeplab_test_objectives:bowl", "epochs": 0},
                          space={"x": {"type": "float", "low": 1.0, "high": -1.0}}))
    assert "seeded from the top-level `seed`" in found["factors.samplers[1].seed"]
    assert "must be >= 1" in found["objective.epochs"]
    assert "`low <= high`" in found["space.x"]
    with pytest.raises(SpecError) as info:  # shared problems are listed once, not once per cell
        parse_bench_spec(spec(space={"x": {"type": "float", "low": 1.0, "high": -1.0}}))
    assert [p.path for p in info.value.problems] == ["space.x"]


def test_a_factor_and_its_study_key_conflict_and_names_are_checked():
    found = problems(spec(sampler="tpe", seed=1, objective={**BASE["objective"]},
                          factors={**BASE["factors"], "frameworks": ["python"]}))
    assert "replaces `sampler`" in found["sampler"]
    assert "replaces `seed`" in found["seed"]
    assert "replaces `objective.framework`" in found["objective.framework"]
    assert "path separators" in problems(spec(bench="../up"))["bench"]
    assert "at most 128 characters" in problems(spec(bench="b" * 120))["bench"]
    assert "required" in problems(spec(bench=None))["bench"]
    assert "single-objective" in problems(spec(direction=["maximize", "minimize"]))["direction"]
    assert "unknown framework `jax`" in problems(spec(factors={"frameworks": ["python", "jax"]},
                                                      objective={"callable": "m:f"}))["factors.frameworks[1]"]
    assert "listed twice" in problems(spec(factors={"seeds": [1, 1]}))["factors.seeds[1]"]


def test_load_bench_spec_reads_yaml_applies_overrides_and_reports_syntax_errors(tmp_path):
    import yaml

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(spec()))
    bench = load_bench_spec(path, {"trials": 2, "factors.seeds": 1, "objective.epochs": 1})
    assert len(bench.cells) == 4 and bench.trials == 2 and bench.cells[0].spec.objective.epochs == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("bench: x\nfactors: {seeds: [1, 2}\n")
    with pytest.raises(SpecError, match="line 2"):
        load_bench_spec(bad)
    with pytest.raises(SpecError, match="does not exist"):
        load_bench_spec(tmp_path / "nope.yaml")


def test_set_flags_parse_values_as_yaml():
    assert parse_sets(["objective.epochs=2", "target=1e-3", "factors.samplers=[tpe, random]", "x=null"]) == {
        "objective.epochs": 2, "target": 1e-3, "factors.samplers": ["tpe", "random"], "x": None}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_sets(["epochs"])


def test_cli_validates_bench_specs_with_exit_codes(tmp_path):
    import yaml

    good = tmp_path / "b.yaml"
    good.write_text(yaml.safe_dump(spec()))
    out = subprocess.run([sys.executable, "-m", "sweeplab.cli", "bench", str(good), "--validate", "--seeds", "2",
                          "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["n_cells"] == 8 and payload["cells"][0]["study"] == "bw.tpe.none.python.s0"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec(factors={"samplers": ["tpe", "anneal"]})))
    out = subprocess.run([sys.executable, "-m", "sweeplab.cli", "bench", str(bad)], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 2
    assert "factors.samplers[1].name: unknown sampler `anneal`" in out.stderr
    assert not list(Path(tmp_path).glob("*.db"))  # nothing created

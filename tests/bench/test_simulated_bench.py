"""Recording tables (`sweeplab bench record`), the shipped tables, and simulated benches
(`simulate: {table: ...}`): what they write, what they refuse, and that they run without Ray or stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sweeplab_curves_kit import synthetic_table

from sweeplab.bench.record import parse_record_spec
from sweeplab.bench.simulate import resolve_table, shipped_tables
from sweeplab.bench.spec import parse_bench_spec
from sweeplab.core.errors import Problem, SpecError
from sweeplab.search.curves import read_table, write_table
from sweeplab.spaces import load_builtin
from sweeplab.spec import parse_spec

CLI = [sys.executable, "-m", "sweeplab.cli"]
SHIPPED = ("breast_cancer", "diabetes", "digits", "make_classification", "wine")
BENCH = """\
bench: sim
simulate: {table: tables/syn.parquet}
metric: val_accuracy
direction: maximize
trials: 12
workers: 3
factors:
  samplers: [random, tpe]
  pruners: [none, {name: median, n_startup_trials: 2}]
  seeds: 3
"""


def cli(*args, cwd):
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------------- recording
def test_a_record_spec_lists_every_problem_with_its_path():
    with pytest.raises(SpecError) as bad:
        parse_record_spec({"table": "a b", "objective": {"framework": "python", "callable": "m:f",
                                                         "dataset": {"name": "iris"}},
                           "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}, "seeds": [1, 1], "sample": 0,
                           "epochs": 3})
    paths = {p.path for p in bad.value.problems}
    assert {"", "table", "seeds[1]", "sample", "objective.framework", "space.x"} <= paths
    assert Problem("objective.framework", "a table records sweeplab's networks: use one of torch, keras, got "
                                          "'python'") in bad.value.problems
    with pytest.raises(SpecError) as continuous:
        parse_record_spec({"table": "t", "objective": {"dataset": {"name": "iris"}}, "space": "mlp"})
    assert {p.path for p in continuous.value.problems} == {"space.dropout", "space.learning_rate"}
    assert "a continuous float range has no finite set of values to record" in str(continuous.value)
    with pytest.raises(SpecError, match="more than 100000 trials to record; discretise the space further or record "
                                        "a `sample`"):
        parse_record_spec({"table": "t", "objective": {"dataset": {"name": "iris"}},
                           "space": {"use": "mlp", "dropout": 0.1, "learning_rate": 0.01}})


def test_bench_record_trains_the_real_objective_and_writes_the_table_with_its_machine(tmp_path):
    (tmp_path / "rec.yaml").write_text(
        "table: tiny\nobjective: {dataset: {name: iris}, epochs: 3}\n"
        "space: {n_layers: 1, units: [4, 8], learning_rate: 0.05, optimizer: adam, batch_size: 32}\n"
        "seeds: 2\nseed: 3\n")
    out = cli("bench", "record", "rec.yaml", "-o", "out/tiny.parquet", "--json", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert (payload["table"], payload["n_configs"], payload["grid_size"], payload["n_trials"]) == ("tiny", 2, 2, 4)
    table = read_table(tmp_path / "out" / "tiny.parquet")
    info = table.info
    assert (info.seeds, info.data_seed, info.n_features, info.n_outputs) == ((0, 1), 3, 4, 3)
    assert info.objective["epochs"] == 3 and info.objective["dataset"] == {"name": "iris"}
    assert {"platform", "cpu_count", "python", "versions", "load_average_start"} <= set(info.machine)
    assert "torch" in info.machine["versions"] and info.wall_seconds > 0 and info.recorded_at
    assert [(t.config, t.seed) for t in table.trials] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for t in table.trials:
        assert t.state == "COMPLETE" and [e.epoch for e in t.epochs] == [1, 2, 3]
        assert all(e.seconds > 0 for e in t.epochs) and t.end_seconds > 0
        assert set(t.epochs[0].metrics) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
        assert {"val_accuracy", "test_accuracy", "n_params", "best_epoch"} <= set(t.result)

    # the curves are the real objective's: the same trial run directly reports the same values
    from sweeplab.core.records import TrialTicket
    from sweeplab.objectives.trial import NullReporter
    from sweeplab.search.worker import execute_trial
    from sweeplab.study.session import load_study_dataset

    spec = parse_spec({"study": "x", "metric": "val_loss", "seed": 3, "objective": dict(info.objective),
                       "space": dict(info.space)})
    recorded = table.lookup({"n_layers": 1, "units": 8, "learning_rate": 0.05, "optimizer": "adam",
                             "batch_size": 32}, seed=1)
    reporter = NullReporter()
    outcome = execute_trial(TrialTicket(0, dict(recorded.params), spec.space.resolve(recorded.params), 1, "torch",
                                        prunable=False), load_study_dataset(spec), spec.objective, ["val_loss"], None,
                            1.0, 0.0, reporter)
    assert [m for _, m in reporter.history] == [dict(e.metrics) for e in recorded.epochs]
    assert outcome.metrics["val_accuracy"] == recorded.result["val_accuracy"]


def test_bench_record_refuses_a_continuous_space_with_exit_2_and_writes_nothing(tmp_path):
    (tmp_path / "rec.yaml").write_text("table: t\nobjective: {dataset: {name: iris}}\nspace: mlp\n")
    out = cli("-v", "bench", "record", "rec.yaml", "-o", "t.parquet", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert "space.learning_rate: a table records a finite space" in out.stderr
    assert not (tmp_path / "t.parquet").exists()


# ---------------------------------------------------------------------- the shipped tables
def test_the_shipped_tables_cover_the_discretised_guide_space():
    assert set(SHIPPED) <= set(shipped_tables())
    grid = parse_spec({"study": "g", "metric": "val_loss", "objective": {"dataset": {"name": "iris"}},
                       "space": "mlp-grid"}).space
    folder = resolve_table("digits").parent
    assert sum(p.stat().st_size for p in folder.glob("*.parquet")) < 5 * 2**20
    for name in SHIPPED:
        table = read_table(resolve_table(name))
        info = table.info
        assert info.name == name and info.objective["dataset"]["name"] == name
        assert info.objective["epochs"] == 10 and info.seeds == (0, 1)
        assert info.space == json.loads(json.dumps(grid.to_dict()))
        assert info.n_configs == info.grid_size == 384 and len(table.trials) == 768
        assert {(t.config, t.seed) for t in table.trials} == {(c, s) for c in range(384) for s in (0, 1)}
        assert all(len(t.epochs) == 10 for t in table.trials if t.state == "COMPLETE")
        assert all(e.seconds > 0 for t in table.trials for e in t.epochs)


def test_mlp_grid_discretises_the_guide_space():
    """Every dimension of the guide's space is searched, on values inside its range or choices."""
    guide = parse_spec({"study": "g", "metric": "val_loss", "objective": {"dataset": {"name": "iris"}},
                        "space": "mlp"}).space
    grid = parse_spec({"study": "g", "metric": "val_loss", "objective": {"dataset": {"name": "iris"}},
                       "space": "mlp-grid"}).space
    assert list(load_builtin("mlp-grid")) == list(load_builtin("mlp"))
    assert grid.grid_size() == 384
    for name, values in grid.grid().items():
        assert len(values) >= 2, name
        param = guide.get(name)
        if hasattr(param, "choices"):
            assert set(values) <= set(param.choices), name
        else:
            assert all(param.low <= v <= param.high for v in values), name


# ---------------------------------------------------------------------- simulated benches
def test_a_simulated_bench_takes_the_tables_objective_and_space_and_refuses_what_it_cannot_answer(tmp_path):
    path = write_table(synthetic_table(), tmp_path / "syn.parquet")
    bench = parse_bench_spec({"bench": "b", "simulate": {"table": str(path)}, "metric": "val_accuracy"})
    assert bench.simulate is not None and (bench.simulate.name, bench.simulate.table) == ("synthetic", str(path))
    table = read_table(path)
    assert bench.cells[0].spec.objective.to_dict() == table.info.objective
    assert bench.cells[0].spec.space.to_dict() == table.info.space
    space = {"units": [16, 32], "learning_rate": [0.01], "dropout": 0.0}
    with pytest.raises(SpecError) as bad:
        parse_bench_spec({"bench": "b", "simulate": {"table": str(path)}, "metric": "val_accuracy", "audit": 2,
                          "space": space})
    assert set(bad.value.problems) == {
        Problem("audit", "a simulated bench re-trains nothing: the table holds every trial's whole curve; use "
                         "audit: 0"),
        Problem("space.units", "value 32 was not recorded in the table synthetic; recorded values: 16, 128")}
    with pytest.raises(SpecError) as bad:
        parse_bench_spec({"bench": "b", "simulate": {"table": str(path)}, "metric": "val_accuracy",
                          "factors": {"frameworks": ["torch", "keras"]}, "space": space})
    problems = set(bad.value.problems)
    assert Problem("space.units", "value 32 was not recorded in the table synthetic; recorded values: 16, 128") \
        in problems
    assert [p.path for p in problems if "recorded with framework: 'torch', the spec has 'keras'" in p.message] \
        == ["factors.frameworks[1]"]
    with pytest.raises(SpecError, match=r"simulate.table: unknown table `nope`; shipped tables: .*digits"):
        parse_bench_spec({"bench": "b", "simulate": {"table": "nope"}, "metric": "val_accuracy"})
    shipped = parse_bench_spec({"bench": "b", "simulate": {"table": "digits"}, "metric": "val_accuracy"})
    assert shipped.cells[0].spec.objective.dataset.name == "digits"


def test_a_simulated_bench_on_a_shipped_table_imports_no_ray_mlflow_or_torch(tmp_path):
    (tmp_path / "b.yaml").write_text("bench: b\nsimulate: {table: digits}\nmetric: val_accuracy\ntrials: 10\n"
                                     "workers: 4\nfactors: {samplers: [random, tpe], pruners: [none, median]}\n")
    code = ("import json, sys; from sweeplab.bench import load_bench_spec, run_bench, BenchOptions;"
            "r = run_bench(load_bench_spec('b.yaml'), BenchOptions('', '', progress=False, report_path='r.html'));"
            "print(json.dumps([r.to_dict()['n_trials'], [m for m in ('ray', 'mlflow', 'torch', 'tensorflow') "
            "if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [40, []]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.yaml", "r.html"]


def test_a_simulated_bench_runs_every_cell_without_ray_or_stores_and_repeats_itself(tmp_path):
    write_table(synthetic_table(), tmp_path / "tables" / "syn.parquet")
    (tmp_path / "bench.yaml").write_text(BENCH)
    checked = cli("bench", "bench.yaml", "--validate", cwd=tmp_path)
    assert checked.returncode == 0 and "12 cells x 12 trials, simulated on table synthetic" in checked.stdout

    runs = []
    for report in ("one.html", "two.html"):
        out = cli("bench", "bench.yaml", "--json", "-o", report, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        runs.append(json.loads(out.stdout))
        assert (tmp_path / report).stat().st_size > 0
    first, second = runs
    assert first["simulated"]["name"] == "synthetic" and first["n_cells"] == 12 and first["cells_failed"] == 0
    assert all(c["n_trials"] == 12 and c["status"] == "ran" for c in first["cells"])
    assert sum(c["n_pruned"] for c in first["cells"]) > 0
    assert all(c["mlflow_parent_run_id"] is None for c in first["cells"])
    assert first["cells"] == second["cells"] and first["configs"] == second["configs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.yaml", "one.html", "tables", "two.html"]
    assert "[12/12] sim.tpe.median.torch.s2" in out.stderr

    bad = BENCH.replace("trials: 12", "trials: 12\nspace: {units: [16, 32], learning_rate: [0.01], dropout: 0.0}")
    (tmp_path / "bad.yaml").write_text(bad)
    out = cli("bench", "bad.yaml", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert "space.units: value 32 was not recorded in the table synthetic; recorded values: 16, 128" in out.stderr
    assert not Path(tmp_path / "sim-report.html").exists()

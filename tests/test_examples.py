"""Every spec in examples/ is valid, and runs (tiny: 2 trials, 1 epoch, 1 seed) to its report.

Study examples run in-process on the session's local Ray; the keras-vs-torch bench
in-process too; the samplers x pruners bench through the real command line, as a user
types it (one command), with its flags shrinking it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweeplab.bench import BenchOptions, load_bench_spec, run_bench
from sweeplab.spaces.yaml_io import load_yaml
from sweeplab.spec import load_spec
from sweeplab.study import RunOptions, run_study

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def kind(path: Path) -> str:
    data = load_yaml(path.read_text(encoding="utf-8"), str(path))
    return "bench" if "bench" in data else "study"


STUDIES = [p for p in EXAMPLES if kind(p) == "study"]
BENCHES = [p for p in EXAMPLES if kind(p) == "bench"]


def tiny(path: Path, bench: bool) -> dict[str, object]:
    """Overrides that make an example cheap without changing what it runs."""
    data = load_yaml(path.read_text(encoding="utf-8"), str(path))
    out: dict[str, object] = {"trials": 2, "objective.epochs": 1}
    if (data.get("objective") or {}).get("dataset", {}).get("name") == "make_classification":
        out["objective.dataset.n_samples"] = 200
    if bench:
        out["factors.seeds"] = 1
        out["audit"] = 0
    return out


def test_the_guides_experiments_are_all_there():
    names = {p.stem for p in EXAMPLES}
    assert {"optimizers", "batch_sizes", "dropout", "lr_schedules", "architectures", "grid_search",
            "keras_vs_torch", "iris", "samplers_pruners", "seed_mlp_torch"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_valid(path):
    if kind(path) == "bench":
        bench = load_bench_spec(path)
        assert len(bench.cells) >= 2
        specs = [c.spec for c in bench.cells]
    else:
        specs = [load_spec(path)]
    for spec in specs:
        if spec.sampler.name == "grid":  # a grid example covers its grid exactly once
            assert spec.trials == spec.space.grid_size(), spec.study


def test_the_guides_grid_search_is_its_param_grid():
    spec = load_spec(ROOT / "examples" / "grid_search.yaml")
    grid = spec.space.grid()
    assert sorted(grid) == ["dropout", "hidden_layers", "learning_rate"]
    assert [spec.space.resolve({**{k: v[0] for k, v in grid.items()}, "hidden_layers": h})["hidden_units"]
            for h in grid["hidden_layers"]] == [[64, 32], [128, 64, 32], [64, 32, 16]]
    assert grid["dropout"] == [0.2, 0.3, 0.4] and grid["learning_rate"] == [0.001, 0.01]
    assert spec.objective.epochs == 20 and spec.trials == 18


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_study_example_runs_and_writes_its_report(path, ray_local, stores, monkeypatch, tmp_path):
    monkeypatch.chdir(stores["dir"])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the report is written before it is logged
    spec = load_spec(path, tiny(path, bench=False))
    summary = run_study(spec, RunOptions(storage_url=stores["storage"], tracking_uri=stores["tracking"],
                                         progress=False))
    assert summary.n_trials == 2 and summary.n_failed == 0, summary
    assert summary.n_complete >= 1 and summary.best_value is not None
    artifacts = {a.path for a in MlflowClient(stores["tracking"]).list_artifacts(summary.mlflow_parent_run_id)}
    assert f"{spec.study}-report.html" in artifacts
    assert not list(tmp_path.glob("sweeplab-report-*")), "the report's temp copy outlived its logging"


@pytest.mark.slow
def test_keras_vs_torch_bench_example_runs(ray_local, stores, monkeypatch):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed (pip install -e '.[keras]')")
    monkeypatch.chdir(stores["dir"])
    path = ROOT / "examples" / "keras_vs_torch.yaml"
    bench = load_bench_spec(path, tiny(path, bench=True))
    assert [c.framework for c in bench.cells] == ["torch", "keras"]
    result = run_bench(bench, BenchOptions(storage_url=stores["storage"], tracking_uri=stores["tracking"],
                                           progress=False))
    data = result.to_dict()
    assert data["cells_ran"] == 2 and data["cells_failed"] == 0
    assert all(c["n_trials"] == 2 and c["n_failed"] == 0 for c in data["cells"]), data["cells"]
    html = (stores["dir"] / "keras-vs-torch-report.html").read_text()
    assert "id='fig-vs-trials'" in html and "tpe / median / keras" in html


@pytest.mark.slow
def test_samplers_pruners_bench_example_runs_with_one_command(stores):
    path = ROOT / "examples" / "samplers_pruners.yaml"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SWEEPLAB_STORAGE", "RAY_ADDRESS")}
    cmd = [sys.executable, "-m", "sweeplab.cli", "bench", str(path), "--trials", "2", "--seeds", "1", "--audit", "0",
           "--set", "objective.epochs=1", "--set", "objective.dataset.n_samples=200", "--json", "-o", "report.html",
           "--storage", stores["storage"], "--tracking-uri", stores["tracking"], "--address", "local"]
    out = subprocess.run(cmd, cwd=stores["dir"], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    payload = json.loads(out.stdout)
    assert payload["bench"] == "guide-search" and payload["n_cells"] == 4 and payload["cells_failed"] == 0
    assert len(payload["configs"]) == 4 and payload["n_trials"] == 8
    assert payload["report"] == "report.html" and (stores["dir"] / "report.html").exists()

"""A whole benchmark in-process on the local Ray: tpe vs random x none vs median x 3 seeds
on the analytic bowl, its report, its MLflow layout, and resuming it."""

from __future__ import annotations

import copy
import re

import optuna
import pytest
from mlflow.tracking import MlflowClient

from sweeplab.bench import BenchOptions, parse_bench_spec, run_bench
from sweeplab.core.errors import UsageError

optuna.logging.set_verbosity(optuna.logging.WARNING)

BENCH = {
    "bench": "bw",
    "direction": "maximize",
    "metric": "score",
    "trials": 8,
    "workers": 2,
    "objective": {"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 6},
    "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}, "y": {"type": "float", "low": -1.0, "high": 1.0}},
    "factors": {
        # TPE's startup trials are random: with Optuna's default of 10 it would equal random search here
        "samplers": [{"name": "tpe", "n_startup_trials": 3}, "random"],
        "pruners": ["none", {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1}],
        "seeds": 3,
    },
    "target": 0.9,
    "parallel_cells": 2,
}


def trial_numbers(storage: str) -> dict[str, list[tuple[int, str]]]:
    out = {}
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        out[s.study_name] = [(t.number, t.state.name) for t in study.trials]
    return out


def test_bench_completes_reports_spread_across_seeds_and_resumes(ray_local, stores, monkeypatch):
    monkeypatch.chdir(stores["dir"])  # MLflow's local artifact root and the default report path
    bench = parse_bench_spec(BENCH)
    options = BenchOptions(storage_url=stores["storage"], tracking_uri=stores["tracking"], progress=False)
    result = run_bench(bench, options)

    # --- every cell is a complete study of 8 finished trials
    data = result.to_dict()
    assert data["n_cells"] == 12 and data["cells_ran"] == 12 and data["cells_failed"] == 0
    before = trial_numbers(stores["storage"])
    assert sorted(before) == sorted(c.study for c in bench.cells)
    assert all(len(trials) == 8 for trials in before.values())
    assert all(state != "RUNNING" for trials in before.values() for _, state in trials)
    pruned = sum(1 for name, trials in before.items() if ".median." in name for _, s in trials if s == "PRUNED")
    assert pruned >= 1
    assert not any(s == "PRUNED" for name, trials in before.items() if ".none." in name for _, s in trials)

    # --- per-config aggregates across the three seeds
    assert len(data["configs"]) == 4 and data["ranking"] == [c["config"] for c in data["configs"]]
    for c in data["configs"]:
        assert c["n_seeds"] == 3 and len(c["final_best"]) == 3
        assert c["min_best"] <= c["median_best"] <= c["max_best"]
        assert 0 <= c["reached_target"] <= 3
    for cell in data["cells"]:
        assert cell["n_trials"] == 8 and cell["total_epochs"] >= 8
        if ".none." in cell["study"]:
            assert cell["total_epochs"] == 8 * 6  # no pruning: every trial ran its 6 epochs
        if cell["trials_to_target"] is not None:
            assert cell["best_value"] >= 0.9 and 1 <= cell["trials_to_target"] <= 8
            assert cell["epochs_to_target"] <= cell["total_epochs"]
    assert data["comparison"]["p_value"] is not None and data["comparison"]["verdict"]
    assert data["comparison"]["min_p_value"] == pytest.approx(0.1)  # 3 vs 3 seeds

    # --- the report: self-contained, the figures, bands across seeds, the ranking
    html = (stores["dir"] / "bw-report.html").read_text()
    assert result.report == "bw-report.html"
    for section in ("fig-vs-trials", "fig-vs-time", "fig-vs-epochs", "fig-to-target", "fig-compute", "ranking",
                    "audit", "cells"):
        assert f"id='{section}'" in html, section
    assert html.count("min-max across 3 seeds") == 3 * 4  # one band per config in each of the three curve figures
    assert "median of 3" in html and "target 0.9 (spec)" in html
    assert len(re.findall(r"<script[^>]*\bsrc=", html)) == 0 and html.count("plotly.js v") <= 2
    assert "Across seeds:" in html and "Mann-Whitney U" in html
    assert html.count("Plotly.newPlot") == 5

    # --- MLflow: one bench run, the cell study runs nested under it
    client = MlflowClient(stores["tracking"])
    exp = client.get_experiment_by_name("bw")
    benches = client.search_runs([exp.experiment_id], filter_string="tags.`sweeplab.role` = 'bench'")
    assert len(benches) == 1 and benches[0].info.run_id == result.bench_run_id
    assert benches[0].info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(result.bench_run_id)}
    assert {"bw-report.html", "bench.json", "bench_spec.json"} <= artifacts
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`sweeplab.role` = 'parent'")
    assert len(parents) == 12
    assert {r.data.tags["mlflow.parentRunId"] for r in parents} == {result.bench_run_id}
    assert {r.data.tags["sweeplab.study"] for r in parents} == {c.study for c in bench.cells}

    # --- re-running resumes: every cell is skipped, no new trial, the same bench run; audits run now
    again = run_bench(parse_bench_spec({**BENCH, "audit": 1, "parallel_cells": 1}), options)
    assert again.to_dict()["cells_skipped"] == 12 and again.to_dict()["cells_ran"] == 0
    assert trial_numbers(stores["storage"]) == before
    assert again.bench_run_id == result.bench_run_id
    assert len(client.search_runs([exp.experiment_id], filter_string="tags.`sweeplab.role` = 'bench'")) == 1
    audited = [c for c in again.cells if c.audit]
    assert len(audited) == sum(1 for c in again.cells if any(e.state == "PRUNED" for e in c.events)) >= 1
    for cell in audited:
        assert cell.audit.n_audited == 1 and cell.audit.trials[0].epochs_trained == 6
    html = (stores["dir"] / "bw-report.html").read_text()
    assert "re-trained trials that would have beaten their study" in html

    # --- a changed spec is refused before anything runs
    changed = copy.deepcopy(BENCH)
    changed["objective"]["epochs"] = 7
    with pytest.raises(UsageError, match="12 cell studies already exist with a different spec") as info:
        run_bench(parse_bench_spec(changed), options)
    assert "12 cells (bw.tpe.none.python.s0, ...):\n    objective.epochs: 6 -> 7" in str(info.value)
    assert trial_numbers(stores["storage"]) == before


def test_bench_resumes_with_more_trials_and_writes_the_report_where_asked(ray_local, stores, monkeypatch):
    monkeypatch.chdir(stores["dir"])
    small = {**BENCH, "bench": "bs", "trials": 3, "parallel_cells": 1,
             "factors": {"samplers": ["random"], "pruners": ["none"], "seeds": [4]}}
    options = BenchOptions(storage_url=stores["storage"], tracking_uri=stores["tracking"], progress=False,
                           report_path=stores["dir"] / "out" / "bs.html")
    first = run_bench(parse_bench_spec(small), options)
    assert first.to_dict()["n_trials"] == 3 and (stores["dir"] / "out" / "bs.html").exists()
    more = run_bench(parse_bench_spec({**small, "trials": 5}), options)
    assert more.to_dict()["cells_ran"] == 1 and more.to_dict()["n_trials"] == 5
    study = optuna.load_study(study_name="bs.random.none.python.s4", storage=stores["storage"])
    assert len(study.trials) == 5

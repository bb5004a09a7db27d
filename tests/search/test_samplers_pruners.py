"""Every sampler and pruner of the spec builds and drives a real study on Ray workers."""

from __future__ import annotations

import optuna
import pytest
from sweeplab_testkit import bowl_spec, run

from sweeplab.search.samplers import PRUNERS, SAMPLERS, build_pruner, build_sampler


@pytest.mark.parametrize("workers,liar", [(1, False), (2, True)])
def test_tpe_uses_constant_liar_when_parallel(workers, liar):
    sampler = build_sampler(bowl_spec(workers=workers))
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._constant_liar is liar


@pytest.mark.parametrize("name", [s for s in SAMPLERS if s != "nsga2"])
def test_each_sampler_runs_a_study(ray_local, stores, name):
    space = {"x": {"type": "float", "low": -1.0, "high": 1.0, **({"step": 0.5} if name == "grid" else {})},
             "y": [-0.5, 0.0, 0.5]}
    summary = run(bowl_spec(trials=5, workers=2, sampler={"name": name}, space=space), stores)
    assert summary["n_complete"] == 5
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    assert len({(t.params["x"], t.params["y"]) for t in study.trials}) >= 4


@pytest.mark.parametrize("name", PRUNERS)
def test_each_pruner_builds_from_the_spec(name):
    options = {"hyperband": {}, "threshold": {"lower": 0.1}}.get(name, {})
    pruner = build_pruner(bowl_spec(pruner={"name": name, **options}))
    assert isinstance(pruner, optuna.pruners.BasePruner)


@pytest.mark.parametrize("name", ["percentile", "hyperband", "successive_halving", "patient", "threshold"])
def test_pruners_stop_bad_trials_while_they_run(ray_local, stores, name):
    options = {"threshold": {"lower": 0.5}, "percentile": {"percentile": 50.0, "n_startup_trials": 2},
               "patient": {"patience": 0}}.get(name, {})
    spec = bowl_spec(trials=10, workers=2, sampler={"name": "random"}, pruner={"name": name, **options},
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 8})
    summary = run(spec, stores)
    assert summary["n_trials"] == 10
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, f"{name} pruned nothing"
    assert all(len(t.intermediate_values) < 8 for t in pruned)


def test_worker_processes_are_reused_across_trials(ray_local, stores):
    run(bowl_spec(trials=8, workers=2), stores)
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    pids = {t.user_attrs["sweeplab.node"].split("pid=")[1] for t in study.trials}
    assert len(pids) <= 3, pids  # 8 trials, 2 slots: the same worker processes run them


def test_changed_spec_is_refused_with_a_diff(ray_local, stores, tmp_path):
    import subprocess
    import sys

    import yaml

    spec = bowl_spec(trials=2, workers=1)
    run(spec, stores)
    changed = spec.to_dict()
    changed["space"]["x"]["high"] = 2.0
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(changed))
    out = subprocess.run([sys.executable, "-m", "sweeplab.cli", "run", str(path), "--storage", stores["storage"],
                          "--tracking-uri", stores["tracking"]], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "space.x.high: 1.0 -> 2.0" in out.stderr

"""Multi-objective studies (Pareto front, latency_ms) and constraints (max_params) on a local Ray."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from sweeplab_testkit import child_runs, run

from sweeplab import cli
from sweeplab.core.errors import SpecError
from sweeplab.core.keys import ATTR_N_PARAMS, ATTR_REJECTED
from sweeplab.search.constraints import ConstraintUnsatisfiable
from sweeplab.search.coordinator import StudyCoordinator
from sweeplab.spaces.architecture import count_mlp_params, smallest_architecture
from sweeplab.spec import parse_spec

N_FEATURES, N_CLASSES = 20, 3
MAX_PARAMS = 1500


def mlp_spec(**over):
    """An 8-trial, 3-epoch torch study on 300 rows of make_classification (20 features, 3 classes)."""
    data = {
        "study": "mo",
        "direction": ["maximize", "minimize"],
        "metric": ["val_accuracy", "n_params"],
        "trials": 8,
        "workers": 2,
        "seed": 11,
        "sampler": {"name": "nsga2"},
        "pruner": {"name": "none"},
        "objective": {
            "framework": "torch",
            "dataset": {"name": "make_classification", "n_samples": 300, "n_features": N_FEATURES,
                        "n_informative": 5, "n_classes": N_CLASSES, "random_state": 3},
            "epochs": 3,
        },
        "space": {
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "units": {"type": "int", "low": 8, "high": 64, "log": True},
            "batch_norm": {"type": "categorical", "choices": [True, False]},
            "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
            "batch_size": {"type": "categorical", "choices": [32, 64]},
        },
    }
    data.update(over)
    return parse_spec(data)


def dominates(a: list[float], b: list[float], directions: list[str]) -> bool:
    """True when point ``a`` is at least as good as ``b`` everywhere and better somewhere."""
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    x = [s * v for s, v in zip(signs, a, strict=True)]
    y = [s * v for s, v in zip(signs, b, strict=True)]
    return all(p <= q for p, q in zip(x, y, strict=True)) and any(p < q for p, q in zip(x, y, strict=True))


# --------------------------------------------------------------------------- spec


def test_spec_accepts_constraints_and_latency_and_round_trips():
    spec = mlp_spec(metric=["val_accuracy", "latency_ms"], constraints={"max_params": 50000})
    assert spec.constraints == {"max_params": 50000}
    assert spec.metric == ("val_accuracy", "latency_ms")
    assert parse_spec(spec.to_dict()) == spec
    assert "constraints" not in mlp_spec().to_dict()  # old studies' stored specs stay comparable on resume


@pytest.mark.parametrize(
    ("over", "path", "needles"),
    [
        ({"constraints": {"max_params": 0}}, "constraints.max_params", [">= 1", "got 0"]),
        ({"constraints": {"max_params": 12.5}}, "constraints.max_params", ["integer", "12.5"]),
        ({"constraints": {"max_params": True}}, "constraints.max_params", ["integer", "True"]),
        ({"constraints": {"max_latency": 3}}, "constraints", ["unknown key `max_latency`", "max_params"]),
        ({"constraints": [50000]}, "constraints", ["mapping", "list"]),
        ({"metric": "latency_ms", "direction": "minimize", "sampler": {"name": "tpe"}}, "metric",
         ["`latency_ms`", "multi-objective"]),
        ({"metric": ["n_params", "latency_ms"]}, "metric", ["model metric", "val_accuracy"]),
        ({"metric": ["val_accuracy", "latency"]}, "metric[1]", ["unknown metric `latency`", "latency_ms"]),
    ],
)
def test_spec_problems_name_their_yaml_path(over, path, needles):
    with pytest.raises(SpecError) as info:
        mlp_spec(**over)
    problems = [p for p in info.value.problems if p.path == path]
    assert problems, [str(p) for p in info.value.problems]
    for needle in needles:
        assert needle in problems[0].message, problems[0].message


def test_max_params_needs_an_mlp_objective():
    data = mlp_spec().to_dict()
    data.update(objective={"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 2},
                space={"x": {"type": "float", "low": 0.0, "high": 1.0}}, metric=["score", "loss"],
                constraints={"max_params": 100})
    with pytest.raises(SpecError, match=r"constraints\.max_params: .*framework torch or keras, got framework python"):
        parse_spec(data)


# --------------------------------------------------------------------------- coordinator (no Ray)


def test_coordinator_rejects_violators_before_dispatch(stores):
    spec = mlp_spec(sampler={"name": "random"}, constraints={"max_params": MAX_PARAMS}, trials=10)
    coordinator = StudyCoordinator(spec.to_dict(), stores["storage"])
    coordinator.set_data_shape(N_FEATURES, N_CLASSES)
    tickets = [coordinator.ask() for _ in range(10)]
    for ticket in tickets:
        p = ticket.params
        assert count_mlp_params(p["hidden_units"], N_FEATURES, N_CLASSES, p["batch_norm"]) <= MAX_PARAMS
    study = coordinator.study
    rejected = [t for t in study.get_trials() if t.user_attrs.get(ATTR_REJECTED)]
    assert rejected, "the space should break max_params for some draws"
    for t in rejected:
        assert t.state == optuna.trial.TrialState.PRUNED
        n = t.user_attrs[ATTR_N_PARAMS]
        assert n > MAX_PARAMS
        assert t.user_attrs["sweeplab.fail_reason"] == f"constraint max_params violated: {n} > {MAX_PARAMS}"
        assert t.constraints == {"max_params": n - MAX_PARAMS}  # what Optuna's samplers read
    for ticket in tickets:  # feasible trials carry their (non-positive) constraint too
        t = study.get_trials()[ticket.number]
        assert t.constraints["max_params"] <= 0 and t.state == optuna.trial.TrialState.RUNNING
    counts = coordinator.counts()
    assert counts["rejected"] == len(rejected) and counts["finished"] == 0 and counts["PRUNED"] == 0


def test_a_constraint_no_architecture_can_hold_is_refused_at_once(stores):
    smallest, _ = smallest_architecture(mlp_spec().space, N_FEATURES, N_CLASSES)
    assert smallest == count_mlp_params([8], N_FEATURES, N_CLASSES, False) == 195
    spec = mlp_spec(constraints={"max_params": 100})
    coordinator = StudyCoordinator(spec.to_dict(), stores["storage"])
    with pytest.raises(ConstraintUnsatisfiable, match=r"max_params=100 cannot hold: the smallest architecture of the "
                       r"space \(hidden_units \[8\], batch_norm false\) has 195 parameters with 20 input features"):
        coordinator.set_data_shape(N_FEATURES, N_CLASSES)
    assert coordinator.study.get_trials() == []


def test_run_refuses_an_unsatisfiable_constraint_before_touching_the_stores(stores):
    with pytest.raises(ConstraintUnsatisfiable, match="max_params=100 cannot hold") as info:
        run(mlp_spec(constraints={"max_params": 100}), stores)
    assert info.value.exit_code == 2
    assert optuna.study.get_all_study_names(stores["storage"]) == []


def test_coordinator_gives_up_after_max_rejections_in_a_row(stores):
    # only n_layers=1, units=8, batch_norm=false fits: a draw of about 1 in 1000
    space = {**mlp_spec().to_dict()["space"], "n_layers": {"type": "int", "low": 1, "high": 10},
             "units": {"type": "int", "low": 8, "high": 4096, "log": True}}
    spec = mlp_spec(sampler={"name": "random"}, constraints={"max_params": 195}, space=space)
    coordinator = StudyCoordinator(spec.to_dict(), stores["storage"])
    coordinator.set_data_shape(N_FEATURES, N_CLASSES)
    coordinator.max_rejections = 5
    with pytest.raises(ConstraintUnsatisfiable, match=r"5 trials in a row broke the constraints \(max_params=195\); "
                       r"last one: constraint max_params violated: \d+ > 195"):
        coordinator.ask()
    assert coordinator.counts()["rejected"] == 5


def test_coordinator_needs_the_data_shape_for_constraints(stores):
    coordinator = StudyCoordinator(mlp_spec(constraints={"max_params": 100}).to_dict(), stores["storage"])
    with pytest.raises(RuntimeError, match="set_data_shape"):
        coordinator.ask()


# --------------------------------------------------------------------------- studies


def test_multi_objective_study_has_a_pareto_front_in_best(ray_local, stores, monkeypatch, capsys):
    monkeypatch.chdir(stores["dir"])  # MLflow's default artifact root (./mlruns) lands there
    spec = mlp_spec()
    summary = run(spec, stores)
    assert summary.n_complete == 8 and summary.n_trials == 8

    assert cli.main(["best", spec.study, "--json", "--storage", stores["storage"]]) == 0
    best = json.loads(capsys.readouterr().out)
    front = best["pareto_front"]
    assert front and best["direction"] == ["maximize", "minimize"]
    study = optuna.load_study(study_name=spec.study, storage=stores["storage"])
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    points = {t.number: list(t.values) for t in complete}
    for item in front:
        assert item["values"] == points[item["trial"]]
        assert item["run_id"]
        assert not any(dominates(v, item["values"], best["direction"]) for v in points.values())
        params = spec.space.resolve(study.trials[item["trial"]].params)
        assert item["values"][1] == count_mlp_params(params["hidden_units"], N_FEATURES, N_CLASSES,
                                                     params["batch_norm"])
    # every non-dominated COMPLETE trial is on the front
    on_front = {item["trial"] for item in front}
    for number, values in points.items():
        if not any(dominates(other, values, best["direction"]) for other in points.values()):
            assert number in on_front

    assert cli.main(["best", spec.study, "--storage", stores["storage"]]) == 0
    text = capsys.readouterr().out
    assert f"pareto     {len(front)} trials on the front (val_accuracy, n_params):" in text
    for item in front:
        assert f"  trial {item['trial']}: " in text


def test_constrained_study_never_trains_an_architecture_over_max_params(ray_local, stores, monkeypatch):
    monkeypatch.chdir(stores["dir"])
    spec = mlp_spec(study="mo-constrained", metric=["val_accuracy", "latency_ms"], sampler={"name": "tpe"},
                    constraints={"max_params": MAX_PARAMS})
    summary = run(spec, stores)
    assert summary.n_trials == 8 and summary.n_complete == 8  # rejected trials do not count
    study = optuna.load_study(study_name=spec.study, storage=stores["storage"])
    trials = study.get_trials()
    rejected = [t for t in trials if t.user_attrs.get(ATTR_REJECTED)]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert rejected, "the seed's draws include architectures over max_params"
    assert summary.n_rejected == len(rejected) and summary.n_pruned == 0
    assert len(trials) == len(complete) + len(rejected)
    for t in rejected:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["sweeplab.fail_reason"].startswith("constraint max_params violated: ")
        assert f"> {MAX_PARAMS}" in t.user_attrs["sweeplab.fail_reason"]
        assert "mlflow_run_id" not in t.user_attrs and not t.intermediate_values  # never dispatched
    for t in complete:
        recorded = t.user_attrs["sweeplab.metrics"]
        assert recorded["n_params"] <= MAX_PARAMS
        assert recorded["n_params"] == t.user_attrs[ATTR_N_PARAMS]  # the analytic count is the real one
        assert recorded["latency_ms"] > 0 and t.values[1] == recorded["latency_ms"]
        assert t.constraints["max_params"] <= 0

    runs = child_runs(stores, summary.mlflow_parent_run_id)
    assert len(runs) == len(complete)  # rejected trials have no child run
    assert {int(r.data.tags["sweeplab.trial_number"]) for r in runs} == {t.number for t in complete}
    for r in runs:
        assert r.data.metrics["final_n_params"] <= MAX_PARAMS
        assert math.isfinite(r.data.metrics["final_latency_ms"])

    # resuming to more trials keeps counting only trials that ran
    more = run(mlp_spec(study="mo-constrained", metric=["val_accuracy", "latency_ms"], sampler={"name": "tpe"},
                        constraints={"max_params": MAX_PARAMS}, trials=10), stores)
    assert more.n_trials == 10 and more.n_complete == 10

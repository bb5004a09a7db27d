"""Every sampler and pruner of the spec builds and drives a real study on Ray workers."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
from sweeplab_testkit import bowl_spec, run

from sweeplab.core.pareto import ParetoHalving
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
    assert summary.n_complete == 5
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    assert len({(t.params["x"], t.params["y"]) for t in study.trials}) >= 4


def _attrs(pruner):
    """The pruner's class and its settings, read from Optuna's own attributes (nested for patient)."""
    P = optuna.pruners
    if isinstance(pruner, P.PatientPruner):
        return ("PatientPruner", {"patience": pruner._patience, "min_delta": pruner._min_delta,
                                  "wrapped": _attrs(pruner._wrapped_pruner)})
    if isinstance(pruner, P.PercentilePruner):  # MedianPruner is a PercentilePruner at 50
        return (type(pruner).__name__, {"percentile": pruner._percentile, "n_startup_trials": pruner._n_startup_trials,
                                        "n_warmup_steps": pruner._n_warmup_steps,
                                        "interval_steps": pruner._interval_steps, "n_min_trials": pruner._n_min_trials})
    if isinstance(pruner, P.HyperbandPruner):
        return ("HyperbandPruner", {"min_resource": pruner._min_resource, "max_resource": pruner._max_resource,
                                    "reduction_factor": pruner._reduction_factor,
                                    "bootstrap_count": pruner._bootstrap_count})
    if isinstance(pruner, P.SuccessiveHalvingPruner):
        return ("SuccessiveHalvingPruner", {"min_resource": pruner._min_resource,
                                            "reduction_factor": pruner._reduction_factor,
                                            "min_early_stopping_rate": pruner._min_early_stopping_rate,
                                            "bootstrap_count": pruner._bootstrap_count})
    if isinstance(pruner, P.WilcoxonPruner):
        return ("WilcoxonPruner", {"p_threshold": pruner._p_threshold, "n_startup_steps": pruner._n_startup_steps})
    if isinstance(pruner, P.ThresholdPruner):
        return ("ThresholdPruner", {"lower": pruner._lower, "upper": pruner._upper,
                                    "n_warmup_steps": pruner._n_warmup_steps, "interval_steps": pruner._interval_steps})
    if isinstance(pruner, ParetoHalving):
        return ("ParetoHalving", dataclasses.asdict(pruner))
    return (type(pruner).__name__, {})


_STEPS = {"n_startup_trials": 5, "n_warmup_steps": 0, "interval_steps": 1, "n_min_trials": 1}
_MEDIAN = ("MedianPruner", {"percentile": 50.0, **_STEPS})
_PERCENTILE = ("PercentilePruner", {"percentile": 25.0, **_STEPS})
_HYPERBAND = ("HyperbandPruner", {"min_resource": 1, "max_resource": 4, "reduction_factor": 3, "bootstrap_count": 0})
# (pruner section, expected class and settings); bowl_spec's objective runs 4 epochs
PRUNER_CASES = [
    ("none", ("NopPruner", {})),
    ({"name": "median"}, _MEDIAN),
    ({"name": "median", "n_warmup_steps": 2, "n_startup_trials": 1, "interval_steps": 2, "n_min_trials": 3},
     ("MedianPruner", {"percentile": 50.0, "n_startup_trials": 1, "n_warmup_steps": 2, "interval_steps": 2,
                       "n_min_trials": 3})),
    ({"name": "percentile"}, _PERCENTILE),
    ({"name": "percentile", "percentile": 40, "n_startup_trials": 0},
     ("PercentilePruner", {**_PERCENTILE[1], "percentile": 40, "n_startup_trials": 0})),
    ({"name": "hyperband"}, _HYPERBAND),
    ("auto", ("NopPruner", {})),  # what `auto` resolves to for one objective over 4 epochs (under MIN_PRUNED_EPOCHS)
    ({"name": "hyperband", "min_resource": 2, "max_resource": 27, "reduction_factor": 2, "bootstrap_count": 1},
     ("HyperbandPruner", {"min_resource": 2, "max_resource": 27, "reduction_factor": 2, "bootstrap_count": 1})),
    ({"name": "successive_halving"},
     ("SuccessiveHalvingPruner", {"min_resource": 1, "reduction_factor": 4, "min_early_stopping_rate": 0,
                                  "bootstrap_count": 0})),
    ({"name": "successive_halving", "min_resource": 3, "reduction_factor": 2, "min_early_stopping_rate": 1},
     ("SuccessiveHalvingPruner", {"min_resource": 3, "reduction_factor": 2, "min_early_stopping_rate": 1,
                                  "bootstrap_count": 0})),
    ({"name": "wilcoxon"}, ("WilcoxonPruner", {"p_threshold": 0.1, "n_startup_steps": 2})),
    ({"name": "wilcoxon", "p_threshold": 0.05, "n_startup_steps": 4},
     ("WilcoxonPruner", {"p_threshold": 0.05, "n_startup_steps": 4})),
    ({"name": "threshold", "lower": 0.1},
     ("ThresholdPruner", {"lower": 0.1, "upper": float("inf"), "n_warmup_steps": 0, "interval_steps": 1})),
    ({"name": "threshold", "upper": 2.5, "n_warmup_steps": 1, "interval_steps": 2},
     ("ThresholdPruner", {"lower": float("-inf"), "upper": 2.5, "n_warmup_steps": 1, "interval_steps": 2})),
    ({"name": "patient"}, ("PatientPruner", {"patience": 3, "min_delta": 0.0, "wrapped": _MEDIAN})),
    ({"name": "patient", "wrapped": "percentile"},
     ("PatientPruner", {"patience": 3, "min_delta": 0.0, "wrapped": _PERCENTILE})),
    ({"name": "patient", "wrapped": {"name": "percentile", "percentile": 40}, "patience": 1, "min_delta": 0.5},
     ("PatientPruner", {"patience": 1, "min_delta": 0.5,
                        "wrapped": ("PercentilePruner", {**_PERCENTILE[1], "percentile": 40})})),
    ({"name": "patient", "wrapped": "hyperband"}, ("PatientPruner", {"patience": 3, "min_delta": 0.0,
                                                                     "wrapped": _HYPERBAND})),
    ({"name": "patient", "wrapped": {"name": "threshold", "upper": 1.0}, "patience": 0},
     ("PatientPruner", {"patience": 0, "min_delta": 0.0, "wrapped": (
         "ThresholdPruner", {"lower": float("-inf"), "upper": 1.0, "n_warmup_steps": 0, "interval_steps": 1})})),
    ({"name": "mo_successive_halving"},
     ("ParetoHalving", {"min_resource": 1, "reduction_factor": 2, "min_early_stopping_rate": 0, "bootstrap_count": 0})),
    ({"name": "mo_successive_halving", "min_resource": 2, "reduction_factor": 2, "bootstrap_count": 1},
     ("ParetoHalving", {"min_resource": 2, "reduction_factor": 2, "min_early_stopping_rate": 0, "bootstrap_count": 1})),
]
TWO_OBJECTIVES = {"direction": ["maximize", "minimize"], "metric": ["score", "loss"]}


def test_pruner_cases_cover_every_pruner():
    named = {c[0] if isinstance(c[0], str) else c[0]["name"] for c in PRUNER_CASES}
    assert named == set(PRUNERS)


@pytest.mark.parametrize(("section", "expected"), PRUNER_CASES, ids=[str(c[0]) for c in PRUNER_CASES])
def test_each_pruner_builds_its_class_with_the_options_and_defaults(section, expected):
    name = section if isinstance(section, str) else section["name"]
    two = TWO_OBJECTIVES if name == "mo_successive_halving" else {}
    assert _attrs(build_pruner(bowl_spec(pruner=section, **two))) == expected


def test_hyperband_resources_default_to_the_epochs_of_the_spec():
    spec = bowl_spec(pruner={"name": "hyperband"}, objective={"framework": "python", "epochs": 30,
                                                              "callable": "sweeplab_test_objectives:bowl"})
    assert build_pruner(spec)._max_resource == 30


@pytest.mark.parametrize(("section", "path", "fragment"), [
    ({"name": "patient", "wrapped": "none"}, "pruner.wrapped", "`none` never prunes"),
    ({"name": "patient", "wrapped": {"name": "patient"}}, "pruner.wrapped.name", "patient inside patient"),
    ({"name": "patient", "wrapped": "early"}, "pruner.wrapped", "unknown pruner `early`"),
    ({"name": "patient", "wrapped": {"name": "percentile", "percentile": 140}}, "pruner.wrapped.percentile",
     "must be a number in [0, 100], got 140"),
    ({"name": "patient", "wrapped": {"name": "median", "warmup": 3}}, "pruner.wrapped", "unknown key `warmup`"),
    ({"name": "patient", "wrapped": {"percentile": 40}}, "pruner.wrapped.name", "required"),
    ({"name": "threshold"}, "pruner", "needs `lower`, `upper` or both"),
    ({"name": "hyperband", "min_resource": 5}, "pruner", "min_resource=5 > max_resource=4 (default: objective.epochs)"),
    ({"name": "successive_halving", "reduction_factor": 1}, "pruner.reduction_factor", "must be >= 2, got 1"),
])
def test_bad_pruner_options_are_refused_by_validate_with_their_path(section, path, fragment):
    from sweeplab.core.errors import SpecError

    with pytest.raises(SpecError) as info:
        bowl_spec(pruner=section)
    assert any(p.path == path and fragment in p.message for p in info.value.problems), info.value


def test_build_sampler_takes_a_seed_that_overrides_the_specs():
    spec = bowl_spec(sampler={"name": "random"})

    def first_x(sampler):
        return optuna.create_study(sampler=sampler).ask().suggest_float("x", 0.0, 1.0)

    assert first_x(build_sampler(spec)) == first_x(optuna.samplers.RandomSampler(seed=spec.seed))
    assert first_x(build_sampler(spec, seed=11)) == first_x(optuna.samplers.RandomSampler(seed=11))
    assert first_x(build_sampler(spec, seed=11)) != first_x(build_sampler(spec))


def _good_then_bad(pruner, steps, n_good=6, direction="maximize"):
    """Run ``n_good`` trials whose rising curves each beat every earlier one, then a clearly bad one.

    Every trial asks ``should_prune`` after each report, as the coordinator does. Returns
    (the steps at which good trials were told to prune, the first step the bad trial was
    told to prune, or None).
    """
    # a fixed name: Hyperband puts a trial in a bracket by hashing the study's name with its
    # number, and an unnamed study's random name left the bad trial alone in its bracket now and then
    study = optuna.create_study(study_name="good-then-bad", direction=direction, pruner=pruner)
    sign = 1.0 if direction == "maximize" else -1.0
    good_pruned = []
    for k in range(n_good):
        trial = study.ask()
        curve = [sign * (0.5 + 0.02 * k + 0.05 * s) for s in range(steps)]
        for s, value in enumerate(curve):
            trial.report(value, s)
            if trial.should_prune():
                good_pruned.append((k, s))
        study.tell(trial, sum(curve) / steps if isinstance(pruner, optuna.pruners.WilcoxonPruner) else curve[-1])
    bad = study.ask()
    # flat and low, and falling, so patience runs out as well
    bad_curve = [sign * (0.1 - 0.01 * s) for s in range(steps)]
    for s, value in enumerate(bad_curve):
        bad.report(value, s)
        if bad.should_prune():
            study.tell(bad, state=optuna.trial.TrialState.PRUNED)
            return good_pruned, s
    study.tell(bad, bad_curve[-1])
    return good_pruned, None


@pytest.mark.parametrize("section", [
    "median",
    "percentile",
    "hyperband",
    "successive_halving",
    "wilcoxon",
    {"name": "threshold", "lower": 0.3},
    "patient",
    {"name": "patient", "wrapped": "percentile", "patience": 2},
    {"name": "patient", "wrapped": {"name": "threshold", "lower": 0.3}, "patience": 1},
], ids=str)
def test_each_pruner_stops_a_clearly_bad_trial_and_no_improving_one(section):
    # 8 epochs: hyperband's default max_resource follows them, patient (3) has room to run out
    spec = bowl_spec(pruner=section, objective={"framework": "python", "epochs": 8,
                                                "callable": "sweeplab_test_objectives:bowl"})
    good_pruned, bad_step = _good_then_bad(build_pruner(spec), steps=8)
    assert good_pruned == []
    assert bad_step is not None, f"{section} never pruned the bad trial"


def test_pruners_follow_a_minimized_metric_too():
    spec = bowl_spec(direction="minimize", pruner="median")
    good_pruned, bad_step = _good_then_bad(build_pruner(spec), steps=4, direction="minimize")
    assert good_pruned == [] and bad_step == 0


def test_none_never_prunes():
    good_pruned, bad_step = _good_then_bad(build_pruner(bowl_spec(pruner="none")), steps=8)
    assert good_pruned == [] and bad_step is None


@pytest.mark.parametrize("name", ["percentile", "hyperband", "successive_halving", "patient", "threshold"])
def test_pruners_stop_bad_trials_while_they_run(ray_local, stores, name):
    options = {"threshold": {"lower": 0.5}, "percentile": {"percentile": 50.0, "n_startup_trials": 2},
               "patient": {"patience": 0}}.get(name, {})
    spec = bowl_spec(trials=10, workers=2, sampler={"name": "random"}, pruner={"name": name, **options},
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 8})
    summary = run(spec, stores)
    assert summary.n_trials == 10
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, f"{name} pruned nothing"
    # each stopped at the epoch it was pruned at (the last one can be it: worse than the others there too)
    assert all(t.user_attrs["sweeplab.pruned_at_epoch"] == max(t.intermediate_values) for t in pruned)
    assert any(len(t.intermediate_values) < 8 for t in pruned)  # and bad ones stopped before the end


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

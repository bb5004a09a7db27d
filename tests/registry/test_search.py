"""The sampler and pruner registry: `sweeplab validate` accepts exactly the options that build and run."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import warnings
from typing import Any

import optuna
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sweeplab.core.errors import SpecError
from sweeplab.core.pareto import ParetoHalving
from sweeplab.registry.options import Context, SpaceShape
from sweeplab.registry.search import (
    AUTO_FIRST_DECISION,
    MIN_PRUNED_EPOCHS,
    PRUNERS,
    SAMPLERS,
    auto_pruner,
    auto_sampler,
    resolve_pruner_options,
    resolve_sampler_options,
)
from sweeplab.search.samplers import build_pruner, build_sampler
from sweeplab.spec import PrunerSpec, SamplerSpec, parse_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)

# The class each name must build (Optuna's, or sweeplab's own ParetoHalving): written here,
# not read from the registry.
SAMPLER_CLASSES = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler,
    "grid": optuna.samplers.GridSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
}
PRUNER_CLASSES = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "mo_successive_halving": ParetoHalving,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "patient": optuna.pruners.PatientPruner,
}
EPOCHS = 6
GRID = {"x": [-1.0, 0.0, 1.0], "y": [-0.5, 0.5]}


def _data(**over: Any) -> dict[str, Any]:
    data = {
        "study": "reg",
        "metric": "score",
        "workers": 2,
        "seed": 5,
        "objective": {"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": EPOCHS},
        # finite, so the grid sampler can take it too
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0, "step": 1.0}, "y": [-0.5, 0.5]},
    }
    data.update(over)
    return data


BASE = parse_spec(_data())


def test_registry_names_are_the_specs_and_the_builders():
    import sweeplab.bench.spec as bench_spec
    import sweeplab.search.samplers as samplers
    import sweeplab.spec as spec

    # `auto` first (it resolves to one of the others), then every entry
    assert spec.SAMPLERS == samplers.SAMPLERS == bench_spec.SAMPLERS == ("auto", *SAMPLER_CLASSES)
    assert spec.PRUNERS == samplers.PRUNERS == bench_spec.PRUNERS == ("auto", *PRUNER_CLASSES)


def test_validate_stays_light(tmp_path):
    code = ("import sys, sweeplab.registry, sweeplab.spec;"
            "print([m for m in ('numpy', 'sklearn', 'optuna', 'torch', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize(("section", "attrs"), [
    ({"name": "tpe"}, {"_multivariate": True, "_constant_liar": True, "_n_startup_trials": 10,
                       "_n_ei_candidates": 24, "_group": False}),
    ({"name": "tpe", "multivariate": False, "constant_liar": False, "n_startup_trials": 3},
     {"_multivariate": False, "_constant_liar": False, "_n_startup_trials": 3}),
    ({"name": "cmaes", "popsize": 6, "n_startup_trials": 2}, {"_popsize": 6, "_n_startup_trials": 2}),
    ({"name": "gp", "deterministic_objective": True}, {"_n_startup_trials": 10, "_deterministic": True}),
    ({"name": "qmc", "qmc_type": "halton", "scramble": True}, {"_qmc_type": "halton", "_scramble": True, "_seed": 5}),
    ({"name": "nsga2", "population_size": 8}, {"_population_size": 8}),
    ({"name": "grid"}, {"_search_space": GRID}),
])
def test_each_sampler_builds_its_class_with_the_options_and_defaults(section, attrs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = build_sampler(parse_spec(_data(sampler=section)))
    assert type(sampler) is SAMPLER_CLASSES[section["name"]]
    assert {k: getattr(sampler, k) for k in attrs} == attrs


def test_tpe_lies_only_when_trials_run_in_parallel():
    assert build_sampler(parse_spec(_data(workers=1)))._constant_liar is False
    assert build_sampler(parse_spec(_data(workers=3)))._constant_liar is True


@pytest.mark.parametrize(("section", "path", "fragment"), [
    ({"name": "tpe", "seed": 3}, "sampler.seed", "top-level `seed`"),
    ({"name": "grid", "search_space": {"x": [1]}}, "sampler.search_space", "comes from `space`"),
    ({"name": "tpe", "group": True, "multivariate": False}, "sampler.group", "needs `multivariate: true`"),
    ({"name": "qmc", "qmc_type": "lattice"}, "sampler.qmc_type", "one of sobol, halton, got 'lattice'"),
    ({"name": "nsga2", "population_size": 1}, "sampler.population_size", "must be >= 2, got 1"),
    ({"name": "nsga2", "swapping_prob": 1.5}, "sampler.swapping_prob", "in [0, 1], got 1.5"),
    ({"name": "cmaes", "lr_adapt": True, "use_separable_cma": True}, "sampler.lr_adapt", "excludes"),
    ({"name": "random", "n_startup_trials": 3}, "sampler", "unknown key `n_startup_trials`; allowed: none"),
])
def test_bad_sampler_options_are_refused_with_their_path(section, path, fragment):
    with pytest.raises(SpecError) as info:
        parse_spec(_data(sampler=section))
    assert any(p.path == path and fragment in p.message for p in info.value.problems), info.value


# ---------------------------------------------------------------------- property
# Half the drawn sets take values Optuna accepts; the other half break one key (out of
# range, wrong type, unknown, reserved) or a cross-option rule.
_WRONG_TYPE = ["3", 2.5, None, True, [1]]


def _options(valid: dict[str, Any], invalid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    base = st.fixed_dictionaries({}, optional=valid)
    bad = st.sampled_from(sorted(invalid)).flatmap(lambda key: st.tuples(st.just(key), invalid[key]))
    return st.one_of(base, st.tuples(base, bad).map(lambda t: {**t[0], t[1][0]: t[1][1]}))


def _bad(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([*values, *_WRONG_TYPE])


_COMMON_BAD = {"seed": st.just(1), "colour": st.just("red")}
_SAMPLER_OPTIONS = {
    "tpe": _options(
        {"n_startup_trials": st.integers(0, 3), "n_ei_candidates": st.integers(1, 30), "multivariate": st.booleans(),
         "group": st.booleans(), "constant_liar": st.booleans()},
        {"n_startup_trials": _bad(-1), "n_ei_candidates": _bad(0), "multivariate": _bad("yes"),
         "gamma": st.just(0.25), "prior_weight": st.just(1.0), **_COMMON_BAD},
    ),
    "random": _options({}, _COMMON_BAD),
    "cmaes": _options(
        {"n_startup_trials": st.integers(0, 2), "popsize": st.sampled_from([None, 2, 6]),
         "consider_pruned_trials": st.booleans(), "use_separable_cma": st.booleans(), "with_margin": st.booleans(),
         "lr_adapt": st.booleans(), "warn_independent_sampling": st.booleans()},
        {"popsize": _bad(0, 1, -3), "n_startup_trials": _bad(-1), "x0": st.just({"x": 0.0}), **_COMMON_BAD},
    ),
    "qmc": _options(
        {"qmc_type": st.sampled_from(["sobol", "halton"]), "scramble": st.booleans(),
         "warn_asynchronous_seeding": st.booleans()},
        {"qmc_type": st.sampled_from(["lattice", "", 3]), "scramble": _bad(), **_COMMON_BAD},
    ),
    "grid": _options({}, {"search_space": st.just({"x": [0.0]}), **_COMMON_BAD}),
    "nsga2": _options(
        {"population_size": st.integers(2, 60), "mutation_prob": st.sampled_from([None, 0.0, 0.5, 1.0]),
         "crossover_prob": st.sampled_from([0.0, 0.9, 1.0]), "swapping_prob": st.sampled_from([0.0, 0.5, 1.0])},
        {"population_size": _bad(1, 0), "mutation_prob": st.sampled_from([-0.1, 1.5, math.nan]),
         "swapping_prob": st.sampled_from([1.5, -1.0, "half"]), "crossover_prob": st.sampled_from([2.0, "x"]),
         **_COMMON_BAD},
    ),
}
_STEP_VALID = {"n_startup_trials": st.integers(0, 3), "n_warmup_steps": st.integers(0, 3),
               "interval_steps": st.integers(1, 3), "n_min_trials": st.integers(1, 3)}
_STEP_BAD = {"n_startup_trials": _bad(-1), "n_warmup_steps": _bad(-2), "interval_steps": _bad(0),
             "n_min_trials": _bad(0)}
_PRUNER_OPTIONS = {
    "none": _options({}, {"n_warmup_steps": st.just(1)}),
    "median": _options(_STEP_VALID, {**_STEP_BAD, "percentile": st.just(50)}),
    "percentile": _options({"percentile": st.sampled_from([0, 25.0, 99.5, 100]), **_STEP_VALID},
                           {"percentile": st.sampled_from([-1, 100.5, math.nan, "high"]), **_STEP_BAD}),
    "hyperband": _options(
        {"min_resource": st.integers(1, 3), "max_resource": st.integers(1, 12), "reduction_factor": st.integers(2, 4),
         "bootstrap_count": st.integers(0, 2)},
        {"min_resource": _bad(0), "max_resource": st.sampled_from([0, "auto", 2.0]), "reduction_factor": _bad(1),
         "bootstrap_count": _bad(-1)},
    ),
    "successive_halving": _options(
        {"min_resource": st.integers(1, 3), "reduction_factor": st.integers(2, 4),
         "min_early_stopping_rate": st.integers(0, 2), "bootstrap_count": st.integers(0, 2)},
        {"min_resource": st.sampled_from([0, "auto", "x"]), "reduction_factor": _bad(1),
         "min_early_stopping_rate": _bad(-1)},
    ),
    "mo_successive_halving": _options(
        {"min_resource": st.integers(1, 3), "reduction_factor": st.integers(2, 4),
         "min_early_stopping_rate": st.integers(0, 2), "bootstrap_count": st.integers(0, 2)},
        {"min_resource": st.sampled_from([0, "auto", "x"]), "reduction_factor": _bad(1),
         "min_early_stopping_rate": _bad(-1), "bootstrap_count": _bad(-1)},
    ),
    "wilcoxon": _options({"p_threshold": st.sampled_from([0.0, 0.1, 1.0]), "n_startup_steps": st.integers(0, 4)},
                         {"p_threshold": st.sampled_from([-0.1, 1.5, "p"]), "n_startup_steps": _bad(-1)}),
    "threshold": _options(
        {"lower": st.sampled_from([None, -1.0, 0.5]), "upper": st.sampled_from([None, 0.0, 2.0]),
         "n_warmup_steps": st.integers(0, 2), "interval_steps": st.integers(1, 2)},
        {"lower": st.sampled_from([math.nan, "low"]), "n_warmup_steps": _bad(-1), "interval_steps": _bad(0)},
    ),
}
_WRAPPED = st.one_of(
    st.sampled_from([n for n in _PRUNER_OPTIONS if n not in ("none", "mo_successive_halving")]),
    st.sampled_from(["none", "patient", "early", 3]),
    st.sampled_from(sorted(_PRUNER_OPTIONS)).flatmap(
        lambda n: _PRUNER_OPTIONS[n].map(lambda o, n=n: {"name": n, **o})),
    st.just({"percentile": 40}),
)
_PRUNER_OPTIONS["patient"] = _options(
    {"wrapped": _WRAPPED, "patience": st.integers(0, 3), "min_delta": st.sampled_from([0.0, 0.5])},
    {"patience": _bad(-1), "min_delta": st.sampled_from([-0.1, "x"])},
)


def _direct_sampler(name: str, options: dict[str, Any], seed: int) -> Any:
    """Optuna's class called directly with the options resolved by the registry."""
    resolved = resolve_sampler_options(name, options, Context(seed=seed, workers=2, epochs=EPOCHS))
    if name == "grid":
        return SAMPLER_CLASSES[name](GRID, seed=seed, **resolved)
    return SAMPLER_CLASSES[name](seed=seed, **resolved)


def _direct_pruner(name: str, options: dict[str, Any]) -> Any:
    resolved = resolve_pruner_options(name, options, Context(epochs=EPOCHS))
    if name == "patient":
        wrapped = resolved.pop("wrapped")
        inner = (wrapped, {}) if isinstance(wrapped, str) else (wrapped["name"], {
            k: v for k, v in wrapped.items() if k != "name"})
        return PRUNER_CLASSES[name](_direct_pruner(*inner), **resolved)
    return PRUNER_CLASSES[name](**resolved)


def _short_study(sampler: Any, pruner: Any) -> None:
    """Three trials of 4 reported steps: samplers sample, lazily built pruners (hyperband) initialize."""
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    for k in range(3):
        trial = study.ask()
        x = trial.suggest_float("x", -1.0, 1.0, step=1.0)
        trial.suggest_categorical("y", [-0.5, 0.5])
        for step in range(4):
            trial.report(x + 0.1 * step + k, step)
            trial.should_prune()
        study.tell(trial, x + k)


def _same_outcome(kind: str, name: str, options: dict[str, Any]) -> None:
    """validate accepts ``options`` exactly when the builder builds them and Optuna takes them."""
    # mo_successive_halving prunes two-objective studies only
    two: dict[str, Any] = {}
    if name == "mo_successive_halving":
        two = {"direction": ["maximize", "minimize"], "metric": ["score", "loss"]}
    try:
        spec = parse_spec(_data(**{kind: {"name": name, **options}}, **two))
        accepted, problems = True, []
    except SpecError as exc:
        accepted, problems = False, exc.problems
    try:
        direct = _direct_sampler(name, options, 5) if kind == "sampler" else _direct_pruner(name, options)
        optuna_takes = True
    except (TypeError, ValueError, KeyError, AttributeError):
        optuna_takes = False
    event(f"accepted={accepted}, optuna takes={optuna_takes}")  # shown by --hypothesis-show-statistics
    if not optuna_takes:
        assert not accepted, f"validate accepted {options} that Optuna refuses"
    if not accepted:
        assert problems and all(p.path.startswith(kind) for p in problems), problems
        # the builder refuses them too, before Optuna sees them
        base = parse_spec(_data(**two)) if two else BASE
        unchecked = dataclasses.replace(base, **{kind: (SamplerSpec if kind == "sampler" else PrunerSpec)(
            name=name, options=options)})
        with pytest.raises(SpecError):
            (build_sampler if kind == "sampler" else build_pruner)(unchecked)
        return
    built = build_sampler(spec) if kind == "sampler" else build_pruner(spec)
    classes = SAMPLER_CLASSES if kind == "sampler" else PRUNER_CLASSES
    assert type(built) is classes[name] is type(direct)
    if kind == "sampler":
        _short_study(built, None)
    elif isinstance(built, ParetoHalving):  # applied by the coordinator, not by Optuna: its rule runs
        others = [(0.0, 1.0)] * (built.bootstrap_count + 1)  # past the bootstrap, a dominating vector is kept
        assert built == direct and built.rung_step(0) >= 1 and built.keep((1.0, 0.0), others, (True, False))
    else:
        _short_study(None, built)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_validate_accepts_sampler_options_exactly_when_they_build(data):
    name = data.draw(st.sampled_from(sorted(_SAMPLER_OPTIONS)), label="name")
    options = data.draw(_SAMPLER_OPTIONS[name], label="options")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _same_outcome("sampler", name, options)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_validate_accepts_pruner_options_exactly_when_they_build(data):
    name = data.draw(st.sampled_from(sorted(_PRUNER_OPTIONS)), label="name")
    options = data.draw(_PRUNER_OPTIONS[name], label="options")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _same_outcome("pruner", name, options)


def test_every_registered_name_is_drawn():
    assert set(_PRUNER_OPTIONS) == set(PRUNERS)
    # gp imports torch and fits a Gaussian process: checked by the class test above, not drawn
    assert set(_SAMPLER_OPTIONS) == set(SAMPLERS) - {"gp"}


# ---------------------------------------------------------------------- auto
MLP_GRID = SpaceShape(params=8, categorical=6)


@pytest.mark.parametrize("workers", [1, 4, 16, 64])
def test_auto_is_multivariate_tpe_after_5_random_trials_and_successive_halving_for_a_single_objective(workers):
    ctx = Context(workers=workers, epochs=10, objectives=1, space=MLP_GRID)
    assert (auto_sampler(ctx).name, dict(auto_sampler(ctx).options)) == ("tpe", {"n_startup_trials": 5})
    assert (auto_pruner(ctx).name, dict(auto_pruner(ctx).options)) == ("successive_halving",
                                                                       {"min_early_stopping_rate": 1})
    spec = parse_spec(_data(workers=workers))  # no sampler, no pruner: auto
    built = build_sampler(spec)
    assert isinstance(built, optuna.samplers.TPESampler)
    assert built._multivariate and built._constant_liar == (workers > 1) and built._n_startup_trials == 5
    pruner = build_pruner(spec)
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert (pruner._min_resource, pruner._reduction_factor, pruner._min_early_stopping_rate) == (1, 4, 1)


def test_auto_pruner_first_decides_after_epoch_4():
    # AUTO_FIRST_DECISION: no trial is stopped before epoch 4, however far behind it is; at epoch 4 one
    # below the best quarter of the trials that reached epoch 4 is
    assert AUTO_FIRST_DECISION == 4 and MIN_PRUNED_EPOCHS == 5
    pruner = build_pruner(parse_spec(_data(objective={"framework": "python",
                                                      "callable": "sweeplab_test_objectives:bowl", "epochs": 10})))
    study = optuna.create_study(direction="maximize", pruner=pruner)
    good = study.ask()
    for epoch in range(1, 11):
        good.report(1.0, epoch)
        assert not good.should_prune()
    study.tell(good, 1.0)
    bad = study.ask()
    decisions = []
    for epoch in range(1, 5):
        bad.report(0.0, epoch)
        decisions.append(bad.should_prune())
    assert decisions == [False, False, False, True]


def test_auto_never_prunes_multi_objective_studies_nor_objectives_of_one_epoch():
    multi = Context(workers=2, epochs=10, objectives=2, space=MLP_GRID)
    assert auto_sampler(multi).name == "tpe" and auto_pruner(multi).name == "none"
    assert auto_pruner(Context(epochs=MIN_PRUNED_EPOCHS - 1)).name == "none"
    assert auto_pruner(Context(epochs=MIN_PRUNED_EPOCHS)).name == "successive_halving"
    spec = parse_spec(_data(direction=["minimize", "minimize"], metric=["score", "score2"],
                            objective={"framework": "python", "callable": "sweeplab_test_objectives:bowl",
                                       "epochs": EPOCHS}))
    assert (spec.sampler.name, spec.pruner.name) == ("tpe", "none") and spec.sampler.auto and spec.pruner.auto


def test_a_spec_without_sampler_or_pruner_gets_auto_and_builds_what_it_resolved_to():
    spec = parse_spec(_data())
    assert spec.sampler == SamplerSpec("tpe", {"n_startup_trials": 5}) and spec.sampler.auto
    assert spec.sampler.shown == "tpe (auto)"
    assert spec.pruner == PrunerSpec("successive_halving", {"min_early_stopping_rate": 1}) and spec.pruner.auto
    assert spec.pruner.shown == "successive_halving (auto)"
    pruner = build_pruner(spec)
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner) and pruner._min_early_stopping_rate == 1
    # `auto` named is the same as left out; the spec records the resolved choice, so it round-trips
    named = parse_spec(_data(sampler="auto", pruner={"name": "auto"}))
    assert named == spec and named.to_dict()["sampler"] == {"name": "tpe", "n_startup_trials": 5}
    assert named.to_dict()["pruner"] == {"name": "successive_halving", "min_early_stopping_rate": 1}
    assert parse_spec(spec.to_dict()) == spec
    # a name given is kept as given
    given = parse_spec(_data(sampler="random", pruner="none"))
    assert (given.sampler.name, given.sampler.auto, given.pruner.name, given.pruner.auto) == \
        ("random", False, "none", False)


def test_auto_takes_no_options():
    with pytest.raises(SpecError) as info:
        parse_spec(_data(sampler={"name": "auto", "multivariate": False}, pruner={"name": "auto", "min_resource": 2}))
    problems = {p.path: p.message for p in info.value.problems}
    assert "`auto` takes no options" in problems["sampler"] and "multivariate" in problems["sampler"]
    assert "name the pruner to set options" in problems["pruner"] and "min_resource" in problems["pruner"]


def test_patient_cannot_wrap_auto():
    with pytest.raises(SpecError, match=r"pruner\.wrapped: unknown pruner `auto`; allowed: none, median"):
        parse_spec(_data(pruner={"name": "patient", "wrapped": "auto"}))

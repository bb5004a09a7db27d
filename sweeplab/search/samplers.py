"""Build Optuna samplers and pruners from a spec's ``sampler`` and ``pruner`` sections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweeplab.errors import Problem, SpecError

if TYPE_CHECKING:
    import optuna

    from sweeplab.spec import StudySpec

SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "grid", "nsga2")
PRUNERS = ("none", "median", "percentile", "hyperband", "successive_halving", "wilcoxon", "patient", "threshold")


def build_sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """Return the sampler of ``spec``, seeded with ``seed`` (default: the spec's seed).

    TPE runs with ``constant_liar`` when more than one trial is in flight, so parallel
    workers do not all sample the same point. Options of the spec are passed to the
    sampler's constructor; a bad option is a SpecError naming ``sampler.<option>``.

    Constraints (``spec.constraints``) need nothing here: the coordinator sets them on
    every trial with ``trial.set_constraint``, which Optuna 5's TPE, NSGA-II and GP samplers
    read from ``trial.constraints`` (their ``constraints_func`` argument is deprecated
    since Optuna 5.0; see :mod:`sweeplab.search.constraints`).
    """
    import optuna

    name = spec.sampler.name
    options: dict[str, Any] = dict(spec.sampler.options)
    seed = spec.seed if seed is None else seed
    samplers = optuna.samplers
    try:
        if name == "tpe":
            options.setdefault("constant_liar", spec.workers > 1)
            options.setdefault("multivariate", True)
            return samplers.TPESampler(seed=seed, **options)
        if name == "random":
            return samplers.RandomSampler(seed=seed, **options)
        if name == "cmaes":
            return samplers.CmaEsSampler(seed=seed, **options)
        if name == "gp":
            return samplers.GPSampler(seed=seed, **options)
        if name == "qmc":
            return samplers.QMCSampler(seed=seed, **options)
        if name == "nsga2":
            return samplers.NSGAIISampler(seed=seed, **options)
        if name == "grid":
            return samplers.GridSampler(spec.space.grid(), seed=seed, **options)
    except TypeError as exc:
        raise SpecError([Problem("sampler", f"bad option for sampler {name!r}: {exc}")], spec.source) from exc
    raise SpecError([Problem("sampler.name", f"must be one of {list(SAMPLERS)}, got {name!r}")], spec.source)


def build_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """Return the pruner of ``spec`` (``NopPruner`` for ``none``).

    ``hyperband`` and ``successive_halving`` default their resources to the spec's
    epochs; ``patient`` wraps a median pruner unless ``wrapped`` names another one.
    """
    import optuna

    pruners = optuna.pruners
    name = spec.pruner.name
    options: dict[str, Any] = dict(spec.pruner.options)
    epochs = spec.objective.epochs
    try:
        if name == "none":
            return pruners.NopPruner()
        if name == "median":
            return pruners.MedianPruner(**options)
        if name == "percentile":
            options.setdefault("percentile", 25.0)
            return pruners.PercentilePruner(**options)
        if name == "hyperband":
            options.setdefault("min_resource", 1)
            options.setdefault("max_resource", epochs)
            return pruners.HyperbandPruner(**options)
        if name == "successive_halving":
            options.setdefault("min_resource", 1)
            return pruners.SuccessiveHalvingPruner(**options)
        if name == "wilcoxon":
            return pruners.WilcoxonPruner(**options)
        if name == "threshold":
            return pruners.ThresholdPruner(**options)
        if name == "patient":
            wrapped = options.pop("wrapped", "median")
            patience = options.pop("patience", 3)
            inner = pruners.MedianPruner() if wrapped == "median" else pruners.NopPruner()
            return pruners.PatientPruner(inner, patience=patience, **options)
    except (TypeError, ValueError) as exc:
        raise SpecError([Problem("pruner", f"bad option for pruner {name!r}: {exc}")], spec.source) from exc
    raise SpecError([Problem("pruner.name", f"must be one of {list(PRUNERS)}, got {name!r}")], spec.source)

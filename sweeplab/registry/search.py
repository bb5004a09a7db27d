"""The samplers and pruners: one entry per name with its option schema, defaults and builder.

A spec's ``sampler: {name: ..., **options}`` and ``pruner: {name: ..., **options}`` are
checked against the entry's schema by :func:`check_sampler` / :func:`check_pruner` (the
spec validator) and built by :func:`build_sampler_from` / :func:`build_pruner_from`
(:mod:`sweeplab.search.samplers`), which check the same schema first. Resolved option
names are the Optuna constructor's keyword arguments, so a builder passes them through;
every option Optuna would reject (now or at the first trial) is refused by the schema,
so what validates builds. Optuna is imported inside the builders only.

``mo_successive_halving`` is sweeplab's own pruner for two-objective studies (Optuna's
``trial.report`` takes one value, so none of its pruners can): it builds a
:class:`~sweeplab.core.pareto.ParetoHalving`, which the coordinator applies to the vector
of the study's metrics each epoch reports. It is the one pruner with
``single_objective=False``.

``auto`` (the default when a spec omits ``sampler`` or ``pruner``) is no entry of its own:
:func:`auto_sampler` / :func:`auto_pruner` resolve it to an entry and its options from
the study's shape (:class:`~sweeplab.registry.options.Context`: objectives, workers,
epochs, space), by the rules chosen from the simulated evidence of
``benchmarks/bench_defaults.py`` (``benchmarks/results/defaults.md``). The spec holds
the resolved choice, so a study records and builds what ``auto`` chose.

``patient`` wraps any other pruner: ``wrapped: percentile`` or
``wrapped: {name: percentile, percentile: 40}`` (default ``median``), checked with the
wrapped pruner's own schema at ``pruner.wrapped.<option>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sweeplab.core.checks import check_mapping, check_str, join
from sweeplab.core.errors import Problem, SpecError
from sweeplab.registry.options import Context, Option, Schema, check_options, resolve_options, shown_value

__all__ = [
    "AUTO",
    "AUTO_FIRST_DECISION",
    "AUTO_PRUNER",
    "AUTO_PRUNER_DOC",
    "AUTO_PRUNER_OPTIONS",
    "AUTO_SAMPLER_DOC",
    "AUTO_TPE_OPTIONS",
    "DEFAULT_PRUNER",
    "DEFAULT_SAMPLER",
    "PRUNERS",
    "SAMPLERS",
    "AutoChoice",
    "PrunerEntry",
    "SamplerEntry",
    "auto_pruner",
    "auto_sampler",
    "build_pruner_from",
    "build_sampler_from",
    "check_pruner",
    "check_sampler",
    "pruner_names",
    "resolve_auto",
    "resolve_pruner_options",
    "resolve_sampler_options",
    "sampler_names",
    "split_component",
]

Builder = Callable[[dict[str, Any], Context], Any]


@dataclass(frozen=True)
class SamplerEntry:
    """One sampler: ``optuna.samplers.<cls>`` built with ``seed`` and the resolved options.

    ``multi_objective``: usable in a study with two directions. ``needs_grid``: built from
    the space's grid (:attr:`Context.grid`). ``seeded_once``: the seed lays out the whole
    search when the sampler is built (QMC's scrambled sequence, the grid's order), so it is
    built once per run with the study's seed instead of re-seeded per trial (see
    :mod:`sweeplab.search.seeding`).
    """

    name: str
    cls: str
    schema: Schema
    doc: str
    multi_objective: bool = True
    needs_grid: bool = False
    seeded_once: bool = False

    def build(self, options: dict[str, Any], context: Context) -> Any:
        """The sampler with resolved ``options`` (imports Optuna)."""
        import optuna

        cls = getattr(optuna.samplers, self.cls)
        if self.needs_grid:
            return cls(dict(context.grid or {}), seed=context.seed, **options)
        return cls(seed=context.seed, **options)


@dataclass(frozen=True)
class PrunerEntry:
    """One pruner: ``optuna.pruners.<cls>`` built with the resolved options, or ``builder`` when set.

    ``multi_objective``: usable in a study with two directions; ``single_objective``:
    usable in a study with one (the spec validator refuses the others).
    """

    name: str
    cls: str
    schema: Schema
    doc: str
    multi_objective: bool = False
    builder: Builder | None = None
    single_objective: bool = True

    def build(self, options: dict[str, Any], context: Context) -> Any:
        """The pruner with resolved ``options`` (imports Optuna)."""
        if self.builder is not None:
            return self.builder(options, context)
        import optuna

        return getattr(optuna.pruners, self.cls)(**options)


# ---------------------------------------------------------------------- samplers
_SEED_RESERVED = ("seed", "the sampler is seeded from the top-level `seed`; set the seed there")
_WARN_INDEPENDENT = Option("warn_independent_sampling", "bool", "log when a parameter falls back to random sampling",
                           default=True)


def _tpe_rules(resolved: Mapping[str, Any], given: Mapping[str, Any]) -> list[Problem]:
    if resolved["group"] and not resolved["multivariate"]:
        return [Problem("group", "`group: true` needs `multivariate: true` (Optuna's rule), got multivariate false")]
    return []


def _cmaes_rules(resolved: Mapping[str, Any], given: Mapping[str, Any]) -> list[Problem]:
    out = []
    if resolved["lr_adapt"] and (resolved["use_separable_cma"] or resolved["with_margin"]):
        out.append(Problem("lr_adapt", "`lr_adapt: true` excludes use_separable_cma and with_margin (Optuna's rule), "
                                       f"got use_separable_cma {shown_value(resolved['use_separable_cma'])}, "
                                       f"with_margin {shown_value(resolved['with_margin'])}"))
    elif resolved["use_separable_cma"] and resolved["with_margin"]:
        out.append(Problem("with_margin", "`with_margin: true` and `use_separable_cma: true` exclude each other "
                                          "(Optuna's rule)"))
    return out


_SAMPLER_LIST = (
    SamplerEntry("tpe", "TPESampler", Schema(
        options=(
            Option("n_startup_trials", "int", "random trials before TPE models", default=10, minimum=0),
            Option("n_ei_candidates", "int", "candidates scored per sample", default=24, minimum=1),
            Option("multivariate", "bool", "model parameters jointly", default=True),
            Option("group", "bool", "model conditional parameter groups apart (needs multivariate)", default=False),
            # parallel workers would all sample the same point without a lie for running trials
            Option("constant_liar", "bool", "treat running trials as bad to spread parallel samples",
                   derive=lambda _o, ctx: ctx.workers > 1, default_text="true when workers > 1"),
        ),
        rules=_tpe_rules,
        reserved=(_SEED_RESERVED,),
    ), "Tree-structured Parzen Estimator"),
    SamplerEntry("random", "RandomSampler", Schema(reserved=(_SEED_RESERVED,)), "uniform random sampling"),
    SamplerEntry("cmaes", "CmaEsSampler", Schema(
        options=(
            Option("n_startup_trials", "int", "random trials before CMA-ES", default=1, minimum=0),
            Option("popsize", "int", "population size", default=None, minimum=2, nullable=True,
                   default_text="null (4 + 3 ln(number of parameters))"),
            Option("consider_pruned_trials", "bool", "learn from pruned trials too", default=False),
            Option("use_separable_cma", "bool", "diagonal covariance (sep-CMA-ES)", default=False),
            Option("with_margin", "bool", "CMA-ES with margin for discrete parameters", default=False),
            Option("lr_adapt", "bool", "learning-rate adaptation for noisy objectives", default=False),
            _WARN_INDEPENDENT,
        ),
        rules=_cmaes_rules,
        reserved=(_SEED_RESERVED,),
    ), "CMA-ES (single-objective, continuous parameters)", multi_objective=False),
    SamplerEntry("gp", "GPSampler", Schema(
        options=(
            Option("n_startup_trials", "int", "random trials before the Gaussian process", default=10, minimum=0),
            Option("deterministic_objective", "bool", "the objective has no noise", default=False),
            _WARN_INDEPENDENT,
        ),
        reserved=(_SEED_RESERVED,),
    ), "Gaussian-process Bayesian optimization (needs torch)"),
    SamplerEntry("qmc", "QMCSampler", Schema(
        options=(
            Option("qmc_type", "str", "low-discrepancy sequence", default="sobol", choices=("sobol", "halton")),
            Option("scramble", "bool", "scramble the sequence (seeded)", default=False),
            Option("warn_asynchronous_seeding", "bool", "log when scrambling is seeded per process", default=True),
            _WARN_INDEPENDENT,
        ),
        reserved=(_SEED_RESERVED,),
    ), "quasi-Monte Carlo sequence", seeded_once=True),
    SamplerEntry("grid", "GridSampler", Schema(
        reserved=(_SEED_RESERVED, ("search_space", "the grid sampler's grid comes from `space`")),
    ), "every combination of the space's finite values", needs_grid=True, seeded_once=True),
    SamplerEntry("nsga2", "NSGAIISampler", Schema(
        options=(
            Option("population_size", "int", "individuals per generation", default=50, minimum=2),
            Option("mutation_prob", "number", "probability of mutating a parameter", default=None,
                   minimum=0, maximum=1, nullable=True, default_text="null (1 / number of parameters)"),
            Option("crossover_prob", "number", "probability of a crossover", default=0.9, minimum=0, maximum=1),
            Option("swapping_prob", "number", "uniform crossover's swap probability", default=0.5,
                   minimum=0, maximum=1),
        ),
        reserved=(_SEED_RESERVED,),
    ), "NSGA-II genetic algorithm (multi-objective)"),
)
SAMPLERS: dict[str, SamplerEntry] = {e.name: e for e in _SAMPLER_LIST}
"""Every sampler, by name."""


# ---------------------------------------------------------------------- pruners
def _step_options(n_startup_trials: int) -> tuple[Option, ...]:
    """The options median and percentile share (Optuna's defaults)."""
    return (
        Option("n_startup_trials", "int", "finished trials before any pruning", default=n_startup_trials, minimum=0),
        Option("n_warmup_steps", "int", "steps (epochs) of a trial before it may be pruned", default=0, minimum=0),
        Option("interval_steps", "int", "steps between pruning checks", default=1, minimum=1),
        Option("n_min_trials", "int", "trials reporting a step before it is compared", default=1, minimum=1),
    )


def _halving_options(reduction_factor: int) -> tuple[Option, ...]:
    """The options successive halving shares with its two-objective form (Optuna's names)."""
    return (
        Option("min_resource", "int", "steps before the first rung", default=1, minimum=1),
        Option("reduction_factor", "int", "1 / fraction promoted per rung", default=reduction_factor, minimum=2),
        Option("min_early_stopping_rate", "int", "rungs skipped at the start", default=0, minimum=0),
        Option("bootstrap_count", "int", "trials a rung needs before it promotes", default=0, minimum=0),
    )


def _hyperband_rules(resolved: Mapping[str, Any], given: Mapping[str, Any]) -> list[Problem]:
    # Optuna computes floor(log(max / min)) + 1 brackets: with max < min it has none and never prunes.
    if resolved["min_resource"] > resolved["max_resource"]:
        where = "yours" if "max_resource" in given else "default: objective.epochs"
        low, high = resolved["min_resource"], resolved["max_resource"]
        return [Problem("", f"`min_resource <= max_resource` must hold, got min_resource={low} > max_resource={high} "
                            f"({where})")]
    return []


def _threshold_rules(resolved: Mapping[str, Any], given: Mapping[str, Any]) -> list[Problem]:
    lower, upper = resolved["lower"], resolved["upper"]
    if lower is None and upper is None:
        return [Problem("", "needs `lower`, `upper` or both: a trial is pruned when its value leaves [lower, upper]")]
    if lower is not None and upper is not None and lower > upper:
        return [Problem("", f"`lower <= upper` must hold, got lower={lower!r} > upper={upper!r}")]
    return []


_NOT_WRAPPABLE = {
    "none": "`none` never prunes, so patient around it would never prune either",
    "patient": "patient inside patient only adds a second patience; raise `patience` instead",
    "mo_successive_halving": "mo_successive_halving decides on two objectives, patient watches one",
}


def _check_wrapped(value: Any, path: str, problems: list[Problem], context: Context) -> bool:
    """``wrapped``: a pruner name or ``{name: ..., **options}``, checked with that pruner's schema."""
    before = len(problems)
    split = split_component(value, path, problems, tuple(PRUNERS), "pruner")
    if split is None:
        return False
    name, options = split
    where = path if isinstance(value, str) else join(path, "name")
    if name in _NOT_WRAPPABLE:
        wrappable = [n for n in PRUNERS if n not in _NOT_WRAPPABLE]
        problems.append(Problem(where, f"{_NOT_WRAPPABLE[name]}; wrap one of {', '.join(wrappable)}, got {name}"))
        return False
    check_options(PRUNERS[name].schema, options, path, problems, context, extra_keys=("name",))
    return len(problems) == before


def _build_patient(options: dict[str, Any], context: Context) -> Any:
    import optuna

    name, inner = _split_plain(options["wrapped"])
    wrapped = build_pruner_from(name, inner, context, path="pruner.wrapped")
    return optuna.pruners.PatientPruner(wrapped, patience=options["patience"], min_delta=options["min_delta"])


def _build_pareto_halving(options: dict[str, Any], context: Context) -> Any:
    from sweeplab.core.pareto import ParetoHalving

    return ParetoHalving(**options)


_PRUNER_LIST = (
    PrunerEntry("none", "NopPruner", Schema(), "never prunes", multi_objective=True),
    PrunerEntry("median", "MedianPruner", Schema(_step_options(5)),
                "prunes a trial below the median of earlier trials at the same step"),
    PrunerEntry("percentile", "PercentilePruner", Schema(
        (Option("percentile", "number", "prune below this percentile of earlier trials (0-100)",
                default=25.0, minimum=0, maximum=100), *_step_options(5)),
    ), "prunes a trial below a percentile of earlier trials at the same step"),
    PrunerEntry("hyperband", "HyperbandPruner", Schema(
        options=(
            Option("min_resource", "int", "steps every trial gets", default=1, minimum=1),
            Option("max_resource", "int", "steps of a full trial", derive=lambda _o, ctx: ctx.epochs,
                   default_text="objective.epochs", minimum=1),
            Option("reduction_factor", "int", "1 / fraction promoted per rung", default=3, minimum=2),
            Option("bootstrap_count", "int", "trials a rung needs before it promotes", default=0, minimum=0),
        ),
        rules=_hyperband_rules,
    ), "Hyperband: successive halving over several brackets"),
    PrunerEntry("successive_halving", "SuccessiveHalvingPruner", Schema(_halving_options(reduction_factor=4)),
                "asynchronous successive halving"),
    # reduction_factor 2, not successive_halving's 4: on the simulator keeping a third lost 18 %
    # of the hypervolume, keeping half 6 % (benchmarks/results/mo_pruning.md)
    PrunerEntry("mo_successive_halving", "", Schema(_halving_options(reduction_factor=2)),
                "successive halving on the non-dominated rank of both objectives (two-objective studies only)",
                multi_objective=True, single_objective=False, builder=_build_pareto_halving),
    PrunerEntry("wilcoxon", "WilcoxonPruner", Schema(
        options=(
            Option("p_threshold", "number", "p-value below which the trial is pruned", default=0.1,
                   minimum=0, maximum=1),
            Option("n_startup_steps", "int", "steps before any pruning", default=2, minimum=0),
        ),
    ), "Wilcoxon signed-rank test against the best trial, step = instance (fold, batch) index"),
    PrunerEntry("threshold", "ThresholdPruner", Schema(
        options=(
            Option("lower", "number", "prune when the value falls below", default=None, nullable=True),
            Option("upper", "number", "prune when the value rises above", default=None, nullable=True),
            Option("n_warmup_steps", "int", "steps of a trial before it may be pruned", default=0, minimum=0),
            Option("interval_steps", "int", "steps between pruning checks", default=1, minimum=1),
        ),
        rules=_threshold_rules,
    ), "prunes a trial whose value leaves [lower, upper] (or is NaN)"),
    PrunerEntry("patient", "PatientPruner", Schema(
        options=(
            Option("wrapped", "custom", "the pruner asked once patience runs out: a name or {name: ..., options}",
                   default="median", check=_check_wrapped),
            Option("patience", "int", "steps without improvement before the wrapped pruner is asked",
                   default=3, minimum=0),
            Option("min_delta", "number", "smallest change that counts as improvement", default=0.0, minimum=0),
        ),
    ), "asks the wrapped pruner only after `patience` steps without improvement", builder=_build_patient),
)
PRUNERS: dict[str, PrunerEntry] = {e.name: e for e in _PRUNER_LIST}
"""Every pruner, by name."""


# ---------------------------------------------------------------------- auto
AUTO = "auto"
"""The name that lets sweeplab choose the sampler or pruner (:func:`auto_sampler`, :func:`auto_pruner`)."""
DEFAULT_SAMPLER = AUTO
"""The sampler of a spec that names none."""
DEFAULT_PRUNER = AUTO
"""The pruner of a spec that names none."""
AUTO_TPE_OPTIONS: Mapping[str, Any] = {"n_startup_trials": 5}
"""``sampler: auto``'s TPE options for one objective (multivariate, and ``constant_liar`` when
workers > 1, are the entry's defaults): 5 random trials before TPE models, not Optuna's 10 (see
:func:`auto_sampler`)."""
AUTO_PRUNER = "successive_halving"
"""``pruner: auto``'s pruner for one objective of at least :data:`MIN_PRUNED_EPOCHS` epochs."""
AUTO_PRUNER_OPTIONS: Mapping[str, Any] = {"min_early_stopping_rate": 1}
"""``pruner: auto``'s successive halving options: its first rung skipped, so the first decision comes
after ``min_resource`` x ``reduction_factor`` (1 x 4) epochs, where a trial below the best quarter of
the trials that reached that epoch stops; the next rung is at 16 epochs (see :func:`auto_pruner`)."""


def _first_rung(options: Mapping[str, Any]) -> int:
    """The epoch of successive halving's first decision: ``min_resource`` x ``reduction_factor`` **
    ``min_early_stopping_rate`` (Optuna's rung 0), ``options`` over the entry's defaults."""
    resolved = resolve_options(PRUNERS["successive_halving"].schema, options)
    return int(resolved["min_resource"] * resolved["reduction_factor"] ** resolved["min_early_stopping_rate"])


AUTO_FIRST_DECISION = _first_rung(AUTO_PRUNER_OPTIONS)
"""The epoch after which ``pruner: auto`` first decides (4)."""
MIN_PRUNED_EPOCHS = AUTO_FIRST_DECISION + 1
"""``pruner: auto`` prunes only objectives of at least this many epochs: with fewer, its first decision
would come at the last epoch or never, and save nothing."""


@dataclass(frozen=True)
class AutoChoice:
    """What ``auto`` resolved to: an entry's ``name``, its ``options`` and ``why`` (shown by ``validate``)."""

    name: str
    options: Mapping[str, Any]
    why: str


def auto_sampler(context: Context) -> AutoChoice:
    """The sampler ``sampler: auto`` stands for in a study of ``context``'s shape.

    One objective: multivariate TPE with :data:`AUTO_TPE_OPTIONS` (5 random trials first;
    ``constant_liar`` on when workers > 1). In the simulated evidence
    (``benchmarks/results/defaults.md``: 20 seeds, budget 40 trials, median over the tables
    where the target is rare) it reached the target in 0.51x the trials of random search at
    1 worker (range over tables 0.31x - 0.74x) and 0.54x at 4 (0.52x - 0.67x), against 0.61x
    and 0.67x with Optuna's 10 random trials (4: 0.46x / 0.54x but 1.07x on ``diabetes``;
    6: 0.49x / 0.56x; 8: 0.58x / 0.59x); on held-out seeds 20-39, 0.48x and 0.49x. CMA-ES
    (0.49x at 1 worker) samples categorical parameters at random and fell to 0.77x at 4
    workers. The evidence covers a budget of 40 trials; the rule does not depend on the
    budget nor on ``workers`` (resuming with other ``--workers`` keeps the sampler). With
    several objectives TPE keeps Optuna's defaults (nothing measured there): NSGA-II spends
    its first ``population_size`` (50) trials at random, more than a typical budget.
    """
    if context.objectives > 1:
        return AutoChoice("tpe", {}, "multi-objective: TPE models every objective; NSGA-II's first generation "
                                     "(50 trials) is random")
    return AutoChoice("tpe", dict(AUTO_TPE_OPTIONS), f"multivariate TPE after {AUTO_TPE_OPTIONS['n_startup_trials']} "
                                                     "random trials: fewest trials to target in the simulated evidence")


def auto_pruner(context: Context) -> AutoChoice:
    """The pruner ``pruner: auto`` stands for in a study of ``context``'s shape.

    ``none`` for several objectives (Optuna's pruners compare one value) and for objectives
    of fewer than :data:`MIN_PRUNED_EPOCHS` epochs; otherwise successive halving with
    :data:`AUTO_PRUNER_OPTIONS` (first decision after 4 epochs). In the simulated evidence,
    with :func:`auto_sampler`'s TPE (20 seeds, budget 40, median over the tables where the
    target is rare), it reached the target with 0.38x the epochs of random search at 1
    worker (range over tables 0.26x - 0.38x) at a best value 0.1 points below no pruning
    (-0.1 - +0.0): issue 14's targets (0.4x, within 0.5 points) met; on held-out seeds
    20-39, 0.33x at -0.3 points. At 4 workers 0.45x (0.36x - 0.81x) at +0.1 points: not
    met, and no pruner tried (3 with their defaults, 18 variants) met it there. With
    Optuna's defaults the pruners decide from the first epoch and stop trials whose learning
    curves would have crossed (a slow learning rate that ends best): with the same TPE,
    Hyperband with its defaults gave 0.53x at -0.3 points, successive halving 0.35x at -0.5.
    Like the sampler, it does not depend on ``workers``.
    """
    if context.objectives > 1:
        return AutoChoice("none", {}, "multi-objective: Optuna's pruners compare one value")
    if context.epochs < MIN_PRUNED_EPOCHS:
        return AutoChoice("none", {}, f"{context.epochs} epoch(s): the pruner's first decision, after epoch "
                                      f"{AUTO_FIRST_DECISION}, would save nothing")
    return AutoChoice(AUTO_PRUNER, dict(AUTO_PRUNER_OPTIONS),
                      f"successive halving from epoch {AUTO_FIRST_DECISION}: least compute to target within 0.5 "
                      "points in the simulated evidence")


AUTO_SAMPLER_DOC = (f"the default: multivariate TPE after {AUTO_TPE_OPTIONS['n_startup_trials']} random trials "
                    "(chosen by simulated evidence; see README)")
"""``auto`` in the sampler names listed by ``--help``."""
AUTO_PRUNER_DOC = (f"the default: successive_halving from epoch {AUTO_FIRST_DECISION}, none for "
                   f"multi-objective studies or under {MIN_PRUNED_EPOCHS} epochs (chosen by simulated evidence; "
                   "see README)")
"""``auto`` in the pruner names listed by ``--help``."""


def resolve_auto(kind: str, options: Mapping[str, Any], path: str, problems: list[Problem],
                 context: Context) -> AutoChoice | None:
    """``auto`` of ``kind`` (``sampler`` or ``pruner``) resolved for ``context``; a problem at
    ``path`` and None when options were given (``auto`` takes none)."""
    if options:
        shown = ", ".join(sorted(options))
        problems.append(Problem(path, f"`auto` takes no options (it chooses them); name the {kind} to set "
                                      f"options ({kind}: {{name: ..., {shown}: ...}}), got {shown}"))
        return None
    return auto_sampler(context) if kind == "sampler" else auto_pruner(context)


# ---------------------------------------------------------------------- functions
def sampler_names() -> tuple[str, ...]:
    """The names a spec's ``sampler`` may take: :data:`AUTO`, then the entries in registry order."""
    return (AUTO, *SAMPLERS)


def pruner_names() -> tuple[str, ...]:
    """The names a spec's ``pruner`` may take: :data:`AUTO`, then the entries in registry order."""
    return (AUTO, *PRUNERS)


def split_component(
    value: Any, path: str, problems: list[Problem], names: tuple[str, ...], what: str
) -> tuple[str, dict[str, Any]] | None:
    """``name`` or ``{name: ..., **options}`` as ``(name, options)``; a problem and None when it is neither.

    ``name`` must be one of ``names`` (``what`` says of what, e.g. ``pruner``); a problem
    at ``path.name`` (``path`` for a bare name) says which are allowed.
    """
    if isinstance(value, str):
        name = check_str(value, path, problems, choices=names, what=what)
        return (name, {}) if name is not None else None
    mapping = check_mapping(value, path, problems)
    if mapping is None:
        return None
    if "name" not in mapping:
        problems.append(Problem(join(path, "name"), f"required; one of {', '.join(names)}"))
        return None
    name = check_str(mapping["name"], join(path, "name"), problems, choices=names, what=what)
    if name is None:
        return None
    return name, {k: v for k, v in mapping.items() if k != "name"}


def _split_plain(value: Any) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of a component already checked by :func:`split_component`."""
    if isinstance(value, str):
        return value, {}
    return str(value["name"]), {k: v for k, v in value.items() if k != "name"}


def check_sampler(name: str, options: Mapping[str, Any], path: str, problems: list[Problem],
                  context: Context | None = None) -> bool:
    """Check the options of sampler ``name`` (a known name) at ``path``; True when none is bad."""
    return check_options(SAMPLERS[name].schema, options, path, problems, context)


def check_pruner(name: str, options: Mapping[str, Any], path: str, problems: list[Problem],
                 context: Context | None = None) -> bool:
    """Check the options of pruner ``name`` (a known name) at ``path``, ``wrapped`` recursively."""
    return check_options(PRUNERS[name].schema, options, path, problems, context)


def resolve_sampler_options(name: str, options: Mapping[str, Any], context: Context | None = None) -> dict[str, Any]:
    """Sampler ``name``'s constructor options: ``options`` over its defaults (``seed`` aside)."""
    return resolve_options(SAMPLERS[name].schema, options, context)


def resolve_pruner_options(name: str, options: Mapping[str, Any], context: Context | None = None) -> dict[str, Any]:
    """Pruner ``name``'s options: ``options`` over its defaults (``wrapped`` stays as given)."""
    return resolve_options(PRUNERS[name].schema, options, context)


def _build(kind: str, entries: Mapping[str, SamplerEntry] | Mapping[str, PrunerEntry], name: str,
           options: Mapping[str, Any], context: Context, path: str, source: str) -> Any:
    if name not in entries:
        raise SpecError([Problem(join(path, "name"), f"unknown {kind} `{name}`; allowed: {', '.join(entries)}")],
                        source)
    entry = entries[name]
    problems: list[Problem] = []
    if not check_options(entry.schema, options, path, problems, context):
        raise SpecError(problems, source)
    resolved = resolve_options(entry.schema, options, context)
    try:
        return entry.build(resolved, context)
    except (TypeError, ValueError) as exc:
        # the schema should refuse what Optuna refuses; this names the option if it does not
        shown = ", ".join(f"{k}={v!r}" for k, v in resolved.items()) or "no options"
        raise SpecError([Problem(path, f"Optuna refused {kind} {name} with {shown}: {exc}")], source) from exc


def build_sampler_from(name: str, options: Mapping[str, Any], context: Context, *, path: str = "sampler",
                       source: str = "spec") -> Any:
    """Sampler ``name`` built with ``options`` over its defaults, seeded with ``context.seed``.

    Raises :class:`SpecError` (problems at ``path``) for an unknown name or options its
    schema refuses, before Optuna sees them.
    """
    return _build("sampler", SAMPLERS, name, options, context, path, source)


def build_pruner_from(name: str, options: Mapping[str, Any], context: Context, *, path: str = "pruner",
                      source: str = "spec") -> Any:
    """Pruner ``name`` built with ``options`` over its defaults; like :func:`build_sampler_from`."""
    return _build("pruner", PRUNERS, name, options, context, path, source)

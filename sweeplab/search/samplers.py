"""Build Optuna samplers and pruners from a spec's ``sampler`` and ``pruner`` sections.

The names, options and defaults live in :mod:`sweeplab.registry.search`; these are the
entry points the driver and the benchmarks call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from sweeplab.registry.options import Context
from sweeplab.registry.search import SAMPLERS as _SAMPLER_ENTRIES
from sweeplab.registry.search import (
    build_pruner_from,
    build_sampler_from,
    pruner_names,
    resolve_sampler_options,
    sampler_names,
)

if TYPE_CHECKING:
    import optuna

    from sweeplab.spec import StudySpec

__all__ = ["PRUNERS", "SAMPLERS", "build_pruner", "build_sampler", "sampler_factory"]

SAMPLERS = sampler_names()
PRUNERS = pruner_names()


def build_sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """Return the sampler of ``spec``, seeded with ``seed`` (default: ``spec.seed``).

    Options are the spec's over the registry entry's defaults; TPE's are
    ``multivariate: true`` and ``constant_liar`` when more than one trial is in flight
    (``spec.workers > 1``), so parallel workers do not all sample the same point. A
    grid sampler's grid is ``spec.space.grid()``. Raises :class:`~sweeplab.core.errors.SpecError`
    (paths ``sampler.<option>``) for options the entry refuses, before Optuna sees them.

    Constraints (``spec.constraints``) need nothing here: the coordinator sets them on
    every trial with ``trial.set_constraint``, which Optuna 5's TPE, NSGA-II and GP samplers
    read from ``trial.constraints`` (their ``constraints_func`` argument is deprecated
    since Optuna 5.0; see :mod:`sweeplab.search.constraints`).
    """
    entry = _SAMPLER_ENTRIES.get(spec.sampler.name)
    context = Context(
        seed=spec.seed if seed is None else seed,
        workers=spec.workers,
        epochs=spec.objective.epochs,
        grid=spec.space.grid() if entry is not None and entry.needs_grid else None,
    )
    sampler: optuna.samplers.BaseSampler = build_sampler_from(
        spec.sampler.name, spec.sampler.options, context, source=spec.source
    )
    return sampler


def sampler_factory(spec: StudySpec) -> Callable[[int], optuna.samplers.BaseSampler]:
    """``seed -> sampler``: :func:`build_sampler` for any seed, with the options checked and
    resolved once (the coordinator builds a sampler per trial, see
    :mod:`sweeplab.search.seeding`). Raises like :func:`build_sampler` when called."""
    build_sampler(spec)  # a bad option raises here, once
    entry = _SAMPLER_ENTRIES[spec.sampler.name]
    context = Context(seed=spec.seed, workers=spec.workers, epochs=spec.objective.epochs,
                      grid=spec.space.grid() if entry.needs_grid else None)
    resolved = resolve_sampler_options(spec.sampler.name, spec.sampler.options, context)

    def build(seed: int) -> optuna.samplers.BaseSampler:
        sampler: optuna.samplers.BaseSampler = entry.build(dict(resolved), dataclasses.replace(context, seed=seed))
        return sampler

    return build


def build_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """Return the pruner of ``spec`` (``NopPruner`` for ``none``).

    Options are the spec's over the registry entry's defaults (``hyperband``'s
    ``max_resource`` defaults to ``spec.objective.epochs``; ``patient`` wraps the pruner
    its ``wrapped`` names, ``median`` by default). Raises
    :class:`~sweeplab.core.errors.SpecError` (paths ``pruner.<option>``) for options the entry
    refuses.
    """
    context = Context(seed=spec.seed, workers=spec.workers, epochs=spec.objective.epochs)
    pruner: optuna.pruners.BasePruner = build_pruner_from(
        spec.pruner.name, spec.pruner.options, context, source=spec.source
    )
    return pruner

"""The registries: one table per extension point, the one place each name and default is declared.

* :mod:`~sweeplab.registry.names`: frameworks, tasks, activations, optimizers, schedules, poolings;
* :mod:`~sweeplab.registry.families`: the model families (``objective.model``: ``mlp``,
  ``cnn``) with their hyperparameters (names, rules, defaults) and config builders;
* :mod:`~sweeplab.registry.datasets`: the named datasets (task, scikit-learn function,
  options with sweeplab's defaults, cross-option rules);
* :mod:`~sweeplab.registry.search`: samplers and pruners (options with defaults, lazy
  Optuna builders);
* :mod:`~sweeplab.registry.options`: the option schema they share, with
  :func:`check_options` (the spec validator's side) and :func:`resolve_options`
  (the builders' and loaders' side).

Importing this package imports no numpy, scikit-learn or Optuna: ``sweeplab validate``
and ``--help`` read it.
"""

from __future__ import annotations

from sweeplab.registry.datasets import DATASETS, MIN_ROWS, DatasetEntry
from sweeplab.registry.families import MODEL_FAMILIES, MODEL_NAMES, ModelFamily
from sweeplab.registry.names import (
    ACTIVATIONS,
    FRAMEWORK_NAMES,
    FRAMEWORKS,
    LR_SCHEDULES,
    MLP_FRAMEWORKS,
    OPTIMIZERS,
    POOLINGS,
    TASKS,
    Framework,
)
from sweeplab.registry.options import Context, Option, Schema, check_options, resolve_options
from sweeplab.registry.search import PRUNERS, SAMPLERS, PrunerEntry, SamplerEntry

__all__ = [
    "ACTIVATIONS",
    "DATASETS",
    "FRAMEWORKS",
    "FRAMEWORK_NAMES",
    "LR_SCHEDULES",
    "MIN_ROWS",
    "MLP_FRAMEWORKS",
    "MODEL_FAMILIES",
    "MODEL_NAMES",
    "OPTIMIZERS",
    "POOLINGS",
    "PRUNERS",
    "SAMPLERS",
    "TASKS",
    "Context",
    "DatasetEntry",
    "Framework",
    "ModelFamily",
    "Option",
    "PrunerEntry",
    "SamplerEntry",
    "Schema",
    "check_options",
    "resolve_options",
]

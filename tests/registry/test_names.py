"""The frameworks' registry entries name objectives that exist and follow the contract."""

from __future__ import annotations

import importlib

import pytest

from sweeplab.objectives.base import BaseObjective
from sweeplab.registry.names import FRAMEWORK_NAMES, FRAMEWORKS, FRAMEWORKS_BY_NAME
from sweeplab.search.worker import get_objective


@pytest.mark.parametrize("entry", FRAMEWORKS, ids=[f.name for f in FRAMEWORKS])
def test_each_framework_names_an_objective_class(entry):
    module, _, cls = entry.objective.partition(":")
    assert issubclass(getattr(importlib.import_module(module), cls), BaseObjective)


def test_the_worker_builds_objectives_from_the_registry():
    objective = get_objective("python", "sweeplab_test_objectives:bowl")
    assert type(objective).__name__ == FRAMEWORKS_BY_NAME["python"].objective.split(":")[1]
    assert get_objective("python", "sweeplab_test_objectives:bowl") is objective  # one per process and callable
    with pytest.raises(ValueError, match=", ".join(FRAMEWORK_NAMES)):
        get_objective("jax", None)

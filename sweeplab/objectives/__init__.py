"""Objectives (what a trial trains) and datasets.

Importing this package is cheap: the torch and Keras objectives are imported lazily
by the worker that runs them. Public surface: the trial users' functions get
(:class:`Trial`, :class:`TrialPruned`), the objective contract and the dataset.
"""

from __future__ import annotations

from sweeplab.objectives.base import BaseObjective, NullReporter, Reporter, TrialContext, TrialPruned
from sweeplab.objectives.config import CNNConfig, MLPConfig, NetworkConfig
from sweeplab.objectives.dataset import Dataset
from sweeplab.objectives.trial import Trial

__all__ = [
    "BaseObjective",
    "CNNConfig",
    "Dataset",
    "MLPConfig",
    "NetworkConfig",
    "NullReporter",
    "Reporter",
    "Trial",
    "TrialContext",
    "TrialPruned",
]

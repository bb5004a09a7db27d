"""Transfer learning (the guide's exercise 5): fine-tune a sweeplab model on a new task.

A study with ``objective.init_from: models:/NAME@champion`` (or ``models:/NAME/VERSION``,
``runs:/RUN_ID/model``, a ``file:`` URI of a model folder) starts every trial from the
hidden layers of that model:

1. the driver downloads the model's artifacts ONCE
   (:func:`sweeplab.tracking.sources.fetch_source_model`, with the study's tracking URI)
   and reads the sweeplab pyfunc model saved by
   :mod:`sweeplab.tracking.models`: ``artifacts/sweeplab_model.json`` gives the
   :class:`~sweeplab.objectives.config.MLPConfig` and the input/output widths,
   ``artifacts/weights.*`` the weights. The hidden layers become a :class:`SourceModel`
   (numpy arrays, framework-neutral: kernels in ``(fan_in, units)`` layout), which
   :func:`attach_source` puts on the study's :class:`~sweeplab.objectives.dataset.Dataset`,
   so it reaches every trial (and the end-of-study re-fit, ``promote`` and ``audit``)
   through Ray's object store with the arrays;
2. each trial (:func:`plan_trial`) takes the source's architecture (``hidden_units``,
   ``batch_norm``, ``activation``; the space may not search them), copies the hidden
   layers' weights (BatchNorm scale, shift and running statistics included), builds a NEW
   output layer for this task's outputs (freshly initialised with the trial's seed), and
   freezes the first ``n_frozen_layers`` hidden layers (default 0: everything is
   fine-tuned). ``finetune_learning_rate``, when given, is the learning rate. Frozen
   layers keep their weights exactly: torch sets ``requires_grad=False`` and keeps their
   BatchNorm in inference mode; Keras sets ``layer.trainable = False`` (which also runs
   BatchNormalization in inference mode).

The input layer is kept, so the new task must have the source's number of features
(a :class:`~sweeplab.core.errors.DataError` names both numbers otherwise). Torch and Keras
sources fine-tune into either framework (the weights are plain arrays).

A fine-tuned trial reports ``n_params`` as the whole network's parameter count (what
``constraints.max_params`` bounds) and ``n_trainable_params`` as the part it trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from sweeplab.core.errors import DataError, SweeplabError

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset

__all__ = [
    "ARCHITECTURE_KEYS",
    "HiddenLayer",
    "SourceModel",
    "TransferError",
    "TransferPlan",
    "attach_source",
    "plan_trial",
]

ARCHITECTURE_KEYS = ("hidden_units", "batch_norm", "activation")
"""The resolved params an ``init_from`` trial takes from its source model."""


class TransferError(SweeplabError):
    """``objective.init_from`` names no usable sweeplab model (missing, not a sweeplab model)."""

    exit_code = 2


@dataclass(frozen=True)
class HiddenLayer:
    """One hidden layer of a source model, as float32 numpy arrays.

    ``kernel``: ``(fan_in, units)`` (Keras' layout; torch's ``Linear.weight`` is its
    transpose); ``bias``: ``(units,)``; ``batch_norm``: ``(gamma, beta, moving_mean,
    moving_variance)`` when the layer has BatchNorm, else None.
    """

    kernel: np.ndarray
    bias: np.ndarray
    batch_norm: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def n_params(self) -> int:
        """Trainable parameters of this layer (kernel, bias, BatchNorm's gamma and beta)."""
        bn = 2 * int(self.bias.shape[0]) if self.batch_norm is not None else 0
        return int(self.kernel.size + self.bias.size) + bn


@dataclass(frozen=True)
class SourceModel:
    """The hidden layers of a trained sweeplab model, ready to fine-tune (see the module docstring)."""

    uri: str
    framework: str
    task: str
    n_features: int
    n_outputs: int
    config: Mapping[str, Any]
    layers: tuple[HiddenLayer, ...]
    feature_names: tuple[str, ...] = ()

    @property
    def n_hidden(self) -> int:
        """Number of hidden layers (what ``n_frozen_layers`` counts)."""
        return len(self.layers)

    def architecture(self) -> dict[str, Any]:
        """``hidden_units``, ``batch_norm`` and ``activation`` of the source (the trial's params)."""
        return {
            "hidden_units": [int(layer.bias.shape[0]) for layer in self.layers],
            "batch_norm": bool(self.config.get("batch_norm", False)),
            "activation": str(self.config.get("activation", "relu")),
        }

    def check_features(self, n_features: int, dataset_name: str = "the dataset") -> None:
        """Raise DataError unless the new task has the source's number of input features."""
        if int(n_features) != self.n_features:
            raise DataError(
                f"objective.init_from: the source model {self.uri} takes {self.n_features} input features, but "
                f"{dataset_name} has {int(n_features)}; fine-tuning keeps the input layer, so the new task needs "
                f"the same {self.n_features} features (in the same order and meaning)"
            )


@dataclass(frozen=True)
class TransferPlan:
    """How one trial fine-tunes: the source and how many hidden layers (from the input side) stay frozen."""

    source: SourceModel
    n_frozen: int

    @property
    def frozen_params(self) -> int:
        """Parameters of the frozen layers (not trained)."""
        return sum(layer.n_params for layer in self.source.layers[: self.n_frozen])


# --------------------------------------------------------------------------- driver side


def attach_source(dataset: Dataset, source: SourceModel) -> Dataset:
    """``dataset`` with ``init_from=source`` after checking the input widths match (DataError otherwise)."""
    source.check_features(dataset.n_features, f"dataset {getattr(dataset, 'name', 'dataset')!r}")
    return replace(dataset, init_from=source)


# --------------------------------------------------------------------------- trial side


def plan_trial(params: Mapping[str, Any], dataset: Dataset | None) -> tuple[dict[str, Any], TransferPlan | None]:
    """The trial's MLP params and its transfer plan (None when the dataset carries no source model).

    With a source: ``n_frozen_layers`` (default 0) and ``finetune_learning_rate`` are taken
    out of the params (the latter becomes ``learning_rate``) and the source's architecture
    replaces ``hidden_units`` / ``batch_norm`` / ``activation``. Raises DataError when the
    input widths differ, ValueError when ``n_frozen_layers`` exceeds the source's hidden layers.
    """
    source: SourceModel | None = getattr(dataset, "init_from", None)
    out = dict(params)
    if source is None or dataset is None:
        return out, None
    source.check_features(dataset.n_features, f"dataset {getattr(dataset, 'name', 'dataset')!r}")
    n_frozen = int(out.pop("n_frozen_layers", 0))
    lr = out.pop("finetune_learning_rate", None)
    if lr is not None:
        out["learning_rate"] = float(lr)
    if not 0 <= n_frozen <= source.n_hidden:
        raise ValueError(
            f"n_frozen_layers must be in [0, {source.n_hidden}] (the hidden layers of {source.uri}), got {n_frozen}"
        )
    out.update(source.architecture())
    return out, TransferPlan(source=source, n_frozen=n_frozen)

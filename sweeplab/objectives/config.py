"""The resolved hyperparameters of a network trial, shared by the torch and Keras objectives.

Both frameworks read the same names with the same meanings, so one spec runs on either.
One config class per model family (:mod:`sweeplab.registry.families`, whose entry names
it): :class:`MLPConfig` (``mlp``) and :class:`CNNConfig` (``cnn``), both
:class:`NetworkConfig` s. The defaults of their fields are the family's hyperparameter
defaults in the registry.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from sweeplab.registry.families import family_defaults, get_family
from sweeplab.registry.names import ACTIVATIONS, LR_SCHEDULES, OPTIMIZERS, POOLINGS
from sweeplab.spaces.architecture import MLPPlan, NetworkPlan
from sweeplab.spaces.cnn import CNNPlan, block_filters

__all__ = ["ACTIVATIONS", "LR_SCHEDULES", "OPTIMIZERS", "CNNConfig", "MLPConfig", "NetworkConfig", "config_type"]

_MLP = family_defaults("mlp")
_CNN = family_defaults("cnn")
ConfigT = TypeVar("ConfigT", bound="NetworkConfig")


@dataclass(frozen=True)
class NetworkConfig(ABC):
    """What every family's trial resolves: the dense layers and the training knobs.

    ``hidden_units`` holds the width of every hidden dense layer (already resolved from
    ``n_layers`` / ``units`` / ``units_i`` / ``funnel`` / ``hidden_layers`` by
    ``sweeplab.spaces``). ``lr_schedule``: ``none``; ``exponential`` multiplies the
    learning rate by ``lr_decay_rate`` after every epoch; ``plateau`` multiplies it by
    ``lr_factor`` when the validation loss has not improved for ``lr_patience`` epochs,
    never below ``min_lr`` (the guide's ReduceLROnPlateau(factor=0.5, patience=5,
    min_lr=1e-7)). ``momentum`` applies to sgd only (rmsprop uses its framework default of 0).
    """

    hidden_units: tuple[int, ...] = (64, 32)
    dropout: float = _MLP["dropout"]
    batch_norm: bool = _MLP["batch_norm"]
    activation: str = _MLP["activation"]
    learning_rate: float = _MLP["learning_rate"]
    lr_schedule: str = _MLP["lr_schedule"]
    lr_decay_rate: float = _MLP["lr_decay_rate"]
    lr_factor: float = _MLP["lr_factor"]
    lr_patience: int = _MLP["lr_patience"]
    min_lr: float = _MLP["min_lr"]
    batch_size: int = _MLP["batch_size"]
    optimizer: str = _MLP["optimizer"]
    momentum: float = _MLP["momentum"]
    weight_decay: float = _MLP["weight_decay"]

    #: whether the dense part needs at least one hidden layer
    min_hidden_layers = 1

    @classmethod
    def from_params(cls: type[ConfigT], params: Mapping[str, Any]) -> ConfigT:
        """Build from a params mapping; unknown keys are ignored, missing ones default."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in params.items() if k in known}
        if "hidden_units" in values:
            values["hidden_units"] = tuple(int(u) for u in values["hidden_units"])
        cfg = cls(**values)
        cfg.check()
        return cfg

    @abstractmethod
    def plan(self, input_shape: tuple[int, ...], n_outputs: int, task: str = "classification") -> NetworkPlan:
        """The network of this config for one example of ``input_shape`` and ``n_outputs`` outputs
        (each model family's config says how)."""

    def check(self) -> None:
        """Raise ValueError for values no framework can build."""
        if len(self.hidden_units) < self.min_hidden_layers or any(u < 1 for u in self.hidden_units):
            need = "a non-empty list" if self.min_hidden_layers else "a list"
            raise ValueError(f"hidden_units must be {need} of positive widths, got {list(self.hidden_units)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class MLPConfig(NetworkConfig):
    """One MLP configuration (``objective.model: mlp``): see :class:`NetworkConfig`."""

    def network(self, n_features: int, n_outputs: int, task: str = "classification") -> MLPPlan:
        """The network of this config for ``n_features`` inputs and ``n_outputs`` outputs (see :class:`MLPPlan`)."""
        return MLPPlan(n_features, self.hidden_units, n_outputs, batch_norm=self.batch_norm, dropout=self.dropout,
                       activation=self.activation, task=task)

    def plan(self, input_shape: tuple[int, ...], n_outputs: int, task: str = "classification") -> MLPPlan:
        """:meth:`network` of ``prod(input_shape)`` features (rows are ``(n_features,)``)."""
        return self.network(math.prod(input_shape), n_outputs, task)


@dataclass(frozen=True)
class CNNConfig(NetworkConfig):
    """One CNN configuration (``objective.model: cnn``): convolution blocks, then the dense head.

    ``n_blocks`` blocks; block ``i`` has ``max(1, round(filters * filter_growth**i))``
    filters of ``kernel_size``, then batch norm (``batch_norm``), the activation,
    ``pooling`` (2x2) and ``conv_dropout``; the head is :class:`NetworkConfig`'s dense
    layers, which may be none here. See :class:`~sweeplab.spaces.cnn.CNNPlan`.
    """

    n_blocks: int = _CNN["n_blocks"]
    filters: int = _CNN["filters"]
    filter_growth: float = _CNN["filter_growth"]
    kernel_size: int = _CNN["kernel_size"]
    pooling: str = _CNN["pooling"]
    conv_dropout: float = _CNN["conv_dropout"]

    min_hidden_layers = 0

    def plan(self, input_shape: tuple[int, ...], n_outputs: int, task: str = "classification") -> CNNPlan:
        """The CNN of this config for images of ``input_shape`` ``(H, W, C)`` (see :class:`CNNPlan`)."""
        return CNNPlan(input_shape, block_filters(self.filters, self.filter_growth, self.n_blocks), self.hidden_units,
                       n_outputs, kernel_size=self.kernel_size, pooling=self.pooling, conv_dropout=self.conv_dropout,
                       batch_norm=self.batch_norm, dropout=self.dropout, activation=self.activation, task=task)

    def check(self) -> None:
        super().check()
        if self.n_blocks < 1 or self.filters < 1 or self.kernel_size < 1:
            raise ValueError(f"n_blocks, filters and kernel_size must be >= 1, got n_blocks={self.n_blocks}, "
                             f"filters={self.filters}, kernel_size={self.kernel_size}")
        if not self.filter_growth > 0:
            raise ValueError(f"filter_growth must be > 0, got {self.filter_growth}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        if not 0.0 <= self.conv_dropout < 1.0:
            raise ValueError(f"conv_dropout must be in [0, 1), got {self.conv_dropout}")


def config_type(model: str) -> type[NetworkConfig]:
    """The config class of model family ``model`` (its registry entry's ``config``); KeyError for an unknown one."""
    module, _, name = get_family(model).config.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type) and issubclass(cls, NetworkConfig), cls
    return cls

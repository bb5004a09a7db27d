"""The resolved hyperparameters of an MLP trial, shared by the torch and Keras objectives.

Both frameworks read the same names with the same meanings, so one spec runs on either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sweeplab.registry.names import ACTIVATIONS, LR_SCHEDULES, OPTIMIZERS
from sweeplab.spaces.architecture import MLPPlan

__all__ = ["ACTIVATIONS", "LR_SCHEDULES", "OPTIMIZERS", "MLPConfig"]


@dataclass(frozen=True)
class MLPConfig:
    """One MLP configuration.

    ``hidden_units`` holds the width of every hidden layer (already resolved from
    ``n_layers`` / ``units`` / ``units_i`` / ``funnel`` / ``hidden_layers`` by
    ``sweeplab.spaces``). ``lr_schedule``: ``none``; ``exponential`` multiplies the
    learning rate by ``lr_decay_rate`` after every epoch; ``plateau`` multiplies it by
    ``lr_factor`` when the validation loss has not improved for ``lr_patience`` epochs,
    never below ``min_lr`` (the guide's ReduceLROnPlateau(factor=0.5, patience=5,
    min_lr=1e-7)). ``momentum`` applies to sgd only (rmsprop uses its framework default of 0).
    """

    hidden_units: tuple[int, ...] = (64, 32)
    dropout: float = 0.0
    batch_norm: bool = False
    activation: str = "relu"
    learning_rate: float = 1e-3
    lr_schedule: str = "none"
    lr_decay_rate: float = 0.95
    lr_factor: float = 0.5
    lr_patience: int = 5
    min_lr: float = 1e-7
    batch_size: int = 32
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> MLPConfig:
        """Build from a params mapping; unknown keys are ignored, missing ones default."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in params.items() if k in known}
        if "hidden_units" in values:
            values["hidden_units"] = tuple(int(u) for u in values["hidden_units"])
        cfg = cls(**values)
        cfg.check()
        return cfg

    def network(self, n_features: int, n_outputs: int, task: str = "classification") -> MLPPlan:
        """The network of this config for ``n_features`` inputs and ``n_outputs`` outputs (see :class:`MLPPlan`)."""
        return MLPPlan(n_features, self.hidden_units, n_outputs, batch_norm=self.batch_norm, dropout=self.dropout,
                       activation=self.activation, task=task)

    def check(self) -> None:
        """Raise ValueError for values no framework can build."""
        if not self.hidden_units or any(u < 1 for u in self.hidden_units):
            raise ValueError(f"hidden_units must be a non-empty list of positive widths, got {list(self.hidden_units)}")
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

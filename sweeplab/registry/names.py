"""The names every layer agrees on: frameworks, tasks, and the networks' activations, optimizers, schedules, poolings.

Each tuple here is the one list of its names. The spec validator, the search spaces,
the MLP config and the torch / Keras builders read them; a framework's builder maps
every name to its own class (and its tests run over every name listed here).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACTIVATIONS",
    "FRAMEWORKS",
    "FRAMEWORKS_BY_NAME",
    "FRAMEWORK_NAMES",
    "LR_SCHEDULES",
    "MLP_FRAMEWORKS",
    "OPTIMIZERS",
    "POOLINGS",
    "TASKS",
    "Framework",
]


@dataclass(frozen=True)
class Framework:
    """A value of ``objective.framework``.

    ``mlp``: trains sweeplab's MLP objectives, so its spaces use the MLP knobs, its
    trials save a sweeplab model, and its search space may search ``framework``
    among the MLP frameworks. ``python`` runs a user's callable instead.
    ``objective``: ``module:Class`` of its objective (imported by the worker that runs
    it, never here); an MLP objective is built with no argument, a ``python`` one with
    the spec's ``objective.callable``.
    """

    name: str
    mlp: bool
    doc: str
    objective: str


FRAMEWORKS: tuple[Framework, ...] = (
    Framework("torch", mlp=True, doc="PyTorch objective (the network of objective.model)",
              objective="sweeplab.objectives.torch_mlp:TorchMLPObjective"),
    Framework("keras", mlp=True, doc="Keras (TensorFlow backend) objective (the network of objective.model)",
              objective="sweeplab.objectives.keras_mlp:KerasMLPObjective"),
    Framework("python", mlp=False, doc="a user's function, objective.callable: 'package.module:function'",
              objective="sweeplab.objectives.python_callable:CallableObjective"),
)
FRAMEWORKS_BY_NAME: dict[str, Framework] = {f.name: f for f in FRAMEWORKS}
FRAMEWORK_NAMES: tuple[str, ...] = tuple(f.name for f in FRAMEWORKS)
"""Every value ``objective.framework`` may take."""
MLP_FRAMEWORKS: tuple[str, ...] = tuple(f.name for f in FRAMEWORKS if f.mlp)
"""The frameworks that train sweeplab's MLPs (and save sweeplab models)."""

TASKS: tuple[str, ...] = ("classification", "regression")
"""Values of ``objective.task``."""

ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "sigmoid", "elu", "leaky_relu", "gelu", "selu")
"""Hidden-layer activations; ``gelu`` is the exact (erf) form and ``leaky_relu`` has slope 0.01 in both frameworks."""
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "rmsprop", "adagrad")
"""Optimizers, with torch's defaults in both frameworks."""
LR_SCHEDULES: tuple[str, ...] = ("none", "exponential", "plateau")
"""Learning-rate schedules (see :class:`sweeplab.objectives.config.MLPConfig`)."""
POOLINGS: tuple[str, ...] = ("max", "avg", "none")
"""Pooling after a CNN's convolution block: 2x2 max or average pooling with stride 2, or none
(see :class:`sweeplab.spaces.cnn.CNNPlan`)."""

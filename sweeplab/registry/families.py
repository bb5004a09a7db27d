"""The model families: one entry per value of ``objective.model``, with its hyperparameters.

A family is a kind of network the torch and Keras objectives build: ``mlp`` (the
default: dense layers on rows of features) and ``cnn`` (convolution blocks on images,
then the MLP's dense head). Its entry is the one place that says

- what data it trains on (``rows`` or ``images``);
- its hyperparameters (:attr:`ModelFamily.schema`): every name a search space of the
  family may hold, what the values must be (kind, bounds, choices) and the value a
  trial gets when the space leaves the name out. The space parser
  (:func:`sweeplab.spaces.parse_space`) checks a space against it, and the objectives'
  configs (:mod:`sweeplab.objectives.config`) take their defaults from it;
- which config class turns a trial's params into the network's description
  (:attr:`ModelFamily.config`, imported lazily by the objectives);
- what else the spec may combine it with (``objective.init_from``, ``constraints``).

Import-light: ``sweeplab validate`` and ``--help`` read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sweeplab.registry.names import ACTIVATIONS, LR_SCHEDULES, MLP_FRAMEWORKS, OPTIMIZERS, POOLINGS
from sweeplab.registry.options import Option, Schema

__all__ = [
    "CONV_OPTIONS",
    "HEAD_OPTIONS",
    "MODEL_FAMILIES",
    "MODEL_NAMES",
    "TRAINING_OPTIONS",
    "TRANSFER_OPTIONS",
    "ModelFamily",
    "family_defaults",
    "get_family",
]

TRAINING_OPTIONS: tuple[Option, ...] = (
    Option("learning_rate", "number", "the optimizer's learning rate", default=1e-3, above=0),
    Option("lr_schedule", "str", "none; exponential: x lr_decay_rate after each epoch; plateau: x lr_factor when "
           "val_loss stalls for lr_patience epochs", default="none", choices=LR_SCHEDULES),
    Option("lr_decay_rate", "number", "exponential schedule's factor per epoch", default=0.95, above=0, maximum=1),
    Option("lr_factor", "number", "plateau schedule's factor", default=0.5, above=0, below=1),
    Option("lr_patience", "int", "plateau schedule's epochs without improvement", default=5, minimum=0),
    Option("min_lr", "number", "plateau schedule's floor", default=1e-7, minimum=0),
    Option("batch_size", "int", "rows per mini-batch", default=32, minimum=1),
    Option("optimizer", "str", "torch's defaults in both frameworks", default="adam", choices=OPTIMIZERS),
    Option("momentum", "number", "sgd's momentum", default=0.9, minimum=0, maximum=1),
    Option("weight_decay", "number", "L2 penalty added to every gradient (torch's coupled weight decay)",
           default=0.0, minimum=0),
    Option("framework", "str", "the framework that trains the trial", default=None,
           default_text="objective.framework", choices=MLP_FRAMEWORKS),
)
"""The training knobs every family shares (the epoch policy's and the optimizer's)."""

HEAD_OPTIONS: tuple[Option, ...] = (
    Option("n_layers", "int", "hidden dense layers", default=2, minimum=1),
    Option("units", "int", "width of the hidden layers (layout constant, per_layer or funnel)", default=64,
           minimum=1),
    Option("hidden_layers", "ints", "the hidden widths as one list, e.g. [128, 64] (instead of n_layers / units)",
           default=None, default_text="n_layers x units", minimum=1),
    Option("dropout", "number", "dropout rate after each hidden dense layer", default=0.0, minimum=0, below=1),
    Option("batch_norm", "bool", "batch normalization after each weighted layer", default=False),
    Option("activation", "str", "activation after each weighted layer", default="relu", choices=ACTIVATIONS),
)
"""The dense layers: the whole MLP, and the CNN's head (see :class:`sweeplab.spaces.architecture.MLPPlan`)."""

TRANSFER_OPTIONS: tuple[Option, ...] = (
    Option("n_frozen_layers", "int", "hidden layers frozen, from the input side (objective.init_from only)",
           default=0, minimum=0),
    Option("finetune_learning_rate", "number", "learning rate when fine-tuning (objective.init_from only)",
           default=None, default_text="learning_rate", above=0),
)
"""What a fine-tuned MLP searches (``objective.init_from``, see :mod:`sweeplab.objectives.transfer`)."""

CONV_OPTIONS: tuple[Option, ...] = (
    Option("n_blocks", "int", "convolution blocks", default=2, minimum=1),
    Option("filters", "int", "filters of the first block", default=16, minimum=1),
    Option("filter_growth", "number", "each next block has this many times the filters of the one before "
           "(block i: round(filters * filter_growth**i), at least 1)", default=2.0, above=0),
    Option("kernel_size", "int", "square kernel's side ('same' padding, stride 1)", default=3, minimum=1),
    Option("pooling", "str", "2x2 pooling with stride 2 after each block (skipped once the map is 1 pixel "
           "wide or high)", default="max", choices=POOLINGS),
    Option("conv_dropout", "number", "dropout rate after each convolution block", default=0.0, minimum=0, below=1),
)
"""The convolution blocks of a CNN (see :class:`sweeplab.spaces.cnn.CNNPlan`)."""


def _cnn_head() -> tuple[Option, ...]:
    """The MLP's head options, but a CNN's head may have no hidden layer (flatten -> output layer)."""
    return tuple(
        Option(o.name, o.kind, "hidden dense layers after the convolution blocks (0: straight to the output layer)",
               default=o.default, minimum=0)
        if o.name == "n_layers" else o
        for o in HEAD_OPTIONS
    )


@dataclass(frozen=True)
class ModelFamily:
    """One value of ``objective.model``.

    ``data``: what it trains on, ``rows`` (tables: rows x features) or ``images``
    (arrays ``(N, H, W, C)``, see :mod:`sweeplab.objectives.data`). ``schema``: its
    hyperparameters (see the module docstring). ``config``: ``module:Class`` of the
    config that resolves a trial's params and describes its network (``plan``).
    ``transfer``: ``objective.init_from`` may fine-tune it; ``constraints``:
    ``constraints.max_params`` can count its parameters before training.
    """

    name: str
    doc: str
    data: Literal["rows", "images"]
    schema: Schema
    config: str
    transfer: bool = False
    constraints: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """Its hyperparameter names, in declared order."""
        return self.schema.names


MODEL_FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        ModelFamily("mlp", "dense layers on rows of features (the default)", "rows",
                    Schema((*HEAD_OPTIONS, *TRAINING_OPTIONS, *TRANSFER_OPTIONS)),
                    config="sweeplab.objectives.config:MLPConfig", transfer=True, constraints=True),
        ModelFamily("cnn", "convolution blocks on images (N, H, W[, C]), then a dense head", "images",
                    Schema((*CONV_OPTIONS, *_cnn_head(), *TRAINING_OPTIONS)),
                    config="sweeplab.objectives.config:CNNConfig"),
    )
}
"""Every model family, by name; ``mlp`` is the default."""

MODEL_NAMES: tuple[str, ...] = tuple(MODEL_FAMILIES)
"""Every value ``objective.model`` may take."""


def get_family(name: str) -> ModelFamily:
    """The family called ``name``; KeyError naming the families otherwise."""
    try:
        return MODEL_FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; use one of {', '.join(MODEL_NAMES)}") from None


def family_defaults(name: str) -> dict[str, Any]:
    """``{hyperparameter: default}`` of family ``name`` (None where the default is derived, see ``default_text``)."""
    return {o.name: o.default for o in get_family(name).schema.options}

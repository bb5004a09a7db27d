"""The MLP both objectives build, described once and free of any framework.

:class:`MLPPlan` is the network of a resolved config and the dataset's widths: its
layers in order (:attr:`MLPPlan.layers`, what the torch and Keras objectives translate
one for one into their own layers) and its parameter count (:attr:`MLPPlan.n_params`).
The study coordinator counts with it too (:func:`count_mlp_params`), so an architecture
that breaks ``constraints.max_params`` is rejected before any worker trains it; the
count equals ``torch_mlp.count_params`` and ``keras_mlp.count_params`` of the built
model. :func:`smallest_architecture` bounds a whole space from below, so a constraint no
trial can satisfy is refused at once.

The plan lives here, below ``objectives``, because the spaces and the search need its
count; ``objectives.config.MLPConfig.network`` makes the plan of a config. The CNN's
description (:mod:`sweeplab.spaces.cnn`) uses the same :class:`LayerPlan` s and an
:class:`MLPPlan` as its dense head; both keep the :class:`NetworkPlan` protocol.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sweeplab.registry.names import ACTIVATIONS, TASKS
from sweeplab.spaces.params import IntParam

if TYPE_CHECKING:
    from sweeplab.spaces.space import SearchSpace

__all__ = [
    "ARCHITECTURE_PARAMS",
    "TRANSFER_PARAMS",
    "LayerPlan",
    "MLPPlan",
    "NetworkPlan",
    "batch_norm_layer_name",
    "count_mlp_params",
    "dense_layer_name",
    "smallest_architecture",
]

ARCHITECTURE_PARAMS = ("n_layers", "units", "hidden_layers", "batch_norm", "activation")
"""Space params that shape the network's weights; an ``init_from`` study takes them from its source model."""

TRANSFER_PARAMS = ("n_frozen_layers", "finetune_learning_rate")
"""Space params that only mean something when fine-tuning (``objective.init_from``)."""


def dense_layer_name(i: int) -> str:
    """The name of the MLP's ``i``-th hidden dense layer (0-based): in the plan, and so in the
    Keras model, whose layers transfer learning reads and writes by name."""
    return f"dense_{i}"


def batch_norm_layer_name(i: int) -> str:
    """The name of the batch normalization after hidden layer ``i`` (see :func:`dense_layer_name`)."""
    return f"bn_{i}"


@dataclass(frozen=True)
class LayerPlan:
    """One layer of a network description (an :class:`MLPPlan` or a :class:`~sweeplab.spaces.cnn.CNNPlan`).

    ``kind``:

    - ``"dense"``: ``fan_in`` -> ``units`` values, weights and bias;
    - ``"conv"``: a 2-D convolution of ``fan_in`` input channels into ``units`` filters
      with a square ``kernel_size`` kernel, stride 1 and "same" padding (the map keeps
      its height and width), weights and bias;
    - ``"batch_norm"``: scale and shift over ``units`` features, or over ``units``
      channels of a map (``shape`` set); running statistics are buffers;
    - ``"activation"`` (``activation``, one of the registry's names);
    - ``"dropout"`` (``rate``, each value dropped on its own);
    - ``"pool"``: ``pool`` (``max`` or ``avg``) over 2x2 windows with stride 2, odd
      rows and columns dropped;
    - ``"flatten"``: the map as one vector of ``units`` values in (height, width,
      channel) order.

    ``units`` is the width (values, or channels of a map) the layer passes on; ``shape``
    is the ``(height, width, channels)`` map it passes on for the layers of the
    convolution part, ``()`` for the dense part. ``name`` is the Keras layer name
    (``dense_0``, ``bn_0``, ``conv_0``, ``pool_0``, ..., and ``logits`` or ``value`` for
    the output layer); torch's ``nn.Sequential`` numbers its layers instead.
    """

    kind: str
    name: str
    units: int
    fan_in: int = 0
    activation: str = ""
    rate: float = 0.0
    kernel_size: int = 0
    pool: str = ""
    shape: tuple[int, ...] = ()

    @property
    def n_params(self) -> int:
        """Trainable parameters of this layer."""
        if self.kind == "dense":
            return self.fan_in * self.units + self.units
        if self.kind == "conv":
            return self.kernel_size * self.kernel_size * self.fan_in * self.units + self.units
        return 2 * self.units if self.kind == "batch_norm" else 0


class NetworkPlan(Protocol):
    """What the backends translate and the objectives count: a model family's network description.

    ``input_shape``: one example's shape (``(n_features,)`` for rows, ``(H, W, C)`` for
    images); ``layers``: every layer in order, the output layer last; ``n_params``: the
    trainable parameters (the sum over the layers); ``n_outputs`` and ``task``: the
    output rule (logits of ``n_outputs`` classes, or one value for regression);
    ``family``: the model family's name.
    """

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def layers(self) -> tuple[LayerPlan, ...]: ...

    @property
    def n_params(self) -> int: ...

    @property
    def n_outputs(self) -> int: ...

    @property
    def task(self) -> str: ...

    @property
    def family(self) -> str: ...


@dataclass(frozen=True)
class MLPPlan:
    """The MLP ``n_features -> hidden_units... -> n_outputs`` for ``task``.

    Per hidden width ``u``: a dense layer, then batch norm when ``batch_norm``, then the
    activation, then dropout when ``dropout > 0``. Last comes a dense output layer with no
    activation: logits for classification (the loss applies the softmax), the value for
    regression. Raises ValueError for an unknown task or activation, or sizes below 1.
    """

    n_features: int
    hidden_units: tuple[int, ...]
    n_outputs: int
    batch_norm: bool = False
    dropout: float = 0.0
    activation: str = "relu"
    task: str = "classification"

    def __post_init__(self) -> None:
        widths = tuple(int(u) for u in self.hidden_units)
        object.__setattr__(self, "hidden_units", widths)
        object.__setattr__(self, "n_features", int(self.n_features))
        object.__setattr__(self, "n_outputs", int(self.n_outputs))
        if self.task not in TASKS:
            raise ValueError(f"task must be 'classification' or 'regression', got {self.task!r}")
        if self.n_features < 1 or self.n_outputs < 1:
            raise ValueError(
                f"n_features and n_outputs must be >= 1, got n_features={self.n_features}, n_outputs={self.n_outputs}"
            )
        if any(u < 1 for u in widths):
            raise ValueError(f"hidden layer sizes must be >= 1, got hidden_units={list(widths)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example: ``(n_features,)``."""
        return (self.n_features,)

    @property
    def family(self) -> str:
        """``"mlp"``."""
        return "mlp"

    @property
    def layers(self) -> tuple[LayerPlan, ...]:
        """Every layer in order, the output layer last (see the class docstring)."""
        out: list[LayerPlan] = []
        prev = int(self.n_features)
        for i, units in enumerate(self.hidden_units):
            out.append(LayerPlan("dense", dense_layer_name(i), units, fan_in=prev))
            if self.batch_norm:
                out.append(LayerPlan("batch_norm", batch_norm_layer_name(i), units))
            out.append(LayerPlan("activation", f"{self.activation}_{i}", units, activation=self.activation))
            if self.dropout > 0:
                out.append(LayerPlan("dropout", f"dropout_{i}", units, rate=float(self.dropout)))
            prev = units
        output = "logits" if self.task == "classification" else "value"
        out.append(LayerPlan("dense", output, int(self.n_outputs), fan_in=prev))
        return tuple(out)

    @property
    def n_params(self) -> int:
        """Trainable parameters: dense weights and biases, batch norm's scale and shift.

        Per hidden layer of width ``u`` fed by ``prev`` values: ``prev * u + u``, plus
        ``2 * u`` with batch norm; then the output layer, ``prev * n_outputs + n_outputs``.
        Dropout and activations have none; batch norm's running statistics are buffers.
        """
        return sum(layer.n_params for layer in self.layers)


def count_mlp_params(hidden_units: Iterable[int], n_features: int, n_outputs: int, batch_norm: bool) -> int:
    """Trainable parameters of the MLP ``n_features -> hidden_units... -> n_outputs`` (:attr:`MLPPlan.n_params`).

    Raises ValueError for widths or sizes below 1.
    """
    return MLPPlan(int(n_features), tuple(hidden_units), int(n_outputs), batch_norm=bool(batch_norm)).n_params


def smallest_architecture(
    space: SearchSpace, n_features: int, n_outputs: int, fixed_params: Mapping[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """``(parameter count, resolved params)`` of the smallest network an MLP ``space`` can propose.

    The count grows with ``n_layers`` and with ``units`` (every layout), so their lowest
    values are taken, ``batch_norm`` false when allowed, and every ``hidden_layers``
    choice is tried. ``fixed_params`` win over the space (a fine-tuned source model's
    architecture). A lower bound for ``constraints.max_params``: when even this breaks
    it, no trial can hold.
    """
    candidates: dict[str, list[Any]] = {}
    for name in ("n_layers", "units", "batch_norm", "hidden_layers"):
        param = space.get(name)
        if param is None:
            continue
        values = [param.low] if isinstance(param, IntParam) else list(param.grid_values())
        if name == "batch_norm":
            values = [False] if False in values else values[:1]
        elif name != "hidden_layers":
            values = [min(values)]
        candidates[name] = values
    best: tuple[int, dict[str, Any]] | None = None
    names = list(candidates)
    for combo in itertools.product(*(candidates[n] for n in names)):
        params = {**space.resolve(dict(zip(names, combo, strict=True))), **dict(fixed_params or {})}
        n = count_mlp_params(params["hidden_units"], n_features, n_outputs, bool(params.get("batch_norm", False)))
        if best is None or n < best[0]:
            best = (n, params)
    assert best is not None  # product() of no candidate lists yields one empty combo
    return best

"""The CNN both objectives build for ``objective.model: cnn``, described once and free of any framework.

:class:`CNNPlan` is the network of a resolved CNN config and the dataset's image shape:
``n_blocks`` convolution blocks, then the MLP's dense head (an :class:`MLPPlan` fed by
the flattened map). Its :attr:`CNNPlan.layers` are what the torch and Keras objectives
translate one for one into their own layers, and :attr:`CNNPlan.n_params` equals the
trainable parameters of either built model.

Block ``i`` (0-based), on a map of ``(h, w, c)``:

1. ``conv_i``: ``filters_i = max(1, round(filters * filter_growth**i))`` filters of
   ``kernel_size x kernel_size``, stride 1, "same" padding (``(h, w, filters_i)``);
2. ``conv_bn_i`` when ``batch_norm`` (per channel);
3. ``conv_<activation>_i``;
4. ``pool_i`` when ``pooling`` is ``max`` or ``avg`` and the map is at least 2x2:
   2x2 windows, stride 2 (``(h // 2, w // 2, filters_i)``); a map already 1 pixel high
   or wide is not pooled, so any depth fits any image;
5. ``conv_dropout_i`` when ``conv_dropout > 0``.

Then ``flatten`` (``h * w * c`` values in (height, width, channel) order) and the head:
per hidden width a dense layer, batch norm, the activation, dropout (as :class:`MLPPlan`),
and the output layer: logits of ``n_outputs`` classes (the loss applies the softmax) or
the value for regression. ``round`` is round-half-up here (``int(x + 0.5)``).

Inputs are images ``(H, W, C)`` (channels last). A backend whose convolutions are
channels-first (torch) converts at the input and flattens in (height, width, channel)
order, so both frameworks' layers mean the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sweeplab.registry.names import ACTIVATIONS, POOLINGS, TASKS
from sweeplab.spaces.architecture import LayerPlan, MLPPlan

__all__ = ["CNNPlan", "block_filters"]


def block_filters(filters: int, growth: float, n_blocks: int) -> tuple[int, ...]:
    """Filters of each block: ``max(1, round(filters * growth**i))`` for ``i`` in ``0 .. n_blocks - 1``."""
    return tuple(max(1, int(filters * growth**i + 0.5)) for i in range(n_blocks))


@dataclass(frozen=True)
class CNNPlan:
    """The CNN ``input_shape -> blocks -> flatten -> hidden_units... -> n_outputs`` for ``task``.

    ``filters``: one count per block (see :func:`block_filters`). Raises ValueError for an
    input that is not ``(H, W, C)`` of sizes >= 1, no block, sizes below 1, or an
    unknown task, activation or pooling.
    """

    input_shape: tuple[int, ...]
    filters: tuple[int, ...]
    hidden_units: tuple[int, ...]
    n_outputs: int
    kernel_size: int = 3
    pooling: str = "max"
    conv_dropout: float = 0.0
    batch_norm: bool = False
    dropout: float = 0.0
    activation: str = "relu"
    task: str = "classification"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(n) for n in self.input_shape))
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))
        object.__setattr__(self, "hidden_units", tuple(int(u) for u in self.hidden_units))
        object.__setattr__(self, "n_outputs", int(self.n_outputs))
        object.__setattr__(self, "kernel_size", int(self.kernel_size))
        if len(self.input_shape) != 3 or any(n < 1 for n in self.input_shape):
            raise ValueError(f"input_shape must be (height, width, channels) of sizes >= 1, got {self.input_shape}")
        if not self.filters or any(f < 1 for f in self.filters):
            raise ValueError(f"filters must hold one count >= 1 per block, got {list(self.filters)}")
        if self.kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {self.kernel_size}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be 'classification' or 'regression', got {self.task!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if not 0.0 <= self.conv_dropout < 1.0:
            raise ValueError(f"conv_dropout must be in [0, 1), got {self.conv_dropout}")
        _ = self.head  # checks the head's sizes (n_outputs, hidden_units) now

    @property
    def family(self) -> str:
        """``"cnn"``."""
        return "cnn"

    @property
    def n_blocks(self) -> int:
        return len(self.filters)

    def _blocks(self) -> tuple[list[LayerPlan], tuple[int, int, int]]:
        """The convolution part's layers and the map it hands to ``flatten``."""
        h, w, c = self.input_shape
        out: list[LayerPlan] = []
        for i, filters in enumerate(self.filters):
            out.append(LayerPlan("conv", f"conv_{i}", filters, fan_in=c, kernel_size=self.kernel_size,
                                 shape=(h, w, filters)))
            c = filters
            if self.batch_norm:
                out.append(LayerPlan("batch_norm", f"conv_bn_{i}", c, shape=(h, w, c)))
            out.append(LayerPlan("activation", f"conv_{self.activation}_{i}", c, activation=self.activation,
                                 shape=(h, w, c)))
            if self.pooling != "none" and h >= 2 and w >= 2:
                h, w = h // 2, w // 2
                out.append(LayerPlan("pool", f"pool_{i}", c, pool=self.pooling, shape=(h, w, c)))
            if self.conv_dropout > 0:
                out.append(LayerPlan("dropout", f"conv_dropout_{i}", c, rate=float(self.conv_dropout),
                                     shape=(h, w, c)))
        return out, (h, w, c)

    @property
    def flat_size(self) -> int:
        """Values per example after the last block (what the head's first layer reads)."""
        return math.prod(self._blocks()[1])

    @property
    def head(self) -> MLPPlan:
        """The dense head: :class:`MLPPlan` of ``flat_size`` inputs (its layers end the network)."""
        return MLPPlan(self.flat_size, self.hidden_units, self.n_outputs, batch_norm=self.batch_norm,
                       dropout=self.dropout, activation=self.activation, task=self.task)

    @property
    def layers(self) -> tuple[LayerPlan, ...]:
        """Every layer in order: the blocks, ``flatten``, the head, the output layer last (module docstring)."""
        blocks, shape = self._blocks()
        flatten = LayerPlan("flatten", "flatten", math.prod(shape))
        return (*blocks, flatten, *self.head.layers)

    @property
    def n_params(self) -> int:
        """Trainable parameters: per block ``k*k*c_in*filters + filters`` (+ ``2 * filters`` with
        batch norm), then the head's (:attr:`MLPPlan.n_params`). Pooling, dropout, activations
        and flatten have none; batch norm's running statistics are buffers."""
        return sum(layer.n_params for layer in self.layers)

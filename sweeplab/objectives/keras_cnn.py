"""Keras layers of a CNN's convolution part, translated from its :class:`~sweeplab.spaces.cnn.CNNPlan`.

The Keras objective (:mod:`sweeplab.objectives.keras_mlp`) trains every model family
with one loop; its ``build_network`` hands the layers this module :func:`translates` to
:func:`layer` and builds the others itself (batch norm, activations and dropout act on
maps as they act on rows). Meanings are the plan's, and torch's
(:mod:`sweeplab.objectives.torch_cnn`):

- images are ``(n, H, W, C)``, channels last (Keras' default);
- ``conv``: ``Conv2D(filters, kernel_size, padding="same")`` (stride 1), with torch's
  default initialization: kernel and bias uniform in ``±1/sqrt(fan_in)``, ``fan_in =
  kernel_size**2 * c_in`` (Keras' default would be Glorot-uniform and zero bias);
- ``pool``: ``MaxPooling2D(2)`` / ``AveragePooling2D(2)`` (stride 2, odd edges dropped);
- ``flatten``: ``Flatten`` ((height, width, channel) order).

Importing this module imports Keras; :mod:`sweeplab.objectives.keras_mlp` selects the
TensorFlow backend before it does.
"""

from __future__ import annotations

from typing import Any

import keras

from sweeplab.spaces.architecture import LayerPlan

__all__ = ["layer", "translates"]


def translates(plan_layer: LayerPlan) -> bool:
    """True for the layers :func:`layer` builds: convolutions, pooling and flatten."""
    return plan_layer.kind in ("conv", "pool", "flatten")


def layer(plan_layer: LayerPlan, bias_initializer: Any) -> keras.layers.Layer:
    """The Keras layer of one convolution-part layer, named as in the plan; ValueError for another kind.

    ``bias_initializer``: a convolution's bias initializer (the backend's torch-like one).
    """
    if plan_layer.kind == "conv":
        # VarianceScaling(1/3, fan_in, uniform) has limit sqrt(3 * (1/3) / fan_in) = 1/sqrt(fan_in)
        return keras.layers.Conv2D(
            plan_layer.units, plan_layer.kernel_size, padding="same",
            kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform"),
            bias_initializer=bias_initializer, name=plan_layer.name,
        )
    if plan_layer.kind == "pool":
        pool = keras.layers.MaxPooling2D if plan_layer.pool == "max" else keras.layers.AveragePooling2D
        return pool(2, name=plan_layer.name)
    if plan_layer.kind == "flatten":
        return keras.layers.Flatten(name=plan_layer.name)
    raise ValueError(f"not a convolution-part layer: {plan_layer.kind!r} ({plan_layer.name})")

"""PyTorch layers of a CNN's convolution part, translated from its :class:`~sweeplab.spaces.cnn.CNNPlan`.

The torch objective (:mod:`sweeplab.objectives.torch_mlp`) trains every model family
with one loop; :func:`sweeplab.objectives.torch_mlp.build_network` hands the layers
this module :func:`translates` to :func:`layer` and the dense ones to its own.
Meanings are the plan's, in torch's channels-first convolutions:

- the network takes images ``(n, H, W, C)`` as the dataset holds them (channels last,
  as Keras), and :class:`ChannelsFirst` turns them into ``(n, C, H, W)`` first;
- ``conv``: ``Conv2d(c_in, filters, kernel_size, padding="same")`` (stride 1; an even
  kernel pads one more row and column at the bottom and right, as Keras does);
- ``batch_norm`` on a map: ``BatchNorm2d`` (per channel, torch's defaults);
- ``pool``: ``MaxPool2d(2)`` / ``AvgPool2d(2)`` (stride 2, odd edges dropped);
- ``flatten``: :class:`FlattenChannelsLast`, the map in (height, width, channel)
  order (Keras' ``Flatten`` order), so the head's first weights mean the same.

Activations and dropout are the dense part's modules (they act on any shape; dropout
drops single values, as Keras' ``Dropout``).
"""

from __future__ import annotations

import torch
from torch import nn

from sweeplab.spaces.architecture import LayerPlan

__all__ = ["ChannelsFirst", "FlattenChannelsLast", "layer", "translates"]


class ChannelsFirst(nn.Module):
    """``(n, H, W, C)`` images to ``(n, C, H, W)``: what torch's convolutions read."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


class FlattenChannelsLast(nn.Module):
    """A ``(n, C, H, W)`` map as ``(n, H * W * C)`` in (height, width, channel) order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


def translates(plan_layer: LayerPlan) -> bool:
    """True for the layers :func:`layer` builds: convolutions, pooling, flatten, batch norm on a map."""
    spatial_norm = plan_layer.kind == "batch_norm" and bool(plan_layer.shape)
    return plan_layer.kind in ("conv", "pool", "flatten") or spatial_norm


def layer(plan_layer: LayerPlan) -> nn.Module:
    """The torch module of one convolution-part layer (see the module docstring); ValueError for another kind."""
    if plan_layer.kind == "conv":
        return nn.Conv2d(plan_layer.fan_in, plan_layer.units, plan_layer.kernel_size, padding="same")
    if plan_layer.kind == "batch_norm" and plan_layer.shape:
        return nn.BatchNorm2d(plan_layer.units)
    if plan_layer.kind == "pool":
        return nn.MaxPool2d(2) if plan_layer.pool == "max" else nn.AvgPool2d(2)
    if plan_layer.kind == "flatten":
        return FlattenChannelsLast()
    raise ValueError(f"not a convolution-part layer: {plan_layer.kind!r} ({plan_layer.name})")

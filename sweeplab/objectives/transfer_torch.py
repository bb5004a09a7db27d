"""The torch side of transfer learning: load a :class:`~sweeplab.objectives.transfer.SourceModel` into a new MLP.

Imports torch at its top; the torch objective imports it only for ``init_from`` trials.
"""

from __future__ import annotations

import torch
from torch import nn

from sweeplab.objectives.transfer import TransferPlan

__all__ = ["FrozenBatchNorm1d", "init_torch"]


class FrozenBatchNorm1d(nn.BatchNorm1d):
    """A ``BatchNorm1d`` that stays in inference mode: ``train()`` never switches it back.

    A frozen layer's BatchNorm keeps its running statistics as well as its scale and
    shift (what Keras does for a BatchNormalization layer with ``trainable = False``).
    Same parameters and buffers as ``BatchNorm1d``, so state dicts are interchangeable.
    """

    def train(self, mode: bool = True) -> FrozenBatchNorm1d:
        """Ignore ``mode``: always evaluation mode."""
        return super().train(False)


def init_torch(model: nn.Module, plan: TransferPlan) -> None:
    """Copy the source's hidden layers into ``model`` (built by ``torch_mlp.build_model`` with the
    source's architecture) and freeze the first ``plan.n_frozen`` of them.

    The output layer keeps its fresh initialisation (the new task's head). Frozen layers:
    ``requires_grad=False`` on their Linear and BatchNorm parameters, and their BatchNorm
    becomes a :class:`FrozenBatchNorm1d`. Raises ValueError when the model's hidden layers
    do not have the source's shapes.
    """
    modules = list(model.children()) if isinstance(model, nn.Sequential) else list(model.modules())
    linears = [m for m in modules if isinstance(m, nn.Linear)]
    norms = [m for m in modules if isinstance(m, nn.BatchNorm1d)]
    hidden = linears[:-1]
    layers = plan.source.layers
    if len(hidden) != len(layers):
        raise ValueError(f"the model has {len(hidden)} hidden layers, the source model {len(layers)}")
    with torch.no_grad():
        for i, (layer, linear) in enumerate(zip(layers, hidden, strict=True)):
            kernel = torch.tensor(layer.kernel.T, dtype=linear.weight.dtype)
            if tuple(kernel.shape) != tuple(linear.weight.shape):
                raise ValueError(
                    f"hidden layer {i}: the source's weights have shape {tuple(layer.kernel.shape)} (in, out), "
                    f"the model's layer {tuple(linear.weight.shape[::-1])}"
                )
            linear.weight.copy_(kernel)
            linear.bias.copy_(torch.tensor(layer.bias, dtype=linear.bias.dtype))
            norm = None
            if layer.batch_norm is not None:
                norm = norms[i]
                gamma, beta, mean, var = (torch.tensor(a, dtype=norm.weight.dtype) for a in layer.batch_norm)
                norm.weight.copy_(gamma)
                norm.bias.copy_(beta)
                norm.running_mean.copy_(mean)  # type: ignore[union-attr]
                norm.running_var.copy_(var)  # type: ignore[union-attr]
            if i < plan.n_frozen:
                for p in linear.parameters():
                    p.requires_grad_(False)
                if norm is not None:
                    for p in norm.parameters():
                        p.requires_grad_(False)
                    norm.__class__ = FrozenBatchNorm1d  # same state, inference mode for good
                    norm.eval()

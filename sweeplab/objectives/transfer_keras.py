"""The Keras side of transfer learning: load a :class:`~sweeplab.objectives.transfer.SourceModel` into a new MLP.

Imported by the Keras objective only for ``init_from`` trials (Keras is already loaded there).
"""

from __future__ import annotations

from typing import Any

from sweeplab.objectives.transfer import TransferPlan
from sweeplab.spaces.architecture import batch_norm_layer_name, dense_layer_name

__all__ = ["init_keras"]


def init_keras(model: Any, plan: TransferPlan) -> None:
    """Copy the source's hidden layers into ``model`` and freeze the first ``plan.n_frozen`` of them.

    ``model`` is built by ``keras_mlp.build_model`` with the source's architecture (layers
    named by ``dense_layer_name`` and ``batch_norm_layer_name``); call this BEFORE it is
    compiled (``build_model``'s ``prepare`` hook), so the optimizer only tracks the
    trainable variables. The output layer keeps its fresh initialisation. Frozen layers get
    ``trainable = False``, which also keeps their BatchNormalization in inference mode.
    Raises ValueError on a shape mismatch.
    """
    for i, layer in enumerate(plan.source.layers):
        dense = model.get_layer(dense_layer_name(i))
        shape = tuple(dense.kernel.shape)
        if shape != tuple(layer.kernel.shape):
            raise ValueError(
                f"hidden layer {i}: the source's weights have shape {tuple(layer.kernel.shape)}, the model's {shape}"
            )
        dense.set_weights([layer.kernel, layer.bias])
        norm = None
        if layer.batch_norm is not None:
            norm = model.get_layer(batch_norm_layer_name(i))
            norm.set_weights(list(layer.batch_norm))
        if i < plan.n_frozen:
            dense.trainable = False
            if norm is not None:
                norm.trainable = False

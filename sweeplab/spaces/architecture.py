"""The architecture side of an MLP space: parameter counts, computed without any framework.

:func:`count_mlp_params` gives the number of trainable parameters of the network that
both MLP objectives build for a resolved config (``Linear``/``Dense`` weights and biases,
BatchNorm's scale and shift; BatchNorm's running statistics are buffers, not counted), so
the study coordinator can reject an architecture that breaks ``constraints.max_params``
before any worker trains it. It equals ``torch_mlp.count_params(build_model(...))`` and
``keras_mlp.count_params`` for the same config. :func:`smallest_architecture` bounds a
whole space from below, so a constraint no trial can satisfy is refused at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sweeplab.spaces.params import IntParam

if TYPE_CHECKING:
    from sweeplab.spaces.space import SearchSpace

__all__ = ["ARCHITECTURE_PARAMS", "TRANSFER_PARAMS", "count_mlp_params", "smallest_architecture"]

ARCHITECTURE_PARAMS = ("n_layers", "units", "hidden_layers", "batch_norm", "activation")
"""Space params that shape the network's weights; an ``init_from`` study takes them from its source model."""

TRANSFER_PARAMS = ("n_frozen_layers", "finetune_learning_rate")
"""Space params that only mean something when fine-tuning (``objective.init_from``)."""


def count_mlp_params(hidden_units: Iterable[int], n_features: int, n_outputs: int, batch_norm: bool) -> int:
    """Trainable parameters of the MLP ``n_features -> hidden_units... -> n_outputs``.

    Per hidden layer of width ``u`` fed by ``prev`` values: ``prev * u + u`` (weights and
    bias) plus ``2 * u`` with ``batch_norm`` (scale and shift); then the output layer,
    ``prev * n_outputs + n_outputs``. Dropout and activations have no parameters.
    Raises ValueError for widths or sizes below 1.
    """
    widths = [int(u) for u in hidden_units]
    if n_features < 1 or n_outputs < 1 or any(u < 1 for u in widths):
        raise ValueError(
            f"sizes must be >= 1, got n_features={n_features}, n_outputs={n_outputs}, hidden_units={widths}"
        )
    total = 0
    prev = int(n_features)
    for units in widths:
        total += prev * units + units + (2 * units if batch_norm else 0)
        prev = units
    return total + prev * int(n_outputs) + int(n_outputs)


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

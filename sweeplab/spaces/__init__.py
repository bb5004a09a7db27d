"""Search spaces: parameter types, sampling with Optuna, and the built-in spaces.

Public surface:

* :class:`IntParam`, :class:`FloatParam`, :class:`CategoricalParam`, :class:`FixedParam`
  (the :data:`Param` union) -- one parameter each;
* :class:`SearchSpace` -- ``suggest(trial)`` (define-by-run sampling), ``resolve(raw)``
  (objective params, architecture folded into ``hidden_units``), ``grid()`` (for
  ``GridSampler``), ``to_dict()``;
* :func:`parse_space` -- YAML form to space, collecting problems;
* :func:`builtin_spaces` / :func:`load_builtin` -- the spaces shipped in ``builtin/*.yaml``.
"""

from __future__ import annotations

from sweeplab.spaces.catalog import builtin_spaces, load_builtin
from sweeplab.spaces.params import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
    ParamError,
    decode_layers,
    encode_layers,
    parse_param,
)
from sweeplab.spaces.space import LAYOUTS, MLP_PARAMS, SearchSpace, funnel_widths, parse_space

__all__ = [
    "LAYOUTS",
    "MLP_PARAMS",
    "CategoricalParam",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "Param",
    "ParamError",
    "SearchSpace",
    "builtin_spaces",
    "decode_layers",
    "encode_layers",
    "funnel_widths",
    "load_builtin",
    "parse_param",
    "parse_space",
]

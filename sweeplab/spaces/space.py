"""A search space: its parameters, how a trial samples them, and how they become objective params.

Two kinds of space:

* **Network spaces** (framework torch / keras, ``mlp=True``): parameter names are the
  hyperparameters of the model family (``objective.model``, default ``mlp``), as its
  entry in :mod:`sweeplab.registry.families` declares them (see :data:`FAMILY_PARAMS`),
  checked against their meaning (``dropout`` in [0, 1), ``activation`` a known one,
  ...). The dense layers' params ``n_layers`` / ``units`` (with a ``layout``) or
  ``hidden_layers`` are folded by :meth:`SearchSpace.resolve` into
  ``hidden_units: list[int]`` (the MLP, or the CNN's head); every other param passes
  through.
* **Python spaces** (framework python, ``mlp=False``): any identifiers; values are
  passed through unchanged (list choices decoded).

Layouts of ``units`` (MLP spaces; keys ``layout`` and ``min_units`` of the ``units``
param in mapping form, e.g. ``{type: int, low: 16, high: 256, layout: funnel}`` or
``{type: fixed, value: 128, layout: funnel}``; they are stored on :class:`SearchSpace`):

* ``constant`` (default): every hidden layer has width ``units``;
* ``per_layer``: ``units_0 .. units_{n_layers-1}`` are sampled, each with the
  distribution of ``units``, only for layers that exist (define-by-run: sampled after
  ``n_layers``);
* ``funnel``: the first layer has width ``units``, each next one
  ``max(previous // 2, min_units)`` (``min_units`` default 8), like the guide's
  ``design_optimal_architecture``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweeplab.core.checks import check_int, check_str, describe, did_you_mean, is_int, is_number, join
from sweeplab.core.errors import Problem
from sweeplab.registry.families import MODEL_FAMILIES, get_family
from sweeplab.registry.names import MLP_FRAMEWORKS
from sweeplab.registry.options import Option
from sweeplab.spaces.catalog import builtin_spaces, load_builtin
from sweeplab.spaces.params import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
    decode_layers,
    parse_param,
)

if TYPE_CHECKING:
    import optuna

__all__ = [
    "DEFAULT_MIN_UNITS",
    "DEFAULT_N_LAYERS",
    "DEFAULT_UNITS",
    "FAMILY_PARAMS",
    "FRAMEWORKS",
    "LAYOUTS",
    "MLP_PARAMS",
    "SearchSpace",
    "funnel_widths",
    "parse_space",
]

LAYOUTS = ("constant", "per_layer", "funnel")
FRAMEWORKS = MLP_FRAMEWORKS
"""The frameworks a space may search with ``framework`` (those that train sweeplab's MLPs)."""
DEFAULT_N_LAYERS: int = get_family("mlp").schema.option("n_layers").default
DEFAULT_UNITS: int = get_family("mlp").schema.option("units").default
DEFAULT_MIN_UNITS = 8
_UNITS_I = re.compile(r"units_(\d+)")


@dataclass(frozen=True)
class _Rule:
    """What a hyperparameter's values must be: a kind and an optional range test (from its registry option)."""

    kind: str  # int | number | bool | str | layers
    test: Callable[[Any], bool] | None = None
    text: str = ""
    choices: tuple[str, ...] = ()


def _rule_of(opt: Option) -> _Rule:
    """The rule a space's values must keep for the registry's hyperparameter ``opt``."""
    if opt.kind == "ints":
        return _Rule("layers", lambda v: all(opt.within(w) for w in v), f"lists of widths {opt.bounds_text()}")
    if opt.kind in ("int", "number"):
        text = opt.bounds_text()
        return _Rule(opt.kind, opt.within if text else None, text, tuple(opt.choices))
    return _Rule(opt.kind, choices=tuple(opt.choices))


FAMILY_PARAMS: dict[str, dict[str, _Rule]] = {
    name: {opt.name: _rule_of(opt) for opt in family.schema.options} for name, family in MODEL_FAMILIES.items()
}
"""Per model family (:mod:`sweeplab.registry.families`): its hyperparameter names and what their values must be."""

MLP_PARAMS: dict[str, _Rule] = FAMILY_PARAMS["mlp"]
"""The hyperparameter names of torch/keras spaces of the default family, ``mlp``, and what their values must be."""


def funnel_widths(units: int, n_layers: int, min_units: int = DEFAULT_MIN_UNITS) -> list[int]:
    """Widths of a funnel: ``units`` first, then each ``max(previous // 2, min_units)``."""
    widths = [int(units)] if n_layers >= 1 else []
    while len(widths) < n_layers:
        widths.append(max(widths[-1] // 2, min_units))
    return widths


@dataclass(frozen=True)
class SearchSpace:
    """The parameters of a study, in declared order.

    ``mlp``: an MLP space (torch/keras names, architecture folding in :meth:`resolve`)
    or a python one (pass-through). ``layout`` / ``min_units``: how ``units`` becomes
    layer widths (MLP spaces only; see the module docstring). Construction checks the
    cross-parameter rules and raises ValueError; :func:`parse_space` reports them as
    problems instead.
    """

    params: tuple[Param, ...]
    mlp: bool = True
    layout: str = "constant"
    min_units: int = DEFAULT_MIN_UNITS

    def __post_init__(self) -> None:
        problems: list[str] = []
        names = [p.name for p in self.params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"parameter names must be unique, got {', '.join(dupes)} more than once")
        if self.layout not in LAYOUTS:
            problems.append(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if not is_int(self.min_units) or self.min_units < 1:
            problems.append(f"min_units must be an integer >= 1, got {describe(self.min_units)}")
        if self.layout != "constant" and (not self.mlp or "units" not in names):
            problems.append(f"layout {self.layout} needs an MLP space with a `units` parameter")
        if self.mlp and "hidden_layers" in names and ({"n_layers", "units"} & set(names)):
            problems.append("hidden_layers cannot be combined with n_layers / units")
        if problems:
            raise ValueError("; ".join(problems))

    # ------------------------------------------------------------------ lookups
    def names(self) -> list[str]:
        """Declared parameter names, in declared order (``units``, not ``units_0 ..``)."""
        return [p.name for p in self.params]

    def get(self, name: str) -> Param | None:
        """The parameter called ``name``, or None."""
        for p in self.params:
            if p.name == name:
                return p
        return None

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.params)

    def _ordered(self) -> list[Param]:
        """Sampling order: ``n_layers`` then ``units`` (MLP spaces), then the rest as declared."""
        if not self.mlp:
            return list(self.params)
        first = [p for name in ("n_layers", "units") for p in self.params if p.name == name]
        return first + [p for p in self.params if p not in first]

    # ------------------------------------------------------------------ sampling
    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Sample every parameter with ``trial.suggest_*`` (define-by-run) in a stable order.

        Order: ``n_layers``, ``units`` (or ``units_0 .. units_{n-1}`` for layout per_layer,
        after ``n_layers`` is known), then the other params as declared. Returns the raw
        Optuna values (list choices encoded as ``"128-64-32"``) plus the fixed values,
        which are not suggested. The same sampler seed gives the same values.
        """
        raw: dict[str, Any] = {}
        for p in self._ordered():
            if self.mlp and p.name == "units" and self.layout == "per_layer" and not isinstance(p, FixedParam):
                n_layers = int(raw.get("n_layers", DEFAULT_N_LAYERS))
                for i in range(n_layers):
                    raw[f"units_{i}"] = p.suggest(trial, f"units_{i}")
            else:
                raw[p.name] = p.suggest(trial)
        return raw

    def resolve(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The objective's params from raw (Optuna) params.

        Fixed values are added where ``raw`` lacks them, list choices are decoded to
        ``list[int]``, every other key passes through. MLP spaces fold ``n_layers``,
        ``units``, ``units_i`` and ``hidden_layers`` (and an already given
        ``hidden_units``) into ``hidden_units: list[int]``, with ``n_layers=2`` and
        ``units=64`` when absent. Works on ``frozen_trial.params`` as well as on the
        output of :meth:`suggest`.
        """
        values: dict[str, Any] = {p.name: p.raw_value for p in self.params if isinstance(p, FixedParam)}
        values.update(raw)
        out: dict[str, Any] = {}
        for key, value in values.items():
            p = self.get(key)
            out[key] = p.decode(value) if isinstance(p, (CategoricalParam, FixedParam)) else value
        if not self.mlp:
            return out
        arch = {
            k: out.pop(k)
            for k in list(out)
            if k in ("n_layers", "units", "hidden_layers", "hidden_units") or _UNITS_I.fullmatch(k)
        }
        if "hidden_units" in arch:
            hidden = decode_layers(arch["hidden_units"])
        elif "hidden_layers" in arch:
            hidden = decode_layers(arch["hidden_layers"])
        else:
            n_layers = int(arch.get("n_layers", DEFAULT_N_LAYERS))
            units = int(arch.get("units", DEFAULT_UNITS))
            if self.layout == "per_layer":
                hidden = [int(arch.get(f"units_{i}", units)) for i in range(n_layers)]
            elif self.layout == "funnel":
                hidden = funnel_widths(units, n_layers, self.min_units)
            else:
                hidden = [units] * n_layers
        return {"hidden_units": hidden, **out}

    # ------------------------------------------------------------------ grid
    def grid_problems(self) -> list[tuple[str, str]]:
        """``(param name, why)`` for every parameter that keeps this space from being a finite grid."""
        issues: list[tuple[str, str]] = []
        for p in self.params:
            if self.mlp and p.name == "units" and self.layout == "per_layer" and not isinstance(p, FixedParam):
                issues.append(
                    (p.name, "layout per_layer samples a different set of units_i per depth, which is not a grid")
                )
            elif isinstance(p, FloatParam) and p.step is None:
                issues.append(
                    (
                        p.name,
                        "the grid sampler needs a finite set of values; give this float range a step "
                        "or make it categorical",
                    )
                )
        return issues

    def grid(self) -> dict[str, list[Any]]:
        """The ``search_space`` of ``optuna.samplers.GridSampler``: every suggested param's values.

        Int ranges and float ranges with a step are enumerated; categorical values are
        given encoded as Optuna sees them; fixed params are left out (never suggested).
        Raises ValueError naming the first param that has no finite grid (a float range
        without step, per_layer units).
        """
        issues = self.grid_problems()
        if issues:
            name, why = issues[0]
            raise ValueError(f"parameter `{name}`: {why}")
        return {p.name: p.grid_values() for p in self._ordered() if not isinstance(p, FixedParam)}

    def grid_size(self) -> int:
        """Number of points of :meth:`grid` (ValueError when the space is not finite)."""
        return math.prod(len(v) for v in self.grid().values())

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        """Canonical YAML form: ``{name: param form}``; ``parse_space`` of it gives back this space."""
        out: dict[str, Any] = {}
        for p in self.params:
            form = p.to_dict()
            if self.mlp and p.name == "units" and (self.layout != "constant" or self.min_units != DEFAULT_MIN_UNITS):
                if not isinstance(form, dict):
                    form = {"type": "fixed", "value": form}
                form["layout"] = self.layout
                if self.min_units != DEFAULT_MIN_UNITS:
                    form["min_units"] = self.min_units
            out[p.name] = form
        return out


# ---------------------------------------------------------------------- parsing
def _check_rule(param: Param, rule: _Rule, path: str, problems: list[Problem]) -> bool:
    """Check an MLP param against its rule; record problems and return False when it breaks it."""
    ranged = isinstance(param, (IntParam, FloatParam))
    if ranged and rule.kind in ("bool", "str", "layers"):
        got = "int" if isinstance(param, IntParam) else "float"
        problems.append(Problem(path, f"must be a categorical or fixed parameter, got type {got}"))
        return False
    if isinstance(param, FloatParam) and rule.kind == "int":
        problems.append(Problem(path, "must be an integer parameter (type int, or integer choices), got type float"))
        return False
    labelled = list(zip(("low", "high"), param.bounds(), strict=True)) if ranged else [("", v) for v in param.bounds()]
    for label, value in labelled:
        shown = f"{label}={value!r}" if label else describe(value)
        if rule.kind == "int" and not is_int(value):
            problems.append(Problem(path, f"values must be integers, got {shown}"))
            return False
        if rule.kind == "number" and not is_number(value):
            problems.append(Problem(path, f"values must be numbers, got {shown}"))
            return False
        if rule.kind == "bool" and not isinstance(value, bool):
            problems.append(Problem(path, f"values must be true or false, got {shown}"))
            return False
        if rule.kind == "str":
            if not isinstance(value, str):
                problems.append(Problem(path, f"values must be strings, got {shown}"))
                return False
            if value not in rule.choices:
                problems.append(Problem(path, f"unknown {param.name} `{value}`; allowed: {', '.join(rule.choices)}"))
                return False
        if rule.kind == "layers" and not isinstance(value, tuple):
            problems.append(
                Problem(
                    path,
                    f"values must be lists of layer widths such as [[64, 32], [128, 64, 32]], got {shown} "
                    "(to fix one architecture write [[64, 32]])",
                )
            )
            return False
        if rule.test is not None and not rule.test(value):
            if isinstance(value, tuple):
                shown = repr(list(value))
            problems.append(Problem(path, f"values must be {rule.text}, got {shown}"))
            return False
    return True


def _units_values(param: Param) -> list[Any]:
    return [param.low] if isinstance(param, IntParam) else [v for v in param.bounds() if is_int(v)]


def _expand_use(data: Any, path: str, problems: list[Problem]) -> Mapping[str, Any] | None:
    """The parameter mapping of ``data``, with a built-in space (``use:`` or a bare name) expanded.

    Keys given next to ``use`` replace the built-in's params of that name; a key set to
    null removes the built-in's param.
    """
    if isinstance(data, str):
        data = {"use": data}
    if not isinstance(data, Mapping):
        problems.append(
            Problem(path, f"must be a mapping of parameters or the name of a built-in space, got {describe(data)}")
        )
        return None
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        problems.append(Problem(path, f"parameter names must be strings, got {describe(bad[0])}"))
        return None
    if "use" not in data:
        return data
    name = data["use"]
    available = builtin_spaces()
    if check_str(name, join(path, "use"), problems) is None:
        return None
    if name not in available:
        known = ", ".join(available)
        problems.append(Problem(join(path, "use"), f"unknown built-in space `{name}`; available: {known}"))
        return None
    merged: dict[str, Any] = dict(load_builtin(name))
    for key, value in data.items():
        if key == "use":
            continue
        if value is None and key in merged:
            del merged[key]
        else:
            merged[key] = value
    return merged


def _unknown_name(name: str, framework: str, model: str, rules: Mapping[str, _Rule]) -> str:
    """Why ``name`` is not a hyperparameter of ``model``: another family's, a misspelling, or unknown."""
    owners = [m for m, params in FAMILY_PARAMS.items() if m != model and name in params]
    where = f"for framework {framework}, model {model}"
    if owners:
        return (f"`{name}` is a hyperparameter of model {' / '.join(owners)}, not {where}; set objective.model: "
                f"{owners[0]} or remove it")
    return f"unknown hyperparameter `{name}` {where}{did_you_mean(name, rules)}; known: {', '.join(rules)}"


def parse_space(data: Any, path: str, framework: str | None, problems: list[Problem],
                model: str = "mlp") -> SearchSpace:
    """Build a :class:`SearchSpace` from its YAML form, appending a problem per broken rule.

    ``data``: a mapping ``{name: param form}``, optionally with ``use: <built-in>``
    (other keys override the built-in's params, null removes one), or the bare name of
    a built-in space. ``path``: its YAML path (``"space"``). ``framework``: ``torch`` or
    ``keras`` for a network space (names and values checked against the hyperparameters
    of model family ``model``, :data:`FAMILY_PARAMS`; an unknown family is checked as
    ``mlp``, the spec reports it), None for a python space (any identifiers). Never
    raises for bad input: when ``problems`` grew, the returned space holds only the
    params that were valid.
    """
    mlp = framework is not None
    rules = FAMILY_PARAMS.get(model, MLP_PARAMS)
    params: list[Param] = []
    layout, min_units = "constant", DEFAULT_MIN_UNITS
    mapping = _expand_use(data, path, problems)
    if mapping is None:
        return SearchSpace((), mlp=mlp)
    if not mapping:
        problems.append(Problem(path, "must define at least one parameter"))
    for name, form in mapping.items():
        ppath = join(path, name)
        if mlp and name not in rules:
            problems.append(Problem(ppath, _unknown_name(name, str(framework), model, rules)))
            continue
        if not mlp and not name.isidentifier():
            problems.append(Problem(ppath, f"parameter names must be Python identifiers, got {name!r}"))
            continue
        extra: tuple[str, ...] = ()
        units_ok = True
        if mlp and name == "units":
            extra = ("layout", "min_units")
            if isinstance(form, Mapping):
                form = dict(form)
                given_layout = form.pop("layout", "constant")
                given_min = form.pop("min_units", DEFAULT_MIN_UNITS)
                if check_str(given_layout, join(ppath, "layout"), problems, choices=LAYOUTS, what="layout") is None:
                    units_ok = False
                else:
                    layout = given_layout
                if check_int(given_min, join(ppath, "min_units"), problems, minimum=1) is None:
                    units_ok = False
                else:
                    min_units = given_min
        param = parse_param(name, form, ppath, problems, extra_keys=extra)
        if param is None or not units_ok:
            continue
        if mlp and not _check_rule(param, rules[name], ppath, problems):
            continue
        params.append(param)
    names = [p.name for p in params]
    if mlp and "hidden_layers" in names:
        both = [n for n in ("n_layers", "units") if n in names]
        if both:
            problems.append(
                Problem(
                    join(path, "hidden_layers"),
                    "hidden_layers replaces n_layers and units; give one or the other, "
                    f"got hidden_layers and {' and '.join(both)}",
                )
            )
            params = [p for p in params if p.name not in both]
    units = next((p for p in params if p.name == "units"), None)
    if units is not None and layout == "funnel":
        low = min(_units_values(units), default=min_units)
        if low < min_units:
            problems.append(
                Problem(
                    join(path, "units"),
                    f"`units >= min_units` must hold for layout funnel, got units={low}, min_units={min_units}",
                )
            )
            layout = "constant"
    if units is None:
        layout = "constant"
    try:
        return SearchSpace(tuple(params), mlp=mlp, layout=layout, min_units=min_units)
    except ValueError as exc:  # pragma: no cover - parse_space checks these rules itself
        problems.append(Problem(path, str(exc)))
        return SearchSpace((), mlp=mlp)

"""The parameter types of a search space and their YAML forms.

A parameter is one of

* :class:`IntParam` -- ``{type: int, low: 1, high: 5, step: 1, log: false}``;
* :class:`FloatParam` -- ``{type: float, low: 1.0e-4, high: 0.1, log: true}`` (optional ``step``);
* :class:`CategoricalParam` -- ``{type: categorical, choices: [relu, tanh]}`` or the bare list
  ``[relu, tanh]``; choices are all bools, all numbers (ints and floats may mix), all
  strings, or all lists of non-negative ints (layer widths such as ``[[64, 32], [128, 64, 32]]``);
* :class:`FixedParam` -- a bare scalar (``activation: relu``) or ``{type: fixed, value: ...}``.

Optuna's categorical choices must be None/bool/int/float/str, so a list choice is
given to Optuna encoded as a string (``[128, 64, 32]`` -> ``"128-64-32"``, see
:func:`encode_layers`) and decoded back by :meth:`CategoricalParam.decode`.

Every class validates itself on construction and raises :class:`ParamError` (a
``ValueError``) listing every violated rule; :func:`parse_param` turns the YAML form
into a parameter and records problems instead of raising.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias

from sweeplab.core.checks import check_bool, check_int, check_keys, describe, is_int, is_number, join
from sweeplab.core.errors import Problem

if TYPE_CHECKING:
    import optuna

__all__ = [
    "PARAM_TYPES",
    "CategoricalParam",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "Param",
    "ParamError",
    "decode_layers",
    "encode_layers",
    "parse_param",
]

PARAM_TYPES = ("int", "float", "categorical", "fixed")
LAYER_SEPARATOR = "-"


class ParamError(ValueError):
    """A parameter that breaks one or more rules; ``messages`` lists each of them."""

    def __init__(self, name: str, messages: list[str]) -> None:
        self.name = name
        self.messages = list(messages)
        super().__init__(f"{name}: " + "; ".join(self.messages))


def _raise_if(name: str, messages: list[str]) -> None:
    if not isinstance(name, str) or not name:
        messages = [f"name must be a non-empty string, got {describe(name)}", *messages]
    if messages:
        raise ParamError(str(name), messages)


def encode_layers(widths: Sequence[int]) -> str:
    """Encode layer widths as the string Optuna stores: ``[128, 64, 32] -> "128-64-32"``."""
    return LAYER_SEPARATOR.join(str(int(w)) for w in widths)


def decode_layers(value: Any) -> list[int]:
    """Inverse of :func:`encode_layers`; lists and tuples of ints are returned as a list.

    Raises ValueError for anything else (``"64-x"``, ``"-"``, ``3.5``).
    """
    if isinstance(value, (list, tuple)):
        if not all(is_int(v) for v in value):
            raise ValueError(f"layer widths must be integers, got {list(value)!r}")
        return [int(v) for v in value]
    if isinstance(value, str):
        parts = value.split(LAYER_SEPARATOR)
        if not all(p.isdigit() for p in parts):
            raise ValueError(f"layer widths must look like '128-64-32', got {value!r}")
        return [int(p) for p in parts]
    raise ValueError(f"layer widths must be a list of ints or a string like '128-64-32', got {describe(value)}")


def _fmt(value: Any) -> str:
    """A value as YAML would show it (``true``, ``0.1``, ``'relu'``, ``[64, 32]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return repr(list(value))
    return repr(value)


def _bound_violations(low: Any, high: Any, numeric: Any) -> list[str]:
    msgs = []
    for key, value in (("low", low), ("high", high)):
        if not numeric(value):
            msgs.append(f"{key} must be {'an integer' if numeric is is_int else 'a number'}, got {describe(value)}")
        elif not math.isfinite(value):
            msgs.append(f"{key} must be a finite number, got {describe(value)}")
    if not msgs and low > high:
        msgs.append(f"`low <= high` must hold, got low={low!r}, high={high!r}")
    return msgs


@dataclass(frozen=True)
class IntParam:
    """An integer in ``[low, high]`` (both included), on a grid of ``step``, log-uniform if ``log``.

    Rules: ``low <= high``; ``step >= 1``; ``log`` needs ``low > 0`` and ``step == 1``
    (Optuna cannot combine log and step).
    """

    name: str
    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        _raise_if(self.name, self.violations())

    def violations(self) -> list[str]:
        """Every rule this parameter breaks (empty when valid)."""
        msgs = _bound_violations(self.low, self.high, is_int)
        if not is_int(self.step):
            msgs.append(f"step must be an integer, got {describe(self.step)}")
        elif self.step <= 0:
            msgs.append(f"`step > 0` must hold, got step={self.step}")
        if not isinstance(self.log, bool):
            msgs.append(f"log must be true or false, got {describe(self.log)}")
        elif self.log and is_int(self.step) and self.step > 1:
            msgs.append(f"log and step cannot be combined, got log=true, step={self.step}")
        if self.log and is_int(self.low) and self.low <= 0:
            msgs.append(f"`low > 0` must hold when log is true, got low={self.low}")
        return msgs

    def suggest(self, trial: optuna.trial.BaseTrial, name: str | None = None) -> int:
        """Sample with ``trial.suggest_int`` under ``name`` (default: this parameter's name)."""
        return trial.suggest_int(name or self.name, self.low, self.high, step=self.step, log=self.log)

    def bounds(self) -> list[Any]:
        """The values that bound this parameter (``[low, high]``), for range checks."""
        return [self.low, self.high]

    def grid_values(self) -> list[int]:
        """Every value Optuna can suggest: ``low, low + step, ...`` up to ``high``."""
        return list(range(self.low, self.high + 1, self.step))

    def to_dict(self) -> dict[str, Any]:
        """Canonical YAML form."""
        return {"type": "int", "low": self.low, "high": self.high, "step": self.step, "log": self.log}


@dataclass(frozen=True)
class FloatParam:
    """A float in ``[low, high]``, uniform or log-uniform (``log``), or on a grid of ``step``.

    Rules: finite bounds, ``low <= high``; ``step`` (optional) ``> 0``; ``log`` needs
    ``low > 0`` and no ``step``.
    """

    name: str
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        _raise_if(self.name, self.violations())

    def violations(self) -> list[str]:
        """Every rule this parameter breaks (empty when valid)."""
        msgs = _bound_violations(self.low, self.high, is_number)
        if self.step is not None:
            if not is_number(self.step) or not math.isfinite(self.step):
                msgs.append(f"step must be a finite number or null, got {describe(self.step)}")
            elif self.step <= 0:
                msgs.append(f"`step > 0` must hold, got step={self.step!r}")
        if not isinstance(self.log, bool):
            msgs.append(f"log must be true or false, got {describe(self.log)}")
        elif self.log and self.step is not None and is_number(self.step) and self.step > 0:
            msgs.append(f"log and step cannot be combined, got log=true, step={self.step!r}")
        if self.log is True and is_number(self.low) and self.low <= 0:
            msgs.append(f"`low > 0` must hold when log is true, got low={self.low!r}")
        return msgs

    def suggest(self, trial: optuna.trial.BaseTrial, name: str | None = None) -> float:
        """Sample with ``trial.suggest_float`` under ``name`` (default: this parameter's name)."""
        return trial.suggest_float(name or self.name, self.low, self.high, step=self.step, log=self.log)

    def bounds(self) -> list[Any]:
        """The values that bound this parameter (``[low, high]``), for range checks."""
        return [self.low, self.high]

    def grid_values(self) -> list[float]:
        """``low, low + step, ...`` up to ``high``; ValueError without a step (not finite)."""
        if self.step is None:
            raise ValueError(
                f"parameter `{self.name}` is a float range without step, which has no finite grid; "
                "give it a step or make it categorical"
            )
        low, high, step = Decimal(str(self.low)), Decimal(str(self.high)), Decimal(str(self.step))
        count = int((high - low) // step) + 1
        return [float(low + k * step) for k in range(count)]

    def to_dict(self) -> dict[str, Any]:
        """Canonical YAML form (``step`` only when set)."""
        out: dict[str, Any] = {"type": "float", "low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out


def _choice_kind(value: Any) -> str | None:
    """bool, number (int or float), str, list (tuple of layer widths), or None for other types."""
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, tuple):
        return "list"
    return None


def _layers_violation(value: tuple[Any, ...]) -> str | None:
    if not value or not all(is_int(v) and v >= 0 for v in value):
        return f"a list choice must be a non-empty list of integers >= 0 (layer widths), got {_fmt(value)}"
    return None


def _value_violations(value: Any, what: str) -> list[str]:
    kind = _choice_kind(value)
    if kind is None:
        return [f"{what} must be a bool, number, string or list of integers, got {describe(value)}"]
    if kind == "number" and not math.isfinite(value):
        return [f"{what} must be a finite number, got {describe(value)}"]
    if kind == "list":
        msg = _layers_violation(value)
        return [msg] if msg else []
    return []


@dataclass(frozen=True)
class CategoricalParam:
    """One of ``choices``.

    Rules: at least one choice; all choices of one kind (bools, numbers -- ints and
    floats may mix --, strings, or tuples of ints >= 0 for layer widths); finite
    numbers; no duplicates. List choices
    are stored as tuples and handed to Optuna encoded (:func:`encode_layers`).
    """

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        _raise_if(self.name, self.violations())

    def violations(self) -> list[str]:
        """Every rule this parameter breaks (empty when valid)."""
        if not isinstance(self.choices, tuple) or not self.choices:
            return [f"choices must be a non-empty list, got {_fmt(self.choices)}"]
        msgs: list[str] = []
        for choice in self.choices:
            msgs += _value_violations(choice, "a choice")
        if msgs:
            return msgs
        kinds = {_choice_kind(c) for c in self.choices}
        if len(kinds) > 1:
            first = self.choices[0]
            other = next(c for c in self.choices if _choice_kind(c) != _choice_kind(first))
            return [
                "choices must all have one type (all bools, all numbers, all strings or all lists of integers), "
                f"got {describe(first)} and {describe(other)}"
            ]
        seen: list[Any] = []
        for choice in self.choices:
            if choice in seen:
                msgs.append(f"choices must be distinct, got {_fmt(choice)} twice")
            seen.append(choice)
        return msgs

    @property
    def is_layers(self) -> bool:
        """True when the choices are lists of layer widths (encoded for Optuna)."""
        return isinstance(self.choices[0], tuple)

    @property
    def optuna_choices(self) -> tuple[Any, ...]:
        """The choices as Optuna sees them (list choices encoded as ``"128-64-32"``)."""
        if self.is_layers:
            return tuple(encode_layers(c) for c in self.choices)
        return self.choices

    def suggest(self, trial: optuna.trial.BaseTrial, name: str | None = None) -> Any:
        """Sample with ``trial.suggest_categorical``; returns the encoded (Optuna) value."""
        return trial.suggest_categorical(name or self.name, self.optuna_choices)

    def decode(self, raw: Any) -> Any:
        """The objective's value of a raw (Optuna) value: list choices as ``list[int]``."""
        return decode_layers(raw) if self.is_layers else raw

    def bounds(self) -> list[Any]:
        """Every choice (decoded), for range checks."""
        return list(self.choices)

    def grid_values(self) -> list[Any]:
        """Every choice, encoded as Optuna sees it."""
        return list(self.optuna_choices)

    def to_dict(self) -> dict[str, Any]:
        """Canonical YAML form (list choices as lists)."""
        return {"type": "categorical", "choices": [list(c) if isinstance(c, tuple) else c for c in self.choices]}


@dataclass(frozen=True)
class FixedParam:
    """A value that is not searched: a bool, finite number, string or tuple of ints >= 0.

    It is never suggested to Optuna; :meth:`SearchSpace.suggest` adds it to the raw
    params and :meth:`SearchSpace.resolve` to the objective's params.
    """

    name: str
    value: Any

    def __post_init__(self) -> None:
        _raise_if(self.name, self.violations())

    def violations(self) -> list[str]:
        """Every rule this parameter breaks (empty when valid)."""
        return _value_violations(self.value, "a fixed value")

    @property
    def is_layers(self) -> bool:
        """True when the value is a list of layer widths."""
        return isinstance(self.value, tuple)

    @property
    def raw_value(self) -> Any:
        """The value in raw (Optuna-like) form: a list of widths is encoded as ``"64-32"``."""
        return encode_layers(self.value) if self.is_layers else self.value

    def suggest(self, trial: optuna.trial.BaseTrial, name: str | None = None) -> Any:
        """Return :attr:`raw_value` without asking ``trial`` anything."""
        return self.raw_value

    def decode(self, raw: Any) -> Any:
        """The objective's value of a raw value (a list of widths as ``list[int]``)."""
        return decode_layers(raw) if self.is_layers else raw

    def bounds(self) -> list[Any]:
        """``[value]``, for range checks."""
        return [self.value]

    def grid_values(self) -> list[Any]:
        """``[raw_value]``."""
        return [self.raw_value]

    def to_dict(self) -> Any:
        """Canonical YAML form: the bare value, or ``{type: fixed, value: [...]}`` for a list."""
        if self.is_layers:
            return {"type": "fixed", "value": list(self.value)}
        return self.value


Param: TypeAlias = IntParam | FloatParam | CategoricalParam | FixedParam
"""Any parameter of a search space."""


def _as_choice(value: Any) -> Any:
    """YAML lists become tuples so that choices are hashable and compare by value."""
    return tuple(value) if isinstance(value, list) else value


def _normalize_choices(values: Sequence[Any]) -> tuple[Any, ...]:
    """YAML lists of choices as tuples, list choices as tuples too."""
    return tuple(_as_choice(v) for v in values)


def _construct(cls: type, path: str, problems: list[Problem], **kwargs: Any) -> Param | None:
    try:
        return cls(**kwargs)  # type: ignore[no-any-return]
    except ParamError as exc:
        problems.extend(Problem(path, m) for m in exc.messages)
        return None


def parse_param(
    name: str,
    data: Any,
    path: str,
    problems: list[Problem],
    *,
    extra_keys: Sequence[str] = (),
) -> Param | None:
    """Build a parameter from its YAML form, appending a problem per broken rule.

    ``path`` is the parameter's YAML path (``space.units``); problems about one key
    use that key's path (``space.units.low``), problems about the whole parameter use
    ``path``. ``extra_keys`` are keys the caller has already taken out of ``data``
    (such as ``layout``), listed as allowed in unknown-key messages. Returns None when
    there is a problem.
    """
    if isinstance(data, list):
        return _construct(CategoricalParam, path, problems, name=name, choices=_normalize_choices(data))
    if not isinstance(data, Mapping):
        if data is None:
            problems.append(Problem(path, "must be a value, a list of choices or a mapping with `type`, got None"))
            return None
        return _construct(FixedParam, path, problems, name=name, value=data)
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        problems.append(Problem(path, f"keys must be strings, got {describe(bad_keys[0])}"))
        return None
    if "type" not in data:
        keys = ", ".join(data) or "none"
        problems.append(Problem(path, f"a parameter mapping needs `type` ({', '.join(PARAM_TYPES)}), got keys: {keys}"))
        return None
    kind = data["type"]
    if kind not in PARAM_TYPES:
        problems.append(Problem(join(path, "type"), f"unknown type `{kind}`; allowed: {', '.join(PARAM_TYPES)}"))
        return None
    allowed = {
        "int": ("type", "low", "high", "step", "log"),
        "float": ("type", "low", "high", "step", "log"),
        "categorical": ("type", "choices"),
        "fixed": ("type", "value"),
    }[kind]
    unknown: list[Problem] = []
    check_keys(data, (*allowed, *extra_keys), path, unknown)
    problems.extend(unknown)
    before = len(problems)
    for key in allowed:
        if key not in data and key in ("low", "high", "choices", "value"):
            problems.append(Problem(join(path, key), f"required for type {kind}"))
    if len(problems) > before:
        return None
    param = _parse_typed(kind, name, data, path, problems)
    return None if unknown else param


def _parse_typed(kind: str, name: str, data: Mapping[str, Any], path: str, problems: list[Problem]) -> Param | None:
    """The param of a ``{type: kind, ...}`` mapping whose keys were checked already."""
    before = len(problems)
    if kind == "int":
        low = check_int(data["low"], join(path, "low"), problems)
        high = check_int(data["high"], join(path, "high"), problems)
        step = check_int(data.get("step", 1), join(path, "step"), problems)
        log = check_bool(data.get("log", False), join(path, "log"), problems)
        if len(problems) > before:
            return None
        return _construct(IntParam, path, problems, name=name, low=low, high=high, step=step, log=log)
    if kind == "float":
        bounds: dict[str, float] = {}
        for key in ("low", "high", "step"):
            value: Any = data.get(key)
            if key == "step" and value is None:
                continue
            if not is_number(value):
                problems.append(Problem(join(path, key), f"must be a number, got {describe(value)}"))
            elif not math.isfinite(value):
                problems.append(Problem(join(path, key), f"must be a finite number, got {describe(value)}"))
            else:
                bounds[key] = float(value)
        log = check_bool(data.get("log", False), join(path, "log"), problems)
        if len(problems) > before:
            return None
        return _construct(
            FloatParam,
            path,
            problems,
            name=name,
            low=bounds["low"],
            high=bounds["high"],
            step=bounds.get("step"),
            log=log,
        )
    if kind == "categorical":
        choices = data["choices"]
        if not isinstance(choices, list):
            problems.append(Problem(join(path, "choices"), f"must be a list, got {describe(choices)}"))
            return None
        return _construct(CategoricalParam, path, problems, name=name, choices=_normalize_choices(choices))
    return _construct(FixedParam, path, problems, name=name, value=_as_choice(data["value"]))

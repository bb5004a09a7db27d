"""Option schemas: what a named component (dataset, sampler, pruner) accepts, and its defaults.

A :class:`Schema` lists the :class:`Option` s of one registry entry. The spec validator
calls :func:`check_options` (problems with YAML paths such as ``pruner.percentile``,
messages that restate the rule and echo the value) and the builders and loaders call
:func:`resolve_options` (the user's options over the declared defaults). Both read the
same schema, so what validates is what builds.

Import-light on purpose: ``sweeplab validate`` imports this without numpy, scikit-learn
or Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sweeplab.core.checks import (
    check_bool,
    check_int,
    check_number,
    check_str,
    describe,
    did_you_mean,
    is_int,
    is_number,
    join,
)
from sweeplab.core.errors import Problem

__all__ = [
    "Context",
    "Derive",
    "Option",
    "OptionKind",
    "Rule",
    "Schema",
    "SpaceShape",
    "check_options",
    "resolve_options",
    "shown_value",
]

OptionKind = Literal["int", "number", "bool", "str", "numbers", "ints", "custom"]
"""How an option's value is checked: ``numbers`` is a non-empty list of numbers, ``ints`` a
non-empty list of integers (layer widths); ``custom`` is checked by :attr:`Option.check`
(e.g. the pruner that ``patient`` wraps)."""


@dataclass(frozen=True)
class SpaceShape:
    """What ``sampler: auto`` reads of a search space: ``params`` searched parameters (fixed
    ones aside), of which ``categorical`` are categorical."""

    params: int = 0
    categorical: int = 0


@dataclass(frozen=True)
class Context:
    """What defaults and builders may depend on besides the options themselves.

    ``seed``: the study's seed (or a trial's derived one); ``workers``: trials in flight;
    ``epochs``: the objective's epochs (a pruner's resource budget); ``grid``: the
    grid sampler's values per parameter (only set when a grid sampler is built);
    ``objectives``: the study's number of objectives; ``space``: the space's shape (None
    when unknown). ``sampler: auto`` and ``pruner: auto`` resolve from these.
    """

    seed: int = 0
    workers: int = 1
    epochs: int = 20
    grid: Mapping[str, list[Any]] | None = None
    objectives: int = 1
    space: SpaceShape | None = None


Derive = Callable[[Mapping[str, Any], Context], Any]
"""A default computed from the options resolved so far (earlier in the schema) and the context."""

Rule = Callable[[Mapping[str, Any], Mapping[str, Any]], list[Problem]]
"""Cross-option rules: ``rule(resolved, given)`` returns problems whose paths are relative
to the component (``""`` for the component itself, ``"weights"`` for one option). ``given``
tells the user's options from defaults, for messages."""


@dataclass(frozen=True)
class Option:
    """One option of a component.

    Its default is ``default``, or ``derive(resolved_so_far, context)`` when ``derive`` is
    set (options are resolved in schema order, so a derived default may read earlier
    options); ``default_text`` says the default in words for messages and docs.
    Bounds (``minimum`` / ``maximum`` inclusive, ``above`` exclusive) apply to ``int``,
    ``number`` and each item of ``numbers``; ``choices`` restrict ``str`` and ``int``
    values; ``nullable`` also accepts null (YAML ``null`` / Python None).
    """

    name: str
    kind: OptionKind
    doc: str
    default: Any = None
    derive: Derive | None = None
    default_text: str = ""
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[Any, ...] = ()
    nullable: bool = False
    check: Callable[[Any, str, list[Problem], Context], bool] | None = None

    def shown_default(self) -> str:
        """The default as messages and docs show it: ``min(5, n_features)``, ``25.0``, ``null``."""
        return self.default_text or shown_value(self.default)

    def rule_text(self) -> str:
        """What a valid value is, in words (``an integer >= 0``, ``a number in [0, 100]``)."""
        noun = {
            "int": "an integer",
            "number": "a number",
            "bool": "true or false",
            "str": "a string",
            "numbers": "a list of numbers",
            "ints": "a list of integers",
            "custom": "see docs",
        }[self.kind]
        if self.choices:
            noun = "one of " + ", ".join(shown_value(c) for c in self.choices)
        elif self.bounds_text():
            noun += " " + self.bounds_text()
        return noun + (" or null" if self.nullable else "")

    def bounds_text(self) -> str:
        """The bounds in words: ``>= 1``, ``> 0``, ``in [0, 1)``, ``in (0, 1]``; ``""`` when unbounded."""
        low = (self.minimum, "[") if self.minimum is not None else (self.above, "(")
        high = (self.maximum, "]") if self.maximum is not None else (self.below, ")")
        if low[0] is not None and high[0] is not None:
            return f"in {low[1]}{low[0]:g}, {high[0]:g}{high[1]}"
        if low[0] is not None:
            return f"{'>=' if low[1] == '[' else '>'} {low[0]:g}"
        if high[0] is not None:
            return f"{'<=' if high[1] == ']' else '<'} {high[0]:g}"
        return ""

    def within(self, value: float) -> bool:
        """True when the number ``value`` keeps every bound of this option."""
        return not (
            (self.minimum is not None and value < self.minimum)
            or (self.maximum is not None and value > self.maximum)
            or (self.above is not None and value <= self.above)
            or (self.below is not None and value >= self.below)
        )


@dataclass(frozen=True)
class Schema:
    """The options of one component, its cross-option rules, and its reserved keys.

    ``reserved`` maps a key users may not set to why (``seed``: the sampler is seeded
    from the top-level seed); such a key gets that reason instead of "unknown key".
    """

    options: tuple[Option, ...] = ()
    rules: Rule | None = None
    reserved: tuple[tuple[str, str], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The option names, in declared order."""
        return tuple(o.name for o in self.options)

    def option(self, name: str) -> Option:
        """The option called ``name``; KeyError when the schema has none."""
        for opt in self.options:
            if opt.name == name:
                return opt
        raise KeyError(name)


def shown_value(value: Any) -> str:
    """A value as YAML would spell it: ``true``, ``null``, ``0.25``, ``sobol``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_options(
    schema: Schema,
    given: Mapping[str, Any],
    path: str,
    problems: list[Problem],
    context: Context | None = None,
    *,
    extra_keys: tuple[str, ...] = (),
) -> bool:
    """Check ``given`` against ``schema``; append one :class:`Problem` per broken rule.

    ``path`` is the component's YAML path (``objective.dataset``); an option's problems
    are reported at ``path.option``, unknown keys and cross-option rules at ``path``
    (or at the option a rule names). ``extra_keys`` are keys the caller handles itself
    (``name``): they are neither checked nor unknown. Cross-option rules run only when
    every option is valid on its own, on the options resolved with their defaults.
    Returns True when no problem was added.
    """
    context = context or Context()
    before = len(problems)
    reserved = dict(schema.reserved)
    allowed = (*extra_keys, *schema.names)
    for key, value in given.items():
        if key in extra_keys:
            continue
        if key in reserved:
            problems.append(Problem(join(path, key), reserved[key]))
        elif key not in schema.names:
            problems.append(Problem(path, f"unknown key `{key}`{did_you_mean(str(key), allowed)}; "
                                          f"allowed: {', '.join(allowed) or 'none'}"))
        else:
            _check_value(schema.option(key), value, join(path, key), problems, context)
    if len(problems) == before and schema.rules is not None:
        resolved = resolve_options(schema, {k: v for k, v in given.items() if k not in extra_keys}, context)
        for problem in schema.rules(resolved, given):
            problems.append(Problem(join(path, problem.path) if problem.path else path, problem.message))
    return len(problems) == before


def resolve_options(schema: Schema, given: Mapping[str, Any], context: Context | None = None) -> dict[str, Any]:
    """The user's options over the schema's defaults, in schema order (keys not in the schema dropped).

    Does not check values (call :func:`check_options` for that) and does not raise on
    bad ones: a derived default whose inputs are invalid falls back to a plain value.
    Derived defaults see the options resolved before them, so ``n_informative``'s
    default follows ``n_features``.
    """
    context = context or Context()
    out: dict[str, Any] = {}
    for opt in schema.options:
        if opt.name in given:
            out[opt.name] = given[opt.name]
        elif opt.derive is not None:
            out[opt.name] = opt.derive(out, context)
        else:
            out[opt.name] = opt.default
    return out


def _outside_range(opt: Option, value: Any) -> bool:
    """True for a value of the option's kind that lies outside a range bounded on both ends."""
    bounded_low = opt.minimum is not None or opt.above is not None
    bounded_high = opt.maximum is not None or opt.below is not None
    if not (bounded_low and bounded_high) or opt.choices:
        return False
    typed = is_int(value) if opt.kind == "int" else is_number(value) and math.isfinite(value)
    return bool(typed) and not opt.within(value)


def _check_value(opt: Option, value: Any, path: str, problems: list[Problem], context: Context) -> bool:
    """Check one option's value by its kind, bounds and choices."""
    if value is None and opt.nullable:
        return True
    if opt.kind == "custom":
        assert opt.check is not None, f"custom option {opt.name} needs a check"
        return opt.check(value, path, problems, context)
    if opt.kind == "bool":
        return check_bool(value, path, problems) is not None
    if opt.kind == "str":
        if isinstance(value, str) and opt.choices and value not in opt.choices:
            problems.append(Problem(path, f"must be {opt.rule_text()}, got {value!r}"))
            return False
        return check_str(value, path, problems) is not None
    if opt.kind in ("int", "number") and _outside_range(opt, value):
        # a range's two ends in one message, not just the end that was crossed
        problems.append(Problem(path, f"must be {opt.rule_text()}, got {value!r}"))
        return False
    if opt.kind == "int":
        if opt.choices and is_int(value) and value not in opt.choices:
            problems.append(Problem(path, f"must be {opt.rule_text()}, got {value}"))
            return False
        lo = None if opt.minimum is None else int(opt.minimum)
        hi = None if opt.maximum is None else int(opt.maximum)
        return check_int(value, path, problems, minimum=lo, maximum=hi) is not None
    if opt.kind == "number":
        return check_number(value, path, problems, ge=opt.minimum, le=opt.maximum, gt=opt.above,
                            lt=opt.below) is not None
    # numbers / ints: a non-empty list, each item a number (an integer) within the bounds
    item_ok = is_int if opt.kind == "ints" else is_number
    noun = "integers" if opt.kind == "ints" else "numbers"
    if not isinstance(value, (list, tuple)) or not value or not all(item_ok(v) for v in value):
        problems.append(Problem(path, f"must be a non-empty list of {noun}{' or null' if opt.nullable else ''}, "
                                      f"got {describe(value)}"))
        return False
    before = len(problems)
    for i, item in enumerate(value):
        check_number(item, f"{path}[{i}]", problems, ge=opt.minimum, le=opt.maximum, gt=opt.above, lt=opt.below)
    return len(problems) == before

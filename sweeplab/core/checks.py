"""Small validation helpers shared by :mod:`sweeplab.spec` and :mod:`sweeplab.spaces`.

Every ``check_*`` function appends a :class:`~sweeplab.core.errors.Problem` to ``problems``
and returns ``None`` when the value breaks the rule, or returns the (normalized) value
when it holds, so callers collect every problem of a spec in one pass instead of
stopping at the first. Messages restate the rule and echo the value, e.g.
``must be an integer, got str 'ten'``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from sweeplab.core.errors import Problem

__all__ = [
    "check_bool",
    "check_int",
    "check_keys",
    "check_mapping",
    "check_number",
    "check_plain_data",
    "check_str",
    "describe",
    "did_you_mean",
    "is_int",
    "is_number",
    "join",
]


def join(path: str, key: object) -> str:
    """The YAML path of ``key`` under ``path`` (``"space" + "units" -> "space.units"``)."""
    return f"{path}.{key}" if path else str(key)


def describe(value: Any) -> str:
    """``"<type> <repr>"`` of a value, as error messages echo it (``str 'ten'``, ``float nan``)."""
    return f"{type(value).__name__} {value!r}"


def is_int(value: Any) -> bool:
    """True for Python ints that are not bools (YAML ``true`` is not an integer here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for ints (not bools) and floats, finite or not."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_mapping(value: Any, path: str, problems: list[Problem]) -> Mapping[str, Any] | None:
    """Return ``value`` if it is a mapping whose keys are all strings, else record a problem."""
    if not isinstance(value, Mapping):
        problems.append(Problem(path, f"must be a mapping, got {describe(value)}"))
        return None
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        problems.append(Problem(path, f"keys must be strings, got {describe(bad[0])}"))
        return None
    return value


def check_keys(value: Mapping[str, Any], allowed: Iterable[str], path: str, problems: list[Problem]) -> None:
    """Record one problem per key of ``value`` that is not in ``allowed``."""
    allowed = list(allowed)
    for key in value:
        if key not in allowed:
            problems.append(Problem(path, f"unknown key `{key}`; allowed: {', '.join(allowed)}"))


def check_int(
    value: Any,
    path: str,
    problems: list[Problem],
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    """Return ``value`` if it is an int (not a bool) within ``[minimum, maximum]``."""
    if not is_int(value):
        problems.append(Problem(path, f"must be an integer, got {describe(value)}"))
        return None
    if minimum is not None and value < minimum:
        problems.append(Problem(path, f"must be >= {minimum}, got {value}"))
        return None
    if maximum is not None and value > maximum:
        problems.append(Problem(path, f"must be <= {maximum}, got {value}"))
        return None
    return int(value)


def check_number(
    value: Any,
    path: str,
    problems: list[Problem],
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> float | None:
    """Return ``float(value)`` if it is a finite int/float within the given bounds."""
    if not is_number(value):
        problems.append(Problem(path, f"must be a number, got {describe(value)}"))
        return None
    if not math.isfinite(value):
        problems.append(Problem(path, f"must be a finite number, got {describe(value)}"))
        return None
    for bound, ok, op in (
        (gt, lambda b: value > b, ">"),
        (ge, lambda b: value >= b, ">="),
        (lt, lambda b: value < b, "<"),
        (le, lambda b: value <= b, "<="),
    ):
        if bound is not None and not ok(bound):
            problems.append(Problem(path, f"must be {op} {bound:g}, got {value!r}"))
            return None
    return float(value)


def check_bool(value: Any, path: str, problems: list[Problem]) -> bool | None:
    """Return ``value`` if it is a bool (YAML ``true`` / ``false``)."""
    if not isinstance(value, bool):
        problems.append(Problem(path, f"must be true or false, got {describe(value)}"))
        return None
    return value


def check_str(
    value: Any,
    path: str,
    problems: list[Problem],
    *,
    choices: Iterable[str] | None = None,
    what: str = "",
) -> str | None:
    """Return ``value`` if it is a non-empty string (one of ``choices`` when given)."""
    if not isinstance(value, str) or not value:
        problems.append(Problem(path, f"must be a non-empty string, got {describe(value)}"))
        return None
    if choices is not None:
        options = list(choices)
        if value not in options:
            noun = f"{what} " if what else ""
            problems.append(Problem(path, f"unknown {noun}`{value}`{did_you_mean(value, options)}; "
                                          f"allowed: {', '.join(options)}"))
            return None
    return value


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``" (did you mean `x`?)"`` for the closest of ``choices`` to a misspelt ``value``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.75)
    return f" (did you mean `{close[0]}`?)" if close else ""


def check_plain_data(value: Any, path: str, problems: list[Problem]) -> bool:
    """True if ``value`` is JSON-like plain data with finite numbers; records a problem per bad leaf.

    Plain data is None, bool, int, finite float, str, lists of plain data and mappings
    with string keys of plain data (YAML dates, NaN and inf are not).
    """
    if value is None or isinstance(value, (bool, str)) or is_int(value):
        return True
    if isinstance(value, float):
        if math.isfinite(value):
            return True
        problems.append(Problem(path, f"must be a finite number, got {describe(value)}"))
        return False
    if isinstance(value, (list, tuple)):
        results = [check_plain_data(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
        return all(results)
    if isinstance(value, Mapping):
        ok = True
        for k, v in value.items():
            if not isinstance(k, str):
                problems.append(Problem(path, f"keys must be strings, got {describe(k)}"))
                ok = False
            elif not check_plain_data(v, join(path, k), problems):
                ok = False
        return ok
    problems.append(Problem(path, f"must be plain data (number, string, bool, list, mapping), got {describe(value)}"))
    return False

"""The YAML dialect of sweeplab's spec and space files.

It is PyYAML's safe loader with two fixes for hand-written specs:

* ``1e-4`` is a float (YAML 1.1, and so plain PyYAML, reads it as the string ``'1e-4'``
  unless it is written ``1.0e-4``);
* a key given twice in one mapping is an error (PyYAML silently keeps the last one).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from sweeplab.core.errors import Problem, SpecError

__all__ = ["SpecLoader", "load_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class SpecLoader(yaml.SafeLoader):
    """Safe loader that reads ``1e-4`` as a float and rejects duplicate keys."""


def _construct_mapping(loader: SpecLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: let construct_mapping report it
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str, source: str) -> Any:
    """Parse ``text`` with :class:`SpecLoader`.

    Raises :class:`SpecError` (one problem, path ``""``) naming ``source`` and the line
    and column of a syntax error or a duplicate key.
    """
    try:
        return yaml.load(text, Loader=SpecLoader)  # SpecLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "invalid YAML"
        raise SpecError([Problem("", f"invalid YAML in {source}{where}: {what}")], source=source) from exc
    except yaml.YAMLError as exc:
        raise SpecError([Problem("", f"invalid YAML in {source}: {exc}")], source=source) from exc

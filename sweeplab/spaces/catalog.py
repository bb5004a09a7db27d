"""The built-in search spaces: YAML files shipped in ``sweeplab/spaces/builtin/``.

A spec uses one with ``space: mlp`` or ``space: {use: mlp, dropout: {...}}``. The files
are package data, read with :mod:`importlib.resources` so they work from a wheel or a
zip as well as from a checkout.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from sweeplab.spaces.yaml_io import load_yaml

__all__ = ["builtin_spaces", "load_builtin"]

_PACKAGE = "sweeplab.spaces"
_FOLDER = "builtin"
_SUFFIX = ".yaml"


def builtin_spaces() -> list[str]:
    """Names of the built-in spaces, sorted (``["mlp", "mlp-funnel", ...]``)."""
    folder = resources.files(_PACKAGE).joinpath(_FOLDER)
    return sorted(
        entry.name[: -len(_SUFFIX)] for entry in folder.iterdir() if entry.is_file() and entry.name.endswith(_SUFFIX)
    )


def load_builtin(name: str) -> dict[str, Any]:
    """The parameter mapping of built-in space ``name``, as written in its YAML file.

    Raises KeyError naming the available spaces when ``name`` is not one of them; a
    broken shipped file raises :class:`~sweeplab.core.errors.SpecError`.
    """
    available = builtin_spaces()
    if name not in available:
        raise KeyError(f"unknown built-in space `{name}`; available: {', '.join(available)}")
    text = resources.files(_PACKAGE).joinpath(_FOLDER).joinpath(name + _SUFFIX).read_text(encoding="utf-8")
    data = load_yaml(text, source=f"built-in space {name}")
    if not isinstance(data, dict):
        raise KeyError(f"built-in space `{name}` is not a mapping of parameters")
    return data

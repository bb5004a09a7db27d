"""A new SQLite store starts as a copy of an empty one, built once per library version.

Creating a store is a library's slowest way to open it: MLflow runs each of its schema
migrations in turn (2-3 s on a small machine), Optuna creates its tables and stamps their
version (0.15-0.4 s). Both are paid again in every new directory, before the first trial.
The first store of a kind and version a machine creates is built the library's own way
into this user's cache (``$SWEEPLAB_CACHE``, else ``$XDG_CACHE_HOME/sweeplab``, else
``~/.cache/sweeplab``); every later new store of that kind is a copy of it, which the
library then opens as any store of its own version.

Only a store file that does not exist yet (or is empty) is seeded, and never over a store
another process made meanwhile; anything that goes wrong leaves the library to create the
store itself. :mod:`sweeplab.tracking.store_template` (MLflow) and
:func:`sweeplab.search.storage.open_storage` (Optuna) say what their templates hold.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from sweeplab.core.stores import sqlite_path

log = logging.getLogger("sweeplab")

CACHE_ENV = "SWEEPLAB_CACHE"


def cache_dir() -> Path:
    """Where sweeplab keeps what it builds once per machine (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sweeplab"


def sqlite_file(url: str) -> Path | None:
    """The file of an absolute ``sqlite:////...`` URL (None for anything else, or in memory)."""
    path = sqlite_path(url)
    return Path(path) if path is not None and os.path.isabs(path) else None


def seed_from_template(url: str, name: str, build: Callable[[Path], None]) -> bool:
    """Make the missing (or empty) SQLite store at ``url`` a copy of the template ``name`` in
    :func:`cache_dir`; return whether it did. ``build(path)`` creates the template at
    ``path`` the library's own way, the first time. Never raises: on any problem, False."""
    target = sqlite_file(url)
    if target is None or (target.exists() and target.stat().st_size > 0):
        return False
    try:
        template = _template(name, build)
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.{os.getpid()}.seed")
        shutil.copyfile(template, staged)
        try:
            if target.exists():  # empty: the library would build it in place; the copy takes its place
                os.replace(staged, target)
            else:
                os.link(staged, target)  # never over a store another process made meanwhile
        except FileExistsError:
            return False
        finally:
            staged.unlink(missing_ok=True)
        return True
    except Exception as exc:  # only a speed-up
        log.debug("could not seed %s from the template %s (%s); the library creates it", target, name, exc)
        return False


def _template(name: str, build: Callable[[Path], None]) -> Path:
    """The template ``name``, built on first use (renamed into place whole: a process that
    reads it never sees half of one)."""
    folder = cache_dir()
    template = folder / name
    if template.exists():
        return template
    folder.mkdir(parents=True, exist_ok=True)
    building = folder / f".{name}.{os.getpid()}.building"
    try:
        build(building)
        os.replace(building, template)
    finally:
        building.unlink(missing_ok=True)
    return template

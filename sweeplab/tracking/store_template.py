"""A new SQLite tracking store starts as a copy of an empty one, migrated once per MLflow version.

MLflow creates a SQLite store by running each of its schema migrations in turn: 2-3 s of a
study's start-up on a small machine, paid again in every new directory (measured with
py-spy: alembic's migrations were the largest part of a cold run's driver start-up). The
first store a machine creates with an MLflow version is migrated as usual, into this
user's cache (``$SWEEPLAB_CACHE``, else ``$XDG_CACHE_HOME/sweeplab``, else
``~/.cache/sweeplab``), with its default experiment removed so that the template holds no
path of its own; every later new store is a copy of it. MLflow then opens the copy as it
opens any store: it finds every table at its own schema version (``_verify_schema`` would
refuse another version's), and creates the default experiment with this store's
artifact root.

Only a store file that does not exist yet (or is empty) is seeded; anything that goes
wrong falls back to MLflow's own creation.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from pathlib import Path

from sweeplab.core.stores import sqlite_path

log = logging.getLogger("sweeplab.tracking")

CACHE_ENV = "SWEEPLAB_CACHE"


def cache_dir() -> Path:
    """Where sweeplab keeps what it builds once per machine (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sweeplab"


def sqlite_file(tracking_uri: str) -> Path | None:
    """The file of an absolute ``sqlite:////...`` URI (None for anything else, or in memory)."""
    path = sqlite_path(tracking_uri)
    return Path(path) if path is not None and os.path.isabs(path) else None


def seed_sqlite_store(tracking_uri: str) -> bool:
    """Make a missing (or empty) SQLite tracking store a copy of the migrated template; return
    whether it did. Never raises: on any problem, MLflow creates the store itself."""
    target = sqlite_file(tracking_uri)
    if target is None or (target.exists() and target.stat().st_size > 0):
        return False
    try:
        template = _template()
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.{os.getpid()}.seed")
        shutil.copyfile(template, staged)
        try:
            if target.exists():  # empty: MLflow would migrate it in place; the copy takes its place
                os.replace(staged, target)
            else:
                os.link(staged, target)  # never over a store another process made meanwhile
        except FileExistsError:
            return False
        finally:
            staged.unlink(missing_ok=True)
        return True
    except Exception as exc:  # only a speed-up
        log.debug("could not seed %s from a template (%s); MLflow creates it", target, exc)
        return False


def _template() -> Path:
    """The migrated, empty store of the installed MLflow, built on first use."""
    import mlflow

    folder = cache_dir()
    template = folder / f"mlflow-{mlflow.__version__}-empty.db"
    if template.exists():
        return template
    folder.mkdir(parents=True, exist_ok=True)
    building = folder / f".{template.name}.{os.getpid()}.building"
    try:
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=f"sqlite:///{building}").search_experiments(max_results=1)  # migrates it
        with sqlite3.connect(building) as db:  # the default experiment: MLflow makes it again, with the right path
            db.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
            db.execute("DELETE FROM experiments WHERE experiment_id = 0")
        os.replace(building, template)
    finally:
        building.unlink(missing_ok=True)
    return template

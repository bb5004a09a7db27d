"""A new SQLite tracking store is a copy of an empty one, migrated once per MLflow version.

MLflow creates a SQLite store by running each of its schema migrations in turn: 2-3 s of a
study's start-up on a small machine, paid again in every new directory (measured with
py-spy: alembic's migrations were the largest part of a cold run's driver start-up). The
template (:mod:`sweeplab.core.store_templates`) is a store migrated as usual, with its
default experiment removed so that it holds no path of its own. MLflow opens a copy as it
opens any store: it finds every table at its own schema version (``_verify_schema`` would
refuse another version's), and creates the default experiment with this store's artifact
root.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sweeplab.core.store_templates import seed_from_template


def seed_sqlite_store(tracking_uri: str) -> bool:
    """Make a missing (or empty) SQLite tracking store a copy of the migrated template; return
    whether it did. Never raises: on any problem, MLflow creates the store itself."""
    import mlflow

    return seed_from_template(tracking_uri, f"mlflow-{mlflow.__version__}-empty.db", _build)


def _build(path: Path) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)  # migrates it
    with sqlite3.connect(path) as db:  # the default experiment: MLflow makes it again, with the right path
        db.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
        db.execute("DELETE FROM experiments WHERE experiment_id = 0")

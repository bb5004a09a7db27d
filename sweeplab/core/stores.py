"""Where a study's Optuna storage is: the one rule, importable without the search code.

The command line resolves it before it knows whether a study runs here or in the service
(which must get the URL the user's directory and environment give, made absolute).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_STORAGE_FILE = "sweeplab.db"
STORAGE_ENV = "SWEEPLAB_STORAGE"


def resolve_storage_url(flag: str | None = None) -> str:
    """Return the Optuna storage URL: ``flag``, else ``$SWEEPLAB_STORAGE``, else the default file.

    SQLite paths are made absolute against the current directory.
    """
    url = flag or os.environ.get(STORAGE_ENV) or f"sqlite:///{DEFAULT_STORAGE_FILE}"
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///") :]
        if rel and rel != ":memory:":
            url = "sqlite:///" + str(Path(rel).resolve())
    return url


def sqlite_path(url: str) -> str | None:
    """The database file of a ``sqlite:///`` URL as written (relative or absolute, its query
    dropped); None for another kind of URL or an in-memory database."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    file = url[len(prefix):].split("?", 1)[0]
    return file if file and file != ":memory:" else None


def is_local_url(url: str) -> bool:
    """True for stores only reachable on this machine's filesystem (SQLite, plain files): an
    Optuna storage URL or an MLflow tracking URI that a process on another machine cannot open."""
    return url.startswith(("sqlite:", "file:", "/", ".")) or "://" not in url


def local_stores(storage_url: str, tracking_uri: str) -> list[tuple[str, str]]:
    """The study's stores that are files on this machine, each as (what it is, its URL):
    ``Optuna storage`` and/or ``MLflow tracking store``, in that order."""
    return [(what, url) for what, url in (("Optuna storage", storage_url), ("MLflow tracking store", tracking_uri))
            if is_local_url(url)]


SHARED_STORES_FIX = ("--storage postgresql://USER@HOST/DB (or $SWEEPLAB_STORAGE) and --tracking-uri "
                     "http://MLFLOW_HOST:5000 (or $MLFLOW_TRACKING_URI)")
"""The stores a study needs when it runs where this machine's files are not: what the messages that
refuse a local store tell the user to give instead."""

RAY_ADDRESS_ENV = "RAY_ADDRESS"
"""Ray's own variable: the cluster a driver joins (``--address`` overrides it; ``local`` or unset: a
Ray of the driver's own). Read by :func:`ray_address` only; messages name it."""


LOCAL_RAY = "local"
"""The Ray address (Ray's own word) of a Ray instance a process starts for itself, not a cluster."""


def ray_address(flag: str | None = None) -> str | None:
    """The Ray address a command was given: ``flag`` (``--address``), else ``$RAY_ADDRESS``; None
    when neither is set. :data:`LOCAL_RAY` is returned as given (a Ray of the caller's own)."""
    return flag or os.environ.get(RAY_ADDRESS_ENV, "").strip() or None

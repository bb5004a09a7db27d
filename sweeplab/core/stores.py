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


def is_local_url(url: str) -> bool:
    """True for stores only reachable on this machine's filesystem (SQLite, plain files): an
    Optuna storage URL or an MLflow tracking URI that a process on another machine cannot open."""
    return url.startswith(("sqlite:", "file:", "/", ".")) or "://" not in url

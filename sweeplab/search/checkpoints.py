"""Trial checkpoints (``trial.checkpoint``), kept by the study's coordinator.

Workers may run on other machines, so a checkpoint travels as bytes to the coordinator,
which runs on the driver's machine and writes it to a private folder there: by default
:data:`~sweeplab.core.defaults.CHECKPOINT_DIR` beside a SQLite study database, else in the
driver's working directory, one sub-folder per study (its name and a random id the study
keeps, so a study deleted and created again never sees the old one's files). One file per
trial lineage (a trial and its retries), replaced atomically by each checkpoint, so a
retry, also one started by another driver after this one was killed, finds the last one;
the file is deleted when the lineage finishes.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from sweeplab.core.defaults import CHECKPOINT_DIR
from sweeplab.core.stores import sqlite_path


def checkpoint_root(storage_url: str, cwd: str | None = None) -> Path:
    """The folder holding every study's checkpoints for the Optuna storage at ``storage_url``."""
    base = Path(cwd or os.getcwd())
    file = sqlite_path(storage_url)
    if file is not None:
        base = Path(file).parent if Path(file).is_absolute() else base / Path(file).parent
    return base / CHECKPOINT_DIR


class CheckpointStore:
    """The checkpoints of one study: ``save``, ``load`` and ``drop`` by lineage root number."""

    def __init__(self, root: Path, study: str, uid: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", study)
        self.root = Path(root)
        self.folder = self.root / f"{safe}-{uid[:12]}"

    def path(self, lineage: int) -> Path:
        return self.folder / f"lineage-{int(lineage)}.ckpt"

    def save(self, lineage: int, data: bytes) -> None:
        """Replace lineage ``lineage``'s checkpoint with ``data`` (atomically)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".ckpt-", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path(lineage))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, lineage: int) -> bytes | None:
        try:
            return self.path(lineage).read_bytes()
        except FileNotFoundError:
            return None

    def drop(self, lineage: int) -> None:
        """Delete the lineage's checkpoint, and the study's folder (and the root's) once empty."""
        self.path(lineage).unlink(missing_ok=True)
        for folder in (self.folder, self.root, self.root.parent):
            try:
                folder.rmdir()
            except OSError:  # not empty, or not there: nothing more to tidy
                break

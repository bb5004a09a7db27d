"""Where a running service is found: its state file, written by ``sweeplab up``.

The state file is ``.sweeplab/service.json`` in the directory ``sweeplab up`` ran in
(beside the default stores, ``sweeplab.db`` and ``mlflow.db``), or the file that
``$SWEEPLAB_SERVICE`` names. It records what ``up`` started, so that ``down`` stops that
and nothing else, and where ``sweeplab run`` / ``status`` / ``logs`` / ``cancel`` reach the
supervisor (a Unix socket on this machine). Beside it live the service's own log
(``service.log``), the studies it knows (``studies.json``), each study's driver log
(``logs/STUDY.log``) and, for a local Ray, its authentication token (``ray_token``).

This module imports nothing heavy: the command line reads it before deciding whether
Ray is needed at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE_ENV = "SWEEPLAB_SERVICE"
"""A service state file to use instead of ``.sweeplab/service.json`` here."""
STATE_DIR = ".sweeplab"
STATE_FILE = "service.json"
NAMESPACE = "sweeplab"
"""The Ray namespace of the service's actors."""
SUPERVISOR_NAME = "supervisor"
"""The supervisor actor's name in :data:`NAMESPACE` (one service per Ray cluster)."""


@dataclass(frozen=True)
class ServiceState:
    """What ``sweeplab up`` started and where it listens (the state file's content).

    ``daemon_pid``: the background process that holds the Ray driver (and, when
    ``owns_ray``, the local Ray itself) and the MLflow UI; ``down`` stops it. ``ray_address``:
    the Ray cluster's GCS address. ``owns_ray``: ``up`` started that Ray (False: it attached
    to an existing cluster, which ``down`` leaves running). ``socket``: the supervisor's Unix
    socket. ``ui_url`` / ``ui_pid``: the MLflow UI (None with ``--no-ui`` or on a cluster).
    ``operator_uid``: the OS user who ran ``up`` (may cancel any study). ``shared``: other
    local users may submit (their studies run as the operator). ``home``: the directory
    ``up`` ran in (the supervisor's working directory).
    """

    home: str
    daemon_pid: int
    ray_address: str
    owns_ray: bool
    socket: str
    operator_uid: int
    workers: int
    frameworks: tuple[str, ...]
    shared: bool = False
    ui_url: str | None = None
    ui_pid: int | None = None
    tracking_uri: str | None = None
    started_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["frameworks"] = list(self.frameworks)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceState:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["frameworks"] = tuple(values.get("frameworks") or ())
        return cls(**values)


def state_path(cwd: str | None = None) -> Path:
    """The state file this process uses: ``$SWEEPLAB_SERVICE``, else ``.sweeplab/service.json`` in ``cwd``."""
    given = os.environ.get(SERVICE_ENV)
    if given:
        return Path(given).expanduser().resolve()
    return Path(cwd or os.getcwd()).resolve() / STATE_DIR / STATE_FILE


def read_state(path: Path) -> ServiceState | None:
    """The state at ``path``, or None when there is none (or it is not a state file)."""
    try:
        return ServiceState.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_state(path: Path, state: ServiceState) -> None:
    """Write ``state`` atomically (a reader sees the old file or the new one, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".service-", suffix=".json")
    with os.fdopen(fd, "w") as out:
        json.dump(state.to_json(), out, indent=2)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def token_file(state_file: Path) -> Path:
    """Where ``up`` keeps the Ray authentication token of the local Ray it started (mode 0600):
    each local service has a token of its own, so that ``~/.ray/auth_token`` (shared by every
    Ray of the user) is neither read nor overwritten."""
    return state_file.parent / "ray_token"


def socket_path(state_file: Path) -> str:
    """The supervisor's Unix socket for the service of ``state_file``: a short path under the
    system's temp folder (socket paths are limited to ~100 bytes), unique per state file."""
    digest = hashlib.sha256(str(state_file).encode()).hexdigest()[:12]
    return str(Path(tempfile.gettempdir()) / f"sweeplab-{digest}.sock")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

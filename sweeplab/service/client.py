"""Talking to a running service from the command line, without importing Ray.

:func:`find_service` reads the state file (:mod:`sweeplab.service.state`) and checks that
the supervisor answers on its Unix socket; :class:`ServiceClient` sends one request (a
JSON line) and reads one answer. A refused request raises :class:`ServiceError` with the
supervisor's message and exit code.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from sweeplab.core.errors import SweeplabError, UsageError
from sweeplab.service.state import ServiceState, read_state, state_path

CONNECT_TIMEOUT_S = 5.0
"""How long a client waits for the supervisor to accept a connection."""
ANSWER_TIMEOUT_S = 600.0
"""How long a client waits for an answer (``submit`` opens the study's stores; ``cancel`` waits
for the study to stop)."""


class ServiceError(SweeplabError):
    """The service refused a request, or does not answer; ``exit_code`` says which (1 or 2)."""

    def __init__(self, message: str, exit_code: int = 1, unreachable: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.unreachable = unreachable  # no answer at all (the supervisor is down or restarting)


class ServiceClient:
    """Requests to the supervisor of ``state`` (read from the state file at ``path``)."""

    def __init__(self, state: ServiceState, path: Path) -> None:
        self.state, self.path = state, path

    def call(self, op: str, **payload: Any) -> dict[str, Any]:
        """Send ``{"op": op, **payload}``; return the answer, or raise ServiceError when refused."""
        answer = self._exchange({"op": op, **payload})
        if not answer.get("ok"):
            raise ServiceError(str(answer.get("error", "the service refused the request")),
                               int(answer.get("exit_code", 1)))
        return answer

    def _exchange(self, request: dict[str, Any]) -> dict[str, Any]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT_S)
            try:
                sock.connect(self.state.socket)
            except PermissionError as exc:
                raise ServiceError(
                    f"the service of {self.path} accepts only its operator (uid {self.state.operator_uid}): it was "
                    f"started without `sweeplab up --shared` ({exc.strerror})") from exc
            except OSError as exc:
                raise ServiceError(
                    f"the service of {self.path} does not answer on {self.state.socket} ({exc.strerror or exc}). "
                    "`sweeplab down` clears what is left of it; `sweeplab up` starts it again",
                    unreachable=True) from exc
            sock.settimeout(ANSWER_TIMEOUT_S)
            sock.sendall((json.dumps(request) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            sock.close()
        if not data:
            raise ServiceError(f"the service of {self.path} closed the connection without answering "
                               "(its supervisor may have restarted; try again)", unreachable=True)
        return json.loads(data)  # type: ignore[no-any-return]


def find_service(required: bool = False) -> ServiceClient | None:
    """The running service of this directory (or ``$SWEEPLAB_SERVICE``): None when there is no
    state file, or (``required``) a UsageError saying how to start one."""
    path = state_path()
    state = read_state(path)
    if state is None:
        if required:
            raise UsageError(f"no sweeplab service runs here (no state file {path}): start one with `sweeplab up`, "
                             "or point $SWEEPLAB_SERVICE at the state file of a running one")
        return None
    return ServiceClient(state, path)

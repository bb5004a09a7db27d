"""Talking to a running service from the command line.

:func:`find_service` finds it: the state file (:mod:`sweeplab.service.state`) of this
directory or ``$SWEEPLAB_SERVICE``, whose supervisor answers on a Unix socket
(:class:`ServiceClient`, no Ray import: one JSON line each way); else, when
``$RAY_ADDRESS`` names a cluster, the supervisor actor on that cluster
(:class:`sweeplab.service.ray_client.RayServiceClient`, which joins the cluster). Both
answer :class:`ServiceConnection`'s ``call(op, **payload)``, so the commands do not care
which they have. A refused request raises :class:`ServiceError` with the supervisor's
message and exit code.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Protocol

from sweeplab.core.errors import SweeplabError, UsageError
from sweeplab.core.stores import LOCAL_RAY, RAY_ADDRESS_ENV, ray_address
from sweeplab.service.state import SERVICE_ENV, ServiceState, read_state, state_path

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


class ServiceConnection(Protocol):
    """A running service, however it was found: what ``run`` / ``status`` / ``logs`` / ``cancel`` need of it."""

    @property
    def service(self) -> str:
        """Which service answers (``--json``'s ``"service"``): its state file, or its Ray cluster's address."""

    @property
    def where(self) -> str:
        """The same, as a phrase for messages."""

    @property
    def ray_address(self) -> str:
        """The Ray cluster its studies run on."""

    @property
    def through_ray(self) -> bool:
        """Reached through ``$RAY_ADDRESS`` (the client may be on another machine than the
        supervisor: a study's stores must then be ones the cluster reaches)."""

    def call(self, op: str, **payload: Any) -> dict[str, Any]:
        """Send ``{"op": op, **payload}`` (see ``Supervisor.handle``); return the answer, or raise
        ServiceError when refused or when the service does not answer."""


def answer_or_raise(answer: dict[str, Any]) -> dict[str, Any]:
    """The supervisor's ``answer`` when it says ``ok``; else its error as a ServiceError (same message, exit code)."""
    if not answer.get("ok"):
        raise ServiceError(str(answer.get("error", "the service refused the request")),
                           int(answer.get("exit_code", 1)))
    return answer


class ServiceClient:
    """Requests to the supervisor of ``state`` (read from the state file at ``path``), over its Unix
    socket: the kernel tells the supervisor who calls (``SO_PEERCRED``)."""

    through_ray = False

    def __init__(self, state: ServiceState, path: Path) -> None:
        self.state, self.path = state, path

    @property
    def service(self) -> str:
        return str(self.path)

    @property
    def where(self) -> str:
        return f"state file {self.path}"

    @property
    def ray_address(self) -> str:
        return self.state.ray_address

    def call(self, op: str, **payload: Any) -> dict[str, Any]:
        """Send ``{"op": op, **payload}``; return the answer, or raise ServiceError when refused."""
        return answer_or_raise(self._exchange({"op": op, **payload}))

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


def cluster_address() -> str | None:
    """The Ray cluster ``$RAY_ADDRESS`` names, or None (unset, empty, or ``local``: a Ray of this process's own)."""
    address = ray_address()
    return address if address != LOCAL_RAY else None


def find_service(required: bool = False) -> ServiceConnection | None:
    """The running service: the one of this directory's state file (or ``$SWEEPLAB_SERVICE``'s); without
    a state file, the supervisor on the Ray cluster ``$RAY_ADDRESS`` names (joining it; see
    :mod:`sweeplab.service.ray_client`). None when neither is found, or (``required``) a UsageError
    saying how to start one."""
    path = state_path()
    state = read_state(path)
    if state is not None:
        return ServiceClient(state, path)
    address = cluster_address()
    if address is not None:
        from sweeplab.service.ray_client import connect

        found = connect(address)
        if found is not None:
            return found
        if required:
            raise UsageError(f"no sweeplab service runs here (no state file {path}) nor on the Ray cluster at "
                             f"{address} (${RAY_ADDRESS_ENV}): start one there with `sweeplab up --address {address}`, "
                             f"or point ${SERVICE_ENV} at the state file of a running one")
        return None
    if required:
        raise UsageError(f"no sweeplab service runs here (no state file {path}): start one with `sweeplab up`, "
                         f"or point ${SERVICE_ENV} at the state file of a running one (or ${RAY_ADDRESS_ENV} at the "
                         "Ray cluster it runs on)")
    return None

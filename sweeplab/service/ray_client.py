"""Reaching the service through Ray: the supervisor actor on the cluster ``$RAY_ADDRESS`` names.

Used when there is no state file here (and ``$SWEEPLAB_SERVICE`` names none): a client on
another machine than the service's node has no Unix socket to reach, but it can join the
cluster and call the supervisor actor (:data:`~sweeplab.service.state.SUPERVISOR_NAME` in
:data:`~sweeplab.service.state.NAMESPACE`, started by ``sweeplab up --address CLUSTER``)
with the same requests as the socket client (``Supervisor.handle(request, uid)``).

Who calls is the uid this client sends. Ray's token authentication is what admits the
client to the cluster, so here the cluster's token is the trust boundary: a holder of the
token can claim any uid (and could call the actor directly anyway). The local socket is
stricter: there the kernel says who calls (``SO_PEERCRED``).

Ray is imported only when this module's functions run.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from sweeplab.core.stores import RAY_ADDRESS_ENV
from sweeplab.service.client import ANSWER_TIMEOUT_S, ServiceError, answer_or_raise
from sweeplab.service.state import NAMESPACE, SUPERVISOR_NAME


class RayServiceClient:
    """Requests to the supervisor actor ``actor`` on the Ray cluster at ``address`` (this process has joined it)."""

    through_ray = True

    def __init__(self, address: str, actor: Any) -> None:
        self.address, self.actor = address, actor

    @property
    def service(self) -> str:
        return self.address

    @property
    def where(self) -> str:
        return f"the supervisor on the Ray cluster at {self.address} (${RAY_ADDRESS_ENV})"

    @property
    def ray_address(self) -> str:
        return self.address

    def call(self, op: str, **payload: Any) -> dict[str, Any]:
        """Send ``{"op": op, **payload}`` with this process's uid; return the answer, or raise ServiceError.

        The answer goes through JSON as on the socket, so both clients return the same values."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            answer = ray.get(self.actor.handle.remote({"op": op, **payload}, os.getuid()), timeout=ANSWER_TIMEOUT_S)
        except RayActorError as exc:  # dead, or restarting (Ray restarts it): the caller may wait it out
            raise ServiceError(f"{self.where} does not answer ({type(exc).__name__}); if it restarts, try again, "
                               f"else `sweeplab up --address {self.address}` starts it again",
                               unreachable=True) from exc
        except GetTimeoutError as exc:
            raise ServiceError(f"{self.where} did not answer within {ANSWER_TIMEOUT_S:.0f} s") from exc
        return answer_or_raise(json.loads(json.dumps(answer, default=str)))


def connect(address: str) -> RayServiceClient | None:
    """Join the Ray cluster at ``address`` (quietly, in the service's namespace) and find its supervisor;
    None when none runs there (this process leaves the cluster again: a plain run then joins it
    with its own options)."""
    import ray

    from sweeplab.core.errors import RAY_TOKEN_HINT, StorageError
    from sweeplab.search.preflight import check_ray_address

    joined = not ray.is_initialized()
    if joined:
        try:  # at once, where ray.init would retry an address that does not answer for minutes
            check_ray_address(address)
        except StorageError as exc:
            raise ServiceError(f"{exc} (sweeplab looked there for a service: ${RAY_ADDRESS_ENV} is set and no state "
                               f"file is here; unset ${RAY_ADDRESS_ENV} to run on a Ray of your own)") from exc
        try:
            ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ServiceError(
                f"cannot join the Ray cluster at {address} (${RAY_ADDRESS_ENV}) to look for a sweeplab service "
                f"there: {exc}. Check ${RAY_ADDRESS_ENV} and, {RAY_TOKEN_HINT}; or unset ${RAY_ADDRESS_ENV}") from exc
    try:
        actor = ray.get_actor(SUPERVISOR_NAME, namespace=NAMESPACE)
    except ValueError:  # no actor of that name: no service on this cluster
        if joined:
            ray.shutdown()
        return None
    return RayServiceClient(address, actor)

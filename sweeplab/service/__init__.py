"""sweeplab as a service: ``sweeplab up`` / ``down``, detached studies, several studies sharing warm workers.

``up`` starts (or attaches to) a long-lived Ray, a study supervisor (a detached Ray actor,
:mod:`sweeplab.service.supervisor`) with a pool of warm worker processes, and locally the
MLflow UI; :mod:`sweeplab.service.state` says where it is found. ``sweeplab run`` then
submits studies to it (:mod:`sweeplab.service.client`: a Unix socket, no Ray import; or,
found through ``$RAY_ADDRESS`` on another machine, :mod:`sweeplab.service.ray_client`),
which share the workers by weight (:mod:`sweeplab.service.fairshare`).
"""

from __future__ import annotations

from sweeplab.service.client import ServiceClient, ServiceConnection, ServiceError, find_service
from sweeplab.service.fairshare import FairShare, StudyShare
from sweeplab.service.state import SERVICE_ENV, ServiceState, state_path

__all__ = ["SERVICE_ENV", "FairShare", "ServiceClient", "ServiceConnection", "ServiceError", "ServiceState",
           "StudyShare", "find_service", "state_path"]

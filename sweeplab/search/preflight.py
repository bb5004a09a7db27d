"""Checks that refuse, before anything starts, what cannot work.

Each check raises :class:`~sweeplab.core.errors.StorageError` (exit 1) with a message
that names the problem and the fix. They run before any trial is dispatched:
a Ray address that does not answer, an MLflow tracking server that does not answer,
and a SQLite or local-file store used with a cluster whose workers run on other
machines (that store would live on one machine only: the MLflow UI, ``sweeplab
status`` and a driver restarted elsewhere could not see it, so resume could lose work).
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any

from sweeplab.core.errors import StorageError
from sweeplab.search.storage import is_local_url, redact


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    target = address.split("://", 1)[-1].rstrip("/")
    host, _, port = target.rpartition(":")
    if not host:
        return target, default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return target, default_port


def check_ray_address(address: str | None, timeout: float = 5.0) -> None:
    """Refuse a Ray address (``host:port`` or ``ray://host:port``) that does not accept connections."""
    if not address or address in ("auto", "local"):
        return
    host, port = _host_port(address, 10001 if address.startswith("ray://") else 6379)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise StorageError(
            f"the Ray cluster at {address!r} does not answer ({host}:{port}: {exc.strerror or exc}). "
            "Start it with `ray start --head --port=6379`, or fix --address / $RAY_ADDRESS."
        ) from exc


def check_tracking_server(uri: str, timeout: float = 10.0) -> None:
    """Refuse an http(s) MLflow tracking URI whose server does not answer ``/health``."""
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status < 500:
                return
            problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        if exc.code < 500:  # 401/403 behind auth: the server is up
            return
        problem = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise StorageError(
        f"the MLflow tracking server {redact(uri)} does not answer ({problem}). "
        "Start it (`mlflow server --host 127.0.0.1 --port 5000 ...`) or fix --tracking-uri / $MLFLOW_TRACKING_URI."
    )


def check_stores_reach_cluster(storage_url: str, tracking_uri: str, address: str | None,
                               nodes: list[dict[str, Any]] | None = None, driver_ip: str | None = None) -> None:
    """Refuse a local (SQLite / file) store when the cluster has nodes on other machines.

    ``nodes`` is ``ray.nodes()`` (alive nodes are considered) and ``driver_ip`` this
    process's node IP; both are read from Ray when omitted.
    """
    local = [(name, url) for name, url in (("Optuna storage", storage_url), ("MLflow tracking store", tracking_uri))
             if is_local_url(url)]
    if not local:
        return
    if address and address.startswith("ray://"):
        name, url = local[0]
        raise StorageError(
            f"the {name} {url} is a local file, but with a Ray Client address ({address}) the driver runs on the "
            "cluster, not here. Use --storage postgresql://USER@HOST/DB and --tracking-uri http://MLFLOW:5000."
        )
    if nodes is None or driver_ip is None:
        import ray

        nodes = ray.nodes()
        driver_ip = ray.util.get_node_ip_address()
    others = sorted({n.get("NodeManagerAddress", "") for n in nodes if n.get("Alive")} - {driver_ip})
    if others:
        name, url = local[0]
        raise StorageError(
            f"the {name} {url} is a local file on this machine, but the Ray cluster has workers on other "
            f"machines ({', '.join(others)}): the study must live where every node, the MLflow UI and a restarted "
            "driver can reach it. Use --storage postgresql://USER@HOST/DB (or $SWEEPLAB_STORAGE) and "
            "--tracking-uri http://MLFLOW_HOST:5000 (an `mlflow server` backed by PostgreSQL)."
        )

"""Checks that refuse, before anything starts, what cannot work.

Each check raises an error with a message that names the problem and the fix. They
run before any trial is dispatched. :class:`~sweeplab.core.errors.StorageError` (exit 1):
a Ray address that does not answer, an MLflow tracking server that does not answer
or a tracking SQLite file that is a folder, and a SQLite or local-file store used with
a cluster whose workers run on other machines (that store would live on one machine
only: the MLflow UI, ``sweeplab status`` and a driver restarted elsewhere could not see
it, so resume could lose work).
:class:`~sweeplab.core.errors.ResourceError` (exit 2, bad input): per-trial resources
that no node of the cluster has, which Ray would otherwise queue forever.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from sweeplab.core.errors import Problem, ResourceError, StorageError
from sweeplab.core.stores import LOCAL_RAY, SHARED_STORES_FIX, local_stores, sqlite_path
from sweeplab.search.storage import redact

if TYPE_CHECKING:
    from sweeplab.spec import Resources


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
    if not address or address in ("auto", LOCAL_RAY):
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


def check_tracking_store(uri: str, timeout: float = 10.0) -> None:
    """Refuse an MLflow tracking store that cannot work: an http(s) server that does not
    answer ``/health``, or a SQLite file that is a folder (MLflow would retry opening it
    for hours)."""
    file = sqlite_path(uri)
    if file is not None and os.path.isdir(file):
        raise StorageError(
            f"the MLflow tracking store {uri} names a folder, not a database file. "
            f"Give --tracking-uri / $MLFLOW_TRACKING_URI a file, e.g. sqlite:///{os.path.join(file, 'mlflow.db')}"
        )
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
    local = local_stores(storage_url, tracking_uri)
    if not local:
        return
    if address and address.startswith("ray://"):
        name, url = local[0]
        raise StorageError(
            f"the {name} {url} is a local file, but with a Ray Client address ({address}) the driver runs on the "
            f"cluster, not here. Use {SHARED_STORES_FIX}."
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
            f"driver can reach it. Use {SHARED_STORES_FIX}: an `mlflow server` backed by PostgreSQL."
        )


HEAD_NODE_RESOURCE = "node:__internal_head__"
"""A resource Ray gives its head node only (how the head is told apart in messages)."""


def trial_demand(resources: Resources) -> dict[str, float]:
    """What one trial asks Ray for, by Ray's resource names (``CPU``, ``GPU``, custom names); zeros left out."""
    demand = {"CPU": float(resources.cpu), "GPU": float(resources.gpu), **{k: float(v) for k, v in
                                                                         resources.custom.items()}}
    return {name: amount for name, amount in demand.items() if amount > 0}


def check_trial_resources(resources: Resources, nodes: list[dict[str, Any]] | None = None,
                          source: str = "spec") -> None:
    """Refuse per-trial ``resources`` that no alive node of the Ray cluster has.

    Ray queues a task that no node can ever run and waits for one to appear: the study
    would hang until killed. A trial needs one node holding every resource it asks for
    (a GPU share below 1 needs a node with a GPU). Raises
    :class:`~sweeplab.core.errors.ResourceError` naming each missing resource with its
    spec path and listing every node's resources. ``nodes``: ``ray.nodes()``, read from
    Ray when omitted.
    """
    if nodes is None:
        import ray

        nodes = ray.nodes()
    alive = [n for n in nodes if n.get("Alive")]
    demand = trial_demand(resources)

    def has(node: dict[str, Any], name: str) -> float:
        return float((node.get("Resources") or {}).get(name, 0.0))

    if any(all(has(node, name) >= amount - 1e-9 for name, amount in demand.items()) for node in alive):
        return
    problems = []
    for name, amount in demand.items():
        most = max((has(node, name) for node in alive), default=0.0)
        if most < amount - 1e-9:
            problems.append(_missing(name, amount, most))
    if not problems:
        wanted = ", ".join(f"{name} {amount:g}" for name, amount in demand.items())
        problems.append(Problem("resources", f"a trial needs {wanted} on one node, but no node of the Ray cluster "
                                             "has them all together; lower what the spec asks for, or add a node "
                                             "that has it all"))
    raise ResourceError(problems, source, cluster=describe_nodes(alive, demand))


def _missing(name: str, amount: float, most: float) -> Problem:
    if name == "GPU":
        has = "has a GPU" if most == 0 else f"has more than {most:g} GPUs"
        return Problem("resources.gpu", f"a trial asks for {amount:g} GPU, but no node of the Ray cluster {has}. "
                                        "Set resources.gpu to 0 to train on CPUs, or run the study on a cluster with "
                                        "a GPU node (--address / $RAY_ADDRESS; `ray start --num-gpus=N` there)")
    if name == "CPU":
        return Problem("resources.cpu", f"a trial asks for {amount:g} CPUs, but the largest node of the Ray cluster "
                                        f"has {most:g}. Lower resources.cpu to at most {most:g}, or add a node with "
                                        f"{amount:g} CPUs or more")
    has = "offers it" if most == 0 else f"has more than {most:g}"
    return Problem(f"resources.custom.{name}",
                   f"a trial asks for {amount:g} of the custom resource `{name}`, but no node of the Ray cluster "
                   f"{has}. Start a node that does (`ray start --resources='{{\"{name}\": {amount:g}}}'`), or remove "
                   f"resources.custom.{name} from the spec")


def describe_nodes(nodes: list[dict[str, Any]], demand: dict[str, float]) -> str:
    """One line per node: its address (head marked) and its total CPU, GPU and the custom
    resources ``demand`` names."""
    if not nodes:
        return "The Ray cluster has no alive node."
    lines = ["The Ray cluster's nodes:"]
    for node in nodes:
        total = node.get("Resources") or {}
        names = ["CPU", "GPU", *[n for n in demand if n not in ("CPU", "GPU")]]
        held = ", ".join(f"{name} {float(total.get(name, 0.0)):g}" for name in names)
        role = " (head)" if HEAD_NODE_RESOURCE in total else ""
        lines.append(f"  {node.get('NodeManagerAddress', '?')}{role}: {held}")
    return "\n".join(lines)

"""The service's background process (``python -m sweeplab.service.daemon CONFIG_JSON``), started by ``sweeplab up``.

It holds what must outlive the ``up`` command: the Ray driver whose job the supervisor's
trials run in (and, for a local service, the Ray instance itself, with a token of its own),
the supervisor actor, and the MLflow UI. It writes the state file once all of them are
ready, then waits. On SIGTERM (``sweeplab down``) it stops the supervisor's studies
cleanly, kills the supervisor, stops the UI, disconnects from (or, when it started it,
stops) Ray, removes the state file and exits. Its output goes to ``service.log`` beside
the state file.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sweeplab.core.stores import LOCAL_RAY
from sweeplab.service.state import NAMESPACE, SUPERVISOR_NAME, ServiceState, write_state

log = logging.getLogger("sweeplab.service")

READY_TIMEOUT_S = 600.0
"""How long the daemon waits for the supervisor to start (imports, on a loaded machine)."""


def main(argv: list[str]) -> int:
    config: dict[str, Any] = json.loads(argv[0])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state_file = Path(config["state_file"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    import ray

    from sweeplab.service.supervisor import Supervisor

    address = config.get("address")
    common: dict[str, Any] = {"namespace": NAMESPACE, "logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **common)
    else:
        # No bind address to give: Ray turns 127.0.0.1 into the machine's reachable address and its
        # gRPC ports listen on every interface, so the local Ray keeps token authentication on.
        ray.init(address=LOCAL_RAY, num_cpus=config["workers"], include_dashboard=False, **common)
    ray_address = address or ray.get_runtime_context().gcs_address
    try:
        ray.get_actor(SUPERVISOR_NAME, namespace=NAMESPACE)
    except ValueError:
        pass
    else:
        log.error("a sweeplab supervisor already runs on the Ray cluster at %s (another `sweeplab up`); "
                  "use that service (its state file), or `sweeplab down` it first", ray_address)
        return 3

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # Detached: the studies go on if this process dies; max_restarts: Ray restarts a killed
    # supervisor, which resumes its studies. On this node: its socket is on this machine.
    actor = ray.remote(Supervisor).options(  # type: ignore[attr-defined]
        name=SUPERVISOR_NAME, namespace=NAMESPACE, lifetime="detached", max_restarts=-1, max_task_retries=0,
        num_cpus=0, max_concurrency=16,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(),
                                                           soft=False),
    ).remote(config["home"], str(state_file.parent), config["socket"], config["workers"], config["frameworks"],
             config["shared"], _warm_stores(config["tracking_uri"], attached=bool(address)), local=not address)
    ui = None
    try:
        ray.get(actor.ready.remote(), timeout=READY_TIMEOUT_S)  # type: ignore[attr-defined]
        # Ready once warm: a study submitted right after `up` returns must not pay the imports.
        if not ray.get(actor.warmed.remote(READY_TIMEOUT_S), timeout=READY_TIMEOUT_S + 30):  # type: ignore[attr-defined]
            log.warning("the worker pool was not warm within %.0f s; the service starts without waiting",
                        READY_TIMEOUT_S)
        ui_url = None
        if config.get("ui_port"):
            ui_url = f"http://127.0.0.1:{config['ui_port']}"
            from sweeplab.tracking.mlflow_tracker import mlflow_ui_command

            argv, env = mlflow_ui_command(config["tracking_uri"], "127.0.0.1", config["ui_port"])
            ui = subprocess.Popen(argv, env=env, stdout=sys.stderr, stderr=sys.stderr, start_new_session=True)
        write_state(state_file, ServiceState(
            home=config["home"], daemon_pid=os.getpid(), ray_address=ray_address, owns_ray=not address,
            socket=config["socket"], operator_uid=os.getuid(), workers=config["workers"],
            frameworks=tuple(config["frameworks"]), shared=config["shared"], ui_url=ui_url,
            ui_pid=ui.pid if ui is not None else None, tracking_uri=config["tracking_uri"], started_at=time.time()))
        log.info("service up: Ray at %s, supervisor ready, UI %s", ray_address, ui_url or "off")
        while not stop.wait(1.0):
            if ui is not None and ui.poll() is not None:
                log.warning("the MLflow UI exited (code %s); the service goes on without it", ui.returncode)
                ui = None
    finally:
        _stop(actor, ui, state_file)
    return 0


def _warm_stores(tracking_uri: str, attached: bool) -> tuple[str | None, str | None]:
    """The stores studies default to (``$SWEEPLAB_STORAGE`` or the default file here, and the
    service's tracking URI), to open before the first study; on an attached cluster, whose
    studies must use shared stores, local files are left alone (None) rather than created."""
    from sweeplab.core.stores import is_local_url, resolve_storage_url

    def kept(url: str) -> str | None:
        return None if attached and is_local_url(url) else url

    return kept(resolve_storage_url()), kept(tracking_uri)


def _stop(actor: Any, ui: subprocess.Popen[bytes] | None, state_file: Path) -> None:
    import ray

    try:
        stopped = ray.get(actor.shutdown.remote(), timeout=300)
        if stopped:
            log.info("stopped studies (resume each with `sweeplab run SPEC`): %s", ", ".join(stopped))
    except Exception as exc:
        log.warning("the supervisor did not stop its studies cleanly: %s", exc)
    try:
        ray.kill(actor, no_restart=True)
    except Exception as exc:
        log.warning("could not kill the supervisor: %s", exc)
    if ui is not None:
        ui.terminate()
        try:
            ui.wait(30)
        except subprocess.TimeoutExpired:
            ui.kill()
    state_file.unlink(missing_ok=True)
    ray.shutdown()
    log.info("service down")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The service's commands: ``up``, ``down``, and ``run`` / ``status`` / ``logs`` / ``cancel`` through a service.

Each function takes the command's parsed flags and an ``emit(args, payload, text)`` that
prints the result (one JSON object with ``--json``), and returns the exit code. They talk
to the service through a :class:`~sweeplab.service.client.ServiceConnection` (a Unix socket
found by the state file, with no Ray import; or, found by ``$RAY_ADDRESS``, the supervisor
actor itself).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweeplab.core.errors import SweeplabError, UsageError
from sweeplab.core.stores import SHARED_STORES_FIX, local_stores, ray_address
from sweeplab.service.client import ServiceClient, ServiceConnection, ServiceError, find_service
from sweeplab.service.state import pid_alive, read_state, socket_path, state_path, token_file

Emit = Callable[[argparse.Namespace, dict[str, Any], str], None]

UP_TIMEOUT_S = 600.0
"""How long ``up`` waits for the service to be ready (Ray's start and the supervisor's imports)."""
DOWN_TIMEOUT_S = 400.0
"""How long ``down`` waits for the service to stop (running studies are stopped cleanly first)."""
DEFAULT_UI_PORT = 5000
WATCH_INTERVAL_S = 0.5
RESTART_WAIT_S = 300.0
"""How long following a study waits for a supervisor that stopped answering (Ray restarts it)."""
ACTIVE = ("queued", "running")


# ---------------------------------------------------------------------------- up / down
def up(args: argparse.Namespace, emit: Emit) -> int:
    """Start the service here (or report the one already running); see README "Service"."""
    from sweeplab.registry.names import MLP_FRAMEWORKS
    from sweeplab.service.pool import default_frameworks
    from sweeplab.tracking.mlflow_tracker import resolve_tracking_uri

    path = state_path()
    running = _running_state(path)
    if running is not None:
        emit(args, {**running.to_json(), "state_file": str(path), "already_running": True},
             f"a sweeplab service already runs here (state file {path}, Ray at {running.ray_address}, "
             f"supervisor pid {running.daemon_pid}); nothing to do. `sweeplab down` stops it.")
        return 0
    frameworks = default_frameworks() if args.frameworks is None else [
        f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = [f for f in frameworks if f not in MLP_FRAMEWORKS]
    if unknown:
        raise UsageError(f"--frameworks: {', '.join(unknown)} is not a framework the pool can import ahead; use a "
                         f"comma-separated list of {', '.join(MLP_FRAMEWORKS)} (or '' for none)")
    address = ray_address(args.address)
    workers = args.workers or os.cpu_count() or 1
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    ui_port = None if args.no_ui or address else _free_ui_port(args.ui_port)
    home = os.getcwd()
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"state_file": str(path), "home": home, "address": address, "workers": workers,
              "frameworks": frameworks, "shared": args.shared, "ui_port": ui_port, "tracking_uri": tracking_uri,
              "socket": socket_path(path)}
    log_path = path.parent / "service.log"
    env = dict(os.environ)
    if address is None:  # a Ray of its own, with a token of its own (see ray_token_file)
        env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": _new_token(token_file(path))})
    with open(log_path, "ab") as log:
        daemon = subprocess.Popen([sys.executable, "-m", "sweeplab.service.daemon", json.dumps(config)], cwd=home,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env)
    sys.stderr.write(f"starting the sweeplab service ({'attaching to Ray at ' + address if address else 'local Ray'}"
                     f", {workers} workers, frameworks {', '.join(frameworks) or 'none'})...\n")
    deadline = time.time() + UP_TIMEOUT_S
    while True:
        state = read_state(path)
        if state is not None and state.daemon_pid == daemon.pid:
            break
        code = daemon.poll()
        if code is not None or time.time() > deadline:
            if code is None:
                daemon.terminate()
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise SweeplabError(f"the service did not start (exit code {code}); the end of {log_path}:\n  "
                                + "\n  ".join(tail))
        time.sleep(0.2)
    lines = [f"sweeplab service up (state file {path})",
             f"  Ray          {state.ray_address} "
             f"({'started here, token authentication on' if state.owns_ray else 'attached: it stays up at down'})",
             f"  supervisor   {workers} warm workers, frameworks {', '.join(frameworks) or 'none'}; "
             f"socket {state.socket} ({'every local user' if state.shared else 'you only'})",
             f"  MLflow UI    {state.ui_url or 'off'}",
             f"  log          {log_path}",
             *([f"  Ray token    {token_file(path)} (RAY_AUTH_TOKEN=$(cat it) for a driver of your own)"]
               if state.owns_ray else []),
             "`sweeplab run SPEC` now runs on it (`--detach` to walk away); `sweeplab status` lists its studies; "
             "`sweeplab down` stops it."]
    emit(args, {**state.to_json(), "state_file": str(path), "already_running": False}, "\n".join(lines))
    return 0


def down(args: argparse.Namespace, emit: Emit) -> int:
    """Stop what ``up`` started here, and nothing else."""
    path = state_path()
    state = read_state(path)
    if state is None:
        raise UsageError(f"no sweeplab service runs here (no state file {path}); nothing to stop")
    stopped = []
    if pid_alive(state.daemon_pid):
        os.kill(state.daemon_pid, signal.SIGTERM)
        deadline = time.time() + DOWN_TIMEOUT_S
        while pid_alive(state.daemon_pid) and time.time() < deadline:
            time.sleep(0.2)
        if pid_alive(state.daemon_pid):
            raise SweeplabError(f"the service (pid {state.daemon_pid}) did not stop within {DOWN_TIMEOUT_S:.0f} s; "
                                f"see {path.parent / 'service.log'}")
        stopped = ["the supervisor and its studies (stopped cleanly; `sweeplab run SPEC` resumes one)",
                   "the local Ray" if state.owns_ray else f"its actors on the Ray cluster at {state.ray_address} "
                   "(the cluster stays up)"]
        if state.ui_url:
            stopped.append(f"the MLflow UI at {state.ui_url}")
    else:
        stopped = [f"nothing: its process {state.daemon_pid} had already exited; its state file is removed"]
    path.unlink(missing_ok=True)
    emit(args, {"state_file": str(path), "stopped": stopped},
             "sweeplab service down; stopped " + "; ".join(stopped))
    return 0


def _new_token(path: Path) -> str:
    """A fresh Ray authentication token, written to ``path`` readable by its owner only."""
    token = secrets.token_hex(24)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token)
    return token


def _running_state(path: Any) -> Any:
    """The state at ``path`` when its service is alive and answers; a stale file is removed."""
    state = read_state(path)
    if state is None:
        return None
    if pid_alive(state.daemon_pid):
        try:
            ServiceClient(state, path).call("ping")
            return state
        except ServiceError as exc:
            raise SweeplabError(f"a sweeplab service process ({state.daemon_pid}) runs here but does not answer: "
                                f"{exc}. Run `sweeplab down`, then `sweeplab up`") from exc
    sys.stderr.write(f"removing the stale state file {path} (its service process {state.daemon_pid} is gone)\n")
    path.unlink(missing_ok=True)
    return None


def _free_ui_port(wanted: int | None) -> int:
    """``wanted`` (default 5000) when free on 127.0.0.1; an explicit port in use is an error,
    the default in use gives way to a free port."""
    port = wanted or DEFAULT_UI_PORT
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return port
        except OSError:
            if wanted:
                raise UsageError(f"--ui-port {wanted} is in use on 127.0.0.1; pick another port, or --no-ui") from None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------------- studies
def submit(args: argparse.Namespace, client: ServiceConnection, emit: Emit, resume_command: str, speedups: bool) -> int:
    """``sweeplab run`` through the service: check the spec here (exit 2 on a bad one), submit it,
    then return at once (``--detach``) or follow it to its summary."""
    from sweeplab.api import resolve_spec
    from sweeplab.core.stores import resolve_storage_url
    from sweeplab.tracking.mlflow_tracker import resolve_tracking_uri

    overrides = {k: v for k, v in (("study", args.study), ("trials", args.trials), ("workers", args.workers),
                                   ("timeout", args.timeout)) if v is not None}
    spec = resolve_spec(args.spec, None, overrides)
    storage, tracking_uri = resolve_storage_url(args.storage), resolve_tracking_uri(args.tracking_uri)
    if client.through_ray:
        refuse_local_stores(storage, tracking_uri, client)
    answer = client.call("submit", spec=spec.to_dict(), source=spec.source, fork=args.fork,
                         storage=storage, tracking_uri=tracking_uri,
                         fail_fast=args.fail_fast, log_model=not args.no_model,
                         allow_local_stores=args.allow_local_stores, resume_command=resume_command, speedups=speedups,
                         priority=args.priority)
    name = answer["study"]
    if args.detach:
        watch = f"sweeplab status {name} --watch"
        emit(args, {"study": name, "state": answer["state"], "service": client.service, "watch": watch,
                    "logs": f"sweeplab logs {name}", "cancel": f"sweeplab cancel {name}"},
             f"study {name} accepted by the service ({answer['trials']} trials, priority {answer['priority']:g}); "
             f"it runs on without this terminal.\n  follow it:  {watch}\n  its log:    sweeplab logs {name}\n"
             f"  stop it:    sweeplab cancel {name}")
        return 0
    return _follow_to_end(args, client, name, emit, progress=not args.no_progress and not args.json)


def refuse_local_stores(storage: str, tracking_uri: str, client: ServiceConnection) -> None:
    """A study sent to a service found through ``$RAY_ADDRESS`` runs on that cluster, maybe on
    another machine than this one: refuse (exit 2) stores that are files here (SQLite, paths)."""
    local = [f"the {what} {url}" for what, url in local_stores(storage, tracking_uri)]
    if local:
        raise UsageError(
            f"{' and '.join(local)} {'is a local file' if len(local) == 1 else 'are local files'}, but this study "
            f"goes to {client.where}, which runs it on the cluster, maybe on another machine. Give it stores the "
            f"cluster reaches: {SHARED_STORES_FIX}; or run it in this process with --no-service")


def watch(args: argparse.Namespace, client: ServiceConnection, emit: Emit) -> int:
    """``sweeplab status STUDY --watch``: a progress bar until the study ends, then its status."""
    return _follow_to_end(args, client, args.study, emit, progress=not args.json)


def _follow_to_end(args: argparse.Namespace, client: ServiceConnection, name: str, emit: Emit, progress: bool) -> int:
    try:
        view = follow(client, name, progress)
    except KeyboardInterrupt:
        sys.stderr.write(f"\nstopped following; study {name} runs on in the service "
                         f"(`sweeplab status {name} --watch` follows it again, `sweeplab cancel {name}` stops it)\n")
        return 130
    state = view["state"]
    if state == "failed":
        raise ServiceError(f"study {name} failed: {view['error']}", int(view.get("exit_code") or 1))
    if state in ("cancelled", "stopped"):
        sys.stderr.write(f"study {name} was {state} after {view['done']} of {view['trials']} trials; nothing is "
                         f"lost: `sweeplab run SPEC` resumes it (trials stopped in flight are retried)\n")
        return 130
    from sweeplab.api import load, summary_text

    if getattr(args, "json", False) and view.get("summary"):
        emit(args, view["summary"], "")
    else:
        summary = load(name, view["storage"]).summary
        emit(args, view.get("summary") or summary.to_json(), summary_text(summary))
    return 0


def follow(client: ServiceConnection, name: str, progress: bool) -> dict[str, Any]:
    """Follow the study until it is no longer queued or running (a bar on stderr with ``progress``); its
    last view. Each request after the first is answered when the study ends (or, with ``progress``, when
    it finishes a trial), or after ``WATCH_INTERVAL_S``."""
    bar = None
    shown = 0
    last_post: dict[str, Any] = {}
    try:
        lost_since = None
        wait: dict[str, Any] = {}  # the first view comes at once; later ones when the study has moved on
        while True:
            try:
                view = client.call("status", study=name, **wait)
                lost_since = None
                wait = {"wait_s": WATCH_INTERVAL_S, **({"seen_done": view["done"]} if progress else {})}
            except ServiceError as exc:  # the supervisor restarting (Ray restarts it) is waited out
                lost_since = lost_since or time.time()
                if not exc.unreachable or time.time() - lost_since > RESTART_WAIT_S:
                    raise
                time.sleep(1.0)
                continue
            if progress:
                if bar is None:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=view["trials"], initial=view["done"], desc=name, unit="trial", file=sys.stderr,
                               dynamic_ncols=True, leave=True)
                    shown = view["done"]
                if view["done"] > shown:
                    bar.update(view["done"] - shown)
                    shown = view["done"]
                best = view.get("best")
                post = {"best": f"{best:.4g}" if isinstance(best, float) else str(best), "running": view["in_flight"]}
                if post != last_post:
                    bar.set_postfix(post, refresh=True)
                    last_post = post
            if view["state"] not in ACTIVE:
                return view
            if not view.get("waited"):  # a supervisor of an earlier version answers at once
                time.sleep(WATCH_INTERVAL_S)
    finally:
        if bar is not None:
            bar.close()


def status_list(args: argparse.Namespace, client: ServiceConnection, emit: Emit) -> int:
    """``sweeplab status`` without a study: every study the service knows."""
    answer = client.call("list")
    studies = answer["studies"]
    rows = [f"{'STUDY':<24} {'STATE':<10} {'PROGRESS':<10} {'PRIORITY':>8} {'RUNNING':>7}  {'OWNER':<10} BEST"]
    for s in studies:
        best = "-" if s["best"] is None else f"{s['best']:.4g}"
        rows.append(f"{s['study']:<24} {s['state']:<10} {str(s['done']) + '/' + str(s['trials']):<10} "
                    f"{s['priority']:>8g} {s['in_flight']:>7}  {s['owner']:<10} {best}")
    text = "\n".join(rows) if studies else "the service runs no study yet (`sweeplab run SPEC --detach` submits one)"
    emit(args, {"studies": studies, "workers": answer["workers"], "service": client.service},
         f"{text}\n({answer['workers']} workers; {client.where})")
    return 0


def logs(args: argparse.Namespace, emit: Emit) -> int:
    """``sweeplab logs STUDY``: the study's driver log in the service, failed trials' reasons included."""
    client = find_service(required=True)
    assert client is not None
    text = client.call("logs", study=args.study)["text"]
    emit(args, {"study": args.study, "log": text}, text or f"(study {args.study} has logged nothing yet)")
    return 0


def cancel(args: argparse.Namespace, emit: Emit) -> int:
    """``sweeplab cancel STUDY``: stop it cleanly; only its owner or the operator may."""
    client = find_service(required=True)
    assert client is not None
    view = client.call("cancel", study=args.study)
    if view["state"] == "cancelled":
        text = (f"study {args.study} cancelled after {view['done']} of {view['trials']} trials; trials in flight "
                f"were failed as lost and are retried when it resumes (`sweeplab run SPEC`)")
    else:
        text = f"study {args.study} is {view['state']}: nothing to cancel"
    emit(args, view, text)
    return 0

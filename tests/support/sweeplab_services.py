"""Real services for cluster tests: PostgreSQL databases, an MLflow server, a Ray cluster.

Everything runs on this machine's loopback addresses. A two-node Ray cluster uses
127.0.0.10 (head) and 127.0.0.11 (worker), so the nodes have distinct addresses
as on two machines.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sweeplab.tracking.mlflow_tracker import UI_ENV

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:
        return False


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL does not answer, or fail it when
    ``SWEEPLAB_REQUIRE_SERVICES`` is set (CI sets it: there a missing service is a failure)."""
    import pytest

    if postgres_available():
        return
    if os.environ.get("SWEEPLAB_REQUIRE_SERVICES"):
        pytest.fail("PostgreSQL is required (SWEEPLAB_REQUIRE_SERVICES is set) but 127.0.0.1:5432 does not answer")
    pytest.skip("PostgreSQL on 127.0.0.1:5432 is not reachable (set SWEEPLAB_REQUIRE_SERVICES to fail instead)")


def create_database(prefix: str, template: str | None = None) -> str:
    """Create a fresh database and return its SQLAlchemy URL; ``template``: the URL of a database
    (with no open connections) to copy, e.g. one that already holds Optuna's schema."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


class MlflowServer:
    """`mlflow server` on PostgreSQL with a served artifact store, bound to 127.0.0.1."""

    def __init__(self, backend_url: str, artifacts: Path, log: Path) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.artifacts = artifacts
        self._log = open(log, "w")
        # without MLflow's job runners (seven processes, GenAI features sweeplab does not use), as
        # the UI sweeplab starts itself runs (sweeplab.tracking.mlflow_tracker.UI_ENV)
        self.env = {**os.environ, **UI_ENV}
        cmd = [str(BIN / "mlflow"), "server", "--backend-store-uri", backend_url, "--serve-artifacts",
               "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", "1"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait(self, timeout: float = 180.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}; see {self._log.name}")
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"mlflow server did not answer within {timeout}s; see {self._log.name}")

    def stop(self) -> None:
        _stop(self.proc)
        self._log.close()

    def start_again(self) -> None:
        """Restart on the same port (for outage tests)."""
        cmd = self.proc.args
        self._log = open(self._log.name, "a")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)


def _command_lines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return lines


def free_ip_base(low: int = 40, high: int = 240, width: int = 4) -> int:
    """A last octet ``b`` such that no running process names 127.0.0.b .. 127.0.0.(b+width-1).

    :meth:`RayCluster.kill_node` kills every process that names its node's address, so a
    cluster that kills nodes while other clusters may run on this machine (other tests,
    other people's sessions on 127.0.0.10/11) must not share their addresses.
    """
    import random
    import re

    text = "\n".join(_command_lines())
    used = {int(m) for m in re.findall(r"(?<![\d.])127\.0\.0\.(\d{1,3})(?!\d)", text)}
    bases = list(range(low, high - width, width))
    random.SystemRandom().shuffle(bases)
    for base in bases:
        if not used & set(range(base, base + width)):
            return base
    raise RuntimeError(f"no free block of {width} loopback addresses in 127.0.0.{low}-{high}")


class RayCluster:
    """A Ray head on 127.0.0.10 and worker nodes on 127.0.0.11, 127.0.0.12, ... (`ray start`).

    Token authentication is on (Ray's default for clusters): :attr:`env` carries the
    token every client process needs. ``ip_base`` moves the head to 127.0.0.<ip_base> and
    worker ``i`` to 127.0.0.<ip_base + i> (see :func:`free_ip_base`); ``head_args`` are
    extra ``ray start --head`` flags.
    """

    def __init__(self, tmp: Path, head_cpus: int = 1, ip_base: int = 10, head_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.ip_base = ip_base
        self.head_ip = f"127.0.0.{ip_base}"
        self.address = f"{self.head_ip}:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                    "RAY_DISABLE_USAGE_STATS": "1"}
        self.env.pop("RAY_ADDRESS", None)
        self.tmp = tmp
        self.nodes: dict[str, subprocess.Popen] = {}
        self._start("head", ["--head", f"--node-ip-address={self.head_ip}", f"--port={self.port}",
                             f"--num-cpus={head_cpus}", "--include-dashboard=false", *head_args])

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.tmp / f"ray-{name}.log", "w")
        # On SIGTERM a node first asks the GCS to drain it (for Ray Serve) and waits up to
        # RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S (30 s) for that; :meth:`stop_node` signals the
        # node's whole process group, the head's GCS included, so the head waited out the
        # grace of _stop (5 s) and was SIGKILLed. 0: the node shuts its processes down at once.
        env = {**self.env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
        self.nodes[name] = subprocess.Popen([str(BIN / "ray"), "start", *args, "--disable-usage-stats", "--block"],
                                            env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def worker_ip(self, index: int) -> str:
        return f"127.0.0.{self.ip_base + index}"

    def add_worker(self, index: int = 1, cpus: int = 1) -> str:
        ip = self.worker_ip(index)
        self._start(f"worker{index}", [f"--address={self.address}", f"--node-ip-address={ip}",
                                       f"--num-cpus={cpus}"])
        return ip

    def wait_nodes(self, count: int, timeout: float = 120.0) -> None:
        """Return once exactly ``count`` nodes are alive.

        One client process joins the cluster and polls ``ray.nodes()`` (a process that
        imports Ray and joins costs seconds of CPU, too much to pay for every look); a
        client that cannot join yet (the head still starting) is started again.
        """
        code = ("import ray,sys,time\n"
                "count, deadline = int(sys.argv[2]), float(sys.argv[3])\n"
                "ray.init(address=sys.argv[1], logging_level='ERROR')\n"
                "while True:\n"
                "    alive = sum(1 for n in ray.nodes() if n['Alive'])\n"
                "    if alive == count or time.time() > deadline:\n"
                "        break\n"
                "    time.sleep(0.25)\n"
                "print(alive)\n")
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                out = subprocess.run([sys.executable, "-c", code, self.address, str(count), str(deadline)],
                                     env=self.env, capture_output=True, text=True,
                                     timeout=max(deadline - time.time(), 0.0) + 60)
            except subprocess.TimeoutExpired:
                break
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
            if out.returncode == 0:
                break  # the client saw the cluster until the deadline, never with `count` nodes
            time.sleep(1)
        raise RuntimeError(f"Ray cluster did not reach {count} nodes in {timeout}s")

    def stop_node(self, name: str) -> None:
        _stop(self.nodes.pop(name), grace=5.0)

    def kill_node(self, name: str) -> None:
        """Lose a node abruptly (SIGKILL to all its processes), as when a machine dies.

        Ray starts task workers in their own process groups, so they are found by the
        node's address on their command line as well as through the node's group.
        """
        proc = self.nodes.pop(name)
        ip = self.worker_ip(int(name.removeprefix("worker")))
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f"={ip} " in cmdline + " " or f"--node-ip-address={ip}" in cmdline:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        proc.wait(10)

    def stop(self) -> None:
        for name in list(self.nodes)[::-1]:
            self.stop_node(name)
        current = Path("/tmp/ray/ray_current_cluster")
        if current.exists() and self.address in current.read_text():
            current.unlink()


def sweeplab_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sweeplab.cli", *args]


def which(name: str) -> str | None:
    return shutil.which(name)

"""How trials reach their study's coordinator: a Ray actor, or a coordinator in the driver.

A trial talks to the one writer of its study for three things: each epoch's report (and
the pruning decision back), saving and loading its checkpoint. Where the coordinator is a
Ray actor (a Ray the driver joined, which may span several machines), the trial calls the
actor. Where the driver started a local Ray itself, every worker runs on the driver's
machine, so the coordinator stays in the driver process (no third Python process to start
before the first trial) and workers reach it through a :class:`CoordinatorServer`: a TCP
listener on 127.0.0.1 whose connections must prove they hold the study's random key
(``multiprocessing.connection``'s HMAC challenge, before anything is read from them).

The worker side is one interface, :class:`CoordinatorChannel` (``call`` waits for the
answer, ``send`` does not, ``flush`` waits for every answer not yet read), built by
:func:`open_channel` from what the trial was given: an actor handle or a
:class:`CoordinatorLink`.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from dataclasses import dataclass, field
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from typing import Any, Protocol

from sweeplab.core.errors import SweeplabError

log = logging.getLogger("sweeplab.search")

WORKER_METHODS = ("report", "report_queued", "save_checkpoint", "load_checkpoint")
"""The coordinator's methods a trial may call (a server answers nothing else)."""


class CoordinatorUnreachable(SweeplabError):
    """A trial could not reach its study's coordinator, or the coordinator failed its call."""


class CoordinatorChannel(Protocol):
    """A trial's way to its coordinator (see the module docstring)."""

    def call(self, method: str, *args: Any) -> Any: ...
    def send(self, method: str, *args: Any) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class ActorChannel:
    """The coordinator is a Ray actor: ``send`` keeps the reference, ``flush`` waits for them all."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor
        self._unanswered: list[Any] = []

    def call(self, method: str, *args: Any) -> Any:
        import ray

        return ray.get(getattr(self._actor, method).remote(*args))

    def send(self, method: str, *args: Any) -> None:
        self._unanswered.append(getattr(self._actor, method).remote(*args))

    def flush(self) -> None:
        if self._unanswered:
            import ray

            refs, self._unanswered = self._unanswered, []
            ray.get(refs)

    def close(self) -> None:
        """Nothing to close: the actor belongs to the driver."""


@dataclass(frozen=True)
class CoordinatorLink:
    """Where a coordinator in the driver listens, and the key its connections must hold.

    Sent to each trial with its task (it is small and picklable); :meth:`connect` is
    called on the worker, on first use.
    """

    host: str
    port: int
    authkey: bytes = field(repr=False)

    def connect(self) -> LinkChannel:
        return LinkChannel(self)


def _send_at_once(conn: Connection) -> None:
    """Turn Nagle's algorithm off on ``conn`` (TCP_NODELAY): with it, a small message written
    right after another waits for the peer's delayed acknowledgement, 40 ms on Linux, which
    a trial's first report and its answers paid."""
    try:
        with socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:  # only latency: the connection works without it
        log.debug("could not set TCP_NODELAY: %s", exc)


_idle: dict[CoordinatorLink, Connection] = {}
"""This process's idle connection to a server, kept by the trial that ended for the next one:
opening one (TCP, both HMAC challenges, a server thread) took longer than a short trial's
reports. At most one entry: a worker process runs one trial at a time."""
_idle_lock = threading.Lock()


def _take_idle(link: CoordinatorLink) -> Connection | None:
    with _idle_lock:
        conn = _idle.pop(link, None)
    if conn is None:
        return None
    try:
        if not conn.poll(0):  # nothing is unanswered on it: readable means the server closed it
            return conn
    except OSError:
        pass
    conn.close()
    return None


def _keep_idle(link: CoordinatorLink, conn: Connection) -> None:
    with _idle_lock:
        others = [c for c in _idle.values() if c is not conn]  # another study's server, or a second trial's
        _idle.clear()
        _idle[link] = conn
    for other in others:
        other.close()


class LinkChannel:
    """One trial's connection to a :class:`CoordinatorServer`, taken on first use (the
    process's idle one to that server, else a new one) and handed on by :meth:`close`.

    Answers come back in the order of the calls, so ``send`` only counts what it did not
    read, and the next ``call`` or ``flush`` reads those answers first. Safe to use from
    several threads of one trial (one lock); after :meth:`close` every call raises
    CoordinatorUnreachable (the trial has ended).
    """

    def __init__(self, link: CoordinatorLink) -> None:
        self._link = link
        self._conn: Connection | None = None
        self._pending = 0
        self._closed = False
        self._lock = threading.Lock()

    def _connection(self) -> Connection:
        if self._closed:
            raise CoordinatorUnreachable("this trial's connection to the coordinator is closed: the trial has ended")
        if self._conn is None:
            self._conn = _take_idle(self._link)
        if self._conn is None:
            try:
                self._conn = Client((self._link.host, self._link.port), authkey=self._link.authkey)
                _send_at_once(self._conn)
            except AuthenticationError as exc:
                raise CoordinatorUnreachable(
                    f"the study's coordinator at {self._link.host}:{self._link.port} refused this trial's key "
                    f"({exc}): the link belongs to another study or driver"
                ) from exc
            except (OSError, EOFError) as exc:
                raise CoordinatorUnreachable(
                    f"cannot reach the study's coordinator at {self._link.host}:{self._link.port} ({exc}); "
                    "the driver that runs the study has probably stopped"
                ) from exc
        return self._conn

    def _answer(self, conn: Connection) -> Any:
        try:
            ok, value = conn.recv()
        except (OSError, EOFError) as exc:
            raise CoordinatorUnreachable(f"the study's coordinator closed the connection ({exc})") from exc
        if not ok:
            raise CoordinatorUnreachable(f"the study's coordinator failed: {value}")
        return value

    def _drain(self, conn: Connection) -> None:
        while self._pending:
            self._pending -= 1
            self._answer(conn)

    def call(self, method: str, *args: Any) -> Any:
        with self._lock:
            conn = self._connection()
            self._drain(conn)
            conn.send((method, args))
            return self._answer(conn)

    def send(self, method: str, *args: Any) -> None:
        with self._lock:
            conn = self._connection()
            conn.send((method, args))
            self._pending += 1
            # Read the answers already here: a trial that reports every step must not fill the
            # socket's buffers with unread answers (the server would then stop reading, and so block us).
            while self._pending and conn.poll(0):
                self._pending -= 1
                self._answer(conn)

    def flush(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._drain(self._conn)

    def close(self) -> None:
        """End the trial's use: a connection with every answer read is kept for the next trial
        of this process; one with answers unread (a flush that failed) is closed."""
        with self._lock:
            conn, self._conn, self._closed = self._conn, None, True
            if conn is None:
                return
            if self._pending or conn.closed:
                conn.close()
            else:
                _keep_idle(self._link, conn)


def open_channel(coordinator: Any) -> CoordinatorChannel | None:
    """The channel to ``coordinator`` when it is elsewhere: a :class:`CoordinatorLink` (the
    coordinator is in the driver) or a Ray actor handle; None for a coordinator object of
    this process, or None (the caller calls it directly, or keeps nothing)."""
    if isinstance(coordinator, CoordinatorLink):
        return coordinator.connect()
    if hasattr(getattr(coordinator, "report", None), "remote"):
        return ActorChannel(coordinator)
    return None


class CoordinatorServer:
    """Serves :data:`WORKER_METHODS` of a coordinator in this process to trials on this machine.

    Listens on 127.0.0.1 on a free port, with a fresh random key per study; each accepted
    connection (one per worker process: its trials take it in turn) is served by its own
    thread, calls in order. An exception
    of the coordinator goes back to the trial as its message (the trial fails with it, as
    it would with an actor). :meth:`close` stops accepting and closes every connection.
    """

    def __init__(self, coordinator: Any, host: str = "127.0.0.1") -> None:
        self._coordinator = coordinator
        self._authkey = secrets.token_bytes(32)
        self._listener = Listener((host, 0), family="AF_INET", authkey=self._authkey)
        bound_host, port = self._listener.address
        self.link = CoordinatorLink(str(bound_host), int(port), self._authkey)
        self._closed = threading.Event()
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="sweeplab-coordinator-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn = self._listener.accept()  # the key's challenge happens here, before any read
            except Exception as exc:  # a wrong key, a peer gone mid-handshake, or close()
                if self._closed.is_set():
                    return
                log.debug("coordinator server: refused a connection: %s", exc)
                continue
            _send_at_once(conn)
            with self._lock:
                if self._closed.is_set():
                    conn.close()
                    return
                self._connections.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name="sweeplab-coordinator-conn", daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        try:
            while True:
                try:
                    method, args = conn.recv()
                except (OSError, EOFError):
                    return
                if method not in WORKER_METHODS:
                    answer: tuple[bool, Any] = (False, f"unknown coordinator method {method!r}")
                else:
                    try:
                        answer = (True, getattr(self._coordinator, method)(*args))
                    except Exception as exc:
                        answer = (False, f"{type(exc).__name__}: {exc}")
                try:
                    conn.send(answer)
                except OSError:
                    return
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def close(self) -> None:
        """Stop serving: no new connection is accepted, open ones are closed."""
        if self._closed.is_set():
            return
        self._closed.set()
        # accept() does not return when its socket is closed under it: wake it with a connection.
        try:
            with socket.create_connection((self.link.host, self.link.port), timeout=1.0):
                pass
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            connections, self._connections = set(self._connections), set()
        for conn in connections:
            # shutdown, not close: it wakes the thread blocked reading it, which then closes it
            try:
                with socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=2.0)

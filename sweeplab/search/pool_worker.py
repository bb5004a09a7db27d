"""One worker process of a :class:`~sweeplab.search.processes.WorkerPool` (``python -m``).

Started by the pool with one end of a private socket pair as its only way to the driver
(``python -m sweeplab.search.pool_worker FD FRAMEWORK CALLABLE``). It imports the
objective's framework at once (while the driver still opens the study), then serves, one
at a time and in order:

- ``("setup", sys_path, blob)``: ``(execute_trial's arguments after the ticket, the study's
  function or None)``, cloudpickled (a function of
  the driver's ``__main__``, a notebook's, travels by value); ``sys_path``: the driver's
  import path, added first so that what the blob refers to by name imports here too;
- ``("trial", ticket)``: runs :func:`~sweeplab.search.worker.execute_trial`, answers
  ``("outcome", TrialOutcome)``;
- ``("call", blob)``: runs a cloudpickled ``(fn, args, kwargs)`` (the best trial's re-fit),
  answers ``("result", True, value)`` or ``("result", False, "Type: message")``;
- ``("stop",)``, or the driver's end closing: exits at once (``os._exit``).

The worker is in a session of its own (the terminal's Ctrl-C is the driver's to handle:
it cancels the trials), and exits by itself when its driver dies (its parent changes).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

PARENT_POLL_S = 0.5


def _exit_with_parent(parent: int) -> None:
    """Exit as soon as the driver that started this worker is gone (a SIGKILLed driver cannot say so)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="sweeplab-parent-watch", daemon=True).start()


def serve(conn: Connection, warm: tuple[str, str | None] | None) -> None:
    """Warm up, then serve the driver's messages until it says stop or goes away."""
    import cloudpickle

    from sweeplab.search.worker import execute_trial, warm_worker

    if warm is not None:
        warm_worker(*warm)
    setup: tuple[Any, ...] | None = None
    user_fn = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "stop":
            return
        if kind == "setup":
            for entry in message[1]:
                if entry not in sys.path:
                    sys.path.append(entry)
            setup, user_fn = cloudpickle.loads(message[2])
        elif kind == "trial":
            if setup is None:
                raise RuntimeError("a trial arrived before the study's setup")
            conn.send(("outcome", execute_trial(message[1], *setup, user_fn=user_fn)))
        elif kind == "call":
            try:
                fn, args, kwargs = cloudpickle.loads(message[1])
                conn.send(("result", True, fn(*args, **kwargs)))
            except Exception as exc:
                conn.send(("result", False, f"{type(exc).__name__}: {exc}"))


def main(argv: list[str]) -> None:
    fd, framework, callable_path = int(argv[0]), argv[1], argv[2]
    _exit_with_parent(os.getppid())
    warm = (framework, callable_path or None) if framework else None
    serve(Connection(fd), warm)
    # Nothing of a worker's needs finalizing (its trials' results went back with them), and the
    # interpreter's own shutdown with torch or TensorFlow loaded takes a second the driver waits for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])

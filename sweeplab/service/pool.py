"""The service's warm pool: worker processes that have imported what trials need.

Ray reuses a job's worker processes from task to task, so the supervisor runs one
:func:`warm_pool_worker` task per pool slot at start: each process imports the
frameworks (torch, TensorFlow) and the trial code once, and every later
trial of every study the service runs starts in a process that has them.
"""

from __future__ import annotations

import importlib.util
import os


def default_frameworks() -> list[str]:
    """What a pool imports when ``up --frameworks`` is not given: torch when it is installed
    (the default framework of specs), else nothing."""
    return ["torch"] if importlib.util.find_spec("torch") is not None else []


def warm_pool_worker(frameworks: list[str]) -> int:
    """Import each of ``frameworks``' objective (and warm it up) in this worker process and
    the trial code; return the process id. Never raises: a trial reports a broken framework itself."""
    from sweeplab.search.worker import warm_worker

    for framework in frameworks:
        warm_worker(framework, None)
    return os.getpid()

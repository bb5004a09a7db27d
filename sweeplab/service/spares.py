"""Coordinator actors started ahead of their studies.

Starting a study's coordinator actor costs a worker process and the import of Optuna and
the storage code: seconds on a loaded machine, before the first trial can start. A service
attached to a cluster keeps one :class:`SpareCoordinator` started (on the supervisor's node,
where a study's coordinator lives); a submitted study takes it, :meth:`SpareCoordinator.open`
makes it that study's :class:`~sweeplab.search.coordinator.StudyCoordinator`, and the next
spare starts in the background. (A local service needs none: its trials all run on its
machine and reach a coordinator in the supervisor's process.)
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sweeplab.core.errors import SweeplabError
from sweeplab.search.coordinator import StudyCoordinator

log = logging.getLogger("sweeplab.service")

SPARES = 1
"""Coordinators kept started ahead (a study takes one; the next starts at once)."""


class SpareCoordinator(StudyCoordinator):
    """A :class:`StudyCoordinator` actor without a study yet: constructed with no argument
    (its process and imports are what it prepares), it becomes a study's coordinator with
    :meth:`open` (``StudyCoordinator``'s own arguments); nothing else may be called before."""

    def __init__(self) -> None:  # the study's __init__ runs in open()
        import optuna

        # Optuna imports SQLAlchemy and its models when the first RDB storage opens, and Alembic's
        # revisions when it checks a schema: seconds, the bulk of a coordinator's start. Do both
        # on a throwaway storage in memory now.
        optuna.storages.RDBStorage("sqlite:///:memory:").get_head_version()

    def ping(self) -> bool:
        """Answers once the actor has started (its handle resolved, its imports done)."""
        return True

    def open(self, *args: Any, **kwargs: Any) -> float:
        """Become the study's coordinator; return the seconds that took."""
        started = time.time()
        StudyCoordinator.__init__(self, *args, **kwargs)
        return time.time() - started


def _wait_started(actor: Any) -> None:
    import ray

    try:
        ray.get(actor.ping.remote())
    except Exception as exc:  # the study that takes it gets the error from open()
        log.warning("a spare coordinator did not start: %s", exc)


class Spares:
    """Hands out coordinator actors started ahead; :meth:`take` is a
    :attr:`~sweeplab.study.session.RunOptions.coordinator_actor` factory."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._lock = threading.Lock()
        self._ready: list[Any] = [self._start() for _ in range(SPARES)]

    def _start(self) -> Any:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        cls = ray.remote(num_cpus=0, max_concurrency=64, max_restarts=0)(SpareCoordinator)  # type: ignore[call-overload]
        here = NodeAffinitySchedulingStrategy(node_id=self.node_id, soft=False)
        actor = cls.options(scheduling_strategy=here).remote()
        # Wait for it in the background, so that the study that takes it calls a started actor
        # whose address this process already knows.
        threading.Thread(target=_wait_started, args=(actor,), name="sweeplab-spare", daemon=True).start()
        return actor

    def take(self, *args: Any, **kwargs: Any) -> Any:
        """A started coordinator opened on the study of ``args`` (a SweeplabError of the study's
        storage is raised as itself); the next spare starts meanwhile."""
        import ray

        started = time.time()
        with self._lock:
            spare = bool(self._ready)
            actor = self._ready.pop(0) if spare else self._start()
            self._ready.append(self._start())
        try:
            opening = ray.get(actor.open.remote(*args, **kwargs))
            log.info("coordinator: %s opened in %.2f s (the study's storage %.2f s of it)",
                     "a spare" if spare else "a new actor", time.time() - started, opening)
        except ray.exceptions.RayTaskError as exc:
            ray.kill(actor)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, SweeplabError):
                raise cause from exc
            raise
        return actor

    def close(self) -> None:
        import ray

        with self._lock:
            for actor in self._ready:
                ray.kill(actor)
            self._ready.clear()

"""Coordinator actors started ahead of their studies.

Starting a study's coordinator actor costs a worker process and the import of Optuna and
the storage code: seconds on a loaded machine, before the first trial can start. The
service keeps one :class:`SpareCoordinator` started (on the supervisor's node, where a
study's coordinator lives); a submitted study takes it, :meth:`SpareCoordinator.open`
makes it that study's :class:`~sweeplab.search.coordinator.StudyCoordinator`, and the
next spare starts in the background.
"""

from __future__ import annotations

import threading
from typing import Any

from sweeplab.core.errors import SweeplabError
from sweeplab.search.coordinator import StudyCoordinator

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

    def open(self, *args: Any, **kwargs: Any) -> bool:
        StudyCoordinator.__init__(self, *args, **kwargs)
        return True


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
        return cls.options(scheduling_strategy=here).remote()

    def take(self, *args: Any, **kwargs: Any) -> Any:
        """A started coordinator opened on the study of ``args`` (a SweeplabError of the study's
        storage is raised as itself); the next spare starts meanwhile."""
        import ray

        with self._lock:
            actor = self._ready.pop(0) if self._ready else self._start()
            self._ready.append(self._start())
        try:
            ray.get(actor.open.remote(*args, **kwargs))
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

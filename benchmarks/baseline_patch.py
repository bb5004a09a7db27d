"""Undo this round's optimizations in a process, for side-by-side before/after figures.

``apply()`` (driver process) puts back, without touching the sources:

- the Optuna storage as before: Optuna's plain ``_CachedStorage`` (every ``get_all_trials``
  re-reads the unfinished trials; every write its own transaction) and SQLite's default
  rollback journal (an fsync per commit) instead of WAL;
- the start-up as before: no worker warm-up, and the dataset, the Optuna storage and
  MLflow opened one after another before ``ray.init`` instead of on a thread while it runs.

Ray worker processes (the coordinator actor among them) get the same through Ray's
``worker_process_setup_hook`` (``apply_worker``), added to ``ray.init``'s runtime env.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def apply_worker() -> None:
    from optuna.storages import _CachedStorage

    import sweeplab.search.held_storage as held
    import sweeplab.search.storage as storage

    class PlainCachedStorage(_CachedStorage):
        @contextlib.contextmanager
        def batch(self) -> Iterator[None]:
            yield

        def flush(self) -> None:
            pass

    held.HeldTrialsStorage = PlainCachedStorage  # type: ignore[misc,assignment]
    storage.use_wal = lambda engine: None


def apply() -> None:
    apply_worker()
    import sweeplab.study.session as driver

    class SyncPreparation(driver._Preparation):
        def __init__(self, spec: Any, options: Any) -> None:  # no thread: the work is done here
            self.spec, self.options = spec, options
            self.dataset, self.tracker, self.error = None, None, None
            self._run()

        def result(self) -> tuple[Any, Any]:
            if self.error is not None:
                raise self.error
            return self.dataset, self.tracker

    driver._Preparation = SyncPreparation  # type: ignore[misc]
    driver._warm_workers = lambda spec: None  # type: ignore[attr-defined]
    original = driver.init_ray

    def init_ray(address: str | None, **kwargs: Any) -> None:
        env = dict(kwargs.pop("runtime_env", None) or {})
        env["worker_process_setup_hook"] = "baseline_patch.apply_worker"
        original(address, runtime_env=env, **kwargs)

    driver.init_ray = init_ray  # type: ignore[assignment]

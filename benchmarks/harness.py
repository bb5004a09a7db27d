"""Measurement hooks for benchmarks that run real studies (driver process only).

- :class:`MlflowCounter` wraps ``MlflowClient``'s request methods to count the requests
  sweeplab's writer sends and the time they take (real requests, not queued operations).
- :class:`SubmitClock` records when the driver hands each trial to Ray (the driver
  queues the MLflow child run with ``StudyTracker.trial_started`` immediately before it
  submits the Ray task; the gap is microseconds).

Both patch classes for the life of the ``with`` block and restore them afterwards.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

REQUEST_METHODS = ("create_run", "log_batch", "set_terminated", "update_run", "log_artifacts", "log_artifact",
                   "log_dict", "search_runs", "create_experiment", "get_experiment_by_name", "set_tag",
                   "log_metric", "log_param")


class MlflowCounter:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._saved: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> MlflowCounter:
        from mlflow.tracking import MlflowClient

        for name in REQUEST_METHODS:
            original = getattr(MlflowClient, name, None)
            if original is None:
                continue
            self._saved[name] = original

            def wrapper(client: Any, *args: Any, __name: str = name, __orig: Any = original, **kw: Any) -> Any:
                t = time.perf_counter()
                try:
                    return __orig(client, *args, **kw)
                finally:
                    with self._lock:
                        self.calls[__name] += 1
                        self.seconds[__name] += time.perf_counter() - t

            setattr(MlflowClient, name, wrapper)
        return self

    def __exit__(self, *exc: Any) -> None:
        from mlflow.tracking import MlflowClient

        for name, original in self._saved.items():
            setattr(MlflowClient, name, original)

    def total(self, names: tuple[str, ...] = ("create_run", "log_batch", "set_terminated", "update_run")) -> int:
        return sum(self.calls[n] for n in names)

    def total_seconds(self, names: tuple[str, ...] = ("create_run", "log_batch", "set_terminated",
                                                      "update_run")) -> float:
        return sum(self.seconds[n] for n in names)


class SubmitClock:
    def __init__(self) -> None:
        self.submitted: dict[int, float] = {}

    def __enter__(self) -> SubmitClock:
        from sweeplab.tracking.mlflow_tracker import StudyTracker

        self._original = StudyTracker.trial_started
        clock = self

        def trial_started(tracker: Any, number: int, *args: Any, **kw: Any) -> Any:
            out = clock._original(tracker, number, *args, **kw)
            clock.submitted[number] = time.time()
            return out

        StudyTracker.trial_started = trial_started  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        from sweeplab.tracking.mlflow_tracker import StudyTracker

        StudyTracker.trial_started = self._original  # type: ignore[method-assign]

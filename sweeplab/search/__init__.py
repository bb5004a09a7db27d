"""The search: one coordinator writes the Optuna study; a trial loop keeps trials in flight.

Never imports torch or tensorflow. Public surface: :class:`StudyCoordinator` (ask,
report, tell, leases), :class:`TrialLoop` with the executor seam
(:class:`TrialExecutor`: :class:`RayExecutor`,
:class:`~sweeplab.search.processes.ProcessExecutor` (worker processes of this machine),
:class:`InProcessExecutor`, and
:class:`~sweeplab.search.simulated.SimulatedExecutor`, which replays recorded learning
curves in simulated time) and :func:`summarize`. Running a whole study (stores, Ray, MLflow, reports) is
:mod:`sweeplab.study`'s job.
"""

from __future__ import annotations

from sweeplab.search.coordinator import StudyCoordinator
from sweeplab.search.executor import InProcessExecutor, RayExecutor, TrialExecutor
from sweeplab.search.loop import TrialLoop
from sweeplab.search.summary import summarize

__all__ = ["InProcessExecutor", "RayExecutor", "StudyCoordinator", "TrialExecutor", "TrialLoop", "summarize"]

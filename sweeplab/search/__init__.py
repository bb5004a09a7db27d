"""The study driver: Optuna ask/tell through one coordinator, trials dispatched to Ray.

Never imports torch or tensorflow. Public surface: :func:`run_study`,
:class:`RunOptions`, :func:`summarize`.
"""

from __future__ import annotations

from sweeplab.search.driver import RunOptions, StudyInterrupted, run_study
from sweeplab.search.summary import summarize

__all__ = ["RunOptions", "StudyInterrupted", "run_study", "summarize"]

"""A study from start to end: open it, run its trial loop, finish it; promote its best model.

Public surface: :func:`run_study` and :class:`RunOptions` (what ``sweeplab run`` calls),
:class:`StudyInterrupted`, and :func:`promote_study` (``sweeplab promote``).
"""

from __future__ import annotations

from sweeplab.study.run import RunOptions, StudyInterrupted, run_study

__all__ = ["RunOptions", "StudyInterrupted", "run_study"]

"""Run-level defaults that the CLI's flags and :class:`~sweeplab.study.session.RunOptions` share."""

from __future__ import annotations

DEFAULT_FAIL_FAST = 3
"""A study whose first this many trials all fail with the same error stops (exit 1) instead
of spending its budget on a bug; ``sweeplab run --fail-fast N`` changes it, 0 turns it off."""

"""Run-level defaults that the CLI's flags and :class:`~sweeplab.study.session.RunOptions` share."""

from __future__ import annotations

DEFAULT_FAIL_FAST = 3
"""A study whose first this many trials all fail with the same error stops (exit 1) instead
of spending its budget on a bug; ``sweeplab run --fail-fast N`` changes it, 0 turns it off."""

CALLABLE_CHECK_TIMEOUT_S = 60.0
"""How long ``validate`` and ``run`` wait for a subprocess to import ``objective.callable``
(without calling it) before going on unchecked, with a warning."""

CHECKPOINT_DIR = ".sweeplab/checkpoints"
"""Where a study's coordinator keeps trial checkpoints (``trial.checkpoint``): relative to the
folder of a SQLite study database, else to the driver's working directory."""

DEFAULT_PRIORITY = 1.0
"""A study's weight when several share the service's workers (spec key ``priority``,
``sweeplab run --priority W``): each gets workers in proportion to its weight."""

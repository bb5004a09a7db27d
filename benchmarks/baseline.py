"""The "before" of before/after figures: sweeplab with its start-up and storage speed-ups off.

Nothing is patched: each speed-up has a switch that the code reads, and a "before" process
sets them (``SWEEPLAB_BENCH_BASELINE=1`` in its environment, set by ``bench_before_after.py``):

- studies run in this process: :func:`run_options` (``RunOptions.without_speedups()``:
  Optuna's own storage instead of the held one, every write its own transaction; SQLite's
  rollback journal instead of WAL; the dataset, the Optuna storage and MLflow opened one
  after another before ``ray.init``; no worker warm-up). The coordinator actor gets the
  storage switches as a keyword of its constructor;
- the coordinator harness: :func:`storage_options` (a keyword of ``StudyCoordinator``);
- ``sweeplab run`` subprocesses: :func:`cli_env` (``SWEEPLAB_SPEEDUPS=off``, which the CLI
  reads in one place).

One start-up speed-up alone (``START_UP_SPEEDUPS`` of :mod:`sweeplab.study.session`, e.g.
``driver_coordinator``: the coordinator in the driver instead of an actor) is switched off
in a process whose ``SWEEPLAB_BENCH_CUT`` names it (comma-separated for several):
:func:`run_options` applies it, so a driver script measures that one cut before/after
(``bench_coldstart.py``).
"""

from __future__ import annotations

import os
from typing import Any

BASELINE_ENV = "SWEEPLAB_BENCH_BASELINE"
CUT_ENV = "SWEEPLAB_BENCH_CUT"
SPEEDUPS_ENV = "SWEEPLAB_SPEEDUPS"  # sweeplab.cli.SPEEDUPS_ENV


def active() -> bool:
    """True in a process that measures the code as it was before its speed-ups."""
    return os.environ.get(BASELINE_ENV) == "1"


def cuts_off() -> list[str]:
    """The start-up speed-ups this process runs without (``SWEEPLAB_BENCH_CUT``, comma-separated)."""
    return [n.strip() for n in os.environ.get(CUT_ENV, "").split(",") if n.strip()]


def run_options(**kwargs: Any) -> Any:
    """``RunOptions(**kwargs)``, without the speed-ups in a "before" process, without the ones
    ``SWEEPLAB_BENCH_CUT`` names in any process (``RunOptions.without``: an unknown name is a
    ValueError naming the valid ones)."""
    from sweeplab.study import RunOptions

    options = RunOptions(**kwargs)
    options = options.without_speedups() if active() else options
    try:
        return options.without(*cuts_off())
    except ValueError as exc:
        raise ValueError(f"{CUT_ENV}: {exc}") from exc


def storage_options() -> Any:
    """The ``storage_options`` of a coordinator built directly (the harness of figure 3a)."""
    from sweeplab.search.storage import StorageOptions

    return run_options(storage_url="", tracking_uri="").storage_options if active() else StorageOptions()


def cli_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a ``sweeplab run`` subprocess: without the speed-ups in a "before" process."""
    env = dict(env)
    if active():
        env[SPEEDUPS_ENV] = "off"
    else:
        env.pop(SPEEDUPS_ENV, None)
    return env

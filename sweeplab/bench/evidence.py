"""Evidence for defaults: simulated studies compared with random search, per recorded table.

The functions behind ``benchmarks/bench_defaults.py`` (which chose ``sampler: auto`` and
``pruner: auto``, :mod:`sweeplab.registry.search`) and its tests. Plain data out; no
plotting, no files.

- **Target** (:func:`table_target`): the value that the best ``top`` share (default 3 %)
  of random configurations of the table reach. A random trial of a simulated study is
  one recorded (configuration, seed) pair drawn uniformly, so the target is computed over
  every recorded trial of the table: their returned metric, a FAIL counting as worse than
  any value; sorted best first, the target is the value at rank ``ceil(top * n)``. At
  least ``top`` of random trials reach it (more when values tie at the target).
- **A cell** (:func:`run_cell`): one study simulated on the table
  (:func:`~sweeplab.search.simulated.simulate_study`, fail-fast off, so a table whose
  diverging configurations fail does not stop the study early); what it spent until its
  first COMPLETE trial at the target, counted in completion order
  (:meth:`~sweeplab.bench.results.CellResult.to_target`): trials (pruned and failed ones
  count), epochs reported, simulated seconds from the study's start; and its best value,
  its total epochs and simulated seconds.
- **Medians with spread** (:func:`quantile`, :func:`spread`): a cell that never reached the
  target counts as ``inf`` (worse than any cell that did), so a median is finite only
  when more than half of the seeds reached the target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweeplab.core.records import COMPLETE

if TYPE_CHECKING:
    from sweeplab.search.curves import CurveTable
    from sweeplab.spec import StudySpec

__all__ = ["CellOutcome", "quantile", "run_cell", "spread", "table_target", "target_share"]

TARGET_TOP = 0.03
"""The share of random configurations the target is the best of (issue 14: the top 3 %)."""


def _recorded_values(table: CurveTable, metric: str, direction: str) -> list[float]:
    """Every recorded trial's returned ``metric``, best first; a FAIL (or a missing value) is worst."""
    worst = -math.inf if direction == "maximize" else math.inf
    values = [float(t.result[metric]) if t.state == COMPLETE and metric in t.result else worst
              for t in table.trials]
    return sorted(values, reverse=direction == "maximize")


def table_target(table: CurveTable, metric: str, direction: str, top: float = TARGET_TOP) -> float:
    """The value the best ``top`` share of the table's recorded trials reach (see the module docstring).

    Raises ValueError when ``top`` is not in (0, 1] or the table has no COMPLETE trial with ``metric``.
    """
    if not 0 < top <= 1:
        raise ValueError(f"top must be in (0, 1], got {top!r}")
    values = _recorded_values(table, metric, direction)
    if not values or not math.isfinite(values[0]):
        raise ValueError(f"the table {table.info.name} has no COMPLETE trial with {metric}")
    rank = max(1, math.ceil(top * len(values)))
    return values[rank - 1]


def target_share(table: CurveTable, metric: str, direction: str, target: float) -> float:
    """The share of the table's recorded trials at ``target`` (what one random trial's chance is)."""
    values = _recorded_values(table, metric, direction)
    hit = sum(1 for v in values if (v >= target if direction == "maximize" else v <= target))
    return hit / len(values)


@dataclass(frozen=True)
class CellOutcome:
    """One simulated study against a target (see the module docstring).

    ``trials`` / ``epochs`` / ``time_s``: spent until the first COMPLETE trial at the
    target, None when the study never reached it. ``best``: the best COMPLETE value (None
    without one). ``total_epochs`` / ``total_time_s``: the whole study. ``pruned`` /
    ``failed``: trials in those states.
    """

    trials: int | None
    epochs: int | None
    time_s: float | None
    best: float | None
    total_epochs: int
    total_time_s: float
    pruned: int
    failed: int

    def to_dict(self) -> dict[str, Any]:
        return {"trials": self.trials, "epochs": self.epochs, "time_s": self.time_s, "best": self.best,
                "total_epochs": self.total_epochs, "total_time_s": round(self.total_time_s, 3),
                "pruned": self.pruned, "failed": self.failed}


def run_cell(spec: StudySpec, table: CurveTable, target: float) -> CellOutcome:
    """Simulate ``spec`` on ``table`` (fail-fast off) and measure it against ``target``."""
    from sweeplab.bench.simulate import simulated_cell_result
    from sweeplab.bench.spec import BenchCell
    from sweeplab.search.simulated import simulate_study

    sim = simulate_study(spec, table, fail_fast=0)
    cell = BenchCell(sampler=spec.sampler.name, pruner=spec.pruner.name, framework=spec.objective.framework,
                     seed=spec.seed, spec=spec)
    result = simulated_cell_result(cell, sim)
    reach = result.to_target(target)
    trials, epochs, time_s = reach["trials"], reach["epochs"], reach["time_s"]
    return CellOutcome(
        trials=int(trials) if trials is not None else None,
        epochs=int(epochs) if epochs is not None else None,
        time_s=float(time_s) if time_s is not None else None,
        best=result.best_value,
        total_epochs=result.total_epochs,
        total_time_s=sim.elapsed,
        pruned=result.count("PRUNED"),
        failed=result.count("FAIL"),
    )


def quantile(values: Sequence[float | None], q: float) -> float:
    """The ``q`` quantile (linear between order statistics) of ``values``, None counting as ``inf``.

    Between a finite value and ``inf`` the quantile is ``inf``; NaN is returned for no values.
    """
    xs = sorted(math.inf if v is None else float(v) for v in values)
    if not xs:
        return math.nan
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if lo == hi:
        return xs[lo]
    if math.isinf(xs[lo]) or math.isinf(xs[hi]):
        return math.inf
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def spread(values: Sequence[float | None]) -> Mapping[str, float]:
    """``{"median", "q25", "q75", "min", "max"}`` of ``values`` (None as ``inf``, see :func:`quantile`)."""
    return {"median": quantile(values, 0.5), "q25": quantile(values, 0.25), "q75": quantile(values, 0.75),
            "min": quantile(values, 0.0), "max": quantile(values, 1.0)}

"""What a benchmark measured: per-cell trial events, per-configuration aggregates, ranking.

Plain data and pure functions (no plotly, no Ray, no MLflow); the Optuna study of a
cell is read once by :func:`cell_result` and everything else derives from its
:class:`TrialEvent` list:

- **trials axis**: finished trials in completion order (a lost attempt that was
  retried does not count, as in ``trials``); the best value so far is the best
  COMPLETE trial's value (a pruned or failed trial is never best);
- **time axis**: seconds from the cell's first trial start to each trial's end, as
  stored by Optuna (ask to tell), so it includes queueing on a busy cluster and, for a
  resumed cell, the time it was stopped;
- **compute**: epochs, i.e. the intermediate values a trial reported to the pruner
  (every finished trial, retried attempts included, costs what it ran);
- **target**: a value is at the target when it is ``>= target`` (maximize) or
  ``<= target`` (minimize); trials / epochs / seconds to target count everything up to
  and including the first COMPLETE trial at the target.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sweeplab.bench.spec import ComparedConfig
from sweeplab.core.keys import STUDY_ATTR_EXPERIMENT_ID, STUDY_ATTR_PARENT_RUN_ID
from sweeplab.core.records import AuditResult

if TYPE_CHECKING:
    import optuna

    from sweeplab.bench.spec import BenchCell

__all__ = [
    "BenchResult",
    "CellResult",
    "ConfigSummary",
    "TrialEvent",
    "axis_grid",
    "better",
    "build_result",
    "cell_result",
    "compare_top_two",
    "derive_target",
    "reaches",
    "step_band",
    "summarize_configs",
]


def better(a: float, b: float, direction: str) -> bool:
    """True when ``a`` is strictly better than ``b`` for ``direction``."""
    return a > b if direction == "maximize" else a < b


def reaches(value: float | None, target: float | None, direction: str) -> bool:
    """True when ``value`` is at ``target`` (``>=`` when maximizing, ``<=`` when minimizing)."""
    if value is None or target is None:
        return False
    return value >= target if direction == "maximize" else value <= target


def _best(values: Sequence[float], direction: str) -> float:
    return max(values) if direction == "maximize" else min(values)


@dataclass(frozen=True)
class TrialEvent:
    """One finished trial of a cell: ``state`` COMPLETE / PRUNED / FAIL, ``value`` its final
    value (COMPLETE only), ``epochs`` the intermediate values it reported, ``start_s`` /
    ``end_s`` seconds since the cell's first trial started, ``counted`` False for a lost
    attempt that a retry replaced."""

    number: int
    state: str
    value: float | None
    epochs: int
    start_s: float
    end_s: float
    counted: bool = True


@dataclass
class CellResult(ComparedConfig):
    """The measured side of one benchmark cell (see the module docstring for the axes).

    ``status``: ``ran`` (this invocation ran trials), ``skipped`` (already finished),
    ``failed`` (its driver raised: ``error``), or ``missing`` (no study in storage).
    """

    study: str
    sampler: str
    pruner: str
    framework: str
    seed: int
    direction: str
    status: str = "ran"
    events: list[TrialEvent] = field(default_factory=list)
    error: str | None = None
    mlflow_experiment_id: str | None = None
    mlflow_parent_run_id: str | None = None
    audit: AuditResult | None = None

    def counted(self) -> list[TrialEvent]:
        """The events that count toward ``trials``, in completion order."""
        return [e for e in self.events if e.counted]

    def count(self, state: str) -> int:
        """Counted trials in ``state``."""
        return sum(1 for e in self.counted() if e.state == state)

    @property
    def best(self) -> TrialEvent | None:
        """The best COMPLETE trial (the earliest finished one on ties), or None."""
        out: TrialEvent | None = None
        for e in self.events:
            if e.state == "COMPLETE" and e.value is not None and (
                    out is None or better(e.value, out.value, self.direction)):  # type: ignore[arg-type]
                out = e
        return out

    @property
    def best_value(self) -> float | None:
        """The final best value of the cell."""
        best = self.best
        return best.value if best is not None else None

    @property
    def total_epochs(self) -> int:
        """Epochs every finished trial ran (the cell's compute)."""
        return sum(e.epochs for e in self.events)

    @property
    def wall_time_s(self) -> float:
        """Seconds from the first trial start to the last trial end."""
        return max((e.end_s for e in self.events), default=0.0)

    def curve(self, axis: str) -> list[tuple[float, float]]:
        """``(x, best so far)`` after each finished trial once a best exists; ``axis`` is
        ``trials`` (1, 2, ...), ``time`` (seconds) or ``epochs`` (cumulative epochs)."""
        out: list[tuple[float, float]] = []
        best: float | None = None
        n = epochs = 0
        for e in self.events:
            epochs += e.epochs
            n += 1 if e.counted else 0
            if e.state == "COMPLETE" and e.value is not None and (best is None or better(e.value, best,
                                                                                         self.direction)):
                best = e.value
            if best is None or (axis == "trials" and not e.counted):
                continue
            x = {"trials": float(n), "time": e.end_s, "epochs": float(epochs)}[axis]
            out.append((x, best))
        return out

    def to_target(self, target: float | None) -> dict[str, float | int | None]:
        """``{"trials", "epochs", "time_s"}`` spent until the first COMPLETE trial at ``target``
        (all None when the cell never reached it)."""
        n = epochs = 0
        for e in self.events:
            epochs += e.epochs
            n += 1 if e.counted else 0
            if e.state == "COMPLETE" and reaches(e.value, target, self.direction):
                return {"trials": n, "epochs": epochs, "time_s": round(e.end_s, 3)}
        return {"trials": None, "epochs": None, "time_s": None}

    def to_dict(self, target: float | None) -> dict[str, Any]:
        """The cell in the bench's ``--json`` output."""
        best = self.best
        reach = self.to_target(target)
        return {
            "study": self.study,
            "config": self.config_label,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "framework": self.framework,
            "seed": self.seed,
            "status": self.status,
            "error": self.error,
            "n_trials": len(self.counted()),
            "n_complete": self.count("COMPLETE"),
            "n_pruned": self.count("PRUNED"),
            "n_failed": self.count("FAIL"),
            "best_value": best.value if best is not None else None,
            "best_trial": best.number if best is not None else None,
            "trials_to_target": reach["trials"],
            "epochs_to_target": reach["epochs"],
            "time_to_target_s": reach["time_s"],
            "total_epochs": self.total_epochs,
            "wall_time_s": round(self.wall_time_s, 3),
            "mlflow_experiment_id": self.mlflow_experiment_id,
            "mlflow_parent_run_id": self.mlflow_parent_run_id,
            "audit": self.audit.brief() if self.audit is not None else None,
        }


def cell_result(cell: BenchCell, study: optuna.Study | None, status: str = "ran") -> CellResult:
    """Read a cell's trial events from its Optuna study (``missing`` when ``study`` is None)."""
    out = CellResult(cell.study, cell.sampler, cell.pruner, cell.framework, cell.seed, cell.spec.direction[0],
                     status="missing" if study is None else status)
    if study is None:
        return out
    from optuna.trial import TrialState

    from sweeplab.core.keys import STUDY_ATTR_RETRIES

    finished_states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    trials = [t for t in study.get_trials(deepcopy=False, states=finished_states)
              if t.datetime_start is not None and t.datetime_complete is not None]
    retried = set(study.user_attrs.get(STUDY_ATTR_RETRIES, {}))
    out.mlflow_experiment_id = study.user_attrs.get(STUDY_ATTR_EXPERIMENT_ID)
    out.mlflow_parent_run_id = study.user_attrs.get(STUDY_ATTR_PARENT_RUN_ID)
    if not trials:
        return out
    t0 = min(t.datetime_start for t in trials)  # type: ignore[type-var]
    trials.sort(key=lambda t: (t.datetime_complete, t.number))
    for t in trials:
        value = t.value if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value) else None
        out.events.append(TrialEvent(
            number=t.number,
            state=t.state.name,
            value=value,
            epochs=len(t.intermediate_values),
            start_s=(t.datetime_start - t0).total_seconds(),  # type: ignore[operator]
            end_s=(t.datetime_complete - t0).total_seconds(),  # type: ignore[operator]
            counted=not (t.state == TrialState.FAIL and str(t.number) in retried),
        ))
    return out


# ---------------------------------------------------------------------- across seeds
def step_band(curves: Sequence[Sequence[tuple[float, float]]], grid: Sequence[float]
              ) -> tuple[list[float], list[float], list[float], list[float]]:
    """Median, min and max across ``curves`` of step functions, sampled at ``grid``.

    Each curve is ``(x, y)`` points in increasing x; its value at ``g`` is the y of its
    last point with ``x <= g`` (it holds its last value after it ends). Grid points
    where no curve has a value yet are left out. Returns ``(x, median, lo, hi)``.
    """
    xs: list[float] = []
    med: list[float] = []
    lo: list[float] = []
    hi: list[float] = []
    idx = [0] * len(curves)
    current: list[float | None] = [None] * len(curves)
    for g in grid:
        for i, curve in enumerate(curves):
            while idx[i] < len(curve) and curve[idx[i]][0] <= g + 1e-12:
                current[i] = curve[idx[i]][1]
                idx[i] += 1
        values = [v for v in current if v is not None]
        if not values:
            continue
        xs.append(g)
        med.append(statistics.median(values))
        lo.append(min(values))
        hi.append(max(values))
    return xs, med, lo, hi


def axis_grid(curves: Sequence[Sequence[tuple[float, float]]], axis: str, points: int = 120) -> list[float]:
    """The x values a band is drawn at: every trial count, or ``points`` steps plus every
    curve's own x values (so no step is missed) for time and epochs."""
    xmax = max((c[-1][0] for c in curves if c), default=0.0)
    if axis == "trials":
        return [float(i) for i in range(1, int(xmax) + 1)]
    own = {x for c in curves for x, _ in c}
    even = {xmax * i / points for i in range(points + 1)} if xmax > 0 else {0.0}
    return sorted(own | even)


@dataclass
class ConfigSummary:
    """One configuration (sampler x pruner x framework) across its seeds."""

    config: tuple[str, str, str]
    direction: str
    cells: list[CellResult]
    target: float | None
    rank: int = 0

    @property
    def label(self) -> str:
        """``"tpe / median / torch"``."""
        return " / ".join(self.config)

    def finals(self) -> list[float]:
        """The final best value of every seed that has one."""
        return [c.best_value for c in self.cells if c.best_value is not None]

    def median_best(self) -> float | None:
        """Median final best across seeds."""
        finals = self.finals()
        return statistics.median(finals) if finals else None

    def to_target(self) -> list[dict[str, float | int | None]]:
        """Per seed: trials, epochs and seconds to the target."""
        return [c.to_target(self.target) for c in self.cells]

    def to_dict(self) -> dict[str, Any]:
        """The configuration in the bench's ``--json`` output."""
        finals = self.finals()
        reach = self.to_target()
        hit = [r for r in reach if r["trials"] is not None]
        n_finished = sum(len(c.counted()) for c in self.cells)
        n_pruned = sum(c.count("PRUNED") for c in self.cells)

        def med(key: str) -> float | None:
            vals = [float(r[key]) for r in hit if r[key] is not None]  # type: ignore[arg-type]
            return statistics.median(vals) if len(hit) * 2 > len(reach) and vals else None

        return {
            "config": self.label,
            "sampler": self.config[0],
            "pruner": self.config[1],
            "framework": self.config[2],
            "rank": self.rank,
            "n_seeds": len(self.cells),
            "seeds": [c.seed for c in self.cells],
            "final_best": finals,
            "median_best": statistics.median(finals) if finals else None,
            "mean_best": statistics.fmean(finals) if finals else None,
            "std_best": statistics.stdev(finals) if len(finals) > 1 else None,
            "min_best": min(finals) if finals else None,
            "max_best": max(finals) if finals else None,
            "reached_target": len(hit),
            # medians over all seeds, so only when more than half reached the target
            "median_trials_to_target": med("trials"),
            "median_epochs_to_target": med("epochs"),
            "median_time_to_target_s": med("time_s"),
            "total_epochs": sum(c.total_epochs for c in self.cells),
            "mean_epochs_per_cell": statistics.fmean([c.total_epochs for c in self.cells]) if self.cells else None,
            "mean_wall_time_s": statistics.fmean([c.wall_time_s for c in self.cells]) if self.cells else None,
            "pruned_fraction": n_pruned / n_finished if n_finished else None,
        }


def derive_target(configs: Sequence[ConfigSummary], direction: str) -> float | None:
    """A target when the spec gives none: the worst configuration's median final best, so
    that every configuration reaches it in at least half of its seeds."""
    medians = [m for m in (c.median_best() for c in configs) if m is not None]
    if not medians:
        return None
    return min(medians) if direction == "maximize" else max(medians)


def summarize_configs(cells: Sequence[CellResult], target: float | None, direction: str) -> list[ConfigSummary]:
    """Group ``cells`` by configuration and rank them: by median final best across seeds,
    then mean, then median epochs spent; configurations without a COMPLETE trial last."""
    groups: dict[tuple[str, str, str], list[CellResult]] = {}
    for cell in cells:
        groups.setdefault(cell.config, []).append(cell)
    configs = [ConfigSummary(k, direction, sorted(v, key=lambda c: c.seed), target) for k, v in groups.items()]
    sign = -1.0 if direction == "maximize" else 1.0

    def key(c: ConfigSummary) -> tuple[int, float, float, float]:
        finals = c.finals()
        if not finals:
            return (1, 0.0, 0.0, 0.0)
        epochs = statistics.median([cell.total_epochs for cell in c.cells])
        return (0, sign * statistics.median(finals), sign * statistics.fmean(finals), epochs)

    configs.sort(key=key)
    for i, c in enumerate(configs, 1):
        c.rank = i
    return configs


def compare_top_two(configs: Sequence[ConfigSummary], direction: str) -> dict[str, Any]:
    """Does the first-ranked configuration's lead hold across seeds?

    Two views of the final best values, one per seed: a two-sided Mann-Whitney U test
    between the top two configurations (scipy), and per-seed counts (in how many seeds
    the first beats the second; in how many it ranks first of all). ``verdict`` says it
    in words, and warns when there are too few seeds for a 5 % test to be able to pass.
    """
    out: dict[str, Any] = {"best": None, "runner_up": None, "test": "mann-whitney-u two-sided", "u": None,
                           "p_value": None, "min_p_value": None, "wins": None, "paired_seeds": None,
                           "first_in_seeds": None, "n_seeds": None, "verdict": "fewer than two configurations"}
    ranked = [c for c in configs if c.finals()]
    if len(ranked) < 2:
        if len(ranked) == 1:
            out["best"] = ranked[0].label
        return out
    a, b = ranked[0], ranked[1]
    fa, fb = a.finals(), b.finals()
    out.update(best=a.label, runner_up=b.label)
    out["min_p_value"] = round(2 / math.comb(len(fa) + len(fb), len(fa)), 6)
    try:
        from scipy.stats import mannwhitneyu

        res = mannwhitneyu(fa, fb, alternative="two-sided")
        out["u"] = float(res.statistic)
        out["p_value"] = float(res.pvalue) if math.isfinite(res.pvalue) else 1.0
    except (ValueError, ImportError):  # pragma: no cover - identical samples on old scipy
        out["p_value"] = None
    by_seed_a = {c.seed: c.best_value for c in a.cells if c.best_value is not None}
    by_seed_b = {c.seed: c.best_value for c in b.cells if c.best_value is not None}
    shared = sorted(set(by_seed_a) & set(by_seed_b))
    wins = sum(1 for s in shared if better(by_seed_a[s], by_seed_b[s], direction))  # type: ignore[arg-type]
    out.update(wins=wins, paired_seeds=len(shared))
    seeds = sorted({c.seed for cfg in ranked for c in cfg.cells})
    first = 0
    for s in seeds:
        vals = {cfg.label: next((c.best_value for c in cfg.cells if c.seed == s), None) for cfg in ranked}
        present = {k: v for k, v in vals.items() if v is not None}
        if present and a.label in present:
            top = _best(list(present.values()), direction)
            first += 1 if present[a.label] == top else 0
    out.update(first_in_seeds=first, n_seeds=len(seeds))
    p = out["p_value"]
    parts = [f"{a.label} beat {b.label} in {wins} of {len(shared)} seeds and was the best (or tied) in {first} "
             f"of {len(seeds)} seeds"]
    if p is not None:
        parts.append(f"Mann-Whitney U p = {p:.3g}")
    if p is not None and p < 0.05:
        verdict = "the lead holds across seeds (p < 0.05)"
    elif out["min_p_value"] >= 0.05:
        verdict = (f"too few seeds to test at 5 % (with {len(fa)} and {len(fb)} values the smallest possible p is "
                   f"{out['min_p_value']:.3g}); treat the ranking as indicative"
                   + ("; it is consistent in every seed" if shared and wins == len(shared) else ""))
    else:
        verdict = "the difference is not significant: it may not hold for other seeds"
    out["verdict"] = "; ".join(parts) + ": " + verdict
    return out


# ---------------------------------------------------------------------- the whole benchmark
@dataclass
class BenchResult:
    """A benchmark's measurements: cells, ranked configurations, target, comparison.

    ``target_source``: ``spec`` (the bench spec's ``target``), ``derived`` (see
    :func:`derive_target`) or ``none`` (no cell has a COMPLETE trial).
    """

    bench: str
    metric: str
    direction: str
    trials: int
    factors: dict[str, list[Any]]
    cells: list[CellResult]
    configs: list[ConfigSummary]
    target: float | None
    target_source: str
    comparison: dict[str, Any]
    audit_sample: int = 0
    experiment: str | None = None
    experiment_id: str | None = None
    bench_run_id: str | None = None
    report: str | None = None
    elapsed_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The bench's ``--json`` object: per-cell and per-configuration aggregates."""
        return {
            "bench": self.bench,
            "metric": self.metric,
            "direction": self.direction,
            "trials_per_cell": self.trials,
            "factors": self.factors,
            "target": self.target,
            "target_source": self.target_source,
            "n_cells": len(self.cells),
            "cells_ran": sum(1 for c in self.cells if c.status == "ran"),
            "cells_skipped": sum(1 for c in self.cells if c.status == "skipped"),
            "cells_failed": sum(1 for c in self.cells if c.status in ("failed", "missing")),
            "n_trials": sum(len(c.counted()) for c in self.cells),
            "total_epochs": sum(c.total_epochs for c in self.cells),
            "ranking": [c.label for c in self.configs],
            "comparison": self.comparison,
            "configs": [c.to_dict() for c in self.configs],
            "cells": [c.to_dict(self.target) for c in self.cells],
            "mlflow_experiment": self.experiment,
            "mlflow_experiment_id": self.experiment_id,
            "mlflow_bench_run_id": self.bench_run_id,
            "report": self.report,
            "elapsed_s": self.elapsed_s,
        }


def build_result(bench: str, metric: str, direction: str, trials: int, factors: dict[str, list[Any]],
                 cells: list[CellResult], target: float | None, audit_sample: int = 0) -> BenchResult:
    """Aggregate ``cells`` into a :class:`BenchResult` (deriving the target when None)."""
    source = "spec"
    configs = summarize_configs(cells, target, direction)
    if target is None:
        target = derive_target(configs, direction)
        source = "derived" if target is not None else "none"
        for c in configs:
            c.target = target
    return BenchResult(bench=bench, metric=metric, direction=direction, trials=trials, factors=factors,
                       cells=list(cells), configs=configs, target=target, target_source=source,
                       comparison=compare_top_two(configs, direction), audit_sample=audit_sample)

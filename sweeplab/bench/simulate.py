"""Simulated benchmarks: every cell of a bench replayed on a recorded table, in seconds.

A bench spec with ``simulate: {table: NAME_OR_PATH}`` runs each cell with
:func:`~sweeplab.search.simulated.simulate_study` instead of training: the real
coordinator, sampler, pruner and trial loop, with each trial's epochs, metrics and
durations taken from the table and time kept on a simulated clock. ``table`` names a
table shipped with sweeplab (:func:`shipped_tables`: ``digits``, ``breast_cancer``,
``wine``, ``make_classification``, ``diabetes``) or a Parquet file written by ``sweeplab
bench record`` (a relative path is relative to the bench spec's folder). The bench's
``objective`` and ``space`` default to the table's; given, they must fit it
(:func:`~sweeplab.search.simulated.table_problems`).

Cells run one after another in this process (``parallel_cells`` does not apply), with
no Ray, no Optuna database and no MLflow: the result and the HTML report are what is
written. The report's time axis is simulated seconds.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweeplab.bench.results import BenchResult, CellResult
    from sweeplab.bench.runner import BenchOptions
    from sweeplab.bench.spec import BenchCell, BenchSpec
    from sweeplab.search.simulated import SimulatedStudy

__all__ = ["TABLE_SUFFIX", "Simulation", "resolve_table", "run_simulated_bench", "shipped_tables",
           "simulated_cell_result"]

TABLE_SUFFIX = ".parquet"
_PACKAGE = "sweeplab.bench"
_FOLDER = "tables"


@dataclass(frozen=True)
class Simulation:
    """A bench's simulated backend: ``table`` the file to replay, ``name`` the table's name."""

    table: str
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "name": self.name}


def shipped_tables() -> list[str]:
    """Names of the tables shipped with sweeplab, sorted."""
    folder = resources.files(_PACKAGE).joinpath(_FOLDER)
    if not folder.is_dir():
        return []
    return sorted(e.name[: -len(TABLE_SUFFIX)] for e in folder.iterdir()
                  if e.is_file() and e.name.endswith(TABLE_SUFFIX))


def resolve_table(ref: str, folder: str | Path | None = None) -> Path:
    """The file of table ``ref``: a shipped table's name, else a path (relative to ``folder``,
    default the current directory). Does not check that the file exists."""
    if "/" not in ref and "\\" not in ref and not ref.endswith(TABLE_SUFFIX):
        return Path(str(resources.files(_PACKAGE).joinpath(_FOLDER).joinpath(ref + TABLE_SUFFIX)))
    path = Path(ref).expanduser()
    return path if path.is_absolute() or folder is None else Path(folder) / path


def simulated_cell_result(cell: BenchCell, sim: SimulatedStudy) -> CellResult:
    """A cell's :class:`~sweeplab.bench.results.CellResult` from its simulated study: the trial
    events in simulated-time order of their ends, their times in simulated seconds."""
    from optuna.trial import TrialState

    from sweeplab.bench.results import CellResult, TrialEvent

    out = CellResult(cell.study, cell.sampler, cell.pruner, cell.framework, cell.seed, cell.spec.direction[0])
    trials = {t.number: t for t in sim.study.get_trials(deepcopy=False)}
    for timing in sorted(sim.times.values(), key=lambda t: (t.end, t.number)):
        trial = trials[timing.number]
        value = trial.value if trial.state == TrialState.COMPLETE else None
        out.events.append(TrialEvent(number=timing.number, state=trial.state.name, value=value,
                                     epochs=len(trial.intermediate_values), start_s=timing.start, end_s=timing.end))
    if sim.loop.error is not None:
        out.status, out.error = "failed", str(sim.loop.error)
    return out


def run_simulated_bench(bench: BenchSpec, options: BenchOptions | None = None) -> BenchResult:
    """Run every cell of ``bench`` on its table and write the report; return the result.

    Raises SpecError before any cell runs when a cell does not fit the table (or TableError
    for a table that cannot be read). A cell whose first trials all fail alike stops as a
    real study would and is reported ``failed``; the others go on.
    """
    from sweeplab.bench.report import write_bench_report
    from sweeplab.bench.results import build_result
    from sweeplab.core.errors import SpecError, SweeplabError
    from sweeplab.search.curves import read_table
    from sweeplab.search.simulated import simulate_study, table_problems

    if bench.simulate is None:
        raise ValueError(f"bench {bench.bench!r} has no `simulate` table")
    started = time.perf_counter()
    table = read_table(bench.simulate.table)
    for cell in bench.cells:  # a spec the table cannot answer fails before anything runs
        problems = table_problems(cell.spec, table)
        if problems:
            raise SpecError(problems, bench.source)
    progress = options.progress if options is not None else False
    cells: list[CellResult] = []
    for i, cell in enumerate(bench.cells, 1):
        t0 = time.perf_counter()
        sim = simulate_study(cell.spec, table)
        measured = simulated_cell_result(cell, sim)
        cells.append(measured)
        if progress:
            best = measured.best_value
            best_text = f"best {best:.6g}" if best is not None else "no complete trial"
            sys.stderr.write(f"[{i}/{len(bench.cells)}] {cell.study}: {len(measured.counted())} trials (complete "
                             f"{measured.count('COMPLETE')}, pruned {measured.count('PRUNED')}, failed "
                             f"{measured.count('FAIL')}), {best_text}, {sim.elapsed:.1f} simulated s in "
                             f"{time.perf_counter() - t0:.2f} s\n")
            sys.stderr.flush()
    factors: dict[str, list[Any]] = {
        "samplers": [lv.label for lv in bench.samplers], "pruners": [lv.label for lv in bench.pruners],
        "frameworks": list(bench.frameworks), "seeds": list(bench.seeds)}
    result = build_result(bench.bench, bench.metric, bench.direction, bench.trials, factors, cells, bench.target)
    report = options.report_path if options is not None and options.report_path else None
    path = Path(report) if report else Path(f"{_stem(bench.bench)}-report.html")
    result.elapsed_s = round(time.perf_counter() - started, 3)
    result.report = str(write_bench_report(result, path))
    failed = [c for c in cells if c.status == "failed"]
    if failed:
        raise SweeplabError(
            f"bench {bench.bench!r}: {len(failed)} of {len(cells)} simulated cells stopped because their first "
            f"trials all failed alike; the report {result.report} shows the others.\n  "
            + "\n  ".join(f"{c.study}: {c.error}" for c in failed))
    return result


def _stem(name: str) -> str:
    from sweeplab.dashboards.report import safe_file_stem

    return safe_file_stem(name)

"""Recording learning curves: train every configuration of a finite space, keep each epoch.

A record spec (YAML) says what to train::

    table: digits              # the table's name ([A-Za-z0-9._-])
    objective:                 # as in a study spec: framework torch or keras, task, dataset, epochs...
      dataset: {name: digits}
      epochs: 10
    space: mlp-grid            # every parameter with finite values: categorical, int, or float with a step
    seed: 0                    # generates and splits the dataset (and draws the sample)
    seeds: 2                   # trial seeds: N (0..N-1) or a list; every configuration is trained with each
    sample: 100                # optional: this many configurations drawn at random (default: all of them)
    resources: {cpu: 1}        # threads per trial

:func:`record_table` trains each configuration with each seed through the real
objective (:func:`~sweeplab.search.worker.execute_trial`, as a study's worker runs a
trial, here in this process, one trial at a time, after one unrecorded warm-up trial),
timing every epoch between its reports, and writes the table (:mod:`sweeplab.search.curves`) with the machine it ran
on. A trial that fails (a diverged loss) is recorded as failed, with its epochs until
then. The file is written once, at the end, atomically.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import os
import platform
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeplab.core.checks import check_int, check_keys, describe
from sweeplab.core.errors import Problem, SpecError
from sweeplab.core.records import FAILED, TrialTicket, failure_key
from sweeplab.search.curves import CurveTable, EpochRecord, RecordedTrial, TableInfo, write_table
from sweeplab.spaces.params import FixedParam, FloatParam
from sweeplab.spec import StudySpec, apply_overrides, parse_spec, read_spec_file, validate_study_name

__all__ = ["MAX_TRIALS", "RECORD_KEYS", "RecordSpec", "load_record_spec", "machine_info", "parse_record_spec",
           "record_table", "record_text"]

RECORD_KEYS = ("table", "objective", "space", "seed", "seeds", "sample", "resources")
"""The keys of a record spec (see the module docstring)."""
RECORDED_FRAMEWORKS = ("torch", "keras")
MAX_TRIALS = 100_000
"""A record spec asking more trials than this (configurations x seeds) without ``sample`` is refused."""
_MONITOR = "val_loss"  # what the worker checks the objective returned; every network objective returns it
_VERSIONS = ("sweeplab", "torch", "tensorflow", "numpy", "scikit-learn", "optuna")


@dataclass(frozen=True)
class RecordSpec:
    """A validated record spec: the table's name, the study spec its objective, space, data
    seed and resources come from, the trial seeds, and the sample size (None: every configuration)."""

    table: str
    spec: StudySpec
    seeds: tuple[int, ...]
    sample: int | None
    source: str = "record spec"

    def configurations(self) -> list[tuple[int, dict[str, Any]]]:
        """``(index, raw params)`` of every configuration to record, in grid order.

        The index is the configuration's position in the full grid (the product of
        :meth:`~sweeplab.spaces.space.SearchSpace.grid`'s values, in its order); with
        ``sample``, a random subset of them drawn with the spec's seed. Raw params include
        the space's fixed values, as a sampler's trial holds them.
        """
        space = self.spec.space
        grid = space.grid()
        fixed = {p.name: p.raw_value for p in space.params if isinstance(p, FixedParam)}
        size = space.grid_size()
        chosen = (set(random.Random(self.spec.seed).sample(range(size), self.sample))
                  if self.sample is not None and self.sample < size else None)
        out = []
        for index, combo in enumerate(itertools.product(*grid.values())):
            if chosen is None or index in chosen:
                out.append((index, {**fixed, **dict(zip(grid, combo, strict=True))}))
        return out


def _seeds(value: Any, problems: list[Problem]) -> list[int] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        n = check_int(value, "seeds", problems, minimum=1, maximum=1000)
        return list(range(n)) if n is not None else None
    if not isinstance(value, list) or not value:
        problems.append(Problem("seeds", f"must be a number of seeds N (seeds 0..N-1) or a non-empty list of "
                                         f"seeds, got {describe(value)}"))
        return None
    before = len(problems)
    seeds = [check_int(v, f"seeds[{i}]", problems, minimum=0, maximum=2**32 - 1) for i, v in enumerate(value)]
    for i, s in enumerate(seeds):
        if s is not None and seeds.index(s) != i:
            problems.append(Problem(f"seeds[{i}]", f"seed {s} is listed twice"))
    return [s for s in seeds if s is not None] if len(problems) == before else None


def parse_record_spec(data: Mapping[str, Any], source: str = "record spec") -> RecordSpec:
    """Validate a loaded record spec; SpecError lists every problem with its YAML path."""
    if not isinstance(data, Mapping):
        raise SpecError([Problem("", f"a record spec must be a mapping of keys, got {describe(data)}")], source)
    problems: list[Problem] = []
    check_keys(data, RECORD_KEYS, "", problems)
    table = data.get("table")
    if table is None:
        problems.append(Problem("table", "required: the table's name ([A-Za-z0-9._-])"))
    else:
        try:
            validate_study_name(table)
        except SpecError as exc:
            problems.extend(Problem("table", p.message) for p in exc.problems)
    seeds = _seeds(data.get("seeds", 1), problems)
    sample = data.get("sample")
    if sample is not None:
        sample = check_int(sample, "sample", problems, minimum=1)
    objective = data.get("objective")
    framework = objective.get("framework", "torch") if isinstance(objective, Mapping) else "torch"
    if framework not in RECORDED_FRAMEWORKS and isinstance(framework, str):
        problems.append(Problem("objective.framework", f"a table records sweeplab's networks: use one of "
                                                       f"{', '.join(RECORDED_FRAMEWORKS)}, got {framework!r}"))
    study = {"study": "record", "metric": _MONITOR, "direction": "minimize",
             **{k: copy.deepcopy(v) for k, v in data.items() if k in ("objective", "space", "seed", "resources")}}
    if "objective" not in data:
        problems.append(Problem("objective", "required: what each configuration trains (framework, task, "
                                             "dataset, epochs...)"))
        study["objective"] = {}
    spec = None
    try:
        spec = parse_spec(study, source)
    except SpecError as exc:
        problems.extend(p for p in exc.problems if p.path != "objective" or "objective" in data)
    if spec is not None:
        for name, why in spec.space.grid_problems():
            if isinstance(spec.space.get(name), FloatParam):
                why = "a continuous float range has no finite set of values to record; give it a step or make it " \
                      "categorical (a list of values)"
            problems.append(Problem(f"space.{name}", f"a table records a finite space: {why}"))
        if not spec.space.grid_problems() and sample is None and seeds is not None:
            size = spec.space.grid_size()
            if size * len(seeds) > MAX_TRIALS:
                problems.append(Problem("space", f"{size} configurations x {len(seeds)} seeds is more than "
                                                 f"{MAX_TRIALS} trials to record; discretise the space further or "
                                                 "record a `sample` of it"))
    if problems:
        raise SpecError(problems, source)
    assert spec is not None and seeds is not None and isinstance(table, str)
    return RecordSpec(table=table, spec=spec, seeds=tuple(seeds), sample=sample, source=source)


def load_record_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> RecordSpec:
    """Read the record spec YAML at ``path``, apply ``overrides`` (dotted keys), validate."""
    data = read_spec_file(path, "record spec", "`table`, `objective` and `space`")
    if isinstance(data, Mapping) and overrides:
        data = apply_overrides(data, overrides)
    return parse_record_spec(data, str(path))


def machine_info() -> dict[str, Any]:
    """Where a table is recorded: platform, processor, CPU count, Python and library versions."""
    from importlib import metadata

    versions: dict[str, str] = {}
    for name in _VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "versions": versions}


class _Stopwatch:
    """A trial's reporter that keeps every epoch with the wall time since the previous report."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.epochs: list[EpochRecord] = []

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        now = time.perf_counter()
        self.epochs.append(EpochRecord(int(epoch), now - self.last, {str(k): float(v) for k, v in metrics.items()}))
        self.last = now


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - no load average on this platform
        return None


def record_table(record: RecordSpec, path: str | Path, *, progress: bool = True) -> CurveTable:
    """Train every configuration of ``record`` with every seed and write the table to ``path``.

    Bad data raises DataError before any training. Progress goes to stderr (a line per
    tenth). Returns the table as written.
    """
    from sweeplab.objectives.trial import NullReporter
    from sweeplab.search.worker import execute_trial, warm_worker
    from sweeplab.study.session import load_study_dataset

    spec = record.spec
    dataset = load_study_dataset(spec)
    assert dataset is not None  # torch/keras objectives always have one
    configs = record.configurations()
    # A process's first trial pays one-time costs (imports, first kernels and allocations) that belong to
    # no configuration: pay them on a trial that is not recorded.
    warm_worker(spec.objective.framework, None)
    first = TrialTicket(number=-1, raw_params=dict(configs[0][1]), params=spec.space.resolve(configs[0][1]),
                        seed=record.seeds[0], framework=spec.objective.framework, prunable=False)
    execute_trial(first, dataset, spec.objective, [_MONITOR], None, spec.resources.cpu, 0.0, NullReporter())
    total = len(configs) * len(record.seeds)
    machine = {**machine_info(), "load_average_start": _load()}
    started = time.perf_counter()
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    trials: list[RecordedTrial] = []
    done = 0
    for index, raw in configs:
        params = spec.space.resolve(raw)
        for seed in record.seeds:
            ticket = TrialTicket(number=index, raw_params=dict(raw), params=params, seed=seed,
                                 framework=spec.objective.framework, prunable=False)
            watch = _Stopwatch()
            outcome = execute_trial(ticket, dataset, spec.objective, [_MONITOR], None, spec.resources.cpu, 0.0, watch)
            end = time.perf_counter() - watch.last
            failed = outcome.state == FAILED
            trials.append(RecordedTrial(config=index, seed=seed, params=dict(raw), epochs=tuple(watch.epochs),
                                        state=outcome.state, result={} if failed else dict(outcome.metrics),
                                        reason=failure_key(outcome.reason) if failed else None, end_seconds=end))
            done += 1
            if progress and (done == total or done % max(1, total // 10) == 0):
                sys.stderr.write(f"{record.table}: {done}/{total} trials recorded, "
                                 f"{time.perf_counter() - started:.0f} s\n")
                sys.stderr.flush()
    metrics: dict[str, None] = {}
    for t in trials:
        for e in t.epochs:
            metrics.update(dict.fromkeys(e.metrics))
    for t in trials:
        metrics.update(dict.fromkeys(t.result))
    machine["load_average_end"] = _load()
    info = TableInfo(name=record.table, space=spec.space.to_dict(), objective=spec.objective.to_dict(),
                     data_seed=spec.seed, seeds=record.seeds, n_features=int(dataset.n_features),
                     n_outputs=int(dataset.n_outputs), grid_size=spec.space.grid_size(), n_configs=len(configs),
                     metrics=tuple(metrics), machine=machine, recorded_at=stamp, cpus=spec.resources.cpu,
                     wall_seconds=round(time.perf_counter() - started, 3))
    table = CurveTable(info, trials, str(path))
    write_table(table, path)
    return table


def record_text(table: CurveTable, path: str | Path) -> str:
    """What ``sweeplab bench record`` prints: the table, its size and what it holds."""
    info = table.info
    failed = sum(1 for t in table.trials if t.state == FAILED)
    size = Path(path).stat().st_size if Path(path).exists() else 0
    return "\n".join([
        f"table      {info.name}: {info.n_configs} of {info.grid_size} configurations x {len(info.seeds)} seeds "
        f"= {len(table.trials)} trials ({failed} failed), {info.wall_seconds:.0f} s",
        f"wrote      {path} ({size / 1024:.0f} KiB)",
        f"metrics    {', '.join(info.metrics)}",
        f"machine    {info.machine.get('platform')}, {info.machine.get('cpu_count')} CPUs",
    ])

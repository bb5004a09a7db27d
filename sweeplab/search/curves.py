"""Recorded learning curves: the table a simulated study replays (format, reading, lookup).

A table holds, for every recorded configuration of a finite search space and every
recorded seed, what training it did: each epoch's metrics and its duration in seconds,
then how the trial ended. It is one Parquet file (written by ``sweeplab bench record``,
:mod:`sweeplab.bench.record`), one row per epoch plus one row per trial's end:

=================  ==========  =====================================================
column             type        meaning
=================  ==========  =====================================================
``config``         int32       index of the configuration in the space's grid order
                               (:meth:`~sweeplab.spaces.space.SearchSpace.grid`)
``seed``           int64       the trial seed it was trained with
``epoch``          int32       1, 2, ... for an epoch; 0 for the trial's end
``seconds``        float64     the epoch's wall time (from the previous report, the
                               first from the trial's start); on the end row, the
                               time from the last report to the trial's end (final
                               evaluation)
``state``          string      end row: ``COMPLETE`` or ``FAIL``; null on epoch rows
``reason``         string      end row of a FAIL: the error's first line
``p.NAME``         per param   the configuration's value of parameter NAME, as Optuna
                               records it (categorical choices encoded)
``m.NAME``         float64     epoch rows: the metric reported for the epoch; end
                               row: the objective's returned metric; null if absent
=================  ==========  =====================================================

The file's schema metadata (key :data:`METADATA_KEY`, JSON) is a :class:`TableInfo`:
the format (:data:`CURVES_FORMAT`), the table's name, the space (its YAML form), the
objective (its YAML form: task, dataset, epochs, splits...), the data split's seed, the
recorded seeds, the dataset's widths, and the machine it was recorded on.

:meth:`CurveTable.lookup` finds the recorded trial of a configuration and a trial seed:
every value must be one the table recorded for its parameter (floats match to 12
significant digits, so a stepped float Optuna computes as ``0.30000000000000004`` finds
``0.3``), and the trial seed picks one of the recorded seeds (``seed % n_seeds``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeplab.core.errors import DataError, Problem, SpecError

__all__ = [
    "CURVES_FORMAT",
    "END_EPOCH",
    "METADATA_KEY",
    "CurveTable",
    "EpochRecord",
    "RecordedTrial",
    "TableError",
    "TableInfo",
    "read_table",
    "read_table_info",
    "write_table",
]

CURVES_FORMAT = "sweeplab-curves/1"
"""The format this module reads and writes; a table of another format is refused."""
METADATA_KEY = b"sweeplab.curves"
"""The Parquet schema metadata key holding the :class:`TableInfo` as JSON."""
END_EPOCH = 0
"""The ``epoch`` of a trial's end row."""
PARAM_PREFIX = "p."
METRIC_PREFIX = "m."


class TableError(DataError):
    """A recorded-curves table that cannot be used: missing, not Parquet, not a sweeplab
    table, of another format version, or inconsistent with its own metadata."""


@dataclass(frozen=True)
class EpochRecord:
    """One recorded epoch: its 1-based number, wall seconds and reported metrics."""

    epoch: int
    seconds: float
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class RecordedTrial:
    """One configuration trained with one seed, as it happened.

    ``params``: the raw values by parameter name (as Optuna records them). ``state``:
    ``COMPLETE`` (``result`` holds the returned metrics) or ``FAIL`` (``reason``).
    ``end_seconds``: from the last epoch's report (or the start, without epochs) to the
    trial's end.
    """

    config: int
    seed: int
    params: Mapping[str, Any]
    epochs: tuple[EpochRecord, ...]
    state: str
    result: Mapping[str, float]
    reason: str | None
    end_seconds: float

    @property
    def seconds(self) -> float:
        """The trial's whole wall time: every epoch and the end."""
        return sum(e.seconds for e in self.epochs) + self.end_seconds


@dataclass(frozen=True)
class TableInfo:
    """A table's metadata (see the module docstring).

    ``space`` / ``objective``: the YAML forms of the recorded space and objective;
    ``data_seed``: the seed the dataset was generated and split with; ``seeds``: the
    trial seeds recorded for every configuration; ``n_features`` / ``n_outputs``: the
    dataset's widths (what ``constraints.max_params`` counts with); ``grid_size``: the
    space's configurations, of which ``n_configs`` were recorded; ``metrics``: every
    metric name in the table; ``machine``: platform, CPUs, library versions, load;
    ``cpus``: threads per trial; ``wall_seconds``: the recording's duration.
    """

    name: str
    space: Mapping[str, Any]
    objective: Mapping[str, Any]
    data_seed: int
    seeds: tuple[int, ...]
    n_features: int
    n_outputs: int
    grid_size: int
    n_configs: int
    metrics: tuple[str, ...]
    machine: Mapping[str, Any] = field(default_factory=dict)
    recorded_at: str = ""
    cpus: float = 1.0
    wall_seconds: float = 0.0
    format: str = CURVES_FORMAT

    @property
    def complete(self) -> bool:
        """True when every configuration of the space was recorded."""
        return self.n_configs == self.grid_size

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON), as stored in the file."""
        return {"format": self.format, "name": self.name, "space": dict(self.space),
                "objective": dict(self.objective), "data_seed": self.data_seed, "seeds": list(self.seeds),
                "n_features": self.n_features, "n_outputs": self.n_outputs, "grid_size": self.grid_size,
                "n_configs": self.n_configs, "metrics": list(self.metrics), "machine": dict(self.machine),
                "recorded_at": self.recorded_at, "cpus": self.cpus, "wall_seconds": self.wall_seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str) -> TableInfo:
        """The info of a stored table; TableError naming ``source`` when it is not one of this format."""
        fmt = data.get("format")
        if fmt != CURVES_FORMAT:
            raise TableError(f"{source}: a table of format {fmt!r}, this sweeplab reads {CURVES_FORMAT!r}; "
                             "record it again with `sweeplab bench record`")
        try:
            return cls(name=str(data["name"]), space=dict(data["space"]), objective=dict(data["objective"]),
                       data_seed=int(data["data_seed"]), seeds=tuple(int(s) for s in data["seeds"]),
                       n_features=int(data["n_features"]), n_outputs=int(data["n_outputs"]),
                       grid_size=int(data["grid_size"]), n_configs=int(data["n_configs"]),
                       metrics=tuple(str(m) for m in data["metrics"]), machine=dict(data.get("machine") or {}),
                       recorded_at=str(data.get("recorded_at", "")), cpus=float(data.get("cpus", 1.0)),
                       wall_seconds=float(data.get("wall_seconds", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise TableError(f"{source}: the table's metadata is incomplete or broken ({type(exc).__name__}: "
                             f"{exc}); record it again with `sweeplab bench record`") from None


def _canon(value: Any) -> Any:
    """The lookup key of a parameter value: floats to 12 significant digits, the rest as is."""
    if isinstance(value, float) and not isinstance(value, bool) and math.isfinite(value):
        return float(f"{value:.12g}")
    return value


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (bool, str)) or value is None else repr(value)


class CurveTable:
    """A recorded table in memory: its :class:`TableInfo` and every :class:`RecordedTrial`.

    ``source`` names the file in messages.
    """

    def __init__(self, info: TableInfo, trials: Sequence[RecordedTrial], source: str = "table") -> None:
        self.info = info
        self.trials = tuple(trials)
        self.source = source
        names = list(self.param_names)
        self._index: dict[tuple[Any, ...], dict[int, RecordedTrial]] = {}
        values: dict[str, dict[Any, Any]] = {n: {} for n in names}
        for t in self.trials:
            key = tuple(_canon(t.params[n]) for n in names)
            self._index.setdefault(key, {})[t.seed] = t
            for n in names:
                values[n].setdefault(_canon(t.params[n]), t.params[n])
        self._values = {n: list(v.values()) for n, v in values.items()}

    @property
    def param_names(self) -> tuple[str, ...]:
        """The recorded parameters, in the order of the space."""
        return tuple(self.info.space)

    def recorded_values(self, name: str) -> list[Any]:
        """The values recorded for parameter ``name``, in the order first met."""
        return list(self._values.get(name, []))

    def value_recorded(self, name: str, value: Any) -> bool:
        """True when ``value`` is one the table recorded for parameter ``name``."""
        return any(_canon(value) == _canon(v) for v in self._values.get(name, []))

    def lookup(self, raw_params: Mapping[str, Any], seed: int) -> RecordedTrial:
        """The recorded trial of configuration ``raw_params`` for trial seed ``seed``.

        The recorded seed is ``info.seeds[seed % len(info.seeds)]``. Raises SpecError (path
        ``space.NAME``) naming the parameter and its recorded values when a value was not
        recorded or a parameter is missing, and naming the configuration when every value
        was recorded but not that combination (a table of a sample of the space).
        """
        problems: list[Problem] = []
        for name in self.param_names:
            if name not in raw_params:
                problems.append(Problem(f"space.{name}", f"the table {self.info.name} varies `{name}` (recorded: "
                                        f"{', '.join(_shown(v) for v in self._values[name])}) but the trial has "
                                        "no value for it; search it or fix it to a recorded value"))
            elif not self.value_recorded(name, raw_params[name]):
                problems.append(Problem(f"space.{name}", f"value {_shown(raw_params[name])} was not recorded in "
                                        f"the table {self.info.name}; recorded values: "
                                        f"{', '.join(_shown(v) for v in self._values[name])}"))
        if problems:
            raise SpecError(problems, self.source)
        key = tuple(_canon(raw_params[n]) for n in self.param_names)
        by_seed = self._index.get(key)
        if not by_seed:
            shown = ", ".join(f"{n}={_shown(raw_params[n])}" for n in self.param_names)
            raise SpecError([Problem("space", f"the configuration {shown} was not recorded in the table "
                                     f"{self.info.name} (it holds {self.info.n_configs} of the space's "
                                     f"{self.info.grid_size} configurations); record every configuration "
                                     "(no `sample`) to simulate any search of this space")], self.source)
        wanted = self.info.seeds[int(seed) % len(self.info.seeds)]
        if wanted in by_seed:
            return by_seed[wanted]
        return by_seed[min(by_seed)]  # pragma: no cover - a recorder writes every seed of every config


# ---------------------------------------------------------------------- Parquet
def _column_type(values: list[Any]) -> Any:
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.float64()
    return pa.string()


def write_table(table: CurveTable, path: str | Path) -> Path:
    """Write ``table`` to the Parquet file ``path`` (its folder created), atomically: the
    file is written beside and renamed, so an interrupted write leaves no partial table."""
    import os
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    names = table.param_names
    metrics = list(table.info.metrics)
    cols: dict[str, list[Any]] = {"config": [], "seed": [], "epoch": [], "seconds": [], "state": [], "reason": []}
    cols.update({PARAM_PREFIX + n: [] for n in names})
    cols.update({METRIC_PREFIX + m: [] for m in metrics})

    def row(t: RecordedTrial, epoch: int, seconds: float, values: Mapping[str, float], end: bool) -> None:
        cols["config"].append(t.config)
        cols["seed"].append(t.seed)
        cols["epoch"].append(epoch)
        cols["seconds"].append(float(seconds))
        cols["state"].append(t.state if end else None)
        cols["reason"].append(t.reason if end else None)
        for n in names:
            cols[PARAM_PREFIX + n].append(t.params[n])
        for m in metrics:
            v = values.get(m)
            cols[METRIC_PREFIX + m].append(float(v) if v is not None else None)

    for t in table.trials:
        for e in t.epochs:
            row(t, e.epoch, e.seconds, e.metrics, end=False)
        row(t, END_EPOCH, t.end_seconds, t.result, end=True)
    types = {"config": pa.int32(), "seed": pa.int64(), "epoch": pa.int32(), "seconds": pa.float64(),
             "state": pa.string(), "reason": pa.string()}
    arrays = {k: pa.array(v, type=types.get(k) or (pa.float64() if k.startswith(METRIC_PREFIX) else _column_type(v)))
              for k, v in cols.items()}
    schema_meta = {METADATA_KEY: json.dumps(table.info.to_dict(), sort_keys=True).encode()}
    out = pa.table(arrays).replace_schema_metadata(schema_meta)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    os.close(fd)
    try:
        pq.write_table(out, tmp, compression="zstd")
        os.chmod(tmp, 0o644)  # mkstemp's file is private; a table is meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _open(path: str | Path) -> Any:
    import pyarrow.parquet as pq

    source = str(path)
    if not Path(path).is_file():
        raise TableError(f"the table {source} does not exist; record one with `sweeplab bench record`, or name a "
                         "shipped table")
    try:
        return pq.ParquetFile(source)
    except Exception as exc:
        raise TableError(f"{source} is not a Parquet file ({type(exc).__name__}: {exc})") from None


def _info_of(schema: Any, source: str) -> TableInfo:
    meta = schema.metadata or {}
    if METADATA_KEY not in meta:
        raise TableError(f"{source} is a Parquet file but not a sweeplab table of learning curves (no "
                         f"{METADATA_KEY.decode()} metadata); record one with `sweeplab bench record`")
    try:
        data = json.loads(meta[METADATA_KEY])
    except ValueError as exc:
        raise TableError(f"{source}: its {METADATA_KEY.decode()} metadata is not JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise TableError(f"{source}: its {METADATA_KEY.decode()} metadata is not a mapping")
    return TableInfo.from_dict(data, source)


def read_table_info(path: str | Path) -> TableInfo:
    """The :class:`TableInfo` of the table at ``path`` (reads the metadata only)."""
    return _info_of(_open(path).schema_arrow, str(path))


def read_table(path: str | Path) -> CurveTable:
    """Read the table at ``path``. Raises TableError when it is missing, not Parquet, not a
    sweeplab table, of another format, or lacks a column its metadata names."""
    source = str(path)
    handle = _open(path)
    info = _info_of(handle.schema_arrow, source)
    data = handle.read().to_pydict()
    needed = ["config", "seed", "epoch", "seconds", "state", "reason",
              *(PARAM_PREFIX + n for n in info.space), *(METRIC_PREFIX + m for m in info.metrics)]
    missing = [c for c in needed if c not in data]
    if missing:
        raise TableError(f"{source}: columns {', '.join(missing)} are missing; record the table again")
    params = [(n, data[PARAM_PREFIX + n]) for n in info.space]
    metrics = [(m, data[METRIC_PREFIX + m]) for m in info.metrics]
    epochs: dict[tuple[int, int], list[EpochRecord]] = {}
    trials: list[RecordedTrial] = []
    for i in range(len(data["config"])):
        key = (int(data["config"][i]), int(data["seed"][i]))
        values = {m: float(col[i]) for m, col in metrics if col[i] is not None}
        epoch = int(data["epoch"][i])
        if epoch != END_EPOCH:
            epochs.setdefault(key, []).append(EpochRecord(epoch, float(data["seconds"][i]), values))
            continue
        trials.append(RecordedTrial(
            config=key[0], seed=key[1], params={n: col[i] for n, col in params},
            epochs=tuple(sorted(epochs.pop(key, []), key=lambda e: e.epoch)), state=str(data["state"][i]),
            result=values, reason=data["reason"][i], end_seconds=float(data["seconds"][i])))
    if epochs:
        config, seed = next(iter(epochs))
        raise TableError(f"{source}: config {config} seed {seed} has epochs but no end row; record the table again")
    return CurveTable(info, trials, source)

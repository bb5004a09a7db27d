"""The bench spec: a study spec plus the factors a benchmark crosses.

A bench spec (YAML) holds the keys of a study spec (``objective``, ``space``,
``metric``, ``direction``, ``trials``, ``workers``, ``resources``, ...) with ``bench:
NAME`` instead of ``study``, and::

    factors:                       # every list is optional
      samplers: [tpe, random]      # names, or mappings {name: tpe, label: tpe-uni, multivariate: false}
      pruners: [none, {name: median, n_warmup_steps: 2}]
      frameworks: [torch, keras]
      seeds: 3                     # an int N means seeds 0..N-1, or a list [0, 1, 2]
    target: 0.9                    # optional: the metric value to reach
    parallel_cells: 1              # cells run at once (threads of one driver)
    audit: 0                       # pruned trials re-trained per cell by the pruning audit
    simulate: {table: digits}      # optional: replay a recorded table instead of training

:func:`load_bench_spec` / :func:`parse_bench_spec` validate it into a frozen
:class:`BenchSpec` whose :attr:`BenchSpec.cells` are the cross product
``seeds x samplers x pruners x frameworks`` (seed-major, so an interrupted benchmark
has whole seeds done), each a :class:`BenchCell` holding the validated
:class:`~sweeplab.spec.StudySpec` of its study, named
``{bench}.{sampler}.{pruner}.{framework}.s{seed}`` and logged to the MLflow experiment
``experiment`` (default: the bench name).

``simulate`` makes a simulated bench (:mod:`sweeplab.bench.simulate`): ``table`` names a
shipped table or a Parquet file of recorded learning curves (relative to the bench
spec's folder); ``objective`` and ``space`` default to the table's, and every cell must
fit the table (its objective, its recorded values, no ``timeout``, no ``audit``).

A factor replaces its study key: give ``sampler`` or ``factors.samplers`` (likewise
``pruner`` / ``pruners``, ``seed`` / ``seeds``, ``objective.framework`` /
``frameworks``), not both. When a factor is absent its single level is the study key's
value (or its default). Every problem is reported at once as a
:class:`~sweeplab.core.errors.SpecError` whose paths are YAML paths of the bench file
(``factors.samplers[1].name``, ``space.x.low``); a problem a cell's study spec has is
mapped back to where it comes from (``sampler.foo`` of the second sampler ->
``factors.samplers[1].foo``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeplab.bench.simulate import Simulation, resolve_table, shipped_tables
from sweeplab.core.checks import (
    check_int,
    check_keys,
    check_mapping,
    check_number,
    check_plain_data,
    check_str,
    describe,
    join,
)
from sweeplab.core.errors import Problem, SpecError
from sweeplab.registry.search import DEFAULT_PRUNER, DEFAULT_SAMPLER
from sweeplab.spec import (
    FRAMEWORKS,
    PRUNERS,
    SAMPLERS,
    TOP_KEYS,
    StudySpec,
    absolute_callable,
    apply_overrides,
    parse_spec,
    read_spec_file,
)

__all__ = [
    "BENCH_KEYS",
    "FACTOR_KEYS",
    "BenchCell",
    "BenchSpec",
    "Level",
    "load_bench_spec",
    "parse_bench_spec",
]

BENCH_KEYS = ("bench", "factors", "target", "parallel_cells", "audit", "simulate")
"""Keys of a bench spec that a study spec does not have."""
FACTOR_KEYS = ("samplers", "pruners", "frameworks", "seeds")
SIMULATE_KEYS = ("table",)
_STUDY_KEYS = tuple(k for k in TOP_KEYS if k != "study")
_LABEL_RE = re.compile(r"[A-Za-z0-9_-]+")
_SEED_MAX = 2**32 - 1
# factor -> (study key it replaces, YAML path of that key)
_REPLACES = {"samplers": ("sampler", "sampler"), "pruners": ("pruner", "pruner"), "seeds": ("seed", "seed"),
             "frameworks": ("framework", "objective.framework")}


@dataclass(frozen=True)
class Level:
    """One level of the sampler or pruner factor: ``label`` names it in study names and
    reports (default: the component name); ``name`` and ``options`` build the component."""

    label: str
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``sampler`` / ``pruner`` section of a cell's study spec."""
        return {"name": self.name, **copy.deepcopy(dict(self.options))}


class ComparedConfig:
    """What a benchmark compares across seeds, for anything with ``sampler``, ``pruner``
    and ``framework`` (a cell of the spec, or its measured result)."""

    sampler: str
    pruner: str
    framework: str

    @property
    def config(self) -> tuple[str, str, str]:
        """``(sampler, pruner, framework)``."""
        return (self.sampler, self.pruner, self.framework)

    @property
    def config_label(self) -> str:
        """``"tpe / median / torch"``."""
        return " / ".join(self.config)


@dataclass(frozen=True)
class BenchCell(ComparedConfig):
    """One study of a benchmark: a sampler x pruner x framework configuration run with one seed."""

    sampler: str
    pruner: str
    framework: str
    seed: int
    spec: StudySpec

    @property
    def study(self) -> str:
        """The cell's study name, ``{bench}.{sampler}.{pruner}.{framework}.s{seed}``."""
        return self.spec.study


@dataclass(frozen=True)
class BenchSpec:
    """A validated bench spec (see the module docstring).

    ``cells`` are ordered seed-major; every cell's spec is a valid single-objective
    :class:`StudySpec` whose ``experiment`` is :attr:`experiment`. ``data`` is the spec
    as loaded (overrides applied; a simulated bench's objective and space filled in from
    its table), for the record on the bench's MLflow run. ``simulate``: the recorded
    table a simulated bench replays, None for a bench that trains.
    """

    bench: str
    experiment: str
    samplers: tuple[Level, ...]
    pruners: tuple[Level, ...]
    frameworks: tuple[str, ...]
    seeds: tuple[int, ...]
    target: float | None
    parallel_cells: int
    audit: int
    cells: tuple[BenchCell, ...]
    data: Mapping[str, Any] = field(default_factory=dict)
    source: str = "bench spec"
    simulate: Simulation | None = None

    @property
    def metric(self) -> str:
        """The metric every cell optimizes."""
        return self.cells[0].spec.metric[0]

    @property
    def direction(self) -> str:
        """``maximize`` or ``minimize``."""
        return self.cells[0].spec.direction[0]

    @property
    def trials(self) -> int:
        """Trials per cell."""
        return self.cells[0].spec.trials

    def configs(self) -> list[tuple[str, str, str]]:
        """The distinct ``(sampler, pruner, framework)`` configurations, in factor order."""
        seen: dict[tuple[str, str, str], None] = {}
        for cell in self.cells:
            seen.setdefault(cell.config, None)
        return list(seen)


# ---------------------------------------------------------------------- factors
def _parse_levels(value: Any, path: str, names: tuple[str, ...], problems: list[Problem]) -> list[Level] | None:
    """A non-empty list of component names or ``{name, label?, **options}`` mappings."""
    if not isinstance(value, list) or not value:
        problems.append(Problem(path, f"must be a non-empty list of names or mappings, got {describe(value)}"))
        return None
    before = len(problems)
    levels: list[Level] = []
    for i, item in enumerate(value):
        ipath = f"{path}[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        mapping = check_mapping(item, ipath, problems)
        if mapping is None:
            continue
        if "name" not in mapping:
            problems.append(Problem(join(ipath, "name"), f"required; one of {', '.join(names)}"))
            continue
        name = check_str(mapping["name"], join(ipath, "name"), problems, choices=names, what=path.split(".")[-1][:-1])
        label = mapping.get("label", name)
        if "label" in mapping:
            check_str(label, join(ipath, "label"), problems)
        if isinstance(label, str) and label and not _LABEL_RE.fullmatch(label):
            problems.append(Problem(join(ipath, "label" if "label" in mapping else "name"),
                                    f"a label may only hold letters, digits, '_' and '-' (it is part of the "
                                    f"cell study names), got {label!r}"))
        options = {k: copy.deepcopy(v) for k, v in mapping.items() if k not in ("name", "label")}
        check_plain_data(options, ipath, problems)
        if name is not None and isinstance(label, str):
            levels.append(Level(label=label, name=name, options=options))
    seen: set[str] = set()
    for i, item in enumerate(value):
        label = _item_label(item)
        if label is not None and label in seen:
            problems.append(Problem(f"{path}[{i}]", f"label `{label}` is used twice; give the items distinct "
                                                    "`label`s (e.g. {name: tpe, label: tpe-uni, multivariate: false})"))
        elif label is not None:
            seen.add(label)
    return levels if len(problems) == before else None


def _item_label(item: Any) -> str | None:
    """The label a factor item asks for (its ``label``, else its name), or None when it has none."""
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        label = item.get("label", item.get("name"))
        return label if isinstance(label, str) else None
    return None


def _study_level(value: Any, default: str) -> Level:
    """The single level of a factor that the spec leaves to its study key (``sampler: {name: tpe}``).

    The value itself is checked by the cells' :func:`~sweeplab.spec.parse_spec`; a
    level whose value is not usable gets the label ``default`` so that checking goes on.
    """
    if value is None:
        return Level(label=default, name=default)
    name = value.get("name") if isinstance(value, Mapping) else value
    if isinstance(name, str) and _LABEL_RE.fullmatch(name):
        options = {k: v for k, v in value.items() if k != "name"} if isinstance(value, Mapping) else {}
        return Level(label=name, name=name, options=copy.deepcopy(options))
    return Level(label=default, name=default)


def _parse_frameworks(value: Any, path: str, problems: list[Problem]) -> list[str] | None:
    if not isinstance(value, list) or not value:
        problems.append(Problem(path, f"must be a non-empty list of frameworks ({', '.join(FRAMEWORKS)}), "
                                      f"got {describe(value)}"))
        return None
    before = len(problems)
    out = [check_str(v, f"{path}[{i}]", problems, choices=FRAMEWORKS, what="framework") for i, v in enumerate(value)]
    for i, fw in enumerate(out):
        if fw is not None and out.index(fw) != i:
            problems.append(Problem(f"{path}[{i}]", f"framework `{fw}` is listed twice"))
    return [fw for fw in out if fw is not None] if len(problems) == before else None


def _parse_seeds(value: Any, path: str, problems: list[Problem]) -> list[int] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        n = check_int(value, path, problems, minimum=1, maximum=10_000)
        return list(range(n)) if n is not None else None
    if not isinstance(value, list) or not value:
        problems.append(Problem(path, f"must be a number of seeds N (seeds 0..N-1) or a non-empty list of seeds, "
                                      f"got {describe(value)}"))
        return None
    before = len(problems)
    seeds = [check_int(v, f"{path}[{i}]", problems, minimum=0, maximum=_SEED_MAX) for i, v in enumerate(value)]
    for i, s in enumerate(seeds):
        if s is not None and seeds.index(s) != i:
            problems.append(Problem(f"{path}[{i}]", f"seed {s} is listed twice"))
    return [s for s in seeds if s is not None] if len(problems) == before else None


# ---------------------------------------------------------------------- problem paths
def _remap(problem: Problem, cell_index: dict[str, int]) -> Problem:
    """Map a problem of a cell's study spec to the bench file's YAML path."""
    path, msg = problem.path, problem.message
    for factor, (_key, key_path) in _REPLACES.items():
        if factor not in cell_index:
            continue
        base = f"factors.{factor}" if factor == "seeds" else f"factors.{factor}[{cell_index[factor]}]"
        if path == key_path or path.startswith(key_path + "."):
            return Problem(base + path[len(key_path):], msg)
    if path == "study":
        return Problem("bench", f"cell study name: {msg}")
    return problem


def _iter_cells(
    samplers: list[Level], pruners: list[Level], frameworks: list[str], seeds: list[int]
) -> Iterator[tuple[int, int, int, int]]:
    for si in range(len(seeds)):
        for a in range(len(samplers)):
            for p in range(len(pruners)):
                for f in range(len(frameworks)):
                    yield si, a, p, f


# ---------------------------------------------------------------------- entry points
def parse_bench_spec(data: Mapping[str, Any], source: str = "bench spec") -> BenchSpec:
    """Validate a loaded bench spec mapping and return its :class:`BenchSpec`.

    Raises :class:`SpecError` (with ``source``) listing every problem at once, each with
    the YAML path of the bench file; problems shared by every cell are listed once.
    """
    if not isinstance(data, Mapping):
        raise SpecError([Problem("", f"a bench spec must be a mapping of keys, got {describe(data)}")], source)
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise SpecError([Problem("", f"keys must be strings, got {describe(bad[0])}")], source)
    problems: list[Problem] = []
    if "study" in data:
        problems.append(Problem("study", "a bench spec names its benchmark with `bench:`; its cell studies are "
                                         "named {bench}.{sampler}.{pruner}.{framework}.s{seed}"))
    check_keys({k: v for k, v in data.items() if k != "study"}, (*BENCH_KEYS, *_STUDY_KEYS), "", problems)

    bench = None
    if "bench" not in data:
        problems.append(Problem("bench", "required: the benchmark's name ([A-Za-z0-9._-])"))
    else:
        from sweeplab.spec import validate_study_name

        try:
            bench = validate_study_name(data["bench"])
        except SpecError as exc:
            problems.extend(Problem("bench", p.message) for p in exc.problems)

    target = data.get("target")
    if target is not None:
        target = check_number(target, "target", problems)
    parallel = check_int(data.get("parallel_cells", 1), "parallel_cells", problems, minimum=1)
    audit = check_int(data.get("audit", 0), "audit", problems, minimum=0)
    direction = data.get("direction", "maximize")
    if isinstance(direction, list):
        problems.append(Problem("direction", "a benchmark compares single-objective studies: use maximize or "
                                             f"minimize, got {direction!r}"))

    factors: Mapping[str, Any] = {}
    if data.get("factors") is not None:
        factors = check_mapping(data["factors"], "factors", problems) or {}
        check_keys(factors, FACTOR_KEYS, "factors", problems)
    table = None
    simulation: Simulation | None = None
    if data.get("simulate") is not None:
        simulation, table = _parse_simulate(data["simulate"], problems)
        if table is not None:
            if audit:
                problems.append(Problem("audit", "a simulated bench re-trains nothing: the table holds every trial's "
                                                 "whole curve; use audit: 0"))
            data = _fill_from_table(data, table, "frameworks" in factors)
    objective = data.get("objective")
    for factor, (key, key_path) in _REPLACES.items():
        if factor not in factors:
            continue
        given = (isinstance(objective, Mapping) and key in objective) if key == "framework" else key in data
        if given:
            problems.append(Problem(key_path, f"the factor `factors.{factor}` replaces `{key_path}`; "
                                              "give one or the other"))

    samplers = pruners = None
    frameworks: list[str] | None = None
    seeds: list[int] | None = None
    if "samplers" in factors:
        samplers = _parse_levels(factors["samplers"], "factors.samplers", SAMPLERS, problems)
    else:
        samplers = [_study_level(data.get("sampler"), DEFAULT_SAMPLER)]
    if "pruners" in factors:
        pruners = _parse_levels(factors["pruners"], "factors.pruners", PRUNERS, problems)
    else:
        pruners = [_study_level(data.get("pruner"), DEFAULT_PRUNER)]
    if "frameworks" in factors:
        frameworks = _parse_frameworks(factors["frameworks"], "factors.frameworks", problems)
    else:
        fw = objective.get("framework", "torch") if isinstance(objective, Mapping) else "torch"
        # a bad value stays in the cells' objective, where parse_spec reports it
        frameworks = [fw if isinstance(fw, str) and _LABEL_RE.fullmatch(fw) else "torch"]
    if "seeds" in factors:
        seeds = _parse_seeds(factors["seeds"], "factors.seeds", problems)
    else:
        seed = data.get("seed", 0)
        seeds = [seed] if isinstance(seed, int) and not isinstance(seed, bool) else [0]

    if problems or bench is None or samplers is None or pruners is None or frameworks is None or seeds is None:
        # The study part may be broken too: report it once, checked for the first cell.
        if samplers and pruners and frameworks and seeds:
            problems.extend(_cell_problems(data, bench or "bench", samplers, pruners, frameworks, seeds,
                                           only_first=True, table=table))
        raise SpecError(_dedupe(problems), source)

    experiment = data.get("experiment") or bench
    cells: list[BenchCell] = []
    cell_problems: list[Problem] = []
    for si, a, p, f in _iter_cells(samplers, pruners, frameworks, seeds):
        study_data = _cell_data(data, bench, samplers[a], pruners[p], frameworks[f], seeds[si], experiment)
        index = {"samplers": a, "pruners": p, "frameworks": f, "seeds": si}
        used = {k: v for k, v in index.items() if k in factors}
        try:
            spec = parse_spec(study_data, source)
        except SpecError as exc:
            cell_problems.extend(_remap(pr, used) for pr in exc.problems)
            continue
        if table is not None:
            from sweeplab.search.simulated import table_problems

            cell_problems.extend(_remap(pr, used) for pr in table_problems(spec, table))
        cells.append(BenchCell(samplers[a].label, pruners[p].label, frameworks[f], seeds[si], spec))
    if cell_problems:
        # a too long bench name breaks every cell's study name: say it once
        named = [pr for pr in cell_problems if pr.path == "bench"]
        raise SpecError(_dedupe([pr for pr in cell_problems if pr.path != "bench"] + named[:1]), source)
    return BenchSpec(
        bench=bench,
        experiment=str(experiment),
        samplers=tuple(samplers),
        pruners=tuple(pruners),
        frameworks=tuple(frameworks),
        seeds=tuple(seeds),
        target=target,
        parallel_cells=parallel if parallel is not None else 1,
        audit=audit if audit is not None else 0,
        cells=tuple(cells),
        data=copy.deepcopy(dict(data)),
        source=source,
        simulate=simulation,
    )


def _parse_simulate(value: Any, problems: list[Problem]) -> tuple[Simulation | None, Any]:
    """The ``simulate`` section: the table's file, read (``(None, None)`` with a problem when it cannot be)."""
    from sweeplab.search.curves import TableError, read_table

    mapping = check_mapping(value, "simulate", problems)
    if mapping is None:
        return None, None
    check_keys(mapping, SIMULATE_KEYS, "simulate", problems)
    shipped = shipped_tables()
    if "table" not in mapping:
        problems.append(Problem("simulate.table", f"required: a shipped table ({', '.join(shipped) or 'none'}) or "
                                                  "the path of a table written by `sweeplab bench record`"))
        return None, None
    ref = check_str(mapping["table"], "simulate.table", problems)
    if ref is None:
        return None, None
    path = resolve_table(ref)
    if not path.is_file() and "/" not in ref and not ref.endswith(".parquet"):
        problems.append(Problem("simulate.table", f"unknown table `{ref}`; shipped tables: "
                                                  f"{', '.join(shipped) or 'none'}; or give the path of a .parquet "
                                                  "table written by `sweeplab bench record`"))
        return None, None
    try:
        table = read_table(path)
    except TableError as exc:
        problems.append(Problem("simulate.table", str(exc)))
        return None, None
    return Simulation(table=str(path), name=table.info.name), table


def _fill_from_table(data: Mapping[str, Any], table: Any, frameworks_factor: bool) -> dict[str, Any]:
    """``data`` with the table's objective and space where the bench spec leaves them out
    (without the objective's framework when a ``frameworks`` factor gives it)."""
    out = dict(data)
    if "objective" not in out:
        objective = copy.deepcopy(dict(table.info.objective))
        if frameworks_factor:
            objective.pop("framework", None)
        out["objective"] = objective
    if "space" not in out:
        out["space"] = copy.deepcopy(dict(table.info.space))
    return out


def _cell_data(data: Mapping[str, Any], bench: str, sampler: Level, pruner: Level, framework: str, seed: int,
               experiment: Any) -> dict[str, Any]:
    """The study spec mapping of one cell."""
    out = {k: copy.deepcopy(v) for k, v in data.items() if k in _STUDY_KEYS}
    out["study"] = f"{bench}.{sampler.label}.{pruner.label}.{framework}.s{seed}"
    # A factor's level replaces its study key; a key the spec gives itself (no factor)
    # stays as written, so that parse_spec reports a bad value where it is.
    if out.get("sampler") is None:
        out["sampler"] = sampler.to_dict()
    if out.get("pruner") is None:
        out["pruner"] = pruner.to_dict()
    if "seed" not in out:
        out["seed"] = seed
    objective = out.get("objective")
    if objective is None:
        objective = out["objective"] = {}
    if isinstance(objective, dict) and "framework" not in objective:
        objective["framework"] = framework
    out["experiment"] = experiment
    return out


def _cell_problems(data: Mapping[str, Any], bench: str, samplers: list[Level], pruners: list[Level],
                   frameworks: list[str], seeds: list[int], only_first: bool, table: Any = None) -> list[Problem]:
    out: list[Problem] = []
    for si, a, p, f in _iter_cells(samplers, pruners, frameworks, seeds):
        study_data = _cell_data(data, bench, samplers[a], pruners[p], frameworks[f], seeds[si], bench)
        try:
            spec = parse_spec(study_data)
        except SpecError as exc:
            out.extend(pr for pr in exc.problems if pr.path != "study")
        else:
            if table is not None:
                from sweeplab.search.simulated import table_problems

                out.extend(table_problems(spec, table))
        if only_first:
            break
    return out


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: dict[tuple[str, str], Problem] = {}
    for p in problems:
        seen.setdefault((p.path, p.message), p)
    return list(seen.values())


def load_bench_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> BenchSpec:
    """Read the bench spec YAML at ``path``, apply ``overrides``, validate.

    ``overrides`` are top-level keys or dotted paths (``trials``, ``objective.epochs``,
    ``factors.seeds``); None values are skipped (see :func:`sweeplab.spec.apply_overrides`).
    Raises :class:`SpecError` (``source`` = ``str(path)``) for a missing or unreadable
    file, a YAML syntax error (with its line), an empty file, or any rule broken.
    """
    source = str(path)
    data = read_spec_file(path, "bench spec", "`bench`, `metric`, `objective` and `space`")
    if isinstance(data, Mapping) and overrides:
        data = apply_overrides(data, overrides)
    if isinstance(data, Mapping):
        data = absolute_callable(data, Path(path).parent)  # a file callable is relative to the bench spec
        simulate = data.get("simulate")
        if isinstance(simulate, Mapping):
            ref = simulate.get("table")
            if isinstance(ref, str) and ("/" in ref or ref.endswith(".parquet")):  # a table file, not a shipped name
                data = {**data, "simulate": {**simulate, "table": str(resolve_table(ref, Path(path).parent))}}
    return parse_bench_spec(data, source)

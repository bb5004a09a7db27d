"""The study spec: YAML -> frozen dataclasses, validated at load time.

:func:`load_spec` reads a YAML file, :func:`parse_spec` an already loaded mapping; both
return a :class:`StudySpec` or raise :class:`~sweeplab.core.errors.SpecError` holding every
problem of the spec at once, each with the YAML path of the bad key
(``space.units.low``) and a message that restates the rule and echoes the value.

Nothing here touches Optuna storage or MLflow, and data files hardly: a dataset path's
suffix is checked, its existence is the data module's job; only an ``.npz`` that exists
is opened, to read its arrays' headers (names, shapes, dtypes; no data), so that
``sweeplab validate`` refuses arrays the model family cannot train on.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeplab.core.checks import (
    check_int,
    check_keys,
    check_mapping,
    check_number,
    check_plain_data,
    check_str,
    describe,
    is_int,
    is_number,
    join,
)
from sweeplab.core.defaults import DEFAULT_PRIORITY
from sweeplab.core.errors import Problem, SpecError
from sweeplab.core.validation import (
    DEFAULT_REPEATS,
    HOLDOUT,
    KFOLD,
    MIN_KFOLD,
    VALIDATION_KEYS,
    VALIDATION_MODES,
    Validation,
)
from sweeplab.registry import datasets as dataset_registry
from sweeplab.registry import search as search_registry
from sweeplab.registry.families import MODEL_FAMILIES, MODEL_NAMES
from sweeplab.registry.names import FRAMEWORK_NAMES, MLP_FRAMEWORKS
from sweeplab.registry.names import TASKS as _TASKS
from sweeplab.registry.options import Context, SpaceShape
from sweeplab.spaces import SearchSpace, parse_space
from sweeplab.spaces.params import CategoricalParam, FixedParam
from sweeplab.spaces.yaml_io import load_yaml

__all__ = [
    "DATASETS",
    "DIRECTIONS",
    "FRAMEWORKS",
    "METRICS",
    "MODELS",
    "PRUNERS",
    "SAMPLERS",
    "TASKS",
    "DatasetSpec",
    "EarlyStoppingSpec",
    "ObjectiveSpec",
    "PrunerSpec",
    "Resources",
    "SamplerSpec",
    "StudySpec",
    "absolute_callable",
    "apply_overrides",
    "load_spec",
    "parse_spec",
    "validate_study_name",
]

TOP_KEYS = (
    "study",
    "direction",
    "metric",
    "trials",
    "timeout",
    "workers",
    "resources",
    "seed",
    "sampler",
    "pruner",
    "objective",
    "space",
    "experiment",
    "max_retries",
    "constraints",
    "deterministic",
    "priority",
)
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = search_registry.sampler_names()
"""Sampler names (from :mod:`sweeplab.registry.search`)."""
PRUNERS = search_registry.pruner_names()
"""Pruner names (from :mod:`sweeplab.registry.search`)."""
FRAMEWORKS = FRAMEWORK_NAMES
TASKS = _TASKS
OBJECTIVE_KEYS = (
    "framework",
    "model",
    "task",
    "dataset",
    "epochs",
    "validation",
    "validation_split",
    "test_split",
    "early_stopping",
    "callable",
    "options",
    "init_from",
    "holdout",
)
HOLDOUT_KEYS = ("path", "target")
EARLY_STOPPING_KEYS = ("patience", "min_delta", "monitor")
RESOURCE_KEYS = ("cpu", "gpu", "custom")
RAY_BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
"""Resource names Ray sets itself; ``resources.custom`` may not name them."""
CONSTRAINT_KEYS = ("max_params",)
"""Keys of the spec's ``constraints`` section (torch/keras objectives only)."""
INIT_FROM_SCHEMES = ("models:/", "runs:/", "file:")
"""How ``objective.init_from`` may name its source model."""

DATASETS: dict[str, str] = dataset_registry.dataset_tasks()
"""Named datasets and their task (from :mod:`sweeplab.registry.datasets`, which holds their options)."""
DATA_SUFFIXES = (*dataset_registry.TABLE_SUFFIXES, *dataset_registry.ARRAY_SUFFIXES)
MODELS = MODEL_NAMES
"""Model families (``objective.model``, from :mod:`sweeplab.registry.families`); the first is the default."""
DEFAULT_MODEL = MODEL_NAMES[0]

METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("val_accuracy", "val_loss", "accuracy", "loss", "test_accuracy", "test_loss"),
    "regression": ("val_mae", "val_loss", "mae", "loss", "test_mae", "test_loss"),
}
"""Metrics of the torch/keras objectives per task (plus ``n_params`` in multi-objective studies)."""
EPOCH_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("val_loss", "val_accuracy", "loss", "accuracy"),
    "regression": ("val_loss", "val_mae", "loss", "mae"),
}
"""Metrics reported every epoch (what early stopping may monitor)."""
N_PARAMS = "n_params"
LATENCY_MS = "latency_ms"
MODEL_COST_METRICS = (N_PARAMS, LATENCY_MS)
"""Metrics of a model's cost, returned by the torch/keras objectives; studied only next to a model metric."""

STUDY_NAME_MAX = 128
_STUDY_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_CALLABLE_RE = re.compile(r"([A-Za-z_]\w*(\.[A-Za-z_]\w*)*|[^\0]*\.py):[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
CALLABLE_FORMS = "'package.module:function' or 'path/to/file.py:function'"
"""What ``objective.callable`` may look like."""
_SEED_MAX = 2**32 - 1


# ---------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class Resources:
    """Ray resources of one trial: ``cpu > 0``, ``gpu >= 0``, ``custom`` (name -> quantity > 0).

    A GPU share below 1 lets trials share one device (``gpu: 0.5``: two trials per GPU);
    above 1 it is a whole number of GPUs, as Ray requires. ``custom`` asks for resources
    the cluster's nodes declare (``ray start --resources='{"big_memory": 1}'``).
    """

    cpu: float = 1.0
    gpu: float = 0.0
    custom: Mapping[str, float] = field(default_factory=dict)

    def task_options(self) -> dict[str, Any]:
        """These resources as the options of a Ray task (``num_cpus``, ``num_gpus``, ``resources``)."""
        out: dict[str, Any] = {"num_cpus": self.cpu, "num_gpus": self.gpu}
        if self.custom:
            out["resources"] = dict(self.custom)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Canonical form (``custom`` only when set)."""
        out: dict[str, Any] = {"cpu": self.cpu, "gpu": self.gpu}
        if self.custom:
            out["custom"] = dict(self.custom)
        return out


@dataclass(frozen=True)
class SamplerSpec:
    """An Optuna sampler by name (an entry of :mod:`sweeplab.registry.search`, never ``auto``)
    and its constructor options.

    ``options`` is plain data; the search package builds the sampler from it. ``auto``:
    ``sampler: auto`` (or no ``sampler``) chose it; it is where the choice came from, not
    part of what the spec asks for (equal specs build the same sampler either way).
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    auto: bool = field(default=False, compare=False)

    @property
    def shown(self) -> str:
        """``tpe``, or ``tpe (auto)`` when ``auto`` chose it."""
        return f"{self.name} (auto)" if self.auto else self.name


@dataclass(frozen=True)
class PrunerSpec:
    """An Optuna pruner by name (an entry of :mod:`sweeplab.registry.search`, never ``auto``;
    ``none`` never prunes) and its options; ``auto`` as :class:`SamplerSpec`'s."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    auto: bool = field(default=False, compare=False)

    @property
    def shown(self) -> str:
        """``hyperband``, or ``hyperband (auto)`` when ``auto`` chose it."""
        return f"{self.name} (auto)" if self.auto else self.name


@dataclass(frozen=True)
class EarlyStoppingSpec:
    """Stop a trial's training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    patience: int
    min_delta: float = 0.0
    monitor: str = "val_loss"


@dataclass(frozen=True)
class DatasetSpec:
    """The data a trial trains on: exactly one of ``name`` and ``path``.

    ``name``: one of :data:`DATASETS`; ``options`` go to the scikit-learn generator or
    loader (``n_samples``, ``n_classes``, ...). ``path``: a CSV or Parquet file
    (``.csv``, ``.parquet``, ``.pq``) whose ``target`` column is the label, or an
    ``.npz`` holding arrays ``X`` (rows, or images ``(N, H, W[, C])``) and ``y`` (no
    ``target``). The data module checks that the file exists; an ``.npz`` that exists is
    checked here already (its array headers: names, shapes, lengths).
    """

    name: str | None = None
    path: str | None = None
    target: str = "target"
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Canonical YAML form: ``{name: ..., **options}`` or ``{path: ..., target: ...}``."""
        if self.name is not None:
            return {"name": self.name, **copy.deepcopy(dict(self.options))}
        if _is_array_file(self.path):
            return {"path": self.path}
        return {"path": self.path, "target": self.target}


@dataclass(frozen=True)
class ObjectiveSpec:
    """What a trial runs.

    ``framework``: torch | keras (the network objectives; ``dataset`` required) or python
    (``callable`` required: ``"package.module:function"`` or ``"path/to/file.py:function"``,
    a relative path being relative to the spec file's folder (made absolute by
    :func:`load_spec`, against the current directory otherwise); ``dataset`` optional;
    ``options`` passed to it as ``trial.options``). ``validation_split`` in (0, 1),
    ``test_split`` in [0, 1), their sum < 1. When the space searches ``framework``, this
    one is only the default.

    ``validation`` (:class:`~sweeplab.core.validation.Validation`): ``holdout`` (the
    default: one part of ``validation_split``), ``{kfold: K, repeats: R}`` (K-fold
    cross-validation of the rows left after the test split; ``validation_split`` is not
    used then, and a spec that gives it with ``kfold`` is refused) or ``auto`` (K-fold on a
    small table, holdout on a large one; ``validation_split`` applies when it picks holdout).

    ``model`` (torch/keras): the model family the trials build, one of :data:`MODELS`
    (``mlp``, the default, or ``cnn`` on images); its hyperparameters are what the space
    may search (:mod:`sweeplab.registry.families`).

    ``init_from`` (torch/keras only): a sweeplab model to fine-tune, ``models:/NAME@ALIAS``,
    ``models:/NAME/VERSION``, ``runs:/RUN_ID/model`` or a ``file:`` URI of a saved model
    folder. Its hidden layers (architecture and weights) are kept, the output layer is new
    for this task; the space then searches ``n_frozen_layers`` / ``finetune_learning_rate``
    and the training knobs, never the architecture (see ``sweeplab.objectives.transfer``).

    ``holdout``: a user's own held-out table, ``{path: holdout.csv, target: label}`` (CSV or
    Parquet, the dataset's feature columns and target): the test part that neither the search
    nor ``promote``'s refit touches, in place of ``test_split`` rows (``test_split`` is then 0;
    the data module checks the columns and labels when it loads it).
    """

    framework: str = "torch"
    task: str = "classification"
    dataset: DatasetSpec | None = None
    model: str = DEFAULT_MODEL
    epochs: int = 20
    validation_split: float = 0.2
    test_split: float = 0.2
    early_stopping: EarlyStoppingSpec | None = None
    callable: str | None = None
    validation: Validation = field(default_factory=Validation)
    options: Mapping[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    holdout: DatasetSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        """Canonical YAML form (``model`` only when not the default ``mlp`` and ``validation`` only
        when not ``holdout``, so the stored spec of a study made before them reads the same;
        ``validation_split`` not with K-fold, which does not use it; ``callable`` / ``options`` /
        ``init_from`` only when set)."""
        out: dict[str, Any] = {
            "framework": self.framework,
            **({"model": self.model} if self.model != DEFAULT_MODEL else {}),
            "task": self.task,
            "dataset": self.dataset.to_dict() if self.dataset is not None else None,
            "epochs": self.epochs,
            **({"validation": self.validation.to_yaml()} if self.validation.mode != HOLDOUT else {}),
            **({"validation_split": self.validation_split} if self.validation.mode != KFOLD else {}),
            "test_split": self.test_split,
            "early_stopping": (
                {
                    "patience": self.early_stopping.patience,
                    "min_delta": self.early_stopping.min_delta,
                    "monitor": self.early_stopping.monitor,
                }
                if self.early_stopping is not None
                else None
            ),
        }
        if self.callable is not None:
            out["callable"] = self.callable
        if self.options:
            out["options"] = copy.deepcopy(dict(self.options))
        if self.init_from is not None:
            out["init_from"] = self.init_from
        if self.holdout is not None:
            out["holdout"] = self.holdout.to_dict()
        return out


@dataclass(frozen=True)
class StudySpec:
    """A validated study spec.

    ``direction`` and ``metric`` are tuples of the same length (1, or 2 for a
    multi-objective study). ``experiment`` None means the MLflow experiment is named
    after the study. ``source`` names where the spec came from (a file path) for
    error messages. ``parse_spec(spec.to_dict(), spec.source) == spec``.

    ``constraints`` (torch/keras only): ``{"max_params": N}`` rejects, before training,
    every architecture with more than ``N`` trainable parameters; empty means none.

    ``deterministic``: the sampler and the pruner see the trials in the order of their
    numbers, whatever order they finish in, so a parallel study with the same seed gives
    the same trials (see :mod:`sweeplab.search.loop` and
    :mod:`sweeplab.search.coordinator`); it costs the wall time of workers waiting for
    earlier trials. ``deterministic_lag``: trial ``n`` is asked once trials up to
    ``n - lag`` were told (YAML ``deterministic: {lag: N}``, ``N >= workers``); None
    (``deterministic: true``) means ``workers``.

    ``priority`` (> 0, default 1): the study's weight when several studies share the
    service's workers (see :mod:`sweeplab.service`); a run-level setting, free to change
    on resume.
    """

    study: str
    direction: tuple[str, ...]
    metric: tuple[str, ...]
    trials: int
    timeout: float | None
    workers: int
    resources: Resources
    seed: int
    sampler: SamplerSpec
    pruner: PrunerSpec
    objective: ObjectiveSpec
    space: SearchSpace
    experiment: str | None = None
    max_retries: int = 2
    constraints: Mapping[str, int] = field(default_factory=dict)
    deterministic: bool = False
    deterministic_lag: int | None = None
    priority: float = DEFAULT_PRIORITY
    source: str = "spec"

    @property
    def multi_objective(self) -> bool:
        """True when the study optimizes more than one metric."""
        return len(self.direction) > 1

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain-data form (JSON-serializable, without ``source``; ``constraints`` and
        ``deterministic`` only when set)."""
        single = len(self.direction) == 1
        out: dict[str, Any] = {
            "study": self.study,
            "direction": self.direction[0] if single else list(self.direction),
            "metric": self.metric[0] if single else list(self.metric),
            "trials": self.trials,
            "timeout": self.timeout,
            "workers": self.workers,
            "resources": self.resources.to_dict(),
            "seed": self.seed,
            "sampler": {"name": self.sampler.name, **copy.deepcopy(dict(self.sampler.options))},
            "pruner": {"name": self.pruner.name, **copy.deepcopy(dict(self.pruner.options))},
            "objective": self.objective.to_dict(),
            "space": self.space.to_dict(),
            "experiment": self.experiment,
            "max_retries": self.max_retries,
        }
        if self.constraints:
            out["constraints"] = dict(self.constraints)
        if self.deterministic:
            out["deterministic"] = True if self.deterministic_lag is None else {"lag": self.deterministic_lag}
        if self.priority != DEFAULT_PRIORITY:
            out["priority"] = self.priority
        return out


# ---------------------------------------------------------------------- study names
def _study_name_problems(name: Any) -> list[str]:
    if not isinstance(name, str):
        hint = " (quote it in YAML)" if is_number(name) or isinstance(name, bool) else ""
        return [f"must be a string, got {describe(name)}{hint}"]
    if not name:
        return ["must be a non-empty string, got ''"]
    msgs = []
    if len(name) > STUDY_NAME_MAX:
        msgs.append(f"must be at most {STUDY_NAME_MAX} characters, got {len(name)}: {name[:40]!r}...")
    if "\0" in name:
        msgs.append(f"must not contain NUL characters, got {name!r}")
    if "/" in name or "\\" in name:
        msgs.append(f"must not contain path separators ('/' or '\\'), got {name!r}")
    if name in (".", ".."):
        msgs.append(f"must not be '.' or '..', got {name!r}")
    elif ".." in name:
        msgs.append(f"must not contain '..', got {name!r}")
    if not msgs and not _STUDY_NAME_RE.fullmatch(name):
        msgs.append(f"may only hold letters, digits, '.', '_' and '-' ([A-Za-z0-9._-]+), got {name!r}")
    return msgs


def validate_study_name(name: str) -> str:
    """Return ``name`` if it is a valid study name, else raise :class:`SpecError` (path ``study``).

    Valid: 1 to 128 characters of ``[A-Za-z0-9._-]``, not ``.`` or ``..``, without ``..``
    (so it is safe as a file or folder name).
    """
    msgs = _study_name_problems(name)
    if msgs:
        raise SpecError([Problem("study", m) for m in msgs], source="study name")
    return name


# ---------------------------------------------------------------------- sections
def _parse_names(value: Any, path: str, problems: list[Problem], choices: tuple[str, ...] | None) -> list[str] | None:
    """A string or a list of strings (each one of ``choices`` when given)."""
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        problems.append(Problem(path, "must not be an empty list"))
        return None
    out = []
    for i, item in enumerate(items):
        ipath = f"{path}[{i}]" if isinstance(value, list) else path
        name = check_str(item, ipath, problems, choices=choices, what=path)
        if name is None:
            return None
        out.append(name)
    return out


def _parse_direction(data: Mapping[str, Any], problems: list[Problem]) -> tuple[str, ...] | None:
    value = data.get("direction", "maximize")
    if isinstance(value, list) and len(value) != 2:
        problems.append(
            Problem(
                "direction",
                f"must be maximize, minimize or a list of exactly two of them (multi-objective), got {value!r}",
            )
        )
        return None
    if not isinstance(value, (str, list)):
        problems.append(Problem("direction", f"must be maximize, minimize or a list of two, got {describe(value)}"))
        return None
    names = _parse_names(value, "direction", problems, DIRECTIONS)
    return tuple(names) if names is not None else None


def _parse_metric(
    data: Mapping[str, Any], direction: tuple[str, ...] | None, problems: list[Problem]
) -> tuple[str, ...] | None:
    if "metric" not in data:
        problems.append(Problem("metric", "required: the metric the study optimizes (e.g. val_accuracy)"))
        return None
    value = data["metric"]
    if not isinstance(value, (str, list)):
        problems.append(Problem("metric", f"must be a metric name or a list of names, got {describe(value)}"))
        return None
    names = _parse_names(value, "metric", problems, None)
    if names is None:
        return None
    if direction is not None and len(names) != len(direction):
        problems.append(
            Problem(
                "metric",
                f"must name one metric per direction ({len(direction)}), got {len(names)}: {value!r}",
            )
        )
        return None
    if len(set(names)) != len(names):
        problems.append(Problem("metric", f"metric names must be distinct, got {value!r}"))
        return None
    return tuple(names)


def _check_metric_names(
    metric: tuple[str, ...], objective: ObjectiveSpec, multi: bool, problems: list[Problem]
) -> None:
    if objective.framework == "python":
        return
    allowed = METRICS[objective.task]
    what = {N_PARAMS: "the parameter count", LATENCY_MS: "the mean predict latency per row, in ms"}
    for i, name in enumerate(metric):
        path = f"metric[{i}]" if multi else "metric"
        if name in MODEL_COST_METRICS:
            if not multi:
                problems.append(
                    Problem(
                        path,
                        f"`{name}` ({what[name]}) is only a metric of multi-objective studies, "
                        "next to a model metric",
                    )
                )
        elif name not in allowed:
            extra = f", {', '.join(MODEL_COST_METRICS)} (multi-objective)"
            problems.append(
                Problem(
                    path,
                    f"unknown metric `{name}` for framework {objective.framework}, task {objective.task}; "
                    f"allowed: {', '.join(allowed)}{extra}",
                )
            )
    if multi and all(name in MODEL_COST_METRICS for name in metric):
        problems.append(
            Problem(
                "metric",
                f"a multi-objective study needs a model metric (e.g. {allowed[0]}) next to "
                f"{' / '.join(MODEL_COST_METRICS)}, got {list(metric)!r}",
            )
        )


def _parse_deterministic(value: Any, workers: int | None, problems: list[Problem]) -> tuple[bool, int | None] | None:
    """``deterministic``: true, false or ``{lag: N}`` (N >= workers) as (on, lag or None)."""
    if isinstance(value, bool):
        return value, None
    if not isinstance(value, Mapping):
        problems.append(Problem("deterministic", "must be true, false or {lag: N} (trial n is asked once trials up "
                                                 f"to n - N were told; true means N = workers), got {describe(value)}"))
        return None
    check_keys(value, ("lag",), "deterministic", problems)
    if "lag" not in value:
        problems.append(Problem("deterministic.lag", "required in the mapping form; or write `deterministic: true` "
                                                     "for lag = workers"))
        return None
    lag = check_int(value["lag"], "deterministic.lag", problems, minimum=1)
    if lag is None:
        return None
    if workers is not None and lag < workers:
        problems.append(Problem("deterministic.lag", f"must be >= workers ({workers}): with fewer trials asked and "
                                                     f"not told than workers, workers would stay idle; got {lag}"))
        return None
    return True, lag


def _parse_resources(value: Any, problems: list[Problem]) -> Resources | None:
    if value is None:
        return Resources()
    mapping = check_mapping(value, "resources", problems)
    if mapping is None:
        return None
    before = len(problems)
    check_keys(mapping, RESOURCE_KEYS, "resources", problems)
    cpu = check_number(mapping.get("cpu", 1.0), "resources.cpu", problems, gt=0)
    gpu = check_number(mapping.get("gpu", 0.0), "resources.gpu", problems, ge=0)
    if gpu is not None and gpu > 1 and not float(gpu).is_integer():
        problems.append(Problem("resources.gpu", f"above 1 must be a whole number of GPUs (a trial gets a share of "
                                                 f"one GPU, or whole GPUs), got {gpu!r}"))
    custom: dict[str, float] = {}
    raw_custom = mapping.get("custom")
    if raw_custom is not None and check_mapping(raw_custom, "resources.custom", problems) is not None:
        for name, quantity in raw_custom.items():
            path = join("resources.custom", name)
            if name in RAY_BUILTIN_RESOURCES or not name:
                problems.append(Problem(path, f"must name a custom resource, not one of Ray's own "
                                              f"({', '.join(RAY_BUILTIN_RESOURCES)}); use resources.cpu / "
                                              "resources.gpu for those"))
            else:
                value = check_number(quantity, path, problems, gt=0)
                if value is not None:
                    custom[name] = float(value)
    if len(problems) > before or cpu is None or gpu is None:
        return None
    return Resources(cpu=cpu, gpu=gpu, custom=custom)


def _parse_component(
    value: Any, path: str, names: tuple[str, ...], default: str, problems: list[Problem], context: Context
) -> tuple[str, dict[str, Any], bool] | None:
    """``(name, options, chosen by auto)`` of a sampler or pruner given as ``name`` or ``{name: ...,
    **options}`` (``default`` when absent); ``auto`` is resolved for ``context`` here, other
    names' options are checked by the caller."""
    if value is None:
        value = default
    if isinstance(value, str):
        value = {"name": value}
    split = search_registry.split_component(value, path, problems, names, path)
    if split is None:
        return None
    if split[0] == search_registry.AUTO:
        choice = search_registry.resolve_auto(path, split[1], path, problems, context)
        return None if choice is None else (choice.name, dict(choice.options), True)
    return split[0], copy.deepcopy(split[1]), False


def _space_shape(space: SearchSpace) -> SpaceShape:
    """What ``sampler: auto`` reads of ``space``: its searched parameters and how many are categorical."""
    searched = [p for p in space.params if not isinstance(p, FixedParam)]
    return SpaceShape(params=len(searched), categorical=sum(1 for p in searched if isinstance(p, CategoricalParam)))


def _is_array_file(file: str | None) -> bool:
    return file is not None and file.lower().endswith(dataset_registry.ARRAY_SUFFIXES)


def _parse_dataset(value: Any, task: str | None, problems: list[Problem]) -> DatasetSpec | None:
    path = "objective.dataset"
    mapping = check_mapping(value, path, problems)
    if mapping is None:
        return None
    has_name, has_path = "name" in mapping, "path" in mapping
    if has_name and has_path:
        problems.append(Problem(path, f"give exactly one of `name` and `path`, got both: {dict(mapping)!r}"))
        return None
    if not has_name and not has_path:
        problems.append(
            Problem(
                path,
                f"needs `name` (one of {', '.join(DATASETS)}) or `path` (a CSV, Parquet or .npz file), "
                f"got keys: {', '.join(mapping) or 'none'}",
            )
        )
        return None
    before = len(problems)
    if has_path:
        check_keys(mapping, ("path", "target"), path, problems)
        file = check_str(mapping["path"], join(path, "path"), problems)
        if file is not None and not file.lower().endswith(DATA_SUFFIXES):
            problems.append(
                Problem(
                    join(path, "path"),
                    f"must be a CSV or Parquet file ({', '.join(dataset_registry.TABLE_SUFFIXES)}) or an .npz of "
                    f"arrays, got {file!r}",
                )
            )
        if _is_array_file(file) and "target" in mapping:
            problems.append(Problem(join(path, "target"), (
                f"an .npz holds its targets in array `{dataset_registry.NPZ_TARGET}`; remove `target`")))
        target = check_str(mapping.get("target", "target"), join(path, "target"), problems)
        if len(problems) > before or file is None or target is None:
            return None
        return DatasetSpec(path=file, target=target)
    name = check_str(mapping["name"], join(path, "name"), problems, choices=DATASETS, what="dataset")
    if name is None:
        return None
    entry = dataset_registry.DATASETS[name]
    options = {k: copy.deepcopy(v) for k, v in mapping.items() if k != "name"}
    dataset_registry.check_dataset_options(entry, options, path, problems)
    if task is not None and entry.task != task:
        problems.append(Problem("objective.task", f"dataset `{name}` is a {entry.task} set, got task {task}"))
    if len(problems) > before:
        return None
    return DatasetSpec(name=name, options=options)


def _parse_early_stopping(value: Any, framework: str | None, task: str | None, problems: list[Problem]) -> Any:
    path = "objective.early_stopping"
    mapping = check_mapping(value, path, problems)
    if mapping is None:
        return None
    before = len(problems)
    check_keys(mapping, EARLY_STOPPING_KEYS, path, problems)
    if "patience" not in mapping:
        problems.append(Problem(join(path, "patience"), "required: epochs without improvement before stopping"))
        patience = None
    else:
        patience = check_int(mapping["patience"], join(path, "patience"), problems, minimum=1)
    min_delta = check_number(mapping.get("min_delta", 0.0), join(path, "min_delta"), problems, ge=0)
    choices = EPOCH_METRICS[task] if framework in MLP_FRAMEWORKS and task in EPOCH_METRICS else None
    monitor = check_str(
        mapping.get("monitor", "val_loss"), join(path, "monitor"), problems, choices=choices, what="monitor metric"
    )
    if len(problems) > before or patience is None or min_delta is None or monitor is None:
        return None
    return EarlyStoppingSpec(patience=patience, min_delta=min_delta, monitor=monitor)


def _parse_objective(value: Any, problems: list[Problem], function_objective: bool = False) -> ObjectiveSpec | None:
    path = "objective"
    if value is None:
        value = {}
    mapping = check_mapping(value, path, problems)
    if mapping is None:
        return None
    before = len(problems)
    check_keys(mapping, OBJECTIVE_KEYS, path, problems)
    framework = check_str(
        mapping.get("framework", "torch"), "objective.framework", problems, choices=FRAMEWORKS, what="framework"
    )
    model = check_str(mapping.get("model", DEFAULT_MODEL), "objective.model", problems, choices=MODELS,
                      what="model family")
    if "model" in mapping and framework is not None and framework not in MLP_FRAMEWORKS:
        problems.append(Problem("objective.model", f"only used with framework torch or keras (the network the trials "
                                                   f"build), got framework {framework}"))
    task = check_str(mapping.get("task", "classification"), "objective.task", problems, choices=TASKS, what="task")
    epochs = check_int(mapping.get("epochs", 20), "objective.epochs", problems, minimum=1)
    val = check_number(mapping.get("validation_split", 0.2), "objective.validation_split", problems, gt=0, lt=1)
    holdout = _parse_holdout(mapping.get("holdout"), mapping, problems)
    default_test = 0.0 if "holdout" in mapping else 0.2  # the holdout file is the test part
    test = check_number(mapping.get("test_split", default_test), "objective.test_split", problems, ge=0, lt=1)
    validation = _parse_validation(mapping.get("validation"), problems)
    kfold = validation is not None and validation.mode == KFOLD
    if validation is not None and kfold and "validation_split" in mapping:
        problems.append(Problem("objective.validation_split", (
            f"is not used with objective.validation kfold (each fold's validation part is 1/{validation.kfold} of "
            "the rows left after the test split); remove validation_split, or use validation: holdout")))
    if validation is not None and validation.mode != HOLDOUT and mapping.get("dataset") is None:
        problems.append(Problem("objective.validation", (
            f"{validation.mode} cuts its folds from objective.dataset, and the spec names none; set "
            "objective.dataset or remove objective.validation")))
    if not kfold and val is not None and test is not None and val + test >= 1:
        problems.append(
            Problem(path, f"`validation_split + test_split < 1` must hold, got {val!r} + {test!r} = {val + test!r}")
        )
    dataset = None
    if mapping.get("dataset") is not None:
        dataset = _parse_dataset(mapping["dataset"], task, problems)
    elif framework in MLP_FRAMEWORKS:
        problems.append(
            Problem(
                "objective.dataset",
                f"required for framework {framework}, e.g. {{name: make_classification, n_samples: 1000}} "
                "or {path: data.csv, target: label}",
            )
        )
    early = None
    if mapping.get("early_stopping") is not None:
        early = _parse_early_stopping(mapping["early_stopping"], framework, task, problems)
    func = mapping.get("callable")
    if func is not None:
        if framework in MLP_FRAMEWORKS:
            problems.append(
                Problem("objective.callable", f"only used with framework python, got framework {framework}")
            )
        elif check_str(func, "objective.callable", problems) is not None and not _CALLABLE_RE.fullmatch(func):
            problems.append(Problem("objective.callable", f"must look like {CALLABLE_FORMS}, got {func!r}"))
    elif framework == "python" and not function_objective:
        problems.append(Problem("objective.callable", f"required for framework python: {CALLABLE_FORMS} "
                                                      "(from Python: sweeplab.run(spec, objective=function))"))
    options = mapping.get("options")
    if options is None:
        options = {}
    elif check_mapping(options, "objective.options", problems) is not None:
        if options and framework in MLP_FRAMEWORKS:
            problems.append(Problem("objective.options", f"only used with framework python, got framework {framework}"))
        check_plain_data(options, "objective.options", problems)
    init_from = _parse_init_from(mapping.get("init_from"), framework, problems)
    if init_from is not None and model is not None and not MODEL_FAMILIES[model].transfer:
        problems.append(Problem("objective.init_from", f"fine-tuning needs model mlp (a saved sweeplab MLP), "
                                                       f"got model {model}; remove init_from"))
    if dataset is not None and model is not None and framework in MLP_FRAMEWORKS:
        _check_dataset_fits_model(dataset, model, problems)
    if len(problems) > before:
        return None
    assert framework is not None and task is not None and epochs is not None and val is not None and test is not None
    assert model is not None
    return ObjectiveSpec(
        framework=framework,
        model=model,
        task=task,
        dataset=dataset,
        epochs=epochs,
        validation_split=val,
        test_split=test,
        early_stopping=early,
        callable=func,
        options=copy.deepcopy(dict(options)),
        init_from=init_from,
        holdout=holdout,
        validation=validation or Validation(),
    )


def _parse_holdout(value: Any, objective: Mapping[str, Any], problems: list[Problem]) -> DatasetSpec | None:
    """``objective.holdout``: ``{path: table, target: column}``, a held-out table in place of ``test_split``."""
    path = "objective.holdout"
    if value is None:
        return None
    mapping = check_mapping(value, path, problems)
    if mapping is None:
        return None
    before = len(problems)
    check_keys(mapping, HOLDOUT_KEYS, path, problems)
    if "path" not in mapping:
        problems.append(Problem(path, "needs `path`: a CSV or Parquet file of held-out rows, with the dataset's "
                                      "columns (e.g. {path: holdout.csv, target: label})"))
        return None
    file = check_str(mapping["path"], join(path, "path"), problems)
    if file is not None and not file.lower().endswith(dataset_registry.TABLE_SUFFIXES):
        problems.append(Problem(join(path, "path"), f"must be a CSV or Parquet file "
                                                    f"({', '.join(dataset_registry.TABLE_SUFFIXES)}), got {file!r}"))
    target = check_str(mapping.get("target", "target"), join(path, "target"), problems)
    test = objective.get("test_split")
    if isinstance(test, (int, float)) and not isinstance(test, bool) and test > 0:
        problems.append(Problem("objective.test_split", f"the holdout file is the test part: remove test_split "
                                                        f"(got {test!r}) or objective.holdout"))
    if objective.get("dataset") is None:
        problems.append(Problem(path, "needs objective.dataset: the holdout rows are scored like its test part"))
    if len(problems) > before or file is None or target is None:
        return None
    return DatasetSpec(path=file, target=target)


def _parse_validation(value: Any, problems: list[Problem]) -> Validation | None:
    """``objective.validation``: ``holdout`` (also when absent), ``auto`` or ``{kfold: K, repeats: R}``."""
    path = "objective.validation"
    forms = f"{HOLDOUT}, auto or {{kfold: K, repeats: R}} (K >= {MIN_KFOLD}, R >= 1)"
    if value is None:
        return Validation()
    if isinstance(value, str):
        if value == KFOLD:
            problems.append(Problem(path, f"kfold needs its number of folds: {{kfold: 5}}, got {value!r}"))
            return None
        if value not in VALIDATION_MODES:
            problems.append(Problem(path, f"must be {forms}, got {value!r}"))
            return None
        return Validation(value)
    mapping = check_mapping(value, path, problems) if isinstance(value, Mapping) else None
    if mapping is None:
        if not isinstance(value, Mapping):
            problems.append(Problem(path, f"must be {forms}, got {describe(value)}"))
        return None
    before = len(problems)
    check_keys(mapping, VALIDATION_KEYS, path, problems)
    if "kfold" not in mapping:
        problems.append(Problem(join(path, "kfold"), f"required: the number of folds (>= {MIN_KFOLD}), e.g. "
                                                      "{kfold: 5}"))
        k = None
    else:
        k = check_int(mapping["kfold"], join(path, "kfold"), problems, minimum=MIN_KFOLD)
    repeats = check_int(mapping.get("repeats", DEFAULT_REPEATS), join(path, "repeats"), problems, minimum=1)
    if len(problems) > before or k is None or repeats is None:
        return None
    return Validation(KFOLD, kfold=k, repeats=repeats)


def _check_dataset_fits_model(dataset: DatasetSpec, model: str, problems: list[Problem]) -> None:
    """A family that trains on images needs an image dataset; an .npz must hold what the family trains on.

    An .npz that exists is read (its array headers only); a missing one is the loader's to report.
    """
    images = MODEL_FAMILIES[model].data == "images"
    if dataset.name is not None:
        if images and dataset_registry.DATASETS[dataset.name].image_shape is None:
            problems.append(Problem("objective.dataset.name",
                                    dataset_registry.needs_images(model, f"dataset `{dataset.name}`")))
        return
    file = str(dataset.path)
    where = "objective.dataset.path"
    if not _is_array_file(file):
        if images:
            problems.append(Problem(where, dataset_registry.needs_images(model, f"the table {file!r}")))
        return
    if not Path(file).expanduser().is_file():
        return
    try:
        header = dataset_registry.read_npz_header(Path(file).expanduser())
    except (OSError, ValueError) as exc:
        problems.append(Problem(where, f"cannot read {file!r}: {exc}"))
        return
    for message in dataset_registry.npz_problems(header, model, images):
        problems.append(Problem(where, f"{file}: {message}"))


def _parse_init_from(value: Any, framework: str | None, problems: list[Problem]) -> str | None:
    """``objective.init_from``: a model URI (one of :data:`INIT_FROM_SCHEMES`), torch/keras only."""
    path = "objective.init_from"
    if value is None:
        return None
    uri = check_str(value, path, problems)
    if uri is None:
        return None
    if not uri.startswith(INIT_FROM_SCHEMES):
        problems.append(
            Problem(
                path,
                "must name a sweeplab model: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model "
                f"or file:///path/to/model, got {uri!r}",
            )
        )
        return None
    if framework == "python":
        problems.append(Problem(path, "only used with framework torch or keras (fine-tuning an MLP), got python"))
        return None
    return uri


def _parse_constraints(value: Any, framework: str | None, problems: list[Problem],
                       model: str = DEFAULT_MODEL) -> dict[str, int] | None:
    """The ``constraints`` section: ``{max_params: N}`` with N a positive integer (torch/keras only)."""
    path = "constraints"
    if value is None:
        return {}
    mapping = check_mapping(value, path, problems)
    if mapping is None:
        return None
    before = len(problems)
    check_keys(mapping, CONSTRAINT_KEYS, path, problems)
    out: dict[str, int] = {}
    if "max_params" in mapping:
        max_params = check_int(mapping["max_params"], join(path, "max_params"), problems, minimum=1)
        if max_params is not None:
            out["max_params"] = max_params
    if out and framework not in MLP_FRAMEWORKS:
        problems.append(
            Problem(
                join(path, "max_params"),
                f"counts the parameters of an MLP, so it needs framework torch or keras, got framework {framework}",
            )
        )
    elif out and model in MODEL_FAMILIES and not MODEL_FAMILIES[model].constraints:
        problems.append(Problem(join(path, "max_params"), f"counts the parameters of an MLP before training; model "
                                                           f"{model} is not counted yet, remove max_params"))
    return out if len(problems) == before else None


def _check_transfer_space(objective: ObjectiveSpec, space: SearchSpace, problems: list[Problem]) -> None:
    """Architecture params and ``init_from`` exclude each other; transfer params need ``init_from``."""
    from sweeplab.spaces.architecture import ARCHITECTURE_PARAMS, TRANSFER_PARAMS

    if not space.mlp:
        return
    for name in space.names():
        if objective.init_from is not None and name in ARCHITECTURE_PARAMS:
            problems.append(
                Problem(
                    join("space", name),
                    f"the architecture comes from objective.init_from ({objective.init_from}): its hidden layers "
                    f"are fine-tuned as they are; remove `{name}` and search n_frozen_layers, "
                    "finetune_learning_rate, dropout, batch_size, optimizer... instead",
                )
            )
        elif objective.init_from is None and name in TRANSFER_PARAMS:
            problems.append(
                Problem(
                    join("space", name),
                    f"`{name}` only means something when fine-tuning a model; set objective.init_from "
                    "(e.g. models:/NAME@champion) or remove it",
                )
            )


def _raw_epochs(value: Any) -> int:
    """``objective.epochs`` when it is valid, else its default (the objective reports a bad one)."""
    epochs = value.get("epochs", ObjectiveSpec.epochs) if isinstance(value, Mapping) else ObjectiveSpec.epochs
    return int(epochs) if is_int(epochs) and epochs >= 1 else ObjectiveSpec.epochs


def _objective_model(value: Any) -> str:
    """The model family the space is checked for, even when the objective is invalid (the default then)."""
    model = value.get("model", DEFAULT_MODEL) if isinstance(value, Mapping) else DEFAULT_MODEL
    return model if isinstance(model, str) and model in MODEL_FAMILIES else DEFAULT_MODEL


def _objective_framework(value: Any) -> str | None:
    """The framework the space is checked for (None: any names), even when the objective is invalid."""
    framework = value.get("framework", "torch") if isinstance(value, Mapping) else "torch"
    if framework in MLP_FRAMEWORKS:
        return str(framework)
    return None


# ---------------------------------------------------------------------- entry points
def parse_spec(data: Mapping[str, Any], source: str = "spec", *, function_objective: bool = False) -> StudySpec:
    """Validate an already loaded spec mapping and return its :class:`StudySpec`.

    Raises :class:`SpecError` (with ``source``) listing every problem at once.
    ``function_objective``: the objective is a function object given alongside the spec
    (``sweeplab.run(spec, objective=fn)``), so framework python needs no
    ``objective.callable``.
    """
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        raise SpecError([Problem("", f"a study spec must be a mapping of keys, got {describe(data)}")], source)
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise SpecError([Problem("", f"keys must be strings, got {describe(bad_keys[0])}")], source)
    check_keys(data, TOP_KEYS, "", problems)

    study = None
    if "study" not in data:
        problems.append(Problem("study", "required: the study name ([A-Za-z0-9._-])"))
    else:
        msgs = _study_name_problems(data["study"])
        problems.extend(Problem("study", m) for m in msgs)
        study = None if msgs else data["study"]

    direction = _parse_direction(data, problems)
    metric = _parse_metric(data, direction, problems)
    trials = check_int(data.get("trials", 20), "trials", problems, minimum=1)
    timeout = data.get("timeout")
    timeout_ok = timeout is None or check_number(timeout, "timeout", problems, gt=0) is not None
    workers = check_int(data.get("workers", 1), "workers", problems, minimum=1)
    resources = _parse_resources(data.get("resources"), problems)
    seed = check_int(data.get("seed", 0), "seed", problems, minimum=0, maximum=_SEED_MAX)
    max_retries = check_int(data.get("max_retries", 2), "max_retries", problems, minimum=0)
    deterministic = _parse_deterministic(data.get("deterministic", False), workers, problems)
    priority = check_number(data.get("priority", DEFAULT_PRIORITY), "priority", problems, gt=0)
    experiment = data.get("experiment")
    experiment_ok = experiment is None or check_str(experiment, "experiment", problems) is not None
    multi = direction is not None and len(direction) > 1

    objective = _parse_objective(data.get("objective"), problems, function_objective)
    if objective is not None and metric is not None:
        _check_metric_names(metric, objective, multi, problems)

    space = None
    if "space" not in data:
        problems.append(Problem("space", "required: the parameters to search, or the name of a built-in space"))
    else:
        space = parse_space(data["space"], "space", _objective_framework(data.get("objective")), problems,
                            model=_objective_model(data.get("objective")))
        if objective is not None:
            _check_transfer_space(objective, space, problems)

    # what sampler and pruner defaults and `auto` depend on (a bad value is reported where it is parsed)
    context = Context(
        seed=seed if seed is not None else 0,
        workers=workers if workers is not None else 1,
        epochs=_raw_epochs(data.get("objective")),
        objectives=len(direction) if direction is not None else 1,
        space=_space_shape(space) if space is not None else None,
    )
    sampler = _parse_component(data.get("sampler"), "sampler", SAMPLERS, search_registry.DEFAULT_SAMPLER,
                               problems, context)
    if sampler is not None:
        search_registry.check_sampler(sampler[0], sampler[1], "sampler", problems, context)
        if multi and not search_registry.SAMPLERS[sampler[0]].multi_objective:
            name = sampler[0]
            problems.append(Problem("sampler.name", f"sampler {name} supports single-objective studies only, "
                                                    f"got {name}"))
        if space is not None and sampler[0] == "grid":
            for name, why in space.grid_problems():
                problems.append(Problem(join("space", name), why))
    pruner = _parse_component(data.get("pruner"), "pruner", PRUNERS, search_registry.DEFAULT_PRUNER, problems,
                              context)
    if pruner is not None:
        search_registry.check_pruner(pruner[0], pruner[1], "pruner", problems, context)
        entry = search_registry.PRUNERS[pruner[0]]
        if multi and not entry.multi_objective:
            usable = ", ".join(n for n, e in search_registry.PRUNERS.items() if e.multi_objective)
            problems.append(
                Problem("pruner.name", f"pruner {pruner[0]} decides on one objective (Optuna's trial.report takes "
                                       f"one value); a study with two directions can use: {usable}, got {pruner[0]}")
            )
        if direction is not None and not multi and not entry.single_objective:
            problems.append(
                Problem("pruner.name", f"pruner {pruner[0]} compares vectors of two objectives: it needs lists of "
                                       "two directions and two metrics; with one objective use successive_halving "
                                       f"(the same rule on one value), got {pruner[0]}")
            )

    raw_objective = data.get("objective")
    raw_framework = raw_objective.get("framework", "torch") if isinstance(raw_objective, Mapping) else "torch"
    constraints = _parse_constraints(data.get("constraints"), raw_framework, problems,
                                     _objective_model(raw_objective))

    if problems:
        raise SpecError(problems, source)
    assert study is not None and direction is not None and metric is not None and trials is not None
    assert workers is not None and resources is not None and seed is not None and max_retries is not None
    assert sampler is not None and pruner is not None and objective is not None and space is not None
    assert timeout_ok and experiment_ok and priority is not None
    return StudySpec(
        study=study,
        direction=direction,
        metric=metric,
        trials=trials,
        timeout=float(timeout) if timeout is not None else None,
        workers=workers,
        resources=resources,
        seed=seed,
        sampler=SamplerSpec(name=sampler[0], options=sampler[1], auto=sampler[2]),
        pruner=PrunerSpec(name=pruner[0], options=pruner[1], auto=pruner[2]),
        objective=objective,
        space=space,
        experiment=experiment,
        max_retries=max_retries,
        constraints=constraints or {},
        deterministic=deterministic is not None and deterministic[0],
        deterministic_lag=deterministic[1] if deterministic is not None else None,
        priority=float(priority),
        source=source,
    )


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``data`` with ``overrides`` applied (before validation).

    Keys are top-level keys (``trials``, ``workers``, ``study``) or dotted paths into
    mappings (``objective.epochs``); keys whose value is None are skipped (a CLI flag
    that was not given). Raises :class:`SpecError` when a dotted path crosses a value
    that is not a mapping.
    """
    out = copy.deepcopy(dict(data))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        parts = str(key).split(".")
        node: dict[str, Any] = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise SpecError([Problem(where, f"cannot override `{key}`: {where} is not a mapping")], "overrides")
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return out


def read_spec_file(path: str | Path, kind: str, needs: str) -> Any:
    """The parsed YAML of the ``kind`` file at ``path`` ("spec", "bench spec").

    Raises :class:`SpecError` (``source`` = ``str(path)``) for a missing or unreadable
    file, a YAML syntax error (with its line), or an empty file (``needs`` says which
    keys it must hold).
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem("", f"{kind} file {source} does not exist")], source) from None
    except UnicodeDecodeError as exc:
        raise SpecError([Problem("", f"{kind} file {source} is not UTF-8 text: {exc.reason}")], source) from None
    except OSError as exc:
        raise SpecError([Problem("", f"cannot read {kind} file {source}: {exc.strerror or exc}")], source) from None
    data = load_yaml(text, source)
    if data is None:
        raise SpecError([Problem("", f"{kind} file {source} is empty; it needs at least {needs}")], source)
    return data


def load_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> StudySpec:
    """Read the YAML spec at ``path``, apply ``overrides`` (see :func:`apply_overrides`), validate.

    Raises :class:`SpecError` (``source`` = ``str(path)``) for a missing or unreadable
    file, a YAML syntax error (with its line), an empty file, or any rule broken.
    """
    data = read_spec_file(path, "spec", "`study`, `metric` and `space`")
    if isinstance(data, Mapping) and overrides:
        data = apply_overrides(data, overrides)
    if isinstance(data, Mapping):
        data = absolute_callable(data, Path(path).parent)
    return parse_spec(data, str(path))


def absolute_callable(data: Mapping[str, Any], folder: str | Path) -> dict[str, Any]:
    """``data`` with a relative ``objective.callable`` file path made absolute against ``folder``
    (the spec file's), so that the study finds the file from any working directory."""
    objective = data.get("objective")
    func = objective.get("callable") if isinstance(objective, Mapping) else None
    if not isinstance(func, str) or not _CALLABLE_RE.fullmatch(func):
        return dict(data)
    file, _, attr = func.rpartition(":")
    if not file.endswith(".py") or Path(file).is_absolute():
        return dict(data)
    assert isinstance(objective, Mapping)
    absolute = os.path.normpath(os.path.join(os.path.abspath(folder), file))
    return {**data, "objective": {**objective, "callable": f"{absolute}:{attr}"}}

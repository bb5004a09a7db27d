"""The Python API: run a study and read its results from a notebook or a script.

.. code-block:: python

    import sweeplab

    def train(trial):                       # a function of your notebook
        x = trial.params["x"]
        for epoch in range(1, 6):
            trial.reporter.report(epoch, {"score": ...})   # pruning works as for any objective
        return {"score": ...}

    summary = sweeplab.run("spec.yaml", objective=train)   # or a dict, or a StudySpec
    summary = sweeplab.run("spec.yaml", objective=train)   # again: resumes up to `trials`
    study = sweeplab.load("my-study")
    study.status.n_complete, study.best.value, study.best.params

:func:`run` is what ``sweeplab run`` calls: the same spec checks, the same refusal of a
changed spec, the same resume. Its keywords mirror the command's flags. :func:`load` is
what ``sweeplab status`` and ``sweeplab best`` read; :func:`promote` is
``sweeplab promote`` (and the only way to promote a study run with ``objective=fn``).

The function given as ``objective=`` gets the trial's
:class:`~sweeplab.objectives.base.TrialContext` (``params``, ``dataset``, ``seed``,
``reporter``, ``settings``, ``cpus``, ``gpus``, ``trial_number``) and returns a number
(the study's metric) or a mapping of metric name to number. It is sent to Ray's object
store once per study and from there to every trial: a function defined in a notebook or
in a script's ``__main__`` travels by value (with the globals it uses), one defined in a
module travels by name (the workers import that module).

Importing ``sweeplab`` imports none of Ray, MLflow, Optuna, torch or TensorFlow: this
module imports them only when :func:`run`, :func:`load` or :func:`promote` is called.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from sweeplab.core.defaults import DEFAULT_FAIL_FAST
from sweeplab.core.errors import Problem, SpecError, UsageError
from sweeplab.core.records import FailureGroup, ParetoTrial, Promotion, SelectionEstimate, StudySummary

if TYPE_CHECKING:
    import optuna

    from sweeplab.spec import StudySpec
    from sweeplab.study.session import RunOptions

__all__ = ["BestTrial", "LoadedStudy", "StudyStatus", "estimate_lines", "format_value", "load", "plan_run", "promote",
           "resolve_spec", "run", "summary_text"]

SpecSource = Union[str, "os.PathLike[str]", Mapping[str, Any], "StudySpec"]
"""What :func:`run` accepts as a spec: a YAML file's path, the spec as a mapping, or a :class:`StudySpec`."""

PYTHON_FRAMEWORK = "python"


def run(
    spec: SpecSource,
    objective: Callable[..., Any] | None = None,
    *,
    study: str | None = None,
    trials: int | None = None,
    workers: int | None = None,
    timeout: float | None = None,
    fork: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    address: str | None = None,
    fail_fast: int = DEFAULT_FAIL_FAST,
    progress: bool = True,
    log_model: bool = True,
    allow_local_stores: bool = False,
    resume_command: str | None = None,
    speedups: bool = True,
) -> StudySummary:
    """Run the study of ``spec`` to ``trials`` finished trials, or resume it if it exists; return its summary.

    ``spec``: a YAML file's path, a mapping with the YAML's keys, or a
    :class:`~sweeplab.spec.StudySpec`. ``objective``: your own training function (see
    the module docstring). With it the spec needs no ``objective.callable``: a spec
    without ``objective.framework`` runs as framework ``python``; a spec naming torch or
    keras, or also naming ``objective.callable``, is refused. Without it, the spec says
    what runs (the built-in torch / keras MLPs, or ``objective.callable``).

    Calling it again with the same spec resumes the study (no finished trial is run
    again) up to ``trials``; a spec changed in what a trial means is refused with the
    diff (run it as a new study warm-started from this one with ``fork="NEW_NAME"``).
    The keywords are ``sweeplab run``'s flags: ``study``, ``trials``, ``workers`` and
    ``timeout`` override the spec; ``storage`` (Optuna, default ``$SWEEPLAB_STORAGE`` or
    ``sqlite:///sweeplab.db`` here), ``tracking_uri`` (MLflow, default
    ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` here), ``address`` (Ray, default
    ``$RAY_ADDRESS``; ``local``: a Ray instance of the run's own; neither: worker
    processes of this machine, no Ray, unless the trials need Ray for GPUs or custom
    resources; a Ray this process already started with ``ray.init`` is used as it is),
    ``fail_fast`` (stop when the first N trials fail alike; 0: never), ``progress`` (a
    progress bar: the widget in Jupyter, text on stderr in a terminal), ``log_model``
    (re-fit and log the best torch/keras model),
    ``allow_local_stores``. ``resume_command``: what an interrupted run tells you to run
    again. ``speedups=False`` runs without the start-up and storage speed-ups (what
    benchmarks compare against).

    Returns the :class:`~sweeplab.core.records.StudySummary` (what ``sweeplab run --json``
    prints). Raises :class:`~sweeplab.core.errors.SpecError` (a ValueError) listing every
    problem of the spec, :class:`~sweeplab.core.errors.ResourceError` (a SpecError) when
    no node of the Ray cluster has the resources a trial asks for, before any trial
    starts, and the other :class:`~sweeplab.core.errors.SweeplabError` s of a study
    (``StudyInterrupted`` after Ctrl-C: run it again to resume).
    """
    from sweeplab.study.run import run_study

    resolved, options = plan_run(spec, objective, study=study, trials=trials, workers=workers, timeout=timeout,
                                 fork=fork, storage=storage, tracking_uri=tracking_uri, address=address,
                                 fail_fast=fail_fast, progress=progress, log_model=log_model,
                                 allow_local_stores=allow_local_stores, resume_command=resume_command,
                                 speedups=speedups)
    return run_study(resolved, options)


def plan_run(
    spec: SpecSource,
    objective: Callable[..., Any] | None = None,
    *,
    study: str | None = None,
    trials: int | None = None,
    workers: int | None = None,
    timeout: float | None = None,
    fork: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    address: str | None = None,
    fail_fast: int = DEFAULT_FAIL_FAST,
    progress: bool = True,
    log_model: bool = True,
    allow_local_stores: bool = False,
    resume_command: str | None = None,
    speedups: bool = True,
) -> tuple[StudySpec, RunOptions]:
    """Everything :func:`run` does before the study's first trial loop: the spec resolved and
    checked against the stored study (a changed spec refused with its diff, a fork made), and
    the :class:`~sweeplab.study.session.RunOptions` it runs with. Takes :func:`run`'s arguments
    and raises its input errors; ``run_study(*plan_run(...))`` is :func:`run` (the service
    runs it so, with its own stop event and fair-share gate in the options)."""
    if fork and study:
        raise UsageError("fork and study conflict: fork=NEW_NAME already names the new study; give only one of them")
    overrides = {k: v for k, v in (("study", study), ("trials", trials), ("workers", workers), ("timeout", timeout))
                 if v is not None}
    resolved = resolve_spec(spec, objective, overrides)

    from sweeplab.search.storage import resolve_storage_url
    from sweeplab.study.resume import keep_stored_choices, spec_diff, stored_spec
    from sweeplab.study.run import RunOptions
    from sweeplab.tracking.mlflow_tracker import resolve_tracking_uri

    storage_url = resolve_storage_url(storage)
    source = resolved.study
    if fork:
        from sweeplab.spec import validate_study_name

        validate_study_name(fork)
        resolved = dataclasses.replace(resolved, study=fork)
    options = RunOptions(storage_url=storage_url, tracking_uri=resolve_tracking_uri(tracking_uri), address=address,
                         progress=progress, resume_command=resume_command or "the same sweeplab.run(...) call",
                         allow_local_stores=allow_local_stores, package_best=log_model, fail_fast=fail_fast,
                         objective_fn=objective)
    if not speedups:
        options = options.without_speedups()
    before = stored_spec(resolved.study, storage_url, wal=options.storage_options.wal)
    if fork and before is None:
        import sys

        from sweeplab.study.fork import fork_study

        if stored_spec(source, storage_url) is None:
            raise UsageError(f"fork: there is no study {source!r} to fork from in {storage_url}")
        forked = fork_study(resolved, source, storage_url)
        sys.stderr.write(f"forked {source!r} into {resolved.study!r}: {forked.copied} finished trials copied, "
                         f"{forked.skipped} not compatible with the new spec\n")
    if before:
        resolved = keep_stored_choices(resolved, before)
        diff = spec_diff(before, resolved.to_dict())
        if diff:
            raise UsageError(
                f"study {resolved.study!r} already exists with a different spec; refusing to mix trials.\n  "
                + "\n  ".join(diff)
                + "\nRevert the spec, or run it as a new study warm-started from this one with --fork NEW_NAME "
                  "(sweeplab.run(..., fork=NEW_NAME))."
            )
    return resolved, options


def resolve_spec(spec: SpecSource, objective: Callable[..., Any] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> StudySpec:
    """The validated :class:`~sweeplab.spec.StudySpec` that :func:`run` runs.

    ``spec`` as :func:`run` takes it; ``overrides`` as
    :func:`~sweeplab.spec.apply_overrides` (top-level keys or dotted paths). With
    ``objective``, a spec without ``objective.framework`` gets framework python, and
    ``objective.callable`` is neither needed nor allowed. Raises
    :class:`~sweeplab.core.errors.SpecError` with every problem at once, TypeError for a
    ``spec`` or ``objective`` of the wrong type.
    """
    from sweeplab.spec import StudySpec, absolute_callable, apply_overrides, parse_spec, read_spec_file

    if objective is not None and not callable(objective):
        raise TypeError(f"objective= must be a function that takes the trial and returns its metrics, "
                        f"got {type(objective).__name__}: {objective!r:.80}")
    if isinstance(spec, StudySpec):
        source, data = spec.source, spec.to_dict()
    elif isinstance(spec, (str, os.PathLike)):
        source = os.fspath(spec)
        data = read_spec_file(source, "spec", "`study`, `metric` and `space`")
        if isinstance(data, Mapping):  # a file callable is relative to the spec file's folder
            data = absolute_callable(data, os.path.dirname(os.path.abspath(source)))
    elif isinstance(spec, Mapping):
        source, data = "spec", copy.deepcopy(dict(spec))
    else:
        raise TypeError(f"spec must be a YAML file's path, a mapping or a StudySpec, got {type(spec).__name__}")
    if isinstance(data, Mapping) and overrides:
        data = apply_overrides(data, overrides)
    problems = _objective_problems(data, objective) if isinstance(data, dict) else []
    try:
        resolved = parse_spec(data, source, function_objective=objective is not None)
    except SpecError as exc:
        raise SpecError([*problems, *exc.problems], source) from None
    if problems:
        raise SpecError(problems, source)
    return resolved


def _objective_problems(data: dict[str, Any], objective: Callable[..., Any] | None) -> list[Problem]:
    """What is wrong with the spec's ``objective`` section given the function; sets framework python
    in ``data`` when the section leaves it out."""
    if objective is None:
        return []
    section = data.get("objective")
    if section is None:
        section = data["objective"] = {}
    if not isinstance(section, dict):
        return []  # the spec's own check says what is wrong with it
    problems = []
    framework = section.setdefault("framework", PYTHON_FRAMEWORK)
    if framework != PYTHON_FRAMEWORK:
        problems.append(Problem("objective.framework", f"objective= is your own function, which runs as framework "
                                                       f"python; got framework {framework!r}. Leave "
                                                       "objective.framework out (or set python), or drop objective= "
                                                       f"to train the built-in {framework} model"))
    if section.get("callable") is not None:
        problems.append(Problem("objective.callable", "objective= and objective.callable both name the function to "
                                                      "run; give only one of them"))
    return problems


# ------------------------------------------------------------------------- load
@dataclass(frozen=True)
class StudyStatus:
    """Where a study stands (``sweeplab status``): its trials by state and its target.

    ``n_trials`` counts the finished trials that count toward ``trials``
    (``n_complete + n_pruned + n_failed``); ``trials_target`` is what the last run asked
    for. ``failures``: the failed trials grouped by error, most frequent first.
    """

    study: str
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    n_retried: int
    n_rejected: int
    n_running: int
    n_waiting: int
    trials_target: int | None
    running_trials: list[int] = field(default_factory=list)
    failures: list[FailureGroup] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """True when the study holds as many finished trials as its target."""
        return self.trials_target is not None and self.n_trials >= self.trials_target


@dataclass(frozen=True)
class BestTrial:
    """The best COMPLETE trial (``sweeplab best``): its number, value, params, all its final
    metrics, its MLflow run id and, when its function logged a model (``trial.log_model``),
    that model's URI (``runs:/<run_id>/model``: ``mlflow.pyfunc.load_model`` loads it). In a
    multi-objective study: the first trial of the Pareto front, with one value per metric."""

    trial: int
    value: float | list[float | None] | None
    params: dict[str, Any]
    metric: str | list[str] | None
    metrics: dict[str, float] | None
    run_id: str | None
    model_uri: str | None = None


@dataclass(frozen=True)
class LoadedStudy:
    """A study as :func:`load` read it: ``status``, ``best`` (None before any COMPLETE
    trial), ``pareto_front`` (multi-objective studies) and the whole ``summary``.

    A snapshot: :meth:`refresh` reads the study again. ``str()`` is ``sweeplab status``'s text.
    """

    name: str
    storage: str
    summary: StudySummary
    status: StudyStatus
    best: BestTrial | None
    pareto_front: list[ParetoTrial] | None = None

    @classmethod
    def from_summary(cls, summary: StudySummary, storage: str) -> LoadedStudy:
        status = StudyStatus(
            study=summary.study, n_trials=summary.n_trials, n_complete=summary.n_complete,
            n_pruned=summary.n_pruned, n_failed=summary.n_failed, n_retried=summary.n_retried,
            n_rejected=summary.n_rejected, n_running=summary.n_running, n_waiting=summary.n_waiting,
            trials_target=summary.trials_target, running_trials=list(summary.running_trials),
            failures=list(summary.failures))
        best = None
        if summary.best_trial is not None:
            best = BestTrial(trial=summary.best_trial, value=summary.best_value, params=dict(summary.best_params or {}),
                             metric=summary.metric, metrics=summary.best_metrics, run_id=summary.best_run_id,
                             model_uri=summary.best_model_uri)
        return cls(name=summary.study, storage=storage, summary=summary, status=status, best=best,
                   pareto_front=summary.pareto_front)

    def refresh(self) -> LoadedStudy:
        """The study as it is now (another run may have added trials)."""
        return load(self.name, self.storage)

    def optuna_study(self) -> optuna.Study:
        """The Optuna study itself (for Optuna's plots and data frames); read it, never write to it."""
        from sweeplab.search.storage import load_existing_study

        return load_existing_study(self.name, self.storage)

    def to_json(self) -> dict[str, Any]:
        """``sweeplab status --json``'s object."""
        return self.summary.to_json()

    def __str__(self) -> str:
        return summary_text(self.summary)


def load(study_name: str, storage: str | None = None) -> LoadedStudy:
    """Read the study ``study_name`` from ``storage`` (default ``$SWEEPLAB_STORAGE`` or
    ``sqlite:///sweeplab.db`` here): what ``sweeplab status`` and ``sweeplab best`` show.

    Raises :class:`~sweeplab.core.errors.SpecError` for a name that is not a valid study
    name, :class:`~sweeplab.core.errors.StudyNotFoundError` (listing the studies there)
    when the storage holds no such study.
    """
    from sweeplab.search.storage import load_existing_study, resolve_storage_url
    from sweeplab.search.summary import summarize
    from sweeplab.spec import validate_study_name

    validate_study_name(study_name)
    url = resolve_storage_url(storage)
    return LoadedStudy.from_summary(summarize(load_existing_study(study_name, url)), url)


# ------------------------------------------------------------------------- promote
def promote(
    study: str,
    model_name: str,
    *,
    objective: Callable[..., Any] | None = None,
    top_k: int = 3,
    seeds: int = 3,
    storage: str | None = None,
    tracking_uri: str | None = None,
    address: str | None = None,
    refit: bool | None = None,
    baselines: bool = False,
) -> Promotion:
    """Re-train ``study``'s ``top_k`` best configs with ``seeds`` seeds each and register the
    one with the best mean as ``models:/<model_name>@champion``: what ``sweeplab promote``
    does (see :mod:`sweeplab.study.promote`).

    ``objective``: for a study run with ``run(spec, objective=fn)``, that function (the
    study stores no code for it; the re-trainings run it as the study's trials did). A
    function must call ``trial.log_model(model)``: the winner's logged model is what gets
    registered. Studies of the built-in models and of an ``objective.callable`` need no
    ``objective`` (and refuse one). ``storage``, ``tracking_uri`` and ``address`` as for
    :func:`run`; a Ray this call starts is shut down when it returns.

    ``refit``: None (default) refits a torch / keras winner on the study's training +
    validation rows (for its mean best epoch) when the study has a test part, True insists
    (UsageError otherwise), False registers the winner trained on the training rows only.
    The promotion's ``estimate`` compares the winner's validation value, its re-seeded mean
    and the registered model's value on the test rows (``optimism_gap``);
    ``baselines=True`` also scores the scikit-learn baselines on the same rows.

    Returns the :class:`~sweeplab.core.records.Promotion` (``to_json()`` is
    ``sweeplab promote --json``). Raises :class:`~sweeplab.core.errors.UsageError` for a
    bad name, ``top_k`` or ``seeds`` or a missing / unwanted ``objective``, and
    :class:`~sweeplab.core.errors.SweeplabError` when the study cannot be promoted (no
    COMPLETE trial, multi-objective, every re-training failed, the winner logged no model).
    """
    if objective is not None and not callable(objective):
        raise TypeError(f"objective= must be the study's training function, got {type(objective).__name__}: "
                        f"{objective!r:.80}")
    from sweeplab.study.promote import promote_study, validate_model_name

    validate_model_name(model_name)  # before anything heavy starts
    from sweeplab.search.storage import resolve_storage_url

    return promote_study(study, model_name, storage_url=resolve_storage_url(storage), tracking_uri=tracking_uri,
                         top_k=top_k, seeds=seeds, address=address, objective=objective, refit=refit,
                         baselines=baselines)


# ------------------------------------------------------------------------- text
def format_value(value: Any) -> str:
    """A value as the summaries print it (floats to 6 significant digits, lists of them)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def estimate_lines(e: SelectionEstimate | None) -> list[str]:
    """The estimate as ``promote`` and ``best`` print it (nothing before a promote)."""
    if e is None:
        return []
    mean = (f"cross-validated mean {format_value(e.cv_mean)}" if e.cv_mean is not None
            else f"re-seeded mean {format_value(e.reseeded_mean)}")
    if e.heldout_value is None:
        held = "held-out: none (the study has no test part)"
    else:
        held = (f"held-out {e.heldout_metric} {format_value(e.heldout_value)} on {e.heldout_rows} rows "
                f"({'refit on train + validation' if e.refit else 'trained on the training rows'})")
    lines = [f"estimate   trial {e.trial}: validation {e.metric} {format_value(e.selected_value)}, {mean}, {held}"]
    if e.optimism_gap is not None:
        lines.append(f"           optimism gap {format_value(e.optimism_gap)} (selected - held-out), "
                     f"{format_value(e.estimate_gap)} ({'cross-validated' if e.cv_mean is not None else 're-seeded'} "
                     "- held-out); positive: the estimate promised more")
    return lines


def summary_text(s: StudySummary) -> str:
    """A study's summary as ``sweeplab run``, ``status`` and ``best`` print it (without ``--json``)."""
    lines = [
        f"study      {s.study}",
        f"trials     {s.n_trials} finished"
        + (f" of {s.trials_target}" if s.trials_target else "")
        + f"  (complete {s.n_complete}, pruned {s.n_pruned}, failed {s.n_failed}"
        + (f", retried {s.n_retried}" if s.n_retried else "")
        + (f"; rejected by constraints {s.n_rejected}" if s.n_rejected else "")
        + ")",
    ]
    if s.running_trials:
        lines.append(f"running    {', '.join(str(n) for n in s.running_trials)}")
    for group in s.failures[:5]:
        shown = ", ".join(str(n) for n in group.trials[:8]) + (", ..." if len(group.trials) > 8 else "")
        lines.append(f"failed     {group.count}x {group.reason}  (trial{'s' if group.count > 1 else ''} {shown})")
    if len(s.failures) > 5:
        lines.append(f"failed     ... and {len(s.failures) - 5} other errors (--json lists them all)")
    if s.best_trial is None:
        lines.append("best       none yet (no completed trial)")
    else:
        lines.append(f"best       trial {s.best_trial}: {format_value(s.metric)} = {format_value(s.best_value)}")
        for key, value in (s.best_params or {}).items():
            lines.append(f"  {key:<16} {format_value(value)}")
        if s.best_run_id:
            lines.append(f"mlflow run {s.best_run_id}")
        model = (s.run.best_model if s.run is not None else None) or {}
        logged = s.best_model_uri or (model["model_uri"] if model.get("logged_by_function") else None)
        if logged:
            lines.append(f"model      {logged} (logged by the function: trial.log_model)")
        elif model.get("model_uri"):
            lines.append(f"model      {model['model_uri']} (mlflow.pyfunc: raw rows -> labels)")
        elif model.get("reason"):
            lines.append(f"model      not logged: {model['reason']}")
    lines.extend(estimate_lines(s.estimate))
    if s.pareto_front:
        names = f" ({', '.join(s.metric)})" if isinstance(s.metric, list) else ""
        lines.append(f"pareto     {len(s.pareto_front)} trials on the front{names}:")
        for item in s.pareto_front:
            link = f"  run {item.run_id}" if item.run_id else ""
            lines.append(f"  trial {item.trial}: {format_value(item.values)}{link}")
    if s.mlflow_parent_run_id:
        lines.append(f"parent run {s.mlflow_parent_run_id} (experiment {s.mlflow_experiment_id})")
    return "\n".join(lines)

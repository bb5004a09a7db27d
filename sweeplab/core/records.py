"""Plain data passed between the driver, the coordinator and the workers."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

COMPLETE = "COMPLETE"
PRUNED = "PRUNED"
FAILED = "FAIL"
LOST = "LOST"
"""The trial's own worker process died while its driver lived (killed itself, out of memory):
failed and retried, spending one of the lineage's ``max_retries``."""
INTERRUPTED = "INTERRUPTED"
"""The trial was cut short by the infrastructure, not by itself: its driver died or was
stopped (SIGKILL, Ctrl-C, an expired lease) or its Ray node was lost. Failed and retried
without spending ``max_retries``, up to the separate bound
:data:`sweeplab.search.coordinator.MAX_INTERRUPTIONS`."""
LOSSES = (LOST, INTERRUPTED)


def _fields_from(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data``'s value (None when missing) for each field of the flat record class ``cls``:
    what its ``to_json`` wrote, read back."""
    return {f.name: data.get(f.name) for f in fields(cls)}


@dataclass(frozen=True)
class TrialTicket:
    """One asked trial, ready to dispatch.

    ``raw_params`` are the values recorded in Optuna; ``params`` the resolved
    hyperparameters the objective gets. ``seed`` derives from the spec's seed and the
    number of the lineage's first attempt, so a retry trains exactly like its original.
    ``prunable`` is False when the study's pruner can never stop a trial (``none``):
    the worker then need not wait for the coordinator after each report.
    """

    number: int
    raw_params: dict[str, Any]
    params: dict[str, Any]
    seed: int
    framework: str
    attempt: int = 0
    retry_of: int | None = None
    prunable: bool = True


@dataclass(frozen=True)
class TrialOutcome:
    """What a worker returns for one trial.

    ``artifacts``: files for the trial's MLflow child run, by artifact path (content:
    bytes, str, or a mapping written as JSON). ``warnings``: mistakes of a user function
    worth saying on the driver's stderr (e.g. a report without the study's metric).
    """

    number: int
    state: str
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    pruned_epoch: int | None = None
    node: str = ""
    duration: float = 0.0
    started_at: float = 0.0
    artifacts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrialRecord:
    """A finished trial as the coordinator told it: for tracking and the progress bar."""

    number: int
    state: str
    values: list[float] | None
    params: dict[str, Any]
    raw_params: dict[str, Any]
    metrics: dict[str, float]
    history: list[tuple[int, float, dict[str, float]]]
    reason: str | None
    pruned_epoch: int | None
    node: str
    duration: float
    attempt: int
    retry_of: int | None
    retried_by: int | None = None


@dataclass(frozen=True)
class TrialDigest:
    """A finished trial as Optuna holds it: what the tracker needs to repair MLflow after a crash.

    ``state`` is Optuna's state name (``COMPLETE``, ``PRUNED``, ``FAIL``);
    ``intermediate`` the reported study metric by epoch; ``run_id`` the trial's MLflow
    run as the study links it (None when no link was recorded).
    """

    number: int
    state: str
    raw_params: dict[str, Any]
    intermediate: dict[int, float]
    metrics: dict[str, float]
    reason: str | None
    pruned_epoch: int | None
    node: str
    retried_by: int | None
    retry_of: int | None
    run_id: str | None
    values: list[float] | None


@dataclass(frozen=True)
class ParetoTrial:
    """One trial on the Pareto front of a multi-objective study."""

    trial: int
    values: list[float | None]
    params: dict[str, Any]
    run_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"trial": self.trial, "values": list(self.values), "params": dict(self.params), "run_id": self.run_id}


@dataclass(frozen=True)
class RunDetails:
    """What one ``sweeplab run`` adds to its study's summary.

    ``best_model``: what packaging the best trial gave (``packaged``, ``reason``,
    ``model_uri``...; see :func:`sweeplab.study.packaging.package_best_trial`), None when
    the run did not try (``--no-model``, a study that did not finish, no Ray).
    ``startup_s``: seconds per start-up phase. ``mlflow_delivered``: every queued MLflow
    request was delivered; ``mlflow_requests``: how many went out. ``storage`` and
    ``tracking_uri``: the stores the run used.
    """

    elapsed_s: float
    startup_s: dict[str, float]
    mlflow_delivered: bool
    mlflow_requests: int
    storage: str
    tracking_uri: str
    best_model: dict[str, Any] | None = None


@dataclass(frozen=True)
class FailureGroup:
    """Failed trials that share one error: ``reason`` is the first line of their reasons."""

    reason: str
    count: int
    trials: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "count": self.count, "trials": list(self.trials)}


def failure_key(reason: str | None) -> str:
    """What groups failed trials: the first line of the reason (the error and its message)."""
    text = (reason or "").strip()
    return text.splitlines()[0][:300] if text else "no reason recorded"


@dataclass(frozen=True)
class StudySummary:
    """A study's counts, best trial (or Pareto front), running trials and MLflow ids.

    What ``sweeplab run``, ``status`` and ``best`` print; :meth:`to_json` is their
    ``--json`` object. Built by :func:`sweeplab.search.summary.summarize`; ``run`` is set
    by the run that produced it (:func:`sweeplab.study.run.run_study`), None otherwise.

    ``n_trials`` counts the finished trials that count toward ``trials``
    (``n_complete + n_pruned + n_failed``); ``n_retried`` the failed attempts a retry
    superseded and ``n_rejected`` the trials the constraints rejected before they ran
    (neither counts). ``trials_target``: the ``trials`` the last run asked for, else the
    spec's. ``metric``: the spec's (a name, or a list for a multi-objective study).
    Single-objective: ``best_*`` describe the best COMPLETE trial. Multi-objective:
    ``pareto_front`` lists the front, and ``best_value`` (a list), ``best_params``,
    ``best_trial`` and ``best_run_id`` its first trial. Non-finite values are None.
    ``best_model_uri``: ``runs:/<best_run_id>/model`` when the best trial's function logged
    a model (``trial.log_model``), else None (a torch/keras study's model is packaged at the
    end of a run: the run's ``best_model``).
    ``failures``: the trials counted in ``n_failed``, grouped by error (most frequent first).
    ``estimate``: the last ``promote``'s :class:`SelectionEstimate` (selected, re-seeded or
    cross-validated, and held-out values, and the optimism gap), None before any promote.
    ``sampler`` / ``pruner``: the names the study runs with, as its stored spec holds them
    (what ``auto`` resolved to when the spec said ``auto`` or named none).
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
    direction: list[str]
    metric: str | list[str] | None
    best_value: float | list[float | None] | None = None
    best_params: dict[str, Any] | None = None
    best_trial: int | None = None
    best_metrics: dict[str, float] | None = None
    best_run_id: str | None = None
    best_model_uri: str | None = None
    pareto_front: list[ParetoTrial] | None = None
    running_trials: list[int] = field(default_factory=list)
    mlflow_experiment_id: str | None = None
    mlflow_parent_run_id: str | None = None
    failures: list[FailureGroup] = field(default_factory=list)
    sampler: str | None = None
    pruner: str | None = None
    run: RunDetails | None = None
    estimate: SelectionEstimate | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object of ``run``, ``status`` and ``best`` (JSON-ready values).

        Every field but ``run`` by name; a run adds its :class:`RunDetails` at the top
        level (``best_model`` only when the run tried to package the best trial).
        """
        out: dict[str, Any] = {
            "study": self.study,
            "n_trials": self.n_trials,
            "n_complete": self.n_complete,
            "n_pruned": self.n_pruned,
            "n_failed": self.n_failed,
            "n_retried": self.n_retried,
            "n_rejected": self.n_rejected,
            "n_running": self.n_running,
            "n_waiting": self.n_waiting,
            "trials_target": self.trials_target,
            "direction": list(self.direction),
            "metric": list(self.metric) if isinstance(self.metric, list) else self.metric,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "best_value": list(self.best_value) if isinstance(self.best_value, list) else self.best_value,
            "best_params": None if self.best_params is None else dict(self.best_params),
            "best_trial": self.best_trial,
            "best_metrics": None if self.best_metrics is None else dict(self.best_metrics),
            "best_run_id": self.best_run_id,
            "best_model_uri": self.best_model_uri,
            "pareto_front": None if self.pareto_front is None else [p.to_json() for p in self.pareto_front],
            "running_trials": list(self.running_trials),
            "mlflow_experiment_id": self.mlflow_experiment_id,
            "mlflow_parent_run_id": self.mlflow_parent_run_id,
            "failures": [f.to_json() for f in self.failures],
            "estimate": None if self.estimate is None else self.estimate.to_json(),
        }
        run = self.run
        if run is not None:
            if run.best_model is not None:
                out["best_model"] = dict(run.best_model)
            out.update(elapsed_s=run.elapsed_s, startup_s=dict(run.startup_s), mlflow_delivered=run.mlflow_delivered,
                       mlflow_requests=run.mlflow_requests, storage=run.storage, tracking_uri=run.tracking_uri)
        return out


@dataclass(frozen=True)
class RefitRun:
    """One re-training of a promotion candidate with one seed."""

    seed_index: int
    seed: int
    state: str
    value: float | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"seed_index": self.seed_index, "seed": self.seed, "state": self.state, "value": self.value,
                "reason": self.reason}


@dataclass(frozen=True)
class PromotionCandidate:
    """One of a study's top configs, re-trained over seeds by ``promote``.

    ``mean`` and ``std`` (sample standard deviation) are over the ``n_ok`` re-trainings
    that completed with a finite value; both None when none did.
    """

    trial: int
    study_value: float | None
    params: dict[str, Any]
    runs: tuple[RefitRun, ...]
    n_ok: int
    mean: float | None
    std: float | None

    def to_json(self) -> dict[str, Any]:
        return {"trial": self.trial, "study_value": self.study_value, "params": dict(self.params),
                "runs": [r.to_json() for r in self.runs], "n_ok": self.n_ok, "mean": self.mean, "std": self.std}


def heldout_metric(metric: str) -> str | None:
    """The held-out counterpart of a validation metric (``val_accuracy`` -> ``test_accuracy``), the name the
    network objectives give it; None for a metric without one."""
    return f"test_{metric[4:]}" if metric.startswith("val_") and len(metric) > 4 else None


@dataclass(frozen=True)
class RefitInfo:
    """How ``promote`` refit the champion: ``n_rows`` rows (the study's training ``n_train`` plus
    validation ``n_val`` rows) for ``epochs`` epochs, the mean best epoch of the winner's
    re-seeded trainings (``best_epochs``), with its trial's own seed."""

    n_rows: int
    n_train: int
    n_val: int
    epochs: int
    best_epochs: tuple[int, ...]
    seed: int

    def to_json(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "n_train": self.n_train, "n_val": self.n_val, "epochs": self.epochs,
                "best_epochs": list(self.best_epochs), "seed": self.seed}


@dataclass(frozen=True)
class BaselineScore:
    """One scikit-learn baseline of ``promote --baselines``: fitted on the rows the champion trained on,
    scored (``metric``, e.g. ``test_accuracy``) on the same held-out rows."""

    name: str
    metric: str
    value: float
    fit_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "metric": self.metric, "value": self.value, "fit_seconds": self.fit_seconds}


@dataclass(frozen=True)
class SelectionEstimate:
    """How far the champion's chosen value can be trusted: what ``best --json`` shows as ``estimate``.

    ``selected_value``: the winner trial's study value (its validation value, chosen as the
    best of many: optimistic by construction); ``reseeded_mean``: its mean over
    ``promote``'s seeds; ``cv_mean``: its fold mean when the study cross-validated
    (``<metric>_std`` among its metrics, :data:`~sweeplab.core.keys.METRIC_STD_SUFFIX`),
    else None; ``heldout_value``: the registered model's ``heldout_metric`` on
    ``heldout_rows`` rows that neither the search nor the refit touched (None without such
    rows). ``optimism_gap`` = ``selected_value - heldout_value`` and ``estimate_gap`` =
    (``cv_mean``, else ``reseeded_mean``) ``- heldout_value``, both signed so that a
    positive gap means the estimate promised more than the held-out rows gave (negated for a
    minimized metric). ``refit``: the registered model was refit on train + validation.
    """

    metric: str
    direction: str
    trial: int
    selected_value: float | None
    reseeded_mean: float | None
    cv_mean: float | None
    heldout_metric: str | None
    heldout_value: float | None
    heldout_rows: int
    optimism_gap: float | None
    estimate_gap: float | None
    refit: bool
    model_uri: str | None = None

    @classmethod
    def build(cls, *, metric: str, direction: str, trial: int, selected_value: float | None,
              reseeded_mean: float | None, cv_mean: float | None, heldout_value: float | None, heldout_rows: int,
              refit: bool, model_uri: str | None = None) -> SelectionEstimate:
        """The estimate with its gaps computed (the one place the sign rule lives)."""
        sign = 1.0 if direction == "maximize" else -1.0

        def gap(value: float | None) -> float | None:
            return None if value is None or heldout_value is None else sign * (value - heldout_value)

        estimate = cv_mean if cv_mean is not None else reseeded_mean
        return cls(metric=metric, direction=direction, trial=trial, selected_value=selected_value,
                   reseeded_mean=reseeded_mean, cv_mean=cv_mean, heldout_metric=heldout_metric(metric),
                   heldout_value=heldout_value, heldout_rows=heldout_rows, optimism_gap=gap(selected_value),
                   estimate_gap=gap(estimate), refit=refit, model_uri=model_uri)

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "direction": self.direction, "trial": self.trial,
                "selected_value": self.selected_value, "reseeded_mean": self.reseeded_mean, "cv_mean": self.cv_mean,
                "heldout_metric": self.heldout_metric, "heldout_value": self.heldout_value,
                "heldout_rows": self.heldout_rows, "optimism_gap": self.optimism_gap,
                "estimate_gap": self.estimate_gap, "refit": self.refit, "model_uri": self.model_uri}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SelectionEstimate:
        """Read back what :meth:`to_json` wrote (the study attr ``sweeplab.estimate``)."""
        return cls(**_fields_from(cls, data))


@dataclass(frozen=True)
class Promotion:
    """What ``sweeplab promote`` did: the registered champion and how it was chosen.

    ``refit``: how the champion was refit on train + validation (None: the registered model is
    the winner trained on the training rows only, ``--no-refit``); ``estimate``: the selected,
    re-seeded and held-out values side by side; ``baselines``: the scikit-learn baselines'
    held-out scores (empty without ``--baselines``).
    """

    study: str
    model_name: str
    version: int
    alias: str
    model_uri: str
    run_id: str
    tracking_uri: str
    metric: str
    winner: PromotionCandidate
    winner_seed: int
    model_metrics: dict[str, float]
    candidates: tuple[PromotionCandidate, ...]
    elapsed_s: float = 0.0
    refit: RefitInfo | None = None
    estimate: SelectionEstimate | None = None
    baselines: tuple[BaselineScore, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``promote --json`` object."""
        winner = self.winner.to_json()
        return {
            "study": self.study, "model_name": self.model_name, "version": self.version, "alias": self.alias,
            "model_uri": self.model_uri, "run_id": self.run_id, "tracking_uri": self.tracking_uri,
            "metric": self.metric,
            "winner": {k: winner[k] for k in ("trial", "params", "mean", "std", "n_ok", "study_value")},
            "winner_seed": self.winner_seed, "model_metrics": dict(self.model_metrics),
            "candidates": [c.to_json() for c in self.candidates], "elapsed_s": self.elapsed_s,
            "refit": None if self.refit is None else self.refit.to_json(),
            "estimate": None if self.estimate is None else self.estimate.to_json(),
            "baselines": [b.to_json() for b in self.baselines],
        }


@dataclass(frozen=True)
class ForkResult:
    """What ``run --fork`` copied: finished trials of the source study, and those left out."""

    source: str
    copied: int
    skipped: int


@dataclass(frozen=True)
class AuditedTrial:
    """One pruned trial the audit re-trained to the end (see :mod:`sweeplab.bench.audit`).

    ``state`` is the re-run's (``COMPLETE``, ``FAIL``, ``LOST``); ``final_value`` is None
    unless it completed with a finite value, and ``reason`` says why. ``beats_best`` /
    ``beats_median``: None without a final value or a study best / median.
    ``reproduced``: the re-run retraced the stored values up to the pruned epoch (None
    when there was nothing to compare).
    """

    number: int
    params: dict[str, Any]
    pruned_at_epoch: int
    value_at_prune: float | None
    final_value: float | None
    epochs_trained: int
    state: str
    reason: str | None
    beats_best: bool | None
    beats_median: bool | None
    reproduced: bool | None
    max_abs_diff_before_prune: float | None

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "params": dict(self.params), "pruned_at_epoch": self.pruned_at_epoch,
                "value_at_prune": self.value_at_prune, "final_value": self.final_value,
                "epochs_trained": self.epochs_trained, "state": self.state, "reason": self.reason,
                "beats_best": self.beats_best, "beats_median": self.beats_median, "reproduced": self.reproduced,
                "max_abs_diff_before_prune": self.max_abs_diff_before_prune}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditedTrial:
        return cls(**_fields_from(cls, data))


@dataclass(frozen=True)
class AuditResult:
    """A pruning audit of one study: would its pruned trials have won if trained to the end?

    Counts and rates are over the re-trained trials that completed (``n_audited -
    n_retrain_failed``); ``would_beat_*`` and the rates are None without a COMPLETE trial
    in the study. ``estimated_missed_best`` is ``beat_best_rate * n_pruned``.
    ``artifact`` names the MLflow artifact the result was stored as, None when not stored.
    """

    study: str
    metric: str
    direction: str
    full_epochs: int
    early_stopping: bool
    n_trials: int
    n_complete: int
    n_pruned: int
    sample: int
    seed: int
    n_audited: int
    n_retrain_failed: int
    best_value: float | None
    median_value: float | None
    would_beat_best: int | None
    would_beat_median: int | None
    beat_best_rate: float | None
    beat_median_rate: float | None
    estimated_missed_best: float | None
    trials: tuple[AuditedTrial, ...]
    note: str
    created_at: str
    elapsed_s: float
    mlflow_parent_run_id: str | None
    artifact: str | None = None

    @property
    def n_retrained(self) -> int:
        """Re-trained trials that completed: what the ``would_beat_*`` counts are out of."""
        return self.n_audited - self.n_retrain_failed

    def to_json(self) -> dict[str, Any]:
        """The ``audit --json`` object, also stored as ``audit.json``."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["trials"] = [t.to_json() for t in self.trials]
        return out

    def brief(self) -> dict[str, Any]:
        """The counts a bench result shows per cell."""
        return {k: getattr(self, k) for k in ("n_pruned", "n_audited", "n_retrain_failed", "would_beat_best",
                                              "would_beat_median", "best_value", "median_value")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditResult:
        """Read a stored ``audit.json``; raises KeyError or TypeError when it is not one."""
        values = {f: data[f] for f in cls.__dataclass_fields__ if f not in ("trials", "artifact")}
        return cls(**values, trials=tuple(AuditedTrial.from_json(t) for t in data["trials"]),
                   artifact=data.get("artifact"))

"""The pruning audit: would the trials a pruner stopped have won if they had run to the end?

:func:`audit_study` takes a finished (single-objective) study, draws a sample of its
PRUNED trials, and re-trains each one as a Ray task with the same params and the same
trial seed, on the study's dataset loaded like the driver loads it, with a reporter that
never prunes (:class:`~sweeplab.objectives.base.NullReporter`); so each audited trial
runs its full ``objective.epochs`` (fewer only when the spec's early stopping ends it).
Then it counts how many would have beaten the study's best COMPLETE value, and how
many its median COMPLETE value.

The audit never writes to the Optuna study (one writer: the study's coordinator).
Its result is stored as the artifact ``audit.json`` of the study's MLflow parent run,
and returned. Sampling is reproducible: ``seed`` picks the trials.
"""

from __future__ import annotations

import json
import logging
import math
import random
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from sweeplab.core.errors import SweeplabError, UsageError
from sweeplab.core.keys import (
    ATTR_PRUNED_EPOCH,
    ATTR_REJECTED,
    STUDY_ATTR_PARENT_RUN_ID,
    STUDY_ATTR_SPEC,
    STUDY_ATTR_TRACKING_URI,
    TAG_AUDIT,
)
from sweeplab.core.records import AuditedTrial, AuditResult

if TYPE_CHECKING:
    import optuna

    from sweeplab.core.records import TrialOutcome, TrialTicket
    from sweeplab.objectives.dataset import Dataset
    from sweeplab.spec import ObjectiveSpec

__all__ = ["AUDIT_ARTIFACT", "audit_study", "audit_text", "load_audit"]

log = logging.getLogger("sweeplab.bench")

AUDIT_ARTIFACT = "audit.json"


def retrain_trial(ticket: TrialTicket, dataset: Dataset | None, settings: ObjectiveSpec, metric_names: list[str],
                  cpus: float, gpus: float) -> tuple[TrialOutcome, list[tuple[int, float | None]]]:
    """Run one trial to the end (never pruned); return its outcome and ``(epoch, metric)`` history.

    Runs on a Ray worker through the same :func:`~sweeplab.search.worker.execute_trial`
    as a study's trials, so objectives are cached per worker process.
    """
    from sweeplab.objectives.base import NullReporter
    from sweeplab.search.worker import execute_trial

    reporter = NullReporter()
    outcome = execute_trial(ticket, dataset, settings, metric_names, None, cpus, gpus, reporter=reporter)
    metric = metric_names[0]
    history = [(int(epoch), float(m[metric]) if metric in m else None) for epoch, m in reporter.history]
    return outcome, history


def audit_study(study_name: str, *, storage_url: str, tracking_uri: str | None = None, sample: int = 5,
                seed: int = 0, address: str | None = None, log_artifact: bool = True,
                study: optuna.Study | None = None) -> AuditResult:
    """Audit the pruning of study ``study_name`` and return the result (see the module docstring).

    ``sample``: how many PRUNED trials to re-train (all of them when there are fewer;
    ``>= 1``). ``seed``: seeds the choice of trials. ``address``: the Ray cluster
    (joined or started like ``run_study`` does, unless Ray is already initialised).
    ``log_artifact``: store the result as ``audit.json`` on the study's MLflow parent
    run (its tracking URI: ``tracking_uri``, else the one the study recorded, else the
    default); a tracking store that cannot be reached only logs a warning.

    The result (:class:`~sweeplab.core.records.AuditResult`) compares with the study's
    COMPLETE trials: ``best_value`` and ``median_value``, and how many re-trained trials
    would beat each; one :class:`~sweeplab.core.records.AuditedTrial` per re-trained trial.

    Raises UsageError for a multi-objective study or ``sample < 1``,
    StudyNotFoundError when the study does not exist, SweeplabError when it was not
    created by sweeplab (no stored spec).
    """
    import optuna
    from optuna.trial import TrialState

    from sweeplab.search.storage import load_existing_study
    from sweeplab.spec import parse_spec

    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise UsageError(f"sample: must be a positive number of pruned trials to re-train, got {sample!r}")
    started = time.time()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if study is None:
        study = load_existing_study(study_name, storage_url)
    spec_dict = study.user_attrs.get(STUDY_ATTR_SPEC)
    if not spec_dict:
        raise SweeplabError(f"study {study_name!r} has no stored sweeplab spec (user attr {STUDY_ATTR_SPEC}); "
                            "only studies run by `sweeplab run` or `sweeplab bench` can be audited")
    spec = parse_spec(spec_dict, source=f"study {study_name}")
    if spec.multi_objective:
        raise UsageError(f"study {study_name!r} is multi-objective; Optuna does not prune those, nothing to audit")
    direction, metric = spec.direction[0], spec.metric[0]
    trials = study.get_trials(deepcopy=False)
    finals = [float(t.value) for t in trials
              if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
    best_value = (max(finals) if direction == "maximize" else min(finals)) if finals else None
    median_value = statistics.median(finals) if finals else None
    # trials the constraints rejected before they ran were never trained: nothing to audit there
    pruned = [t for t in trials if t.state == TrialState.PRUNED and not t.user_attrs.get(ATTR_REJECTED)]
    chosen = sorted(random.Random(seed).sample(pruned, min(sample, len(pruned))), key=lambda t: t.number)

    records: list[AuditedTrial] = []
    if chosen:
        import ray

        from sweeplab.search.coordinator import ticket_for_trial
        from sweeplab.study.run import init_ray, load_study_dataset

        dataset = load_study_dataset(spec, tracking_uri or study.user_attrs.get(STUDY_ATTR_TRACKING_URI))
        init_ray(address)
        ref = ray.put(dataset)
        task = ray.remote(max_retries=0)(retrain_trial)
        cpus, gpus = spec.resources.cpu, spec.resources.gpu
        pending = {
            task.options(num_cpus=cpus, num_gpus=gpus).remote(ticket_for_trial(spec, t), ref, spec.objective,
                                                              list(spec.metric), cpus, gpus): t
            for t in chosen
        }
        for obj_ref, trial in pending.items():
            try:
                outcome, history = ray.get(obj_ref)
            except ray.exceptions.RayError as exc:
                records.append(_record(trial, None, [], f"lost: its worker died ({type(exc).__name__})",
                                       best_value, median_value, direction, metric, ATTR_PRUNED_EPOCH))
                continue
            records.append(_record(trial, outcome, history, outcome.reason, best_value, median_value, direction,
                                   metric, ATTR_PRUNED_EPOCH))

    ok = [r for r in records if r.final_value is not None]
    beat_best = sum(1 for r in ok if r.beats_best) if best_value is not None else None
    beat_median = sum(1 for r in ok if r.beats_median) if median_value is not None else None
    rate = (beat_best / len(ok)) if ok and beat_best is not None else None
    result = AuditResult(
        study=study_name,
        metric=metric,
        direction=direction,
        full_epochs=spec.objective.epochs,
        early_stopping=spec.objective.early_stopping is not None,
        n_trials=len(trials),
        n_complete=len(finals),
        n_pruned=len(pruned),
        sample=sample,
        seed=seed,
        n_audited=len(records),
        n_retrain_failed=len(records) - len(ok),
        best_value=best_value,
        median_value=median_value,
        would_beat_best=beat_best,
        would_beat_median=beat_median,
        beat_best_rate=rate,
        beat_median_rate=(beat_median / len(ok)) if ok and beat_median is not None else None,
        estimated_missed_best=round(rate * len(pruned), 3) if rate is not None else None,
        trials=tuple(records),
        note=_note(len(pruned), len(records), best_value),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        elapsed_s=round(time.time() - started, 3),
        mlflow_parent_run_id=study.user_attrs.get(STUDY_ATTR_PARENT_RUN_ID),
    )
    if log_artifact and _store(result, tracking_uri or study.user_attrs.get(STUDY_ATTR_TRACKING_URI)):
        result = replace(result, artifact=AUDIT_ARTIFACT)
    return result


def _record(trial: optuna.trial.FrozenTrial, outcome: TrialOutcome | None, history: list[tuple[int, float | None]],
            reason: str | None, best: float | None, median: float | None, direction: str, metric: str,
            pruned_attr: str) -> AuditedTrial:
    """One audited trial: how it was pruned, what it reached when trained to the end."""
    steps = sorted(trial.intermediate_values)
    pruned_at = int(trial.user_attrs.get(pruned_attr, steps[-1] if steps else 0))
    at_prune = trial.intermediate_values.get(steps[-1]) if steps else None
    final = None
    if outcome is not None and outcome.state == "COMPLETE":
        value = outcome.metrics.get(metric)
        final = float(value) if value is not None and math.isfinite(value) else None

    def beats(ref: float | None) -> bool | None:
        if final is None or ref is None:
            return None
        return final > ref if direction == "maximize" else final < ref

    # Same params and seed: the re-run must retrace the stored curve up to the pruned epoch.
    diffs = [abs(v - trial.intermediate_values[e]) for e, v in history
             if v is not None and e in trial.intermediate_values]
    reproduced = None if not diffs else max(diffs) <= 1e-6 * max(1.0, abs(at_prune or 0.0))
    return AuditedTrial(
        number=trial.number,
        params=dict(trial.params),
        pruned_at_epoch=pruned_at,
        value_at_prune=at_prune,
        final_value=final,
        epochs_trained=max((e for e, _ in history), default=0),
        state=outcome.state if outcome is not None else "LOST",
        reason=(reason or None) if final is None else None,
        beats_best=beats(best),
        beats_median=beats(median),
        reproduced=reproduced,
        max_abs_diff_before_prune=max(diffs) if diffs else None,
    )


def _note(n_pruned: int, n_audited: int, best: float | None) -> str:
    if n_pruned == 0:
        return "the study has no pruned trial: nothing to audit"
    if best is None:
        return "the study has no complete trial, so no best or median to compare with"
    return f"re-trained {n_audited} of {n_pruned} pruned trials without pruning"


def _store(result: AuditResult, tracking_uri: str | None) -> bool:
    """Log ``result`` as ``audit.json`` on the study's MLflow parent run; False (with a
    warning) when it could not be stored."""
    run_id = result.mlflow_parent_run_id
    if not run_id:
        log.warning("study %s has no MLflow parent run; the audit is not stored", result.study)
        return False
    try:
        from mlflow.tracking import MlflowClient

        from sweeplab.tracking.mlflow_tracker import resolve_tracking_uri

        client = MlflowClient(resolve_tracking_uri(tracking_uri))
        client.log_dict(run_id, result.to_json(), AUDIT_ARTIFACT)
        if result.would_beat_best is not None:
            client.set_tag(run_id, TAG_AUDIT,
                           f"{result.would_beat_best} of {result.n_audited} audited pruned trials beat the best")
        return True
    except Exception as exc:  # the audit result is still returned and printed
        log.warning("could not store the audit on MLflow run %s: %s", run_id, exc)
        return False


def load_audit(tracking_uri: str, run_id: str) -> AuditResult | None:
    """The ``audit.json`` stored on MLflow run ``run_id``, or None when there is none
    (or the tracking store cannot be read, or the file is not an audit)."""
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        if not any(a.path == AUDIT_ARTIFACT for a in client.list_artifacts(run_id)):
            return None
        with tempfile.TemporaryDirectory(prefix="sweeplab-audit-") as tmp:
            path = client.download_artifacts(run_id, AUDIT_ARTIFACT, tmp)
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        return replace(AuditResult.from_json(data), artifact=AUDIT_ARTIFACT) if isinstance(data, dict) else None
    except Exception as exc:
        log.debug("no audit on run %s: %s", run_id, exc)
        return None


def audit_text(result: AuditResult) -> str:
    """The audit as text for the terminal."""

    def fmt(v: object) -> str:
        return "–" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)

    lines = [f"audit      study {result.study}: {result.note}",
             f"metric     {result.metric} ({result.direction}), full training {result.full_epochs} epochs"
             + (" (early stopping on)" if result.early_stopping else "")]
    lines.append(f"best       {fmt(result.best_value)} (median of complete trials {fmt(result.median_value)})")
    n_ok = result.n_retrained
    if result.n_audited:
        for count, what in ((result.would_beat_best, "the best"), (result.would_beat_median, "the median")):
            if count is not None:
                pct = f" ({100 * count / n_ok:.0f}%)" if n_ok else ""
                lines.append(f"would beat {what:<10} {count} of {n_ok} re-trained pruned trials{pct}")
        if result.estimated_missed_best is not None:
            lines.append(f"estimate   {result.estimated_missed_best:g} of {result.n_pruned} pruned trials "
                         "would have beaten the best")
        if result.n_retrain_failed:
            lines.append(f"failed     {result.n_retrain_failed} re-trained trials failed (see reason in --json)")
        lines.append("  trial  pruned@  value@prune     final  epochs  beats best  beats median  reproduced")
        for r in result.trials:
            lines.append(f"  {r.number:>5}  {r.pruned_at_epoch:>7}  {fmt(r.value_at_prune):>11}  "
                         f"{fmt(r.final_value):>8}  {r.epochs_trained:>6}  {fmt(r.beats_best):>10}  "
                         f"{fmt(r.beats_median):>12}  {fmt(r.reproduced):>10}")
    if result.artifact:
        lines.append(f"saved      {result.artifact} on MLflow run {result.mlflow_parent_run_id}")
    return "\n".join(lines)

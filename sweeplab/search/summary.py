"""The summary of a study that ``run``, ``status`` and ``best`` print (a :class:`StudySummary`)."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from sweeplab.core.keys import (
    ATTR_LOGGED_MODEL,
    ATTR_METRICS,
    ATTR_REASON,
    ATTR_RUN_ID,
    STUDY_ATTR_ESTIMATE,
    STUDY_ATTR_EXPERIMENT_ID,
    STUDY_ATTR_PARENT_RUN_ID,
    STUDY_ATTR_RETRIES,
    STUDY_ATTR_RUN_IDS,
    STUDY_ATTR_SPEC,
    STUDY_ATTR_TRIALS_TARGET,
)
from sweeplab.core.records import FailureGroup, ParetoTrial, SelectionEstimate, StudySummary, failure_key
from sweeplab.search.coordinator import count_states

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def failure_groups(trials: list[FrozenTrial], retried: set[str]) -> list[FailureGroup]:
    """The FAILED trials that count toward ``trials`` (not superseded by a retry), grouped by
    :func:`~sweeplab.core.records.failure_key`, most frequent first."""
    from optuna.trial import TrialState

    groups: dict[str, list[int]] = {}
    for t in trials:
        if t.state == TrialState.FAIL and str(t.number) not in retried:
            groups.setdefault(failure_key(t.user_attrs.get(ATTR_REASON)), []).append(t.number)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[1][0]))
    return [FailureGroup(reason, len(numbers), numbers) for reason, numbers in ordered]


def logged_model_uri(trial: FrozenTrial, run_id: str | None) -> str | None:
    """``runs:/<run_id>/<path>`` of the model ``trial``'s function logged (``trial.log_model``), else None."""
    path = trial.user_attrs.get(ATTR_LOGGED_MODEL)
    return f"runs:/{run_id}/{path}" if path and run_id else None


def summarize(study: optuna.Study) -> StudySummary:
    """Counts, best trial (or Pareto front), running trials and MLflow ids of ``study``.

    A failed or pruned trial is never best: only COMPLETE trials are considered.
    ``n_rejected`` counts trials the study's constraints rejected before they ran (not
    part of ``n_trials`` / ``n_pruned``).
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    counts = count_states(trials, set(attrs.get(STUDY_ATTR_RETRIES, {})))
    run_links: dict[str, str] = dict(attrs.get(STUDY_ATTR_RUN_IDS, {}))
    spec = attrs.get(STUDY_ATTR_SPEC, {})
    summary = StudySummary(
        study=study.study_name,
        n_trials=counts["finished"],
        n_complete=counts["COMPLETE"],
        n_pruned=counts["PRUNED"],
        n_failed=counts["FAIL"],
        n_retried=counts["retried"],
        n_rejected=counts.get("rejected", 0),
        n_running=counts["RUNNING"],
        n_waiting=counts["WAITING"],
        # the target the last `run` asked for (its --trials), else the spec's
        trials_target=attrs.get(STUDY_ATTR_TRIALS_TARGET, spec.get("trials")),
        direction=[d.name.lower() for d in study.directions],
        metric=spec.get("metric"),
        sampler=_component_name(spec.get("sampler")),
        pruner=_component_name(spec.get("pruner")),
        running_trials=[t.number for t in trials if t.state == TrialState.RUNNING],
        mlflow_experiment_id=attrs.get(STUDY_ATTR_EXPERIMENT_ID),
        mlflow_parent_run_id=attrs.get(STUDY_ATTR_PARENT_RUN_ID),
        failures=failure_groups(trials, set(attrs.get(STUDY_ATTR_RETRIES, {}))),
        estimate=SelectionEstimate.from_json(attrs[STUDY_ATTR_ESTIMATE]) if attrs.get(STUDY_ATTR_ESTIMATE) else None,
    )
    if not any(t.state == TrialState.COMPLETE for t in trials):
        return summary
    if len(study.directions) == 1:
        best = study.best_trial
        run_id = best.user_attrs.get(ATTR_RUN_ID) or run_links.get(str(best.number))
        return dataclasses.replace(
            summary,
            best_value=_clean(best.value),
            best_params=dict(best.params),
            best_trial=best.number,
            best_metrics=best.user_attrs.get(ATTR_METRICS),
            best_run_id=run_id,
            best_model_uri=logged_model_uri(best, run_id),
        )
    on_front = sorted(study.best_trials, key=lambda t: t.number)
    front = [
        ParetoTrial(
            trial=t.number,
            values=[_clean(v) for v in t.values],
            params=dict(t.params),
            run_id=t.user_attrs.get(ATTR_RUN_ID) or run_links.get(str(t.number)),
        )
        for t in on_front
    ]
    # the front's first trial stands for it (best_run_id: the trial's own attr only, not the later links)
    first_run = on_front[0].user_attrs.get(ATTR_RUN_ID)
    return dataclasses.replace(summary, pareto_front=front, best_value=list(front[0].values),
                               best_params=dict(front[0].params), best_trial=front[0].trial,
                               best_run_id=first_run, best_model_uri=logged_model_uri(on_front[0], first_run))


def _component_name(section: Any) -> str | None:
    """The ``name`` of a stored spec's ``sampler`` / ``pruner`` section (None for a study without one)."""
    name = section.get("name") if isinstance(section, dict) else None
    return str(name) if name is not None else None

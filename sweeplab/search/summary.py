"""The summary of a study that ``run``, ``status`` and ``best`` print (``--json`` fields)."""

from __future__ import annotations

import math
from typing import Any

from sweeplab.core.keys import ATTR_METRICS, ATTR_RUN_ID, STUDY_ATTR_RETRIES, STUDY_ATTR_TRIALS_TARGET
from sweeplab.search.coordinator import count_states


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summarize(study: Any) -> dict[str, Any]:
    """Counts, best trial (or Pareto front), running trials and MLflow ids of ``study``.

    A failed or pruned trial is never best: only COMPLETE trials are considered.
    ``n_rejected`` counts trials the study's constraints rejected before they ran (not
    part of ``n_trials`` / ``n_pruned``).
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    counts = count_states(trials, set(attrs.get(STUDY_ATTR_RETRIES, {})))
    run_links: dict[str, str] = dict(attrs.get("sweeplab.run_ids", {}))
    spec = attrs.get("sweeplab.spec", {})
    out: dict[str, Any] = {
        "study": study.study_name,
        "n_trials": counts["finished"],
        "n_complete": counts["COMPLETE"],
        "n_pruned": counts["PRUNED"],
        "n_failed": counts["FAIL"],
        "n_retried": counts["retried"],
        "n_rejected": counts.get("rejected", 0),
        "n_running": counts["RUNNING"],
        "n_waiting": counts["WAITING"],
        # the target the last `run` asked for (its --trials), else the spec's
        "trials_target": attrs.get(STUDY_ATTR_TRIALS_TARGET, spec.get("trials")),
        "direction": [d.name.lower() for d in study.directions],
        "metric": spec.get("metric"),
        "best_value": None,
        "best_params": None,
        "best_trial": None,
        "best_metrics": None,
        "best_run_id": None,
        "pareto_front": None,
        "running_trials": [t.number for t in trials if t.state == TrialState.RUNNING],
        "mlflow_experiment_id": attrs.get("mlflow_experiment_id"),
        "mlflow_parent_run_id": attrs.get("mlflow_parent_run_id"),
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return out
    if len(study.directions) == 1:
        best = study.best_trial
        out.update(
            best_value=_clean(best.value),
            best_params=dict(best.params),
            best_trial=best.number,
            best_metrics=best.user_attrs.get(ATTR_METRICS),
            best_run_id=best.user_attrs.get(ATTR_RUN_ID) or run_links.get(str(best.number)),
        )
    else:
        front = study.best_trials
        out["pareto_front"] = [
            {
                "trial": t.number,
                "values": [_clean(v) for v in t.values],
                "params": dict(t.params),
                "run_id": t.user_attrs.get(ATTR_RUN_ID) or run_links.get(str(t.number)),
            }
            for t in sorted(front, key=lambda t: t.number)
        ]
        first = min(front, key=lambda t: t.number)
        out.update(best_value=[_clean(v) for v in first.values], best_params=dict(first.params),
                   best_trial=first.number, best_run_id=first.user_attrs.get(ATTR_RUN_ID))
    return out

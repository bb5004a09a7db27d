"""Package the best trial: a deterministic re-fit on one of the study's workers, evaluated and saved as a model.

Trials do not keep their models: a study of hundreds of trials would ship hundreds of
networks back to the driver for one to be kept. Training is seeded and deterministic on
CPU (same params, seed, data and thread count -> identical weights and metrics), so at the
end of a study the driver runs ONE extra task on a worker, :func:`fit_and_package`, that trains the
best trial's config again with the trial's own seed and returns, as bytes:

- the evaluation artifacts of the guide's ``evaluate_model_performance`` and
  ``plot_training_history`` (``evaluation.json``, confusion matrix table and figure,
  classification report, history table and curves; see
  :func:`sweeplab.objectives.evaluation.evaluation_files`);
- ``model/``: an MLflow pyfunc model (see :mod:`sweeplab.tracking.models`) that predicts
  class labels from raw feature rows, with signature and input example;
- ``model-native/`` (torch only): the network in the ``mlflow.pytorch`` flavor, saved as a
  ``torch.export`` program (``pt2``, no pickle). Its input is the SCALED float32 features
  and its output the logits; use ``model/`` for raw rows. Keras has no native copy: the
  ``mlflow.tensorflow`` flavor cannot load sweeplab's Keras network back (custom layers),
  and ``model/`` already holds the native ``.keras`` archive.

The driver logs them into the best trial's child run through the tracker's queue and
checks that the re-fit reproduced the trial's recorded value (tag
``sweeplab.refit_matches_trial``). Nothing here fails a study: a packaging error is
logged and tagged on the run.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeplab.core.keys import (
    TAG_LOGGED_MODEL,
    TAG_MODEL,
    TAG_MODEL_FRAMEWORK,
    TAG_PACKAGE_ERROR,
    TAG_PACKAGE_NOTES,
    TAG_REFIT_MATCHES,
    TAG_REFIT_SEED,
)
from sweeplab.core.records import StudySummary, TrialTicket
from sweeplab.registry.names import MLP_FRAMEWORKS
from sweeplab.search.coordinator import ticket_for_trial

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset
    from sweeplab.spec import ObjectiveSpec, StudySpec
    from sweeplab.study.session import StudySession

log = logging.getLogger("sweeplab.tracking")

MODEL_FRAMEWORKS = MLP_FRAMEWORKS
"""Frameworks whose trials save a sweeplab model (the MLP frameworks)."""
RAW_EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class Packaged:
    """What :func:`fit_and_package` returns to the driver.

    ``metrics``: the re-fit's final metrics (the objective's return value);
    ``evaluation``: the ``evaluation.json`` payload; ``files``: artifact path -> bytes
    (evaluation files at the top, ``model/...`` and ``model-native/...``); ``seed``: the
    seed trained with; ``notes``: what was skipped and why.
    """

    framework: str
    seed: int
    metrics: dict[str, float]
    evaluation: dict[str, Any] | None
    files: dict[str, bytes]
    notes: list[str] = field(default_factory=list)


def raw_example(spec: StudySpec, n: int = RAW_EXAMPLE_ROWS) -> Any:
    """The first ``n`` RAW feature rows of ``spec``'s dataset (a DataFrame), or None.

    Read with :func:`sweeplab.objectives.data.load_raw` on the driver, where the dataset's
    file is; they become the model's input example and fix its signature's column types.
    """
    obj = spec.objective
    if obj.dataset is None:
        return None
    from sweeplab.objectives.data import load_raw

    ds = obj.dataset
    X, _ = load_raw(task=obj.task, name=ds.name, path=ds.path, target=ds.target, options=dict(ds.options),
                    seed=spec.seed, model=obj.model)
    return X.head(n).reset_index(drop=True)


def _fallback_rows(dataset: Dataset, n: int) -> Any:
    """Approximate raw rows (the scaler undone on held-out rows) when none were given."""
    import numpy as np
    import pandas as pd

    X = dataset.X_test if len(dataset.y_test) else dataset.fold(0).X_val  # cross-validated: fold 0's
    rows = np.asarray(X[:n], dtype=np.float64)
    if dataset.scaler is not None:
        rows = dataset.scaler.inverse_transform(rows)
    return pd.DataFrame(rows.reshape(len(rows), -1), columns=list(dataset.feature_names))  # images: one row each


# --------------------------------------------------------------------------- worker side


def fit_and_package(
    ticket: TrialTicket,
    dataset: Dataset,
    settings: ObjectiveSpec,
    metric_names: list[str],
    cpus: float = 1.0,
    gpus: float = 0.0,
    raw_rows: Any = None,
    *,
    title: str = "",
    metadata: Mapping[str, Any] | None = None,
    native: bool = True,
) -> Packaged:
    """Train ``ticket`` (params and seed) on ``dataset``, evaluate it and save it as a model.

    Runs on a Ray worker (the driver wraps it as a task) or in-process. Uses the worker's
    cached objective, so the training is the trial's exactly. Raises whatever the
    objective raises (the caller decides what a failure means); a failure to write the
    optional ``model-native/`` copy is only noted.
    """
    from sweeplab.objectives.base import NullReporter, TrialContext, check_metrics
    from sweeplab.objectives.evaluation import evaluate_objective, evaluation_files
    from sweeplab.search.worker import get_objective
    from sweeplab.tracking.models import model_meta, read_tree, save_pyfunc_model

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    framework = ticket.framework
    if framework not in MODEL_FRAMEWORKS:
        raise ValueError(f"only torch and keras trials have a model to package, got framework {framework!r}")
    objective = get_objective(framework, None)
    ctx = TrialContext(params=ticket.params, dataset=dataset, seed=ticket.seed, reporter=NullReporter(),
                       settings=settings, cpus=cpus, gpus=gpus, trial_number=ticket.number,
                       extras={"metric": metric_names[0] if metric_names else "value"})
    metrics = check_metrics(objective.run(ctx), metric_names)
    evaluation = evaluate_objective(framework, objective, dataset, metrics)
    history = list(getattr(objective, "history", []) or [])
    name = title or f"trial {ticket.number}"
    files: dict[str, bytes] = evaluation_files(evaluation, history, name) if evaluation else {}
    notes: list[str] = []
    rows = raw_rows if raw_rows is not None else _fallback_rows(dataset, RAW_EXAMPLE_ROWS)
    extra = {"trial": ticket.number, "seed": ticket.seed, "params": _plain(ticket.raw_params),
             "train_rows": len(dataset.y_train), "refit": bool(dataset.refit),
             "metrics": {k: v for k, v in metrics.items() if math.isfinite(v)}, **dict(metadata or {})}
    meta = model_meta(framework, getattr(objective, "config", None), dataset, dataset.n_outputs, extra=extra,
                      model=settings.model)
    with tempfile.TemporaryDirectory(prefix="sweeplab-package-") as tmp:
        model_dir = Path(tmp) / "model"
        save_pyfunc_model(model_dir, framework, getattr(objective, "model", None), meta, rows,
                          metadata={"trial": str(ticket.number), "seed": str(ticket.seed), **_str_values(metadata)})
        files.update(read_tree(model_dir, prefix="model/"))
        if native and framework == "torch":
            native_dir = Path(tmp) / "model-native"
            try:
                _save_native_torch(native_dir, getattr(objective, "model", None), dataset)
                files.update(read_tree(native_dir, prefix="model-native/"))
            except Exception as exc:  # the pyfunc model is the contract; the native copy is a bonus
                notes.append(f"model-native skipped: {type(exc).__name__}: {str(exc)[:300]}")
    return Packaged(framework=framework, seed=ticket.seed, metrics=metrics, evaluation=evaluation, files=files,
                    notes=notes)


def _save_native_torch(path: Path, model: Any, dataset: Dataset) -> None:
    """The network alone in the ``mlflow.pytorch`` flavor (``pt2``: scaled rows -> logits)."""
    import mlflow.pytorch
    import numpy as np

    from sweeplab.tracking.models import pip_requirements

    X = dataset.X_test if len(dataset.y_test) else dataset.fold(0).X_val  # cross-validated: fold 0's
    example = np.ascontiguousarray(X[:RAW_EXAMPLE_ROWS], dtype=np.float32)
    model = model.cpu().eval()
    reqs = [r for r in pip_requirements("torch") if r.split("==")[0] in ("torch", "mlflow", "numpy")]
    mlflow.pytorch.save_model(model, str(path), serialization_format="pt2", input_example=example,
                              pip_requirements=reqs)


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v if isinstance(v, (int, float, str, bool)) or v is None else str(v) for k, v in params.items()}


def _str_values(values: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


# --------------------------------------------------------------------------- driver side


def _logged_by_function(tracker: Any, run_id: str, framework: str) -> dict[str, Any]:
    """What a user function's best trial logged itself (``trial.log_model``): its model's URI, or why none."""
    tracker.writer.wait_idle(timeout=30.0)  # the trial's artifacts and tag are queued behind its run
    if tracker.client.get_run(run_id).data.tags.get(TAG_LOGGED_MODEL):
        return {"packaged": False, "logged_by_function": True, "run_id": run_id,
                "model_uri": f"runs:/{run_id}/model", "reason": "logged by the objective function (trial.log_model)"}
    return {"packaged": False, "reason": f"framework {framework!r} trains no model itself and the function "
                                         "logged none (trial.log_model)"}


def package_best_trial(
    spec: StudySpec,
    summary: StudySummary,
    *,
    storage_url: str,
    session: StudySession,
) -> dict[str, Any]:
    """Re-fit the study's best trial on one of the study's workers (``session.on_worker``) and
    log its model and evaluation.

    Skipped (``{"packaged": False, "reason": ...}``) for multi-objective studies, studies
    without a COMPLETE trial, python objectives (``model_uri`` and ``logged_by_function``
    when the function logged a model itself), a best run not known, or a best run that
    already holds a model (a resumed, finished study). Otherwise the artifacts go into the
    best trial's child run through ``tracker.log_artifacts`` (queued, retried), with tags
    ``sweeplab.model=model`` and ``sweeplab.refit_matches_trial`` (``true`` when the
    re-fit's study metric equals the trial's recorded one). Never raises: an error is
    logged, tagged as ``sweeplab.package_error`` and returned as the reason.
    """
    number = summary.best_trial
    run_id = summary.best_run_id
    tracker = session.tracker
    if spec.multi_objective:
        return {"packaged": False, "reason": "multi-objective study: no single best trial"}
    if number is None:
        return {"packaged": False, "reason": "no completed trial"}
    if not run_id:
        return {"packaged": False, "reason": f"the MLflow run of trial {number} is unknown"}
    try:
        from sweeplab.search.storage import load_existing_study

        run = tracker.client.get_run(run_id)
        if run.data.tags.get(TAG_MODEL):
            return {"packaged": False, "reason": f"run {run_id} already holds a model", "run_id": run_id,
                    "model_uri": f"runs:/{run_id}/model"}
        study = load_existing_study(spec.study, storage_url)
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        ticket = ticket_for_trial(spec, trial)
        if ticket.framework not in MODEL_FRAMEWORKS:
            return _logged_by_function(tracker, run_id, ticket.framework)
        rows = raw_example(spec)
        packaged: Packaged = session.on_worker(
            fit_and_package, ticket, session.worker_dataset, spec.objective, list(spec.metric), spec.resources.cpu,
            spec.resources.gpu, rows, title=f"{spec.study} trial {number}", metadata={"study": spec.study},
            cpus=spec.resources.cpu, gpus=spec.resources.gpu)
    except Exception as exc:  # packaging must never fail a finished study
        reason = f"{type(exc).__name__}: {str(exc)[:1000]}"
        log.warning("could not package the best trial %s: %s", number, reason)
        tracker.log_artifacts(run_id, {}, tags={TAG_PACKAGE_ERROR: reason})
        return {"packaged": False, "reason": reason, "run_id": run_id}

    metric = spec.metric[0]
    recorded = (summary.best_metrics or {}).get(metric, summary.best_value)  # one value: not multi-objective
    refit = packaged.metrics.get(metric)
    matches = isinstance(recorded, (int, float)) and refit is not None and math.isclose(refit, float(recorded),
                                                                                        rel_tol=0, abs_tol=1e-9)
    if not matches:
        log.warning("the re-fit of trial %s gave %s = %s, the trial recorded %s (not deterministic here: "
                    "GPU kernels or another thread count); the logged model is the re-fit's", number, metric,
                    refit, recorded)
    tags = {TAG_MODEL: "model", TAG_REFIT_MATCHES: str(bool(matches)).lower(),
            TAG_REFIT_SEED: str(packaged.seed), TAG_MODEL_FRAMEWORK: packaged.framework}
    if packaged.notes:
        tags[TAG_PACKAGE_NOTES] = "; ".join(packaged.notes)[:4900]
    tracker.log_artifacts(run_id, packaged.files, tags=tags)
    return {"packaged": True, "run_id": run_id, "model_uri": f"runs:/{run_id}/model", "trial": number,
            "refit_metrics": packaged.metrics, "refit_matches_trial": bool(matches), "notes": packaged.notes}

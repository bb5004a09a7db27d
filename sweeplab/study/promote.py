"""``sweeplab promote``: re-train the best configs with several seeds, register the winner.

One study's best value is one draw: a config that won by luck of its seed should not be
the champion. :func:`promote_study`:

1. takes the ``top_k`` COMPLETE trials by the study's value (the study must be
   single-objective);
2. trains each of them again with ``seeds`` seeds on Ray workers, through the same
   :func:`~sweeplab.search.worker.execute_trial` path as the study's trials (a local
   Ray, or the cluster at ``address``): the built-in torch / keras model, or the study's
   own function (framework python: ``objective.callable``, imported on the workers as the
   study did, or the function given to :func:`sweeplab.api.promote`). Seed 0 of a config
   is its trial's own seed (it reproduces the trial), the others are derived from it
   (:func:`promotion_seeds`);
3. picks the config with the best mean of the study's metric over its seeds (ties: the
   better study value). A torch / keras winner is **refit** (the default when the study
   has held-out rows; ``refit=False`` / ``--no-refit`` keeps the model trained on the
   training rows only): trained again with its trial's own seed on every row the study
   may use, its training and validation parts merged (the scaler fitted on them), for the
   mean ``best_epoch`` of its re-seeded trainings (rounded): the same number of passes
   over the data that the search found best, so each pass takes (n_train + n_val) /
   n_train times the gradient steps. It trains every one of those epochs, without early
   stopping, and keeps the last one (nothing is left to choose an epoch with). The model
   and its evaluation are packaged by :func:`~sweeplab.study.packaging.fit_and_package`.
   A function's winner (framework python) is not refit (``refit=True`` is refused):
   its own code decides what it trains on; it keeps the model its first completed
   re-training logged with ``trial.log_model`` (with the other files it logged), and a
   function that logged none cannot be promoted;
4. the **estimate** (:class:`~sweeplab.core.records.SelectionEstimate`): the winner trial's
   validation value, its re-seeded mean (or its fold mean for a cross-validated study),
   and the registered model's value on the test part (``objective.test_split``), which
   neither the search nor the refit touched, with the optimism gaps. It is logged on the
   study's parent run (``selection.*`` metrics) and kept in the study (``best --json``'s
   ``estimate``). With ``baselines=True`` the scikit-learn baselines of
   :data:`~sweeplab.registry.baselines.BASELINES` are fitted on the rows the champion
   trained on and scored on the same test rows;
5. logs a run tagged ``sweeplab.role=promotion`` under the study's parent run: per config
   ``trial_<n>.mean_<metric>`` and ``trial_<n>.std_<metric>`` (sample std, ddof=1; 0 for a
   single seed), the winner's params, its model's final metrics (``final_*``), the refit's
   ``refit.n_rows`` / ``refit.epochs`` params, the estimate (``estimate.*``), the baselines'
   scores (``baseline.<name>.<metric>``, with ``champion.<metric>`` beside them),
   ``promotion.json`` (every seed's value), the evaluation files and ``model/``;
6. registers ``model/`` as a new version of the registered model ``model_name`` and points
   the alias ``champion`` at it, so ``mlflow.pyfunc.load_model("models:/NAME@champion")``
   predicts: class labels from raw feature rows (torch / keras), or what the function's
   model predicts from its own input (framework python).
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sweeplab.core.errors import StorageError, SweeplabError, UsageError
from sweeplab.core.keys import (
    ATTR_METRICS,
    METRIC_STD_SUFFIX,
    ROLE_PROMOTION,
    STUDY_ATTR_ESTIMATE,
    STUDY_ATTR_EXPERIMENT_ID,
    STUDY_ATTR_PARENT_RUN_ID,
    STUDY_ATTR_SPEC,
    STUDY_ATTR_TRACKING_URI,
    TAG_MODEL_FRAMEWORK,
    TAG_PROMOTED_TRIAL,
    TAG_REFIT_SEED,
    TAG_REGISTERED_MODEL,
    TAG_ROLE,
    TAG_WINNER_TRIAL,
)
from sweeplab.core.records import (
    COMPLETE,
    BaselineScore,
    Promotion,
    PromotionCandidate,
    RefitInfo,
    RefitRun,
    SelectionEstimate,
    TrialOutcome,
    TrialTicket,
    heldout_metric,
)
from sweeplab.core.stores import ray_address

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset
    from sweeplab.spec import ObjectiveSpec, StudySpec
    from sweeplab.study.packaging import Packaged

log = logging.getLogger("sweeplab.tracking")

ALIAS = "champion"
MODEL_NAME_MAX = 256
_MODEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a safe registered-model name, else raise UsageError (exit 2).

    A name is used in ``models:/NAME@alias`` URIs, REST paths and artifact paths, so it
    must be 1 to 256 characters of ``[A-Za-z0-9._-]``, start with a letter or digit, and
    hold no ``..``; percent-encoded forms (``%2e%2e%2f``) are decoded before the checks,
    and ``%`` itself is refused.
    """
    if not isinstance(name, str) or not name:
        raise UsageError(f"--model-name must be a non-empty name of [A-Za-z0-9._-], got {name!r}")
    decoded = name
    for _ in range(3):  # %252e -> %2e -> .
        decoded = urllib.parse.unquote(decoded)
    problems = []
    if "\0" in decoded:
        problems.append("must not contain NUL characters")
    if "/" in decoded or "\\" in decoded:
        problems.append("must not contain path separators ('/' or '\\')")
    if decoded.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", decoded):
        problems.append("must not be an absolute path")
    if ".." in decoded:
        problems.append("must not contain '..'")
    if "%" in name:
        problems.append("must not contain '%' (percent-encoded characters)")
    if len(name) > MODEL_NAME_MAX:
        problems.append(f"must be at most {MODEL_NAME_MAX} characters (got {len(name)})")
    if not problems and not _MODEL_NAME_RE.fullmatch(name):
        problems.append("may only hold letters, digits, '.', '_' and '-', starting with a letter or digit")
    if problems:
        raise UsageError(f"--model-name {'; '.join(problems)}, got {name!r}. Use e.g. --model-name my-model")
    return name


def promotion_seeds(base: int, n: int) -> list[int]:
    """``n`` seeds for one config: its trial's seed first, then seeds derived from it."""
    return [base if i == 0 else (base * 31 + 104_729 * i + 1) % (2**31 - 1) for i in range(n)]


def _value(trial: Any) -> float:
    """A COMPLETE single-objective trial's value."""
    if trial.value is None:
        raise SweeplabError(f"trial {trial.number} is COMPLETE but has no value")
    return float(trial.value)


def _sample_std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def promote_study(
    study_name: str,
    model_name: str,
    *,
    storage_url: str,
    tracking_uri: str | None = None,
    top_k: int = 3,
    seeds: int = 3,
    address: str | None = None,
    objective: Callable[..., Any] | None = None,
    refit: bool | None = None,
    baselines: bool = False,
) -> Promotion:
    """Promote ``study_name``'s most robust config to ``models:/<model_name>@champion``.

    See the module docstring for the steps. ``tracking_uri`` None means
    ``$MLFLOW_TRACKING_URI``, else the tracking store the study recorded, else MLflow's
    default file. ``objective``: the function a study run with ``sweeplab.run(spec,
    objective=fn)`` trained (the study stores no code for it); only for such a study.
    Returns the :class:`~sweeplab.core.records.Promotion` (its ``to_json()`` is
    ``promote --json``). Raises UsageError (exit 2) for a bad model name, ``top_k`` or
    ``seeds``, a function study promoted without its function (or ``objective`` given to a
    study that has its own), SpecError (exit 2) for a stored ``objective.callable`` that no
    longer imports; SweeplabError (exit 1) when the study has no COMPLETE trial, is
    multi-objective, every candidate failed, or the winner's function logged no model.
    ``refit``: None (the default) refits a torch / keras winner when the study has a test
    part, and otherwise registers the winner as trained (saying why on the log); True
    insists (UsageError, exit 2, for a function study or a study without a test part,
    nothing run); False never refits. ``baselines``: also fit and score the scikit-learn
    baselines (UsageError when the study has no dataset with a test part).
    Ray is shut down at the end when this call started it.
    """
    import os

    import optuna

    from sweeplab.search.coordinator import ticket_for_trial
    from sweeplab.search.storage import load_existing_study
    from sweeplab.spec import parse_spec, validate_study_name
    from sweeplab.study.packaging import MODEL_FRAMEWORKS
    from sweeplab.tracking.mlflow_tracker import resolve_tracking_uri

    validate_model_name(model_name)
    validate_study_name(study_name)
    if top_k < 1 or seeds < 1:
        raise UsageError(f"--top-k and --seeds must be positive integers, got top_k={top_k}, seeds={seeds}")
    if objective is not None and not callable(objective):
        raise TypeError(f"objective= must be the study's training function, got {type(objective).__name__}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_existing_study(study_name, storage_url)
    stored = study.user_attrs.get(STUDY_ATTR_SPEC)
    if not stored:
        raise SweeplabError(f"study {study_name!r} was not created by sweeplab (no stored spec); cannot re-train it")
    # a study run with sweeplab.run(spec, objective=fn) stores no callable: said below, with what to do
    spec = parse_spec(stored, source=f"study {study_name}", function_objective=True)
    if spec.multi_objective:
        raise SweeplabError(f"study {study_name!r} is multi-objective; promote needs a single metric to rank configs")
    builtin = spec.objective.framework in MODEL_FRAMEWORKS
    _check_function(spec, study_name, model_name, objective, builtin)
    do_refit = _check_refit(spec, study_name, builtin, refit)
    if baselines and not _has_heldout(spec):
        raise UsageError(f"--baselines: study {study_name!r} has no dataset with a test part to score baselines on "
                         f"(objective.test_split is {spec.objective.test_split}, dataset "
                         f"{'set' if spec.objective.dataset else 'none'}); drop --baselines, or run a study "
                         "with objective.dataset and objective.test_split > 0")
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        n = len(study.trials)
        raise SweeplabError(
            f"study {study_name!r} has no completed trial to promote ({n} trial(s), none COMPLETE). "
            f"Run it first (`sweeplab run SPEC`), or check its trials with `sweeplab status {study_name}`"
        )
    maximize = spec.direction[0] == "maximize"
    ranked = sorted(complete, key=lambda t: (-_value(t) if maximize else _value(t), t.number))[:top_k]
    tickets = [ticket_for_trial(spec, t) for t in ranked]
    if not builtin and objective is None:
        from sweeplab.objectives.python_callable import check_objective_callable

        check_objective_callable(spec.objective, spec.source)  # a file moved or edited since: exit 2, nothing run

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or study.user_attrs.get(STUDY_ATTR_TRACKING_URI)
    uri = resolve_tracking_uri(uri)
    metric = spec.metric[0]
    started = time.time()

    import ray

    from sweeplab.objectives.python_callable import code_runtime_env
    from sweeplab.study.session import init_ray, load_study_dataset, put_objective, shutdown_own_ray

    dataset = load_study_dataset(spec, uri)  # an init_from study's source model comes from there too
    address = ray_address(address)
    env = code_runtime_env(spec.objective.callable) if address and objective is None else None
    owns_ray = not ray.is_initialized()
    init_ray(address, **({"runtime_env": env} if env else {}))  # a file callable's folder goes to the workers
    try:
        fn_ref = put_objective(objective)
        dataset_ref = ray.put(dataset)
        refits = _retrain(spec, tickets, seeds, dataset_ref, fn_ref)
        candidates = [_candidate(trial, refits[trial.number], metric) for trial in ranked]
        winner = _winner(study_name, candidates, maximize)
        packaged: Packaged
        refit_info: RefitInfo | None = None
        trained_on = dataset
        if builtin:
            win_ticket = tickets[[t.number for t in ranked].index(winner.trial)]
            settings, package_ref = spec.objective, dataset_ref
            if do_refit:
                trained_on = load_study_dataset(spec, uri, merge_validation=True)
                assert trained_on is not None and dataset is not None  # a torch / keras spec names a dataset
                refit_info = _refit_plan(winner, refits[winner.trial], dataset, win_ticket.seed)
                settings = replace(spec.objective, epochs=refit_info.epochs, early_stopping=None)
                package_ref = ray.put(trained_on)
            packaged = _package_builtin(study_name, model_name, spec, win_ticket, winner, package_ref, settings,
                                        refit=refit_info is not None)
        else:
            packaged = _logged_model(study_name, spec, winner, refits[winner.trial], objective)
    finally:
        if owns_ray:
            shutdown_own_ray()
    scores: tuple[BaselineScore, ...] = ()
    if baselines and trained_on is not None:
        from sweeplab.objectives.baselines import fit_baselines

        scores = fit_baselines(trained_on, seed=spec.seed)
    trial_metrics = next(t for t in ranked if t.number == winner.trial).user_attrs.get(ATTR_METRICS) or {}
    cv = f"{metric}{METRIC_STD_SUFFIX}" in trial_metrics  # a cross-validated trial: its value is its fold mean
    heldout_rows = len(dataset.y_test) if dataset is not None else 0
    held = heldout_metric(metric)
    held_value = packaged.metrics.get(held) if held and heldout_rows else None
    estimate = SelectionEstimate.build(
        metric=metric, direction=spec.direction[0], trial=winner.trial, selected_value=winner.study_value,
        reseeded_mean=winner.mean, cv_mean=winner.study_value if cv else None,
        heldout_value=held_value if held_value is not None and math.isfinite(held_value) else None,
        heldout_rows=heldout_rows, refit=refit_info is not None, model_uri=f"models:/{model_name}@{ALIAS}")
    result = _log_and_register(spec, study, uri, model_name, metric, top_k, seeds, candidates, winner, packaged,
                               refit_info, estimate, scores)
    return replace(result, elapsed_s=round(time.time() - started, 3))


def _has_heldout(spec: StudySpec) -> bool:
    """The study's data has a test part the search never saw (a dataset, and ``test_split > 0`` or a holdout)."""
    obj = spec.objective
    return obj.dataset is not None and (obj.test_split > 0 or obj.holdout is not None)


def _check_refit(spec: StudySpec, study_name: str, builtin: bool, refit: bool | None) -> bool:
    """Whether to refit the winner: see :func:`promote_study`'s ``refit`` (UsageError for a refit that cannot be)."""
    if refit is False:
        return False
    if not builtin:
        if refit:
            raise UsageError(
                f"--refit: study {study_name!r} runs its own function (framework python), whose code decides what "
                "it trains on, so promote cannot refit it on train + validation; drop --refit (a function's "
                "champion is the model its re-training logged)")
        return False
    if not _has_heldout(spec):
        if refit:
            raise UsageError(
                f"--refit: study {study_name!r} has no test part (objective.test_split is "
                f"{spec.objective.test_split}, no objective.holdout): a model refit on train + validation would have "
                "no row left to be judged on. Run the study with objective.test_split > 0 or a holdout file "
                "(`sweeplab run SPEC --fork NEW` after setting it), or promote with --no-refit")
        log.warning("study %r has no test part (objective.test_split 0): the champion is not refit on train + "
                    "validation (nothing would be left to judge the refit on); set objective.test_split > 0 "
                    "for a refit and a held-out estimate", study_name)
        return False
    return True


def _refit_plan(winner: PromotionCandidate, refits: list[_Refit], dataset: Dataset, seed: int) -> RefitInfo:
    """The refit's rows and epochs: the study's training + validation rows, for the mean best epoch
    (rounded, at least 1) of the winner's completed re-trainings."""
    best = tuple(int(r.metrics["best_epoch"]) for r in refits
                 if r.run.value is not None and math.isfinite(r.run.value) and "best_epoch" in r.metrics)
    if not best:
        raise SweeplabError(f"trial {winner.trial}: its re-trainings report no best_epoch; cannot choose the "
                            "refit's epochs (promote with --no-refit)")
    n_train, n_val = len(dataset.y_train), len(dataset.y_val)
    return RefitInfo(n_rows=n_train + n_val, n_train=n_train, n_val=n_val,
                     epochs=max(1, round(statistics.fmean(best))), best_epochs=best, seed=seed)


def _check_function(spec: StudySpec, study_name: str, model_name: str, objective: Callable[..., Any] | None,
                    builtin: bool) -> None:
    """What runs the re-trainings is the study's own: its built-in model, its stored callable, or the function
    given now for a study that ran one given to ``sweeplab.run`` (UsageError otherwise)."""
    ref = spec.objective.callable
    if objective is None:
        if not builtin and not ref:
            raise UsageError(
                f"study {study_name!r} ran a function given to sweeplab.run(objective=...), and a study does not "
                "store its code; promote it from Python with that function: "
                f"sweeplab.promote({study_name!r}, {model_name!r}, objective=fn)")
        return
    if builtin:
        raise UsageError(f"study {study_name!r} trains sweeplab's {spec.objective.framework} model; objective= is "
                         "only for a study run with its own function (sweeplab.run(spec, objective=fn)): drop it")
    if ref:
        raise UsageError(f"study {study_name!r} runs objective.callable {ref!r}, which promote re-trains; "
                         "objective= names the function a second time: drop it")


@dataclass(frozen=True)
class _Refit:
    """One re-training as the driver holds it: the outcome without its files, the files' paths, and a
    reference to the files (fetched for the winner only)."""

    run: RefitRun
    metrics: dict[str, float]
    paths: tuple[str, ...]
    files: Any


def refit_trial(
    ticket: TrialTicket,
    dataset: Dataset | None,
    settings: ObjectiveSpec,
    metric_names: list[str],
    cpus: float,
    gpus: float,
    *,
    user_fn: Callable[..., Any] | None = None,
) -> tuple[tuple[TrialOutcome, tuple[str, ...]], dict[str, Any]]:
    """One re-training on a Ray worker: :func:`~sweeplab.search.worker.execute_trial` without a
    coordinator (no pruning, no checkpoints kept). Returns ``((outcome without its files,
    the files' paths), files)``, two Ray objects, so that only the winner's files (a logged
    model) travel to the driver."""
    from sweeplab.objectives.base import NullReporter
    from sweeplab.search.worker import execute_trial

    outcome = execute_trial(ticket, dataset, settings, metric_names, None, cpus, gpus, NullReporter(),
                            user_fn=user_fn)
    return (replace(outcome, artifacts={}), tuple(sorted(outcome.artifacts))), dict(outcome.artifacts)


def _retrain(spec: StudySpec, tickets: list[TrialTicket], seeds: int, dataset_ref: Any,
             fn_ref: Any) -> dict[int, list[_Refit]]:
    """Every ticket re-trained with ``seeds`` seeds, all at once on Ray; by trial number, in seed order."""
    import ray

    cpus, gpus = spec.resources.cpu, spec.resources.gpu
    remote: Any = ray.remote(max_retries=0, num_returns=2, max_calls=1 if gpus > 0 else 0)(refit_trial)
    task = remote.options(**spec.resources.task_options())
    jobs = []
    for ticket in tickets:
        for i, seed in enumerate(promotion_seeds(ticket.seed, seeds)):
            head, files = task.remote(replace(ticket, seed=seed), dataset_ref, spec.objective, list(spec.metric),
                                      cpus, gpus, user_fn=fn_ref)
            jobs.append((ticket.number, i, seed, head, files))
    heads = ray.get([head for *_, head, _ in jobs])
    metric = spec.metric[0]
    out: dict[int, list[_Refit]] = {t.number: [] for t in tickets}
    for (number, i, seed, _, files), (outcome, paths) in zip(jobs, heads, strict=True):
        run = RefitRun(i, seed, outcome.state, outcome.metrics.get(metric) if outcome.state == COMPLETE else None,
                       (outcome.reason or "")[:500] or None)
        out[number].append(_Refit(run, dict(outcome.metrics), paths, files))
    return out


def _candidate(trial: Any, refits: list[_Refit], metric: str) -> PromotionCandidate:
    """A config's re-trainings summed up: mean and sample std of its finite values."""
    runs = tuple(r.run for r in refits)
    values = [r.value for r in runs if r.value is not None and math.isfinite(r.value)]
    return PromotionCandidate(
        trial=trial.number, study_value=trial.value, params=dict(trial.params), runs=runs, n_ok=len(values),
        mean=statistics.fmean(values) if values else None, std=_sample_std(values) if values else None,
    )


def _winner(study_name: str, candidates: list[PromotionCandidate], maximize: bool) -> PromotionCandidate:
    """The best mean over seeds (ties: the better study value, then the lower trial number)."""
    usable = [c for c in candidates if c.mean is not None]
    if not usable:
        reasons = "; ".join(f"trial {c.trial}: {c.runs[0].reason}" for c in candidates)
        raise SweeplabError(f"study {study_name!r}: every re-training of the top {len(candidates)} config(s) failed "
                            f"({reasons[:1500]})")
    sign = -1.0 if maximize else 1.0
    return min(usable, key=lambda c: (sign * (c.mean or 0.0), sign * (c.study_value or 0.0), c.trial))


def _package_builtin(study_name: str, model_name: str, spec: StudySpec, ticket: TrialTicket,
                     winner: PromotionCandidate, dataset_ref: Any, settings: ObjectiveSpec, *,
                     refit: bool) -> Packaged:
    """The torch / keras winner trained with its seed 0 on ``dataset_ref`` under ``settings`` (the refit's
    data and epochs, or the study's) and packaged (model + evaluation), on a Ray worker."""
    import ray

    from sweeplab.study.packaging import fit_and_package, raw_example

    rows = raw_example(spec)
    cpus, gpus = spec.resources.cpu, spec.resources.gpu
    package = ray.remote(max_retries=0)(fit_and_package).options(num_cpus=cpus, num_gpus=gpus)
    try:
        return ray.get(package.remote(  # type: ignore[no-any-return]
            ticket, dataset_ref, settings, list(spec.metric), cpus, gpus, rows,
            title=f"{study_name} trial {winner.trial} (champion{', refit' if refit else ''})",
            metadata={"study": study_name, "registered_model": model_name, "refit": refit},
        ))
    except ray.exceptions.RayError as exc:
        raise SweeplabError(f"study {study_name!r}: packaging the winner (trial {winner.trial}) failed: "
                            f"{type(exc).__name__}: {str(exc)[-1500:]}") from exc


def _logged_model(study_name: str, spec: StudySpec, winner: PromotionCandidate, refits: list[_Refit],
                  objective: Callable[..., Any] | None) -> Packaged:
    """The winner's model as its function logged it in its first completed re-training (seed order), with the
    other files it logged; SweeplabError when it logged none."""
    import ray

    from sweeplab.objectives.trial import MODEL_ARTIFACT
    from sweeplab.study.packaging import Packaged

    marker = f"{MODEL_ARTIFACT}/MLmodel"
    for refit in refits:
        if refit.run.value is not None and math.isfinite(refit.run.value) and marker in refit.paths:
            files = {name: _as_bytes(content) for name, content in ray.get(refit.files).items()}
            return Packaged(framework=_flavor(files[marker]), seed=refit.run.seed, metrics=refit.metrics,
                            evaluation=None, files=files)
    name = spec.objective.callable or getattr(objective, "__qualname__", None) or "the study's function"
    raise SweeplabError(
        f"study {study_name!r}: the winner, trial {winner.trial}, has no model to register: its function ({name}) "
        "did not call trial.log_model(model) when re-trained. A function must call trial.log_model(model) to be "
        "promoted (see \"Tune your own model\" in the README)")


def _as_bytes(content: Any) -> bytes:
    """An artifact's content as the file's bytes (bytes, text, or a mapping written as JSON)."""
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    return json.dumps(content, indent=2, default=str).encode("utf-8")


def _flavor(mlmodel: bytes) -> str:
    """The MLflow flavour a logged model loads with (``pytorch``, ``keras``), from its ``MLmodel`` file."""
    import yaml

    flavors = (yaml.safe_load(mlmodel) or {}).get("flavors") or {}
    return next((f for f in flavors if f != "python_function"), "python_function")


def _log_and_register(
    spec: StudySpec,
    study: Any,
    uri: str,
    model_name: str,
    metric: str,
    top_k: int,
    seeds: int,
    candidates: list[PromotionCandidate],
    winner: PromotionCandidate,
    packaged: Any,
    refit: RefitInfo | None,
    estimate: SelectionEstimate,
    baselines: tuple[BaselineScore, ...],
) -> Promotion:
    """Write the promotion run and the registry entries; return the promotion's summary."""
    import tempfile
    from pathlib import Path

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from sweeplab.core.keys import TAG_STUDY

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    parent = study.user_attrs.get(STUDY_ATTR_PARENT_RUN_ID)
    try:
        experiment_id = study.user_attrs.get(STUDY_ATTR_EXPERIMENT_ID)
        if not experiment_id:
            name = spec.experiment or spec.study
            exp = client.get_experiment_by_name(name)
            experiment_id = exp.experiment_id if exp is not None else client.create_experiment(name)
        tags = {TAG_STUDY: spec.study, TAG_ROLE: ROLE_PROMOTION, TAG_WINNER_TRIAL: str(winner.trial),
                TAG_REGISTERED_MODEL: model_name, TAG_MODEL_FRAMEWORK: packaged.framework}
        if parent:
            tags["mlflow.parentRunId"] = parent
        run = client.create_run(experiment_id, run_name=f"promotion-{model_name}", tags=tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        params = {f"winner.{k}": str(v) for k, v in winner.params.items()}
        params.update({"promotion.top_k": str(top_k), "promotion.seeds": str(seeds), "promotion.metric": metric,
                       "promotion.candidates": json.dumps([c.trial for c in candidates]),
                       "promotion.winner_seed": str(packaged.seed), "promotion.refit": str(refit is not None)})
        if refit is not None:
            params.update({f"refit.{k}": json.dumps(v) if isinstance(v, list) else str(v)
                           for k, v in refit.to_json().items()})
        metrics: list[Metric] = []
        for c in candidates:
            if c.mean is not None:
                metrics.append(Metric(f"trial_{c.trial}.mean_{metric}", float(c.mean), now, 0))
                metrics.append(Metric(f"trial_{c.trial}.std_{metric}", float(c.std or 0.0), now, 0))
            metrics.append(Metric(f"trial_{c.trial}.n_ok", float(c.n_ok), now, 0))
        winner_mean, winner_std = float(winner.mean or 0.0), float(winner.std or 0.0)
        metrics.append(Metric(f"mean_{metric}", winner_mean, now, 0))
        metrics.append(Metric(f"std_{metric}", winner_std, now, 0))
        metrics.extend(Metric(f"final_{k}", float(v), now, 0) for k, v in packaged.metrics.items() if math.isfinite(v))
        selection = _estimate_metrics(estimate)
        metrics.extend(Metric(f"estimate.{k}", v, now, 0) for k, v in selection.items())
        for b in baselines:
            metrics.append(Metric(f"baseline.{b.name}.{b.metric}", b.value, now, 0))
            champion = packaged.metrics.get(b.metric)
            if champion is not None and math.isfinite(champion):
                metrics.append(Metric(f"champion.{b.metric}", float(champion), now, 0))
        client.log_batch(run_id, metrics=metrics, params=[Param(k[:250], v[:6000]) for k, v in params.items()],
                         tags=[RunTag(TAG_REFIT_SEED, str(packaged.seed))])
        table = {"study": spec.study, "metric": metric, "direction": spec.direction[0], "top_k": top_k,
                 "seeds": seeds, "winner_trial": winner.trial, "candidates": [c.to_json() for c in candidates],
                 "refit": None if refit is None else refit.to_json(), "estimate": estimate.to_json(),
                 "baselines": [b.to_json() for b in baselines]}
        with tempfile.TemporaryDirectory(prefix="sweeplab-promotion-") as tmp:
            for name, data in {**packaged.files, "promotion.json": json.dumps(table, indent=2).encode()}.items():
                path = Path(tmp, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            client.log_artifacts(run_id, tmp)
        client.set_terminated(run_id, status="FINISHED")
        if parent:  # the study's run shows the estimate beside its best value
            client.log_batch(parent, metrics=[Metric(f"selection.{k}", v, now, 0) for k, v in selection.items()],
                             params=[], tags=[RunTag("sweeplab.selection_model", f"models:/{model_name}@{ALIAS}")])

        try:
            client.create_registered_model(model_name, tags={TAG_STUDY: spec.study},
                                           description=f"Champion of sweeplab study {spec.study}")
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        version = client.create_model_version(
            model_name, source=f"{run.info.artifact_uri}/model", run_id=run_id,
            tags={TAG_STUDY: spec.study, TAG_PROMOTED_TRIAL: str(winner.trial),
                  f"mean_{metric}": f"{winner_mean:.6g}", f"std_{metric}": f"{winner_std:.6g}"},
            description=(f"trial {winner.trial} of study {spec.study}: {metric} mean {winner_mean:.6g} "
                         f"± {winner_std:.6g} over {winner.n_ok} seed(s)"),
        )
        version = _wait_ready(client, model_name, version.version)
        client.set_registered_model_alias(model_name, ALIAS, version.version)
    except MlflowException as exc:
        raise StorageError(f"MLflow at {uri} refused the promotion of {model_name!r}: {exc}. "
                           "Check --tracking-uri and that the registry is writable") from exc
    study.set_user_attr(STUDY_ATTR_ESTIMATE, estimate.to_json())
    return Promotion(study=spec.study, model_name=model_name, version=int(version.version), alias=ALIAS,
                     model_uri=f"models:/{model_name}@{ALIAS}", run_id=run_id, tracking_uri=uri, metric=metric,
                     winner=winner, winner_seed=packaged.seed, model_metrics=dict(packaged.metrics),
                     candidates=tuple(candidates), refit=refit, estimate=estimate, baselines=baselines)


def _estimate_metrics(estimate: SelectionEstimate) -> dict[str, float]:
    """The estimate's numbers as MLflow metrics (None and non-finite values left out)."""
    values = {"selected_value": estimate.selected_value, "reseeded_mean": estimate.reseeded_mean,
              "cv_mean": estimate.cv_mean, "heldout_value": estimate.heldout_value,
              "optimism_gap": estimate.optimism_gap, "estimate_gap": estimate.estimate_gap}
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def _wait_ready(client: Any, name: str, version: str, timeout: float = 300.0) -> Any:
    """The model version once READY (immediate for SQL stores); StorageError when it failed."""
    deadline = time.time() + timeout
    while True:
        mv = client.get_model_version(name, version)
        if mv.status == "READY":
            return mv
        if mv.status == "FAILED_REGISTRATION" or time.time() > deadline:
            raise StorageError(f"model version {name}/{version} did not become READY: {mv.status} "
                               f"{mv.status_message or ''}")
        time.sleep(1.0)

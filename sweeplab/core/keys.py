"""Every attribute and tag name sweeplab writes: Optuna trial and study user attrs, MLflow tags.

One place, so the writer and every reader (status, reports, repair, benchmarks, tests)
agree. Values are part of the stored format: changing one orphans what older runs wrote.
"""

from __future__ import annotations

# ---------------------------------------------------------------- Optuna trial user attrs
ATTR_RETRY_OF = "sweeplab.retry_of"  # the failed attempt this trial retries
ATTR_GRID_ID = "sweeplab.grid_id"  # a retried grid trial's grid point
ATTR_ATTEMPT = "sweeplab.attempt"  # 0 for a lineage's first attempt, then 1, 2, ...
ATTR_ROOT = "sweeplab.lineage_root"  # number of the lineage's first attempt (seeds the trial)
ATTR_OWN_FAILURES = "sweeplab.own_failures"  # losses of the lineage that spent max_retries
ATTR_INTERRUPTIONS = "sweeplab.interruptions"  # losses of the lineage to its driver or node
ATTR_LEASE_HOLDER = "sweeplab.lease_holder"  # host:pid:start of the coordinator holding the trial
ATTR_LEASE_EXPIRES = "sweeplab.lease_expires"  # epoch seconds
ATTR_REASON = "sweeplab.fail_reason"
ATTR_METRICS = "sweeplab.metrics"  # the objective's final metrics
ATTR_RUN_ID = "mlflow_run_id"  # the trial's MLflow child run
ATTR_PRUNED_EPOCH = "sweeplab.pruned_at_epoch"
ATTR_MO_RUNGS = "sweeplab.mo_rungs"  # {rung: [metric values]} where mo_successive_halving compared the trial
ATTR_NODE = "sweeplab.node"
ATTR_REJECTED = "sweeplab.rejected"  # told PRUNED by the constraints before it ran
ATTR_N_PARAMS = "sweeplab.n_params"
ATTR_FORKED_FROM_STUDY = "sweeplab.forked_from_study"  # a copied trial's study of origin
ATTR_FORKED_FROM_TRIAL = "sweeplab.forked_from_trial"  # a copied trial's number there
ATTR_LOGGED_MODEL = "sweeplab.logged_model"  # artifact path of the model the trial's function logged (trial.log_model)
ATTR_CV_FOLDS = "sweeplab.cv_folds"  # models a cross-validated trial trained (kfold * repeats)
ATTR_CV_STD = "sweeplab.cv_std"  # {metric: its standard deviation across the folds, at the best epoch}

# ---------------------------------------------------------------- Optuna's own trial system attrs (read, never written)
OPTUNA_ENQUEUED_PARAMS = "fixed_params"  # what Study.enqueue_trial stores for the trial that pops it

# ---------------------------------------------------------------- metric names (final metrics of a trial)
METRIC_N_FOLDS = "n_folds"  # a cross-validated network trial: how many fold models it trained
METRIC_STD_SUFFIX = "_std"  # `val_accuracy_std`: the spread across folds of `val_accuracy` at the best epoch

# ---------------------------------------------------------------- Optuna study user attrs
STUDY_ATTR_SPEC = "sweeplab.spec"  # the spec the study was created with
STUDY_ATTR_RETRIES = "sweeplab.retries"  # {failed number: retry number or None}
STUDY_ATTR_TRIALS_TARGET = "sweeplab.trials_target"  # the `trials` the last run asked for
STUDY_ATTR_RUN_IDS = "sweeplab.run_ids"  # {number: run id} for links made after a trial finished
STUDY_ATTR_EXPERIMENT_ID = "mlflow_experiment_id"
STUDY_ATTR_PARENT_RUN_ID = "mlflow_parent_run_id"
STUDY_ATTR_TRACKING_URI = "mlflow_tracking_uri"
STUDY_ATTR_UID = "sweeplab.study_uid"  # random, set once: keys the study's checkpoint folder
STUDY_ATTR_FORKED_FROM = "sweeplab.forked_from"  # the study this one was forked from
STUDY_ATTR_ESTIMATE = "sweeplab.estimate"  # the last promote's SelectionEstimate (to_json)

# ---------------------------------------------------------------- MLflow run tags
TAG_STUDY = "sweeplab.study"
TAG_ROLE = "sweeplab.role"  # "parent" for a study's run, "bench" for a benchmark's
TAG_TRIAL = "sweeplab.trial_number"
TAG_STATE = "sweeplab.state"
TAG_MODEL = "sweeplab.model"
TAG_LOGGED_MODEL = "sweeplab.logged_model"  # artifact path of a model a user function logged (trial.log_model)
TAG_REFIT_MATCHES = "sweeplab.refit_matches_trial"
TAG_PACKAGE_ERROR = "sweeplab.package_error"
TAG_BENCH = "sweeplab.bench"
TAG_CELL = "sweeplab.bench_cell"
TAG_FRAMEWORK = "sweeplab.framework"  # the trial's framework
TAG_DURATION = "sweeplab.duration_s"  # the trial's wall time, seconds
TAG_RETRIED_BY = "sweeplab.retried_by"  # the trial that retries this failed one
TAG_REPAIRED = "sweeplab.repaired"  # a run closed by the repair of a crashed study
TAG_STATUS = "sweeplab.status"  # how a study's or bench's parent run ended
TAG_BEST_TRIAL = "sweeplab.best_trial"
TAG_BEST_RUN_ID = "sweeplab.best_run_id"
TAG_MODEL_FRAMEWORK = "sweeplab.model_framework"  # the framework of a packaged model
TAG_REFIT_SEED = "sweeplab.refit_seed"  # the seed a packaged model was refit with
TAG_PACKAGE_NOTES = "sweeplab.package_notes"
TAG_WINNER_TRIAL = "sweeplab.winner_trial"  # promote: the trial whose config won
TAG_REGISTERED_MODEL = "sweeplab.registered_model"  # promote: the registered model's name
TAG_PROMOTED_TRIAL = "sweeplab.trial"  # promote: the trial a refit run re-trains
TAG_BENCH_BEST_CONFIG = "sweeplab.bench_best_config"
TAG_AUDIT = "sweeplab.audit"  # a bench audit's verdict
ROLE_PARENT = "parent"
ROLE_BENCH = "bench"
ROLE_PROMOTION = "promotion"

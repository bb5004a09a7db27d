"""The guide's MLP study written for plain Optuna: ``study.optimize(n_jobs=2)`` with
optuna-integration's MLflowCallback, TPE seeded, 20 trials, 20 epochs, a report per epoch.

Usage: python systems_optuna.py WORKDIR [SEED] [WORKLOAD]  (SEED: the split, the sampler and
training; WORKLOAD: ``seed``, the default, ``short_train`` (``systems_loop.SHORT_TRIALS`` trials of
the same MLP, ``SHORT_TRAIN_EPOCHS`` epochs each) or ``short``: ``systems_loop.SHORT_TRIALS`` trials
of ``systems_loop.short_train``). Prints one JSON line: best value, trials.
"""

from __future__ import annotations

import json
import sys

import optuna
import systems_loop as loop
from optuna_integration.mlflow import MLflowCallback


def main(workdir: str, seed: int, workload: str = "seed") -> None:
    short = workload == "short"
    data = None if short else loop.load_data(seed)
    trials, epochs = (loop.SHORT_TRIALS, loop.SHORT_EPOCHS) if short else loop.TRAINING_WORKLOADS[workload]

    def objective(trial: optuna.Trial) -> float:
        if short:
            return loop.short_train(loop.suggest_short(trial),
                                    lambda epoch, metrics: trial.report(metrics["score"], epoch))
        params = loop.suggest(trial)
        return loop.train(params, data, lambda epoch, metrics: trial.report(metrics["val_accuracy"], epoch),
                          epochs=epochs, seed=seed)

    metric = "score" if short else "val_accuracy"
    mlflow_cb = MLflowCallback(tracking_uri=f"sqlite:///{workdir}/mlflow.db", metric_name=metric)
    study = optuna.create_study(direction="maximize", study_name="optuna-mlp",
                                sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                                   constant_liar=True))
    study.optimize(objective, n_trials=trials, n_jobs=loop.WORKERS,
                   callbacks=[mlflow_cb])
    print(json.dumps({"best_value": study.best_value, "n_trials": len(study.trials)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else loop.SEED,
         sys.argv[3] if len(sys.argv) > 3 else "seed")

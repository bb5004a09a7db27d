"""The guide's MLP study written for plain Optuna: ``study.optimize(n_jobs=2)`` with
optuna-integration's MLflowCallback, TPE seeded, 20 trials, 20 epochs, a report per epoch.

Usage: python systems_optuna.py WORKDIR [SEED]  (SEED: the split, the sampler and training)
Prints one JSON line: best value, trials.
"""

from __future__ import annotations

import json
import sys

import optuna
import systems_loop as loop
from optuna_integration.mlflow import MLflowCallback


def main(workdir: str, seed: int) -> None:
    data = loop.load_data(seed)

    def objective(trial: optuna.Trial) -> float:
        params = loop.suggest(trial)
        return loop.train(params, data, lambda epoch, metrics: trial.report(metrics["val_accuracy"], epoch),
                          seed=seed)

    mlflow_cb = MLflowCallback(tracking_uri=f"sqlite:///{workdir}/mlflow.db", metric_name="val_accuracy")
    study = optuna.create_study(direction="maximize", study_name="optuna-mlp",
                                sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                                   constant_liar=True))
    study.optimize(objective, n_trials=loop.TRIALS, n_jobs=loop.WORKERS, callbacks=[mlflow_cb])
    print(json.dumps({"best_value": study.best_value, "n_trials": len(study.trials)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else loop.SEED)

"""The CNN study on the digits images written for plain Optuna: ``study.optimize(n_jobs=2)``
with optuna-integration's MLflowCallback, TPE seeded, a report per epoch.

Usage: python cnn_optuna.py WORKDIR [SEED]  (SEED: the split, the sampler and training)
Prints one JSON line: best value, the best trial's test accuracy, trials.
"""

from __future__ import annotations

import json
import sys

import cnn_loop as loop
import optuna
from optuna_integration.mlflow import MLflowCallback


def main(workdir: str, seed: int) -> None:
    data = loop.load_data(seed)

    def objective(trial: optuna.Trial) -> float:
        params = loop.suggest(trial)
        val_acc, test_acc = loop.train(params, data, lambda epoch, m: trial.report(m["val_accuracy"], epoch),
                                       seed=seed)
        trial.set_user_attr("test_accuracy", test_acc)
        return val_acc

    mlflow_cb = MLflowCallback(tracking_uri=f"sqlite:///{workdir}/mlflow.db", metric_name="val_accuracy")
    study = optuna.create_study(direction="maximize", study_name="optuna-cnn",
                                sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                                   constant_liar=True))
    study.optimize(objective, n_trials=loop.TRIALS, n_jobs=loop.WORKERS, callbacks=[mlflow_cb])
    print(json.dumps({"best_value": study.best_value, "test_accuracy": study.best_trial.user_attrs["test_accuracy"],
                      "n_trials": len(study.trials)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else loop.SEED)

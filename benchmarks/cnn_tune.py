"""The CNN study on the digits images written for Ray Tune: OptunaSearch (TPE, seeded) and
MLflowLoggerCallback, 2 trials at a time, one report per epoch.

Usage: python cnn_tune.py WORKDIR [SEED]  (SEED: the split, the sampler and training)
Prints one JSON line: best value, the best trial's test accuracy, trials.
"""

from __future__ import annotations

import json
import os
import sys

import cnn_loop as loop
import optuna
from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.search.optuna import OptunaSearch


def define_space(trial: optuna.Trial) -> None:
    loop.suggest(trial)


def train_cnn(config: dict, data=None, seed: int = loop.SEED) -> None:
    val_acc, test_acc = loop.train(config, data, lambda epoch, metrics: tune.report(metrics), seed=seed)
    tune.report({"val_accuracy": val_acc, "test_accuracy": test_acc, "done": True})


def main(workdir: str, seed: int) -> None:
    data = loop.load_data(seed)
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    search = OptunaSearch(space=define_space, metric="val_accuracy", mode="max", sampler=sampler)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(train_cnn, data=data, seed=seed), {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=search, num_samples=loop.TRIALS, max_concurrent_trials=loop.WORKERS),
        run_config=tune.RunConfig(
            name="tune-cnn", storage_path=os.path.join(workdir, "ray_results"), verbose=0,
            callbacks=[MLflowLoggerCallback(tracking_uri=f"sqlite:///{workdir}/mlflow.db", experiment_name="tune-cnn")],
        ),
    )
    results = tuner.fit()
    # the last report of a trial holds its value (the best-val_loss epoch's val_accuracy) and test accuracy
    best = results.get_best_result(metric="val_accuracy", mode="max", scope="last")
    print(json.dumps({"best_value": best.metrics["val_accuracy"], "test_accuracy": best.metrics["test_accuracy"],
                      "n_trials": len(results)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else loop.SEED)

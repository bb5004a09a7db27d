"""The guide's MLP study written for Ray Tune: OptunaSearch (TPE, seeded) and
MLflowLoggerCallback, 20 trials, 2 at a time, 20 epochs, one report per epoch.

Usage: python systems_tune.py WORKDIR [SEED] [WORKLOAD]  (SEED: the split, the sampler and
training; WORKLOAD: ``seed``, the default, ``short_train`` (``systems_loop.SHORT_TRIALS`` trials of
the same MLP, ``SHORT_TRAIN_EPOCHS`` epochs each) or ``short``: ``systems_loop.SHORT_TRIALS`` trials
of ``systems_loop.short_train``). Prints one JSON line: best value, trials.
"""

from __future__ import annotations

import json
import os
import sys

import optuna
import systems_loop as loop
from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.search.optuna import OptunaSearch


def define_space(trial: optuna.Trial) -> None:
    loop.suggest(trial)


def train_mlp(config: dict, data=None, seed: int = loop.SEED, epochs: int = loop.EPOCHS) -> None:
    best = loop.train(config, data, lambda epoch, metrics: tune.report(metrics), epochs=epochs, seed=seed)
    tune.report({"val_accuracy": best, "done": True})


def define_short_space(trial: optuna.Trial) -> None:
    loop.suggest_short(trial)


def train_short(config: dict) -> None:
    best = loop.short_train(config, lambda epoch, metrics: tune.report(metrics))
    tune.report({"score": best, "done": True})


def main(workdir: str, seed: int, workload: str = "seed") -> None:
    short = workload == "short"
    trials, epochs = (loop.SHORT_TRIALS, loop.SHORT_EPOCHS) if short else loop.TRAINING_WORKLOADS[workload]
    metric = "score" if short else "val_accuracy"
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    search = OptunaSearch(space=define_short_space if short else define_space, metric=metric, mode="max",
                          sampler=sampler)
    trainable = train_short if short else tune.with_parameters(train_mlp, data=loop.load_data(seed), seed=seed,
                                                                 epochs=epochs)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=search, num_samples=trials,
                                    max_concurrent_trials=loop.WORKERS),
        run_config=tune.RunConfig(
            name="tune-mlp", storage_path=os.path.join(workdir, "ray_results"), verbose=0,
            callbacks=[MLflowLoggerCallback(tracking_uri=f"sqlite:///{workdir}/mlflow.db", experiment_name="tune-mlp")],
        ),
    )
    results = tuner.fit()
    best = results.get_best_result(metric=metric, mode="max")
    print(json.dumps({"best_value": best.metrics[metric], "n_trials": len(results)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else loop.SEED,
         sys.argv[3] if len(sys.argv) > 3 else "seed")

"""sweeplab from a notebook: your own training function, run on Ray, logged to MLflow.

Run it as a script (``python examples/notebook_api.py``) or paste the cells into Jupyter:
``train`` is a function of ``__main__`` there as here, and sweeplab sends it to the Ray
workers by value, with the helper and the constant it uses. The studies live in
``sweeplab.db`` and ``mlflow.db`` in the current directory (``sweeplab status
notebook-iris`` and ``sweeplab ui`` read them).

A softmax regression in plain numpy on the iris data: the search tunes its learning
rate and L2 penalty, every epoch is reported (so the median pruner can stop a poor
trial early), and the second ``sweeplab.run`` resumes the study where the first left it.
"""

# %% the training function: takes the trial, returns its metrics
import numpy as np

import sweeplab

MAX_STEP = 5.0  # a global of __main__: travels to the workers with train


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train(trial):
    data = trial.dataset  # the spec's dataset, split and scaled once by sweeplab
    lr, l2 = trial.params["learning_rate"], trial.params["l2"]
    n_classes = len(data.class_labels)
    rng = np.random.default_rng(trial.seed)
    w = rng.normal(0.0, 0.01, (data.n_features, n_classes))
    onehot = np.eye(n_classes)[data.y_train]
    for epoch in range(1, trial.settings.epochs + 1):
        probs = softmax(data.X_train @ w)
        grad = data.X_train.T @ (probs - onehot) / len(data.X_train) + l2 * w
        w -= np.clip(lr * grad, -MAX_STEP, MAX_STEP)
        val_accuracy = float((softmax(data.X_val @ w).argmax(axis=1) == data.y_val).mean())
        trial.reporter.report(epoch, {"val_accuracy": val_accuracy})  # may stop the trial (pruning)
    return {"val_accuracy": val_accuracy}


# %% the study: a dict (or a YAML file's path); no objective.framework / callable needed with objective=
SPEC = {
    "study": "notebook-iris",
    "direction": "maximize",
    "metric": "val_accuracy",
    "trials": 6,
    "workers": 2,
    "seed": 0,
    "sampler": {"name": "tpe"},
    "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 3},
    "objective": {"task": "classification", "dataset": {"name": "iris"}, "epochs": 8},
    "space": {
        "learning_rate": {"type": "float", "low": 1.0e-3, "high": 1.0, "log": True},
        "l2": {"type": "float", "low": 1.0e-6, "high": 1.0e-1, "log": True},
    },
}

if __name__ == "__main__":
    # %% run 3 trials, then run again: the study resumes up to the spec's 6, repeating none
    first = sweeplab.run(SPEC, objective=train, trials=3)
    print(f"first run:  {first.n_trials} trials, best val_accuracy {first.best_value}")
    second = sweeplab.run(SPEC, objective=train)
    print(f"second run: {second.n_trials} trials of {second.trials_target}, best val_accuracy {second.best_value}")

    # %% read the study back (any time later, from any process)
    study = sweeplab.load("notebook-iris")
    print(f"status:     {study.status.n_complete} complete, {study.status.n_pruned} pruned, "
          f"{study.status.n_failed} failed of {study.status.trials_target}")
    print(f"best:       trial {study.best.trial}, {study.best.value:.3f}, params {study.best.params}, "
          f"MLflow run {study.best.run_id}")

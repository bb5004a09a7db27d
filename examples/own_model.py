"""Your own PyTorch training code, tuned by sweeplab: `sweeplab run examples/own_model.yaml`.

sweeplab calls `train(trial)` once per trial, on a Ray worker. The trial gives the
sampled hyperparameters (`trial.params`), the spec's dataset already split and scaled
(`trial.dataset`), its `seed` (random, numpy and torch are seeded with it before the
call), its `device` and the spec's `objective.options`. `trial.report` sends each
epoch's metrics to the study (the pruner may stop the trial there), `trial.checkpoint`
lets a retried trial go on where its dead worker stopped, and `trial.log_model` saves
the model into the trial's MLflow run.
"""

import torch
from torch import nn


def train(trial):
    ds = trial.dataset
    p = trial.params
    # The arrays are shared read-only by the trials of a machine: torch.tensor copies them.
    x_train, y_train = torch.tensor(ds.X_train), torch.tensor(ds.y_train)
    x_val, y_val = torch.tensor(ds.X_val, device=trial.device), torch.tensor(ds.y_val, device=trial.device)
    model = nn.Sequential(
        nn.Linear(ds.n_features, p["hidden"]), nn.ReLU(), nn.Dropout(p["dropout"]),
        nn.Linear(p["hidden"], ds.n_outputs),
    ).to(trial.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=p["lr"])
    batch_size = int(trial.options.get("batch_size", 64))

    start = 0
    state = trial.restore()  # None, unless this is a retry of a trial whose worker died
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["epoch"]

    metrics = {}
    for epoch in range(start + 1, trial.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train))
        for i in range(0, len(order), batch_size):
            batch = order[i:i + batch_size]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[batch].to(trial.device)), y_train[batch].to(trial.device))
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            metrics = {"val_accuracy": float((logits.argmax(1) == y_val).float().mean()),
                       "val_loss": float(nn.functional.cross_entropy(logits, y_val))}
        trial.report(epoch, metrics)  # raises TrialPruned when the pruner stops this trial
        trial.checkpoint({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict()})

    trial.log_model(model)  # runs:/<the trial's run id>/model, loadable with mlflow.pyfunc
    return metrics

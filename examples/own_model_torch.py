"""Your own PyTorch CNN, tuned by sweeplab: `sweeplab run examples/own_model_torch.yaml`.

sweeplab calls `train(trial)` once per trial, on a Ray worker. The trial gives the
sampled hyperparameters (`trial.params`), the spec's dataset already split and scaled
(`trial.dataset`), its `seed` (random, numpy and torch are seeded with it before the
call, torch because this module imports it at its top), its `device` and the spec's
`objective.options`. Each epoch, `trial.report` sends the metrics to the study (the
spec's pruner may stop the trial there) and `trial.checkpoint` keeps the state, so a
trial whose worker died goes on from its last epoch when retried (`trial.restore`). At
the end, `trial.log_model` saves the network into the trial's MLflow run: `sweeplab best`
names it, and `sweeplab promote` registers the most robust config's one.

The data: scikit-learn's `digits`. For your own function (framework python) sweeplab
hands over a table, whatever the dataset: 64 standardized pixel columns per 8x8 image.
The network's first layer reshapes each row into a 1x8x8 image, so the logged model
takes the same rows (`mlflow.pyfunc.load_model(uri).predict(X)` with `X` of shape
`(n, 64)`, standardized like `trial.dataset`) and returns one logit per class.
"""

import torch
from torch import nn

SIDE = 8  # digits are 8x8 pixels, one channel


def build(n_outputs, filters, n_blocks, dropout):
    """conv 3x3 -> ReLU -> max-pool 2x2, `n_blocks` times (filters doubling), then a linear layer."""
    layers = [nn.Unflatten(1, (1, SIDE, SIDE))]  # (n, 64) rows -> (n, 1, 8, 8) images
    channels, side = 1, SIDE
    for i in range(n_blocks):
        out = filters * 2**i
        layers += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        channels, side = out, side // 2
    layers += [nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * side * side, n_outputs)]
    return nn.Sequential(*layers)


def train(trial):
    ds = trial.dataset
    p = trial.params
    # The arrays are shared read-only by the trials of a machine: torch.tensor copies them.
    x_train, y_train = torch.tensor(ds.X_train), torch.tensor(ds.y_train)
    x_val, y_val = torch.tensor(ds.X_val, device=trial.device), torch.tensor(ds.y_val, device=trial.device)
    model = build(ds.n_outputs, p["filters"], p["n_blocks"], p["dropout"]).to(trial.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=p["lr"])
    batch_size = int(trial.options.get("batch_size", 64))

    start, metrics = 0, {}
    state = trial.restore()  # None, unless this is a retry of a trial whose worker died
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, metrics = state["epoch"], state["metrics"]  # go on with the next epoch

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
        trial.report(epoch, metrics)  # raises TrialPruned when the pruner stops this trial: let it propagate
        trial.checkpoint({"epoch": epoch, "metrics": metrics, "optimizer": optimizer.state_dict(),
                          "model": {k: v.cpu() for k, v in model.state_dict().items()}})

    trial.log_model(model)  # runs:/<the trial's run id>/model, loadable with mlflow.pyfunc
    return metrics

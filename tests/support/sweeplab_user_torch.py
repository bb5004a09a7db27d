"""A user's own PyTorch training function (imported by Ray workers through PYTHONPATH).

torch is imported at the top, as users do, so the trial seeds it before the function runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn


def train(trial):
    """A small MLP on the study's dataset; reports val_accuracy each epoch and logs the model."""
    ds = trial.dataset
    seed_ok = torch.initial_seed() == trial.seed
    x_train, y_train = torch.tensor(ds.X_train), torch.tensor(ds.y_train)
    x_val, y_val = torch.tensor(ds.X_val), torch.tensor(ds.y_val)
    model = nn.Sequential(nn.Linear(ds.n_features, int(trial.params["units"])), nn.ReLU(),
                          nn.Dropout(0.1), nn.Linear(int(trial.params["units"]), ds.n_outputs)).to(trial.device)
    opt = torch.optim.Adam(model.parameters(), lr=float(trial.params["lr"]))
    acc = 0.0
    for epoch in range(1, trial.epochs + 1):
        model.train()
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x_train), y_train)
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            acc = float((model(x_val).argmax(1) == y_val).float().mean())
        trial.report(epoch, {"val_accuracy": acc, "loss": float(loss)})
    model.train()  # log_model saves it in eval mode and leaves it as it was
    trial.log_model(model)
    training_after_log = model.training
    model.eval()
    with torch.no_grad():
        expected = model(x_val[:4]).numpy().tolist()
    out = Path(trial.options["out_dir"]) / f"torch-{trial.number}.json"
    out.write_text(json.dumps({"seed_ok": seed_ok, "threads": torch.get_num_threads(), "device": trial.device,
                               "training_after_log": training_after_log, "expected": expected}))
    return {"val_accuracy": acc}

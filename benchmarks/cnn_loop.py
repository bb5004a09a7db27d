"""What a user of Ray Tune or plain Optuna would write for the CNN study on the digits images.

The same data as sweeplab's study (``load_dataset(name="digits", model="cnn")``: 8x8x1
images standardized per channel, the same stratified train / validation / test split),
the same space (names, ranges and order as ``bench_cnn.SPEC``), the same network
(``sweeplab.objectives.torch_mlp.build_network`` of ``CNNConfig.plan``) and a
straightforward PyTorch loop: shuffle, mini-batches of ``batch_size``, one validation and
one test pass per epoch. The trial's value is the validation accuracy of the epoch with
the lowest validation loss (what sweeplab's objective returns), and its test accuracy is
that epoch's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

EPOCHS = 10
TRIALS = int(os.environ.get("CNN_BENCH_TRIALS", "20"))
WORKERS = 2
SEED = 42


def load_data(seed: int = SEED) -> Any:
    from sweeplab.objectives.data import load_dataset

    return load_dataset(task="classification", name="digits", model="cnn", validation_split=0.2, test_split=0.2,
                        seed=seed)


def suggest(trial: Any) -> dict[str, Any]:
    """The space of ``bench_cnn.SPEC``, define-by-run (sweeplab samples n_layers and units first)."""
    return {
        "n_layers": trial.suggest_int("n_layers", 0, 2),
        "units": trial.suggest_int("units", 16, 128, log=True),
        "n_blocks": trial.suggest_int("n_blocks", 1, 3),
        "filters": trial.suggest_categorical("filters", [8, 16, 32]),
        "kernel_size": trial.suggest_categorical("kernel_size", [3, 5]),
        "pooling": trial.suggest_categorical("pooling", ["max", "avg"]),
        "batch_norm": trial.suggest_categorical("batch_norm", [True, False]),
        "conv_dropout": trial.suggest_float("conv_dropout", 0.0, 0.3),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
        "optimizer": trial.suggest_categorical("optimizer", ["adam", "sgd"]),
    }


def train(params: dict[str, Any], data: Any, report: Callable[[int, dict[str, float]], None],
          epochs: int = EPOCHS, seed: int = 0) -> tuple[float, float]:
    """Train one trial; returns (val_accuracy, test_accuracy) of the epoch with the lowest val_loss."""
    import torch
    from torch import nn

    from sweeplab.objectives.config import CNNConfig
    from sweeplab.objectives.torch_mlp import build_network

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cfg = CNNConfig(hidden_units=(int(params["units"]),) * int(params["n_layers"]),
                    n_blocks=int(params["n_blocks"]), filters=int(params["filters"]),
                    kernel_size=int(params["kernel_size"]), pooling=str(params["pooling"]),
                    batch_norm=bool(params["batch_norm"]), conv_dropout=float(params["conv_dropout"]),
                    learning_rate=float(params["learning_rate"]), batch_size=int(params["batch_size"]),
                    optimizer=str(params["optimizer"]))
    model = build_network(cfg.plan(data.input_shape, data.n_outputs))
    opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[cfg.optimizer]
    kwargs = {"momentum": 0.9} if cfg.optimizer == "sgd" else {}
    optimizer = opt_cls(model.parameters(), lr=cfg.learning_rate, **kwargs)
    loss_fn = nn.CrossEntropyLoss()
    x_train = torch.as_tensor(data.X_train, dtype=torch.float32)
    y_train = torch.as_tensor(data.y_train, dtype=torch.long)
    x_val = torch.as_tensor(data.X_val, dtype=torch.float32)
    y_val = torch.as_tensor(data.y_val, dtype=torch.long)
    x_test = torch.as_tensor(data.X_test, dtype=torch.float32)
    y_test = torch.as_tensor(data.y_test, dtype=torch.long)
    best_loss, best = float("inf"), (0.0, 0.0)
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(x_train), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            if cfg.batch_norm and len(idx) < 2:
                continue
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = float(loss_fn(out, y_val))
            val_acc = float((out.argmax(1) == y_val).float().mean())
            test_acc = float((model(x_test).argmax(1) == y_test).float().mean())
        if not val_loss == val_loss:  # nan: the trial diverged; keep its best epoch so far
            break
        if val_loss < best_loss:
            best_loss, best = val_loss, (val_acc, test_acc)
        report(epoch, {"val_accuracy": val_acc, "val_loss": val_loss})
    return best

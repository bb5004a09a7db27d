"""What a user of Ray Tune or plain Optuna would write for the guide's MLP study.

The seed's data (``make_classification`` 1000 x 20, 3 classes, ``n_informative=5``, the
same stratified train / validation / test split as sweeplab's), the guide's search space,
the same model (``sweeplab.objectives.torch_mlp.build_model``) and a straightforward
PyTorch training loop: shuffle, mini-batches of ``batch_size``, one validation pass per
epoch. The trial's value is the validation accuracy of the epoch with the lowest
validation loss (what sweeplab's objective returns: best weights by ``val_loss``).

The short workloads (``bench_service.py``), ``SHORT_TRIALS`` trials each:

- ``short``: :func:`short_train`, a fixed ``SHORT_SECONDS`` of sleep over ``SHORT_EPOCHS``
  reported epochs, on a 2-D space (:func:`suggest_short`): what orchestration costs per trial;
- ``short_train``: the seed's study as above, :func:`train` for ``SHORT_TRAIN_EPOCHS`` epochs:
  short trials that train.

With ``$SYSTEMS_PROBE_DIR`` set, each process writes the time of its first report to a
file there (``*.first``): when the first trial was running, for the peers' side of
"command -> first trial".
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

EPOCHS = 20
SHORT_TRIALS = int(os.environ.get("SYSTEMS_SHORT_TRIALS", "100"))  # 100: bench_service; fewer for a smoke run
SHORT_EPOCHS = 4
SHORT_SECONDS = 0.2
SHORT_TRAIN_EPOCHS = 2
PROBE_ENV = "SYSTEMS_PROBE_DIR"
_probed = False
TRIALS = int(os.environ.get("SYSTEMS_TRIALS", "20"))  # 20: figure 2; more for a longer study by hand
# The workloads that train the seed's MLP: (trials, epochs per trial).
TRAINING_WORKLOADS = {"seed": (TRIALS, EPOCHS), "short_train": (SHORT_TRIALS, SHORT_TRAIN_EPOCHS)}
WORKERS = 2
SEED = 42


def load_data(seed: int = SEED) -> Any:
    from sweeplab.objectives.data import load_dataset

    return load_dataset(task="classification", name="make_classification",
                        options={"n_samples": 1000, "n_features": 20, "n_classes": 3, "n_informative": 5},
                        validation_split=0.2, test_split=0.2, seed=seed)


def suggest(trial: Any) -> dict[str, Any]:
    """The guide's space, define-by-run (same names, ranges and order as the sweeplab spec)."""
    return {
        "n_layers": trial.suggest_int("n_layers", 1, 5),
        "units": trial.suggest_int("units", 8, 256, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "batch_norm": trial.suggest_categorical("batch_norm", [True, False]),
        "activation": trial.suggest_categorical("activation", ["relu", "tanh", "sigmoid"]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128]),
        "optimizer": trial.suggest_categorical("optimizer", ["sgd", "adam", "rmsprop", "adagrad"]),
    }


def probe_first_report() -> None:
    """Write this process's first report time to ``$SYSTEMS_PROBE_DIR`` (once per process)."""
    global _probed
    probe_dir = os.environ.get(PROBE_ENV)
    if _probed or not probe_dir:
        return
    _probed = True
    now = time.time()
    with open(os.path.join(probe_dir, f"{os.getpid()}-{uuid.uuid4().hex[:8]}.first"), "w") as fh:
        fh.write(repr(now))


def suggest_short(trial: Any) -> dict[str, Any]:
    """The short workload's space (the same as sweeplab's short spec in ``bench_service.py``)."""
    return {"x": trial.suggest_float("x", -1.0, 1.0), "y": trial.suggest_float("y", -1.0, 1.0)}


def short_train(params: dict[str, Any], report: Callable[[int, dict[str, float]], None],
                seconds: float = SHORT_SECONDS, epochs: int = SHORT_EPOCHS) -> float:
    """A short trial: ``seconds`` of sleep over ``epochs``, a report each epoch; the value of a
    2-D bowl (maximum 1.0 at x=0.3, y=-0.2) approached with the epochs."""
    x, y = float(params["x"]), float(params["y"])
    target = 1.0 - (x - 0.3) ** 2 - (y + 0.2) ** 2
    score = 0.0
    for epoch in range(1, epochs + 1):
        time.sleep(seconds / epochs)
        score = target * (1 - 0.5 ** epoch)
        report(epoch, {"score": score})
        probe_first_report()
    return score


def train(params: dict[str, Any], data: Any, report: Callable[[int, dict[str, float]], None],
          epochs: int = EPOCHS, seed: int = 0) -> float:
    import torch
    from torch import nn

    from sweeplab.objectives.config import MLPConfig
    from sweeplab.objectives.torch_mlp import build_model

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cfg = MLPConfig(hidden_units=(int(params["units"]),) * int(params["n_layers"]), dropout=float(params["dropout"]),
                    batch_norm=bool(params["batch_norm"]), activation=str(params["activation"]),
                    learning_rate=float(params["learning_rate"]), batch_size=int(params["batch_size"]),
                    optimizer=str(params["optimizer"]))
    model = build_model(cfg, data.n_features, data.n_outputs)
    opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop,
               "adagrad": torch.optim.Adagrad}[cfg.optimizer]
    kwargs = {"momentum": 0.9} if cfg.optimizer == "sgd" else {}
    optimizer = opt_cls(model.parameters(), lr=cfg.learning_rate, **kwargs)
    loss_fn = nn.CrossEntropyLoss()
    x_train = torch.as_tensor(data.X_train, dtype=torch.float32)
    y_train = torch.as_tensor(data.y_train, dtype=torch.long)
    x_val = torch.as_tensor(data.X_val, dtype=torch.float32)
    y_val = torch.as_tensor(data.y_val, dtype=torch.long)
    best_loss, best_acc = float("inf"), 0.0
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
        if val_loss < best_loss:
            best_loss, best_acc = val_loss, val_acc
        report(epoch, {"val_accuracy": val_acc, "val_loss": val_loss})
        probe_first_report()
    return best_acc

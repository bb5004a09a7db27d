"""A user's own Keras training function (imported by Ray workers through PYTHONPATH)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np


def train(trial):
    """A small Keras MLP on the study's dataset; reports each epoch and logs the model."""
    ds = trial.dataset
    model = keras.Sequential([keras.Input((ds.n_features,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(ds.n_outputs, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(float(trial.params["lr"])),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    acc = 0.0
    for epoch in range(1, trial.epochs + 1):
        model.fit(ds.X_train, ds.y_train, epochs=1, batch_size=32, verbose=0)
        _, acc = model.evaluate(ds.X_val, ds.y_val, verbose=0)
        trial.report(epoch, {"val_accuracy": float(acc)})
    trial.log_model(model)
    expected = np.asarray(model.predict(ds.X_val[:4], verbose=0)).tolist()
    Path(trial.options["out_dir"], f"keras-{trial.number}.json").write_text(json.dumps({"expected": expected}))
    return {"val_accuracy": float(acc)}

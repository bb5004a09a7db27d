"""Your own Keras CNN, tuned by sweeplab: `sweeplab run examples/own_model_keras.yaml`.

The Keras twin of `own_model_torch.py` (read that one first): the same network, the
same trial API. sweeplab calls `train(trial)` once per trial, on a Ray worker, with
random, numpy and Keras seeded with `trial.seed` (Keras because this module imports it
at its top). Each epoch is one `model.fit(..., epochs=1)`, then `trial.report` (the
spec's pruner may stop the trial there) and `trial.checkpoint` (the weights and the
optimizer's state, as numpy arrays: a retried trial goes on from its last epoch). At
the end, `trial.log_model` saves the model (`mlflow.keras`) into the trial's MLflow run.

The data: scikit-learn's `digits`, which a function (framework python) gets as a table:
64 standardized pixel columns per 8x8 image. The model's first layer reshapes each row
into an 8x8x1 image, so the logged model takes the same rows (`(n, 64)`, standardized
like `trial.dataset`) and returns one probability per class.
"""

import keras

SIDE = 8  # digits are 8x8 pixels, one channel


def build(n_features, n_outputs, filters, n_blocks, dropout):
    """conv 3x3 -> ReLU -> max-pool 2x2, `n_blocks` times (filters doubling), then a softmax layer."""
    layers = [keras.Input((n_features,)), keras.layers.Reshape((SIDE, SIDE, 1))]  # rows -> images
    for i in range(n_blocks):
        layers += [keras.layers.Conv2D(filters * 2**i, 3, padding="same", activation="relu"),
                   keras.layers.MaxPooling2D(2)]
    layers += [keras.layers.Flatten(), keras.layers.Dropout(dropout),
               keras.layers.Dense(n_outputs, activation="softmax")]
    return keras.Sequential(layers)


def train(trial):
    ds = trial.dataset
    p = trial.params
    model = build(ds.n_features, ds.n_outputs, p["filters"], p["n_blocks"], p["dropout"])
    optimizer = keras.optimizers.Adam(p["lr"])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    batch_size = int(trial.options.get("batch_size", 64))

    start, metrics = 0, {}
    state = trial.restore()  # None, unless this is a retry of a trial whose worker died
    if state is not None:
        model.set_weights(state["weights"])
        optimizer.build(model.trainable_variables)  # its slots exist before they are filled
        for variable, value in zip(optimizer.variables, state["optimizer"], strict=True):
            variable.assign(value)
        start, metrics = state["epoch"], state["metrics"]  # go on with the next epoch

    for epoch in range(start + 1, trial.epochs + 1):
        model.fit(ds.X_train, ds.y_train, epochs=1, batch_size=batch_size, verbose=0)
        loss, accuracy = model.evaluate(ds.X_val, ds.y_val, batch_size=256, verbose=0)
        metrics = {"val_accuracy": float(accuracy), "val_loss": float(loss)}
        trial.report(epoch, metrics)  # raises TrialPruned when the pruner stops this trial: let it propagate
        trial.checkpoint({"epoch": epoch, "metrics": metrics, "weights": model.get_weights(),
                          "optimizer": [v.numpy() for v in optimizer.variables]})

    trial.log_model(model)  # runs:/<the trial's run id>/model, loadable with mlflow.pyfunc
    return metrics

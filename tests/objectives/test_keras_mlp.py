"""What only the Keras MLP objective has: its layers, torch-like init and optimizers, the
stateless shuffle, saving, the TensorFlow runtime and graph hygiene.

The objective contract both frameworks keep is tested in ``test_mlp_contract.py``.
"""

from __future__ import annotations

import gc
import json
import math
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from sweeplab_mlp_kit import CLS, SMALL, ctx_for

from sweeplab.objectives.config import ACTIVATIONS, MLPConfig
from sweeplab.objectives.training import batch_bounds

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from sweeplab.objectives import keras_mlp  # noqa: E402
from sweeplab.objectives.keras_mlp import (  # noqa: E402
    KerasMLPObjective,
    build_model,
    count_params,
    make_optimizer,
)

# --------------------------------------------------------------------------- model building

_BN_DROPOUT = [(False, 0.0), (True, 0.0), (False, 0.3), (True, 0.25)]


@pytest.mark.parametrize(
    ("activation", "batch_norm", "dropout"),
    [(act, *_BN_DROPOUT[i % len(_BN_DROPOUT)]) for i, act in enumerate(ACTIVATIONS)] + [("relu", True, 0.25)],
)
def test_build_model_layers(activation: str, batch_norm: bool, dropout: float) -> None:
    cfg = MLPConfig(hidden_units=(16, 8), batch_norm=batch_norm, dropout=dropout, activation=activation)
    model = build_model(cfg, n_features=5, n_outputs=3, task="classification")
    act_cls = keras.layers.LeakyReLU if activation == "leaky_relu" else keras.layers.Activation
    expected: list[type] = []
    for _ in cfg.hidden_units:
        expected.append(keras.layers.Dense)
        if batch_norm:
            expected.append(keras.layers.BatchNormalization)
        expected.append(act_cls)
        if dropout > 0:
            expected.append(keras.layers.Dropout)
    expected.append(keras.layers.Dense)
    assert [type(layer) for layer in model.layers] == expected
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [(d.kernel.shape[0], d.units) for d in dense] == [(5, 16), (16, 8), (8, 3)]
    assert all(d.activation is keras.activations.linear for d in dense)  # logits out, activations separate
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [bn.gamma.shape[0] for bn in bns] == ([16, 8] if batch_norm else [])
    assert all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in bns)  # torch's BatchNorm1d defaults
    assert all(d.rate == dropout for d in model.layers if isinstance(d, keras.layers.Dropout))
    acts = [layer for layer in model.layers if isinstance(layer, act_cls)]
    assert len(acts) == 2
    if activation == "leaky_relu":
        assert all(a.negative_slope == pytest.approx(0.01) for a in acts)
    else:
        assert all(a.activation is getattr(keras.activations, activation) for a in acts)
    assert tuple(model(np.zeros((4, 5), np.float32), training=False).shape) == (4, 3)
    assert model.compiled


def test_build_model_regression_and_bad_input() -> None:
    model = build_model(MLPConfig(hidden_units=(8,)), n_features=4, n_outputs=1, task="regression")
    assert model.layers[-1].name == "value"
    assert isinstance(model.loss, keras.losses.MeanSquaredError)
    with pytest.raises(ValueError, match="task must be 'classification' or 'regression'"):
        build_model(MLPConfig(), n_features=3, n_outputs=2, task="ranking")


def test_torch_like_initialization() -> None:
    keras.utils.set_random_seed(0)
    model = build_model(MLPConfig(hidden_units=(400,)), n_features=25, n_outputs=2, task="classification")
    kernel, bias = (np.asarray(w) for w in model.layers[0].get_weights())
    bound = 1 / math.sqrt(25)  # torch Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for kernel and bias
    assert np.abs(kernel).max() <= bound
    assert np.abs(bias).max() <= bound
    assert np.abs(kernel).max() > 0.95 * bound
    assert np.abs(bias).max() > 0.9 * bound  # biases are not zero as in Keras' default


@pytest.mark.parametrize(
    "cfg",
    [MLPConfig(hidden_units=(64, 32, 16), batch_norm=True), MLPConfig(hidden_units=(7,), batch_norm=True, dropout=0.2)],
    ids=["batch_norm", "narrow"],
)
def test_count_params_leaves_out_moving_statistics(cfg: MLPConfig) -> None:
    # the count itself is the contract's (test_mlp_contract.py, equal to torch's)
    model = build_model(cfg, n_features=10, n_outputs=3, task="classification")
    # moving mean/variance are Keras weights, but not trainable and not counted
    assert model.count_params() == count_params(model) + 2 * sum(cfg.hidden_units)


# --------------------------------------------------------------------------- optimizers


@pytest.mark.parametrize(
    ("name", "cls", "expected"),
    [
        ("sgd", keras.optimizers.SGD, {"momentum": 0.8}),
        ("adam", keras.optimizers.Adam, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}),
        ("rmsprop", keras.optimizers.RMSprop, {"momentum": 0.0, "rho": 0.99}),  # cfg.momentum not applied
        ("adagrad", keras.optimizers.Adagrad, {"initial_accumulator_value": 0.0, "epsilon": 1e-10}),
    ],
)
def test_optimizer_hyperparameters(name: str, cls: type, expected: dict[str, float]) -> None:
    opt = make_optimizer(MLPConfig(optimizer=name, learning_rate=0.02, momentum=0.8, weight_decay=1e-4))
    assert isinstance(opt, cls)
    assert float(opt.learning_rate) == pytest.approx(0.02)
    assert opt.l2 == 1e-4
    assert opt.weight_decay is None  # torch's coupled L2, not Keras' decoupled decay
    config = opt.get_config()
    for key, value in expected.items():
        assert config[key] == pytest.approx(value), key
    assert config["l2"] == 1e-4


@pytest.mark.parametrize(
    ("name", "momentum"), [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.9), ("rmsprop", 0.9), ("adagrad", 0.9)]
)
def test_optimizer_steps_match_torch(name: str, momentum: float) -> None:
    # same start, same gradients (one tiny), weight decay on: the Keras optimizers take torch's steps
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5,)).astype(np.float32)
    grads = [rng.normal(size=(5,)).astype(np.float32) * scale for scale in (1.0, 0.1, 2.0, 1e-3, 0.5)]
    opt = make_optimizer(MLPConfig(optimizer=name, learning_rate=0.05, momentum=momentum, weight_decay=0.01))
    var = keras.Variable(w0.copy())
    param = torch.nn.Parameter(torch.tensor(w0.copy()))
    torch_opt = {
        "sgd": lambda: torch.optim.SGD([param], lr=0.05, momentum=momentum, weight_decay=0.01),
        "adam": lambda: torch.optim.Adam([param], lr=0.05, weight_decay=0.01),
        "rmsprop": lambda: torch.optim.RMSprop([param], lr=0.05, weight_decay=0.01),
        "adagrad": lambda: torch.optim.Adagrad([param], lr=0.05, weight_decay=0.01),
    }[name]()
    for grad in grads:
        opt.apply([tf.constant(grad)], [var])
        param.grad = torch.tensor(grad)
        torch_opt.step()
    assert np.abs(np.asarray(var) - w0).max() > 0.02  # it moved
    np.testing.assert_allclose(np.asarray(var), param.detach().numpy(), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- training


def test_trials_leave_no_graphs_behind() -> None:
    # a worker runs thousands of trials: nothing may keep a finished trial's traced graphs alive
    # (TensorFlow's global gradient registry did, through Keras' all-reduce of the gradients)
    def live_graphs() -> int:
        gc.collect()
        return sum(type(o).__name__.endswith("FuncGraph") for o in gc.get_objects())

    obj = KerasMLPObjective()
    obj.run(ctx_for({"hidden_units": [8]}, dataset=SMALL, epochs=1, seed=1))
    before = live_graphs()
    for seed in (2, 3):
        obj.run(ctx_for({"hidden_units": [8, 4], "optimizer": "sgd"}, dataset=SMALL, epochs=1, seed=seed))
    assert live_graphs() <= before


def test_every_row_is_trained_once_per_epoch_in_a_seeded_order() -> None:
    x = tf.reshape(tf.range(11, dtype=tf.float32), (11, 1))
    y = tf.range(11, dtype=tf.int64)
    bounds = batch_bounds(11, 4, merge_singleton=False)
    batches = [b[1].numpy().tolist() for b in keras_mlp._train_dataset(x, y, bounds, epochs=3, seed=5)]
    assert [len(b) for b in batches] == [4, 4, 3] * 3
    epochs = [[row for b in batches[i : i + 3] for row in b] for i in (0, 3, 6)]
    assert all(sorted(e) == list(range(11)) for e in epochs)
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    again = [b[1].numpy().tolist() for b in keras_mlp._train_dataset(x, y, bounds, epochs=3, seed=5)]
    assert again == batches


def test_model_saves_and_loads_with_its_custom_objects(tmp_path: Any) -> None:
    cfg = MLPConfig(hidden_units=(8,), activation="leaky_relu", batch_norm=True, weight_decay=1e-3)
    model = build_model(cfg, n_features=10, n_outputs=3, task="classification")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_mlp.MLP)
    np.testing.assert_array_equal(loaded(CLS.X_val, training=False), model(CLS.X_val, training=False))
    assert loaded.optimizer.l2 == 1e-3


# --------------------------------------------------------------------------- threads and imports


def test_runtime_is_configured_once_per_process() -> None:
    state = keras_mlp.configure_runtime(5)
    assert state["configured"]
    assert keras_mlp.configure_runtime(7) == state  # later calls change nothing
    assert tf.config.threading.get_intra_op_parallelism_threads() == state["intra_op_threads"]
    assert tf.config.threading.get_inter_op_parallelism_threads() == state["inter_op_threads"]
    if not state["note"]:  # this process's first keras trial set the pools
        assert state["inter_op_threads"] == 1
    else:
        assert "initialized" in state["note"]


def test_fresh_process_lazy_import_and_threads_from_first_trial() -> None:
    # one subprocess (TensorFlow's import is the cost): the package does not import the module,
    # and the first configuration of a fresh process sets the thread pools; later ones keep them
    code = textwrap.dedent(
        """
        import json, sys
        import sweeplab, sweeplab.objectives
        lazy = "tensorflow" not in sys.modules and "sweeplab.objectives.keras_mlp" not in sys.modules
        from sweeplab.objectives import keras_mlp
        import tensorflow as tf
        first = keras_mlp.configure_runtime(2.5)
        second = keras_mlp.configure_runtime(1)
        pools = [tf.config.threading.get_intra_op_parallelism_threads(),
                 tf.config.threading.get_inter_op_parallelism_threads()]
        print(json.dumps([lazy, first["note"], first == second, pools]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lazy, note, unchanged, pools = json.loads(proc.stdout.strip().splitlines()[-1])
    assert lazy
    assert note == ""
    assert unchanged
    assert pools == [2, 1]


def test_fold_models_tracing_their_own_functions_is_not_reported_as_retracing() -> None:
    import io
    import logging

    from sweeplab.core.validation import KFOLD, Validation
    from sweeplab.objectives.data import load_dataset

    folds = load_dataset(task="classification", name="wine", seed=0, validation=Validation(KFOLD, kfold=5))
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    tf.get_logger().addHandler(handler)
    try:
        for seed in range(3):  # 15 models, each traces its train and evaluation functions once
            KerasMLPObjective().run(ctx_for({"hidden_units": [4]}, dataset=folds, epochs=1, seed=seed))
        tf.get_logger().warning("5 out of the last 5 calls to <function other> triggered tf.function retracing.")
    finally:
        tf.get_logger().removeHandler(handler)
    lines = captured.getvalue().splitlines()
    assert lines == ["5 out of the last 5 calls to <function other> triggered tf.function retracing."]  # others pass

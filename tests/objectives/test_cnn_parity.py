"""Keras and PyTorch build the same CNN from one plan, and train it to the same quality.

Same meanings, checked exactly: the torch network and the Keras network of one
:class:`~sweeplab.spaces.cnn.CNNPlan` have the plan's layers one for one (kinds, sizes,
map shapes) and its parameter count, and with the torch network's trained weights copied
into the Keras one both compute the same logits (inference mode, float32 tolerance),
which pins down "same" padding on an even kernel, pooling, batch norm and the flatten
order. Same quality: both objectives train the same spec on the digits images.

Setup of the learning check: ``load_dataset(name="digits", model="cnn", seed=0)`` (1077
train / 360 val / 360 test images, 8x8x1), config 2 blocks of 8 and 16 filters, 3x3,
max pooling, a 32-unit head, adam ``learning_rate=1e-2``, ``batch_size=32``, 5 epochs.
Measured (TensorFlow 2.21 / Keras 3.15 CPU, torch 2.13 CPU), val_accuracy over trial
seeds 0..5 (360 rows, so one row is 0.0028):

    seed    0      1      2      3      4      5
    torch 0.9583 0.9694 0.9750 0.9583 0.9667 0.9694  mean 0.9662
    keras 0.9722 0.9639 0.9417 0.9611 0.9639 0.9472  mean 0.9583

|keras - torch| per seed: max 0.033 (12 rows), mean over seeds 0..2 0.008; the
frameworks draw different random streams, so a seed does not pair identical runs. The
tolerance is 0.05 per seed on seeds 0..2 and 0.03 on their mean; both must learn the
problem (val_accuracy > 0.9).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sweeplab_image_kit import DIGITS

from sweeplab.objectives.base import NullReporter, TrialContext
from sweeplab.objectives.config import CNNConfig
from sweeplab.objectives.data import load_dataset

torch_mlp = pytest.importorskip("sweeplab.objectives.torch_mlp")
keras_mlp = pytest.importorskip("sweeplab.objectives.keras_mlp")
torch = pytest.importorskip("torch")

SEEDS = (0, 1, 2)
TOLERANCE = 0.05
MEAN_TOLERANCE = 0.03
PARAMS = {"n_blocks": 2, "filters": 8, "hidden_units": [32], "learning_rate": 1e-2, "batch_size": 32}

CONFIGS = {
    "even-kernel-avg-bn-gelu": CNNConfig(n_blocks=3, filters=4, filter_growth=1.5, kernel_size=2, pooling="avg",
                                         batch_norm=True, conv_dropout=0.2, dropout=0.2, activation="gelu",
                                         hidden_units=(8,)),
    "max-leaky-two-hidden": CNNConfig(n_blocks=2, filters=3, kernel_size=3, pooling="max", activation="leaky_relu",
                                      hidden_units=(8, 6)),
    "no-pooling-no-head": CNNConfig(n_blocks=1, filters=2, kernel_size=5, pooling="none", hidden_units=()),
}


def _torch_modules(model: torch.nn.Sequential) -> list[torch.nn.Module]:
    modules = list(model)
    assert type(modules[0]).__name__ == "ChannelsFirst"  # images come channels last, as the dataset holds them
    return modules[1:]


def _trained_torch(cfg: CNNConfig) -> torch.nn.Sequential:
    """The torch network of ``cfg`` after one epoch (non-trivial weights and batch norm statistics)."""
    obj = torch_mlp.TorchMLPObjective()
    params = {k: getattr(cfg, k) for k in ("n_blocks", "filters", "filter_growth", "kernel_size", "pooling",
                                           "batch_norm", "conv_dropout", "dropout", "activation")}
    obj.run(TrialContext(params={**params, "hidden_units": list(cfg.hidden_units)}, dataset=DIGITS, seed=3,
                         reporter=NullReporter(),
                         settings=SimpleNamespace(task="classification", epochs=1, early_stopping=None, model="cnn")))
    return obj.model


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_both_frameworks_build_the_plan_layer_for_layer(name: str) -> None:
    cfg = CONFIGS[name]
    plan = cfg.plan((8, 8, 1), 10)
    torch_model = torch_mlp.build_network(plan)
    keras_model = keras_mlp.build_network(plan, cfg)
    assert torch_mlp.count_params(torch_model) == keras_mlp.count_params(keras_model) == plan.n_params
    nn = torch.nn
    expected_torch = {"conv": nn.Conv2d, "pool": (nn.MaxPool2d, nn.AvgPool2d), "dropout": nn.Dropout,
                      "dense": nn.Linear}
    modules = _torch_modules(torch_model)
    assert len(modules) == len(plan.layers) == len(keras_model.layers)
    for layer, module, keras_layer in zip(plan.layers, modules, keras_model.layers, strict=True):
        assert keras_layer.name == layer.name
        if layer.shape:  # the map each layer hands on: (batch, height, width, channels)
            assert tuple(keras_layer.output.shape) == (None, *layer.shape), layer
        else:
            assert tuple(keras_layer.output.shape) == (None, layer.units), layer
        if layer.kind in expected_torch:
            assert isinstance(module, expected_torch[layer.kind]), (layer, module)
        if layer.kind == "conv":
            assert (module.in_channels, module.out_channels, module.kernel_size) == (
                layer.fan_in, layer.units, (layer.kernel_size, layer.kernel_size))
            assert keras_layer.kernel_size == (layer.kernel_size, layer.kernel_size) and keras_layer.padding == "same"
        elif layer.kind == "pool":
            assert type(module).__name__[:3].lower() == layer.pool[:3]  # MaxPool2d / AvgPool2d
            assert type(keras_layer).__name__.lower().startswith({"max": "max", "avg": "average"}[layer.pool])
        elif layer.kind == "batch_norm":
            assert isinstance(module, nn.BatchNorm2d if layer.shape else nn.BatchNorm1d)
            assert module.num_features == layer.units
        elif layer.kind == "dropout":
            assert module.p == pytest.approx(layer.rate) and keras_layer.rate == pytest.approx(layer.rate)
        elif layer.kind == "activation":
            assert layer.activation in type(module).__name__.lower().replace("leakyrelu", "leaky_relu")
        elif layer.kind == "flatten":
            assert type(module).__name__ == "FlattenChannelsLast"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_same_weights_give_the_same_logits(name: str) -> None:
    """Torch's trained weights copied into the Keras network: the same function of the image."""
    cfg = CONFIGS[name]
    plan = cfg.plan((8, 8, 1), 10)
    torch_model = _trained_torch(cfg).eval()
    keras_model = keras_mlp.build_network(plan, cfg)
    for layer, module in zip(plan.layers, _torch_modules(torch_model), strict=True):
        state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
        target = keras_model.get_layer(layer.name)
        if layer.kind == "conv":  # (out, in, kh, kw) -> (kh, kw, in, out)
            target.set_weights([state["weight"].transpose(2, 3, 1, 0), state["bias"]])
        elif layer.kind == "dense":
            target.set_weights([state["weight"].T, state["bias"]])
        elif layer.kind == "batch_norm":
            target.set_weights([state["weight"], state["bias"], state["running_mean"], state["running_var"]])
    x = DIGITS.X_val
    with torch.inference_mode():
        expected = torch_model(torch.from_numpy(x)).numpy()
    got = np.asarray(keras_model(x, training=False))
    assert got.shape == expected.shape == (len(x), 10)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def learned() -> dict[tuple[str, int], float]:
    ds = load_dataset(task="classification", name="digits", model="cnn", seed=0)
    out = {}
    for framework, objective in (("torch", torch_mlp.TorchMLPObjective()), ("keras", keras_mlp.KerasMLPObjective())):
        for seed in SEEDS:
            ctx = TrialContext(params=PARAMS, dataset=ds, seed=seed, reporter=NullReporter(),
                               settings=SimpleNamespace(task="classification", epochs=5, early_stopping=None,
                                                        model="cnn"))
            out[framework, seed] = objective.run(ctx)["val_accuracy"]
    return out


def test_val_accuracy_within_tolerance(learned: dict[tuple[str, int], float]) -> None:
    gaps = []
    for seed in SEEDS:
        keras_acc, torch_acc = learned["keras", seed], learned["torch", seed]
        assert keras_acc > 0.9 and torch_acc > 0.9, (seed, keras_acc, torch_acc)
        assert abs(keras_acc - torch_acc) <= TOLERANCE, (seed, keras_acc, torch_acc)
        gaps.append(keras_acc - torch_acc)
    assert abs(float(np.mean(gaps))) <= MEAN_TOLERANCE, gaps

"""What only the PyTorch MLP objective has: its layer classes, optimizers, threads and train mode.

The objective contract both frameworks keep is tested in ``test_mlp_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sweeplab_mlp_kit import CLS, ctx_for
from torch import nn

from sweeplab.objectives.config import ACTIVATIONS, MLPConfig
from sweeplab.objectives.torch_mlp import TorchMLPObjective, _make_optimizer, build_model, count_params, predict


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(("batch_norm", "dropout"), [(False, 0.0), (True, 0.0), (False, 0.3), (True, 0.25)])
def test_build_model_layers(activation: str, batch_norm: bool, dropout: float) -> None:
    cfg = MLPConfig(hidden_units=(16, 8), batch_norm=batch_norm, dropout=dropout, activation=activation)
    model = build_model(cfg, n_features=5, n_outputs=3)
    act_cls = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "elu": nn.ELU,
        "leaky_relu": nn.LeakyReLU,
        "gelu": nn.GELU,
        "selu": nn.SELU,
    }[activation]
    expected: list[type[nn.Module]] = []
    for _ in cfg.hidden_units:
        expected.append(nn.Linear)
        if batch_norm:
            expected.append(nn.BatchNorm1d)
        expected.append(act_cls)
        if dropout > 0:
            expected.append(nn.Dropout)
    expected.append(nn.Linear)
    layers = list(model.children())
    assert [type(m) for m in layers] == expected
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 16), (16, 8), (8, 3)]
    assert [m.num_features for m in layers if isinstance(m, nn.BatchNorm1d)] == ([16, 8] if batch_norm else [])
    assert all(m.p == dropout for m in layers if isinstance(m, nn.Dropout))
    assert model(torch.zeros(4, 5)).shape == (4, 3)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_count_params_counts_every_parameter(batch_norm: bool) -> None:
    # the count itself is the contract's (test_mlp_contract.py); here: no torch parameter is left out
    model = build_model(MLPConfig(hidden_units=(64, 32, 16), batch_norm=batch_norm), n_features=10, n_outputs=3)
    assert count_params(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "cls", "momentum"),
    [
        ("sgd", torch.optim.SGD, 0.8),
        ("adam", torch.optim.Adam, None),
        ("rmsprop", torch.optim.RMSprop, 0.0),  # cfg.momentum is not applied to rmsprop
        ("adagrad", torch.optim.Adagrad, None),
    ],
)
def test_optimizer_hyperparameters(name: str, cls: type, momentum: float | None) -> None:
    cfg = MLPConfig(optimizer=name, learning_rate=0.02, momentum=0.8, weight_decay=1e-4)
    model = build_model(cfg, n_features=4, n_outputs=2)
    opt = _make_optimizer(cfg, list(model.parameters()), torch.device("cpu"))
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.02
    assert group["weight_decay"] == 1e-4
    if momentum is not None:
        assert group["momentum"] == momentum


def test_set_num_threads_respected() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        TorchMLPObjective().run(ctx_for({}, epochs=1, cpus=1))
        assert torch.get_num_threads() == 1
        TorchMLPObjective().run(ctx_for({}, epochs=1, cpus=0.5))
        assert torch.get_num_threads() == 1
        TorchMLPObjective().run(ctx_for({}, epochs=1, cpus=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_predict_restores_training_mode() -> None:
    model = build_model(MLPConfig(hidden_units=(8,), dropout=0.5), n_features=10, n_outputs=3)
    model.train()
    first = predict(model, CLS.X_val, "classification")
    assert model.training
    assert np.array_equal(first, predict(model, CLS.X_val, "classification"))  # dropout is off
    with pytest.raises(ValueError, match="task must be"):
        predict(model, CLS.X_val, "ranking")

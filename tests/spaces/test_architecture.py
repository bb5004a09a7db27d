"""The analytic parameter count equals what the torch and Keras objectives build."""

from __future__ import annotations

import pytest

from sweeplab.core.errors import Problem
from sweeplab.objectives.config import MLPConfig
from sweeplab.spaces import parse_space
from sweeplab.spaces.architecture import MLPPlan, count_mlp_params, smallest_architecture

CASES = [((16, 8), 20, 3, False), ((5,), 4, 2, True), ((64, 32, 16), 30, 1, True), ((1,), 1, 1, False)]


@pytest.mark.parametrize(("hidden", "n_features", "n_outputs", "batch_norm"), CASES)
def test_count_equals_torch(hidden, n_features, n_outputs, batch_norm):
    from sweeplab.objectives.torch_mlp import build_model, count_params

    cfg = MLPConfig(hidden_units=hidden, batch_norm=batch_norm, dropout=0.2)
    assert count_mlp_params(hidden, n_features, n_outputs, batch_norm) == count_params(
        build_model(cfg, n_features, n_outputs))


@pytest.mark.parametrize(("hidden", "n_features", "n_outputs", "batch_norm"), CASES[:2])
def test_count_equals_keras(hidden, n_features, n_outputs, batch_norm):
    from sweeplab.objectives.keras_mlp import build_model, count_params

    cfg = MLPConfig(hidden_units=hidden, batch_norm=batch_norm)
    model = build_model(cfg, n_features, n_outputs, "classification" if n_outputs > 1 else "regression")
    assert count_mlp_params(hidden, n_features, n_outputs, batch_norm) == count_params(model)


def test_count_rejects_bad_sizes():
    with pytest.raises(ValueError, match="sizes must be >= 1"):
        count_mlp_params([8, 0], 4, 2, False)


def test_plan_orders_the_layers_and_names_them():
    plan = MLPConfig(hidden_units=(16, 8), batch_norm=True, dropout=0.25, activation="tanh").network(5, 3)
    assert [(layer.kind, layer.name, layer.fan_in, layer.units) for layer in plan.layers] == [
        ("dense", "dense_0", 5, 16), ("batch_norm", "bn_0", 0, 16), ("activation", "tanh_0", 0, 16),
        ("dropout", "dropout_0", 0, 16),
        ("dense", "dense_1", 16, 8), ("batch_norm", "bn_1", 0, 8), ("activation", "tanh_1", 0, 8),
        ("dropout", "dropout_1", 0, 8),
        ("dense", "logits", 8, 3),
    ]
    assert {layer.rate for layer in plan.layers if layer.kind == "dropout"} == {0.25}
    plain = MLPConfig(hidden_units=(4,)).network(2, 1, "regression")
    assert [layer.kind for layer in plain.layers] == ["dense", "activation", "dense"]
    assert plain.layers[-1].name == "value"
    assert plain.n_params == (2 * 4 + 4) + (4 * 1 + 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_features": 0}, "n_features and n_outputs must be >= 1, got n_features=0, n_outputs=2"),
        ({"n_outputs": 0}, "n_features and n_outputs must be >= 1, got n_features=3, n_outputs=0"),
        ({"hidden_units": (4, 0)}, r"hidden layer sizes must be >= 1, got hidden_units=\[4, 0\]"),
        ({"activation": "swish"}, "activation must be one of .*, got 'swish'"),
        ({"task": "ranking"}, "task must be 'classification' or 'regression', got 'ranking'"),
    ],
)
def test_plan_refuses_what_no_framework_builds(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLPPlan(**{"n_features": 3, "hidden_units": (4,), "n_outputs": 2, **kwargs})


@pytest.mark.parametrize(
    ("space", "hidden", "batch_norm"),
    [
        ({"n_layers": {"type": "int", "low": 2, "high": 4}, "units": {"type": "int", "low": 16, "high": 64},
          "batch_norm": [True, False]}, [16, 16], False),
        ({"n_layers": 3, "units": {"type": "int", "low": 32, "high": 64, "layout": "funnel", "min_units": 8},
          "batch_norm": True}, [32, 16, 8], True),
        ({"hidden_layers": [[64, 32], [8, 8, 8], [128]]}, [8, 8, 8], False),
        ({"units": [24, 12]}, [12, 12], False),  # n_layers defaults to 2
    ],
)
def test_smallest_architecture_of_a_space(space, hidden, batch_norm):
    problems: list[Problem] = []
    parsed = parse_space(space, "space", "torch", problems)
    assert not problems
    n, params = smallest_architecture(parsed, 10, 3)
    assert params["hidden_units"] == hidden and bool(params.get("batch_norm", False)) is batch_norm
    assert n == count_mlp_params(hidden, 10, 3, batch_norm)

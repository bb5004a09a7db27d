"""The CNN's description (:class:`sweeplab.spaces.cnn.CNNPlan`) and the CNN family's search spaces."""

from __future__ import annotations

import pytest

from sweeplab.core.errors import Problem
from sweeplab.objectives.config import CNNConfig
from sweeplab.spaces import parse_space
from sweeplab.spaces.architecture import MLPPlan
from sweeplab.spaces.cnn import CNNPlan, block_filters


def test_layers_shapes_and_parameter_count() -> None:
    plan = CNNPlan((8, 8, 1), (4, 8), (16,), 10, kernel_size=3, pooling="max", batch_norm=True, conv_dropout=0.1)
    assert [(layer.kind, layer.name, layer.shape) for layer in plan.layers] == [
        ("conv", "conv_0", (8, 8, 4)), ("batch_norm", "conv_bn_0", (8, 8, 4)),
        ("activation", "conv_relu_0", (8, 8, 4)), ("pool", "pool_0", (4, 4, 4)),
        ("dropout", "conv_dropout_0", (4, 4, 4)),
        ("conv", "conv_1", (4, 4, 8)), ("batch_norm", "conv_bn_1", (4, 4, 8)),
        ("activation", "conv_relu_1", (4, 4, 8)), ("pool", "pool_1", (2, 2, 8)),
        ("dropout", "conv_dropout_1", (2, 2, 8)),
        ("flatten", "flatten", ()), ("dense", "dense_0", ()), ("batch_norm", "bn_0", ()),
        ("activation", "relu_0", ()), ("dense", "logits", ()),
    ]
    assert plan.flat_size == 2 * 2 * 8
    assert plan.head == MLPPlan(32, (16,), 10, batch_norm=True)
    convs = (3 * 3 * 1 * 4 + 4) + (3 * 3 * 4 * 8 + 8)
    norms = 2 * 4 + 2 * 8 + 2 * 16
    dense = (32 * 16 + 16) + (16 * 10 + 10)
    assert plan.n_params == convs + norms + dense == 1090


def test_a_map_one_pixel_wide_is_not_pooled() -> None:
    plan = CNNPlan((3, 5, 2), (2, 2, 2), (), 1, pooling="avg", task="regression")
    pools = [layer.shape for layer in plan.layers if layer.kind == "pool"]
    assert pools == [(1, 2, 2)]  # 3x5 -> 1x2, then no more pooling: any depth fits any image
    assert plan.flat_size == 1 * 2 * 2 and plan.layers[-1].name == "value"
    assert [layer.kind for layer in plan.layers][-2:] == ["flatten", "dense"]  # no hidden layer: straight out
    no_pool = CNNPlan((3, 5, 2), (2, 3), (), 4, pooling="none")
    assert no_pool.flat_size == 3 * 5 * 3


def test_filters_grow_per_block() -> None:
    assert block_filters(16, 2.0, 3) == (16, 32, 64)
    assert block_filters(3, 1.5, 4) == (3, 5, 7, 10)  # 4.5 -> 5 (half up), 6.75 -> 7, 10.125 -> 10
    assert block_filters(4, 0.25, 3) == (4, 1, 1)  # never below 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"input_shape": (8, 8)}, r"input_shape must be \(height, width, channels\)"),
    ({"filters": ()}, "one count >= 1 per block"),
    ({"pooling": "min"}, "pooling must be one of"),
    ({"activation": "swish"}, "activation must be one of"),
    ({"n_outputs": 0}, "n_features and n_outputs must be >= 1"),
    ({"conv_dropout": 1.0}, r"conv_dropout must be in \[0, 1\)"),
])
def test_bad_plans_are_refused(kwargs: dict, match: str) -> None:
    args = {"input_shape": (8, 8, 1), "filters": (4,), "hidden_units": (), "n_outputs": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        CNNPlan(**args)


def test_a_cnn_space_resolves_into_the_config_and_its_plan() -> None:
    problems: list[Problem] = []
    space = parse_space({
        "n_blocks": {"type": "int", "low": 1, "high": 3},
        "filters": [8, 16],
        "filter_growth": [1.0, 2.0],
        "kernel_size": [3, 5],
        "pooling": ["max", "avg", "none"],
        "conv_dropout": {"type": "float", "low": 0.0, "high": 0.3},
        "n_layers": {"type": "int", "low": 0, "high": 2},
        "units": {"type": "int", "low": 8, "high": 64, "layout": "funnel"},
        "batch_norm": [True, False],
    }, "space", "keras", problems, model="cnn")
    assert problems == []
    params = space.resolve({"n_blocks": 2, "filters": 8, "filter_growth": 2.0, "kernel_size": 5, "pooling": "avg",
                            "conv_dropout": 0.1, "n_layers": 2, "units": 32, "batch_norm": True})
    assert params["hidden_units"] == [32, 16]
    plan = CNNConfig.from_params(params).plan((28, 28, 3), 10)
    assert plan.filters == (8, 16) and plan.kernel_size == 5 and plan.pooling == "avg"
    assert plan.hidden_units == (32, 16) and plan.flat_size == 7 * 7 * 16


@pytest.mark.parametrize(("space", "model", "fragments"), [
    ({"n_blocks": [1, 2]}, "mlp", ["`n_blocks` is a hyperparameter of model cnn, not for framework torch, model mlp",
                                   "set objective.model: cnn"]),
    ({"filtres": [8]}, "cnn", ["unknown hyperparameter `filtres` for framework torch, model cnn",
                               "(did you mean `filters`?)", "known: n_blocks, filters"]),
    ({"n_frozen_layers": [0, 1]}, "cnn", ["`n_frozen_layers` is a hyperparameter of model mlp"]),
    ({"pooling": ["max", "min"]}, "cnn", ["unknown pooling `min`; allowed: max, avg, none"]),
    ({"kernel_size": {"type": "int", "low": 0, "high": 3}}, "cnn", ["values must be >= 1, got low=0"]),
    ({"conv_dropout": [0.1, 1.0]}, "cnn", ["values must be in [0, 1)", "float 1.0"]),
    ({"filter_growth": [0, 2]}, "cnn", ["values must be > 0", "int 0"]),
])
def test_space_problems_name_the_family(space: dict, model: str, fragments: list[str]) -> None:
    problems: list[Problem] = []
    parse_space(space, "space", "torch", problems, model=model)
    assert len(problems) == 1, problems
    for fragment in fragments:
        assert fragment in problems[0].message, (fragment, problems[0].message)

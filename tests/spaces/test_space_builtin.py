"""The built-in spaces shipped as package data, and `use:` in a spec."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sweeplab.core.errors import Problem, SpecError
from sweeplab.spaces import (
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpace,
    builtin_spaces,
    load_builtin,
    parse_space,
)
from sweeplab.spec import parse_spec

DESIGN_SPACE = {
    "n_layers": {"type": "int", "low": 1, "high": 5},
    "units": {"type": "int", "low": 8, "high": 256, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "batch_norm": {"type": "categorical", "choices": [True, False]},
    "activation": {"type": "categorical", "choices": ["relu", "tanh", "sigmoid"]},
    "learning_rate": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
    "batch_size": {"type": "categorical", "choices": [16, 32, 64, 128]},
    "optimizer": {"type": "categorical", "choices": ["sgd", "adam", "rmsprop", "adagrad"]},
}


def parse(data: Any, framework: str | None = "torch") -> tuple[SearchSpace, list[Problem]]:
    problems: list[Problem] = []
    return parse_space(data, "space", framework, problems), problems


def spec_with_space(space: Any) -> dict[str, Any]:
    return {"study": "s", "metric": "val_accuracy", "objective": {"dataset": {"name": "iris"}}, "space": space}


def test_builtin_names():
    names = builtin_spaces()
    assert {"mlp", "mlp-small", "mlp-funnel", "optimizers"} <= set(names)
    assert names == sorted(names)


def test_builtin_files_are_package_data(tmp_path):
    """Build the wheel a user installs, install it alone, and load every built-in space from it."""
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    shutil.copytree(root / "sweeplab", source / "sweeplab", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("sweeplab-*.whl"))
    expected = sorted(p.name for p in (root / "sweeplab" / "spaces" / "builtin").glob("*.yaml"))
    assert {"mlp.yaml", "mlp-small.yaml", "mlp-funnel.yaml", "optimizers.yaml"} <= set(expected)
    with zipfile.ZipFile(wheel) as archive:
        shipped = sorted(Path(n).name for n in archive.namelist() if n.startswith("sweeplab/spaces/builtin/"))
    assert shipped == expected

    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                                str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    code = ("import sweeplab.spaces as s; print(s.__file__);"
            "print(','.join(n for n in s.builtin_spaces() if s.load_builtin(n)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    where, names = out.stdout.split()
    assert where.startswith(str(target))  # loaded from the installed wheel, not from the repository
    assert sorted(f"{n}.yaml" for n in names.split(",")) == expected


@pytest.mark.parametrize(
    ("name", "framework"),
    [(n, f) for n in ("mlp", "mlp-small", "mlp-funnel", "mlp-grid", "optimizers") for f in ("torch", "keras")]
    + [(n, None) for n in ("mlp", "mlp-small", "mlp-grid", "optimizers")],  # python spaces have no units layout
)
def test_every_builtin_is_valid(name, framework):
    space, problems = parse(name, framework)
    assert problems == []
    assert space.names() == list(load_builtin(name))
    again, problems = parse(space.to_dict(), framework)
    assert problems == [] and again == space


def test_mlp_is_the_design_space():
    assert parse("mlp")[0] == parse(DESIGN_SPACE)[0]


def test_optimizers_space():
    space = parse("optimizers")[0]
    assert space.get("optimizer") == CategoricalParam("optimizer", ("sgd", "adam", "rmsprop", "adagrad"))
    assert space.get("learning_rate") == FloatParam("learning_rate", 1e-4, 0.1, log=True)
    assert space.get("lr_schedule") == CategoricalParam("lr_schedule", ("none", "exponential", "plateau"))


def test_mlp_funnel_layout():
    space = parse("mlp-funnel")[0]
    assert (space.layout, space.min_units) == ("funnel", 8)


def test_use_with_overrides_and_removal():
    space, problems = parse(
        {
            "use": "mlp",
            "dropout": {"type": "float", "low": 0.1, "high": 0.3},
            "units": {"type": "int", "low": 16, "high": 64, "layout": "per_layer"},
            "batch_norm": None,
            "weight_decay": [0.0, 1.0e-4],
        }
    )
    assert problems == []
    assert space.names() == [
        "n_layers",
        "units",
        "dropout",
        "activation",
        "learning_rate",
        "batch_size",
        "optimizer",
        "weight_decay",
    ]
    assert space.get("dropout") == FloatParam("dropout", 0.1, 0.3)
    assert space.get("units") == IntParam("units", 16, 64)
    assert space.layout == "per_layer"


def test_use_in_a_spec():
    s = parse_spec(spec_with_space({"use": "mlp", "activation": "relu"}))
    assert s.space.resolve({"n_layers": 1, "units": 8})["activation"] == "relu"
    assert parse_spec(spec_with_space("mlp")).space == parse("mlp")[0]
    assert "use" not in s.space.to_dict()


def test_use_replacing_the_architecture_with_hidden_layers():
    space, problems = parse({"use": "mlp", "n_layers": None, "units": None, "hidden_layers": [[64, 32], [32]]})
    assert problems == []
    assert space.resolve({"hidden_layers": "32"})["hidden_units"] == [32]


@pytest.mark.parametrize(
    ("space", "path", "fragment"),
    [
        ("resnet", "space.use", "unknown built-in space `resnet`; available: mlp, mlp-funnel, mlp-grid, mlp-small, "
                                "optimizers"),
        ({"use": "nope", "dropout": 0.1}, "space.use", "unknown built-in space `nope`"),
        ({"use": 3}, "space.use", "non-empty string, got int 3"),
        ({"use": "mlp", "dropout": {"type": "float", "low": 0.4, "high": 0.1}}, "space.dropout", "low=0.4, high=0.1"),
        ({"use": "mlp", "hidden_layers": [[8]]}, "space.hidden_layers", "replaces n_layers and units"),
        ({"use": "mlp", "depth": 3}, "space.depth", "unknown hyperparameter `depth`"),
    ],
)
def test_use_problems(space, path, fragment):
    with pytest.raises(SpecError, match=re.escape(f"- {path}: ") + ".*" + re.escape(fragment)):
        parse_spec(spec_with_space(space))


def test_load_builtin_unknown_name():
    with pytest.raises(KeyError, match="available: mlp"):
        load_builtin("../../etc/passwd")

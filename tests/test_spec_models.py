"""``objective.model`` in the spec: the family, its data, its canonical form, and every refusal with its YAML path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sweeplab_image_kit import write_npz

from sweeplab.core.errors import SpecError
from sweeplab.spec import parse_spec
from sweeplab.study.resume import spec_diff

CNN_SPACE = {"n_blocks": [1, 2], "filters": [4, 8], "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1}}


def spec(model: str | None = "cnn", dataset: Any = None, space: Any = None, **objective: Any) -> dict[str, Any]:
    obj = {"framework": "torch", "dataset": dataset or {"name": "digits"}, **objective}
    if model is not None:
        obj["model"] = model
    return {"study": "s", "metric": "val_accuracy", "objective": obj, "space": space or CNN_SPACE}


def problems_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return [(p.path, p.message) for p in info.value.problems]


def test_model_defaults_to_mlp_and_is_canonical_only_when_set() -> None:
    mlp = parse_spec(spec(model=None, space={"units": [8, 16]}))
    assert mlp.objective.model == "mlp"
    assert "model" not in mlp.to_dict()["objective"]  # a study stored before model families reads the same
    cnn = parse_spec(spec())
    assert cnn.objective.model == "cnn" and cnn.to_dict()["objective"]["model"] == "cnn"
    assert parse_spec(cnn.to_dict()) == cnn
    assert parse_spec(spec(model="mlp", space={"units": [8, 16]})) == mlp


def test_resume_refuses_a_changed_model_with_a_diff() -> None:
    mlp = parse_spec(spec(model=None, space={"units": [8]})).to_dict()
    cnn = parse_spec(spec(space={"units": [8]})).to_dict()
    assert spec_diff(mlp, cnn) == ['objective.model: null -> "cnn"']
    assert spec_diff(cnn, cnn) == []


@pytest.mark.parametrize(("data", "expected"), [
    (spec(model="cnnn"), ("objective.model", "unknown model family `cnnn` (did you mean `cnn`?); allowed: mlp, cnn")),
    (spec(framework="python", callable="m:f"), ("objective.model", "only used with framework torch or keras")),
    (spec(dataset={"name": "iris"}), ("objective.dataset.name", "model cnn trains on images, but dataset "
                                                                "`iris` is a table of features; use a named image "
                                                                "set (digits)")),
    (spec(dataset={"path": "t.csv", "target": "y"}), ("objective.dataset.path", "model cnn trains on images, but the "
                                                                                "table 't.csv' is a table")),
    (spec(init_from="models:/m@champion"), ("objective.init_from", "fine-tuning needs model mlp")),
    ({**spec(), "constraints": {"max_params": 1000}}, ("constraints.max_params", "model cnn is not counted yet")),
    (spec(model=None), ("space.n_blocks", "`n_blocks` is a hyperparameter of model cnn, not for framework torch, "
                                          "model mlp; set objective.model: cnn")),
    (spec(dataset={"path": "x.npz", "target": "label"}), ("objective.dataset.target",
                                                          "an .npz holds its targets in array `y`; remove `target`")),
])
def test_refusals_name_the_path_and_the_fix(data: dict[str, Any], expected: tuple[str, str]) -> None:
    found = problems_of(data)
    assert any(path == expected[0] and expected[1] in message for path, message in found), found


def _npz_problems(tmp_path: Path, model: str, **arrays: Any) -> list[tuple[str, str]]:
    path = write_npz(tmp_path / "data.npz", **arrays)
    space = CNN_SPACE if model == "cnn" else {"units": [8]}
    return problems_of(spec(model=model, dataset={"path": str(path)}, space=space))


def test_an_npz_is_checked_at_validate_from_its_headers(tmp_path: Path) -> None:
    images, labels = np.zeros((20, 8, 8)), np.arange(20) % 2
    assert _npz_problems(tmp_path, "cnn", X=images) == [
        ("objective.dataset.path", f"{tmp_path / 'data.npz'}: the file holds `X` but needs `y`: save it with "
                                   "numpy.savez(path, X=features, y=targets)")]
    [(_, message)] = _npz_problems(tmp_path, "cnn", X=images.reshape(20, 64), y=labels)
    assert "model cnn trains on images: `X` must have shape (N, H, W) or (N, H, W, C), got (20, 64)" in message
    [(_, message)] = _npz_problems(tmp_path, "cnn", X=images, y=labels[:15])
    assert "`X` has 20 examples but `y` has 15" in message
    [(_, message)] = _npz_problems(tmp_path, "mlp", X=np.zeros(20), y=labels)
    assert "`X` must hold one row per example, shape (N, F)" in message
    [(_, message)] = _npz_problems(tmp_path, "cnn", X=images, y=labels.reshape(20, 1))
    assert "`y` must hold one target per example, shape (N,), got (20, 1)" in message
    (tmp_path / "bad.npz").write_text("not a zip")
    [(_, message)] = problems_of(spec(dataset={"path": str(tmp_path / "bad.npz")}))
    assert "not an .npz archive" in message


def test_a_good_npz_validates_for_either_family(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "ok.npz", X=np.zeros((20, 6, 6, 3), dtype=np.float32), y=np.arange(20) % 2)
    cnn = parse_spec(spec(dataset={"path": str(path)}))
    assert cnn.objective.dataset is not None and cnn.to_dict()["objective"]["dataset"] == {"path": str(path)}
    assert parse_spec(cnn.to_dict()) == cnn
    parse_spec(spec(model=None, dataset={"path": str(path)}, space={"units": [8]}))  # an MLP sees them flattened
    parse_spec(spec(dataset={"path": str(tmp_path / "later.npz")}))  # not there yet: the loader reports it


def test_validate_exits_2_with_every_problem_and_creates_nothing(tmp_path: Path) -> None:
    write_npz(tmp_path / "flat.npz", X=np.zeros((20, 64)), y=np.arange(20))
    bad = spec(dataset={"path": "flat.npz"}, space={**CNN_SPACE, "pooling": ["max", "maxx"]})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    out = subprocess.run([sys.executable, "-m", "sweeplab.cli", "validate", "bad.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert "objective.dataset.path: flat.npz: model cnn trains on images" in out.stderr
    assert "space.pooling: unknown pooling `maxx`" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "flat.npz"]

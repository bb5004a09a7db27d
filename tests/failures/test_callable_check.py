"""A mistyped ``objective.callable`` is a spec problem: `validate` and `run` import it in a
subprocess (never calling it) and exit 2 naming what is wrong, with a did-you-mean."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from sweeplab.objectives.python_callable import check_callable

CLI = [sys.executable, "-m", "sweeplab.cli"]


def cli(*args, cwd):
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600)


def write_spec(tmp_path, ref):
    spec = {
        "study": "typo", "metric": "score", "trials": 2,
        "objective": {"framework": "python", "callable": ref, "epochs": 1},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    (tmp_path / "train.py").write_text("def train(trial):\n    return 1.0\n")
    return path


@pytest.mark.parametrize("ref, expected", [
    ("sweeplab_user_functions:inspcet", ["module 'sweeplab_user_functions' has no attribute 'inspcet'",
                                         "(did you mean `inspect`?)"]),
    ("sweeplab_user_functinos:inspect", ["there is no module 'sweeplab_user_functinos'",
                                         "(did you mean `sweeplab_user_functions`?)"]),
    ("traim.py:train", ["traim.py' does not exist", "(did you mean `train.py`?)"]),
    ("sweeplab_user_functions:NOT_A_FUNCTION", ["names a int, not a function"]),
    ("sweeplab_user_functions:two_args", ["takes (trial, lr), which needs 2 arguments (trial, lr)",
                                          "sweeplab calls it with one argument, the trial"]),
])
def test_validate_names_the_mistake(tmp_path, ref, expected):
    out = cli("validate", write_spec(tmp_path, ref), cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "objective.callable: " in out.stderr
    for text in expected:
        assert text in out.stderr


def test_validate_json_lists_the_problem_and_a_good_file_callable_validates(tmp_path):
    path = write_spec(tmp_path, "train.py:trian")
    out = cli("validate", path, "--json", cwd=tmp_path)
    assert out.returncode == 2
    [problem] = json.loads(out.stdout)["problems"]
    assert problem["path"] == "objective.callable" and "(did you mean `train`?)" in problem["message"]
    good = write_spec(tmp_path, "train.py:train")
    out = cli("validate", good, cwd=tmp_path.parent)  # relative to the spec's folder, not the current one
    assert out.returncode == 0, out.stderr


def test_run_refuses_a_mistyped_callable_before_anything_is_created(tmp_path):
    out = cli("run", write_spec(tmp_path, "train.py:trian"), "--no-progress", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "objective.callable: " in out.stderr and "(did you mean `train`?)" in out.stderr
    assert not (tmp_path / "sweeplab.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_module_that_hangs_when_imported_is_not_checked_but_said(tmp_path, monkeypatch):
    (tmp_path / "slow_import.py").write_text("import time\ntime.sleep(30)\ndef train(trial):\n    return 1.0\n")
    problems, warnings = check_callable(f"{tmp_path / 'slow_import.py'}:train", timeout=1.0)
    assert problems == [] and "took over 1 s, so it was not checked" in warnings[0]
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    problems, _ = check_callable(f"{tmp_path / 'broken.py'}:train")
    assert "raised ModuleNotFoundError: No module named 'not_a_module_anywhere'" in problems[0]
    assert "broken.py, line 1" in problems[0]


def test_an_in_process_study_checks_its_callable_here_before_anything_is_created(stores):
    from sweeplab_testkit import bowl_spec, run

    from sweeplab.core.errors import SpecError

    spec = bowl_spec(objective={"framework": "python", "callable": "sweeplab_user_functions:inspcet"})
    with pytest.raises(SpecError, match=r"objective.callable: .*no attribute 'inspcet' \(did you mean `inspect`\?\)"):
        run(spec, stores, executor="in-process")
    import optuna

    assert optuna.get_all_study_names(stores["storage"]) == []

"""The bad-input catalogue at the CLI: each gets its message and exit code, nothing is changed."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest
import yaml
from sweeplab_testkit import bowl_spec, run

CLI = [sys.executable, "-m", "sweeplab.cli"]


def cli(*args, cwd):
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", ["../x", "..\\x", "%2e%2e%2f", "/etc/passwd", "a/b", ".."])
def test_study_names_that_would_escape_a_directory_are_refused(tmp_path, name):
    out = cli("status", name, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "study" in out.stderr and (name in out.stderr or repr(name)[1:-1] in out.stderr)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({**bowl_spec().to_dict(), "study": name}))
    out = cli("validate", spec, cwd=tmp_path)
    assert out.returncode == 2 and "study" in out.stderr


def test_nul_in_a_study_name_is_refused(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(bowl_spec().to_dict()).replace("study: bowl", 'study: "bo\\0wl"'))
    out = cli("validate", spec, cwd=tmp_path)
    assert out.returncode == 2 and "study" in out.stderr


def test_conflicting_and_bad_flags_exit_2(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(bowl_spec().to_dict()))
    out = cli("run", spec, "--fork", "a", "--study", "b", cwd=tmp_path)
    assert out.returncode == 2 and "--fork and --study conflict" in out.stderr
    out = cli("run", spec, "--timeout", "-5", cwd=tmp_path)
    assert out.returncode == 2 and "--timeout must be a positive number" in out.stderr
    out = cli("run", spec, "--workers", "two", cwd=tmp_path)
    assert out.returncode == 2 and "--workers" in out.stderr
    assert not (tmp_path / "sweeplab.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_tracking_uri_naming_a_folder_is_refused_before_anything_starts(tmp_path):
    """MLflow would retry opening a folder as SQLite for hours; the run says so at once."""
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(bowl_spec().to_dict()))
    (tmp_path / "runs").mkdir()
    out = cli("run", spec, "--tracking-uri", f"sqlite:///{tmp_path / 'runs'}", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert f"the MLflow tracking store sqlite:///{tmp_path / 'runs'} names a folder, not a database file" in out.stderr
    assert f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}" in out.stderr  # the fix
    assert not (tmp_path / "sweeplab.db").exists()


def test_changed_spec_can_be_forked_into_a_warm_started_study(ray_local, stores, tmp_path):
    run(bowl_spec(trials=4, workers=2), stores)
    changed = bowl_spec(trials=6).to_dict()
    changed["space"]["x"]["high"] = 2.0
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(changed))
    flags = ["--storage", stores["storage"], "--tracking-uri", stores["tracking"], "--address", "local"]
    refused = cli("run", path, *flags, cwd=tmp_path)
    assert refused.returncode == 2 and "space.x.high: 1.0 -> 2.0" in refused.stderr and "--fork" in refused.stderr
    forked = cli("run", path, "--fork", "bowl-wider", "--json", *flags, cwd=tmp_path)
    assert forked.returncode == 0, forked.stderr[-3000:]
    assert "4 finished trials copied" in forked.stderr
    summary = json.loads(forked.stdout)
    assert summary["study"] == "bowl-wider" and summary["n_trials"] == 6
    old = optuna.load_study(study_name="bowl", storage=stores["storage"])
    new = optuna.load_study(study_name="bowl-wider", storage=stores["storage"])
    assert len(old.trials) == 4  # the old study is not changed
    copied = [t for t in new.trials if "sweeplab.forked_from_trial" in t.user_attrs]
    assert len(copied) == 4
    for t in copied:
        source = old.trials[t.user_attrs["sweeplab.forked_from_trial"]]
        assert t.params == source.params and t.value == source.value

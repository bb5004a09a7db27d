"""A new SQLite tracking store is a copy of a migrated empty one (sweeplab.tracking.store_template)."""

from __future__ import annotations

import filecmp

from mlflow.tracking import MlflowClient

from sweeplab.core.store_templates import CACHE_ENV, sqlite_file
from sweeplab.tracking.store_template import seed_sqlite_store


def test_a_new_store_is_the_template_and_mlflow_uses_it_as_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "a")  # MLflow's default artifact root is ./mlruns of the process creating a store
    assert seed_sqlite_store(f"sqlite:///{first}") is True  # builds the template, then copies it
    templates = list((tmp_path / "cache").glob("mlflow-*-empty.db"))
    assert len(templates) == 1 and filecmp.cmp(templates[0], first, shallow=False)
    assert seed_sqlite_store(f"sqlite:///{second}") is True
    assert filecmp.cmp(templates[0], second, shallow=False)  # a copy: no migration ran for it

    monkeypatch.chdir(tmp_path / "b")
    client = MlflowClient(f"sqlite:///{second}")
    (default,) = client.search_experiments()
    # made when this store was first opened, here: not the template builder's ./mlruns
    assert default.name == "Default" and default.artifact_location.endswith(f"{tmp_path / 'b' / 'mlruns'}/0")
    experiment = client.create_experiment("seeded")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "score", 0.5, step=1)
    assert client.get_run(run.info.run_id).data.metrics == {"score": 0.5}


def test_only_a_missing_or_empty_sqlite_store_is_seeded(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    existing = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{existing}").create_experiment("kept")
    before = existing.read_bytes()
    assert seed_sqlite_store(f"sqlite:///{existing}") is False
    assert existing.read_bytes() == before
    empty = tmp_path / "empty.db"
    empty.touch()
    assert seed_sqlite_store(f"sqlite:///{empty}") is True and empty.stat().st_size > 0
    for uri in ("http://127.0.0.1:5000", "postgresql://u@h/db", "sqlite:///relative.db", "sqlite:///:memory:"):
        assert seed_sqlite_store(uri) is False
    assert sqlite_file(f"sqlite:///{existing}?timeout=5") == existing

"""A new SQLite Optuna store is a copy of an empty one Optuna created (sweeplab.search.storage)."""

from __future__ import annotations

import filecmp

import optuna

from sweeplab.core.store_templates import CACHE_ENV
from sweeplab.search.storage import open_storage, seed_optuna_store

optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_a_new_store_is_the_template_and_optuna_opens_it_as_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    first, second = tmp_path / "a" / "sweeplab.db", tmp_path / "b" / "sweeplab.db"
    open_storage(f"sqlite:///{first}").engine.dispose()  # builds the template, then opens a copy
    (template,) = (tmp_path / "cache").glob(f"optuna-{optuna.__version__}-empty.db")
    assert seed_optuna_store(f"sqlite:///{second}") is True
    assert filecmp.cmp(template, second, shallow=False)  # a copy: Optuna created nothing for it

    storage = open_storage(f"sqlite:///{second}")  # Optuna's version check passes on the copy
    study = optuna.create_study(study_name="seeded", storage=storage, direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=3)
    storage.engine.dispose()
    reopened = optuna.load_study(study_name="seeded", storage=f"sqlite:///{second}")
    assert [t.state.name for t in reopened.trials] == ["COMPLETE"] * 3
    assert optuna.study.get_all_study_names(f"sqlite:///{first}") == []  # the template holds no study


def test_an_existing_store_is_kept_and_a_broken_cache_falls_back_to_optuna(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    existing = f"sqlite:///{tmp_path / 'kept.db'}"
    optuna.create_study(study_name="kept", storage=existing)
    assert seed_optuna_store(existing) is False
    assert optuna.study.get_all_study_names(existing) == ["kept"]
    for url in ("postgresql://u@h/db", "sqlite:///relative.db", "sqlite:///:memory:"):
        assert seed_optuna_store(url) is False

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv(CACHE_ENV, str(blocked))
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert seed_optuna_store(fresh) is False
    optuna.create_study(study_name="made-by-optuna", storage=open_storage(fresh))
    assert optuna.study.get_all_study_names(fresh) == ["made-by-optuna"]

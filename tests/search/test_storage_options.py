"""The study's storage and start-up switches: Optuna's own storage on an untested Optuna,
and RunOptions.without_speedups (benchmarks' "before") reaching where each switch acts."""

from __future__ import annotations

import logging
import sqlite3

import optuna
from optuna.storages import RDBStorage
from sweeplab_testkit import bowl_spec

from sweeplab.search.storage import PlainStudyStorage, StorageOptions, open_study_storage
from sweeplab.study import RunOptions, run_study

PRUNED_SPEC = {"pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1}, "sampler": {"name": "random"}}


def _journal_mode(storage_url: str) -> str:
    with sqlite3.connect(storage_url[len("sqlite:///"):]) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def test_an_untested_optuna_runs_the_study_on_optunas_own_storage(stores, caplog):
    """A working study with one warning, rather than a refusal."""
    with caplog.at_level(logging.WARNING, logger="sweeplab.compat"):
        options = StorageOptions().resolved(optuna_version="5.97.0", environ={})
    assert options.held is False
    assert [r.getMessage() for r in caplog.records if "optuna 5.97.0 is installed" in r.getMessage()]
    storage = open_study_storage(stores["storage"], options)
    assert isinstance(storage, PlainStudyStorage) and isinstance(storage.optuna_storage, RDBStorage)

    summary = run_study(bowl_spec(trials=6, workers=2, **PRUNED_SPEC),
                        RunOptions(storage_url=stores["storage"], tracking_uri=stores["tracking"], progress=False,
                                   executor="in-process", storage_options=options))
    assert summary.n_trials == 6 and summary.n_complete + summary.n_pruned == 6
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    assert all(t.state.is_finished() and "sweeplab.lease_holder" in t.user_attrs for t in study.trials)


def test_without_speedups_a_ray_study_runs_on_sqlites_default_journal(ray_local, stores):
    """overlap_startup, warm_workers and storage_options off: the driver's start-up work and the
    coordinator actor (a keyword of its constructor) both leave SQLite in its rollback journal."""
    modes: list[str] = []
    options = RunOptions(storage_url=stores["storage"], tracking_uri=stores["tracking"], progress=False,
                         package_best=False, on_record=lambda _record: modes.append(_journal_mode(stores["storage"])))
    baseline = options.without_speedups()
    assert (baseline.overlap_startup, baseline.warm_workers, baseline.storage_options) == (
        False, False, StorageOptions(held=False, wal=False))
    summary = run_study(bowl_spec(trials=3, workers=2), baseline)
    assert summary.n_complete == 3
    assert set(modes) == {"delete"}

    modes.clear()
    summary = run_study(bowl_spec(study="bowl-after", trials=3, workers=2), options)
    assert summary.n_complete == 3
    assert set(modes) == {"wal"}

"""Optuna's storage conformance suite over sweeplab's held storage, on SQLite and PostgreSQL.

``optuna.testing.pytest_storages.StorageTestCase`` is the suite Optuna runs over each of
its own backends; it ships with Optuna and reads one fixture, ``storage``. Here that
fixture is the storage the coordinator keeps its study in: a :class:`HeldTrialsStorage`
around :func:`open_storage`'s ``RDBStorage`` (built directly, so that the suite checks the
held storage whatever the installed Optuna is: that is how a new Optuna version is
qualified, see :mod:`sweeplab.core.compat`). Every check runs four ways: SQLite and
PostgreSQL, each with calls one by one ("unbatched") and with the whole check inside one
``batch()`` block ("batched", where writes to the trials it holds are deferred and its
reads are served from memory), so the suite sees the held storage's own semantics.

Below the suite, checks of what it does not cover but the held storage could get wrong:
lists returned without a copy are not changed by later writes, and a batch the database
refuses leaves this storage showing what is stored.

PostgreSQL cases skip when 127.0.0.1:5432 does not answer, and fail instead when
``SWEEPLAB_REQUIRE_SERVICES`` is set.
"""

from __future__ import annotations

import contextlib
import copy
import shutil

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.testing.pytest_storages import StorageTestCase
from optuna.trial import TrialState
from sweeplab_services import create_database, drop_database, require_postgres

from sweeplab.search.held_storage import HeldTrialsStorage
from sweeplab.search.storage import open_storage

BACKENDS = ("sqlite", "postgresql")
MODES = ("unbatched", "batched")


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory):
    """An SQLite file with Optuna's schema, copied for each check (creating it each time is slow)."""
    path = tmp_path_factory.mktemp("conformance") / "template.db"
    RDBStorage(f"sqlite:///{path}").engine.dispose()
    return path


@pytest.fixture(scope="module")
def postgres_template():
    """A PostgreSQL database with Optuna's schema, the template of each check's database."""
    require_postgres()
    url = create_database("sweeplab_conformance_template")
    RDBStorage(url).engine.dispose()  # no connection may stay open on a template
    yield url
    drop_database(url)


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """A fresh, empty Optuna database (its schema made) on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "optuna.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = create_database("sweeplab_conformance", template=request.getfixturevalue("postgres_template"))
    yield url
    drop_database(url)


@pytest.fixture(params=MODES)
def storage(request, database_url):
    """The coordinator's storage; with "batched", the whole check runs inside one ``batch()`` block."""
    held = HeldTrialsStorage(open_storage(database_url))
    block = held.batch() if request.param == "batched" else contextlib.nullcontext()
    try:
        with block:
            yield held
    finally:
        held.backend.engine.dispose()


class TestHeldTrialsStorageConformance(StorageTestCase):
    """Every check of Optuna's shipped suite, none skipped or overridden."""


# ---------------------------------------------------------------- beyond the suite


def test_held_trials_listed_without_a_copy_are_not_changed_by_later_writes(storage):
    """Optuna's ``test_get_all_trials_not_modified`` for the trials this storage holds in memory
    (its own check re-reads them from the database, since its trials are created from templates)."""
    study_id = storage.create_new_study(directions=[StudyDirection.MINIMIZE])
    trial_ids = [storage.create_new_trial(study_id) for _ in range(2)]
    listed = storage.get_all_trials(study_id, deepcopy=False)
    snapshot = copy.deepcopy(listed)
    for trial_id in trial_ids:
        storage.set_trial_param(trial_id, "x", 0.5, FloatDistribution(0.0, 1.0))
        storage.set_trial_user_attr(trial_id, "user", 1)
        storage.set_trial_system_attr(trial_id, "system", 2)
        storage.set_trial_intermediate_value(trial_id, 0, 0.25)
    assert listed == snapshot
    now = storage.get_all_trials(study_id, deepcopy=False)
    assert [t.params for t in now] == [{"x": 0.5}] * 2
    assert [t.intermediate_values for t in now] == [{0: 0.25}] * 2
    storage.set_trial_state_values(trial_ids[0], TrialState.COMPLETE, [1.0])
    assert listed == snapshot


def test_batch_refused_for_a_trial_finished_elsewhere_shows_what_is_stored(database_url):
    held = HeldTrialsStorage(open_storage(database_url))
    other = RDBStorage(database_url)  # another process: a reaper
    try:
        study_id = held.create_new_study(directions=[StudyDirection.MINIMIZE])
        trial_id = held.create_new_trial(study_id)
        other.set_trial_state_values(trial_id, TrialState.FAIL)
        with pytest.raises(UpdateFinishedTrialError), held.batch():
            held.set_trial_user_attr(trial_id, "late", True)
            assert held.get_trial(trial_id).user_attrs == {"late": True}  # this storage's view, not yet written
        trial = held.get_trial(trial_id)
        assert trial.state == TrialState.FAIL and trial.user_attrs == {}
        assert held.get_all_trials(study_id)[0].state == TrialState.FAIL
    finally:
        held.backend.engine.dispose()
        other.engine.dispose()


def test_batch_refused_for_a_distribution_stored_elsewhere_shows_what_is_stored(database_url):
    held = HeldTrialsStorage(open_storage(database_url))
    other = RDBStorage(database_url)  # another driver of the same study, with another distribution of "x"
    try:
        study_id = held.create_new_study(directions=[StudyDirection.MINIMIZE])
        own = held.create_new_trial(study_id)
        theirs = other.create_new_trial(study_id)
        other.set_trial_param(theirs, "x", 0.5, FloatDistribution(0.0, 1.0))
        with pytest.raises(ValueError, match="distribution"), held.batch():
            held.set_trial_param(own, "x", 0, CategoricalDistribution(["a", "b"]))  # checked when written
        assert held.get_trial(own).params == {}
        held.set_trial_param(own, "x", 0.25, FloatDistribution(0.0, 1.0))  # the stored distribution is accepted
        assert held.get_trial(own).params == {"x": 0.25}
        assert {t.number: t.params for t in held.get_all_trials(study_id)} == {0: {"x": 0.25}, 1: {"x": 0.5}}
    finally:
        held.backend.engine.dispose()
        other.engine.dispose()

"""HeldTrialsStorage: the coordinator's cached view writes exactly what Optuna's own
storage would, in batches, and sees other processes' trials within RECHECK_SECONDS."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from sweeplab.search.held_storage import RECHECK_SECONDS, HeldTrialsStorage


@pytest.fixture
def url(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(storage=url, study_name="s", direction="maximize")
    return url


def _fresh(url: str, number: int) -> optuna.trial.FrozenTrial:
    """The trial as a new process reads it from the database."""
    return optuna.load_study(study_name="s", storage=RDBStorage(url)).trials[number]


def test_batched_writes_reach_the_database_exactly(url):
    held = HeldTrialsStorage(RDBStorage(url))
    study = optuna.load_study(study_name="s", storage=held)
    with held.batch():  # as the coordinator's ask: params and attrs in one transaction
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        opt = trial.suggest_categorical("opt", ["adam", "sgd"])
        trial.set_user_attr("lease", 1.0)
        trial.set_user_attr("root", 0)
        held.set_trial_system_attr(trial._trial_id, "grid_id", 3)
        assert _fresh(url, 0).params == {}  # deferred until the batch ends
    with held.batch():  # an existing key is updated (upsert), a new one inserted
        trial.set_user_attr("lease", 2.0)
        trial.set_user_attr("node", "n1")
        trial.set_user_attr("lease", 3.0)  # twice in one batch: the last write wins
    for step in range(1, 4):
        trial.report(0.1 * step, step)
    held.flush()

    stored = _fresh(url, 0)
    assert stored.params == {"x": x, "opt": opt}
    assert stored.distributions == {"x": FloatDistribution(0.0, 1.0), "opt": CategoricalDistribution(["adam", "sgd"])}
    assert stored.user_attrs == {"lease": 3.0, "root": 0, "node": "n1"}
    assert stored.system_attrs["grid_id"] == 3
    assert stored.intermediate_values == {1: pytest.approx(0.1), 2: pytest.approx(0.2), 3: pytest.approx(0.3)}
    assert held.get_trial(trial._trial_id).user_attrs == stored.user_attrs

    study.tell(trial, 0.5)
    assert _fresh(url, 0).state == TrialState.COMPLETE and _fresh(url, 0).value == 0.5


def test_write_to_a_trial_finished_elsewhere_raises_optunas_error(url):
    held = HeldTrialsStorage(RDBStorage(url))
    study = optuna.load_study(study_name="s", storage=held)
    trial = study.ask()
    RDBStorage(url).set_trial_state_values(trial._trial_id, TrialState.FAIL)  # e.g. a reaper in another process
    with pytest.raises(UpdateFinishedTrialError), held.batch():
        trial.set_user_attr("late", True)
    assert "late" not in _fresh(url, 0).user_attrs


def test_trials_of_other_processes_are_seen_within_the_recheck_interval(url):
    held = HeldTrialsStorage(RDBStorage(url))
    study = optuna.load_study(study_name="s", storage=held)
    study.tell(study.ask(), 1.0)
    assert len(study.get_trials()) == 1

    other = optuna.load_study(study_name="s", storage=RDBStorage(url))
    other.tell(other.ask(), 2.0)
    time.sleep(RECHECK_SECONDS + 0.05)
    trials = study.get_trials()
    assert [t.value for t in trials] == [1.0, 2.0]
    assert study.best_value == 2.0

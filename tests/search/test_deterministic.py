"""``deterministic: true``: a parallel study gives the same trials whatever order they finish in.

The objective (``jittered``) sleeps a random time from the OS each epoch, so the trials of
two runs finish in different orders; with ``deterministic: true`` the two runs must still
agree on every trial number's params, state, values and pruned epoch. The simulator shows
the schedule the rule imposes (a trial starts once the trial ``workers`` numbers before it
was told), where simulated time makes it exact.
"""

from __future__ import annotations

import shutil

import optuna
from mlflow.tracking import MlflowClient
from sweeplab_curves_kit import sim_spec, synthetic_table
from sweeplab_testkit import bowl_spec, run

from sweeplab.core.keys import ATTR_PRUNED_EPOCH
from sweeplab.search.simulated import simulate_study
from sweeplab.search.views import VisibleTrials, study_view

JITTERED = {"framework": "python", "callable": "sweeplab_test_objectives:jittered", "epochs": 4,
            "options": {"max_sleep": 0.25}}


def fresh_stores(templates, folder):
    folder.mkdir()
    shutil.copy(templates / "mlflow.db", folder / "mlflow.db")
    shutil.copy(templates / "optuna.db", folder / "optuna.db")
    return {"storage": f"sqlite:///{folder / 'optuna.db'}", "tracking": f"sqlite:///{folder / 'mlflow.db'}"}


def trials_of(stores, study="bowl"):
    """Per trial number: params, state, values, pruned epoch."""
    trials = optuna.load_study(study_name=study, storage=stores["storage"]).trials
    return {t.number: (sorted(t.params.items()), t.state.name, t.values, t.user_attrs.get(ATTR_PRUNED_EPOCH))
            for t in trials}


def deterministic_spec(**over):
    data = {"trials": 12, "workers": 3, "resources": {"cpu": 0.5}, "deterministic": True,
            "sampler": {"name": "tpe", "n_startup_trials": 4},
            "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1}, "objective": JITTERED}
    data.update(over)
    return bowl_spec(**data)


def test_a_deterministic_ray_study_gives_the_same_trials_whatever_order_they_finish_in(ray_local, store_templates,
                                                                                       tmp_path):
    spec = deterministic_spec()
    outcomes = []
    for name in ("first", "second"):
        stores = fresh_stores(store_templates, tmp_path / name)
        summary = run(spec, stores)
        assert summary.n_trials == 12
        outcomes.append(trials_of(stores))
        parent = MlflowClient(stores["tracking"]).get_run(summary.mlflow_parent_run_id)
        assert parent.data.params["deterministic"] == "True"
    first, second = outcomes
    assert sorted(first) == list(range(12))
    assert first == second
    states = [state for _, state, _, _ in first.values()]
    assert "PRUNED" in states and "COMPLETE" in states  # the pruner's decisions are part of what matched


def test_successive_halving_which_reads_running_trials_decides_the_same_with_a_lag(stores, store_templates,
                                                                                  tmp_path):
    """Successive halving reads the rungs of running trials too; a lag of 5 over 3 workers
    lets trials run ahead of the ones told, and the decisions still match."""
    spec = deterministic_spec(pruner={"name": "successive_halving", "min_resource": 1, "reduction_factor": 2},
                              deterministic={"lag": 5})
    run(spec, stores, executor="in-process")
    again = fresh_stores(store_templates, tmp_path / "again")
    run(spec, again, executor="in-process")
    first = trials_of(stores)
    second = trials_of(again)
    assert first == second
    assert any(state == "PRUNED" for _, state, _, _ in first.values())


def _waits_for_the_trial_workers_before(sim, workers):
    """True when every trial started once trials 0 .. n - workers had ended (simulated time)."""
    times = sim.times
    for n in sorted(times):
        if n >= workers:
            earlier = max(times[k].end for k in range(n - workers + 1))
            if times[n].start < earlier:
                return False
    return True


def test_on_the_simulator_a_trial_starts_only_once_the_trial_workers_numbers_before_it_was_told():
    table = synthetic_table()  # wider nets take longer: trials finish out of number order
    plain = simulate_study(sim_spec(trials=24, workers=3, sampler={"name": "tpe", "n_startup_trials": 4}), table)
    ordered = simulate_study(sim_spec(trials=24, workers=3, sampler={"name": "tpe", "n_startup_trials": 4},
                                      deterministic=True), table)
    # Without the rule a freed worker starts the next trial at once, so this schedule breaks
    # the rule (a fact of this table, in simulated time, not luck of timing).
    assert not _waits_for_the_trial_workers_before(plain, 3)
    assert _waits_for_the_trial_workers_before(ordered, 3)
    assert len(ordered.study.trials) == 24
    # ... and it costs simulated time: workers wait for the trial the rule waits on
    assert ordered.elapsed >= plain.elapsed


def test_with_a_lag_trials_run_ahead_of_the_ones_told_but_never_more_than_the_workers():
    table = synthetic_table()
    spec = sim_spec(trials=30, workers=3, sampler={"name": "tpe", "n_startup_trials": 4}, deterministic={"lag": 6})
    sim = simulate_study(spec, table)
    assert _waits_for_the_trial_workers_before(sim, 6)
    assert not _waits_for_the_trial_workers_before(sim, 3)  # it did not wait as long as lag 3 would
    times = sim.times.values()
    for t in times:  # at each start, at most `workers` trials run (this one included)
        assert sum(1 for o in times if o.start <= t.start < o.end) <= 3
    lag3 = simulate_study(sim_spec(trials=30, workers=3, sampler={"name": "tpe", "n_startup_trials": 4},
                                   deterministic=True), table)
    assert sim.elapsed <= lag3.elapsed


def test_a_view_shows_only_the_numbered_trials_to_get_trials_and_best_trial():
    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.9, 0.7, 0.1):
        study.tell(study.ask(), value)
    storage = study._storage
    view = study_view(study, storage, frozenset({0, 2, 3}))
    assert [t.number for t in view.get_trials()] == [0, 2, 3]
    assert view.best_trial.number == 2  # trial 1 (0.9) is not visible
    assert isinstance(view._storage, VisibleTrials)
    empty = study_view(study, storage, frozenset())
    assert empty.get_trials() == []


def test_a_stopped_deterministic_study_tells_the_trials_it_held_with_their_results():
    """Trials that ended out of turn are held; a stop tells them as they ended (not
    INTERRUPTED), and only the trials still running are interrupted."""
    import threading

    from sweeplab.search.coordinator import StudyCoordinator
    from sweeplab.search.loop import LoopSettings, TrialLoop
    from sweeplab.search.simulated import NoTracking, SimulatedExecutor
    from sweeplab.search.storage import PlainStudyStorage

    spec = sim_spec(trials=30, workers=3, sampler={"name": "random"}, deterministic=True)
    coordinator = StudyCoordinator(spec.to_dict(), "memory",
                                   study_storage=PlainStudyStorage(optuna.storages.InMemoryStorage()))
    executor = SimulatedExecutor(coordinator, synthetic_table())
    stop = threading.Event()
    loop = TrialLoop(coordinator, executor, NoTracking(),
                     LoopSettings(trials=30, workers=3, deadline=None, lease_seconds=1e9, check_exhausted=False,
                                  maximize=True, deterministic=True), finished=0, stop=stop)
    held_at_stop: list[int] = []
    collect = executor.collect

    def collect_then_stop_while_one_is_held(timeout: float):
        ended = collect(timeout)
        if loop._held and not stop.is_set():  # stop at the first moment a trial waits for its turn
            held_at_stop.extend(sorted(loop._held))
            stop.set()
        return ended

    executor.collect = collect_then_stop_while_one_is_held  # type: ignore[method-assign]
    result = loop.run()
    assert result.status == "KILLED"
    trials = {t.number: t for t in coordinator.study.trials}
    assert held_at_stop, "this table makes later trials end before earlier ones: some were held at the stop"
    for number in held_at_stop:
        assert trials[number].state == optuna.trial.TrialState.COMPLETE
    interrupted = [t for t in trials.values() if t.state == optuna.trial.TrialState.FAIL]
    assert interrupted and all("stopped" in t.user_attrs["sweeplab.fail_reason"] for t in interrupted)
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in trials.values())

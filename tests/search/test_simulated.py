"""The simulator: recorded tables (format, lookup) and the simulated executor under the real
coordinator, sampler, pruner and trial loop, in simulated time. Synthetic tables (nothing trained)."""

from __future__ import annotations

import json

import optuna
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sweeplab_curves_kit import SPACE, sim_spec, synthetic_table

from sweeplab.core.errors import Problem, SpecError
from sweeplab.search.coordinator import StudyCoordinator, trial_seed
from sweeplab.search.curves import CURVES_FORMAT, TableError, read_table, read_table_info, write_table
from sweeplab.search.loop import LoopSettings, TrialLoop
from sweeplab.search.simulated import NoTracking, SimulatedExecutor, simulate_study
from sweeplab.search.storage import PlainStudyStorage

MIXED_SPACE = {"units": [16, 128], "batch_norm": [True, False], "activation": ["relu", "tanh"],
               "dropout": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1}}


def local_coordinator(spec):
    storage = PlainStudyStorage(optuna.storages.InMemoryStorage())
    return StudyCoordinator(spec.to_dict(), "memory", study_storage=storage)


def run_enqueued(spec, table, params):
    """Run ``params`` (in this order) through the real loop on the simulated executor."""
    coordinator = local_coordinator(spec)
    for p in params:
        coordinator.study.enqueue_trial(p)
    executor = SimulatedExecutor(coordinator, table)
    settings = LoopSettings(trials=len(params), workers=spec.workers, deadline=None, lease_seconds=1e9,
                            check_exhausted=False, maximize=True)
    TrialLoop(coordinator, executor, NoTracking(), settings, finished=0).run()
    return coordinator.study, executor


# ---------------------------------------------------------------------- the table
def test_a_table_round_trips_through_parquet_with_its_schema_and_metadata(tmp_path):
    spec = sim_spec(space=MIXED_SPACE)

    def curve(params, seed):  # one configuration diverged when recorded
        if params["activation"] == "tanh" and params["units"] == 128 and not params["batch_norm"]:
            return [0.25, 0.5], [0.3, 0.2], "FAIL"
        return [0.5 + seed, 0.25, 0.125, 1.0], [0.1, 0.2, 0.4, 0.8 + params["dropout"] / 10], "COMPLETE"

    table = synthetic_table(spec, curve)
    path = write_table(table, tmp_path / "new" / "t.parquet")
    assert list(tmp_path.joinpath("new").iterdir()) == [path]  # nothing left beside it

    back = read_table(path)
    assert back.info == table.info and read_table_info(path) == table.info
    assert back.trials == table.trials
    assert {t.state for t in back.trials} == {"COMPLETE", "FAIL"}

    schema = pq.read_schema(path)
    assert {f.name: str(f.type) for f in schema} == {
        "config": "int32", "seed": "int64", "epoch": "int32", "seconds": "double", "state": "string",
        "reason": "string", "p.units": "int64", "p.batch_norm": "bool", "p.activation": "string",
        "p.dropout": "double", "m.val_accuracy": "double", "m.val_loss": "double"}
    meta = json.loads(schema.metadata[b"sweeplab.curves"])
    assert meta["format"] == CURVES_FORMAT == "sweeplab-curves/1"
    assert meta["space"] == json.loads(json.dumps(spec.space.to_dict()))
    assert meta["objective"] == spec.objective.to_dict() and meta["seeds"] == [0, 1]
    assert (meta["grid_size"], meta["n_configs"], meta["machine"]["cpu_count"]) == (32, 32, 1)
    rows = pq.read_table(path).to_pylist()
    assert len(rows) == sum(len(t.epochs) + 1 for t in table.trials)
    ends = [r for r in rows if r["epoch"] == 0]
    assert len(ends) == len(table.trials) and {r["state"] for r in ends} == {"COMPLETE", "FAIL"}
    assert all(r["state"] is None and r["reason"] is None for r in rows if r["epoch"] > 0)
    failed = next(r for r in ends if r["state"] == "FAIL")
    assert failed["reason"].startswith("FloatingPointError") and failed["m.val_accuracy"] is None


def test_what_is_not_a_table_is_refused_with_the_reason(tmp_path):
    with pytest.raises(TableError, match="does not exist; record one with `sweeplab bench record`") as missing:
        read_table(tmp_path / "none.parquet")
    assert missing.value.exit_code == 2
    text = tmp_path / "text.parquet"
    text.write_text("not parquet")
    with pytest.raises(TableError, match="is not a Parquet file"):
        read_table(text)
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), plain)
    with pytest.raises(TableError, match="not a sweeplab table of learning curves"):
        read_table(plain)
    older = tmp_path / "older.parquet"
    write_table(synthetic_table(), older)
    data = pq.read_table(older)
    meta = json.loads(data.schema.metadata[b"sweeplab.curves"])
    pq.write_table(data.replace_schema_metadata({b"sweeplab.curves": json.dumps({**meta, "format": "x/0"})}), older)
    with pytest.raises(TableError, match="format 'x/0', this sweeplab reads 'sweeplab-curves/1'"):
        read_table(older)


def test_lookup_is_exact_per_value_and_the_seed_picks_a_recorded_seed():
    table = synthetic_table()
    found = table.lookup({"units": 16, "learning_rate": 0.01, "dropout": 0.1 + 0.2}, seed=5)  # 0.30000000000000004
    assert (found.params, found.seed) == ({"units": 16, "learning_rate": 0.01, "dropout": 0.3}, 1)  # 5 % 2 -> seeds[1]
    assert table.lookup({"units": 16, "learning_rate": 0.01, "dropout": 0.3}, seed=4).seed == 0
    with pytest.raises(SpecError) as bad:
        table.lookup({"units": 32, "learning_rate": 0.02, "dropout": 0.0}, seed=0)
    assert bad.value.problems == [
        Problem("space.units", "value 32 was not recorded in the table synthetic; recorded values: 16, 128"),
        Problem("space.learning_rate", "value 0.02 was not recorded in the table synthetic; recorded values: "
                                       "0.001, 0.01, 0.1")]
    with pytest.raises(SpecError, match=r"space.dropout: the table synthetic varies `dropout` \(recorded: 0.0, 0.1, "
                                        r"0.2, 0.3\) but the trial has no value for it"):
        table.lookup({"units": 16, "learning_rate": 0.01}, seed=0)
    sample = synthetic_table(keep=lambda i: i % 3 != 0)  # every value recorded, not every combination
    assert sample.info.n_configs == 16 and not sample.info.complete
    with pytest.raises(SpecError, match=r"configuration units=16, learning_rate=0.001, dropout=0.0 was not recorded "
                                        r"in the table synthetic \(it holds 16 of the space's 24 configurations\)"):
        sample.lookup({"units": 16, "learning_rate": 0.001, "dropout": 0.0}, seed=0)


# ---------------------------------------------------------------------- simulated time
def epochs_by_units(seconds_16, seconds_128, values=None):
    def curve(params, seed):
        each = seconds_16 if params["units"] == 16 else seconds_128
        curve_values = values(params) if values is not None else [0.2, 0.4, 0.6, 0.8]
        return [each] * 4, curve_values, "COMPLETE"

    return curve


def test_a_trial_with_shorter_epochs_started_later_finishes_first_and_reports_at_simulated_times():
    spec = sim_spec(workers=2)
    table = synthetic_table(spec, epochs_by_units(1.0, 3.0))  # + 0.5 s after the last epoch
    coordinator = local_coordinator(spec)
    coordinator.study.enqueue_trial({"units": 128, "learning_rate": 0.01, "dropout": 0.0})
    coordinator.study.enqueue_trial({"units": 16, "learning_rate": 0.01, "dropout": 0.0})
    executor = SimulatedExecutor(coordinator, table)
    slow, fast = coordinator.ask(), coordinator.ask()
    executor.start(slow)
    executor.start(fast)
    assert executor.in_flight() == 2

    [(ticket, outcome)] = executor.collect(timeout=0)
    assert ticket.number == fast.number and outcome.state == "COMPLETE"
    assert executor.now == 4.5 and (outcome.started_at, outcome.duration) == (0.0, 4.5)
    assert outcome.metrics == {"val_accuracy": 0.8, "val_loss": pytest.approx(0.2)}
    # the slow trial has reported its first epoch (at 3 s) by then, and only that one
    assert coordinator.study.trials[slow.number].intermediate_values == {1: 0.2}
    record = coordinator.tell(outcome)
    assert [(epoch, at) for epoch, at, _ in record.history] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]

    [(ticket, outcome)] = executor.collect(timeout=0)
    assert ticket.number == slow.number and executor.now == 12.5 and outcome.duration == 12.5
    assert [(epoch, at) for epoch, at, _ in coordinator.tell(outcome).history] == [(1, 3.0), (2, 6.0), (3, 9.0),
                                                                                   (4, 12.0)]
    assert executor.in_flight() == 0 and executor.collect(timeout=0) == []
    assert list(executor.times) == [fast.number, slow.number]


def test_workers_run_at_once_and_trials_end_in_simulated_time_order():
    spec = sim_spec(trials=30, workers=3, seed=3)
    table = synthetic_table(spec)
    sim = simulate_study(spec, table)
    times = sim.times
    assert sim.loop.status == "FINISHED" and len(times) == 30
    assert list(times) == sorted(times, key=lambda n: (times[n].end, n))  # told in the order they ended
    spans = list(times.values())
    for t in spans:  # never more than `workers` in flight
        assert sum(1 for o in spans if o.start <= t.start < o.end) <= 3
    ends = {t.end for t in spans}
    assert sorted(t.start for t in spans)[:3] == [0.0, 0.0, 0.0]
    assert all(t.start in ends for t in spans if t.start > 0)  # a freed worker starts the next trial at once
    assert any(a.start < b.start and b.end < a.end for a in spans for b in spans)  # later but shorter ends first
    assert sim.elapsed == max(ends)
    for trial in sim.study.trials:  # each trial takes the time its configuration took when recorded
        recorded = table.lookup(trial.params, trial_seed(spec.seed, trial.number))
        assert times[trial.number].end - times[trial.number].start == pytest.approx(recorded.seconds)
        assert trial.value == recorded.result["val_accuracy"]


def test_the_pruner_decides_with_the_trials_finished_so_far_in_simulated_time():
    """The same two configurations, the same curves: a bad trial is pruned at its first epoch when a
    good one finished before that epoch ended, and runs to the end when the good one is still running."""
    good = {"units": 16, "learning_rate": 0.01, "dropout": 0.0}
    bad = {"units": 128, "learning_rate": 0.01, "dropout": 0.0}

    def values(params):
        return [0.8, 0.85, 0.9, 0.95] if params["units"] == 16 else [0.3, 0.35, 0.4, 0.45]

    spec = sim_spec(workers=2, pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0})
    good_fast = synthetic_table(spec, epochs_by_units(1.0, 10.0, values))
    study, executor = run_enqueued(spec, good_fast, [good, bad])
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    assert study.trials[1].user_attrs["sweeplab.pruned_at_epoch"] == 1
    assert (executor.times[0].end, executor.times[1].end) == (4.5, 10.0)  # pruned when its first epoch ended

    good_slow = synthetic_table(spec, epochs_by_units(10.0, 1.0, values))
    study, executor = run_enqueued(spec, good_slow, [good, bad])
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert executor.times[1].end == 4.5 < executor.times[0].end == 40.5


def test_the_same_spec_and_table_give_the_same_study_bit_for_bit():
    spec = sim_spec(trials=40, workers=4, seed=11, sampler={"name": "tpe", "n_startup_trials": 5},
                    pruner={"name": "median", "n_startup_trials": 3})

    def digest(sim):
        trials = [(t.number, t.params, t.state.name, t.values, t.intermediate_values,
                   t.user_attrs.get("sweeplab.pruned_at_epoch")) for t in sim.study.trials]
        return trials, dict(sim.times), sim.elapsed

    table = synthetic_table(spec)
    first = simulate_study(spec, table)
    assert digest(first) == digest(simulate_study(spec, table))
    states = [t.state.name for t in first.study.trials]
    assert len(states) == 40 and "PRUNED" in states and "COMPLETE" in states
    other = simulate_study(sim_spec(trials=40, workers=4, seed=12, sampler={"name": "tpe", "n_startup_trials": 5},
                                    pruner={"name": "median", "n_startup_trials": 3}), table)
    assert digest(other)[0] != digest(first)[0]


def test_a_spec_the_table_cannot_answer_is_refused_naming_the_parameter_and_the_recorded_values():
    table = synthetic_table()
    with pytest.raises(SpecError) as bad:
        simulate_study(sim_spec(timeout=60, metric="test_accuracy", objective={"dataset": {"name": "iris"},
                                                                               "epochs": 5},
                                space={"units": [16, 32], "learning_rate": {"type": "float", "low": 0.001,
                                                                            "high": 0.1},
                                       "batch_norm": [True, False]}), table)
    assert set(bad.value.problems) == {
        Problem("objective.epochs", "the table synthetic was recorded with epochs: 4, the spec has 5; a simulated "
                                    "study replays the recorded training: leave `objective` out (it is the table's) "
                                    "or set epochs to the table's"),
        Problem("timeout", "a simulated study runs on a simulated clock, so a timeout in wall seconds does not apply; "
                           "remove it"),
        Problem("metric", "`test_accuracy` was not recorded in the table synthetic; recorded metrics: val_accuracy, "
                          "val_loss"),
        Problem("space.dropout", "the table synthetic varies `dropout` (recorded: 0.0, 0.1, 0.2, 0.3); the space must "
                                 "search it or fix it to one of those values"),
        Problem("space.units", "value 32 was not recorded in the table synthetic; recorded values: 16, 128"),
        Problem("space.learning_rate", "a continuous float range cannot be simulated: the table synthetic recorded "
                                       "0.001, 0.01, 0.1; make it categorical with those values"),
        Problem("space.batch_norm", "`batch_norm` is not a parameter of the table synthetic (it recorded units, "
                                    "learning_rate, dropout); remove it"),
    }
    fixed = simulate_study(sim_spec(trials=4, space={**SPACE, "units": 128}), table)  # a fixed recorded value
    assert [t.state.name for t in fixed.study.trials] == ["COMPLETE"] * 4
    assert all(t.value == table.lookup({**t.params, "units": 128}, trial_seed(0, t.number)).result["val_accuracy"]
               for t in fixed.study.trials)
    with pytest.raises(SpecError, match=r"was not recorded in the table synthetic \(it holds 16 of the space's 24"):
        simulate_study(sim_spec(trials=24), synthetic_table(keep=lambda i: i % 3 != 0))

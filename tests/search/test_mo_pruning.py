"""mo_successive_halving: two-objective studies pruned on non-dominated rank at each rung.

An in-process study (the real coordinator and loop) with an objective whose two metrics
trade off through ``x`` and both grow with ``q``, and a simulated study on the shipped
``digits`` table (val_accuracy up, val_loss down): trials are pruned, and every trial
pruned at a rung was dominated there by a vector another trial recorded at that rung.
"""

from __future__ import annotations

import optuna
from sweeplab_testkit import bowl_spec, run

from sweeplab.bench.simulate import resolve_table
from sweeplab.core.keys import ATTR_MO_RUNGS, ATTR_PRUNED_EPOCH
from sweeplab.core.pareto import ParetoHalving, dominates
from sweeplab.search.curves import read_table
from sweeplab.search.simulated import simulate_study
from sweeplab.spec import parse_spec

DEFAULTS = ParetoHalving(min_resource=1, reduction_factor=2, min_early_stopping_rate=0, bootstrap_count=0)
TRADEOFF = {"framework": "python", "callable": "sweeplab_test_objectives:tradeoff", "epochs": 4}


def check_pruned_were_dominated(trials, maximize, halving):
    """Every pruned trial was dominated at the rung it was pruned at; returns how many were pruned."""
    rungs = {t.number: t.user_attrs.get(ATTR_MO_RUNGS, {}) for t in trials}
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    for t in pruned:
        mine = rungs[t.number]
        last = str(len(mine) - 1)
        assert halving.rung_step(int(last)) == t.user_attrs[ATTR_PRUNED_EPOCH]
        others = [r[last] for n, r in rungs.items() if n != t.number and last in r]
        assert any(dominates(o, mine[last], maximize) for o in others), (t.number, mine[last], others)
    return len(pruned)


def test_an_in_process_two_objective_study_prunes_only_dominated_trials(stores):
    spec = bowl_spec(direction=["maximize", "maximize"], metric=["a", "b"], trials=16, workers=2,
                     sampler={"name": "random"}, objective=TRADEOFF,
                     pruner={"name": "mo_successive_halving"},  # rungs at epochs 1, 2, 4; keep half
                     space={"x": {"type": "float", "low": 0.0, "high": 1.0},
                            "q": {"type": "float", "low": 0.0, "high": 1.0}})
    summary = run(spec, stores, executor="in-process")
    trials = optuna.load_study(study_name="bowl", storage=stores["storage"]).trials
    pruned = check_pruned_were_dominated(trials, (True, True), DEFAULTS)
    assert summary.n_pruned == pruned >= 3 and summary.n_complete == 16 - pruned
    # trials that went the distance recorded every rung (epochs 1, 2, 4); pruned ones stopped at one
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert sorted(t.user_attrs[ATTR_MO_RUNGS]) == ["0", "1", "2"]
        else:
            assert t.user_attrs[ATTR_PRUNED_EPOCH] in (1, 2, 4)


def digits_spec(**over):
    table = read_table(resolve_table("digits"))
    data = {"study": "mo-digits", "direction": ["maximize", "minimize"], "metric": ["val_accuracy", "val_loss"],
            "trials": 40, "workers": 4, "seed": 3, "sampler": {"name": "random"},
            "pruner": {"name": "mo_successive_halving"}, "objective": table.info.objective,
            "space": table.info.space}
    data.update(over)
    return parse_spec(data), table


def test_a_simulated_two_objective_study_prunes_dominated_trials_and_saves_epochs():
    spec, table = digits_spec()
    sim = simulate_study(spec, table)
    trials = sim.study.trials
    pruned = check_pruned_were_dominated(trials, (True, False), DEFAULTS)
    assert pruned >= 10
    # the same study without pruning trains every recorded epoch of every trial; pruning
    # stopped a good share of them
    full = simulate_study(digits_spec(pruner={"name": "none"})[0], table)
    assert sum(t.epochs for t in sim.times.values()) < 0.7 * sum(t.epochs for t in full.times.values())
    # the trials both asked alike (random sampler, same seed) and that completed here have the same values
    same = {t.number: t.values for t in full.study.trials}
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.values == same[t.number]


def test_a_deterministic_simulated_two_objective_study_decides_against_the_trials_finished_when_asked():
    spec, table = digits_spec(deterministic=True)
    sim = simulate_study(spec, table)
    trials = sim.study.trials
    assert check_pruned_were_dominated(trials, (True, False), DEFAULTS) >= 5
    # Each pruned trial's dominating vector came from a trial that had ended before it started.
    rungs = {t.number: t.user_attrs.get(ATTR_MO_RUNGS, {}) for t in trials}
    for t in trials:
        if t.state != optuna.trial.TrialState.PRUNED:
            continue
        last = str(len(rungs[t.number]) - 1)
        seen = [rungs[n][last] for n in rungs
                if last in rungs[n] and n != t.number and sim.times[n].end <= sim.times[t.number].start]
        assert any(dominates(o, rungs[t.number][last], (True, False)) for o in seen)

"""Figure 5: search efficiency, median over seeds.

Objective: real training, not a surrogate. sweeplab's PyTorch MLP objective
(``TorchMLPObjective``, 1 thread) on the seed's data (make_classification 1000 x 20,
3 classes, n_informative 5; the same split as a study) over the guide's space, with few
epochs so that hundreds of trials fit the budget. The search runs in process with
sweeplab's own sampler and pruner builders (``build_sampler`` / ``build_pruner``, so
TPE is multivariate as in a study) on Optuna's in-memory storage, one trial at a time;
this figure is about the algorithms, figures 1-3 and 6 about the service.

a) TPE vs random (``EPOCHS_A`` epochs per trial): trials until the best validation accuracy reaches a target, per seed
   (a seed that never reaches it counts as budget + 1). The target is fixed from the
   pooled random-search results: the accuracy that only the best ``TARGET_TOP`` of random
   trials reach (stated in the details). Figure: median(TPE) / median(random).
b) Pruning (``EPOCHS_B`` epochs per trial, the seed example's training length): epochs
   trained by a TPE study without pruning over epochs trained with the median (and the
   hyperband) pruner, same number of trials and seeds, and the best accuracy of each
   (median over seeds) - saved compute counts only if the best accuracy is within 0.5
   points of no pruning. Median: 5 startup trials, 2 warm-up epochs; hyperband:
   Optuna's defaults.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

import common

EPOCHS_A = 10
EPOCHS_B = 20
TARGET_TOP = 0.03
_DATA: dict[str, Any] = {}


def _spec(sampler: str, pruner: dict[str, Any], seed: int, trials: int, epochs: int) -> Any:
    from bench_costs import mlp_spec_dict

    from sweeplab.spec import parse_spec

    return parse_spec(mlp_spec_dict("search", trials, epochs=epochs, workers=1, pruner=pruner,
                                    sampler={"name": sampler}, seed=seed))


def run_job(job: tuple[str, dict[str, Any], int, int, int]) -> dict[str, Any]:
    """One study: (sampler, pruner, seed, trials, epochs) -> per-trial values and epochs trained."""
    sampler_name, pruner, seed, trials, epochs = job
    common.setup_env()
    common.quiet_logs()
    import optuna

    from sweeplab.objectives.base import TrialContext, TrialPruned
    from sweeplab.objectives.torch_mlp import TorchMLPObjective
    from sweeplab.search.samplers import build_pruner, build_sampler
    from sweeplab.study.run import load_study_dataset

    spec = _spec(sampler_name, pruner, seed, trials, epochs)
    if "data" not in _DATA:
        _DATA["data"] = load_study_dataset(spec)
    data = _DATA["data"]
    # A fixed name: Hyperband assigns each trial's bracket from a hash of the study name and the
    # trial number, so Optuna's random default name would make figure 5b differ between runs.
    study = optuna.create_study(study_name=f"search-{sampler_name}-{pruner['name']}-s{seed}", direction="maximize",
                                sampler=build_sampler(spec), pruner=build_pruner(spec))
    objective = TorchMLPObjective()

    class Reporter:
        def __init__(self, trial: optuna.Trial) -> None:
            self.trial = trial
            self.epochs = 0

        def report(self, epoch: int, metrics: dict[str, float]) -> None:
            self.epochs = epoch
            self.trial.report(float(metrics["val_accuracy"]), epoch)
            if self.trial.should_prune():
                raise TrialPruned(epoch)

    values: list[float | None] = []
    epochs: list[int] = []
    for number in range(trials):
        trial = study.ask()
        params = spec.space.resolve(spec.space.suggest(trial))
        reporter = Reporter(trial)
        ctx = TrialContext(params=params, dataset=data, seed=seed * 1000 + number, reporter=reporter,
                           settings=spec.objective, cpus=1.0, trial_number=number)
        try:
            value = float(objective.run(ctx)["val_accuracy"])
            study.tell(trial, value)
            values.append(value)
        except TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            values.append(None)
        except Exception:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            values.append(None)
        epochs.append(reporter.epochs)
    return {"job": job, "values": values, "epochs": epochs}


def trials_to_target(values: list[float | None], target: float) -> int:
    for i, v in enumerate(values):
        if v is not None and v >= target - 1e-12:
            return i + 1
    return len(values) + 1


def best(values: list[float | None]) -> float:
    done = [v for v in values if v is not None]
    return max(done) if done else float("nan")


def main(args: Any) -> list[dict[str, Any]]:
    seeds = list(range(3 if args.quick else 9))
    budget = 20 if args.quick else 40
    prune_trials = 16 if args.quick else 30
    nopr = {"name": "none"}
    median = {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 2}
    hyper = {"name": "hyperband"}
    jobs: list[tuple[str, dict[str, Any], int, int, int]] = []
    jobs += [("random", nopr, s, budget, EPOCHS_A) for s in seeds]
    jobs += [("tpe", nopr, s, budget, EPOCHS_A) for s in seeds]
    for pruner in (nopr, median, hyper):
        jobs += [("tpe", pruner, s, prune_trials, EPOCHS_B) for s in seeds]
    common.log(f"search efficiency: {len(jobs)} studies on 2 processes")
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(run_job, jobs, chunksize=1)
    by: dict[tuple[str, str, int], dict[int, dict[str, Any]]] = {}
    for r in results:
        sampler, pruner, seed, _, epochs = r["job"]
        by.setdefault((sampler, pruner["name"], epochs), {})[seed] = r

    # a) TPE vs random
    random_runs, tpe_runs = by[("random", "none", EPOCHS_A)], by[("tpe", "none", EPOCHS_A)]
    pooled = sorted(v for r in random_runs.values() for v in r["values"] if v is not None)
    target = pooled[min(len(pooled) - 1, int((1 - TARGET_TOP) * len(pooled)))]
    t_random = [trials_to_target(random_runs[s]["values"], target) for s in seeds]
    t_tpe = [trials_to_target(tpe_runs[s]["values"], target) for s in seeds]
    ratio = common.median(t_tpe) / common.median(t_random)
    details_a = (f"target val_accuracy {target:.3f} (top {TARGET_TOP:.0%} of {len(pooled)} random trials); "
                 f"trials to target per seed: TPE {t_tpe}, random {t_random} (budget {budget}, {budget + 1} = "
                 f"not reached); best: TPE {[round(best(tpe_runs[s]['values']), 3) for s in seeds]}, "
                 f"random {[round(best(random_runs[s]['values']), 3) for s in seeds]}")

    # b) pruning: same sampler, seeds and number of trials with and without a pruner
    # (TPE's sequence diverges once pruning changes what it learns).
    def stats(key: tuple[str, str, int]) -> tuple[float, float]:
        ep = [sum(by[key][s]["epochs"]) for s in seeds]
        bs = [best(by[key][s]["values"]) for s in seeds]
        return common.median(ep), common.median(bs)

    ep_none, best_none = stats(("tpe", "none", EPOCHS_B))
    details_a += f"; {EPOCHS_A} epochs per trial"
    rows = [common.row("5a. TPE trials to target / random search", ratio, "x", "<= 0.7x", ratio <= 0.7, details_a)]
    for label, key in (("median", ("tpe", "median", EPOCHS_B)), ("hyperband", ("tpe", "hyperband", EPOCHS_B))):
        ep, b = stats(key)
        saved = ep_none / ep
        delta = (b - best_none) * 100
        met = saved >= 2.0 and delta >= -0.5
        rows.append(common.row(f"5b. compute saved by {label} pruning (epochs, none / {label})", saved, "x",
                               ">= 2x at best acc. within 0.5 pt", met,
                               f"{prune_trials} TPE trials x {EPOCHS_B} epochs, median of {len(seeds)} seeds: epochs "
                               f"{ep_none:.0f} -> {ep:.0f}; best val_accuracy {best_none:.3f} -> {b:.3f} "
                               f"({delta:+.1f} pt)"))
    return rows


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    common.cli(main)

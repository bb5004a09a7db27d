"""Defaults chosen by evidence: samplers x pruners x workers x seeds on every shipped table (not a timed test).

Every cell is a simulated study (:mod:`sweeplab.search.simulated`: the real coordinator,
sampler, pruner and trial loop replayed on a recorded table, in simulated time) of
``TRIALS`` trials, fail-fast off (the diverging configurations of ``diabetes`` would
otherwise stop some studies early). Grid: the ``SAMPLERS`` (TPE univariate and
multivariate, GP, CMA-ES, QMC, random) x the ``PRUNERS`` (none, median, percentile,
successive halving, hyperband, wilcoxon; each with the registry's defaults) x
``WORKERS`` x ``SEEDS`` seeds x every shipped table. GP asks cost about half a second
each once it models (about 25 s for one 40-trial study without pruning against 0.1-0.4 s
for the others), so GP runs on a subset: ``GP_WORKERS``, ``GP_PRUNERS`` and the first
``GP_SEEDS`` seeds. Wilcoxon likewise (``WILCOXON_WORKERS``, ``WILCOXON_SEEDS``): each of its
decisions runs scipy's exact signed-rank test, about 4 CPU seconds per study, and its steps
are meant to be instances (folds, batches), not epochs.

What is measured (:mod:`sweeplab.bench.evidence`): per table, the target is the value the
best 3 % of the table's recorded trials reach (a random trial draws one of them
uniformly); per cell, the trials, epochs and simulated seconds spent until the first
complete trial at the target (a cell that never reaches it counts as worse than any that
does), and the best value. Per (sampler, pruner, workers) and table: medians over seeds
with the interquartile range, each relative to random search without pruning at the
same workers (ratio of medians), and the best value against the same sampler without
pruning, in points (accuracy: 100 x the difference; ``val_mae``: the difference in % of
the no-pruning best; positive is better). Across tables: the median of the per-table
ratios, with the range over tables.

Variants (``VARIANT_SAMPLERS``, ``VARIANT_PRUNERS``, ``VARIANT_CELLS``): labelled options of
TPE and the pruners, run on ``VARIANT_TABLES`` (where the target is rare) at
``VARIANT_WORKERS`` (1 and 4), every seed; auto's options were chosen among them. Because a
choice among many cells on one set of seeds favours a lucky one, ``HOLDOUT_CELLS`` run again
on seeds ``HOLDOUT_SEEDS`` (20-39), summarized apart.

``sampler: auto`` / ``pruner: auto`` (:mod:`sweeplab.registry.search`) are resolved for
each workers count (the cell whose options resolve to the same as auto's) and their cells
checked against issue 14's targets: trials to target <= 0.6x random search, compute
(epochs) to target <= 0.4x with pruning, best value within 0.5 points of no pruning
(medians over seeds, across tables).

Writes ``benchmarks/results/defaults.md``, ``defaults.json`` (every cell's per-seed
figures) and ``defaults.html`` (plots). ``make bench-defaults`` or
``nice python benchmarks/bench_defaults.py [--processes 2] [--quick] [--from-json] [--extend]``
(``--from-json`` rebuilds the report from ``defaults.json`` without simulating; ``--extend``
keeps its cells and simulates only the jobs it lacks, and the report lists both runs).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
TRIALS = 40
SEEDS = 20
WORKERS = (1, 4, 16, 64)
SAMPLERS: dict[str, dict[str, Any]] = {
    "random": {"name": "random"},
    "tpe-uni": {"name": "tpe", "multivariate": False},
    "tpe-multi": {"name": "tpe", "multivariate": True},
    "gp": {"name": "gp"},
    "cmaes": {"name": "cmaes", "warn_independent_sampling": False},
    "qmc": {"name": "qmc", "warn_independent_sampling": False, "warn_asynchronous_seeding": False},
}
PRUNERS: dict[str, dict[str, Any]] = {
    "none": {"name": "none"},
    "median": {"name": "median"},
    "percentile": {"name": "percentile"},
    "successive_halving": {"name": "successive_halving"},
    "hyperband": {"name": "hyperband"},
    "wilcoxon": {"name": "wilcoxon"},
}
GP_WORKERS = (4,)
GP_SEEDS = 5
GP_PRUNERS = ("none", "median", "hyperband")
# Wilcoxon's steps are instances (folds, batches), not epochs, and each of its decisions runs
# scipy's exact test: about 4 CPU seconds per study, 40x the others; it runs on a subset too
WILCOXON_WORKERS = (4,)
WILCOXON_SEEDS = 5
# the lead's question for issue 12: epochs hyperband saves against no pruning with TPE, 2 workers
EXTRA_TABLES = ("digits", "make_classification")
EXTRA_WORKERS = 2
# Variants: the grid's samplers and pruners with other options, to choose auto's options against issue
# 14's targets. They run on the tables where the target is rare and at workers 1 (where the targets are
# judged) and 4 only (VARIANT_TABLES, VARIANT_WORKERS), every seed; VARIANT_CELLS lists the (sampler,
# pruner) pairs, each sampler with `none` too (a pruner's best value is compared with its sampler unpruned),
# and the workers they run at.
VARIANT_SAMPLERS: dict[str, dict[str, Any]] = {
    f"tpe-multi-s{n}": {"name": "tpe", "multivariate": True, "n_startup_trials": n} for n in (4, 5, 6, 8)
}
VARIANT_PRUNERS: dict[str, dict[str, Any]] = {
    "median-s10": {"name": "median", "n_startup_trials": 10},
    "median-w2": {"name": "median", "n_warmup_steps": 2},
    "median-w3": {"name": "median", "n_warmup_steps": 3},
    "median-w4": {"name": "median", "n_warmup_steps": 4},
    "median-s10-w2": {"name": "median", "n_startup_trials": 10, "n_warmup_steps": 2},
    "median-w3-s10": {"name": "median", "n_warmup_steps": 3, "n_startup_trials": 10},
    "percentile-s10-w2": {"name": "percentile", "n_startup_trials": 10, "n_warmup_steps": 2},
    "hyperband-min2": {"name": "hyperband", "min_resource": 2},
    "hyperband-min3": {"name": "hyperband", "min_resource": 3},
    "hyperband-rf2": {"name": "hyperband", "reduction_factor": 2},
    "hyperband-rf4": {"name": "hyperband", "reduction_factor": 4},
    "sh-min2": {"name": "successive_halving", "min_resource": 2},
    "sh-min3": {"name": "successive_halving", "min_resource": 3},
    "sh-esr1": {"name": "successive_halving", "min_early_stopping_rate": 1},
    "sh-min2-esr1": {"name": "successive_halving", "min_resource": 2, "min_early_stopping_rate": 1},
    "sh-rf3-esr1": {"name": "successive_halving", "reduction_factor": 3, "min_early_stopping_rate": 1},
    "sh-rf3-min2": {"name": "successive_halving", "reduction_factor": 3, "min_resource": 2},
    "sh-rf2-esr2": {"name": "successive_halving", "reduction_factor": 2, "min_early_stopping_rate": 2},
}
VARIANT_TABLES = ("diabetes", "digits", "make_classification")
VARIANT_WORKERS = (1, 4)
_S5_ONLY = ("sh-rf3-min2", "sh-rf2-esr2", "median-w3-s10")  # tried with TPE-5 alone, late in the search
_BOTH_TPE = ("median", "hyperband", "successive_halving", *(p for p in VARIANT_PRUNERS if p not in _S5_ONLY))
VARIANT_CELLS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    *((s, "none", VARIANT_WORKERS) for s in VARIANT_SAMPLERS),
    *((s, p, VARIANT_WORKERS) for s in ("tpe-multi-s5", "tpe-multi-s6") for p in _BOTH_TPE),
    *(("tpe-multi-s5", p, VARIANT_WORKERS) for p in _S5_ONLY),
    # what auto resolves to, at the grid's other worker counts too (the report's auto table)
    ("tpe-multi-s5", "none", (16, 64)), ("tpe-multi-s5", "sh-esr1", (16, 64)),
)
ALL_SAMPLERS = {**SAMPLERS, **VARIANT_SAMPLERS}
ALL_PRUNERS = {**PRUNERS, **VARIANT_PRUNERS}
# Held-out seeds: the variants were chosen on seeds 0-19, so the finalists, auto's choice and the
# references run again on seeds 20-39 (HOLDOUT_SEEDS, a half-open range) of the same tables and workers:
# a check that the choice is not one lucky draw of seeds. Reported apart, never mixed into the medians.
HOLDOUT_SEEDS = (20, 40)
HOLDOUT_CELLS = (("random", "none"), ("tpe-multi", "none"), ("tpe-multi", "hyperband"), ("tpe-multi-s5", "none"),
                 ("tpe-multi-s6", "none"), ("tpe-multi-s5", "median-w3"), ("tpe-multi-s5", "median-w4"),
                 ("tpe-multi-s5", "sh-esr1"), ("tpe-multi-s5", "sh-min3"), ("tpe-multi-s5", "hyperband-min2"),
                 ("tpe-multi-s5", "sh-rf2-esr2"), ("tpe-multi-s6", "median-w3"))
TRIALS_TARGET, COMPUTE_TARGET, POINTS_TARGET = 0.6, 0.4, 0.5
RARE_SHARE = 0.1  # tables whose target more than this share of random trials reach are left out of the medians

Job = tuple[str, str, str, int, tuple[int, ...]]  # table, sampler label, pruner label, workers, seeds
_TABLES: dict[str, Any] = {}


def metric_of(task: str) -> tuple[str, str]:
    """The metric and direction a table's studies optimize."""
    return ("val_mae", "minimize") if task == "regression" else ("val_accuracy", "maximize")


def _table(name: str) -> Any:
    if name not in _TABLES:
        from sweeplab.bench.simulate import resolve_table
        from sweeplab.search.curves import read_table

        _TABLES[name] = read_table(resolve_table(name))
    return _TABLES[name]


def target_of(name: str) -> dict[str, Any]:
    from sweeplab.bench.evidence import TARGET_TOP, table_target, target_share

    table = _table(name)
    metric, direction = metric_of(str(table.info.objective.get("task")))
    target = table_target(table, metric, direction)
    return {"metric": metric, "direction": direction, "target": target, "top": TARGET_TOP,
            "share": target_share(table, metric, direction, target), "recorded": len(table.trials)}


def run_job(job: Job) -> dict[str, Any]:
    """One (table, sampler, pruner, workers) over its seeds: each seed's outcome."""
    import warnings

    import optuna

    from sweeplab.bench.evidence import run_cell
    from sweeplab.spec import parse_spec

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    name, sampler, pruner, workers, seeds = job
    table = _table(name)
    t = target_of(name)
    started = time.perf_counter()
    outcomes = []
    for seed in seeds:
        spec = parse_spec({"study": f"{name}.{sampler}.{pruner}.w{workers}.s{seed}", "metric": t["metric"],
                           "direction": t["direction"], "trials": TRIALS, "workers": workers, "seed": seed,
                           "sampler": ALL_SAMPLERS[sampler], "pruner": ALL_PRUNERS[pruner],
                           "objective": dict(table.info.objective), "space": dict(table.info.space)})
        outcomes.append(run_cell(spec, table, t["target"]).to_dict())
    keys = ("trials", "epochs", "time_s", "best", "total_epochs", "total_time_s", "pruned", "failed")
    return {"table": name, "sampler": sampler, "pruner": pruner, "workers": workers, "seeds": list(seeds),
            "wall_s": round(time.perf_counter() - started, 2), **{k: [o[k] for o in outcomes] for k in keys}}


def jobs_of(tables: Sequence[str], seeds: int, gp_seeds: int) -> list[Job]:
    jobs: list[Job] = []
    for name in tables:
        for sampler in SAMPLERS:
            for workers in WORKERS:
                if sampler == "gp" and workers not in GP_WORKERS:
                    continue
                for pruner in PRUNERS:
                    if ((sampler == "gp" and pruner not in GP_PRUNERS)
                            or (pruner == "wilcoxon" and workers not in WILCOXON_WORKERS)):
                        continue
                    n = min(gp_seeds if sampler == "gp" else seeds, WILCOXON_SEEDS if pruner == "wilcoxon" else seeds)
                    jobs.append((name, sampler, pruner, workers, tuple(range(n))))
    for name in EXTRA_TABLES:
        if name in tables:
            jobs.extend((name, "tpe-multi", p, EXTRA_WORKERS, tuple(range(seeds))) for p in ("none", "hyperband"))
    jobs.extend((name, sampler, pruner, workers, tuple(range(seeds))) for sampler, pruner, at in VARIANT_CELLS
                for workers in at for name in VARIANT_TABLES if name in tables
                and (name, sampler, pruner, workers, tuple(range(seeds))) not in jobs)
    if seeds == SEEDS:
        jobs.extend((name, sampler, pruner, workers, tuple(range(*HOLDOUT_SEEDS))) for sampler, pruner in HOLDOUT_CELLS
                    for workers in VARIANT_WORKERS for name in VARIANT_TABLES if name in tables)
    # the most telling cells first, so that a run stopped early (a busy machine) has them: the
    # tables where the target is rare, the worker count of most studies (4), the lead's question
    # (2 workers), 1 worker, then 16 and 64; the tables where random search reaches the target at
    # once after those; GP last
    rare = ("digits", "make_classification", "diabetes")
    order_w = {w: i for i, w in enumerate((4, EXTRA_WORKERS, 1, 16, 64))}
    jobs.sort(key=lambda j: (j[1] == "gp", j[0] not in rare, j[2] == "wilcoxon", order_w[j[3]],
                             rare.index(j[0]) if j[0] in rare else 0, list(ALL_SAMPLERS).index(j[1])))
    return jobs


# ---------------------------------------------------------------------- summary
def _med(values: Iterable[float | None]) -> float:
    from sweeplab.bench.evidence import quantile

    return quantile(list(values), 0.5)


def _ratio(a: float, b: float) -> float:
    if math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.inf if math.isinf(a) else math.nan
    if math.isinf(b) or b == 0:
        return 0.0 if b else math.nan
    return a / b


def _points(best: float, none: float, direction: str) -> float:
    if math.isnan(best) or math.isnan(none):
        return math.nan
    if direction == "maximize":
        return 100 * (best - none)
    return 100 * (none - best) / abs(none)


def summarize(cells: Sequence[Mapping[str, Any]], targets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per table and across tables, every (sampler, pruner, workers) against random / none (see the docstring)."""
    from sweeplab.bench.evidence import spread

    by = {(c["table"], c["sampler"], c["pruner"], c["workers"]): c for c in cells}
    per_table: dict[str, list[dict[str, Any]]] = {}
    for (name, sampler, pruner, workers), c in sorted(by.items()):
        direction = targets[name]["direction"]
        ref = by.get((name, "random", "none", workers))
        nop = by.get((name, sampler, "none", workers))
        if ref is None or nop is None:
            continue
        seeds = len(c["seeds"])
        refs = ref["seeds"][:seeds]  # GP's subset is compared with random's same seeds
        rsl = {k: ref[k][: len(refs)] for k in ("trials", "epochs", "time_s")}
        best = [b for b in c["best"] if b is not None]
        best_none = [b for b in nop["best"] if b is not None]
        row = {
            "sampler": sampler, "pruner": pruner, "workers": workers, "seeds": seeds,
            "reached": sum(1 for t in c["trials"] if t is not None),
            "trials": spread(c["trials"]), "epochs": spread(c["epochs"]), "time_s": spread(c["time_s"]),
            "trials_ratio": _ratio(_med(c["trials"]), _med(rsl["trials"])),
            "epochs_ratio": _ratio(_med(c["epochs"]), _med(rsl["epochs"])),
            "time_ratio": _ratio(_med(c["time_s"]), _med(rsl["time_s"])),
            "trials_ratio_iqr": [_ratio(spread(c["trials"])[q], _med(rsl["trials"])) for q in ("q25", "q75")],
            "epochs_ratio_iqr": [_ratio(spread(c["epochs"])[q], _med(rsl["epochs"])) for q in ("q25", "q75")],
            "best": spread(best) if best else None,
            "points_vs_none": _points(_med(best), _med(best_none), direction) if best and best_none else math.nan,
            "total_epochs_saved": _ratio(_med(nop["total_epochs"]), _med(c["total_epochs"])),
            "pruned": _med(c["pruned"]),
        }
        per_table.setdefault(name, []).append(row)
    across: list[dict[str, Any]] = []
    keys = sorted({(r["sampler"], r["pruner"], r["workers"]) for rows in per_table.values() for r in rows},
                  key=lambda k: (list(ALL_SAMPLERS).index(k[0]), list(ALL_PRUNERS).index(k[1]), k[2]))
    for sampler, pruner, workers in keys:
        rows = {name: r for name, rs in per_table.items() for r in rs
                if (r["sampler"], r["pruner"], r["workers"]) == (sampler, pruner, workers)}
        out: dict[str, Any] = {"sampler": sampler, "pruner": pruner, "workers": workers, "tables": len(rows)}
        for k in ("trials_ratio", "epochs_ratio", "time_ratio", "points_vs_none", "total_epochs_saved"):
            vals = [r[k] for r in rows.values() if not math.isnan(r[k])]
            out[k] = {"median": _med(vals) if vals else math.nan,
                      "min": min(vals) if vals else math.nan, "max": max(vals) if vals else math.nan}
        across.append(out)
    return {"per_table": per_table, "across": across}


def _label_of(choice: Any, labels: Mapping[str, Mapping[str, Any]], resolve: Any, ctx: Any) -> str | None:
    """The label whose entry resolves (options over the registry's defaults, for ``ctx``) as ``choice`` does."""
    want = resolve(choice.name, choice.options, ctx)
    return next((k for k, v in labels.items() if v["name"] == choice.name
                 and resolve(v["name"], {o: x for o, x in v.items() if o != "name"}, ctx) == want), None)


def _auto_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cells ``sampler: auto`` / ``pruner: auto`` resolve to, per workers count, with the targets checked."""
    from sweeplab.registry.options import Context, SpaceShape
    from sweeplab.registry.search import auto_pruner, auto_sampler, resolve_pruner_options, resolve_sampler_options

    shape = SpaceShape(params=8, categorical=6)  # mlp-grid: 2 stepped numbers, 6 categoricals
    out = []
    for workers in WORKERS:
        ctx = Context(workers=workers, epochs=10, objectives=1, space=shape)
        sampler, pruner = auto_sampler(ctx), auto_pruner(ctx)
        s_label = _label_of(sampler, ALL_SAMPLERS, resolve_sampler_options, ctx)
        p_label = _label_of(pruner, ALL_PRUNERS, resolve_pruner_options, ctx)
        row = next((r for r in summary["across"] if (r["sampler"], r["pruner"], r["workers"])
                    == (s_label, p_label, workers)), None)
        nop = next((r for r in summary["across"] if (r["sampler"], r["pruner"], r["workers"])
                    == (s_label, "none", workers)), None)
        out.append({"workers": workers, "sampler": s_label, "pruner": p_label, "row": row, "unpruned": nop})
    return out


# ---------------------------------------------------------------------- report
def _x(v: float) -> str:
    return "n/r" if math.isinf(v) else ("-" if math.isnan(v) else f"{v:.2f}x")


def _n(v: float, digits: int = 0) -> str:
    return ">budget" if math.isinf(v) else ("-" if math.isnan(v) else f"{v:.{digits}f}")


def _pt(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:+.1f}"


def _missing_text(missing: Sequence[Sequence[Any]]) -> str:
    """The jobs not run, per workers count: how many, of which tables, samplers and pruners."""
    by: dict[str, list[Sequence[Any]]] = {}
    for table, sampler, pruner, workers in missing:
        by.setdefault(f"workers {workers}", []).append((table, sampler, pruner))
    return "; ".join(f"{k}: {len(v)} (table, sampler, pruner) of tables {', '.join(sorted({t for t, _, _ in v}))}, "
                     f"samplers {', '.join(sorted({s for _, s, _ in v}))}, pruners "
                     f"{', '.join(sorted({p for _, _, p in v}))}" for k, v in sorted(by.items()))


def report(data: Mapping[str, Any]) -> str:
    summary, targets = data["summary"], data["targets"]
    lines = ["# Defaults chosen by evidence (simulated)", "",
             f"`benchmarks/bench_defaults.py`, {data['n_cells']} simulated studies of {TRIALS} trials "
             f"({data['n_trials']} trials) in {len(data['runs'])} run(s):", "",
             *[f"- {r['what']}: {r['machine']}; {r['n_cells']} studies in {r['wall_s']:.0f} s of wall time on "
               f"{r['processes']} processes." for r in data["runs"]], "",
             *([f"**Not run** (the machine was shared with other work; cells listed in `defaults.json`, key "
                f"`missing`): {_missing_text(data['missing'])}.", ""] if data.get("missing") else []),
             f"Grid: samplers {', '.join(SAMPLERS)} x pruners {', '.join(PRUNERS)} x workers "
             f"{', '.join(map(str, WORKERS))} x {data['seeds']} seeds on every shipped table; GP on workers "
             f"{', '.join(map(str, GP_WORKERS))}, pruners {', '.join(GP_PRUNERS)} and seeds 0-{data['gp_seeds'] - 1} "
             f"only (its asks cost about 0.5 s each once it models); wilcoxon on workers "
             f"{', '.join(map(str, WILCOXON_WORKERS))} and seeds 0-{WILCOXON_SEEDS - 1} only (each of its decisions "
             "runs scipy's exact test: about 4 CPU s per study). "
             "Every pruner with the registry's defaults. Fail-fast off.", "",
             *([f"Variants (other options of a sampler or pruner, labelled; on tables {', '.join(VARIANT_TABLES)} "
                f"only, {data['seeds']} seeds): "
                + "; ".join(f"`{k}` = `{json.dumps(v)}`" for k, v in {**VARIANT_SAMPLERS, **VARIANT_PRUNERS}.items())
                + ". Pairs run: " + "; ".join(f"{s} / {p} (workers {', '.join(map(str, w))})"
                                              for s, p, w in VARIANT_CELLS) + ".", ""] if VARIANT_CELLS else []),
             "## Targets", "",
             "The target of a table is the value of rank ceil(3 % x n) among its n recorded trials, best first (a "
             "failed trial is worst): a random trial of the simulated study draws one of them uniformly, so it reaches "
             "the target with the probability in the last column (more than 3 % where values tie at the target).", "",
             "| table | metric | target | share of random trials at the target |", "| --- | --- | --- | --- |"]
    for name, t in targets.items():
        lines.append(f"| `{name}` | {t['metric']} ({t['direction']}) | {t['target']:.4g} | {t['share']:.1%} |")
    sat = [n for n, t in targets.items() if t["share"] > 0.1]
    if sat:
        lines += ["", f"On {', '.join(f'`{n}`' for n in sat)} the best value is reached by more than 10 % of random "
                  "trials (small validation sets: many configurations score 1.0), so every search reaches the target "
                  "in a trial or two there and the ratios say little; the tables below show each table."]
    lines += ["", "## The defaults (`sampler: auto`, `pruner: auto`) against issue 14's targets", "",
              f"Medians over seeds; across the tables where the target is rare ({', '.join(data['rare'])}): median of "
              "the per-table ratios (range over tables).", "",
              "| workers | auto resolves to | trials to target vs random: sampler alone (<= 0.6x) / with the pruner | "
              "epochs to target vs random (<= 0.4x) | best vs no pruning, points (>= -0.5) | met? |",
              "| --- | --- | --- | --- | --- | --- |"]
    for a in data["auto"]:
        r, u = a["row"], a["unpruned"]
        if r is None or u is None:
            lines.append(f"| {a['workers']} | {a['sampler']} / {a['pruner']} | not run | | | |")
            continue
        t0, t, e, p = u["trials_ratio"], r["trials_ratio"], r["epochs_ratio"], r["points_vs_none"]
        met = (t0["median"] <= TRIALS_TARGET and e["median"] <= COMPUTE_TARGET and p["median"] >= -POINTS_TARGET)
        lines.append(f"| {a['workers']} | {a['sampler']} / {a['pruner']} | {_x(t0['median'])} ({_x(t0['min'])} - "
                     f"{_x(t0['max'])}) / {_x(t['median'])} | {_x(e['median'])} ({_x(e['min'])} - {_x(e['max'])}) | "
                     f"{_pt(p['median'])} ({_pt(p['min'])} - {_pt(p['max'])}) | {'yes' if met else 'NO'} |")
    if data.get("holdout"):
        auto = {(a["sampler"], a["pruner"]) for a in data["auto"]}
        lines += ["", f"## Held-out seeds {HOLDOUT_SEEDS[0]}-{HOLDOUT_SEEDS[1] - 1}", "",
                  f"The variants were chosen on seeds 0-{data['seeds'] - 1}; these cells ran again on seeds "
                  f"{HOLDOUT_SEEDS[0]}-{HOLDOUT_SEEDS[1] - 1} of the same tables ({', '.join(VARIANT_TABLES)}), "
                  "ratios against random search without pruning on the same seeds (medians over seeds, median "
                  "over tables, range over tables). `auto` marks what auto resolves to.", "",
                  "| sampler | pruner | workers | trials to target | epochs to target | best vs no pruning (pt) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in data["holdout"]:
            t, e, p = r["trials_ratio"], r["epochs_ratio"], r["points_vs_none"]
            mark = " (`auto`)" if (r["sampler"], r["pruner"]) in auto else ""
            lines.append(f"| {r['sampler']}{mark} | {r['pruner']} | {r['workers']} | {_x(t['median'])} "
                         f"({_x(t['min'])} - {_x(t['max'])}) | {_x(e['median'])} ({_x(e['min'])} - {_x(e['max'])}) | "
                         f"{_pt(p['median'])} ({_pt(p['min'])} - {_pt(p['max'])}) |")
    lines += ["", f"## Across tables ({', '.join(data['rare'])})", "",
              "Per (sampler, pruner, workers): the median over tables of the per-table ratio to random search "
              "without pruning (same workers), range over tables in brackets; best value vs the same sampler "
              "without pruning in points; total epochs of the whole study, no pruning / this pruner.", "",
              "| sampler | pruner | workers | trials to target | epochs to target | simulated time to target | "
              "best vs no pruning (pt) | epochs saved (whole study) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["across"]:
        t, e, s, p, w = (r[k] for k in ("trials_ratio", "epochs_ratio", "time_ratio", "points_vs_none",
                                        "total_epochs_saved"))
        lines.append(f"| {r['sampler']} | {r['pruner']} | {r['workers']} | {_x(t['median'])} ({_x(t['min'])} - "
                     f"{_x(t['max'])}) | {_x(e['median'])} ({_x(e['min'])} - {_x(e['max'])}) | {_x(s['median'])} | "
                     f"{_pt(p['median'])} ({_pt(p['min'])} - {_pt(p['max'])}) | {_x(w['median'])} |")
    lines += ["", "## Per table", "",
              "Medians over seeds with the interquartile range; `>budget`: more than half of the seeds never reached "
              "the target within the budget; `n/r`: the ratio of such a median.", ""]
    for name, rows in summary["per_table"].items():
        ref = next(r for r in rows if (r["sampler"], r["pruner"]) == ("random", "none"))
        lines += [f"### `{name}` (target {targets[name]['target']:.4g}; random search, {ref['workers']} workers: "
                  f"{_n(ref['trials']['median'])} trials, {_n(ref['epochs']['median'])} epochs to target)", "",
                  "| sampler | pruner | workers | seeds reached | trials to target (IQR) | vs random | epochs to "
                  "target (IQR) | vs random | time vs random | best (IQR) | vs no pruning (pt) | epochs saved |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            tr, ep, b = r["trials"], r["epochs"], r["best"]
            best = f"{b['median']:.4g} ({b['q25']:.4g} - {b['q75']:.4g})" if b else "-"
            lines.append(f"| {r['sampler']} | {r['pruner']} | {r['workers']} | {r['reached']}/{r['seeds']} | "
                         f"{_n(tr['median'], 1)} ({_n(tr['q25'], 1)} - {_n(tr['q75'], 1)}) | {_x(r['trials_ratio'])} | "
                         f"{_n(ep['median'])} ({_n(ep['q25'])} - {_n(ep['q75'])}) | {_x(r['epochs_ratio'])} | "
                         f"{_x(r['time_ratio'])} | {best} | {_pt(r['points_vs_none'])} | "
                         f"{_x(r['total_epochs_saved'])} |")
        lines.append("")
    extra = data.get("extra")
    if extra:
        lines += ["## Hyperband vs no pruning, TPE (multivariate), 2 workers", "",
                  f"{data['seeds']} seeds, {TRIALS} trials; epochs of the whole study (median over seeds), "
                  "no pruning / hyperband, and the median best value.", "",
                  "| table | epochs, no pruning | epochs, hyperband | saved | best, no pruning | best, hyperband |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for e in extra:
            lines.append(f"| `{e['table']}` | {e['epochs_none']:.0f} | {e['epochs_hyperband']:.0f} | "
                         f"{e['saved']:.2f}x | {e['best_none']:.4g} | {e['best_hyperband']:.4g} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def extra_rows(cells: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by = {(c["table"], c["sampler"], c["pruner"], c["workers"]): c for c in cells}
    out = []
    for name in EXTRA_TABLES:
        none, hb = by.get((name, "tpe-multi", "none", EXTRA_WORKERS)), by.get((name, "tpe-multi", "hyperband",
                                                                               EXTRA_WORKERS))
        if none is None or hb is None:
            continue
        e_none, e_hb = _med(none["total_epochs"]), _med(hb["total_epochs"])
        out.append({"table": name, "epochs_none": e_none, "epochs_hyperband": e_hb, "saved": e_none / e_hb,
                    "best_none": _med([b for b in none["best"] if b is not None]),
                    "best_hyperband": _med([b for b in hb["best"] if b is not None])})
    return out


def plots(data: Mapping[str, Any], path: Path) -> None:
    """Heatmaps (sampler x pruner) per workers count: trials and epochs to target vs random search."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    across = data["across"]
    samplers, pruners = list(SAMPLERS), list(PRUNERS)
    fig = make_subplots(rows=2, cols=len(WORKERS), shared_yaxes=True, vertical_spacing=0.12,
                        subplot_titles=[f"{what}, workers {w}" for what in ("trials to target", "epochs to target")
                                        for w in WORKERS])
    for row, key in enumerate(("trials_ratio", "epochs_ratio"), 1):
        for col, w in enumerate(WORKERS, 1):
            z: list[list[float | None]] = []
            text: list[list[str]] = []
            for s in samplers:
                zr: list[float | None] = []
                tr: list[str] = []
                for p in pruners:
                    r = next((a for a in across if (a["sampler"], a["pruner"], a["workers"]) == (s, p, w)), None)
                    v = r[key]["median"] if r else math.nan
                    zr.append(None if math.isnan(v) else min(v, 2.0))
                    tr.append(_x(v) if r else "")
                z.append(zr)
                text.append(tr)
            fig.add_trace(go.Heatmap(z=z, x=pruners, y=samplers, text=text, texttemplate="%{text}", zmin=0, zmax=2,
                                     colorscale="RdYlGn_r", showscale=(row, col) == (1, 1),
                                     colorbar={"title": "x random"}), row=row, col=col)
    fig.update_layout(title="Median over tables of (median over seeds) / random search without pruning; "
                            "lower is better, n/r = not reached by half the seeds", height=800, width=1600)
    fig.write_html(path, include_plotlyjs="cdn")


def _runs_of(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The runs a ``defaults.json`` came from (one written before runs were listed: the grid's)."""
    if "runs" in data:
        return list(data["runs"])
    return [{"what": "the grid", "n_cells": data["n_cells"],
             **{k: data[k] for k in ("machine", "wall_s", "processes")}}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="processes simulating cells at once (default 2)")
    parser.add_argument("--quick", action="store_true", help="3 seeds, 1 GP seed, two tables (a smoke run; writes "
                                                             "nothing under benchmarks/results)")
    parser.add_argument("--from-json", action="store_true", help="rebuild the report from defaults.json")
    parser.add_argument("--cache", help="a JSON-lines file of finished jobs: read first, appended as jobs finish")
    parser.add_argument("--extend", action="store_true", help="keep the cells of defaults.json and simulate only "
                                                              "the jobs it lacks (e.g. new variants); the report "
                                                              "names both runs")
    parser.add_argument("--from-cache", action="store_true", help="simulate nothing: report the jobs of --cache "
                                                                  "(a run stopped early), saying which are missing")
    args = parser.parse_args()
    from sweeplab.bench.simulate import shipped_tables

    if args.from_json:
        data = json.loads((RESULTS / "defaults.json").read_text())
        data["runs"] = _runs_of(data)
        cells = data["cells"]
    else:
        tables = ["digits", "diabetes"] if args.quick else shipped_tables()
        seeds, gp_seeds = (3, 1) if args.quick else (SEEDS, GP_SEEDS)
        jobs = jobs_of(tables, seeds, gp_seeds)
        done: dict[tuple[Any, ...], dict[str, Any]] = {}
        runs: list[dict[str, Any]] = []
        if args.extend:
            prior = json.loads((RESULTS / "defaults.json").read_text())
            runs = _runs_of(prior)
            for c in prior["cells"]:
                done[(c["table"], c["sampler"], c["pruner"], c["workers"], tuple(c["seeds"]))] = c
        before = set(done)
        cache = Path(args.cache) if args.cache else None
        if cache is not None and cache.exists():
            for line in cache.read_text().splitlines():
                c = json.loads(line)
                done[(c["table"], c["sampler"], c["pruner"], c["workers"], tuple(c["seeds"]))] = c
        todo = [] if args.from_cache else [j for j in jobs if j not in done]
        load_before = os.getloadavg()
        started = time.perf_counter()
        print(f"{len(jobs)} jobs ({len(todo)} to run) on {args.processes} processes", file=sys.stderr)
        with mp.get_context("spawn").Pool(args.processes) as pool:
            for i, c in enumerate(pool.imap_unordered(run_job, todo, chunksize=1), 1):
                done[(c["table"], c["sampler"], c["pruner"], c["workers"], tuple(c["seeds"]))] = c
                if cache is not None:
                    with cache.open("a") as fh:
                        fh.write(json.dumps(c) + "\n")
                if i % 20 == 0 or i == len(todo):
                    print(f"[{i}/{len(todo)}] {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        wall = time.perf_counter() - started
        cells = [done[j] for j in jobs if j in done]
        missing = [j for j in jobs if j not in done]
        load_after = os.getloadavg()
        stamp = time.strftime("%Y-%m-%d %H:%M")
        new = [c for j, c in done.items() if j not in before]
        runs.append({"what": "variants added to the grid (--extend)" if args.extend else "the grid",
                     "machine": f"{platform.machine()}, {os.cpu_count()} cores, {stamp} (load average "
                                f"{load_before[0]:.2f} -> {load_after[0]:.2f})",
                     "wall_s": sum(c["wall_s"] for c in new) / args.processes if args.from_cache or cache else wall,
                     "processes": args.processes, "n_cells": sum(len(c["seeds"]) for c in new)})
        data = {"runs": runs, "processes": args.processes, "seeds": seeds, "gp_seeds": gp_seeds,
                "missing": [list(j[:4]) for j in missing],
                "targets": {n: target_of(n) for n in tables}, "cells": cells}
    data["n_cells"] = sum(len(c["seeds"]) for c in cells)
    data["n_trials"] = data["n_cells"] * TRIALS
    held = [c for c in cells if c["seeds"][0] >= HOLDOUT_SEEDS[0]]
    data["holdout"] = summarize(held, data["targets"])["across"] if held else []
    cells = [c for c in cells if c["seeds"][0] < HOLDOUT_SEEDS[0]]
    data["summary"] = summarize([c for c in cells if c["workers"] in WORKERS], data["targets"])
    # across tables: those where the target is rare; where a tenth of random trials reach it, every
    # search reaches it at once and the ratios are 1 whatever the sampler
    rare = {n for n, t in data["targets"].items() if t["share"] <= RARE_SHARE}
    data["across"] = summarize([c for c in cells if c["workers"] in WORKERS and c["table"] in rare],
                               data["targets"])["across"]
    data["rare"] = sorted(rare)
    data["auto"] = _auto_rows({"across": data["across"]})
    data["extra"] = extra_rows(cells)
    text = report(data)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "defaults.md").write_text(text)
        slim = {k: v for k, v in data.items() if k not in ("summary", "auto", "across", "holdout")}
        (RESULTS / "defaults.json").write_text(json.dumps(slim, default=str) + "\n")
        plots(data, RESULTS / "defaults.html")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Figures and the HTML report of real Optuna studies (in memory and in SQLite)."""

from __future__ import annotations

import math
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import plotly.offline
import pytest

from sweeplab.core.errors import StudyNotFoundError, UsageError
from sweeplab.core.keys import STUDY_ATTR_ESTIMATE
from sweeplab.core.records import SelectionEstimate, StudySummary
from sweeplab.dashboards import FIGURE_IDS, study_figures, study_report_html, study_sections, write_study_report
from sweeplab.dashboards.figures import (
    TITLE_CONTOUR,
    TITLE_ESTIMATE,
    TITLE_HISTORY,
    TITLE_IMPORTANCES,
    TITLE_LEARNING_CURVES,
    TITLE_PARALLEL,
    TITLE_PARETO,
    TITLE_SLICE,
    TITLE_TIMELINE,
    importance_quantile,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)

SINGLE_TITLES = [TITLE_HISTORY, TITLE_LEARNING_CURVES, TITLE_IMPORTANCES, TITLE_PARALLEL, TITLE_SLICE,
                 TITLE_CONTOUR, TITLE_TIMELINE]
FAIL_NUMBER = 4
EPOCHS = 6


def _objective(trial: optuna.Trial) -> float:
    """Analytic 'training': a loss curve whose floor depends on x, lr and activation."""
    x = trial.suggest_float("x", -3.0, 3.0)
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    act = trial.suggest_categorical("act", ["relu", "tanh"])
    trial.set_user_attr("sweeplab.node", f"node-{trial.number % 2}")
    floor = (x - 1.0) ** 2 + (math.log10(lr) + 2.0) ** 2 / 4 + (0.5 if act == "tanh" else 0.0)
    value = floor
    for epoch in range(EPOCHS):
        value = floor + 3.0 / (epoch + 1)
        trial.report(value, epoch)
        if trial.number == FAIL_NUMBER and epoch == 1:
            raise RuntimeError("diverged: loss is <nan>")
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def make_single_study(storage: str | None = None, name: str = "single", n_trials: int = 14) -> optuna.Study:
    study = optuna.create_study(
        study_name=name, storage=storage, direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.PercentilePruner(80.0, n_startup_trials=3, n_warmup_steps=1),
    )
    # Three good trials first, then bad ones the median pruner must stop.
    for x, lr, act in ((1.0, 0.01, "relu"), (0.5, 0.003, "tanh"), (1.5, 0.03, "relu")):
        study.enqueue_trial({"x": x, "lr": lr, "act": act})
    for x in (-3.0, 3.0):
        study.enqueue_trial({"x": x, "lr": 1e-4, "act": "tanh"})
    study.optimize(_objective, n_trials=n_trials, catch=(RuntimeError,))
    return study


@pytest.fixture(scope="module")
def single() -> optuna.Study:
    study = make_single_study()
    states = {t.state.name for t in study.trials}
    assert {"COMPLETE", "PRUNED", "FAIL"} <= states, states
    return study


@pytest.fixture(scope="module")
def multi() -> optuna.Study:
    study = optuna.create_study(study_name="multi", directions=["minimize", "maximize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=0))

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        units = trial.suggest_int("units", 8, 256, log=True)
        trial.set_user_attr("worker", "w-1")
        return x**2 + units / 256, 1.0 - (x - 1.0) ** 2

    study.optimize(objective, n_trials=10)
    return study


def _by_title(study: optuna.Study) -> dict[str, Any]:
    return {s.title: s for s in study_sections(study)}


# --------------------------------------------------------------------------- figures
def test_single_objective_has_every_figure_with_data(single: optuna.Study) -> None:
    figures = study_figures(single)
    assert [t for t, _ in figures] == SINGLE_TITLES
    for title, fig in figures:
        assert len(fig.data) > 0, title
        assert not (fig.layout.meta or {}).get("sweeplab_note"), title
    assert TITLE_PARETO not in dict(figures)


def test_history_has_best_so_far_line(single: optuna.Study) -> None:
    fig = dict(study_figures(single))[TITLE_HISTORY]
    best = [tr for tr in fig.data if tr.name == "Best Value"]
    assert best, [tr.name for tr in fig.data]
    ys = [y for y in best[0].y if y is not None]
    assert ys == sorted(ys, reverse=True)  # minimize: best-so-far never goes up
    assert ys[-1] == pytest.approx(single.best_value)


def test_learning_curves_one_line_per_trial_pruned_dashed_failed_left_out(single: optuna.Study) -> None:
    section = _by_title(single)[TITLE_LEARNING_CURVES]
    fig = section.figure
    names = {tr.name.split(" ")[1]: tr for tr in fig.data}  # "trial N (...)" -> N
    drawn = {int(n) for n in names}
    expected = {t.number for t in single.trials if t.state.name in ("COMPLETE", "PRUNED")}
    assert drawn == expected
    assert FAIL_NUMBER not in drawn  # it did report epochs before failing
    assert "failed" in section.note
    for t in single.trials:
        if t.number not in drawn:
            continue
        tr = names[str(t.number)]
        assert list(tr.x) == sorted(t.intermediate_values)  # x = epoch
        if t.state.name == "PRUNED":
            assert tr.line.dash == "dash"
            assert tr.marker.symbol == "x" and tr.marker.size[-1] > 0 and tr.marker.size[0] == 0
        else:
            assert tr.line.dash in (None, "solid")


def test_importances_are_reproducible_and_drive_the_contour(single: optuna.Study) -> None:
    a = _by_title(single)[TITLE_IMPORTANCES].figure
    b = _by_title(single)[TITLE_IMPORTANCES].figure
    assert list(a.data[0].x) == list(b.data[0].x)
    assert set(a.data[0].y) == {"x", "lr", "act"}
    top_two = [name for _, name in sorted(zip(a.data[0].x, a.data[0].y, strict=True), reverse=True)[:2]]
    contour = _by_title(single)[TITLE_CONTOUR]
    assert all(name in contour.note for name in top_two)
    axis_titles = {contour.figure.layout.xaxis.title.text, contour.figure.layout.yaxis.title.text}
    assert axis_titles == set(top_two)


def test_timeline_rows_are_workers_colored_by_state(single: optuna.Study) -> None:
    fig = _by_title(single)[TITLE_TIMELINE].figure
    states = {tr.name for tr in fig.data}
    assert {"complete", "pruned", "fail"} <= states
    rows = {y for tr in fig.data for y in tr.y}
    assert any(r.startswith("node-0") for r in rows) and any(r.startswith("node-1") for r in rows)
    assert all("% busy" in r for r in rows)
    assert sum(len(tr.x) for tr in fig.data) == len(single.trials)
    assert fig.layout.xaxis.type == "date"


def test_multi_objective_has_pareto_front_and_notes(multi: optuna.Study) -> None:
    sections = study_sections(multi)
    titles = [s.title for s in sections]
    assert titles[:2] == [TITLE_HISTORY, TITLE_PARETO]
    by: dict[str, Any] = {s.title: s for s in sections}
    assert by[TITLE_PARETO].figure is not None and len(by[TITLE_PARETO].figure.data) > 0
    assert by[TITLE_LEARNING_CURVES].figure is None and "multi-objective" in by[TITLE_LEARNING_CURVES].note
    for title in (TITLE_HISTORY, TITLE_IMPORTANCES, TITLE_PARALLEL, TITLE_SLICE, TITLE_CONTOUR):
        assert by[title].figure is not None and len(by[title].figure.data) > 0, title
        assert "first objective" in by[title].note, title
    timeline = by[TITLE_TIMELINE].figure
    assert {y.split(" ")[0] for tr in timeline.data for y in tr.y} == {"w-1"}  # fallback user attr "worker"


def _one_param_study() -> optuna.Study:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=4)
    return study


def _one_trial_study() -> optuna.Study:
    study = optuna.create_study()
    study.enqueue_trial({"a": 0.5, "b": 2})
    study.optimize(lambda t: t.suggest_float("a", 0, 1) + t.suggest_int("b", 1, 3), n_trials=1)
    return study


def _failed_only_study() -> optuna.Study:
    study = optuna.create_study()

    def boom(t: optuna.Trial) -> float:
        t.suggest_float("a", 0, 1)
        raise ValueError("nope")

    study.optimize(boom, n_trials=2, catch=(ValueError,))
    return study


def _conditional_study() -> optuna.Study:
    """Params that only some trials have (a conditional space)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))

    def objective(t: optuna.Trial) -> float:
        lr = t.suggest_float("lr", 1e-3, 1.0, log=True)
        if t.suggest_categorical("optimizer", ["sgd", "adam"]) == "sgd":
            return lr + t.suggest_float("momentum", 0.0, 0.9)
        return lr * 2

    study.optimize(objective, n_trials=8)
    return study


def _constant_study() -> optuna.Study:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 0.0 * t.suggest_float("a", 0, 1) + 0.0 * t.suggest_float("b", 0, 1), n_trials=3)
    return study


@pytest.mark.parametrize(
    ("build", "missing"),
    [
        (lambda: optuna.create_study(), {TITLE_HISTORY, TITLE_LEARNING_CURVES, TITLE_IMPORTANCES, TITLE_PARALLEL,
                                          TITLE_SLICE, TITLE_CONTOUR, TITLE_TIMELINE}),
        (_one_trial_study, {TITLE_LEARNING_CURVES, TITLE_IMPORTANCES, TITLE_CONTOUR}),
        (_one_param_study, {TITLE_LEARNING_CURVES, TITLE_IMPORTANCES, TITLE_CONTOUR}),
        (_failed_only_study, {TITLE_HISTORY, TITLE_LEARNING_CURVES, TITLE_IMPORTANCES, TITLE_PARALLEL,
                              TITLE_SLICE, TITLE_CONTOUR}),
        (_constant_study, {TITLE_LEARNING_CURVES, TITLE_IMPORTANCES}),
        (_conditional_study, {TITLE_LEARNING_CURVES}),
    ],
    ids=["empty", "one-complete-trial", "one-param", "only-failed", "constant-values", "conditional-params"],
)
def test_degraded_studies_give_notes_not_exceptions(build, missing: set[str], tmp_path: Path) -> None:
    study = build()
    sections = study_sections(study)
    assert [s.title for s in sections] == SINGLE_TITLES
    for s in sections:
        if s.title in missing:
            assert s.figure is None and s.note, s.title
        else:
            assert s.figure is not None and len(s.figure.data) > 0, (s.title, s.note)
    placeholders = {t: f for t, f in study_figures(study) if t in missing}
    for title, fig in placeholders.items():
        assert len(fig.data) == 0 and fig.layout.meta["sweeplab_note"], title
    page = write_study_report("degraded", study=study, path=tmp_path / "r.html").read_text()
    assert page.count("class='note missing'") == len(missing)


def test_importance_notes_say_why() -> None:
    assert "one parameter (x)" in _by_title(_one_param_study())[TITLE_IMPORTANCES].note
    assert "same objective value" in _by_title(_constant_study())[TITLE_IMPORTANCES].note
    assert "at least 2 complete trials" in _by_title(_one_trial_study())[TITLE_IMPORTANCES].note


def test_running_and_waiting_trials_of_a_live_study() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("a", 0, 1) + t.suggest_float("b", 0, 1), n_trials=3)
    running = study.ask()
    running.suggest_float("a", 0, 1)
    running.suggest_float("b", 0, 1)
    running.report(1.5, 0)
    running.report(1.2, 1)
    study.enqueue_trial({"a": 0.5, "b": 0.5})  # WAITING: never started, not on the timeline
    by = _by_title(study)
    curves = by[TITLE_LEARNING_CURVES].figure
    assert [tr.line.dash for tr in curves.data] == ["dot"]
    timeline = by[TITLE_TIMELINE]
    assert {tr.name for tr in timeline.figure.data} == {"complete", "running"}
    assert sum(len(tr.x) for tr in timeline.figure.data) == 4
    assert "Running trials extend" in timeline.note


# --------------------------------------------------------------------------- report
_SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc\s*=", re.IGNORECASE)


def test_report_is_self_contained_with_plotly_once(single: optuna.Study, tmp_path: Path) -> None:
    out = write_study_report("single", study=single, path=tmp_path / "sub" / "report.html")
    assert out == tmp_path / "sub" / "report.html"
    page = out.read_text(encoding="utf-8")
    assert not _SCRIPT_SRC.search(page)  # nothing loaded from anywhere
    assert not re.search(r"""src\s*=\s*["']?https?://""", page, re.IGNORECASE)
    assert not re.search(r"""<link[^>]+href\s*=\s*["']?https?://""", page, re.IGNORECASE)
    plotly_js = plotly.offline.get_plotlyjs()
    assert page.count(plotly_js[:300]) == 1
    assert page.count(plotly_js[-300:]) == 1
    for title in SINGLE_TITLES:
        key = FIGURE_IDS[title]
        assert f"<h2 id='{key}'>" in page
        assert f'id="{key}-plot"' in page
    assert 'http-equiv="refresh"' not in page
    assert "<h1>Study <code>single</code></h1>" in page
    counts = {k: re.findall(rf"<div class='n'>(\d+)</div><div class='k'>{k}</div>", page)[0]
              for k in ("complete", "pruned", "failed")}
    states = [t.state.name for t in single.trials]
    assert counts == {"complete": str(states.count("COMPLETE")), "pruned": str(states.count("PRUNED")),
                      "failed": str(states.count("FAIL"))}
    assert f"<td class='num'>{single.best_trial.number}</td>" in page


def test_report_escapes_study_strings_and_uses_the_summary(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script>"
    study = optuna.create_study(study_name=evil)
    study.optimize(lambda t: 1.0 if t.suggest_categorical("act", [evil, "relu"]) == "relu" else 2.0, n_trials=3)
    summary = StudySummary(
        study=evil, n_trials=3, n_complete=3, n_pruned=0, n_failed=0, n_retried=0, n_rejected=0, n_running=0,
        n_waiting=0, trials_target=None, direction=["minimize"], metric=None, best_value=0.25, best_trial=7,
        best_params={"act": evil}, best_run_id="run<1>", mlflow_parent_run_id="parent-run-<b>42</b>",
        mlflow_experiment_id="3",
    )
    out = write_study_report(evil, summary, study=study, path=tmp_path / "evil.html", refresh_seconds=15)
    page = out.read_text(encoding="utf-8")
    assert evil not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "parent-run-&lt;b&gt;42&lt;/b&gt;" in page
    assert "<td class='num'>0.25</td>" in page and "<td class='num'>7</td>" in page  # from the summary
    assert '<meta http-equiv="refresh" content="15">' in page
    with pytest.raises(UsageError, match="refresh_seconds: must be a positive"):
        study_report_html("x", study, refresh_seconds=0)


def test_report_loads_study_from_storage_into_private_temp_dir(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    make_single_study(storage=url, name="stored", n_trials=3)
    out = write_study_report("stored", storage_url=url)
    try:
        assert out.name == "stored-report.html"
        assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700
        page = out.read_text(encoding="utf-8")
        assert "<h1>Study <code>stored</code></h1>" in page
        assert "fig-learning-curves-plot" in page
    finally:
        out.unlink()
        out.parent.rmdir()
    with pytest.raises(StudyNotFoundError, match="stored"):
        write_study_report("missing", storage_url=url, path=tmp_path / "x.html")


def test_report_file_name_never_escapes_its_folder(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="../../etc/evil")
    out = write_study_report(study.study_name, study=study)
    try:
        assert out.name == "_.._etc_evil-report.html"
    finally:
        out.unlink()
        out.parent.rmdir()


def test_report_never_imports_frameworks_or_ray(tmp_path: Path) -> None:
    code = (
        "import sys, optuna\n"
        "optuna.logging.set_verbosity(optuna.logging.ERROR)\n"
        "from sweeplab.dashboards import write_study_report\n"
        "s = optuna.create_study(study_name='s')\n"
        "s.optimize(lambda t: t.suggest_float('a', 0, 1) + t.suggest_float('b', 0, 1), n_trials=3)\n"
        f"write_study_report('s', study=s, path={str(tmp_path / 'r.html')!r})\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'ray'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr



def test_the_estimate_section_appears_after_a_promote_only():
    study = make_single_study(name="estimated", n_trials=6)
    assert TITLE_ESTIMATE not in [s.title for s in study_sections(study)]

    estimate = SelectionEstimate.build(metric="val_accuracy", direction="maximize", trial=3, selected_value=1.0,
                                       reseeded_mean=0.97, cv_mean=None, heldout_value=0.917, heldout_rows=36,
                                       refit=True, model_uri="models:/wine@champion")
    study.set_user_attr(STUDY_ATTR_ESTIMATE, estimate.to_json())
    sections = study_sections(study)
    assert [s.title for s in sections][:2] == [TITLE_HISTORY, TITLE_ESTIMATE]
    section = sections[1]
    bar = section.figure.data[0]
    assert list(bar.y) == [1.0, 0.97, 0.917]
    assert "re-seeded mean" in bar.x[1] and "held-out, 36 rows" in bar.x[2]
    assert "Optimism gap 0.083" in section.note and "0.053" in section.note and "refit" in section.note
    page = study_report_html("estimated", study)
    assert f"id='{FIGURE_IDS[TITLE_ESTIMATE]}'" in page or f'id="{FIGURE_IDS[TITLE_ESTIMATE]}"' in page


def test_the_gap_is_signed_for_the_direction():
    e = SelectionEstimate.build(metric="val_loss", direction="minimize", trial=0, selected_value=0.2,
                                reseeded_mean=0.25, cv_mean=0.3, heldout_value=0.35, heldout_rows=10, refit=False)
    assert e.heldout_metric == "test_loss"
    assert abs(e.optimism_gap - 0.15) < 1e-12  # a loss lower on validation than on held-out rows: optimistic
    assert abs(e.estimate_gap - 0.05) < 1e-12  # the cross-validated mean is preferred to the re-seeded one
    assert SelectionEstimate.from_json(e.to_json()) == e


def test_warming_the_report_draws_quietly_and_leaves_optunas_logging_as_it_was(caplog):
    """A driver warms the report up while its workers train, by drawing every figure once on a
    study made up in memory: the user's log must not hear of that study, Optuna's loggers keep
    no filter of ours, and the figures drawn next are the study's own."""
    import logging

    import optuna

    from sweeplab.dashboards import import_report_dependencies
    from sweeplab.dashboards.figures import study_sections

    storage_log = logging.getLogger(optuna.storages.InMemoryStorage.__module__)
    filters_before = list(storage_log.filters)
    optuna.logging.enable_propagation()
    try:
        with caplog.at_level(logging.INFO, logger="optuna"):
            import_report_dependencies()
            mine = optuna.create_study(study_name="users-own", storage=optuna.storages.InMemoryStorage())
    finally:
        optuna.logging.disable_propagation()
    assert "sweeplab-report-warm-up" not in caplog.text
    assert "users-own" in caplog.text  # the user's own studies are still announced
    assert storage_log.filters == filters_before
    mine.add_trial(optuna.trial.create_trial(params={"z": 0.5}, distributions={
        "z": optuna.distributions.FloatDistribution(0.0, 1.0)}, value=1.0))
    sections = study_sections(mine)
    assert sections[0].figure is not None and "sweeplab-report-warm-up" not in repr(sections[0].figure.to_dict())


def _one_sided_study(directions: list[str], n_trials: int = 80) -> optuna.Study:
    """The first objective is set by ``a`` among the best trials (high ``a``) and by ``b``
    among the worst (high ``b``): importances computed for the wrong direction rank ``b`` first."""
    study = optuna.create_study(directions=directions, sampler=optuna.samplers.RandomSampler(seed=3))
    space = {"a": optuna.distributions.FloatDistribution(0.0, 1.0),
             "b": optuna.distributions.FloatDistribution(0.0, 1.0)}
    rng = np.random.default_rng(3)
    for a, b in rng.random((n_trials, 2)):
        first = float(a) if a > 0.5 else -float(b)
        values = [first] if len(directions) == 1 else [first, float(a + b)]
        study.add_trial(optuna.trial.create_trial(params={"a": float(a), "b": float(b)}, distributions=space,
                                                  values=values))
    return study


@pytest.mark.parametrize("directions", [["maximize"], ["maximize", "minimize"]])
def test_importances_rank_what_sets_the_best_trials_apart(directions: list[str]) -> None:
    section = _by_title(_one_sided_study(directions))[TITLE_IMPORTANCES]
    importances = dict(zip(section.figure.data[0].y, section.figure.data[0].x, strict=True))
    assert importances["a"] > 2 * importances["b"], importances
    assert math.isclose(sum(importances.values()), 1.0)
    assert "best 10% of the 80 complete trials" in section.note


def test_the_best_trials_of_a_small_study_are_at_least_five() -> None:
    assert importance_quantile(20) == 0.25
    assert importance_quantile(200) == 0.1
    assert importance_quantile(4) == 0.5
    assert "best 25% of the 20 complete trials" in _by_title(_one_sided_study(["maximize"], 20))[TITLE_IMPORTANCES].note


def test_report_to_a_place_it_cannot_write_says_so_on_the_terminal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    make_single_study(url, "stored", n_trials=4)
    (tmp_path / "afile").write_text("not a folder")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    cases = [("afile/r.html", "afile is a file, not a folder")]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append(("locked/r.html", "Permission denied"))
    for output, reason in cases:
        run = subprocess.run([sys.executable, "-m", "sweeplab.cli", "report", "stored", "--storage", url, "-o", output],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, run.stderr
        assert f"error: cannot write {output}: " in run.stderr and reason in run.stderr, run.stderr
        assert "Give -o/--output a file in a folder you can write to" in run.stderr
        assert "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("optuna.db")) == ["afile", "locked"]
    assert list(locked.iterdir()) == []

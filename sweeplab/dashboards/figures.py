"""Plotly figures of one Optuna study, each built so that it never raises.

:func:`study_sections` is the full description the HTML report uses: one
:class:`FigureSection` per figure, in display order, with a stable HTML id, a figure
(or ``None``) and a note that explains anything missing or degraded (too few complete
trials, a single parameter, a multi-objective study, a plot that failed to draw).
:func:`study_figures` is the plain ``(title, figure)`` view of the same list: a section
without a figure becomes a placeholder figure whose only content is its note.

The figures:

* optimization history: every complete trial's value and the best-so-far line;
* Pareto front (multi-objective studies only);
* per-trial learning curves from ``trial.intermediate_values`` (x = epoch), pruned
  trials dashed and marked at their last epoch, running trials dotted, failed trials
  left out;
* parameter importances (PED-ANOVA, Optuna's default evaluator: deterministic, and
  milliseconds where fANOVA took seconds to minutes at the end of a large study);
* parallel coordinates, slice plot, and the contour of the two most important params;
* a timeline of trials per worker (user attr ``sweeplab.node``, else ``worker``),
  colored by state, each worker split into as many slots as it ran trials at once,
  every slot labelled with its utilization.

For multi-objective studies the single-target plots show the first objective and say
so in their note. Nothing here imports torch, tensorflow or ray.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from sweeplab.core.keys import ATTR_NODE, ATTR_PRUNED_EPOCH, ATTR_REASON, STUDY_ATTR_ESTIMATE, STUDY_ATTR_SPEC
from sweeplab.core.records import SelectionEstimate

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

TITLE_HISTORY = "Optimization history"
TITLE_PARETO = "Pareto front"
TITLE_LEARNING_CURVES = "Learning curves"
TITLE_IMPORTANCES = "Parameter importances"
TITLE_PARALLEL = "Parallel coordinates"
TITLE_SLICE = "Slice plot"
TITLE_CONTOUR = "Contour of the two most important parameters"
TITLE_TIMELINE = "Trials per worker (timeline)"
TITLE_ESTIMATE = "Selected vs held-out value (promote)"

#: Stable HTML id of every figure's heading, keyed by figure title.
FIGURE_IDS: dict[str, str] = {
    TITLE_HISTORY: "fig-optimization-history",
    TITLE_PARETO: "fig-pareto-front",
    TITLE_LEARNING_CURVES: "fig-learning-curves",
    TITLE_IMPORTANCES: "fig-param-importances",
    TITLE_PARALLEL: "fig-parallel-coordinates",
    TITLE_SLICE: "fig-slice",
    TITLE_CONTOUR: "fig-contour",
    TITLE_TIMELINE: "fig-timeline",
    TITLE_ESTIMATE: "fig-selection-estimate",
}

#: The importances tell which parameters set the best complete trials apart from all of them
#: (PED-ANOVA). The best are the top ``IMPORTANCE_TOP_QUANTILE``, widened to hold at least
#: ``IMPORTANCE_MIN_TOP_TRIALS`` trials (Optuna's advice for a stable estimate), at most half.
IMPORTANCE_TOP_QUANTILE = 0.1
IMPORTANCE_MIN_TOP_TRIALS = 5


def importance_quantile(n_complete: int) -> float:
    """The share of ``n_complete`` complete trials the importances count as the best."""
    return min(0.5, max(IMPORTANCE_TOP_QUANTILE, IMPORTANCE_MIN_TOP_TRIALS / max(n_complete, 1)))

#: Fallback user attr naming a trial's worker, and the label used when neither is set.
FALLBACK_NODE_ATTR = "worker"
UNKNOWN_NODE = "worker"

STATE_COLORS: dict[str, str] = {
    "COMPLETE": "#2ca02c",
    "PRUNED": "#ff7f0e",
    "FAIL": "#d62728",
    "RUNNING": "#1f77b4",
    "WAITING": "#7f7f7f",
}


@dataclass(frozen=True)
class FigureSection:
    """One figure of a study report.

    ``key`` is the stable HTML id of the section heading (see :data:`FIGURE_IDS`).
    ``figure`` is ``None`` when there is nothing to draw; ``note`` then says why. A
    section with a figure may also carry a note (what is shown, what was left out).
    """

    key: str
    title: str
    figure: go.Figure | None
    note: str | None = None


# --------------------------------------------------------------------------- helpers
def _section(title: str, figure: go.Figure | None, note: str | None = None) -> FigureSection:
    return FigureSection(key=FIGURE_IDS[title], title=title, figure=figure, note=note)


def note_figure(note: str) -> go.Figure:
    """A placeholder figure with no data whose only content is ``note`` (escaped)."""
    fig = go.Figure()
    fig.add_annotation(text=escape(note), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 14})
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=200,
                      meta={"sweeplab_note": note})
    return fig


def _safely(title: str, build: Callable[[], FigureSection]) -> FigureSection:
    """Run ``build``; any exception becomes a note, never an error of the report."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build()
    except Exception as exc:  # a figure that cannot be drawn must not sink the report
        log.warning("figure %r of the study could not be drawn: %s", title, exc, exc_info=True)
        return _section(title, None, f"This figure could not be drawn: {type(exc).__name__}: {exc}")


def metric_names(study: optuna.Study) -> list[str]:
    """Names of the study's objectives: Optuna metric names, else the sweeplab spec's
    ``metric``, else ``objective 0``, ``objective 1``... (always one per direction)."""
    n = len(study.directions)
    names: Sequence[Any] | None = None
    try:
        names = study.metric_names
    except Exception:  # older storages
        names = None
    if not names:
        spec = study.user_attrs.get(STUDY_ATTR_SPEC) or {}
        metric = spec.get("metric") if isinstance(spec, dict) else None
        names = [metric] if isinstance(metric, str) else metric if isinstance(metric, list) else None
    if not names or len(names) != n:
        return ["objective value"] if n == 1 else [f"objective {i}" for i in range(n)]
    return [str(x) for x in names]


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def _complete(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    from optuna.trial import TrialState

    return [t for t in trials if t.state == TrialState.COMPLETE and t.values and all(_finite(v) for v in t.values)]


class _Context:
    """What every figure needs, computed once: trials, target, importances."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self.trials = study.get_trials(deepcopy=False)
        self.complete = _complete(self.trials)
        self.names = metric_names(study)
        self.multi = len(study.directions) > 1
        self.target: Callable[[FrozenTrial], float] | None = (lambda t: t.values[0]) if self.multi else None
        self.target_name = self.names[0]
        self.params = sorted(self._common_params())
        self.importances: dict[str, float] | None = None
        self.importance_note: str | None = None

    def _common_params(self) -> set[str]:
        """Params present in every complete trial (what the importances and the contour can use)."""
        if not self.complete:
            return set()
        common = set(self.complete[0].params)
        for t in self.complete[1:]:
            common &= set(t.params)
        return common

    @property
    def target_kwargs(self) -> dict[str, Any]:
        if self.target is None:
            return {"target_name": self.target_name}
        return {"target": self.target, "target_name": self.target_name}

    @property
    def multi_note(self) -> str | None:
        if not self.multi:
            return None
        return f"Multi-objective study: shown for the first objective ({self.target_name}) of {len(self.names)}."

    def all_params(self) -> set[str]:
        out: set[str] = set()
        for t in self.complete:
            out |= set(t.params)
        return out


def _strip_title(fig: go.Figure) -> go.Figure:
    """Drop Optuna's built-in plot title: the report's heading names the figure."""
    fig.update_layout(title=None, margin={"t": 40})
    return fig


# --------------------------------------------------------------------------- figures
def _history(ctx: _Context) -> FigureSection:
    import optuna.visualization as ov

    if not ctx.complete:
        return _section(TITLE_HISTORY, None, "No complete trial yet: there is no objective value to plot.")
    fig = _strip_title(ov.plot_optimization_history(ctx.study, **ctx.target_kwargs))
    fig.update_layout(height=450)
    note = ctx.multi_note
    if note:
        note += " A multi-objective study has no single best-so-far value: see the Pareto front."
    return _section(TITLE_HISTORY, fig, note)


def _pareto(ctx: _Context) -> FigureSection:
    import optuna.visualization as ov

    n = len(ctx.names)
    if n > 3:
        return _section(TITLE_PARETO, None, f"The Pareto front is drawn for 2 or 3 objectives; this study has {n}.")
    if not ctx.complete:
        return _section(TITLE_PARETO, None, "No complete trial yet: there is no Pareto front.")
    fig = _strip_title(ov.plot_pareto_front(ctx.study, target_names=list(ctx.names)))
    fig.update_layout(height=500)
    return _section(TITLE_PARETO, fig, None)


def _learning_curves(ctx: _Context) -> FigureSection:
    from optuna.trial import TrialState

    if ctx.multi:
        return _section(TITLE_LEARNING_CURVES, None,
                        "Optuna records no intermediate values for multi-objective studies, so there are no "
                        "learning curves to draw (the per-epoch metrics are in each trial's MLflow run).")
    best_number: int | None = None
    if ctx.complete:
        best_number = ctx.study.best_trial.number
    fig = go.Figure()
    n_failed = 0
    drawn = 0
    max_epoch = 0
    for t in sorted(ctx.trials, key=lambda tr: tr.number):
        points = sorted((step, v) for step, v in t.intermediate_values.items() if _finite(v))
        if not points:
            continue
        if t.state == TrialState.FAIL:
            n_failed += 1
            continue
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
            continue
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        max_epoch = max(max_epoch, xs[-1])
        state = t.state.name
        label = f"trial {t.number}" + (" (best)" if t.number == best_number else f" ({state.lower()})")
        line: dict[str, Any] = {"width": 3 if t.number == best_number else 1.5}
        trace: dict[str, Any] = {"mode": "lines"}
        if t.state == TrialState.PRUNED:
            line["dash"] = "dash"
            epoch = t.user_attrs.get(ATTR_PRUNED_EPOCH, xs[-1])
            trace = {"mode": "lines+markers",
                     "marker": {"size": [0] * (len(xs) - 1) + [11], "symbol": "x", "line": {"width": 0}}}
            label += f", pruned at epoch {escape(str(epoch))}"
        elif t.state == TrialState.RUNNING:
            line["dash"] = "dot"
        fig.add_trace(go.Scatter(
            x=xs, y=ys, name=label, line=line, legendgroup=state, **trace,
            hovertemplate=f"trial {t.number} ({state.lower()})<br>epoch %{{x}}<br>value %{{y}}<extra></extra>",
        ))
        drawn += 1
    if not drawn:
        msg = "No trial has reported intermediate values (per-epoch metrics) yet."
        if n_failed:
            msg += f" {n_failed} failed trial(s) reported some, but failed trials are not drawn."
        return _section(TITLE_LEARNING_CURVES, None, msg)
    fig.update_layout(xaxis_title="epoch", yaxis_title=ctx.target_name, height=500, margin={"t": 30},
                      hovermode="closest")
    if max_epoch <= 20:  # whole epochs only: no 0.5 ticks on short runs
        fig.update_xaxes(tick0=0, dtick=1)
    note = "Pruned trials are dashed and marked with an x at their last epoch; running trials are dotted."
    if n_failed:
        note += f" {n_failed} failed trial(s) are not drawn."
    return _section(TITLE_LEARNING_CURVES, fig, note)


def _compute_importances(ctx: _Context) -> None:
    """Fill ``ctx.importances`` (PED-ANOVA, normalized to sum to 1) or ``ctx.importance_note``."""
    import optuna

    if len(ctx.complete) < 2:
        ctx.importance_note = (f"Parameter importances need at least 2 complete trials; "
                               f"this study has {len(ctx.complete)}.")
        return
    if len(ctx.params) < 2:
        if len(ctx.params) == 1:
            ctx.importance_note = (f"Only one parameter ({ctx.params[0]}) is common to all complete trials: "
                                   "its importance is trivially 1.")
        else:
            ctx.importance_note = "No parameter is common to all complete trials: importances cannot be computed."
        return
    values = {ctx.target(t) if ctx.target else t.value for t in ctx.complete}
    if len(values) == 1:
        ctx.importance_note = ("Every complete trial has the same objective value "
                               f"({next(iter(values))!r}): parameter importances are undefined.")
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PED-ANOVA warns that a target is minimized: it is
            evaluator = optuna.importance.PedAnovaImportanceEvaluator(
                target_quantile=importance_quantile(len(ctx.complete)))
            kwargs: dict[str, Any] = {"evaluator": evaluator, "params": list(ctx.params)}
            if ctx.multi:  # the first objective, as the other plots; PED-ANOVA ranks low targets best
                sign = -1.0 if ctx.study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
                kwargs["target"] = lambda t: sign * t.values[0]
            ctx.importances = dict(optuna.importance.get_param_importances(ctx.study, **kwargs))
    except Exception as exc:  # e.g. all values equal
        log.warning("parameter importances could not be computed: %s", exc)
        ctx.importance_note = f"Parameter importances could not be computed: {type(exc).__name__}: {exc}"


def _importances(ctx: _Context) -> FigureSection:
    if ctx.importances is None:
        return _section(TITLE_IMPORTANCES, None, ctx.importance_note or "No importances.")
    items = sorted(ctx.importances.items(), key=lambda kv: kv[1])  # least important at the bottom of the list
    fig = go.Figure(go.Bar(
        x=[v for _, v in items], y=[escape(k) for k, _ in items], orientation="h",
        text=[f"{v:.2f}" for _, v in items], textposition="outside", marker_color="#636efa",
        hovertemplate="%{y}: %{x:.3f}<extra></extra>",
    ))
    fig.update_layout(xaxis_title=f"importance for {ctx.target_name}", height=140 + 30 * len(items),
                      margin={"t": 30}, xaxis_range=[0, max(1.0, max(v for _, v in items) * 1.15)])
    n = len(ctx.complete)
    quantile = importance_quantile(n)
    note = (f"PED-ANOVA importance (Optuna's default evaluator): how far each parameter's values among the "
            f"best {quantile:.0%} of the {n} complete trials differ from its values among all of them.")
    if ctx.multi_note:
        note = f"{ctx.multi_note} {note}"
    return _section(TITLE_IMPORTANCES, fig, note)


def _parallel(ctx: _Context) -> FigureSection:
    import optuna.visualization as ov

    if not ctx.complete:
        return _section(TITLE_PARALLEL, None, "No complete trial yet: nothing to draw.")
    if not ctx.all_params():
        return _section(TITLE_PARALLEL, None, "The complete trials have no parameters.")
    fig = _strip_title(ov.plot_parallel_coordinate(ctx.study, **ctx.target_kwargs))
    fig.update_layout(height=500)
    note = ctx.multi_note
    if len(ctx.complete) == 1:
        note = ((note or "") + " Only one complete trial so far.").strip()
    return _section(TITLE_PARALLEL, fig, note)


def _slice(ctx: _Context) -> FigureSection:
    import optuna.visualization as ov

    if not ctx.complete:
        return _section(TITLE_SLICE, None, "No complete trial yet: nothing to draw.")
    if not ctx.all_params():
        return _section(TITLE_SLICE, None, "The complete trials have no parameters.")
    fig = _strip_title(ov.plot_slice(ctx.study, **ctx.target_kwargs))
    n = len(ctx.all_params())
    fig.update_layout(height=420, width=max(700, 300 * n) if n > 3 else None)
    return _section(TITLE_SLICE, fig, ctx.multi_note)


def _contour(ctx: _Context) -> FigureSection:
    import optuna.visualization as ov

    if len(ctx.complete) < 2:
        return _section(TITLE_CONTOUR, None, f"A contour needs at least 2 complete trials; this study has "
                        f"{len(ctx.complete)}.")
    varying = [p for p in ctx.params if len({repr(t.params[p]) for t in ctx.complete}) > 1]
    if len(varying) < 2:
        return _section(TITLE_CONTOUR, None, "A contour needs two parameters that are common to all complete "
                        f"trials and take more than one value there; this study has {len(varying)}"
                        + (f" ({', '.join(varying)})." if varying else "."))
    if ctx.importances:
        top = sorted(varying, key=lambda k: (-ctx.importances.get(k, 0.0), k))[:2]  # type: ignore[union-attr]
        why = (f"Top two parameters by importance: {top[0]} ({ctx.importances.get(top[0], 0.0):.2f}) and "
               f"{top[1]} ({ctx.importances.get(top[1], 0.0):.2f}).")
    else:
        top = varying[:2]
        why = f"Importances are unavailable, so the first two parameters by name are shown: {top[0]}, {top[1]}."
    fig = _strip_title(ov.plot_contour(ctx.study, params=top, **ctx.target_kwargs))
    fig.update_layout(height=550)
    if not fig.data:
        return _section(TITLE_CONTOUR, None, f"{why} Optuna drew no contour for them (too few distinct values).")
    return _section(TITLE_CONTOUR, fig, f"{ctx.multi_note} {why}" if ctx.multi_note else why)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def trial_node(trial: FrozenTrial) -> str:
    """The worker a trial ran on: user attr ``sweeplab.node``, else ``worker``, else ``"worker"``."""
    node = trial.user_attrs.get(ATTR_NODE) or trial.user_attrs.get(FALLBACK_NODE_ATTR)
    return str(node) if node else UNKNOWN_NODE


def _timeline(ctx: _Context, now: datetime | None = None) -> FigureSection:
    started = [t for t in ctx.trials if t.datetime_start is not None]
    if not started:
        return _section(TITLE_TIMELINE, None, "No trial has started yet.")
    now = now or datetime.now()
    spans: list[tuple[FrozenTrial, datetime, datetime]] = []
    for t in started:
        start = t.datetime_start
        end = t.datetime_complete or max(now, start)  # type: ignore[type-var]
        spans.append((t, start, end))  # type: ignore[arg-type]
    t0 = min(s for _, s, _ in spans)
    t1 = max(e for _, _, e in spans)
    total = max((t1 - t0).total_seconds(), 1e-9)

    # Each node gets as many slots (rows) as it ran trials at once: greedy interval partitioning.
    by_node: dict[str, list[tuple[FrozenTrial, datetime, datetime]]] = {}
    for span in spans:
        by_node.setdefault(trial_node(span[0]), []).append(span)
    rows: dict[int, str] = {}  # trial number -> row label
    row_order: list[str] = []
    busy_all = 0.0
    for node in sorted(by_node):
        lanes: list[datetime] = []
        lane_busy: list[float] = []
        lane_of: dict[int, int] = {}
        for t, s, e in sorted(by_node[node], key=lambda x: (x[1], x[0].number)):
            for i, lane_end in enumerate(lanes):
                if lane_end <= s:
                    lanes[i] = e
                    lane_busy[i] += (e - s).total_seconds()
                    lane_of[t.number] = i
                    break
            else:
                lanes.append(e)
                lane_busy.append((e - s).total_seconds())
                lane_of[t.number] = len(lanes) - 1
        labels = [
            (f"{escape(node)} #{i + 1}" if len(lanes) > 1 else escape(node))
            + f" ({100 * lane_busy[i] / total:.0f}% busy)"
            for i in range(len(lanes))
        ]
        row_order.extend(labels)
        busy_all += sum(lane_busy)
        for number, i in lane_of.items():
            rows[number] = labels[i]

    fig = go.Figure()
    for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"):
        group = [sp for sp in spans if sp[0].state.name == state]
        if not group:
            continue
        hover = []
        for t, s, e in group:
            text = (f"trial {t.number} · {state.lower()}<br>{escape(trial_node(t))}<br>"
                    f"{s:%H:%M:%S} – {e:%H:%M:%S} ({(e - s).total_seconds():.1f} s)")
            if t.values and len(t.values) == 1 and _finite(t.values[0]):
                text += f"<br>{escape(ctx.target_name)} = {t.values[0]:.6g}"
            reason = t.user_attrs.get(ATTR_REASON)
            if reason:
                text += f"<br>{escape(str(reason)[:200])}"
            hover.append(text)
        fig.add_trace(go.Bar(
            name=state.lower(), orientation="h", marker_color=STATE_COLORS[state],
            base=[s.isoformat() for _, s, _ in group],
            x=[max((e - s).total_seconds(), 0.0) * 1000.0 for _, s, e in group],
            y=[rows[t.number] for t, _, _ in group],
            hovertext=hover, hoverinfo="text",
            marker_line={"color": "white", "width": 0.5},
        ))
    fig.update_layout(
        barmode="overlay", height=160 + 36 * len(row_order), margin={"t": 30, "l": 10},
        xaxis={"type": "date", "title": "time"},
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": list(reversed(row_order)),
               "automargin": True},
        legend_title_text="state",
    )
    slots = len(row_order)
    note = (f"{len(spans)} trials on {len(by_node)} worker(s), {slots} slot(s); overall utilization "
            f"{100 * busy_all / (total * slots):.0f}% of slot time over {_duration(total)}.")
    if any(t.state.name == "RUNNING" for t, _, _ in spans):
        note += " Running trials extend to the time the report was written."
    return _section(TITLE_TIMELINE, fig, note)


def _g(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _estimate(ctx: _Context) -> FigureSection:
    """The last promote's estimate: the selected trial's validation value, its re-seeded (or
    cross-validated) mean and the champion's held-out value, side by side."""
    e = SelectionEstimate.from_json(ctx.study.user_attrs[STUDY_ATTR_ESTIMATE])
    mean_label = "cross-validated mean" if e.cv_mean is not None else "re-seeded mean"
    bars = [(f"selected trial {e.trial}<br>(validation)", e.selected_value, "#ff7f0e"),
            (mean_label, e.cv_mean if e.cv_mean is not None else e.reseeded_mean, "#1f77b4"),
            (f"champion<br>(held-out, {e.heldout_rows} rows)", e.heldout_value, "#2ca02c")]
    shown = [(label, value, color) for label, value, color in bars if value is not None and _finite(value)]
    fig = go.Figure(go.Bar(x=[b[0] for b in shown], y=[b[1] for b in shown], marker_color=[b[2] for b in shown],
                           text=[f"{b[1]:.4g}" for b in shown], textposition="outside"))
    values = [float(b[1]) for b in shown]
    low, high = min(values), max(values)
    pad = max(0.05 * (high - low), 0.02 * abs(high) or 0.01)
    fig.update_layout(height=380, yaxis={"title": e.metric, "range": [low - 8 * pad, high + 3 * pad]},
                      showlegend=False, margin={"t": 30})
    if e.heldout_value is None:
        note = "The study has no test part: there is no held-out value (set objective.test_split or holdout)."
    else:
        note = (f"Optimism gap {_g(e.optimism_gap)} (selected - held-out), {_g(e.estimate_gap)} ({mean_label} - "
                f"held-out); positive means the estimate promised more than unseen rows gave. The champion was "
                f"{'refit on train + validation' if e.refit else 'trained on the training rows'}"
                f"{f' ({e.model_uri})' if e.model_uri else ''}.")
    return _section(TITLE_ESTIMATE, fig, note)


# --------------------------------------------------------------------------- public
def study_sections(study: optuna.Study) -> list[FigureSection]:
    """Every figure of ``study`` as a :class:`FigureSection`, in display order.

    Never raises for a study's content: with 0 or 1 complete trials, a single
    parameter, only failed trials, or a plot that fails, the section carries a note and
    (where nothing can be drawn) no figure. The Pareto front is present only for
    multi-objective studies, the selection estimate only for a promoted study (``sweeplab
    promote``); every other section is always present.
    """
    ctx = _Context(study)
    _compute_importances(ctx)
    builders: list[tuple[str, Callable[[], FigureSection]]] = [(TITLE_HISTORY, lambda: _history(ctx))]
    if ctx.multi:
        builders.append((TITLE_PARETO, lambda: _pareto(ctx)))
    builders += [
        (TITLE_LEARNING_CURVES, lambda: _learning_curves(ctx)),
        (TITLE_IMPORTANCES, lambda: _importances(ctx)),
        (TITLE_PARALLEL, lambda: _parallel(ctx)),
        (TITLE_SLICE, lambda: _slice(ctx)),
        (TITLE_CONTOUR, lambda: _contour(ctx)),
        (TITLE_TIMELINE, lambda: _timeline(ctx)),
    ]
    if study.user_attrs.get(STUDY_ATTR_ESTIMATE):
        builders.insert(1, (TITLE_ESTIMATE, lambda: _estimate(ctx)))
    return [_safely(title, build) for title, build in builders]


def study_figures(study: optuna.Study) -> list[tuple[str, go.Figure]]:
    """``(title, figure)`` for every figure of ``study``, in display order.

    Same sections as :func:`study_sections`; a section with nothing to draw gives a
    placeholder figure (no data, its note as the only annotation, and the note in
    ``figure.layout.meta["sweeplab_note"]``). Never raises for a study's content.
    """
    return [(s.title, s.figure if s.figure is not None else note_figure(s.note or "")) for s in study_sections(study)]

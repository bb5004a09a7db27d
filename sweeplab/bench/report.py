"""The benchmark report: one self-contained HTML file that works offline.

Same page style as the study dashboard (:mod:`sweeplab.dashboards.report`, whose CSS
and figure embedding it reuses): plotly.js inline once in ``<head>``, every figure a
``<div>`` drawn by a small inline script, every string from the benchmark escaped.

Sections (stable ids):

- ``fig-vs-trials``, ``fig-vs-time``, ``fig-vs-epochs``: best value so far against
  finished trials, wall-clock seconds and cumulative epochs; one color per
  sampler x pruner x framework configuration, its median across seeds as a line and
  its min–max across seeds as a shaded band, the target as a dashed line;
- ``fig-to-target``: trials and epochs each seed needed to reach the target (one
  point per seed that reached it; "k/n" counts those that did);
- ``fig-compute``: epochs every cell spent (by trial state) and its wall time;
- ``ranking``: configurations ranked by median final best, with spread, target and
  compute columns, and whether the lead holds across seeds (Mann-Whitney U between the
  top two, per-seed wins);
- ``audit``: the pruning audit of each cell (pruned trials re-trained to the end);
- ``cells``: every cell with its counts and MLflow run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from sweeplab.bench.results import BenchResult, ConfigSummary, axis_grid, step_band
from sweeplab.dashboards.figures import FigureSection
from sweeplab.dashboards.report import PAGE_CSS, figure_html, safe_file_stem, write_page_atomically
from sweeplab.dashboards.report import format_value as _fmt
from sweeplab.dashboards.report import html_text as _e

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["BENCH_SECTION_IDS", "bench_report_html", "bench_sections", "write_bench_report"]

BENCH_SECTION_IDS = ("fig-vs-trials", "fig-vs-time", "fig-vs-epochs", "fig-to-target", "fig-compute", "ranking",
                     "audit", "cells")
"""HTML ids of the report's sections, in page order."""

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf")
_DASHES = ("solid", "dash", "dot", "dashdot")
_BENCH_CSS = """
.verdict { background: #eef6ee; border-left: 4px solid #2ca02c; padding: 8px 12px; margin: 8px 0; }
.verdict.weak { background: #fff8e1; border-left-color: #f0b400; }
td.good { color: #2ca02c; font-weight: 600; } td.bad { color: #d62728; font-weight: 600; }
"""


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[k:k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _style(configs: Sequence[ConfigSummary]) -> dict[str, tuple[str, str]]:
    """Config label -> (color, dash), stable in factor order of the ranking's configs."""
    ordered = sorted(configs, key=lambda c: c.config)
    return {c.label: (_color(i), _DASHES[(i // len(_PALETTE)) % len(_DASHES)]) for i, c in enumerate(ordered)}


# ---------------------------------------------------------------------- figures
def _steps(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """The corner points of the step function through ``(xs, ys)`` (each y held until the next x),
    so that a filled band between two step functions is drawn with straight lines."""
    out_x: list[float] = []
    out_y: list[float] = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        out_x.append(x)
        out_y.append(y)
        if i + 1 < len(xs):
            out_x.append(xs[i + 1])
            out_y.append(y)
    return out_x, out_y


def _curves_figure(result: BenchResult, axis: str, title: str) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    style = _style(result.configs)
    xmax = 0.0
    for cfg in sorted(result.configs, key=lambda c: c.config):
        curves = [cell.curve(axis) for cell in cfg.cells]
        curves = [c for c in curves if c]
        if not curves:
            continue
        xs, med, lo, hi = step_band(curves, axis_grid(curves, axis))
        if not xs:
            continue
        xmax = max(xmax, xs[-1])
        color, dash = style[cfg.label]
        n = len(curves)
        sx, shi = _steps(xs, hi)
        _, slo = _steps(xs, lo)
        fig.add_trace(go.Scatter(
            x=sx + sx[::-1], y=shi + slo[::-1], fill="toself", fillcolor=_rgba(color, 0.16),
            line={"width": 0}, hoverinfo="skip", legendgroup=cfg.label, showlegend=False,
            name=f"{cfg.label} min-max across {n} seeds"))
        fig.add_trace(go.Scatter(
            x=xs, y=med, mode="lines", line={"color": color, "dash": dash, "width": 2.5, "shape": "hv"},
            legendgroup=cfg.label, name=f"{cfg.label} (median of {n})",
            customdata=list(zip(lo, hi, strict=True)),
            hovertemplate=f"{escape(cfg.label)}<br>x=%{{x:.4g}}<br>median %{{y:.4g}}"
                          "<br>min %{customdata[0]:.4g} · max %{customdata[1]:.4g}<extra></extra>"))
    if result.target is not None and xmax > 0:
        fig.add_trace(go.Scatter(x=[0, xmax], y=[result.target, result.target], mode="lines",
                                 line={"color": "#444", "dash": "dash", "width": 1},
                                 name=f"target {result.target:.4g} ({result.target_source})", hoverinfo="skip"))
    xlabel = {"trials": "finished trials", "time": "wall time since the cell's first trial (s)",
              "epochs": "cumulative epochs (all trials of the cell)"}[axis]
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=f"best {result.metric} so far",
                      height=460, margin={"l": 60, "r": 20, "t": 50, "b": 50}, legend={"font": {"size": 11}},
                      template="plotly_white")
    return fig


def _to_target_figure(result: BenchResult) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("trials to reach the target", "epochs to reach the target"))
    style = _style(result.configs)
    for cfg in result.configs:
        reach = cfg.to_target()
        hit = [(c.seed, r) for c, r in zip(cfg.cells, reach, strict=True) if r["trials"] is not None]
        name = f"{cfg.label} ({len(hit)}/{len(reach)})"
        color = style[cfg.label][0]
        for col, key in ((1, "trials"), (2, "epochs")):
            ys = [r[key] for _, r in hit]
            fig.add_trace(go.Box(
                y=ys if ys else [None], x=[name] * max(1, len(ys)), name=name, boxpoints="all", jitter=0.3,
                pointpos=0, marker={"color": color, "size": 9}, line={"color": color}, legendgroup=cfg.label,
                showlegend=col == 1, text=[f"seed {s}" for s, _ in hit],
                hovertemplate="%{text}: %{y}<extra>" + escape(cfg.label) + "</extra>"), row=1, col=col)
    fig.update_yaxes(title_text="trials", row=1, col=1, rangemode="tozero")
    fig.update_yaxes(title_text="epochs", row=1, col=2, rangemode="tozero")
    fig.update_xaxes(title_text="config (seeds that reached the target / seeds)", tickangle=-20)
    fig.update_layout(height=480, template="plotly_white", margin={"l": 60, "r": 20, "t": 50, "b": 110},
                      boxmode="group", showlegend=False)
    return fig


def _compute_figure(result: BenchResult) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("epochs spent per cell, by trial state", "wall time per cell (s)"))
    cells = sorted(result.cells, key=lambda c: (c.config, c.seed))
    labels = [f"{c.config_label} · s{c.seed}" for c in cells]
    for state, color in (("COMPLETE", "#2ca02c"), ("PRUNED", "#ff7f0e"), ("FAIL", "#d62728")):
        ys = [sum(e.epochs for e in c.events if e.state == state) for c in cells]
        fig.add_trace(go.Bar(x=labels, y=ys, name=state.lower(), marker={"color": color}), row=1, col=1)
    style = _style(result.configs)
    fig.add_trace(go.Bar(x=labels, y=[round(c.wall_time_s, 2) for c in cells], name="wall time",
                         marker={"color": [style[c.config_label][0] for c in cells]}, showlegend=False),
                  row=2, col=1)
    fig.update_layout(barmode="stack", height=620, template="plotly_white",
                      margin={"l": 60, "r": 20, "t": 50, "b": 140})
    fig.update_xaxes(tickangle=-35, row=2, col=1)
    return fig


def bench_sections(result: BenchResult) -> list[FigureSection]:
    """The figure sections of the report (a figure that cannot be drawn becomes a note)."""
    n_seeds = len(result.factors.get("seeds", []))
    band = f"line: median across {n_seeds} seeds; band: min–max across seeds"
    origin = ("from the bench spec" if result.target_source == "spec"
              else "derived: the worst configuration's median final best; set `target:` in the bench spec")
    target = (f"Target {result.target:.6g} ({origin})." if result.target is not None
              else "No target: no cell has a complete trial.")
    specs = [
        ("fig-vs-trials", "Best value vs trials", lambda: _curves_figure(result, "trials", ""),
         f"Best {result.metric} so far after each finished trial (completion order); {band}. {target}"),
        ("fig-vs-time", "Best value vs wall time", lambda: _curves_figure(result, "time", ""),
         f"Seconds from each cell's first trial start to each trial's end (includes queueing when cells share the "
         f"cluster, and the pause of a resumed cell); {band}."),
        ("fig-vs-epochs", "Best value vs compute (epochs)", lambda: _curves_figure(result, "epochs", ""),
         f"Cumulative epochs of every trial of the cell (pruned trials cost only the epochs they ran); {band}."),
        ("fig-to-target", "Trials and compute to reach the target", lambda: _to_target_figure(result),
         f"{target} One point per seed that reached it, counting every trial (and its epochs) up to the first "
         "complete trial at the target; k/n: seeds that reached it."),
        ("fig-compute", "Compute spent per cell", lambda: _compute_figure(result),
         "Epochs = intermediate values reported to the pruner; wall time from the first trial start to the last "
         "trial end."),
    ]
    out = []
    for key, title, build, note in specs:
        try:
            out.append(FigureSection(key=key, title=title, figure=build(), note=note))
        except Exception as exc:  # a figure that cannot be drawn must not sink the report
            out.append(FigureSection(key=key, title=title, figure=None,
                                     note=f"This figure could not be drawn: {type(exc).__name__}: {exc}"))
    return out


# ---------------------------------------------------------------------- tables
def _ranking_html(result: BenchResult) -> str:
    rows = []
    for c in (cfg.to_dict() for cfg in result.configs):
        finals = ", ".join(_fmt(v) for v in c["final_best"])
        pruned = None if c["pruned_fraction"] is None else round(100 * c["pruned_fraction"], 1)
        values = (_e(c["median_best"]), _e(c["mean_best"]), _e(c["std_best"]),
                  f"{_e(c['min_best'])} – {_e(c['max_best'])}", escape(finals), f"{c['reached_target']}/{c['n_seeds']}",
                  _e(c["median_trials_to_target"]), _e(c["median_epochs_to_target"]), _e(c["total_epochs"]),
                  _e(c["mean_wall_time_s"]), _e(pruned))
        rows.append(f"<tr><td class='num'>{_e(c['rank'])}</td><td>{_e(c['config'])}</td>"
                    + "".join(f"<td class='num'>{v}</td>" for v in values) + "</tr>")
    head = ("<tr><th>rank</th><th>config (sampler / pruner / framework)</th><th>median best</th><th>mean</th>"
            "<th>std</th><th>min – max</th><th>final best per seed</th><th>reached target</th>"
            "<th>median trials to target</th><th>median epochs to target</th><th>total epochs</th>"
            "<th>mean wall time (s)</th><th>pruned %</th></tr>")
    cmp = result.comparison
    strong = cmp.get("p_value") is not None and cmp["p_value"] < 0.05
    verdict = (f"<p class='verdict{'' if strong else ' weak'}' id='seed-consistency'>"
               f"Across seeds: {escape(str(cmp.get('verdict')))}</p>")
    note = ("<p class='note'>Ranked by the median across seeds of each cell's final best value (then mean, then "
            "epochs). Medians to target are given when more than half of the seeds reached it.</p>")
    return (f"<section class='figure' data-figure='ranking'><h2 id='ranking'>Ranking</h2>{note}"
            f"<table>{head}{''.join(rows)}</table>{verdict}</section>")


def _audit_html(result: BenchResult) -> str:
    audited = [(c, c.audit) for c in result.cells if c.audit is not None]
    pruned_cells = [c for c in result.cells if any(e.state == "PRUNED" for e in c.events)]
    heading = "<h2 id='audit'>Pruning audit</h2>"
    if not audited:
        why = ("no cell has pruned trials" if not pruned_cells else
               f"{len(pruned_cells)} cells have pruned trials but none was audited: set `audit: N` in the bench "
               "spec (or `--audit N`), or run `sweeplab audit STUDY`")
        return (f"<section class='figure' data-figure='audit'>{heading}<p class='note missing'>"
                f"No audit: {escape(why)}.</p></section>")
    rows = []
    tot_ok = tot_best = tot_med = 0
    for c, a in audited:
        tot_ok += a.n_retrained
        tot_best += a.would_beat_best or 0
        tot_med += a.would_beat_median or 0
        epochs = sorted({t.epochs_trained for t in a.trials})
        rows.append("<tr>" + "".join(f"<td class='num'>{v}</td>" for v in (
            _e(c.study), _e(c.config_label), _e(c.seed), _e(a.n_pruned), _e(a.n_audited),
            _e(a.n_retrain_failed), _e(", ".join(map(str, epochs))), _e(a.best_value),
            _e(a.would_beat_best), _e(a.median_value), _e(a.would_beat_median))) + "</tr>")
    head = ("<tr><th>cell</th><th>config</th><th>seed</th><th>pruned</th><th>re-trained</th><th>re-train failed</th>"
            "<th>epochs trained</th><th>study best</th><th>would beat best</th><th>study median</th>"
            "<th>would beat median</th></tr>")
    pct = (lambda k: f"{k} of {tot_ok} ({100 * k / tot_ok:.0f}%)") if tot_ok else (lambda k: str(k))
    summary = (f"<p class='verdict{' weak' if tot_best else ''}'>Over all audited cells, pruning stopped "
               f"{pct(tot_best)} re-trained trials that would have beaten their study's best, and {pct(tot_med)} "
               "that would have beaten its median.</p>")
    note = ("<p class='note'>A sample of each cell's pruned trials was trained again to the full epochs with the "
            "same params and seed and no pruning (see <code>sweeplab audit</code>); results are stored as "
            "<code>audit.json</code> on each cell's MLflow run.</p>")
    return (f"<section class='figure' data-figure='audit'>{heading}{note}<table>{head}{''.join(rows)}</table>"
            f"{summary}</section>")


def _cells_html(result: BenchResult) -> str:
    rows = []
    for d in sorted((c.to_dict(result.target) for c in result.cells), key=lambda d: (d["config"], d["seed"])):
        rows.append("<tr>" + "".join(f"<td class='num'>{v}</td>" for v in (
            _e(d["study"]), _e(d["config"]), _e(d["seed"]), _e(d["status"]), _e(d["n_trials"]), _e(d["n_complete"]),
            _e(d["n_pruned"]), _e(d["n_failed"]), _e(d["best_value"]), _e(d["trials_to_target"]),
            _e(d["epochs_to_target"]), _e(d["total_epochs"]), _e(d["wall_time_s"]),
            f"<code>{_e(d['mlflow_parent_run_id'])}</code>")) + "</tr>")
        if d["error"]:
            rows.append(f"<tr><td colspan='14' class='bad'>{_e(d['error'])}</td></tr>")
    head = ("<tr><th>study</th><th>config</th><th>seed</th><th>status</th><th>trials</th><th>complete</th>"
            "<th>pruned</th><th>failed</th><th>best</th><th>trials to target</th><th>epochs to target</th>"
            "<th>epochs</th><th>wall time (s)</th><th>MLflow study run</th></tr>")
    note = ("<p class='note'>Each cell is an ordinary study: <code>sweeplab report STUDY</code> draws its own "
            "dashboard, <code>sweeplab audit STUDY</code> audits its pruning.</p>")
    return (f"<section class='figure' data-figure='cells'><h2 id='cells'>Cells</h2>{note}<table>{head}"
            f"{''.join(rows)}</table></section>")


def _header(result: BenchResult, generated: datetime) -> str:
    d = result.to_dict()
    cards = [("cells", d["n_cells"]), ("configs", len(result.configs)), ("seeds", len(result.factors["seeds"])),
             ("trials", d["n_trials"]), ("epochs", d["total_epochs"])]
    if d["cells_failed"]:
        cards.append(("failed cells", d["cells_failed"]))
    card_html = "".join(f"<div class='card'><div class='n'>{_e(v)}</div><div class='k'>{escape(k)}</div></div>"
                        for k, v in cards)
    meta = [f"generated {generated:%Y-%m-%d %H:%M:%S}", f"metric {escape(result.metric)}",
            f"direction {escape(result.direction)}", f"{result.trials} trials per cell"]
    if result.target is not None:
        meta.append(f"target {_e(result.target)} ({escape(result.target_source)})")
    factor_rows = "".join(f"<tr><th>{escape(k)}</th><td>{_e(', '.join(map(str, v)))}</td></tr>"
                          for k, v in result.factors.items())
    ids = [("MLflow experiment", result.experiment), ("MLflow experiment id", result.experiment_id),
           ("MLflow bench run id", result.bench_run_id)]
    id_rows = "".join(f"<tr><th>{k}</th><td><code>{_e(v)}</code></td></tr>" for k, v in ids if v)
    best = ""
    if result.configs and result.configs[0].finals():
        top = result.configs[0]
        best = (f"<div><h2>Best configuration</h2><table><tr><th>config</th><td>{_e(top.label)}</td></tr>"
                f"<tr><th>median final best</th><td class='num'>{_e(top.median_best())}</td></tr></table></div>")
    return (f"<header><h1>Benchmark <code>{escape(result.bench)}</code></h1>"
            f"<p class='meta'>{' · '.join(meta)}</p><div class='cards'>{card_html}</div>"
            f"<div class='grid'>{best}<div><h2>Factors</h2><table>{factor_rows}</table></div>"
            + (f"<div><h2>MLflow</h2><table>{id_rows}</table></div>" if id_rows else "")
            + "</div></header>")


# ---------------------------------------------------------------------- page
def bench_report_html(result: BenchResult, generated: datetime | None = None) -> str:
    """The report page of ``result`` as one HTML string (see the module docstring)."""
    import plotly.offline

    generated = generated or datetime.now()
    stem = safe_file_stem(result.bench)
    sections = bench_sections(result)
    titles = [(s.key, s.title) for s in sections] + [("ranking", "Ranking"), ("audit", "Pruning audit"),
                                                      ("cells", "Cells")]
    toc = "".join(f"<a href='#{escape(k)}'>{escape(t)}</a>" for k, t in titles)
    figures = "".join(figure_html(s, stem) for s in sections)
    body = _ranking_html(result) + figures + _audit_html(result) + _cells_html(result)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>sweeplab bench · {escape(result.bench)}</title><style>{PAGE_CSS}{_BENCH_CSS}</style>"
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script>\n"
        "</head><body>"
        f"{_header(result, generated)}<nav>{toc}</nav><main>{body}</main>"
        "<footer>Written by sweeplab bench. This page is self-contained and works offline.</footer>"
        "</body></html>\n"
    )


def write_bench_report(result: BenchResult, path: str | Path) -> Path:
    """Write the report of ``result`` to ``path`` (parent folders created, file replaced
    atomically, mode 0644) and return the path."""
    page = bench_report_html(result)
    return write_page_atomically(Path(path), page, 0o644)

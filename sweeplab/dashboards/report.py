"""The study dashboard: one self-contained HTML file that works offline.

The page embeds plotly.js once, inline in its ``<head>`` (no CDN, no network URL in
any ``<script src>``); every figure is a ``<div>`` drawn by a small inline script.
Its header holds the study name, trial counts by state, the best value and params
(or the Pareto front) and the MLflow ids; then each figure of
:func:`sweeplab.dashboards.figures.study_sections` follows under an ``<h2>`` whose id
is stable (``fig-optimization-history``, ``fig-timeline``...). Every string that comes
from the study (names, params, attrs, notes) is HTML-escaped.

Never imports torch, tensorflow or ray.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
from collections.abc import Mapping
from datetime import datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeplab.core.errors import UsageError
from sweeplab.core.records import StudySummary
from sweeplab.dashboards.figures import FigureSection, study_sections

if TYPE_CHECKING:
    import optuna

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")

PAGE_CSS = """
:root { --fg: #1d2533; --muted: #5b6577; --line: #dde2ea; --accent: #3b5bdb; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: #f6f7f9; }
header, nav, main { max-width: 1400px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h1 code { font-size: 22px; }
h2 { font-size: 19px; margin: 0 0 6px; }
.meta, .note { color: var(--muted); margin: 4px 0 10px; }
.note { font-size: 14px; }
.note.missing { background: #fff8e1; border-left: 4px solid #f0b400; padding: 8px 12px; color: #5c4a00; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 96px; }
.card .n { font-size: 22px; font-weight: 600; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card.complete .n { color: #2ca02c; } .card.pruned .n { color: #ff7f0e; } .card.failed .n { color: #d62728; }
.card.running .n { color: #1f77b4; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 12px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; }
.grid { display: flex; flex-wrap: wrap; gap: 24px; }
nav { margin: 6px auto 12px; display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a { color: var(--accent); text-decoration: none; white-space: nowrap; }
section.figure { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px;
                 margin: 0 0 22px; }
.plot { overflow-x: auto; }
footer { max-width: 1400px; margin: 0 auto; padding: 12px 24px 32px; color: var(--muted); font-size: 13px; }
"""


def safe_file_stem(study_name: str) -> str:
    """``study_name`` made safe as a file name: characters outside ``[A-Za-z0-9._-]``
    become ``_`` and leading dots are dropped (a study name never escapes its folder)."""
    stem = _UNSAFE_FILE_CHARS.sub("_", study_name).lstrip(".")
    return stem or "study"


def format_value(value: Any) -> str:
    """A value as short text: floats with 6 significant digits, lists element-wise."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def _joined(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def html_text(value: Any) -> str:
    return escape(format_value(value), quote=True)


def _params_table(params: Mapping[str, Any]) -> str:
    if not params:
        return "<p class='meta'>no parameters</p>"
    rows = "".join(f"<tr><th>{html_text(k)}</th><td class='num'>{html_text(v)}</td></tr>"
                   for k, v in sorted(params.items()))
    return f"<table class='params'>{rows}</table>"


def _header(study_name: str, summary: StudySummary, generated: datetime) -> str:
    counts = [
        ("complete", summary.n_complete), ("pruned", summary.n_pruned), ("failed", summary.n_failed),
        ("retried", summary.n_retried), ("running", summary.n_running), ("waiting", summary.n_waiting),
        ("finished", summary.n_trials),
    ]
    cards = "".join(
        f"<div class='card {k}'><div class='n'>{html_text(v if v is not None else 0)}</div>"
        f"<div class='k'>{k}</div></div>"
        for k, v in counts if v is not None or k in ("complete", "pruned", "failed")
    )
    target = summary.trials_target
    direction = summary.direction
    metric = summary.metric
    meta = [f"generated {generated:%Y-%m-%d %H:%M:%S}"]
    if direction:
        meta.append("direction " + escape(_joined(direction)))
    if metric:
        meta.append("metric " + escape(_joined(metric)))
    if target:
        meta.append(f"target {html_text(target)} trials")
    parts = [
        f"<h1>Study <code>{escape(study_name)}</code></h1>",
        f"<p class='meta'>{' · '.join(meta)}</p>",
        f"<div class='cards' id='counts'>{cards}</div>",
    ]

    ids = [("MLflow experiment id", summary.mlflow_experiment_id),
           ("MLflow parent run id", summary.mlflow_parent_run_id)]
    front = summary.pareto_front
    best: list[str] = []
    if front:
        rows = "".join(
            f"<tr><td class='num'>{html_text(p.trial)}</td><td class='num'>{html_text(p.values)}</td>"
            "<td>" + html_text(", ".join(f"{k}={format_value(v)}" for k, v in sorted(p.params.items())))
            + "</td>"
            f"<td>{html_text(p.run_id)}</td></tr>"
            for p in front[:50]
        )
        more = f"<p class='meta'>… and {len(front) - 50} more</p>" if len(front) > 50 else ""
        best.append(f"<div><h2 id='best'>Pareto front ({len(front)} trials)</h2><table><tr><th>trial</th>"
                    f"<th>values</th><th>params</th><th>MLflow run</th></tr>{rows}</table>{more}</div>")
    elif summary.best_trial is not None:
        info = "".join(f"<tr><th>{k}</th><td class='num'>{html_text(v)}</td></tr>" for k, v in (
            ("best value", summary.best_value), ("best trial", summary.best_trial),
            ("best MLflow run", summary.best_run_id)) if v is not None)
        best.append(f"<div><h2 id='best'>Best trial</h2><table>{info}</table></div>")
        best.append(f"<div><h2>Best params</h2>{_params_table(summary.best_params or {})}</div>")
    else:
        best.append("<div><h2 id='best'>Best trial</h2><p class='note'>No complete trial yet.</p></div>")
    id_rows = "".join(f"<tr><th>{k}</th><td><code>{html_text(v)}</code></td></tr>" for k, v in ids if v)
    if id_rows:
        best.append(f"<div><h2>MLflow</h2><table>{id_rows}</table></div>")
    parts.append(f"<div class='grid'>{''.join(best)}</div>")
    return "<header>" + "".join(parts) + "</header>"


def figure_html(section: FigureSection, file_stem: str) -> str:
    heading = f"<h2 id='{escape(section.key)}'>{escape(section.title)}</h2>"
    if section.figure is None:
        note = f"<p class='note missing'>{escape(section.note or 'Nothing to draw.')}</p>"
        return f"<section class='figure' data-figure='{escape(section.key)}'>{heading}{note}</section>"
    note = f"<p class='note'>{escape(section.note)}</p>" if section.note else ""
    config = {"responsive": True, "displaylogo": False,
              "toImageButtonOptions": {"filename": f"{file_stem}-{section.key}"}}
    div = section.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"{section.key}-plot",
                                 config=config, default_width="100%")
    return (f"<section class='figure' data-figure='{escape(section.key)}'>{heading}{note}"
            f"<div class='plot'>{div}</div></section>")


def study_report_html(study_name: str, study: optuna.Study, summary: StudySummary | None = None, *,
                      refresh_seconds: int | None = None, generated: datetime | None = None) -> str:
    """The report page of ``study`` as one HTML string (see :func:`write_study_report`)."""
    import plotly.offline

    from sweeplab.search.summary import summarize

    if refresh_seconds is not None and (isinstance(refresh_seconds, bool) or not isinstance(refresh_seconds, int)
                                        or refresh_seconds <= 0):
        raise UsageError(f"refresh_seconds: must be a positive whole number of seconds, got {refresh_seconds!r}")
    info = summary if summary is not None else summarize(study)
    generated = generated or datetime.now()
    stem = safe_file_stem(study_name)
    sections = study_sections(study)
    toc = "".join(f"<a href='#{escape(s.key)}'>{escape(s.title)}</a>" for s in sections)
    body = "".join(figure_html(s, stem) for s in sections)
    refresh = f'<meta http-equiv="refresh" content="{refresh_seconds}">' if refresh_seconds else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"{refresh}<title>sweeplab · {escape(study_name)}</title><style>{PAGE_CSS}</style>"
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script>\n"
        "</head><body>"
        f"{_header(study_name, info, generated)}<nav>{toc}</nav><main>{body}</main>"
        "<footer>Written by sweeplab. This page is self-contained and works offline.</footer>"
        "</body></html>\n"
    )


class _DropMentions(logging.Filter):
    """Drops the log records that mention ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def import_report_dependencies() -> None:
    """Import what writing a report needs, Optuna's figures (plotly) and importance
    evaluators (scikit-learn, which Optuna imports for fANOVA), and draw every figure once
    on a small study made up here (plotly builds the validators of a kind of figure on its first use: the parallel
    coordinates took 0.17 s the first time, 0.04 s after). For a process that writes a
    report later (the service's supervisor; a run's driver while its workers train): at the
    end of a study this costs a second or more that nothing else overlaps."""
    import optuna
    import optuna.importance
    import optuna.visualization

    from sweeplab.dashboards.figures import study_sections

    name = "sweeplab-report-warm-up"
    quiet = _DropMentions(name)  # Optuna announces every new study in memory at INFO
    storage_log = logging.getLogger(optuna.storages.InMemoryStorage.__module__)
    storage_log.addFilter(quiet)
    try:
        study = optuna.create_study(study_name=name, direction="maximize", storage=optuna.storages.InMemoryStorage())
    finally:
        storage_log.removeFilter(quiet)
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0),
             "n": optuna.distributions.CategoricalDistribution(("a", "b"))}
    for i in range(4):
        study.add_trial(optuna.trial.create_trial(
            params={"x": i / 4, "n": "ab"[i % 2]}, distributions=space, value=i / 4,
            intermediate_values={1: i / 8, 2: i / 4}))
    study_sections(study)


def write_study_report(study_name: str, summary: StudySummary | None = None, *,
                       study: optuna.Study | None = None, storage_url: str | None = None,
                       path: str | Path | None = None, refresh_seconds: int | None = None) -> Path:
    """Write the HTML dashboard of study ``study_name`` and return the path written.

    ``study``: the study to draw; when ``None`` it is loaded from ``storage_url``
    (resolved like every command: the flag, else ``$SWEEPLAB_STORAGE``, else the
    default file), raising StudyNotFoundError when it does not exist there.
    ``summary``: the study's summary (:func:`sweeplab.search.summary.summarize`)
    the header shows; computed from the study when ``None``.
    ``path``: the file to write (parent folders are created; UsageError when it cannot be
    written there); when ``None``, a file
    named ``<study_name>-report.html`` in a new private temp folder (mode 0700).
    ``refresh_seconds``: when given (> 0), the page reloads itself that often, for
    watching a study that runs.

    The file is replaced atomically, so a browser refreshing it never sees half a page.
    Never raises for a study's content (see :func:`study_sections`).
    """
    if study is None:
        from sweeplab.search.storage import load_existing_study, resolve_storage_url

        study = load_existing_study(study_name, resolve_storage_url(storage_url))
    page = study_report_html(study_name, study, summary, refresh_seconds=refresh_seconds)
    if path is None:
        folder = Path(tempfile.mkdtemp(prefix="sweeplab-report-"))
        os.chmod(folder, 0o700)
        out = folder / f"{safe_file_stem(study_name)}-report.html"
    else:
        out = Path(path)
    return write_page_atomically(out, page, 0o644 if path is not None else 0o600)


def write_page_atomically(out: Path, page: str, mode: int) -> Path:
    """Write ``page`` to ``out`` (its folder is created) through a temp file in the same
    folder renamed over it, so a reader never sees half a page; the file gets ``mode``.

    Raises UsageError naming the file when its folder cannot be made or written to (the
    ``-o`` a user gave); nothing is left behind.
    """
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        reason = (f"{out.parent} is a file, not a folder" if isinstance(exc, (FileExistsError, NotADirectoryError))
                  else exc.strerror or str(exc))
        raise UsageError(f"cannot write {out}: {reason}. Give -o/--output a file in a folder you can "
                         "write to") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return out

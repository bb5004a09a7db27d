"""Plotly figures and self-contained HTML reports of studies and benchmarks.

Public surface: :func:`study_figures` and :func:`study_sections` (the figures of one
study, never raising for its content) and :func:`write_study_report` /
:func:`study_report_html` (the offline HTML dashboard); the benchmark report
:func:`write_bench_report` / :func:`bench_report_html` (it lives in
``sweeplab.bench.report``). Never imports torch, tensorflow or ray.
"""

from __future__ import annotations

from typing import Any

from sweeplab.dashboards.figures import FIGURE_IDS, FigureSection, study_figures, study_sections
from sweeplab.dashboards.report import study_report_html, write_study_report

__all__ = [
    "FIGURE_IDS",
    "FigureSection",
    "bench_report_html",
    "study_figures",
    "study_report_html",
    "study_sections",
    "write_bench_report",
    "write_study_report",
]


def __getattr__(name: str) -> Any:
    """The benchmark report (``sweeplab.bench.report``), imported on first use: it builds
    on this package, so importing it here eagerly would be circular."""
    if name in ("bench_report_html", "write_bench_report"):
        from sweeplab.bench import report

        return getattr(report, name)
    raise AttributeError(f"module 'sweeplab.dashboards' has no attribute {name!r}")

"""Plotly figures and self-contained HTML reports of studies and benchmarks.

Public surface: :func:`study_figures` and :func:`study_sections` (the figures of one
study, never raising for its content) and :func:`write_study_report` /
:func:`study_report_html` (the offline HTML dashboard). The benchmark report builds on
these and lives with the benchmarks (``sweeplab.bench.report``). Never imports torch,
tensorflow or ray.
"""

from __future__ import annotations

from sweeplab.dashboards.figures import FIGURE_IDS, FigureSection, study_figures, study_sections
from sweeplab.dashboards.report import import_report_dependencies, study_report_html, write_study_report

__all__ = [
    "FIGURE_IDS",
    "FigureSection",
    "import_report_dependencies",
    "study_figures",
    "study_report_html",
    "study_sections",
    "write_study_report",
]

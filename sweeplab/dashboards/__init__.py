"""Plotly figures and self-contained HTML reports of studies and benchmarks."""

from __future__ import annotations

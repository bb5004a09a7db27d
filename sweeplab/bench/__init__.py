"""Benchmarks: the same search under several samplers x pruners x frameworks x seeds.

A bench spec (:mod:`sweeplab.bench.spec`) expands into one ordinary study per cell;
:func:`run_bench` runs them (resumably, under one MLflow bench run) and writes the
report (:mod:`sweeplab.bench.report`); :func:`audit_study` checks what a study's
pruner cost (:mod:`sweeplab.bench.audit`). Importing this package is cheap: Ray,
Optuna, MLflow and plotly are imported by the functions that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweeplab.bench.spec import BenchCell, BenchSpec, Level, load_bench_spec, parse_bench_spec

if TYPE_CHECKING:
    from sweeplab.bench.audit import audit_study
    from sweeplab.bench.report import write_bench_report
    from sweeplab.bench.results import BenchResult
    from sweeplab.bench.runner import BenchOptions, run_bench

__all__ = [
    "BenchCell",
    "BenchOptions",
    "BenchResult",
    "BenchSpec",
    "Level",
    "audit_study",
    "load_bench_spec",
    "parse_bench_spec",
    "run_bench",
    "write_bench_report",
]

_LAZY = {
    "audit_study": "sweeplab.bench.audit",
    "write_bench_report": "sweeplab.bench.report",
    "BenchResult": "sweeplab.bench.results",
    "BenchOptions": "sweeplab.bench.runner",
    "run_bench": "sweeplab.bench.runner",
}


def __getattr__(name: str) -> Any:
    """Import the heavier parts on first use (``from sweeplab.bench import run_bench``)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sweeplab.bench' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

"""The ``sweeplab bench``, ``sweeplab bench record`` and ``sweeplab audit`` subcommands (called by :mod:`sweeplab.cli`).

Each function takes the parsed arguments and the CLI's ``emit(args, payload, text)``,
which prints one JSON object with ``--json`` and the text otherwise; it returns the
exit code. Errors are raised as :class:`~sweeplab.core.errors.SweeplabError` subclasses for
the CLI to print (2: bad spec or flags, 1: anything else, 130: interrupted).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sweeplab.core.errors import SpecError, UsageError

Emit = Callable[[argparse.Namespace, dict[str, Any], str], None]

__all__ = ["audit_command", "bench_command", "parse_sets", "record_command"]


def parse_sets(items: Sequence[str] | None) -> dict[str, Any]:
    """``["objective.epochs=2", "target=0.9"]`` -> ``{"objective.epochs": 2, "target": 0.9}``.

    Values are read as YAML (``2`` an int, ``1e-3`` a float, ``[tpe, random]`` a list,
    ``null``); raises UsageError for an item without ``=`` or a value that is not YAML.
    """
    from sweeplab.spaces.yaml_io import load_yaml

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set: must look like KEY=VALUE (e.g. objective.epochs=2), got {item!r}")
        try:
            out[key] = load_yaml(text, source=f"--set {key}")
        except SpecError as exc:
            raise UsageError(f"--set {key}: the value must be YAML, got {text!r} ({exc.problems[0].message})") from None
    return out


def bench_command(args: argparse.Namespace, emit: Emit) -> int:
    """Load the bench spec (flags and ``--set`` override it), then validate only
    (``--validate``) or run it and print its result."""
    from sweeplab.bench.spec import load_bench_spec

    overrides = parse_sets(args.set)
    for key, value in (("trials", args.trials), ("workers", args.workers), ("factors.seeds", args.seeds),
                       ("parallel_cells", args.parallel_cells), ("audit", args.audit)):
        if value is not None:
            overrides[key] = value
    bench = load_bench_spec(args.spec, overrides)
    simulated = bench.simulate.to_dict() if bench.simulate is not None else None
    if args.validate:
        cells = [{"study": c.study, "config": c.config_label, "seed": c.seed} for c in bench.cells]
        on = f", simulated on table {bench.simulate.name}" if bench.simulate is not None else ""
        text = "\n".join([f"{args.spec}: valid (bench {bench.bench}, {len(bench.cells)} cells x {bench.trials} "
                          f"trials{on})", *(f"  {c['study']}" for c in cells)])
        emit(args, {"valid": True, "bench": bench.bench, "n_cells": len(cells), "cells": cells,
                    "simulated": simulated}, text)
        return 0

    from sweeplab.bench.runner import BenchOptions, bench_text, run_bench

    if bench.simulate is not None:  # no stores, no Ray: only the report and the progress lines apply
        options = BenchOptions(storage_url="", tracking_uri="", progress=not args.no_progress,
                               report_path=args.output)
    else:
        from sweeplab.search.storage import resolve_storage_url
        from sweeplab.tracking.mlflow_tracker import resolve_tracking_uri

        resume = " ".join(shlex.quote(a) for a in ["sweeplab", *sys.argv[1:]]) if sys.argv[1:2] == ["bench"] else ""
        options = BenchOptions(storage_url=resolve_storage_url(args.storage),
                               tracking_uri=resolve_tracking_uri(args.tracking_uri), address=args.address,
                               progress=not args.no_progress, report_path=args.output, resume_command=resume)
    result = run_bench(bench, options)
    text = bench_text(result)
    if bench.simulate is not None:
        text += (f"\nsimulated  on table {bench.simulate.name} ({bench.simulate.table}): times are simulated seconds; "
                 f"{result.elapsed_s} s of wall time")
    emit(args, {**result.to_dict(), "simulated": simulated}, text)
    return 0


def record_command(args: argparse.Namespace, emit: Emit) -> int:
    """``sweeplab bench record``: train every configuration of a record spec (``--set`` overrides
    it) with every seed and write the table of learning curves (see :mod:`sweeplab.bench.record`)."""
    from sweeplab.bench.record import load_record_spec

    record = load_record_spec(args.spec, parse_sets(args.set))
    output = args.output or f"{record.table}.parquet"
    from sweeplab.bench.record import record_table, record_text

    table = record_table(record, output, progress=not args.no_progress)
    info = table.info
    emit(args, {"table": info.name, "path": str(output), "n_configs": info.n_configs, "grid_size": info.grid_size,
                "seeds": list(info.seeds), "n_trials": len(table.trials),
                "n_failed": sum(1 for t in table.trials if t.state != "COMPLETE"), "metrics": list(info.metrics),
                "wall_seconds": info.wall_seconds, "machine": dict(info.machine)}, record_text(table, output))
    return 0


def audit_command(args: argparse.Namespace, emit: Emit) -> int:
    """Audit the pruning of a study and print the result (stored as ``audit.json`` on its MLflow run)."""
    from sweeplab.spec import validate_study_name

    validate_study_name(args.study)
    from sweeplab.bench.audit import audit_study, audit_text
    from sweeplab.search.storage import resolve_storage_url
    from sweeplab.tracking.mlflow_tracker import resolve_tracking_uri

    tracking = resolve_tracking_uri(args.tracking_uri) if args.tracking_uri else None
    result = audit_study(args.study, storage_url=resolve_storage_url(args.storage), tracking_uri=tracking,
                         sample=args.sample, seed=args.seed, address=args.address)
    emit(args, result.to_json(), audit_text(result))
    return 0

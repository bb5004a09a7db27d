"""The ``sweeplab`` command: one thin function per subcommand.

Heavy libraries (ray, torch, tensorflow, mlflow, optuna) are imported inside the
subcommands that need them, so ``--help`` and ``validate`` start fast. ``--json``
prints exactly one JSON object on stdout; logs and progress go to stderr. Exit
codes: 0 done, 2 bad input, 1 anything else (130 when interrupted with Ctrl-C).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sweeplab.api import estimate_lines, format_value, load, promote, run, summary_text
from sweeplab.core.defaults import DEFAULT_FAIL_FAST
from sweeplab.core.errors import SpecError, SweeplabError, UsageError
from sweeplab.service.client import cluster_address, find_service

if TYPE_CHECKING:
    from sweeplab.core.records import Promotion, StudySummary
SPEEDUPS_ENV = "SWEEPLAB_SPEEDUPS"
"""``SWEEPLAB_SPEEDUPS=off``: ``sweeplab run`` without its start-up and storage speed-ups
(:meth:`~sweeplab.study.session.RunOptions.without_speedups`), as a study ran before them;
benchmarks measure "before" with it. Read only by :func:`cmd_run`."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 2 with our format) instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}. See `{self.prog} --help`.")


def _int_at_least(minimum: int, rule: str) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, else an error that states ``rule``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")


def _positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value

_non_negative_int = _int_at_least(0, "an integer >= 0")


def _add_store_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="Optuna storage URL (default: $SWEEPLAB_STORAGE or sqlite:///sweeplab.db)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")


def _spec_names_text() -> str:
    """What a spec may name, from the registries (the validator reads the same entries)."""
    from sweeplab.registry.datasets import DATASETS
    from sweeplab.registry.families import MODEL_FAMILIES
    from sweeplab.registry.names import FRAMEWORKS
    from sweeplab.registry.search import AUTO, AUTO_PRUNER_DOC, AUTO_SAMPLER_DOC, PRUNERS, SAMPLERS

    def block(title: str, rows: list[tuple[str, str]]) -> str:
        return title + ":\n" + "\n".join(f"  {name:<20} {doc}" for name, doc in rows)

    # a hyperparameter's rule and default per family: "[mlp] an integer >= 1; default 2 | [cnn] ..."
    hyper: dict[str, dict[str, list[str]]] = {}
    for family in MODEL_FAMILIES.values():
        for o in family.schema.options:
            hyper.setdefault(o.name, {}).setdefault(f"{o.rule_text()}; default {o.shown_default()}", []).append(
                family.name)
    return "\n\n".join([
        block("objective.framework", [(f.name, f.doc) for f in FRAMEWORKS]),
        block("objective.model (default mlp)", [(f.name, f"trains on {f.data}: {f.doc}")
                                                for f in MODEL_FAMILIES.values()]),
        block("space (torch/keras): hyperparameter  [model families] rule; default",
              [(n, " | ".join(f"[{', '.join(fams)}] {rule}" for rule, fams in rules.items()))
               for n, rules in hyper.items()]),
        block("objective.dataset.name (or path: FILE.csv|.parquet, target: COLUMN; or path: FILE.npz of arrays X, y)",
              [(d.name, f"{d.task}: {d.doc}") for d in DATASETS.values()]),
        block("sampler.name", [(AUTO, AUTO_SAMPLER_DOC), *((e.name, e.doc) for e in SAMPLERS.values())]),
        block("pruner.name", [(AUTO, AUTO_PRUNER_DOC), *((e.name, e.doc) for e in PRUNERS.values())]),
    ])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sweeplab", description="Hyperparameter search for neural networks: "
                     "Optuna studies on Ray workers, every trial logged to MLflow.")
    parser.add_argument("--version", action="version", version=f"sweeplab {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("run", help="create the study of SPEC, or resume it if it exists")
    p.add_argument("spec", metavar="SPEC", help="study spec (YAML)")
    p.add_argument("--study", help="study name (overrides the spec's `study`)")
    p.add_argument("--trials", type=_positive_int, help="total trials (overrides the spec)")
    p.add_argument("--workers", type=_positive_int, help="trials in flight at once (overrides the spec)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--fork", metavar="NEW_NAME",
                   help="run the spec as a new study NEW_NAME, warm-started from the compatible finished trials "
                        "of the spec's existing study (use when the spec changed)")
    _add_store_flags(p)
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS; neither: trials in worker "
                                     "processes of this machine, no Ray; 'local': a Ray of the run's own)")
    p.add_argument("--allow-local-stores", action="store_true",
                   help="use SQLite/file stores even when Ray has nodes on other machines")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-model", action="store_true",
                   help="skip the end-of-study re-fit that logs the best trial's model and evaluation")
    p.add_argument("--promote", metavar="MODEL_NAME",
                   help="when the study is done, promote it as `sweeplab promote STUDY --model-name MODEL_NAME` "
                        "does with its defaults (top 3 x 3 seeds, refit, held-out estimate)")
    p.add_argument("--fail-fast", type=_non_negative_int, default=DEFAULT_FAIL_FAST, metavar="N",
                   help=f"stop (exit 1) when the study's first N trials all fail with the same error "
                        f"(default {DEFAULT_FAIL_FAST}; 0: never)")
    p.add_argument("--detach", action="store_true",
                   help="with a service up (`sweeplab up`): return once the study is accepted; it runs on without "
                        "this terminal")
    p.add_argument("--priority", type=_positive_float, metavar="W",
                   help="the study's weight when several share the service's workers (overrides the spec's "
                        "`priority`, default 1)")
    p.add_argument("--no-service", action="store_true",
                   help="run in this process (its own Ray) even when a service is up here")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("status", help="trial counts by state, best so far, running trials; without STUDY: the "
                                      "studies of the service")
    p.add_argument("study", metavar="STUDY", nargs="?")
    p.add_argument("--watch", action="store_true",
                   help="follow a study the service runs with a progress bar until it ends, then show its status")
    _add_store_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("best", help="best trial: value, params, MLflow run id, the model its function logged")
    p.add_argument("study", metavar="STUDY")
    _add_store_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("up", help="start the sweeplab service here: a long-lived Ray, a study supervisor with warm "
                                  "workers, the MLflow UI (all on 127.0.0.1)")
    p.add_argument("--address", help="attach to the Ray cluster at ADDR instead of starting a local Ray "
                                     "(default: $RAY_ADDRESS; the cluster stays up at `down`)")
    p.add_argument("--workers", type=_positive_int,
                   help="warm worker processes, the trials in flight across all studies (default: the CPU count)")
    p.add_argument("--frameworks", metavar="LIST",
                   help="frameworks the workers import ahead, comma-separated: torch, keras (default: torch when "
                        "installed; '' for none)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI the UI shows (default: $MLFLOW_TRACKING_URI or "
                                          "sqlite:///mlflow.db)")
    p.add_argument("--no-ui", action="store_true", help="no MLflow UI")
    p.add_argument("--ui-port", type=_positive_int, help="the MLflow UI's port on 127.0.0.1 (default 5000, or a "
                                                         "free one when 5000 is taken)")
    p.add_argument("--shared", action="store_true",
                   help="let every local user submit studies (they run as you); default: you only")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("down", help="stop what `sweeplab up` started here (running studies are stopped cleanly)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("logs", help="the driver log of a study the service runs, failed trials' reasons included")
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("cancel", help="stop a study the service runs, cleanly (only its owner or the operator may)")
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("report", help="write the study's HTML dashboard")
    p.add_argument("study", metavar="STUDY")
    p.add_argument("-o", "--output", help="HTML file to write (default: STUDY-report.html here)")
    p.add_argument("--refresh", type=_positive_int, help="reload the page every N seconds (live view while it runs)")
    _add_store_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("promote", help="re-train the top configs with several seeds; register the best as "
                       "models:/NAME@champion")
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--model-name", required=True, help="registered model name ([A-Za-z0-9._-])")
    p.add_argument("--top-k", type=_positive_int, default=3, help="configs to re-train: the best K trials (default 3)")
    p.add_argument("--seeds", type=_positive_int, default=3, help="seeds per config (default 3)")
    p.add_argument("--refit", action=argparse.BooleanOptionalAction, default=None,
                   help="train the winner again on train + validation for its best epoch count before registering "
                        "it (default: yes when the study has a test part to judge it on; --no-refit: register the "
                        "winner trained on the training rows only)")
    p.add_argument("--baselines", action="store_true",
                   help="also fit scikit-learn baselines (logistic regression / ridge, gradient boosting) on the "
                        "same rows and score them on the same test rows as the champion")
    _add_store_flags(p)
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("bench", help="run a benchmark (samplers x pruners x frameworks x seeds) and write its report",
                       epilog="`sweeplab bench record --help`: record a table of learning curves, which a bench spec "
                              "with `simulate: {table: ...}` replays in simulated time")
    p.add_argument("spec", metavar="BENCH_SPEC", help="bench spec (YAML): a study spec with `bench:` and `factors:`")
    p.add_argument("--trials", type=_positive_int, help="trials per cell (overrides the spec)")
    p.add_argument("--seeds", type=_positive_int, help="seeds 0..N-1 (overrides factors.seeds)")
    p.add_argument("--workers", type=_positive_int, help="trials in flight per cell (overrides the spec)")
    p.add_argument("--parallel-cells", type=_positive_int, help="cells run at once (overrides the spec; default 1)")
    p.add_argument("--audit", type=lambda t: 0 if t == "0" else _positive_int(t), metavar="N",
                   help="re-train N pruned trials per cell to audit the pruner (overrides the spec; 0: none)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any spec key, dotted for nested ones, value as YAML (e.g. objective.epochs=2)")
    p.add_argument("-o", "--output", help="report HTML file (default: BENCH-report.html here)")
    p.add_argument("--validate", action="store_true", help="check the bench spec and list its cells; run nothing")
    _add_store_flags(p)
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--no-progress", action="store_true", help="no per-cell progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    # `sweeplab bench record ...` (main() turns the two words into this name); no help=: not listed on its own
    p = sub.add_parser("bench-record", prog="sweeplab bench record",
                       description="Train every configuration of a finite space with every seed and write their "
                                   "per-epoch metrics and times as a Parquet table (see sweeplab.bench.record).")
    p.add_argument("spec", metavar="RECORD_SPEC",
                   help="record spec (YAML): table, objective, space, seed, seeds, sample")
    p.add_argument("-o", "--output", help="Parquet file to write (default: TABLE.parquet here)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any record spec key, dotted for nested ones, value as YAML (e.g. seeds=1)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("audit", help="re-train a sample of a study's pruned trials to the end: did pruning cost "
                       "the best?")
    p.add_argument("study", metavar="STUDY")
    p.add_argument("--sample", type=_positive_int, default=5, help="pruned trials to re-train (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    _add_store_flags(p)
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("validate", help="check a spec; print every problem with its YAML path",
                       epilog=_spec_names_text(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("ui", help="open the MLflow UI on the configured tracking store (127.0.0.1)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_positive_int, default=5000)
    return parser


def _version() -> str:
    from sweeplab import __version__

    return __version__


_RESULT_STREAM: Any = None  # where results go; the real stdout while libraries' output is diverted


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    out = _RESULT_STREAM or sys.stdout
    if getattr(args, "json", False):
        out.write(json.dumps(payload, default=str) + "\n")
    else:
        out.write(text.rstrip() + "\n")
    out.flush()


def _divert_stdout() -> None:
    """Send everything written to stdout (fd 1: MLflow's run links, Ray's worker logs)
    to stderr, and keep the real stdout for the one result sweeplab prints."""
    global _RESULT_STREAM
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)
    _RESULT_STREAM = os.fdopen(real, "w", buffering=1)


def _emit_summary(args: argparse.Namespace, summary: StudySummary) -> None:
    """Print a study's summary: its ``--json`` object (:meth:`StudySummary.to_json`), or the text."""
    _emit(args, summary.to_json(), summary_text(summary))


# ---------------------------------------------------------------- subcommands
def cmd_validate(args: argparse.Namespace) -> int:
    from sweeplab.objectives.python_callable import check_objective_callable
    from sweeplab.spec import load_spec

    try:
        spec = load_spec(args.spec)
        check_objective_callable(spec.objective, spec.source)  # imported in a subprocess, never called
    except SpecError as exc:
        if args.json:
            _emit(args, {"valid": False, "problems": [{"path": p.path, "message": p.message} for p in exc.problems]},
                  "")
            return 2
        raise
    _emit(args, {"valid": True, "study": spec.study, "trials": spec.trials,
                 "sampler": {"name": spec.sampler.name, "auto": spec.sampler.auto},
                 "pruner": {"name": spec.pruner.name, "auto": spec.pruner.auto}},
          f"{args.spec}: valid (study {spec.study}, {spec.trials} trials, {len(spec.space.names())} parameters; "
          f"sampler {spec.sampler.shown}, pruner {spec.pruner.shown})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``sweeplab run``: :func:`sweeplab.api.run` with the command's flags."""
    if args.fork and args.study:
        raise UsageError("--fork and --study conflict: --fork NEW_NAME already names the new study; "
                         "give only one of them")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.promote is not None:
        from sweeplab.study.promote import validate_model_name

        validate_model_name(args.promote)  # before the study runs
    resume = " ".join(shlex.quote(a) for a in ["sweeplab", *sys.argv[1:]]) if sys.argv[1:2] == ["run"] else ""
    # the one place this variable is read
    speedups = os.environ.get(SPEEDUPS_ENV, "").strip().lower() != "off"
    client = None if args.no_service else find_service()
    if client is not None:
        from sweeplab.service.commands import submit

        if args.promote is not None:
            raise UsageError(f"--promote runs in this process after the study, not in the service: run "
                             f"`sweeplab promote {args.study or '<STUDY>'} --model-name {args.promote}` once the "
                             "study is done, or add --no-service")
        if args.address and args.address != client.ray_address:
            raise UsageError(f"--address and the service found ({client.where}) conflict: the service runs studies "
                             f"on its own Ray ({client.ray_address}); add --no-service to run on {args.address} "
                             "instead")

        return submit(args, client, _emit, resume or "the same sweeplab run command", speedups)
    if args.detach:
        cluster = None if args.no_service else cluster_address()
        raise UsageError("--detach needs a service: start one with `sweeplab up"
                         + (f" --address {cluster}` (none runs on the cluster $RAY_ADDRESS names)" if cluster else "`")
                         + " (the study then runs on without this terminal), or leave out --detach")
    if args.priority is not None:
        raise UsageError("--priority weighs studies sharing a service's workers: start one with `sweeplab up`, or "
                         "leave out --priority")
    summary = run(args.spec, study=args.study, trials=args.trials, workers=args.workers, timeout=args.timeout,
                  fork=args.fork, storage=args.storage, tracking_uri=args.tracking_uri, address=args.address,
                  fail_fast=args.fail_fast, progress=not args.no_progress and not args.json,
                  log_model=not args.no_model, allow_local_stores=args.allow_local_stores,
                  resume_command=resume or "the same sweeplab run command", speedups=speedups)
    if args.promote is None:
        _emit_summary(args, summary)
        return 0
    result = promote(summary.study, args.promote, storage=args.storage, tracking_uri=args.tracking_uri,
                     address=args.address)
    # the text shows the new estimate once, in the promotion's lines
    text = summary_text(dataclasses.replace(summary, estimate=None)) + "\n" + _promotion_text(result)
    _emit(args, {**dataclasses.replace(summary, estimate=result.estimate).to_json(), "promotion": result.to_json()},
          text)
    return 0


def _load_summary(args: argparse.Namespace) -> StudySummary:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return load(args.study, args.storage).summary


def cmd_status(args: argparse.Namespace) -> int:
    """A study's status from its stores; without STUDY, the service's studies; ``--watch``: follow
    one the service runs."""
    if args.study is None or args.watch:
        from sweeplab.service import commands

        client = find_service(required=True)
        assert client is not None
        if args.study is None:
            if args.watch:
                raise UsageError("--watch follows one study: `sweeplab status STUDY --watch`")
            return commands.status_list(args, client, _emit)
        return commands.watch(args, client, _emit)
    _emit_summary(args, _load_summary(args))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Start the service (see sweeplab.service)."""
    from sweeplab.service.commands import up

    return up(args, _emit)


def cmd_down(args: argparse.Namespace) -> int:
    """Stop what ``up`` started."""
    from sweeplab.service.commands import down

    return down(args, _emit)


def cmd_logs(args: argparse.Namespace) -> int:
    from sweeplab.service.commands import logs

    return logs(args, _emit)


def cmd_cancel(args: argparse.Namespace) -> int:
    from sweeplab.service.commands import cancel

    return cancel(args, _emit)


def cmd_best(args: argparse.Namespace) -> int:
    summary = _load_summary(args)
    if summary.best_trial is None:
        raise SweeplabError(f"study {args.study!r} has no completed trial yet; run it first "
                            f"(`sweeplab status {args.study}` shows its trials)")
    _emit_summary(args, summary)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sweeplab.dashboards import write_study_report
    from sweeplab.search.storage import load_existing_study, resolve_storage_url
    from sweeplab.search.summary import summarize
    from sweeplab.spec import validate_study_name

    validate_study_name(args.study)
    study = load_existing_study(args.study, resolve_storage_url(args.storage))
    output = args.output or f"{args.study}-report.html"
    path = write_study_report(args.study, summarize(study), study=study, path=output, refresh_seconds=args.refresh)
    _emit(args, {"study": args.study, "report": str(path)}, f"wrote {path}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """Re-train the study's top-k configs over several seeds on Ray (the built-in model, or the
    study's ``objective.callable``); register the best mean's model."""
    result = promote(args.study, args.model_name, storage=args.storage, tracking_uri=args.tracking_uri,
                     top_k=args.top_k, seeds=args.seeds, address=args.address, refit=args.refit,
                     baselines=args.baselines)
    _emit(args, result.to_json(), _promotion_text(result))
    return 0


def _promotion_text(result: Promotion) -> str:
    """What ``promote`` prints without ``--json``."""
    winner = result.winner
    lines = [f"registered {result.model_uri} (version {result.version}, run {result.run_id})",
             f"winner     trial {winner.trial}: {result.metric} mean {format_value(winner.mean)} "
             f"± {format_value(winner.std)} over {winner.n_ok} seed(s)"]
    for c in result.candidates:
        mean = "failed" if c.mean is None else f"{format_value(c.mean)} ± {format_value(c.std)}"
        lines.append(f"  trial {c.trial:<5} study {format_value(c.study_value)}  re-trained {mean}")
    if result.refit is not None:
        r = result.refit
        lines.append(f"refit      on {r.n_rows} rows (train {r.n_train} + validation {r.n_val}) for {r.epochs} "
                     f"epoch(s) (mean best epoch of {list(r.best_epochs)})")
    else:
        lines.append("refit      no: the registered model is the winner as trained on the training rows")
    lines.extend(estimate_lines(result.estimate))
    for b in result.baselines:
        champion = result.model_metrics.get(b.metric)
        lines.append(f"baseline   {b.name:<24} {b.metric} {format_value(b.value)}   (champion "
                     f"{format_value(champion)})")
    lines.append(f"load it:   mlflow.pyfunc.load_model({result.model_uri!r}) with tracking URI "
                 f"{result.tracking_uri}")
    return "\n".join(lines)


def cmd_bench(args: argparse.Namespace) -> int:
    """Run (or resume) a benchmark and write its report (see sweeplab.bench)."""
    from sweeplab.bench.commands import bench_command

    return bench_command(args, _emit)


def cmd_bench_record(args: argparse.Namespace) -> int:
    """Record a table of learning curves (see sweeplab.bench.record)."""
    from sweeplab.bench.commands import record_command

    return record_command(args, _emit)


def cmd_audit(args: argparse.Namespace) -> int:
    """Audit a study's pruning: re-train pruned trials to the end (see sweeplab.bench.audit)."""
    from sweeplab.bench.commands import audit_command

    return audit_command(args, _emit)


def cmd_ui(args: argparse.Namespace) -> int:
    from sweeplab.tracking.mlflow_tracker import mlflow_ui_command, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    argv, env = mlflow_ui_command(uri, args.host, args.port)
    sys.stderr.write(f"MLflow UI for {uri} on http://{args.host}:{args.port} (Ctrl-C stops it)\n")
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
    return 0  # pragma: no cover - execv does not return


COMMANDS = {"run": cmd_run, "status": cmd_status, "best": cmd_best, "report": cmd_report, "validate": cmd_validate,
            "ui": cmd_ui, "promote": cmd_promote, "bench": cmd_bench, "audit": cmd_audit,
            "bench-record": cmd_bench_record, "up": cmd_up, "down": cmd_down, "logs": cmd_logs, "cancel": cmd_cancel}


def _bench_record(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``bench record`` (the command's first two words) as the one parser name ``bench-record``."""
    args = list(argv)
    words = [i for i, a in enumerate(args) if not a.startswith("-")]
    if len(words) >= 2 and args[words[0]] == "bench" and args[words[1]] == "record" and words[1] == words[0] + 1:
        return [*args[:words[0]], "bench-record", *args[words[1] + 1:]]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(_bench_record(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command in ("run", "bench", "promote", "audit", "bench-record"):
        _divert_stdout()
    try:
        return COMMANDS[args.command](args)
    except SweeplabError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


def entry() -> None:
    """The ``sweeplab`` console script: :func:`main`, then a prompt exit.

    When ``main`` has returned, everything it wrote is delivered: the stores are
    committed, MLflow's queue is drained, and the atexit handlers run below (Ray's
    shutdown among them). What remains of a normal exit is the interpreter tearing
    down the modules a study loads (Ray, MLflow, SQLAlchemy, plotly): about a second
    that nothing needs. Flush, run the exit handlers, and leave with ``os._exit``.
    An exception or ``SystemExit`` (``--help``, argparse errors) exits the usual way.
    """
    import atexit

    code = main()
    _flush_outputs()
    logging.shutdown()
    atexit._run_exitfuncs()
    _flush_outputs()  # what the exit handlers printed
    os._exit(code)


def _flush_outputs() -> None:
    for stream in (_RESULT_STREAM, sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


if __name__ == "__main__":  # pragma: no cover
    entry()

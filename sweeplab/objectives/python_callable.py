"""Objectives written as plain Python functions: ``framework: python``.

``objective.callable`` names the function: ``package.module:function`` or
``path/to/file.py:function`` (a relative path is relative to the spec file's folder; see
:mod:`sweeplab.objectives.callable_probe` for how each is imported). The function gets
the :class:`~sweeplab.objectives.trial.Trial` and returns a number (the study's metric)
or a mapping of metric names to numbers that includes it.

Before a study starts, and in ``sweeplab validate``, :func:`check_objective_callable`
imports the callable in a subprocess (never calling it; the driver itself imports no
user code, torch or TensorFlow) and turns a typo into a spec problem with a
did-you-mean. On a Ray cluster, a file's folder travels to the workers as the job's
``working_dir`` (:func:`code_runtime_env`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeplab.core.checks import did_you_mean
from sweeplab.core.defaults import CALLABLE_CHECK_TIMEOUT_S
from sweeplab.core.errors import ObjectiveError, Problem, SpecError
from sweeplab.objectives import callable_probe
from sweeplab.objectives.base import BaseObjective
from sweeplab.objectives.trial import Trial

if TYPE_CHECKING:
    from sweeplab.spec import ObjectiveSpec

log = logging.getLogger("sweeplab.objectives")

CODE_DIR_ENV = "SWEEPLAB_SHIPPED_CODE_DIR"
"""Set on Ray workers that got a callable's folder as their ``working_dir``: the folder's
path on the driver (the copy is the worker's working directory)."""

SHIP_EXCLUDES = (".git", "__pycache__", "*.pyc", ".venv", "venv", "*.db", "*.db-wal", "*.db-shm", "*.db-journal",
                 "mlruns", "mlartifacts", ".sweeplab")
"""What a shipped folder leaves behind: version control, environments, sweeplab's and
MLflow's local stores (``.gitignore`` is honoured too)."""


RAY_SESSION_LINK = "session_latest"
"""What every Ray temp dir holds (the link to its newest session): how a shipped folder that
holds one is recognised."""


def _message(exc: callable_probe.CallableRefError) -> str:
    return exc.message + (did_you_mean(exc.misspelt, exc.candidates) if exc.misspelt else "") + exc.detail


def _shipped() -> tuple[str, str] | None:
    original = os.environ.get(CODE_DIR_ENV)
    return (original, os.getcwd()) if original else None


def load_callable(ref: str) -> Callable[[Trial], Any]:
    """Import the function ``ref`` names; raise ValueError naming ``objective.callable`` and what is wrong."""
    shipped = _shipped()
    try:
        fn = callable_probe.load_target(ref, shipped)
        callable_probe.check_signature(fn)
    except callable_probe.CallableRefError as exc:
        hint = ""
        if exc.kind == "no_file" and shipped is None:
            hint = (" (on this machine: for a Ray cluster, let sweeplab join it with --address / $RAY_ADDRESS, "
                    "which ships the file's folder to every worker)")
        raise ValueError(f"objective.callable {ref!r}: {_message(exc)}{hint}") from None
    return fn  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the check before a study
_CHECKED: set[tuple[str, float]] = set()
"""Callables this process found importable (by ref and the file's mtime): checked once."""


def _check_key(ref: str) -> tuple[str, float]:
    if callable_probe.is_file_ref(ref):
        try:
            return ref, Path(ref.rpartition(":")[0]).stat().st_mtime
        except OSError:
            return ref, -1.0
    return ref, 0.0


def probe_in_subprocess(ref: str, timeout: float = CALLABLE_CHECK_TIMEOUT_S) -> dict[str, Any]:
    """Run :func:`callable_probe.probe` on ``ref`` in a fresh Python (this interpreter, this
    directory, this ``sys.path``). ``{"ok": None, "message": ...}`` when it could not tell
    (it timed out, or died)."""
    source = Path(callable_probe.__file__).read_text(encoding="utf-8")
    path = [os.getcwd(), *(p for p in sys.path if p)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}
    try:
        out = subprocess.run([sys.executable, "-c", source, ref], capture_output=True, text=True, timeout=timeout,
                             env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"ok": None, "message": f"importing it took over {timeout:.0f} s, so it was not checked (does the "
                                       "module train or wait for something when imported?)"}
    for line in reversed(out.stdout.splitlines()):
        if line.startswith(callable_probe.MARKER):
            return json.loads(line[len(callable_probe.MARKER):])  # type: ignore[no-any-return]
    tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
    return {"ok": None, "message": f"importing it ended the checking process (exit {out.returncode}: {tail[:300]})"}


def check_callable(ref: str, timeout: float = CALLABLE_CHECK_TIMEOUT_S,
                   isolated: bool = True) -> tuple[list[str], list[str]]:
    """Import ``ref`` and check it takes one argument, in a subprocess (``isolated``, the
    driver's way: it imports no user code) or here (where the trials will import it
    anyway); return ``(problems, warnings)`` as messages (a problem means the study cannot
    run)."""
    key = _check_key(ref)
    if key in _CHECKED:
        return [], []
    result = probe_in_subprocess(ref, timeout) if isolated else callable_probe.probe(ref)
    if result.get("ok"):
        _CHECKED.add(key)
        return [], []
    if result.get("ok") is None:
        return [], [f"objective.callable {ref!r}: {result['message']}"]
    misspelt = str(result.get("misspelt") or "")
    hint = did_you_mean(misspelt, result.get("candidates") or []) if misspelt else ""
    return [f"{ref!r}: {result['message']}{hint}{result.get('detail') or ''}"], []


def check_objective_callable(objective: ObjectiveSpec, source: str = "spec",
                             timeout: float = CALLABLE_CHECK_TIMEOUT_S, isolated: bool = True) -> None:
    """For a ``python`` objective: raise SpecError (exit 2) when ``objective.callable``
    cannot be imported or called with one argument; log a warning when the check could not
    tell (a timeout). Nothing for other objectives. ``isolated``: see :func:`check_callable`."""
    ref = getattr(objective, "callable", None)
    if objective.framework != "python" or not ref:
        return
    problems, warnings = check_callable(ref, timeout, isolated)
    for warning in warnings:
        log.warning("%s", warning)
    if problems:
        raise SpecError([Problem("objective.callable", p) for p in problems], source)


def code_runtime_env(ref: str | None) -> dict[str, Any] | None:
    """Ray job ``runtime_env`` (for ``ray.init``) that ships a file callable's folder to the
    cluster's workers (as their ``working_dir``, minus :data:`SHIP_EXCLUDES`); None for
    ``package.module`` (it must be installed on every node) and for no callable. A folder
    that holds a Ray temp dir (``/tmp`` itself, say) is a SpecError."""
    if not ref or not callable_probe.is_file_ref(ref):
        return None
    folder = os.path.dirname(os.path.abspath(ref.rpartition(":")[0]))
    ray_dirs = sorted(str(p.parent) for p in Path(folder).glob(f"*/{RAY_SESSION_LINK}"))
    if ray_dirs:
        # Ray would zip its own session files, and the package it writes there, into the package
        raise SpecError([Problem("objective.callable", (
            f"{ref!r}: its folder {folder} is shipped whole to the cluster's workers, and it holds a Ray temp "
            f"dir ({', '.join(ray_dirs)}), which grows while Ray packs it. Move the file into a folder of its "
            "own (with the modules it imports), or give Ray another --temp-dir"))])
    return {"working_dir": folder, "excludes": list(SHIP_EXCLUDES), "env_vars": {CODE_DIR_ENV: folder}}


# ---------------------------------------------------------------- the objective
class CallableObjective(BaseObjective):
    """Adapts a user function to the objective contract: ``target`` is its import path
    (``objective.callable``) or the function itself (``sweeplab.run(spec, objective=fn)``).
    Before each call, seeds and thread limits are set (:meth:`Trial.prepare`); the result
    is checked."""

    def __init__(self, target: str | Callable[[Trial], Any]) -> None:
        if callable(target):
            self.fn = target
            self.path = getattr(target, "__qualname__", None) or repr(target)
            try:
                callable_probe.check_signature(target)
            except callable_probe.CallableRefError as exc:
                raise ValueError(f"objective function {self.path}: {exc.message}") from None
        else:
            self.path = str(target)
            self.fn = load_callable(self.path)

    def run(self, ctx: Trial) -> dict[str, float]:
        ctx.prepare()
        result = self.fn(ctx)
        if isinstance(result, Mapping):
            return dict(result)
        names = ctx.metric_names
        if result is None or isinstance(result, (bool, str, bytes)) or not hasattr(result, "__float__"):
            hint = " (is a `return` missing?)" if result is None else ""
            raise ObjectiveError(
                f"objective {self.path} returned {type(result).__name__} {result!r:.80}{hint}; return the study "
                f"metric {names[0]!r} as a number, or a mapping that holds it, e.g. {{{names[0]!r}: 0.93}}"
            )
        if len(names) > 1:
            raise ObjectiveError(
                f"objective {self.path} returned one number ({float(result)!r}), but the study has {len(names)} "
                f"metrics ({', '.join(names)}); return a mapping that holds each of them"
            )
        return {names[0]: float(result)}

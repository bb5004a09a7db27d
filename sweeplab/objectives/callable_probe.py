"""Finding a user's function from ``objective.callable``, and the check ``validate`` runs.

``objective.callable`` is ``package.module:function`` (imported like ``import
package.module``) or ``path/to/file.py:function`` (the file imported as module ``file``
with its folder first on ``sys.path``, as ``python path/to/file.py`` would see its
neighbours). ``function`` may be dotted (``Class.method``).

This module imports nothing of sweeplab: its source also runs alone in a subprocess
(``python -c``), where :func:`main` imports the callable without calling it and prints
one line, ``MARKER`` + JSON, saying what it found (see :func:`probe`).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import sys
from pathlib import Path
from typing import Any

MARKER = "sweeplab-callable-probe:"


class CallableRefError(Exception):
    """``objective.callable`` cannot be used: ``kind`` says why, ``message`` says it to a user.

    ``misspelt`` and ``candidates``: the name that was not found and the names that exist
    there, for a did-you-mean placed right after ``message``; ``detail``: what follows it.
    """

    def __init__(self, kind: str, message: str, misspelt: str = "", candidates: list[str] | None = None,
                 detail: str = "") -> None:
        super().__init__(message + detail)
        self.kind = kind
        self.message = message
        self.misspelt = misspelt
        self.candidates = list(candidates or [])
        self.detail = detail


def split_ref(ref: str) -> tuple[str, str]:
    """``(module or file, attribute path)`` of ``ref``; raises CallableRefError when it has no ``:``."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise CallableRefError("format", f"must look like 'package.module:function' or 'path/to/file.py:function', "
                                         f"got {ref!r}")
    return target, attr


def is_file_ref(ref: str) -> bool:
    """True for ``path/to/file.py:function``."""
    target, _, _ = ref.rpartition(":")
    return target.endswith(".py")


def _same_file(a: str | None, b: Path) -> bool:
    if not a:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _import_error(what: str, exc: BaseException) -> CallableRefError:
    """The error of a module that exists but fails when imported, with where it failed."""
    where = ""
    if not isinstance(exc, SyntaxError):  # a SyntaxError says its file and line itself
        tb = exc.__traceback__
        while tb is not None:  # the innermost frame: where it was raised
            where = f" ({tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno})"
            tb = tb.tb_next
    return CallableRefError("import_error", f"importing {what} raised {type(exc).__name__}: {exc}{where}")


def load_file_module(file: str, shipped: tuple[str, str] | None = None) -> Any:
    """Import the file ``file`` as module ``<its stem>``, its folder first on ``sys.path``.

    ``shipped``: ``(original folder, local copy)`` when the file's folder was shipped to
    this machine (a Ray ``working_dir``): a file under the original folder is read from
    the copy.
    """
    path = Path(os.path.abspath(file))
    if shipped is not None:
        original, copy = shipped
        try:
            path = Path(copy) / path.relative_to(original)
        except ValueError:
            pass
    if not path.is_file():
        parent = path.parent
        if not parent.is_dir():
            raise CallableRefError("no_file", f"file {str(path)!r} does not exist (nor does its folder)")
        names = sorted(p.name for p in parent.glob("*.py"))
        listing = f"; the .py files there: {', '.join(names[:12])}" if names else "; that folder holds no .py file"
        raise CallableRefError("no_file", f"file {str(path)!r} does not exist", path.name, names, listing)
    name = path.stem
    if not name.isidentifier():
        raise CallableRefError("bad_name", f"file name {path.name!r} cannot be imported as a module (its name must "
                                           "be a Python identifier: letters, digits, _); rename it")
    existing = sys.modules.get(name)
    if existing is not None and not _same_file(getattr(existing, "__file__", None), path):
        origin = getattr(existing, "__file__", None) or "Python itself"
        raise CallableRefError("shadowed", f"{path.name} is imported as module {name!r}, but a module of that name is "
                                           f"already imported from {origin}; rename the file")
    folder = str(path.parent)
    if not sys.path or sys.path[0] != folder:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(name)
    except (Exception, SystemExit) as exc:
        raise _import_error(str(path), exc) from exc
    if not _same_file(getattr(module, "__file__", None), path):
        raise CallableRefError("shadowed", f"{path.name} is imported as module {name!r}, but that name is taken by "
                                           f"{getattr(module, '__file__', None)}; rename the file")
    return module


def _module_names(parent: str | None) -> list[str]:
    """Modules importable under ``parent`` (top-level ones when None)."""
    try:
        if parent is None:
            names = {m.name for m in pkgutil.iter_modules()} | set(sys.builtin_module_names)
            return sorted(names)
        package = importlib.import_module(parent)
        return sorted(m.name for m in pkgutil.iter_modules(getattr(package, "__path__", [])))
    except Exception:
        return []


def load_module(name: str) -> Any:
    """``importlib.import_module(name)``, with a CallableRefError saying what went wrong."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            parent, _, last = missing.rpartition(".")
            where = f" in package {parent!r}" if parent else ""
            raise CallableRefError("no_module", f"there is no module {missing!r}{where}", last,
                                   _module_names(parent or None),
                                   " on the Python path (the current directory and PYTHONPATH)") from exc
        raise _import_error(f"module {name!r}", exc) from exc
    except (Exception, SystemExit) as exc:
        raise _import_error(f"module {name!r}", exc) from exc


def resolve_attr(module: Any, attr: str, where: str) -> Any:
    """``module.<attr>`` (dotted), or a CallableRefError listing the callables there."""
    obj = module
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            owner = where if i == 0 else f"{where}:{'.'.join(attr.split('.')[:i])}"
            names = sorted(n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None)))
            listing = f"; its functions and classes: {', '.join(names[:12])}" if names else ""
            raise CallableRefError("no_attr", f"{owner} has no attribute {part!r}", part, names, listing)
        obj = getattr(obj, part)
    return obj


def load_target(ref: str, shipped: tuple[str, str] | None = None) -> Any:
    """The object ``ref`` names (not checked to be callable). See :func:`load_file_module` for ``shipped``."""
    target, attr = split_ref(ref)
    if target.endswith(".py"):
        module = load_file_module(target, shipped)
        where = Path(target).name
    else:
        module = load_module(target)
        where = f"module {target!r}"
    return resolve_attr(module, attr, where)


def check_signature(fn: Any) -> None:
    """Raise CallableRefError unless ``fn`` is callable with one positional argument (the trial)."""
    if not callable(fn):
        raise CallableRefError("not_callable", f"names a {type(fn).__name__}, not a function: {fn!r:.80}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return
    try:
        sig.bind(object())
    except TypeError:
        params = list(sig.parameters.values())
        text = f"({', '.join(str(p) for p in params)})"
        if not params:
            why = "takes no parameter"
        else:
            required = [p.name for p in params if p.default is p.empty
                        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            why = f"takes {text}, which needs {len(required)} arguments ({', '.join(required)})"
        raise CallableRefError(
            "arity", f"{why}; sweeplab calls it with one argument, the trial: def train(trial): ... "
                     "(read hyperparameters from trial.params and settings from trial.options)") from None


def probe(ref: str) -> dict[str, Any]:
    """Import what ``ref`` names and check its signature, without calling it.

    Returns ``{"ok": True}`` or ``{"ok": False, "kind", "message", "misspelt", "candidates", "detail"}``.
    """
    try:
        check_signature(load_target(ref))
    except CallableRefError as exc:
        return {"ok": False, "kind": exc.kind, "message": exc.message, "misspelt": exc.misspelt,
                "candidates": exc.candidates[:20000], "detail": exc.detail}
    return {"ok": True}


def main(argv: list[str]) -> int:
    result = probe(argv[0])
    sys.stdout.flush()
    print(MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

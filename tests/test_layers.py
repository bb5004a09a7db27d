"""The package's layers import one way: each imports only the layers before it.

Every import counts, function-level ones included (an import inside a function is still
a dependency). Also refused: a private name (``_x``) imported from another layer, and a
module-level ``__getattr__`` that re-exports another layer lazily (a cycle in disguise).

One exception, checked as closely: ``sweeplab/__init__.py`` re-exports the Python API
(``sweeplab.run``, ``sweeplab.load``) from the ``api`` layer and imports nothing else of
the package; in exchange ``api`` imports only ``core`` at module level, so importing any
layer (which runs the package's ``__init__``) does not import the layers above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sweeplab"

LAYERS = ("core", "registry", "spaces", "spec", "objectives", "tracking", "search", "dashboards", "study", "bench",
          "api", "service", "cli")
"""Lowest first. ``sweeplab/__init__.py`` (the version) sits below them all, but for its re-export of ``api``."""
FACADE = "api"
"""The one layer the package's ``__init__`` re-exports."""


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "sweeplab":
        return None
    return parts[1] if len(parts) > 1 else ""


def _modules(root: Path = PACKAGE) -> list[tuple[str, Path]]:
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [alias.name for alias in node.names], node.lineno))
    return out


def test_every_module_belongs_to_a_layer():
    unknown = sorted({m for m, _ in _modules() if _layer(m) not in (*LAYERS, "")})
    assert unknown == [], f"modules outside the layers {LAYERS}: {unknown}"


def _violations(root: Path = PACKAGE) -> list[str]:
    found = []
    for module, path in _modules(root):
        own = _layer(module)
        rank = LAYERS.index(own) if own in LAYERS else -1
        for target, names, line in _imports(path):
            layer = _layer(target)
            if layer is None or layer == own:
                continue
            where = f"{path.relative_to(root.parent)}:{line}"
            if layer not in (*LAYERS, ""):
                found.append(f"{where}: {own} imports {target}, which is in no layer")
                continue
            if own == "" and layer == FACADE:
                pass  # the package re-exports the API; test_the_api_imports_only_core_at_module_level bounds it
            elif layer in LAYERS and LAYERS.index(layer) > rank:
                found.append(f"{where}: {own or 'sweeplab/__init__'} imports {target} (layer {layer} is above it)")
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [p for p in target.split(".") if p.startswith("_") and not p.startswith("__")]
            if private:
                found.append(f"{where}: {own} imports private {private} from {target}")
    return found


def test_layers_import_only_the_layers_before_them():
    assert _violations() == []


def test_no_package_re_exports_lazily():
    offenders = []
    for module, path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
                layers = {_layer(t) for t, _, _ in _imports(path)} - {_layer(module), None}
                if layers:
                    offenders.append(f"{module} re-exports {sorted(layers)} through __getattr__")
    assert offenders == []


def _module_level_imports(path: Path) -> list[tuple[str, int]]:
    """Imports run when the module is imported: outside functions, classes and ``if TYPE_CHECKING:``."""
    out: list[tuple[str, int]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                out.extend((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.append((node.module, node.lineno))
            elif isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return out


def _facade_violations(root: Path = PACKAGE) -> list[str]:
    found = []
    for target, line in _module_level_imports(root / "__init__.py"):
        if _layer(target) not in (None, FACADE):
            found.append(f"sweeplab/__init__.py:{line}: imports {target}; it may re-export only sweeplab.{FACADE}")
    for target, line in _module_level_imports(root / f"{FACADE}.py"):
        if _layer(target) not in (None, "core"):
            found.append(f"sweeplab/{FACADE}.py:{line}: imports {target} at module level; import it inside the "
                         "function that needs it (importing sweeplab must not import the layers)")
    return found


def test_the_package_re_exports_only_the_api_which_imports_only_core_at_module_level():
    assert _facade_violations() == []


def test_importing_sweeplab_imports_no_heavy_library():
    """``import sweeplab`` (for ``sweeplab.run``) stays cheap: no Ray, MLflow, Optuna, torch, TensorFlow, numpy."""
    import subprocess
    import sys

    code = ("import sys, sweeplab; assert callable(sweeplab.run) and callable(sweeplab.load); "
            "print(sorted(m for m in ('ray', 'mlflow', 'optuna', 'torch', 'tensorflow', 'numpy', 'yaml') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("module", "statement"), [
    ("__init__.py", "from sweeplab.study import run_study\n"),
    ("api.py", "from sweeplab.search.storage import resolve_storage_url\n"),
])
def test_the_facade_check_catches_a_heavy_import(tmp_path, module, statement):
    import shutil

    fake = tmp_path / "sweeplab"
    shutil.copytree(PACKAGE, fake, ignore=shutil.ignore_patterns("__pycache__"))
    path = fake / module
    path.write_text(path.read_text(encoding="utf-8") + statement, encoding="utf-8")
    assert [v for v in _facade_violations(fake) if module in v]


@pytest.mark.parametrize(("source", "statement"), [
    ("core", "from sweeplab.search.coordinator import StudyCoordinator"),
    ("objectives", "def f():\n    from sweeplab.tracking.models import META_FILE\n"),
    ("study", "from sweeplab.search.executor import _private_helper"),
    ("dashboards", "from sweeplab.errors import UsageError"),  # a module that is in no layer (or gone)
    ("bench", "from sweeplab.api import run"),  # the API is above bench
])
def test_the_check_catches_an_upward_or_private_import(tmp_path, source, statement):
    """The walk itself: a copy of the package with one offending module is reported."""
    import shutil

    fake = tmp_path / "sweeplab"
    shutil.copytree(PACKAGE, fake, ignore=shutil.ignore_patterns("__pycache__"))
    (fake / source / "offender.py").write_text(statement + "\n", encoding="utf-8")
    assert [v for v in _violations(fake) if "offender.py" in v]

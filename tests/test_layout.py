"""The package layout rules that import-linter cannot express (docs/architecture.md): a small
root, packages whose modules never import their own `__init__`, and modules of one purpose."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "signalvault"
# The wiring and the genuinely shared small leaves; everything else lives in a package.
ROOT_MODULES = {
    "__init__.py",
    "__main__.py",
    "app.py",
    "errors.py",
    "console.py",
    "logfmt.py",
    "compiled.py",  # which build runs; the root package applies it before any other import
}
MAX_LINES = 500
# A longer module says why at the top of its docstring with this phrase.
LONG_ON_PURPOSE = "Kept whole:"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("signalvault", cache_dir=None)


def test_root_holds_only_wiring_and_shared_leaves():
    found = {p.name for p in PACKAGE.glob("*.py")}
    assert found - ROOT_MODULES == set(), "a new module belongs in a package"


def test_every_package_says_what_it_owns():
    for init in PACKAGE.rglob("__init__.py"):
        if "migrations" in init.parts:
            continue
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init} has no docstring"


def test_modules_never_import_their_own_package(graph):
    """A package's __init__ re-exports its modules; a module importing it back is a cycle."""
    offenders = []
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            # The root package holds only __version__, a leaf every layer may read.
            if module.startswith(imported + ".") and imported != "signalvault":
                offenders.append(f"{module} -> {imported}")
    assert offenders == []


def test_modules_stay_small_or_say_why():
    too_long = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and LONG_ON_PURPOSE not in docstring:
            too_long.append(f"{path.relative_to(PACKAGE)} ({lines} lines)")
    assert too_long == []

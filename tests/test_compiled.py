"""The compiled build: which code runs (signalvault/compiled.py) and what may be compiled
(tools/compile_modules.py)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import signalvault
from signalvault import compiled

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compile_modules", ROOT / "tools/compile_modules.py")
assert _spec is not None and _spec.loader is not None
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

# Outside CI a checkout may run its sources (nothing built, SIGNALVAULT_PURE, an edit since the
# build); CI runs what `make install` builds and fails here if that is not the compiled modules.
needs_build = pytest.mark.skipif(
    signalvault.BUILD != compiled.COMPILED and os.environ.get("CI") != "true",
    reason=f"the compiled modules do not run here ({signalvault.BUILD}); make install builds them",
)


@needs_build
def test_the_listed_modules_run_compiled():
    """CI tests what `make install` ships: every listed module as its extension."""
    assert signalvault.BUILD == compiled.COMPILED
    for path in tool.listed_modules():
        module = importlib.import_module(tool.module_name(path))
        assert str(module.__file__).endswith(".so"), module.__file__


@needs_build
def test_a_process_told_to_run_the_sources_imports_no_extension():
    code = (
        "import signalvault, signalvault.guardrails.pii_person as m, signalvault.gateway.sse as s;"
        "print(signalvault.BUILD, m.__file__, s.__file__, sep='\\n')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "SIGNALVAULT_PURE": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0] == compiled.PURE
    assert out[1].endswith("pii_person.py") and out[2].endswith("sse.py")


@needs_build
def test_the_finder_gives_the_source_of_a_compiled_module_and_leaves_the_others():
    import signalvault.gateway as gateway
    import signalvault.guardrails as guardrails

    spec = compiled.SourcesFirst.find_spec("signalvault.guardrails.finding", guardrails.__path__)
    assert spec is not None and str(spec.origin).endswith("guardrails/finding.py")
    spec = compiled.SourcesFirst.find_spec("signalvault.gateway.proxy", gateway.__path__)
    assert spec is not None and str(spec.origin).endswith("gateway/proxy.py")
    assert compiled.SourcesFirst.find_spec("json", None) is None


def _fake_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """A checkout with two listed sources and the manifest the tool writes for them."""
    package = tmp_path / "signalvault"
    (package / "gateway").mkdir(parents=True)
    (package / "gateway" / "a.py").write_text("A = 1\n")
    (package / "b.py").write_text("B = 2\n")
    paths = ["signalvault/gateway/a.py", "signalvault/b.py"]
    for path in paths:  # the extensions the build left beside them
        (tmp_path / path).with_suffix(importlib.machinery.EXTENSION_SUFFIXES[0]).touch()
    manifest = {"modules": paths, "sha256": compiled.sources_digest(paths, tmp_path)}
    (package / "compiled.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(compiled, "PACKAGE", package)
    monkeypatch.setattr(compiled, "MANIFEST", package / "compiled.json")
    return package, paths


def test_the_build_runs_while_every_source_matches_what_the_tool_recorded(tmp_path, monkeypatch):
    package, _ = _fake_checkout(tmp_path, monkeypatch)
    assert compiled.build_state({}) == compiled.COMPILED
    assert compiled.build_state({"SIGNALVAULT_PURE": "0"}) == compiled.COMPILED
    assert compiled.build_state({"SIGNALVAULT_PURE": "1"}) == compiled.PURE
    extension = (package / "b.py").with_suffix(importlib.machinery.EXTENSION_SUFFIXES[0])
    extension.unlink()  # a copied or half-cleaned tree: one module would run twice, in two builds
    assert compiled.build_state({}) == compiled.INCOMPLETE
    extension.touch()
    (package / "b.py").write_text("B = 3\n")  # edited after the build
    assert compiled.build_state({}) == compiled.STALE
    (package / "b.py").unlink()
    assert compiled.build_state({}) == compiled.STALE
    (package / "compiled.json").unlink()  # nothing built, or a build under way
    assert compiled.build_state({}) == compiled.NONE


def test_the_tool_refuses_coroutines_and_subclasses_of_interpreted_classes(tmp_path):
    package = tmp_path / "signalvault"
    package.mkdir()
    (package / "base.py").write_text("class Base:\n    code = 1\n")
    (package / "ok.py").write_text(
        "from typing import NamedTuple\nfrom signalvault.listed import Listed\n"
        "class A(NamedTuple):\n    x: int\nclass B(Listed):\n    pass\nclass C(ValueError):\n"
        "    pass\n"
    )
    (package / "listed.py").write_text("class Listed:\n    pass\n")
    (package / "bad.py").write_text(
        "from signalvault.base import Base\nclass Sub(Base):\n    pass\n"
        "async def f():\n    return 1\n"
        "import asyncio\nclass P(asyncio.Protocol):\n    pass\n"
    )
    listed = ["signalvault/ok.py", "signalvault/listed.py", "signalvault/bad.py"]
    found = tool.problems(listed, tmp_path)
    assert len(found) == 3
    assert found[0].startswith("signalvault/bad.py:2: Sub derives from Base, an interpreted")
    assert found[1].startswith("signalvault/bad.py:4: a coroutine")
    assert found[2].startswith("signalvault/bad.py:7: P derives from asyncio.Protocol")
    assert tool.problems(listed[:2], tmp_path) == []


def test_every_listed_module_may_be_compiled():
    assert tool.problems(tool.listed_modules()) == []


def test_without_a_c_compiler_install_goes_on_and_leaves_the_build_alone(
    tmp_path, monkeypatch, capsys
):
    def no_build(paths: list[str]) -> float:
        raise AssertionError("built without a compiler")

    monkeypatch.setattr(tool, "c_compiler", lambda: None)
    monkeypatch.setattr(tool, "build", no_build)
    monkeypatch.setattr(tool, "ROOT", tmp_path)  # what a build would clear first
    monkeypatch.setattr(tool, "MANIFEST", tmp_path / "signalvault" / "compiled.json")
    (tmp_path / "signalvault").mkdir()
    (tmp_path / "signalvault" / "compiled.json").write_text("{}")
    (tmp_path / "signalvault" / "x.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    assert tool.main([]) == 0
    assert "no C compiler: the Python sources run" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "signalvault").iterdir()) == [
        "compiled.json",
        "x.cpython-311-x86_64-linux-gnu.so",
    ]

"""Compile the request path's synchronous modules with mypyc, in place, and record what was built.

    python tools/compile_modules.py            # check the list, compile it, write the manifest
    python tools/compile_modules.py --check    # only check that every listed module may compile
    python tools/compile_modules.py --list     # the listed files, for make

The list is `[tool.signalvault.compiled] modules` in pyproject.toml. `make install` runs this
whenever a listed module changed. The extension modules land beside their sources (one shared
library, `signalvault_compiled__mypyc`, at the checkout's root), and `signalvault/compiled.json`
records the SHA-256 of the sources they were built from: `signalvault/__init__.py` imports the
compiled modules only while every listed source still matches it, and the sources otherwise
(docs/development.md, "Compiled modules"). Without a C compiler it builds nothing and exits 0:
the sources run, and `make install` goes on.

Refused before anything is built, because mypyc compiles them into code that behaves otherwise
than Python without any error (both seen on this code base, docs/development.md):
- coroutines (`async def`, `await`): a compiled coroutine suspended inside `except` leaves its
  exception visible to other tasks, and one awaiting in `finally` re-raises it;
- classes derived from an interpreted class (one of an unlisted module, the standard library's
  or a dependency's; built-in types and typing constructs are fine): mypyc drops their class
  attributes.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the runtime's digest; it imports only the standard library
from signalvault.compiled import sources_digest  # noqa: E402

MANIFEST = ROOT / "signalvault" / "compiled.json"
GROUP = "signalvault_compiled"
# Bases from outside the compiled set that mypyc handles as Python does (typing constructs).
ALLOWED_BASES = frozenset({"NamedTuple", "Protocol", "TypedDict", "Generic"})
_SETUP = f"""
import sys
from mypyc.build import mypycify
from setuptools import setup

config, modules = sys.argv[1], sys.argv[2 : sys.argv.index("build_ext")]
del sys.argv[1 : sys.argv.index("build_ext")]
setup(
    name="signalvault-compiled",
    packages=[],
    ext_modules=mypycify(["--config-file", config, *modules], group_name="{GROUP}"),
)
"""


def listed_modules(root: Path = ROOT) -> list[str]:
    """The files to compile, relative to the checkout, as pyproject.toml lists them."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    return list(config["tool"]["signalvault"]["compiled"]["modules"])


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def problems(paths: list[str], root: Path = ROOT) -> list[str]:
    """Why each listed module may not be compiled (empty: all may)."""
    listed = {module_name(p) for p in paths}
    found = []
    for path in paths:
        tree = ast.parse((root / path).read_text(), path)
        imported = _imported_names(tree)
        own = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
        for node in ast.walk(tree):
            if isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncFor | ast.AsyncWith):
                found.append(f"{path}:{node.lineno}: a coroutine (compiled coroutines misbehave)")
            elif isinstance(node, ast.ClassDef):
                for base in node.bases:
                    name = ast.unparse(base).split("[")[0]
                    if not _compiled_base(name, own, imported, listed):
                        found.append(
                            f"{path}:{node.lineno}: {node.name} derives from {name}, an "
                            "interpreted class (mypyc drops the class attributes of its subclass)"
                        )
    return found


def _compiled_base(name: str, own: set[str], imported: dict[str, str], listed: set[str]) -> bool:
    """Whether base class `name` is native to the compiled build: a class of a listed module, a
    built-in type (`ValueError`), or a typing construct mypyc compiles itself."""
    if name in ALLOWED_BASES or name in own:
        return True
    origin = imported.get(name.split(".")[0])
    if origin is None:
        return isinstance(getattr(builtins, name, None), type)
    return origin in listed


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """Local name -> the module it comes from, for `import` and `from ... import`."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = alias.name
    return names


def build(paths: list[str], root: Path = ROOT) -> float:
    """Compile `paths` in place; returns the build's wall seconds.

    setuptools runs in a scratch directory whose `signalvault` links to the checkout's: run at
    the root it would read pyproject.toml, which belongs to hatchling.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sv-compile-") as scratch:
        work = Path(scratch)
        (work / "signalvault").symlink_to(root / "signalvault")
        (work / "setup.py").write_text(_SETUP)
        done = subprocess.run(
            [
                sys.executable,
                "setup.py",
                str(root / "pyproject.toml"),
                *paths,
                "build_ext",
                "--inplace",
                "--build-temp",
                str(work / "build"),
            ],
            cwd=work,
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "MYPY_CACHE_DIR": str(work / "mypy_cache")},
        )
        if done.returncode:
            raise BuildFailed(done.stdout[-6000:])
        for shared in work.glob(f"{GROUP}__mypyc*.so"):
            os.replace(shared, root / shared.name)
    return time.perf_counter() - started


def c_compiler() -> str | None:
    """The C compiler this Python builds extensions with, if it is installed."""
    command = str(sysconfig.get_config_var("CC") or "cc").split()
    return shutil.which(command[0]) if command else None


class BuildFailed(Exception):
    """mypyc or the C compiler failed (the exception holds the end of their output)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check the list, build nothing")
    parser.add_argument("--list", action="store_true", help="print the listed files")
    args = parser.parse_args(argv)
    paths = listed_modules()
    if args.list:
        print(" ".join(paths))
        return 0
    refused = problems(paths)
    if refused:
        print("cannot compile:\n  " + "\n  ".join(refused), file=sys.stderr)
        return 1
    if args.check:
        return 0
    if c_compiler() is None:
        # The sources run as they are: a machine without a C compiler still installs.
        print(
            "no C compiler: the Python sources run (install gcc, then `make install` again "
            "to compile them)",
            file=sys.stderr,
        )
        return 0
    # Until the new manifest is written the sources run, and no module dropped from the list
    # keeps an old extension beside it.
    MANIFEST.unlink(missing_ok=True)
    for stale in [*(ROOT / "signalvault").rglob("*.so"), *ROOT.glob(f"{GROUP}__mypyc*.so")]:
        stale.unlink()
    try:
        seconds = build(paths)
    except BuildFailed as exc:
        print(f"compiling failed; the sources will run:\n{exc}", file=sys.stderr)
        return 1
    manifest = {"modules": paths, "sha256": sources_digest(paths, ROOT)}
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"compiled {len(paths)} modules in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

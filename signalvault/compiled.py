"""Which build of the compiled modules runs: the extensions `make install` built with mypyc
(tools/compile_modules.py), or their Python sources.

The extensions run only while `compiled.json` matches every listed source byte for byte, and
`SIGNALVAULT_PURE` is unset or 0. Otherwise an import of a package module that finds an extension
beside its source loads the source instead: an edited module never runs its old compiled code,
and all of them switch together (compiled modules call each other directly, not through
imports). Imports only the standard library; `signalvault/__init__.py` applies it first.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

PACKAGE = Path(__file__).resolve().parent
MANIFEST = PACKAGE / "compiled.json"
# COMPILED: the extensions run; PURE: asked for; STALE: a source changed since the build;
# INCOMPLETE: an extension is missing (a copied or half-cleaned tree: the sources of the missing
# ones would run beside the others' compiled copies); NONE: nothing was built (a plain checkout,
# a helper's worktree).
COMPILED, PURE, STALE, NONE = "compiled", "pure (SIGNALVAULT_PURE)", "pure (stale build)", "pure"
INCOMPLETE = "pure (incomplete build)"
PURE_VARIABLE = "SIGNALVAULT_PURE"  # 1: the sources run (docs/configuration.md)


def build_state(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """One of COMPILED, PURE, STALE, NONE for this checkout and environment."""
    try:
        manifest = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return NONE
    if environ.get(PURE_VARIABLE, "0") not in ("", "0"):
        return PURE
    try:
        digest = sources_digest(manifest["modules"])
    except (OSError, KeyError, TypeError):
        return STALE
    if digest != manifest.get("sha256"):
        return STALE
    return COMPILED if all(map(_has_extension, manifest["modules"])) else INCOMPLETE


def _has_extension(path: str) -> bool:
    source = PACKAGE.parent / path
    return any(source.with_suffix(s).is_file() for s in importlib.machinery.EXTENSION_SUFFIXES)


def sources_digest(paths: Sequence[str], root: Path | None = None) -> str:
    """SHA-256 over the listed sources (paths from the checkout's root), in list order: what
    tools/compile_modules.py records at a build and `build_state` compares."""
    root = root or PACKAGE.parent
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode() + b"\0" + (root / path).read_bytes() + b"\0")
    return digest.hexdigest()


class SourcesFirst:
    """A meta path finder: a `signalvault` module whose extension sits beside its source is
    loaded from the source."""

    @classmethod
    def find_spec(
        cls, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not fullname.startswith("signalvault.") or path is None:
            return None
        found = importlib.machinery.PathFinder.find_spec(fullname, path)
        if found is None or not isinstance(found.loader, importlib.machinery.ExtensionFileLoader):
            return found
        source = Path(str(found.origin)).parent / (fullname.rpartition(".")[2] + ".py")
        return importlib.util.spec_from_file_location(fullname, source)


def apply() -> str:
    """Route imports as `build_state()` says; returns the state."""
    state = build_state()
    if state != COMPILED and SourcesFirst not in sys.meta_path:
        sys.meta_path.insert(0, SourcesFirst)
    return state

"""What compiling the request path's synchronous modules with mypyc would save, per request.

Copies this checkout's `signalvault`, `tests`, `bench`, `training` and pyproject.toml twice into
a scratch directory, compiles MODULES in one copy with mypyc (`build_ext --inplace`, one shared
library), then runs bench/instructions.py and, with --cost, bench/cost.py on both copies through
their `--source` option: the same virtualenv, the same run. Nothing in the checkout or the
virtualenv changes; the project's own build stays pure Python (docs/development.md says why).

    python bench/mypyc_ab.py                            # instructions per JSON request
    python bench/mypyc_ab.py --mode stream --cost       # and CPU per request (noisy: use nice)
    python bench/mypyc_ab.py --keep /tmp/svmypyc        # leaves pure/ and compiled/ there, e.g.
    cd /tmp/svmypyc/compiled && PYTHONPATH=. python -m pytest tests/guardrails -q

MODULES leaves out, on purpose (mypy 2.4's mypyc, measured):
- every module with coroutines (proxy, relay, request_body, upstream/forward, live_screen,
  limits/memory, trail/audit; only some await in `except` or `finally`): a compiled coroutine
  that awaits inside an `except` block leaves its exception as the thread's "handled exception"
  while it is suspended, so other tasks see it in sys.exc_info(), and a compiled coroutine's
  `finally` that awaits then raises it: every streamed request ended in CancelledError
  (relay.stream awaits its disconnect watcher in `finally`);
- gateway/screening: GuardrailUnavailable's class attributes (503, "guardrail_unavailable")
  are dropped on a compiled subclass of an interpreted class, so it answered 500 internal_error;
  gateway/metrics reads that class attribute and does not compile;
- guardrails/engine, store/writer, gateway/stream_guard, gateway/safe_json: tests patch their
  methods or module functions, or pass duck-typed stand-ins, which compiled code ignores or
  refuses (9 fail in tests/gateway/test_failure_mode.py, test_guardrails_proxy.py,
  test_stream_guard.py, tests/store/test_writer.py, tests/trail/test_spool.py); compiled, they
  save another ~5% of a JSON request's instructions and ~13% of a streamed one's;
- guardrails/policy (mypyc crashes on `x in (a, *B)`), store/wal (a `_thread` attribute becomes
  the C keyword `__thread`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

_GATEWAY = ("wire", "sse", "keyring", "tokens", "providers", "upstream/retry", "upstream/breaker")
_GUARDRAILS = (
    "custom",
    "finding",
    "indirect_injection",
    "injection",
    "pii",
    "pii_address",
    "pii_checks",
    "pii_ids",
    "pii_names",
    "pii_national",
    "pii_numbers",
    "pii_patterns",
    "pii_person",
    "scan_cache",
    "scanner",
    "secrets",
    "secrets_assigned",
    "secrets_catalogue",
    "secrets_checks",
)
MODULES = (
    *(f"signalvault/gateway/{name}.py" for name in (*_GATEWAY, "limits/buckets")),
    *(f"signalvault/guardrails/{name}.py" for name in _GUARDRAILS),
    "signalvault/trail/record_ids.py",
    "signalvault/trail/record_json.py",
    "signalvault/crypto/envelope.py",
    "signalvault/crypto/gateway_keys.py",
)
# Run in the copy: setuptools without a project table (pyproject.toml is set aside meanwhile,
# mypy reads its [tool.mypy] from the copy saved beside it).
_SETUP = """
import sys
from mypyc.build import mypycify
from setuptools import setup

modules = sys.argv[sys.argv.index("--") + 1 :]
del sys.argv[sys.argv.index("--") :]
setup(name="svmypyc", packages=[], ext_modules=mypycify(["--config-file", "mypy.toml", *modules]))
"""


def copy_checkout(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.so")
    for name in ("signalvault", "tests", "bench", "training"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", target / "pyproject.toml")


def compile_modules(target: Path, modules: list[str]) -> float:
    """Compile `modules` in place in `target`; returns the build's wall seconds."""
    shutil.copy2(target / "pyproject.toml", target / "mypy.toml")
    (target / "pyproject.toml").rename(target / "pyproject.toml.saved")
    (target / "_mypyc_setup.py").write_text(_SETUP)
    started = time.perf_counter()
    try:
        subprocess.run(
            [sys.executable, "_mypyc_setup.py", "build_ext", "--inplace", "--", *modules],
            cwd=target,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    finally:
        (target / "pyproject.toml.saved").rename(target / "pyproject.toml")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--modules", nargs="+", default=list(MODULES), help="files to compile")
    parser.add_argument("--mode", default="json", choices=("json", "stream"))
    parser.add_argument("--requests", type=int, default=400, help="per instruction count")
    parser.add_argument("--cost", action="store_true", help="also bench/cost.py (CPU µs)")
    parser.add_argument("--rounds", type=int, default=5, help="cost.py runs per copy")
    parser.add_argument("--keep", type=Path, help="build the copies here and leave them")
    parser.add_argument("--env", action="append", default=[], help="NAME=value for the gateway")
    args = parser.parse_args()
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="svmypyc-"))
    pure, compiled = scratch / "pure", scratch / "compiled"
    try:
        for copy in (pure, compiled):
            shutil.rmtree(copy, ignore_errors=True)
            copy_checkout(copy)
        seconds = compile_modules(compiled, args.modules)
        print(f"compiled {len(args.modules)} modules in {seconds:.0f} s", flush=True)
        env = [f"--env={item}" for item in args.env]
        sources = ["--source", str(pure), "--source", str(compiled)]
        count = [sys.executable, str(BENCH / "instructions.py"), *sources, "--mode", args.mode]
        subprocess.run([*count, "--requests", str(args.requests), *env], check=True)
        if args.cost:
            cost = [sys.executable, str(BENCH / "cost.py"), *sources, "--modes", args.mode]
            cost += ["--rounds", str(args.rounds), "--histogram", "0", *env]
            subprocess.run(cost, check=True)
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

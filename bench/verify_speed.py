"""Seal and verify speed of the tamper evidence on a large SQLite trail.

    python bench/verify_speed.py [--records 1000000] [--dir DIR] [--keep]

Fills a fresh store with synthetic interaction records (random bytes standing in for the
ciphertexts), seals them all, then runs `signalvault audit verify --json` in a child process and
reports its wall time and peak RSS (the goal: 1M records in under 60 s, under 300 MB).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signalvault.config import Settings, StoreSettings
from signalvault.control.services import open_services
from signalvault.store.sql import INSERT_RECORD
from signalvault.trail.audit import EMPTY_ROW, new_record_id

BATCH = 20_000


def fill(settings: Settings, count: int) -> None:
    services = open_services(settings)
    try:
        started = time.perf_counter()
        now = time.time() - 7200
        with services.store.engine.begin() as conn:
            for first in range(0, count, BATCH):
                rows = []
                for i in range(first, min(count, first + BATCH)):
                    rows.append(
                        {
                            **EMPTY_ROW,
                            "id": new_record_id(),
                            "kind": "interaction",
                            "created_at": now + i * 0.001,
                            "completed_at": now + i * 0.001 + 0.4,
                            "project": "default",
                            "key_id": "key_0123456789abcdef",
                            "environment": "prod",
                            "end_user": f"user-{i % 5000}",
                            "api": "chat",
                            "provider": "openai",
                            "model_requested": "gpt-4o-mini",
                            "model_used": "gpt-4o-mini-2024-07-18",
                            "is_stream": i % 2 == 0,
                            "status_code": 200,
                            "outcome": "ok",
                            "prompt_tokens": 120,
                            "completion_tokens": 240,
                            "total_tokens": 360,
                            "tokens_estimated": False,
                            "latency_ms": 412.5,
                            "ttfb_ms": 120.25,
                            "data_key_id": "dk_0123456789abcdef01234567",
                            "policy_version": 1,
                            "guardrails": '[{"rule":"secrets","action":"block","outcome":"pass"}]',
                            "prompt_ct": os.urandom(300),
                            "response_ct": os.urandom(600),
                        }
                    )
                conn.execute(INSERT_RECORD, rows)
        print(f"inserted {count} records in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        result = services.sealer.seal()
        elapsed = time.perf_counter() - started
        print(
            f"sealed {result.sealed} records under {len(result.checkpoints)} checkpoints in "
            f"{elapsed:.1f}s ({result.sealed / elapsed:,.0f} records/s)"
        )
    finally:
        services.sealer.close()
        services.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="data directory (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    data_dir = args.dir or Path(tempfile.mkdtemp(prefix="sv-verify-bench-")) / "data"
    settings = Settings(store=StoreSettings(data_dir=data_dir, sqlite_synchronous="normal"))
    if not (data_dir / "signalvault.db").exists():
        fill(settings, args.records)
    env = {**os.environ, "SIGNALVAULT_DATA_DIR": str(data_dir)}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-m", "signalvault", "audit", "verify", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(child.stdout.strip()[:300])
    print(f"verify: exit {child.returncode}, {elapsed:.1f}s, peak RSS {peak_mb:.0f} MB")
    if not args.keep and args.dir is None:
        import shutil

        shutil.rmtree(data_dir.parent)


if __name__ == "__main__":
    main()

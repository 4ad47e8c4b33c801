"""Lifecycle jobs on a filled SQLite store (not a test): retention throughput and how long each
batch holds the write lock, erasure of one subject, and master-key rotation of many data keys.

    python bench/lifecycle.py [--records 50000] [--subjects 2000] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from signalvault.config import RetentionSettings, Settings, StoreSettings
from signalvault.control.services import open_services
from signalvault.crypto.master_key import open_key_source
from signalvault.store.lifecycle import Cutoffs
from signalvault.trail.audit import Interaction
from signalvault.trail.erasure import erase_subject
from signalvault.trail.retention import DAY, run_retention
from signalvault.trail.rotation import rotate


def fill(settings: Settings, records: int, subjects: int) -> None:
    services = open_services(settings)
    trail, store = services.trail, services.store

    async def write() -> None:
        for i in range(records):
            item = Interaction(api="chat", created_at=time.time() - 10 * DAY)
            item.end_user = f"user-{i % subjects}"
            await trail.begin(item, b'{"messages":[{"role":"user","content":"%d"}]}' % i)

    asyncio.run(write())
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--subjects", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(store=StoreSettings(data_dir=Path(tmp)))
        started = time.perf_counter()
        fill(settings, args.records, args.subjects)
        print(
            f"filled {args.records} records, {args.subjects} subjects "
            f"in {time.perf_counter() - started:.1f}s"
        )
        services = open_services(settings)
        store, trail = services.store, services.trail

        started = time.perf_counter()
        receipt = erase_subject(store, trail, "user-1", "bench")
        print(
            f"erasure: {receipt.records} records, {receipt.keys} key(s) in "
            f"{(time.perf_counter() - started) * 1000:.1f} ms (WAL truncated included)"
        )

        source = open_key_source(settings)
        started = time.perf_counter()
        report = rotate(store, trail, source, "bench")
        elapsed = time.perf_counter() - started
        print(
            f"rotation: re-wrapped {report.rewrapped} keys in {elapsed:.2f}s "
            f"({report.rewrapped / elapsed:.0f} keys/s)"
        )

        # Time each tombstoning transaction (what the gateway's writer may wait behind).
        timings: list[float] = []
        tombstone = store.tombstone_expired

        def timed(cutoffs: Cutoffs, ids: list[str], reason: str, now: float) -> int:
            begun = time.perf_counter()
            done = tombstone(cutoffs, ids, reason, now)
            timings.append((time.perf_counter() - begun) * 1000)
            return done

        store.tombstone_expired = timed  # type: ignore[method-assign]
        policy = replace(RetentionSettings(days=1), batch_size=args.batch, batch_pause_ms=0)
        started = time.perf_counter()
        run = run_retention(store, trail, policy, actor="bench")
        elapsed = time.perf_counter() - started
        print(
            f"retention: tombstoned {run.tombstoned} in {elapsed:.2f}s "
            f"({run.tombstoned / elapsed:.0f} records/s); per batch of {args.batch}: "
            f"median {statistics.median(timings):.1f} ms, max {max(timings):.1f} ms"
        )
        store.close()


if __name__ == "__main__":
    main()

"""How long a seal keeps a concurrent writer waiting for SQLite's write lock (not a test).

    python bench/seal_stall.py [--records 3000] [--rounds 3] [--source DIR]

Fills a fresh store (synchronous=full) with finished interaction records of ~2 KB (random bytes
standing in for the ciphertexts), then seals them while a probe thread of the same process takes
the write lock (`BEGIN IMMEDIATE`, then `COMMIT` with nothing written) every millisecond, as the
group-commit writer does for a request's write-ahead record, and records how long each take
waited. This is the part of a request's latency a seal causes, without the noise of a c=1
histogram on a busy machine. --source DIR runs another checkout's `signalvault` (A/B).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--records", type=int, default=3000, help="records per seal")
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[1])
args = parser.parse_args()
sys.path.insert(0, str(args.source.resolve()))

from signalvault.config import Settings, StoreSettings  # noqa: E402
from signalvault.control.services import open_services  # noqa: E402
from signalvault.store.sql import INSERT_RECORD  # noqa: E402
from signalvault.trail.audit import EMPTY_ROW, new_record_id  # noqa: E402

EVALUATION = '{"rule":"secrets","action":"block","outcome":"pass","ms":0.2}'


def records(count: int) -> list[dict[str, object]]:
    now = time.time() - 60
    return [
        {
            **EMPTY_ROW,
            "id": new_record_id(),
            "kind": "interaction",
            "created_at": now + i * 0.001,
            "completed_at": now + i * 0.001 + 0.4,
            "project": "default",
            "key_id": "key_0123456789abcdef",
            "api": "chat",
            "provider": "openai",
            "model_requested": "gpt-4o-mini",
            "model_used": "gpt-4o-mini-2024-07-18",
            "is_stream": False,
            "status_code": 200,
            "outcome": "ok",
            "tokens_estimated": False,
            "latency_ms": 412.5,
            "data_key_id": "dk_0123456789abcdef01234567",
            "guardrails": "[" + ",".join([EVALUATION] * 3) + "]",
            "prompt_ct": os.urandom(1100),
            "response_ct": os.urandom(900),
        }
        for i in range(count)
    ]


def probe(path: Path, stop: threading.Event, waits: list[float]) -> None:
    """Take and release the write lock every ~1 ms, recording how long each take waited."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=0")
    while not stop.is_set():
        began = time.perf_counter()
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:
                time.sleep(0.0005)
        waits.append(time.perf_counter() - began)
        conn.execute("COMMIT")
        time.sleep(0.001)
    conn.close()


def main() -> None:
    print(f"signalvault from {args.source}")
    rows: list[tuple[float, float, float, int, float]] = []
    for _ in range(args.rounds):
        data_dir = Path(tempfile.mkdtemp(prefix="sv-seal-stall-")) / "data"
        services = open_services(Settings(store=StoreSettings(data_dir=data_dir)))
        try:
            with services.store.engine.begin() as conn:
                conn.execute(INSERT_RECORD, records(args.records))
            waits: list[float] = []
            stop = threading.Event()
            thread = threading.Thread(target=probe, args=(data_dir / "signalvault.db", stop, waits))
            thread.start()
            time.sleep(0.05)
            started = time.perf_counter()
            sealed = services.sealer.seal().sealed
            elapsed = time.perf_counter() - started
            stop.set()
            thread.join()
        finally:
            services.sealer.close()
            services.store.close()
        ms = sorted(w * 1000 for w in waits)
        over = sum(w > 5 for w in ms)
        rows.append((elapsed * 1000, ms[-1], sum(ms), over, ms[len(ms) // 2]))
        print(
            f"sealed {sealed} in {elapsed * 1000:.0f} ms; lock takes {len(ms)}, waited: max "
            f"{ms[-1]:.1f} ms, total {sum(ms):.0f} ms, {over} over 5 ms, median {rows[-1][4]:.2f}"
        )
    print(
        "median of rounds: seal {:.0f} ms, longest wait {:.1f} ms, total wait {:.0f} ms, "
        "waits over 5 ms {:.0f}".format(*(statistics.median(r[i] for r in rows) for i in range(4)))
    )


if __name__ == "__main__":
    main()

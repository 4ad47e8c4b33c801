"""Export throughput and memory: N synthetic records in a fresh SQLite store, then `signalvault
export` (jsonl, csv; optionally with content) and `export verify`, each in its own process.

    python bench/export_speed.py [--records N] [--content] [--keep DIR] [--json]
    python bench/export_speed.py --records 20000 --keep DIR --instructions

Records look like the gateway's: UUIDv7 ids, 1,000 end users with their own data keys, real
AES-GCM ciphertext of 0.3-4 KB prompts and responses, guardrail JSON with six evaluations.
Each run is timed as wall time of the whole command (start-up included) and its peak RSS from
os.wait4's rusage of that one child. Aims: >= 50,000 records/s and peak RSS < 300 MB.

`--instructions` counts instead, deterministically on a busy machine: a JSON Lines export under
valgrind's callgrind, less an export of no records (start-up), per record. Valgrind hides the
CPU's SHA extensions, so hashing the file weighs far more there than in real time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from signalvault.config import CryptoSettings, StoreSettings
from signalvault.crypto.envelope import Cipher, load_master_key, new_key
from signalvault.store import open_store
from signalvault.store.schema import audit_records, data_keys
from signalvault.trail.audit import EMPTY_ROW, new_record_id

USERS = 1000
BATCH = 5000
RATE_AIM, RSS_AIM_MB = 50_000, 300
RULES = ("secrets", "pii", "injection", "token_limit", "model_allowlist", "custom_ticket")
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-haiku-4-5", "claude-sonnet-4-5")
OUTCOMES = ("ok",) * 90 + ("blocked",) * 4 + ("rejected",) * 3 + ("provider_error",) * 3


def _guardrails(rng: random.Random, outcome: str) -> str:
    evaluations = []
    for direction in ("input", "output"):
        for rule in RULES[:3]:
            fired = outcome == "blocked" and rule == "secrets" and direction == "input"
            evaluations.append(
                {
                    "rule": rule,
                    "detector": rule,
                    "direction": direction,
                    "action": "block" if rule != "pii" else "redact",
                    "outcome": "blocked" if fired else "pass",
                    "kinds": {"AWS_ACCESS_KEY_ID": 1} if fired else {},
                    "spans": [[0, 12, 32]] if fired else [],
                    "ms": round(rng.uniform(0.01, 0.9), 3),
                }
            )
    return json.dumps(evaluations, separators=(",", ":"))


def _body(rng: random.Random, size: int) -> bytes:
    """A chat request body of about `size` bytes of English-like text."""
    words = ("the", "report", "deploy", "customer", "invoice", "review", "model", "please", "why")
    text = " ".join(rng.choice(words) for _ in range(size // 6))
    return json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    ).encode()


def generate(data_dir: Path, count: int, seed: int = 7) -> float:
    """Fill a fresh store with `count` records; returns seconds taken."""
    started = time.perf_counter()
    store = open_store(StoreSettings(data_dir=data_dir, sqlite_synchronous="normal"))
    store.open()  # migrations
    store.close()
    master_key = load_master_key(CryptoSettings(), data_dir)
    rng = random.Random(seed)
    # A pool of guardrail results per outcome: building JSON per row made generation the slow part.
    guardrails = {o: [_guardrails(rng, o) for _ in range(32)] for o in set(OUTCOMES)}
    texts = [_body(rng, rng.randint(300, 4000)) for _ in range(64)]
    users = []
    for n in range(USERS):
        key_id = f"dk_{n:024x}"
        raw = new_key()
        users.append((f"user-{n:04d}@example.com", key_id, Cipher(raw), raw))
    # The store's own INSERT statements, compiled for sqlite3's executemany (the fastest path).
    insert_record = audit_records.insert().compile(dialect=sqlite_dialect())
    columns = list(insert_record.positiontup or ())
    insert_key = data_keys.insert().compile(dialect=sqlite_dialect())
    db = sqlite3.connect(data_dir / "signalvault.db")
    db.execute("PRAGMA synchronous=OFF")
    keys = [
        {
            "id": key_id,
            "subject": user,
            "wrapped": master_key.wrap(key_id, raw),
            "master_key_id": master_key.key_id,
            "created_at": time.time(),
            "destroyed_at": None,
        }
        for user, key_id, _, raw in users
    ]
    db.executemany(
        str(insert_key), [tuple(k[c] for c in insert_key.positiontup or ()) for k in keys]
    )
    base = time.time() - count * 0.01
    done = 0
    while done < count:
        rows = []
        for i in range(done, min(done + BATCH, count)):
            user, key_id, cipher, _ = users[rng.randrange(USERS)]
            outcome = rng.choice(OUTCOMES)
            record_id = new_record_id()
            created = base + i * 0.01
            prompt_tokens, completion_tokens = rng.randint(20, 2000), rng.randint(1, 800)
            row: dict[str, Any] = {
                **EMPTY_ROW,
                "id": record_id,
                "kind": "interaction",
                "created_at": created,
                "completed_at": created + 0.4,
                "project": f"project-{i % 7}",
                "key_id": f"key_{i % 40:016x}",
                "environment": "prod",
                "end_user": user,
                "session_id": f"sess-{rng.randrange(10**8)}",
                "trace_id": f"{rng.getrandbits(128):032x}",
                "api": "chat",
                "provider": "openai",
                "model_requested": MODELS[i % 4],
                "model_used": MODELS[i % 4],
                "is_stream": i % 3 == 0,
                "status_code": 200 if outcome == "ok" else 400,
                "outcome": outcome,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "tokens_estimated": False,
                "latency_ms": rng.uniform(50, 4000),
                "ttfb_ms": rng.uniform(20, 800),
                "data_key_id": key_id,
                "policy_version": 1 + i * 3 // count,
                "guardrails": rng.choice(guardrails[outcome]),
                "prompt_ct": cipher.encrypt(rng.choice(texts), (record_id + ":prompt").encode()),
                "response_ct": cipher.encrypt(rng.choice(texts), (record_id + ":response").encode())
                if outcome == "ok"
                else None,
            }
            rows.append(tuple(row[c] for c in columns))
        db.executemany(str(insert_record), rows)
        db.commit()
        done += len(rows)
        print(f"\r  generated {done:,} records", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    db.close()
    return time.perf_counter() - started


def measure(argv: list[str], data_dir: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit status) of one command in a fresh process."""
    env = {**os.environ, "SIGNALVAULT_DATA_DIR": str(data_dir), "SIGNALVAULT_CONFIG": ""}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "signalvault", *argv], env=env, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, child.returncode


def instructions(argv: list[str], data_dir: Path) -> tuple[int, int]:
    """(instructions, records) of one export under callgrind (a fresh process, start-up
    included)."""
    env = {**os.environ, "SIGNALVAULT_DATA_DIR": str(data_dir), "SIGNALVAULT_CONFIG": ""}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory(prefix="sv-export-cg-") as tmp:
        dump = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}"]
        out = Path(tmp) / "trail.jsonl"
        subprocess.run(
            [*command, sys.executable, "-m", "signalvault", *argv, "--out", str(out)],
            env=env,
            check=True,
            capture_output=True,
        )
        manifest = json.loads(out.with_name(out.name + ".manifest.json").read_bytes())
        for line in dump.read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1]), manifest["record_count"]
    raise SystemExit("callgrind wrote no summary")


def count_instructions(data_dir: Path) -> None:
    export = ["export", "--format", "jsonl"]
    empty, _ = instructions([*export, "--until", "1970-01-02"], data_dir)
    full, records = instructions(export, data_dir)
    print(
        f"jsonl export: {(full - empty) / records:,.0f} instructions per record "
        f"({records:,} records, start-up of {empty / 1e9:.2f} G subtracted)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--content", action="store_true", help="also time --include-content")
    parser.add_argument("--keep", type=Path, default=None, help="work in (and keep) this dir")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="sv-export-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    if not (data_dir / "signalvault.db").exists():
        seconds = generate(data_dir, args.records)
        print(f"generated {args.records:,} records in {seconds:.1f}s", file=sys.stderr)
    if args.instructions:
        count_instructions(data_dir)
        return
    db_mb = (data_dir / "signalvault.db").stat().st_size / 1e6
    runs = [("jsonl", []), ("csv", [])]
    if args.content:
        runs.append(("jsonl", ["--include-content"]))
    results = []
    for fmt, extra in runs:
        out = work / f"trail.{fmt}"
        wall, rss, status = measure(
            ["export", "--format", fmt, "--out", str(out), *extra], data_dir
        )
        if status != 0:
            raise SystemExit(f"export {fmt} {extra} failed with exit {status}")
        count = json.loads(out.with_name(out.name + ".manifest.json").read_bytes())["record_count"]
        verify_wall, verify_rss, verify_status = measure(["export", "verify", str(out)], data_dir)
        results.append(
            {
                "format": fmt + (" +content" if extra else ""),
                "records": count,
                "seconds": round(wall, 2),
                "records_per_s": round(count / wall),
                "file_mb": round(out.stat().st_size / 1e6, 1),
                "peak_rss_mb": round(rss, 1),
                "verify_seconds": round(verify_wall, 2),
                "verify_ok": verify_status == 0,
                "verify_rss_mb": round(verify_rss, 1),
            }
        )
        out.unlink()
    if args.json:
        print(json.dumps({"db_mb": round(db_mb, 1), "runs": results}))
        return
    print(f"store: {db_mb:,.0f} MB; aims: >= {RATE_AIM:,} records/s, peak RSS < {RSS_AIM_MB} MB")
    for r in results:
        verdict = (
            "ok" if r["records_per_s"] >= RATE_AIM and r["peak_rss_mb"] < RSS_AIM_MB else "MISS"
        )
        print(
            f"  {r['format']:<15} {r['records']:>10,} records  {r['seconds']:>7.2f}s  "
            f"{r['records_per_s']:>8,}/s  {r['file_mb']:>8,.1f} MB  RSS {r['peak_rss_mb']:>6.1f} MB"
            f"  [{verdict}]   verify {r['verify_seconds']:.2f}s "
            f"({'ok' if r['verify_ok'] else 'FAILED'}, RSS {r['verify_rss_mb']:.0f} MB)"
        )


if __name__ == "__main__":
    main()

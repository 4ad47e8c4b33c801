"""Write-ahead audit throughput of one store through the group-commit writer (not a test).

    python bench/store_writes.py                                   # SQLite in a temp directory
    python bench/store_writes.py --store postgres --url postgresql://postgres@127.0.0.1/test

On PostgreSQL the tables go to a new schema that is dropped afterwards. Each of `--callers`
coroutines awaits one write-ahead insert (a record with 1 KiB of ciphertext) after another for
`--seconds`; prints records committed per second, the mean batch size and the process's CPU
time per record. `--work-us N` has each caller spend N us of CPU on the event loop before each
write, as a request does: the writer's thread then competes with a busy loop for the GIL.
`--processes N` (SQLite) runs N writing processes on one file, `--callers` each, as `serve
--workers N` does: each commits its own batches, so they are smaller, and they take turns at
SQLite's write lock.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from signalvault.store.postgres import PostgresStore
from signalvault.store.schema import audit_records
from signalvault.store.sql import INSERT_RECORD, SqlStore
from signalvault.store.sqlite import SqliteStore
from signalvault.store.writer import WriteOp


def record() -> dict[str, object]:
    values: dict[str, object] = {column.name: None for column in audit_records.columns}
    values.update(
        id=str(uuid.uuid4()),
        kind="interaction",
        created_at=time.time(),
        is_stream=False,
        outcome="unknown",
        tokens_estimated=False,
        prompt_ct=secrets.token_bytes(1024),
    )
    return values


async def load(store: SqlStore, callers: int, seconds: float, work_us: float) -> int:
    deadline = time.monotonic() + seconds
    done = 0

    async def caller() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            busy_until = time.thread_time() + work_us / 1e6
            while time.thread_time() < busy_until:
                pass
            await store.write_ahead([WriteOp(INSERT_RECORD, record())])
            done += 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    return done


def run(store: SqlStore, callers: int, seconds: float, work_us: float) -> None:
    store.open()
    try:
        started, cpu = time.monotonic(), time.process_time()
        done = asyncio.run(load(store, callers, seconds, work_us))
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        batches = max(store.writer.batches, 1)
        print(
            f"{done / elapsed:,.0f} records/s with {callers} callers, "
            f"{done / batches:.1f} records per commit ({batches} commits), "
            f"CPU {cpu / done * 1e6:.0f} us per record ({work_us:g} us of it the callers' work)"
        )
    finally:
        store.close()


def _child(path: Path, callers: int, seconds: float, work_us: float, out: Any) -> None:
    store = SqliteStore(path)
    store.open()
    try:
        cpu = time.process_time()
        done = asyncio.run(load(store, callers, seconds, work_us))
        out.put((done, time.process_time() - cpu, max(store.writer.batches, 1)))
    finally:
        store.close()


def run_processes(path: Path, processes: int, callers: int, seconds: float, work_us: float) -> None:
    """`processes` gateways' writers on one SQLite file (`serve --workers N`), `callers` each."""
    store = SqliteStore(path)
    store.open()  # the schema, before the writers race to create it
    store.close()
    out: Any = multiprocessing.Queue()
    children = [
        multiprocessing.Process(target=_child, args=(path, callers, seconds, work_us, out))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    results = [out.get() for _ in children]
    for child in children:
        child.join()
    done, cpu, batches = (sum(r[i] for r in results) for i in range(3))
    print(
        f"{done / seconds:,.0f} records/s with {processes} processes x {callers} callers, "
        f"{done / batches:.1f} records per commit, CPU {cpu / done * 1e6:.0f} us per record"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--work-us", type=float, default=0.0, help="CPU per caller per write")
    parser.add_argument(
        "--processes", type=int, default=1, help="writing processes on one SQLite file"
    )
    args = parser.parse_args()
    if args.store == "sqlite" and args.processes > 1:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.db"
            run_processes(path, args.processes, args.callers, args.seconds, args.work_us)
        return
    if args.store == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            run(SqliteStore(Path(tmp) / "bench.db"), args.callers, args.seconds, args.work_us)
        return
    url = make_url(args.url).set(drivername="postgresql+psycopg")
    schema = f"bench_{secrets.token_hex(4)}"
    admin = PostgresStore(url)
    with admin.engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        scoped = url.update_query_dict({"options": f"-csearch_path={schema}"})
        run(PostgresStore(scoped), args.callers, args.seconds, args.work_us)
    finally:
        with admin.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.engine.dispose()


if __name__ == "__main__":
    main()

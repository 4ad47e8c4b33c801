"""The store failing under the gateway, as docs/architecture.md's failure table says it must be
met: the data directory's disk filling up while writing, the SQLite file locked past the busy
timeout, PostgreSQL connections killed in the middle of batches under load. Each is answered
503 `audit_store_unavailable` (or served through the spool when one is configured), nothing
reaches the provider unrecorded, and the gateway recovers without a restart.

Every test ends with a `Tally`: answers given, provider calls, records lost (an answered request
without its record) and forwards unrecorded (a provider call no record notes); both must be 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
import pytest

from signalvault.app import GatewayApp
from signalvault.config import Settings, StoreSettings
from signalvault.mock_provider import MockProvider
from signalvault.store import RecordFilter
from tests.conftest import make_settings, running_gateway

pytestmark = pytest.mark.anyio
STORE_DOWN = "audit_store_unavailable"
# Outcomes of records written ahead of a provider call (the others were refused before it).
FORWARDED = frozenset(
    {"ok", "provider_error", "stream_cut", "cancelled", "unknown", "gateway_error"}
)


@dataclass
class Tally:
    """What a fault run did, counted from the answers, the provider and the store."""

    answered: dict[int, int]  # status -> how many
    forwards: int  # requests the provider received
    records_lost: int  # answered 200 (so forwarded) but no record
    forwards_unrecorded: int  # provider calls no record's attempts account for
    completions_lost: int  # answered 200, record kept, its outcome still `unknown`

    def line(self, fault: str) -> str:
        return (
            f"{fault}: answered {dict(sorted(self.answered.items()))}, forwards {self.forwards}, "
            f"records lost {self.records_lost}, forwards unrecorded {self.forwards_unrecorded}, "
            f"completions lost {self.completions_lost}"
        )


async def tally(
    app: GatewayApp, mock: MockProvider, answers: list[tuple[int, str | None]]
) -> Tally:
    assert app.services is not None
    store = app.services.store
    rows: list[dict] = []
    # Queued completions (and spool replays, rescued retries) land after the answers: within
    # the rescue's pauses, 32 s at worst.
    for _ in range(2000):
        store.flush()
        rows = [
            r
            for r in store.list_records(RecordFilter(), limit=100_000)
            if r["kind"] == "interaction"
        ]
        if all(r["outcome"] != "unknown" for r in rows):
            break
        await asyncio.sleep(0.02)
    by_id = {row["id"]: row for row in rows}
    # A provider call is recorded when a record was written ahead of it: completed records note
    # each call in `attempts`; one whose completion was lost made at most one (a healthy mock).
    recorded_calls = sum(
        len(orjson.loads(r["attempts"])) if r["attempts"] else 1
        for r in rows
        if r["outcome"] in FORWARDED
    )
    answered: dict[int, int] = {}
    for status, _ in answers:
        answered[status] = answered.get(status, 0) + 1
    ok = [rid for status, rid in answers if status == 200]
    forwards = mock.stats()["total"]
    return Tally(
        answered=answered,
        forwards=forwards,
        records_lost=sum(1 for rid in ok if rid not in by_id),
        forwards_unrecorded=max(0, forwards - recorded_calls),
        completions_lost=sum(
            1 for rid in ok if rid in by_id and by_id[rid]["outcome"] == "unknown"
        ),
    )


async def load(
    client, key: str, count: int, concurrency: int, text: str = "hello"
) -> list[tuple[int, str | None]]:
    """`count` chat requests, `concurrency` at a time: (status, record id) of each answer."""
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> tuple[int, str | None]:
        async with gate:
            response = await client.post(
                "/v1/chat/completions",
                json={
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"{text} {n}"}],
                },
                headers={"authorization": f"Bearer {key}"},
            )
            if response.status_code == 503:
                assert response.json()["error"]["code"] == STORE_DOWN, response.text
            return response.status_code, response.headers.get("x-signalvault-request-id")

    return list(await asyncio.gather(*(one(n) for n in range(count))))


def report(line: str) -> None:
    print(f"\n[fault table] {line}")


# -- the data directory's disk fills up ----------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A tmpfs of 3 MB of its own: the data directory's disk, small enough to fill."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {made.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def grow(mount: Path, size: str) -> None:
    """Give the full disk room again, without touching the gateway (tmpfs resizes in place)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)


def disk_settings(tmp_path, mock_url: str, data_dir: Path, **store: object) -> Settings:
    base = make_settings(tmp_path, mock_url)
    return replace(
        base,
        store=StoreSettings(data_dir=data_dir, sqlite_synchronous="normal", **store),  # type: ignore[arg-type]
    )


BIG = "x" * 60_000  # a prompt that fills 3 MB in a few dozen records


async def test_disk_full_while_writing_refuses_with_503_and_recovers(
    tmp_path, mock_provider, mock, small_disk
):
    settings = disk_settings(tmp_path, mock_provider[1], small_disk / "data")
    async with running_gateway(settings) as (app, client, key):
        answers = await load(client, key, 100, 8, BIG)
        statuses = {status for status, _ in answers}
        assert statuses == {200, 503}, statuses  # the disk filled part-way through
        grow(small_disk, "64m")
        after = await load(client, key, 10, 4, BIG)
        assert {status for status, _ in after} == {200}  # recovered, no restart
        ready = await client.get("/readyz")
        result = await tally(app, mock, answers + after)
    report(result.line("disk full (SQLite, no spool)"))
    assert ready.status_code == 200
    assert result.records_lost == 0 and result.forwards_unrecorded == 0
    assert result.completions_lost == 0  # retried until the disk had room again


async def test_disk_full_with_a_spool_elsewhere_serves_and_replays_everything(
    tmp_path, mock_provider, mock, small_disk
):
    settings = disk_settings(
        tmp_path, mock_provider[1], small_disk / "data", spool_dir=tmp_path / "spool"
    )
    async with running_gateway(settings) as (app, client, key):
        answers = await load(client, key, 80, 8, BIG)
        assert {status for status, _ in answers} == {200}  # the spool took what the disk could not
        assert app.services is not None and app.services.trail.spool is not None
        assert app.services.trail.spool.is_active
        grow(small_disk, "64m")
        for _ in range(500):  # the replay loop moves the spool into the store
            if not app.services.trail.spool.is_active:
                break
            await asyncio.sleep(0.02)
        after = await load(client, key, 5, 4)
        result = await tally(app, mock, answers + after)
    report(result.line("disk full (SQLite, spool on another disk)"))
    assert result.records_lost == 0 and result.forwards_unrecorded == 0
    assert result.completions_lost == 0 and result.answered == {200: 85}


# -- the SQLite file locked longer than the busy timeout -----------------------------------------
@contextlib.contextmanager
def exclusive_lock(database: Path) -> Iterator[None]:
    """Another process's view: a connection holding BEGIN EXCLUSIVE on the store's file."""
    holder = sqlite3.connect(database, isolation_level=None, timeout=10)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


@pytest.mark.parametrize("spool", [False, True], ids=["no-spool", "spool"])
async def test_a_lock_held_past_the_busy_timeout_is_met_as_the_table_says(
    tmp_path, mock_provider, mock, spool
):
    settings = disk_settings(
        tmp_path,
        mock_provider[1],
        tmp_path / "data",
        sqlite_busy_timeout_ms=300,
        spool_dir=tmp_path / "spool" if spool else None,
    )
    async with running_gateway(settings) as (app, client, key):
        database = next((tmp_path / "data").glob("*.db"))
        before = await load(client, key, 5, 5)
        assert app.services is not None
        app.services.store.flush()
        with exclusive_lock(database):
            during = await load(client, key, 20, 10)
            forwarded_during = mock.stats()["total"] - 5
        after = await load(client, key, 5, 5)
        if spool:
            assert app.services.trail.spool is not None
            for _ in range(500):
                if not app.services.trail.spool.is_active:
                    break
                await asyncio.sleep(0.02)
        result = await tally(app, mock, before + during + after)
    label = "SQLite locked past busy timeout" + (" (spool)" if spool else " (no spool)")
    report(result.line(label))
    assert {status for status, _ in before + after} == {200}  # recovered, no restart
    if spool:
        assert {status for status, _ in during} == {200} and forwarded_during == 20
    else:
        assert {status for status, _ in during} == {503} and forwarded_during == 0
    assert result.records_lost == 0 and result.forwards_unrecorded == 0
    assert result.completions_lost == 0


# -- PostgreSQL connections killed in the middle of batches under load ---------------------------
def terminate(pg_user: str, application: str) -> int:
    """Kill every server process serving `application` (the gateway's connections only)."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", dbname="test", user=pg_user, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application,),
        ).fetchall()
    return len(rows)


async def test_postgres_connections_killed_mid_batch_under_load(
    tmp_path, mock_provider, mock, pg_url, pg_user
):
    from signalvault.config import Secret

    application = f"sv-hostile-{os.getpid()}-{os.urandom(3).hex()}"
    url = f"{pg_url}&application_name={application}"
    settings = make_settings(tmp_path, mock_provider[1], database_url=Secret(url))
    kills = 0
    async with running_gateway(settings) as (app, client, key):
        stop = asyncio.Event()

        async def killer() -> None:
            nonlocal kills
            while not stop.is_set():
                await asyncio.sleep(0.05)
                kills += await asyncio.to_thread(terminate, pg_user, application)

        killing = asyncio.ensure_future(killer())
        try:
            during = await load(client, key, 300, 32)
        finally:
            stop.set()
            await killing
        after = await load(client, key, 20, 10)
        result = await tally(app, mock, during + after)
    report(result.line(f"PostgreSQL connections killed under load ({kills} kills)"))
    assert kills > 0
    assert {status for status, _ in during} <= {200, 503}
    assert {status for status, _ in after} == {200}  # recovered, no restart
    assert result.records_lost == 0 and result.forwards_unrecorded == 0
    assert result.completions_lost == 0  # completions of killed batches were committed again

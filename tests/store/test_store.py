"""Both stores (SQLite, and PostgreSQL when reachable): migrations equal the schema, group
commit, listing; SQLite's pragmas and file modes."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from signalvault.config import Secret, StoreSettings
from signalvault.errors import ConfigError, StoreError
from signalvault.store import RecordFilter, Store, open_store
from signalvault.store.schema import metadata
from signalvault.store.sql import INSERT_RECORD
from signalvault.store.sqlite import SqliteStore
from signalvault.store.writer import GroupCommitWriter, WriteOp


def row(record_id: str, **values) -> dict:
    base = {column.name: None for column in metadata.tables["audit_records"].columns}
    base.update(
        id=record_id,
        kind="interaction",
        created_at=1000.0,
        is_stream=False,
        outcome="ok",
        tokens_estimated=False,
    )
    return {**base, **values}


def store_settings(request, tmp_path) -> StoreSettings:
    """Settings of the backend a parametrized test runs on."""
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        return StoreSettings(data_dir=tmp_path / "data", database_url=Secret(url))
    return StoreSettings(data_dir=tmp_path / "data")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path) -> StoreSettings:
    return store_settings(request, tmp_path)


@pytest.fixture
def store(backend: StoreSettings) -> Iterator[Store]:
    store = open_store(backend)
    store.open()
    yield store
    store.close()


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "signalvault.db")
    store.open()
    yield store
    store.close()


def test_migrations_produce_exactly_the_schema(store):
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []


def test_opening_twice_is_idempotent(backend, store):
    again = open_store(backend)
    again.open()
    again.close()


def test_schema_head_is_the_newest_migration():
    """A store at SCHEMA_HEAD skips alembic: a migration added without moving it would never run."""
    from alembic.script import ScriptDirectory

    from signalvault.store.sql import MIGRATIONS, SCHEMA_HEAD

    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == SCHEMA_HEAD


def test_sqlite_store_at_head_opens_without_alembic(tmp_path):
    """Serving processes open a migrated store: alembic (~10 MB) is not loaded for that."""
    import subprocess
    import sys

    SqliteStore(tmp_path / "signalvault.db").open()
    probe = (
        "import sys; from pathlib import Path; from signalvault.store.sqlite import SqliteStore; "
        f"s = SqliteStore(Path({str(tmp_path / 'signalvault.db')!r})); s.open(); s.close(); "
        "print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_sqlite_binds_bytes_and_null_as_they_are(sqlite_store):
    """bytes and None skip sqlite3's adapter lookup (`bind_as_is`): stored as BLOB and NULL."""
    blob = bytes(range(256))
    sqlite_store.writer.submit([WriteOp(INSERT_RECORD, row("r1", prompt_ct=blob))])
    with sqlite_store.engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT prompt_ct, typeof(prompt_ct), typeof(response_ct) FROM audit_records"
        ).one()
    assert tuple(stored) == (blob, "blob", "null")


def test_wal_and_secure_delete_are_on(sqlite_store):
    store = sqlite_store
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_sqlite_open_tries_again_while_another_process_holds_the_lock(tmp_path, monkeypatch):
    """Two processes opening a fresh file can deadlock on its lock; SQLite then fails one at once
    with "database is locked" instead of waiting: the open must try again, not give up."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from signalvault.store.sql import SqlStore

    real = SqlStore._migrate
    failures = {"left": 2}

    def contended(self: SqlStore) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
        real(self)

    monkeypatch.setattr(SqlStore, "_migrate", contended)
    store = SqliteStore(tmp_path / "signalvault.db")
    store.open()
    assert failures["left"] == 0
    store.close()
    # Any other failure, or a lock held past the busy timeout, still fails the open.
    failures["left"] = 100
    slow = SqliteStore(tmp_path / "other.db", busy_timeout_ms=200)
    with pytest.raises(StoreError, match="OperationalError"):
        slow.open()

    def broken(self: SqlStore) -> None:
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(SqlStore, "_migrate", broken)
    with pytest.raises(StoreError):
        SqliteStore(tmp_path / "third.db").open()


def test_files_are_private(tmp_path):
    store = open_store(StoreSettings(data_dir=tmp_path / "data"))
    store.open()
    try:
        data_dir = tmp_path / "data"
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        files = list(data_dir.iterdir())
        assert files
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
    finally:
        store.close()


def test_write_ahead_commits_before_returning(store):
    asyncio.run(store.write_ahead([WriteOp(INSERT_RECORD, row("r1"))]))
    assert store.get_record("r1")["outcome"] == "ok"


def test_concurrent_writes_share_one_transaction(store):
    writer = GroupCommitWriter(store.engine, batch_max=100)

    async def main() -> None:
        writes = [
            asyncio.ensure_future(writer.write([WriteOp(INSERT_RECORD, row(f"r{i}"))]))
            for i in range(5)
        ]
        await asyncio.sleep(0)  # every write is queued before the writer thread starts
        await asyncio.gather(*writes)

    try:
        asyncio.run(main())
    finally:
        writer.stop()
    assert writer.batches == 1 and store.count_records() == 5


def test_failing_batch_fails_every_waiter_and_keeps_earlier_rows(store):
    writer = GroupCommitWriter(store.engine, batch_max=100)

    async def main() -> list[object]:
        await writer.write([WriteOp(INSERT_RECORD, row("kept"))])
        writer.stop()
        # "kept" again violates the primary key: the whole batch rolls back.
        writes = [
            asyncio.ensure_future(writer.write([WriteOp(INSERT_RECORD, row(record_id))]))
            for record_id in ("new-1", "kept", "new-2")
        ]
        await asyncio.sleep(0)
        return await asyncio.gather(*writes, return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        writer.stop()
    assert all(isinstance(r, StoreError) for r in results)
    assert writer.failed_batches == 1
    assert [r["id"] for r in store.list_records(RecordFilter())] == ["kept"]


def test_flush_waits_for_a_batch_handed_to_the_commit_thread(sqlite_store):
    """A batch queued in the commit thread but not started yet must be committed when flush()
    returns (readers such as the CLI and tests rely on it)."""
    import threading

    writer = sqlite_store.writer
    release = threading.Event()

    async def main() -> None:
        # Occupy the commit thread so the next batch waits in its queue.
        writer._commit_thread().submit(release.wait)
        writer.submit([WriteOp(INSERT_RECORD, row("handed"))])
        await asyncio.sleep(0.05)  # the turn ends: the batch is handed over, not yet run
        flushed = threading.Thread(target=writer.flush)
        flushed.start()
        flushed.join(0.2)
        returned_early = not flushed.is_alive()
        release.set()
        assert not returned_early, "flush() returned before the handed batch ran"
        flushed.join(10)
        assert not flushed.is_alive()
        assert sqlite_store.get_record("handed") is not None

    asyncio.run(main())


def test_write_later_is_committed_by_flush(store):
    store.write_later([WriteOp(INSERT_RECORD, row("later"))])
    store.flush()
    assert store.get_record("later") is not None


def test_list_records_filters_and_cursor(store):
    rows = [
        row("r1", key_id="k1", end_user="alice", model_requested="gpt-4o", created_at=1.0),
        row("r2", key_id="k2", end_user="bob", model_used="gpt-4o", created_at=2.0),
        row("r3", key_id="k1", outcome="blocked", project="p", created_at=3.0),
        row("r4", key_id="k1", end_user="alice", model_requested="claude", created_at=4.0),
    ]
    asyncio.run(store.write_ahead([WriteOp(INSERT_RECORD, r) for r in rows]))

    def ids(where: RecordFilter, limit: int = 50) -> list[str]:
        return [r["id"] for r in store.list_records(where, limit)]

    assert ids(RecordFilter()) == ["r4", "r3", "r2", "r1"]
    assert ids(RecordFilter(key_id="k1")) == ["r4", "r3", "r1"]
    assert ids(RecordFilter(end_user="alice")) == ["r4", "r1"]
    assert ids(RecordFilter(model="gpt-4o")) == ["r2", "r1"]
    assert ids(RecordFilter(outcome="blocked")) == ["r3"]
    assert ids(RecordFilter(project="p")) == ["r3"]
    assert ids(RecordFilter(since=2.0, until=4.0)) == ["r3", "r2"]
    assert ids(RecordFilter(), limit=2) == ["r4", "r3"]
    assert ids(RecordFilter(before_id="r3"), limit=2) == ["r2", "r1"]
    assert ids(RecordFilter(key_id="k1", before_id="r4")) == ["r3", "r1"]
    assert store.count_records() == 4


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_database_url_selects_postgres(tmp_path, scheme):
    from signalvault.store.postgres import PostgresStore

    url = Secret(f"{scheme}://u:pw@db.example/signalvault")
    store = open_store(StoreSettings(data_dir=tmp_path, database_url=url, pool_size=3))
    assert isinstance(store, PostgresStore)
    assert store.engine.url.drivername == "postgresql+psycopg"
    assert store.engine.pool.size() == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url", ["mysql://u:hunter2@db/x", "sqlite:///hunter2.db", "postgresql://u:hunter2@db:port/x"]
)
def test_database_url_errors_never_quote_the_url(tmp_path, url):
    with pytest.raises(ConfigError) as caught:
        open_store(StoreSettings(data_dir=tmp_path, database_url=Secret(url)))
    assert "hunter2" not in str(caught.value)


def test_store_that_does_not_answer_raises_store_error(tmp_path):
    store = SqliteStore(tmp_path / "missing-dir" / "x.db")
    with pytest.raises(StoreError, match="does not answer"):
        store.keys_version()


def test_an_event_record_is_committed_with_its_actor_and_details(backend):
    from signalvault.config import Settings
    from signalvault.control.services import open_services
    from signalvault.trail.record_json import record_json

    services = open_services(Settings(store=backend))
    try:
        record_id = services.trail.record_event(
            "content_read", "cli:alice", {"record": "abc"}, project="p1"
        )
        row = services.store.get_record(record_id)
        assert row is not None
        shown = record_json(row)
        assert (shown["kind"], shown["actor"], shown["details"]) == (
            "content_read",
            "cli:alice",
            {"record": "abc"},
        )
        assert shown["project"] == "p1" and shown["outcome"] == "ok"
    finally:
        services.store.close()


def test_sqlite_wal_is_copied_back_by_the_checkpointer_not_by_request_commits(tmp_path):
    """Commits of the group-commit writer (a request's write-ahead record) no longer copy the WAL
    into the database file once it passes SQLite's default 1,000 pages; the store's checkpoint
    thread does, beside them."""
    path = tmp_path / "sv.db"
    store = SqliteStore(path)
    store.open()
    try:
        store.checkpointer.stop()
        before = path.stat().st_mtime_ns
        for i in range(100):  # one commit each (no event loop): ~1,700 pages of WAL
            store.write_later([WriteOp(INSERT_RECORD, row(f"r{i}", prompt_ct=bytes(3000)))])
        assert path.stat().st_mtime_ns == before  # only a checkpoint writes the database file
        store.checkpointer.start()
        deadline = time.monotonic() + 5
        while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_mtime_ns != before
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM audit_records").scalar() == 100
    finally:
        store.close()


def test_the_checkpointer_runs_after_commits_and_rests_while_the_store_is_idle(tmp_path):
    """Woken by the writer's commits; no checkpoint ten times a second on an idle store."""
    store = SqliteStore(tmp_path / "sv.db")
    store.open()
    try:
        time.sleep(0.5)  # the first run, for what the WAL held at start
        rested = store.checkpointer.checkpoints
        time.sleep(1.0)
        assert store.checkpointer.checkpoints == rested
        store.write_later([WriteOp(INSERT_RECORD, row("r1"))])
        deadline = time.monotonic() + 5
        while store.checkpointer.checkpoints == rested and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.checkpointer.checkpoints == rested + 1
    finally:
        store.close()


def test_tool_calls_are_found_by_their_call_id_index_whatever_the_store_holds(sqlite_store):
    """A tool result answering a call this process did not record is looked up on the request
    path: through the call_id index, not by reading the project's events (~50 ms at 100k
    records when SQLite chose a project index, growing with the store)."""
    from sqlalchemy import event

    from signalvault.store.run_queries import tool_events
    from signalvault.trail.linked import INSERT_LINK

    calls = [("c1", "tool_call"), ("c2", "tool_result"), ("c3", "tool_call")]
    link = {"project": "p", "run_id": None, "tool_name": "t"}
    rows = [
        link | {"call_id": c, "kind": k, "event_id": f"e{n}", "record_id": f"r{n}", "created_at": n}
        for n, (c, k) in enumerate(calls * 50)
    ]
    sqlite_store.writer.submit([WriteOp(INSERT_LINK, r) for r in rows])
    seen: list[tuple[str, Any]] = []
    engine = sqlite_store.engine
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2:4]))
    found = tool_events(engine, "p", ["c1", "c2"])
    assert len(found) == 100 and {f["call_id"] for f in found} == {"c1", "c2"}
    assert [f["created_at"] for f in found] == sorted(f["created_at"] for f in found)
    assert tool_events(engine, "other", ["c1"]) == []
    statement, params = seen[-2]
    with engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).fetchall()
    assert [step[3] for step in plan if "tool_call_links" in step[3]] == [
        "SEARCH tool_call_links USING INDEX ix_tool_call_links_call_id (call_id=?)"
    ]


def test_a_call_is_answered_by_a_result_of_its_id_held_in_its_run(sqlite_store):
    """A result answering a call of its own run has no link row: whether the call was answered
    is read from the run's records: only a tool_result of exactly that id (ids holding LIKE
    wildcards or characters JSON escapes included), in that run and project, that was sent on
    (a refused request's result keeps its refusal as outcome)."""
    import orjson
    from sqlalchemy import event

    from signalvault.store.run_queries import tool_events
    from signalvault.trail.linked import INSERT_LINK

    ids = ["call_1", "call%2", 'call"3\\x', "call_4"]
    link = {"project": "p", "kind": "tool_call", "tool_name": "t", "created_at": 1000.0}
    links = [
        link | {"call_id": c, "event_id": f"e{n}", "record_id": "calls", "run_id": "r-1"}
        for n, c in enumerate(ids)
    ]

    def holding(
        record_id: str, *events: tuple[str, str], outcome: str = "ok", **values: Any
    ) -> WriteOp:
        entries = [
            {"id": f"{record_id}{n}", "type": t, "call_id": c, "outcome": outcome}
            for n, (t, c) in enumerate(events)
        ]
        values = {"run_id": "r-1", "project": "p", "created_at": 1001.0} | values
        return WriteOp(
            INSERT_RECORD, row(record_id, events=orjson.dumps(entries).decode(), **values)
        )

    sqlite_store.writer.submit(
        [WriteOp(INSERT_LINK, r) for r in links]
        + [
            holding("calls", *(("tool_call", c) for c in ids), created_at=1000.0),
            holding("a", ("tool_result", "callX1")),  # "_" must not match any character
            holding("f", ("tool_result", "call_1"), outcome="blocked"),  # refused: not sent
            holding("b", ("tool_result", "call%2")),
            holding("c", ("tool_result", 'call"3\\x')),
            holding("d", ("tool_result", "call_4"), run_id="r-2"),  # another run
            holding("e", ("tool_result", "call_4"), project="q"),  # another project
        ]
    )
    seen: list[tuple[str, Any]] = []
    engine = sqlite_store.engine
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2:4]))
    found = {f["call_id"]: f["answered"] for f in tool_events(engine, "p", ids)}
    assert found == {"call_1": False, "call%2": True, 'call"3\\x': True, "call_4": False}
    statement, params = seen[-1]
    with engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).fetchall()
    assert any("USING INDEX ix_audit_records_run_id" in step[3] for step in plan), plan


def test_migration_0013_copies_the_call_ids_of_older_tool_event_records(tmp_path):
    """Event records written before tool calls were held in their records keep answering: their
    call ids are copied into tool_call_links, so a later result still finds its call."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from signalvault.store.run_queries import tool_events
    from signalvault.store.sql import MIGRATIONS

    path = tmp_path / "signalvault.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0012")
        for record_id, kind, call_id in [
            ("r1", "tool_call", "call_a"),
            ("r2", "tool_result", "call_a"),
            ("r3", "interaction", None),
        ]:
            conn.execute(
                text(
                    "INSERT INTO audit_records (id, kind, created_at, project, outcome, is_stream,"
                    " tokens_estimated, call_id, run_id, tool_name) VALUES (:id, :kind, 1.0, 'p',"
                    " 'ok', 0, 0, :call_id, 'run-1', 'lookup')"
                ),
                {"id": record_id, "kind": kind, "call_id": call_id},
            )
    engine.dispose()
    store = SqliteStore(path)
    store.open()
    found = tool_events(store.engine, "p", ["call_a"])
    assert [(f["id"], f["kind"], f["run_id"], f["tool_name"]) for f in found] == [
        ("r1", "tool_call", "run-1", "lookup"),
        ("r2", "tool_result", "run-1", "lookup"),
    ]
    store.close()

"""GroupCommitWriter when a batch fails: the callers waiting for it get StoreError, and the
write-behind operations riding in it (nobody waits for those) go to `on_lost`, never silently
away."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy.exc import OperationalError

from signalvault.errors import StoreError
from signalvault.store.sql import INSERT_RECORD
from signalvault.store.sqlite import SqliteStore
from signalvault.store.writer import WriteOp
from tests.store.test_store import row


@pytest.mark.parametrize("inline", [False, True], ids=["commit-thread", "inline"])
@pytest.mark.parametrize(
    "failure",
    [OperationalError("INSERT ...", {}, Exception("disk I/O error")), ValueError("a bug")],
    ids=["database", "other"],
)
def test_a_failed_batch_hands_its_write_behind_operations_to_on_lost(
    tmp_path, monkeypatch, inline, failure
):
    """In the commit thread or on the loop's thread (a request alone), a batch that fails, in
    the database or not, fails its callers and hands on the operations no one waits for."""
    sqlite_store = SqliteStore(tmp_path / "signalvault.db")
    sqlite_store.open()
    writer = sqlite_store.writer
    writer.may_commit_inline = lambda: inline
    lost: list[list[WriteOp]] = []
    writer.on_lost = lost.append

    def fail(ops, durable):
        raise failure

    monkeypatch.setattr(writer, "_execute", fail)
    behind = WriteOp(INSERT_RECORD, row("later"))

    async def batch() -> None:
        sqlite_store.write_later([behind])
        await sqlite_store.write_ahead([WriteOp(INSERT_RECORD, row("waited"))])

    with pytest.raises(StoreError):
        asyncio.run(asyncio.wait_for(batch(), 5))  # a batch never settled would hang
    assert lost == [[behind]] and writer.failed_batches == 1 and writer.inline_batches == 0
    monkeypatch.undo()
    sqlite_store.close()


def _sync_modes(writer) -> list[int]:
    """The writer's `PRAGMA synchronous` at each commit from now on (1 NORMAL, 2 FULL)."""
    modes: list[int] = []
    execute = writer._execute

    def noted(ops, durable):
        execute(ops, durable)
        modes.append(writer._connection.execute("PRAGMA synchronous").fetchone()[0])

    writer._execute = noted
    return modes


def test_only_batches_someone_waits_for_are_synced_when_they_commit(tmp_path):
    """synchronous=FULL: a batch of write-behind operations alone commits without an fsync
    (synchronous=NORMAL on the writer's connection); one holding a write-ahead record, and any
    flush (CLI, shutdown), commits synced, which also syncs the frames committed before it."""
    sqlite_store = SqliteStore(tmp_path / "signalvault.db")
    sqlite_store.open()
    writer = sqlite_store.writer
    modes = _sync_modes(writer)

    async def batches() -> None:
        sqlite_store.write_later([WriteOp(INSERT_RECORD, row("behind-1"))])
        await asyncio.sleep(0.05)
        await sqlite_store.write_ahead([WriteOp(INSERT_RECORD, row("ahead"))])
        sqlite_store.write_later([WriteOp(INSERT_RECORD, row("behind-2"))])
        await asyncio.sleep(0.05)
        sqlite_store.write_later([WriteOp(INSERT_RECORD, row("behind-3"))])
        sqlite_store.flush()

    asyncio.run(batches())
    assert modes == [1, 2, 1, 2]  # NORMAL, FULL, NORMAL, FULL (the flush)

    async def evidence() -> None:  # a refused request's record: no one waits, synced anyway
        sqlite_store.write_later([WriteOp(INSERT_RECORD, row("behind-4"))])
        await asyncio.sleep(0.05)
        sqlite_store.write_later([WriteOp(INSERT_RECORD, row("refused"), must_sync=True)])
        await asyncio.sleep(0.05)

    asyncio.run(evidence())
    assert modes[-2:] == [1, 2]
    assert all(sqlite_store.get_record(r) for r in ("behind-1", "ahead", "behind-2", "behind-3"))
    sqlite_store.close()


def test_no_commit_is_relaxed_further_with_synchronous_normal_configured(tmp_path):
    sqlite_store = SqliteStore(tmp_path / "signalvault.db", synchronous="normal")
    sqlite_store.open()
    assert sqlite_store.writer.sync_modes is None  # nothing to relax: NORMAL throughout
    sqlite_store.close()


def test_a_batch_waits_out_another_connections_lock_on_its_own_connection(tmp_path):
    """While another connection (the sealer, a CLI) holds SQLite's write lock, the writer retries
    its batch until the lock is free, keeping its connection: no new connection per retry."""
    import sqlite3
    import threading
    import time

    from sqlalchemy import event

    store = SqliteStore(tmp_path / "signalvault.db")
    store.open()
    try:
        store.write_later([WriteOp(INSERT_RECORD, row("first"))])  # the writer's connection
        connects: list[int] = []
        event.listen(store.engine, "connect", lambda *_: connects.append(1))
        holder = sqlite3.connect(
            tmp_path / "signalvault.db", isolation_level=None, check_same_thread=False
        )
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.1, holder.execute, args=("COMMIT",))
        release.start()
        began = time.monotonic()
        store.write_later([WriteOp(INSERT_RECORD, row("second"))])
        assert time.monotonic() - began >= 0.09  # it waited for the lock
        assert connects == []  # ~100 retries, all on the connection it had
        release.join()
        holder.close()
        assert store.get_record("second") is not None
        assert store.writer.failed_batches == 0
    finally:
        store.close()


def test_statements_of_one_and_many_parameters_run_in_one_batch(tmp_path):
    """Rows reach the driver in its parameter order, whatever the statement's parameter count."""
    from sqlalchemy import bindparam, delete

    from signalvault.store.schema import audit_records

    sqlite_store = SqliteStore(tmp_path / "signalvault.db")
    sqlite_store.open()
    remove = delete(audit_records).where(audit_records.c.id == bindparam("_id"))
    sqlite_store.writer.submit(
        [
            WriteOp(INSERT_RECORD, row("kept", model_requested="gpt-x")),
            WriteOp(INSERT_RECORD, row("gone")),
            WriteOp(remove, {"_id": "gone"}),
        ]
    )
    with sqlite_store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, model_requested FROM audit_records").all()
    assert [tuple(r) for r in rows] == [("kept", "gpt-x")]
    sqlite_store.close()


def test_rows_are_read_in_parameter_order_for_any_count_of_parameters():
    from signalvault.store.writer import _values_in_order

    row = {"a": 1, "b": 2, "c": 3}
    assert _values_in_order(("c", "a"))(row) == (3, 1)
    assert _values_in_order(("b",))(row) == (2,)
    assert _values_in_order(())(row) == ()


def test_a_batch_with_order_free_operations_keeps_the_order_of_the_others(tmp_path):
    """Records, their call-id rows (order-free) and updates of the records, interleaved: every
    update still finds the insert it changes."""
    from sqlalchemy import bindparam, update

    from signalvault.store.schema import audit_records
    from signalvault.trail.linked import INSERT_LINK

    sqlite_store = SqliteStore(tmp_path / "signalvault.db")
    sqlite_store.open()
    rename = (
        update(audit_records)
        .where(audit_records.c.id == bindparam("_id"))
        .values(model_requested=bindparam("model_requested"))
    )
    link = {"project": None, "kind": "tool_call", "run_id": None, "tool_name": "t"}
    ops = []
    for n in range(3):
        ops.append(WriteOp(INSERT_RECORD, row(f"r{n}")))
        values = {"call_id": f"c{n}", "event_id": f"e{n}", "record_id": f"r{n}", "created_at": n}
        ops.append(WriteOp(INSERT_LINK, link | values, order_free=True))
        ops.append(WriteOp(rename, {"_id": f"r{n}", "model_requested": f"m{n}"}))
    sqlite_store.writer.submit(ops)
    with sqlite_store.engine.connect() as conn:
        models = conn.exec_driver_sql("SELECT model_requested FROM audit_records").all()
        links = conn.exec_driver_sql("SELECT count(*) FROM tool_call_links").scalar()
    assert sorted(m for (m,) in models) == ["m0", "m1", "m2"] and links == 3
    sqlite_store.close()


def test_order_free_ops_are_grouped_at_the_end_of_their_batch():
    from signalvault.store.writer import _runs

    a, b, free = object(), object(), object()
    ops = [
        WriteOp(a, {"n": 1}),
        WriteOp(free, {"n": 2}, order_free=True),
        WriteOp(a, {"n": 3}),
        WriteOp(b, {"n": 4}),
        WriteOp(free, {"n": 5}, order_free=True),
        WriteOp(a, {"n": 6}),
    ]
    runs = [(statement, [p["n"] for p in rows]) for statement, rows in _runs(ops)]
    assert runs == [(a, [1, 3]), (b, [4]), (a, [6]), (free, [2, 5])]


def _hold_commit_thread(writer) -> threading.Event:
    """Occupy the writer's commit thread until the returned event is set, so that batches handed
    to it wait there unbegun (as one does while the event loop's thread holds the GIL)."""
    release, busy = threading.Event(), threading.Event()

    def hold() -> None:
        busy.set()
        release.wait(10)

    writer._commit_thread().submit(hold)
    busy.wait(10)
    return release


def _committed_ids(sqlite_store) -> list[str]:
    with sqlite_store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id FROM audit_records ORDER BY rowid").all()
    return [r for (r,) in rows]


def test_a_batch_the_commit_thread_has_not_begun_commits_with_the_next_one(tmp_path):
    """A write-behind batch still waiting for the commit thread is taken back and committed in
    the same transaction as the write-ahead record queued after it, in queue order and synced:
    the record does not wait for a transaction of its own to end first."""
    sqlite_store = SqliteStore(tmp_path / "signalvault.db")
    sqlite_store.open()
    writer = sqlite_store.writer
    sizes: list[int] = []
    writer.on_batch = lambda ops, seconds, ok: sizes.append(ops)
    release = _hold_commit_thread(writer)
    loop_errors: list[dict] = []

    async def requests() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, error: loop_errors.append(error))
        sqlite_store.write_later([WriteOp(INSERT_RECORD, row("completion-before"))])
        await asyncio.sleep(0)  # handed to the commit thread, which cannot begin it
        ahead = asyncio.ensure_future(
            sqlite_store.write_ahead([WriteOp(INSERT_RECORD, row("write-ahead"))])
        )
        await asyncio.sleep(0.05)
        release.set()
        await ahead

    asyncio.run(requests())
    assert loop_errors == []  # the job taken back ends quietly
    assert sizes == [2]  # one transaction for both
    assert _committed_ids(sqlite_store) == ["completion-before", "write-ahead"]
    assert writer.failed_batches == 0
    sqlite_store.close()


def test_a_flush_waits_for_the_batch_its_operations_were_taken_back_into(tmp_path):
    """flush() (shutdown, CLI) from another thread returns only once the batch it waited for is
    committed, also when the event loop took that batch back from the commit thread meanwhile
    and handed it over again with more operations."""
    sqlite_store = SqliteStore(tmp_path / "signalvault.db")
    sqlite_store.open()
    writer = sqlite_store.writer
    release = _hold_commit_thread(writer)
    seen_at_flush: list[list[str]] = []

    def flush() -> None:
        writer.flush()
        seen_at_flush.append(_committed_ids(sqlite_store))

    async def requests() -> None:
        sqlite_store.write_later([WriteOp(INSERT_RECORD, row("completion-before"))])
        await asyncio.sleep(0)
        flushing = threading.Thread(target=flush)
        flushing.start()
        await asyncio.sleep(0.05)  # the flush waits for the batch handed over
        ahead = asyncio.ensure_future(
            sqlite_store.write_ahead([WriteOp(INSERT_RECORD, row("write-ahead"))])
        )
        await asyncio.sleep(0.1)  # taken back: a flush that stopped waiting returns now
        release.set()
        await ahead
        await asyncio.to_thread(flushing.join, 10)

    asyncio.run(requests())
    assert seen_at_flush == [["completion-before", "write-ahead"]]
    sqlite_store.close()


def _inline_store(tmp_path) -> SqliteStore:
    sqlite_store = SqliteStore(tmp_path / "signalvault.db")
    sqlite_store.open()
    sqlite_store.writer.may_commit_inline = lambda: True
    return sqlite_store


def test_alone_a_write_ahead_record_commits_synced_without_the_commit_thread(tmp_path):
    """With no other request in flight (`may_commit_inline`), the record commits on the event
    loop's thread, synced, and the commit thread is never started; unset, it is used."""
    sqlite_store = _inline_store(tmp_path)
    writer = sqlite_store.writer
    modes = _sync_modes(writer)
    asyncio.run(sqlite_store.write_ahead([WriteOp(INSERT_RECORD, row("alone"))]))
    assert writer.inline_batches == 1 and writer._executor is None and modes == [2]  # FULL
    assert sqlite_store.get_record("alone") is not None

    writer.may_commit_inline = lambda: False
    asyncio.run(sqlite_store.write_ahead([WriteOp(INSERT_RECORD, row("among-others"))]))
    assert writer.inline_batches == 1 and writer._executor is not None
    assert sqlite_store.get_record("among-others") is not None
    sqlite_store.close()


def test_write_behind_batches_never_commit_inline(tmp_path):
    sqlite_store = _inline_store(tmp_path)

    async def later() -> None:
        sqlite_store.write_later([WriteOp(INSERT_RECORD, row("behind"))])
        await asyncio.sleep(0.05)

    asyncio.run(later())
    assert sqlite_store.writer.inline_batches == 0
    assert sqlite_store.get_record("behind") is not None
    sqlite_store.close()


def test_an_inline_commit_never_waits_for_a_lock_on_the_event_loop(tmp_path):
    """While another connection holds SQLite's write lock, the record is not committed inline:
    the commit thread waits the lock out, and the event loop runs other tasks meanwhile."""
    import sqlite3

    sqlite_store = _inline_store(tmp_path)
    holder = sqlite3.connect(
        tmp_path / "signalvault.db", isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.2, holder.execute, args=("COMMIT",))
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def request() -> None:
        ticker = asyncio.ensure_future(ticking())
        await asyncio.sleep(0)
        release.start()
        await sqlite_store.write_ahead([WriteOp(INSERT_RECORD, row("waited"))])
        ticker.cancel()

    asyncio.run(request())
    release.join()
    holder.close()
    assert ticks >= 10  # the loop was free for most of the 0.2 s
    assert sqlite_store.writer.inline_batches == 0
    assert sqlite_store.get_record("waited") is not None
    sqlite_store.close()


def test_what_an_inline_batch_leaves_queued_commits_next(tmp_path):
    """Records queued beyond one batch's size commit in the next turn, after an inline batch as
    after one of the commit thread: none waits for a later write to come along."""
    sqlite_store = _inline_store(tmp_path)
    sqlite_store.writer._batch_max = 1

    async def two_records() -> None:
        writes = [
            sqlite_store.write_ahead([WriteOp(INSERT_RECORD, row(name))])
            for name in ("first", "second")
        ]
        await asyncio.wait_for(asyncio.gather(*writes), 5)

    asyncio.run(two_records())
    assert sqlite_store.writer.inline_batches == 2
    assert _committed_ids(sqlite_store) == ["first", "second"]
    sqlite_store.close()

"""GroupCommitWriter when a batch fails: the callers waiting for it get StoreError, and the
write-behind operations riding in it (nobody waits for those) go to `on_lost`, never silently
away."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from signalvault.errors import StoreError
from signalvault.store.sql import INSERT_RECORD
from signalvault.store.sqlite import SqliteStore
from signalvault.store.writer import WriteOp
from tests.store.test_store import row


def test_a_failed_batch_hands_its_write_behind_operations_to_on_lost(tmp_path, monkeypatch):
    sqlite_store = SqliteStore(tmp_path / "signalvault.db")
    sqlite_store.open()
    writer = sqlite_store.writer
    lost: list[list[WriteOp]] = []
    writer.on_lost = lost.append

    def fail(ops):
        raise OperationalError("INSERT ...", {}, Exception("disk I/O error"))

    monkeypatch.setattr(writer, "_execute", fail)
    behind = WriteOp(INSERT_RECORD, row("later"))

    async def batch() -> None:
        sqlite_store.write_later([behind])
        await sqlite_store.write_ahead([WriteOp(INSERT_RECORD, row("waited"))])

    with pytest.raises(StoreError):
        asyncio.run(batch())
    assert lost == [[behind]]
    monkeypatch.undo()
    sqlite_store.close()


def test_a_lock_held_elsewhere_is_waited_out_on_the_same_connection(tmp_path):
    """While another connection (the sealer, the CLI) holds the write lock, the batch is retried
    until it is released, and committed; the writer keeps its connection through the retries
    (a new one per retry cost its pragmas and statements every 2 ms)."""
    import sqlite3
    import threading

    sqlite_store = SqliteStore(tmp_path / "signalvault.db", busy_timeout_ms=5000)
    sqlite_store.open()
    writer = sqlite_store.writer
    writer.submit([WriteOp(INSERT_RECORD, row("first"))])
    connection = writer._connection
    holder = sqlite3.connect(
        tmp_path / "signalvault.db", isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.2, holder.execute, ["COMMIT"]).start()
    asyncio.run(sqlite_store.write_ahead([WriteOp(INSERT_RECORD, row("waited"))]))
    assert writer._connection is connection
    with sqlite_store.engine.connect() as conn:
        ids = conn.exec_driver_sql("SELECT id FROM audit_records ORDER BY id").scalars().all()
    assert ids == ["first", "waited"]
    holder.close()
    sqlite_store.close()


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

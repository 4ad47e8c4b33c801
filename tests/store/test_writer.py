"""GroupCommitWriter when a batch fails: the callers waiting for it get StoreError, and the
write-behind operations riding in it (nobody waits for those) go to `on_lost`, never silently
away."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.exc import OperationalError

from signalvault.errors import StoreError
from signalvault.store.schema import state
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


def test_each_statement_binds_its_rows_in_column_order_whatever_its_parameter_count(tmp_path):
    """The writer takes positional parameters from each row by the compiled statement's order
    (an itemgetter; one-parameter statements apart, since an itemgetter of one name returns the
    value itself): every value lands in its own column."""
    sqlite_store = SqliteStore(tmp_path / "signalvault.db")
    sqlite_store.open()
    one = delete(state).where(state.c.name == bindparam("gone"))
    two = insert(state)
    values = {"end_user": "alice", "model_requested": "gpt-x", "prompt_ct": b"\x00ct", "seq": None}
    asyncio.run(
        sqlite_store.write_ahead(
            [
                WriteOp(two, {"name": "kept", "value": 7}),
                WriteOp(two, {"name": "dropped", "value": 8}),
                WriteOp(one, {"gone": "dropped"}),
                WriteOp(INSERT_RECORD, row("r1", **values)),
                WriteOp(INSERT_RECORD, row("r2", end_user="bob")),
            ]
        )
    )
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(select(state.c.name, state.c.value)).all() == [("kept", 7)]
    first, second = sqlite_store.get_record("r1"), sqlite_store.get_record("r2")
    assert first is not None and second is not None
    assert {name: first[name] for name in values} == values
    assert (second["end_user"], second["prompt_ct"], second["kind"]) == ("bob", None, "interaction")
    sqlite_store.close()

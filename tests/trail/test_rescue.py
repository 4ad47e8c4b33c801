"""Rescue: write-behind operations of a failed batch are spooled when a spool is configured,
else committed again after a pause until the store answers; nothing is dropped silently."""

from __future__ import annotations

import asyncio
import logging

import pytest

from signalvault.errors import StoreError
from signalvault.store.sql import COMPLETE_RECORD, INSERT_RECORD, TOUCH_KEY
from signalvault.store.writer import WriteOp
from signalvault.trail.rescue import PAUSES, Rescue

pytestmark = pytest.mark.anyio


class FlakyStore:
    """Fails the first `failures` commits, then keeps what it is given."""

    def __init__(self, failures: int, stored: tuple[str, ...] = ()) -> None:
        self.failures = failures
        self.committed: list[WriteOp] = []
        self.stored = set(stored)  # record ids already in the store

    async def write_ahead(self, ops):
        if self.failures:
            self.failures -= 1
            raise StoreError("down")
        self.committed += ops

    def get_record(self, record_id):
        return {"id": record_id} if record_id in self.stored else None


class FakeSpool:
    def __init__(self) -> None:
        self.entries: list[list[WriteOp]] = []

    def append(self, ops):
        self.entries.append(list(ops))


COMPLETE = WriteOp(COMPLETE_RECORD, {"_id": "r1", "outcome": "ok"})
INSERT = WriteOp(INSERT_RECORD, {"id": "r2"})
TOUCH = WriteOp(TOUCH_KEY, {"id": "k1"})


async def test_without_a_spool_they_are_committed_once_the_store_answers():
    store = FlakyStore(failures=2)
    rescue = Rescue(store, lambda: None)  # type: ignore[arg-type]
    rescue([COMPLETE, INSERT])
    await asyncio.sleep(PAUSES[0] + PAUSES[1] + PAUSES[2] + 0.2)
    assert store.committed == [COMPLETE, INSERT]


async def test_an_insert_that_landed_after_all_is_not_written_twice():
    store = FlakyStore(failures=0, stored=("r2",))
    Rescue(store, lambda: None)([COMPLETE, INSERT])  # type: ignore[arg-type]
    await asyncio.sleep(PAUSES[0] + 0.1)
    assert store.committed == [COMPLETE]


async def test_with_a_spool_they_join_it_except_last_used_times():
    store, spool = FlakyStore(failures=0), FakeSpool()
    Rescue(store, lambda: spool)([COMPLETE, TOUCH, INSERT])  # type: ignore[arg-type,return-value]
    assert spool.entries == [[COMPLETE, INSERT]]
    await asyncio.sleep(PAUSES[0] + 0.1)
    assert store.committed == [TOUCH]  # advisory, but tried again all the same


async def test_at_shutdown_a_last_try_is_made_and_what_fails_is_logged(caplog):
    store = FlakyStore(failures=1)
    rescue = Rescue(store, lambda: None)  # type: ignore[arg-type]
    rescue([COMPLETE])
    await rescue.finish()  # before the first pause ends: cancelled, then tried at once
    assert store.failures == 0 and store.committed == []
    assert "queued audit writes were lost: 1 operation(s)" in caplog.text
    caplog.clear()
    store.failures = 0
    rescue([COMPLETE])
    with caplog.at_level(logging.ERROR):
        await rescue.finish()
    assert store.committed == [COMPLETE] and not caplog.text

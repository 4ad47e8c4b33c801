"""Write-behind audit operations (completions, rejected attempts, last-used times) whose batch
the store failed to commit: nobody awaits them, so the group-commit writer hands them here
instead of dropping them. They go to the spool when one is configured (it replays them once
the store answers), else they are committed again after a pause, a few times over half a
minute, so a connection killed mid-batch or a short outage loses no outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from signalvault.errors import StoreError
from signalvault.store import Store
from signalvault.store.writer import WriteOp
from signalvault.trail.spool import STATEMENTS, Spool, commit_once

log = logging.getLogger("signalvault.audit")

# Pauses (seconds) before each new try; after the last, what still fails is lost (logged).
PAUSES = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
_SPOOLABLE = {id(statement) for statement in STATEMENTS.values()}  # not last-used times


class Rescue:
    """Keeps write-behind operations of failed batches (`GroupCommitWriter.on_lost`)."""

    def __init__(self, store: Store, spool: Callable[[], Spool | None]) -> None:
        self._store = store
        self._spool = spool  # the trail's spool of the moment, if any
        self._retrying: dict[asyncio.Task[None], list[WriteOp]] = {}

    def __call__(self, ops: list[WriteOp]) -> None:
        spool = self._spool()
        carried = [op for op in ops if id(op.statement) in _SPOOLABLE]
        if spool is not None and carried:
            try:
                spool.append(carried)  # behind everything already spooled: order is kept
                ops = [op for op in ops if id(op.statement) not in _SPOOLABLE]
            except StoreError:
                pass  # full or unwritable: tried again below instead
        if not ops:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._retry(ops))
        except RuntimeError:  # no event loop (the CLI): nothing can wait for the store
            log.error("queued audit writes were lost: %d operation(s)", len(ops))
            return
        self._retrying[task] = ops
        task.add_done_callback(lambda done: self._retrying.pop(done, None))

    async def _retry(self, ops: list[WriteOp]) -> None:
        for pause in PAUSES:
            await asyncio.sleep(pause)
            try:
                # Awaited, so a failure comes back here, not to `__call__` again; inserts whose
                # rows exist are left out (a commit cut off mid-way may have landed after all).
                await commit_once(self._store, ops)
                return
            except StoreError:
                continue
        log.error("queued audit writes were lost: %d operation(s)", len(ops))

    async def finish(self) -> None:
        """At shutdown: one last try for the operations still waiting for their next one;
        what fails then is logged as lost."""
        waiting = list(self._retrying.items())
        for task, _ in waiting:
            task.cancel()
        left: list[WriteOp] = []
        for task, ops in waiting:
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if task.cancelled():
                left += ops
        if not left:
            return
        try:
            await commit_once(self._store, left)
        except StoreError:
            log.error("queued audit writes were lost: %d operation(s)", len(left))

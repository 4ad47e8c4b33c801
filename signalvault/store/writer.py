"""Group commit: writes queued while a transaction is committing form the next transaction.

Callers that need durability (the write-ahead audit record) await a future that resolves after
the commit; the others (outcome updates, last-used times) are queued and forgotten. A batch of
forgotten writes alone may commit without waiting for its own flush to disk: on SQLite with
synchronous=FULL (`sync_modes`) the next durable commit's fsync covers its WAL frames, and so
does the WAL checkpointer's within about `wal.INTERVAL_SECONDS`; on PostgreSQL
(`relaxed_transaction`: synchronous_commit off) the server's WAL writer flushes it within a few
hundred milliseconds. A crash of the gateway loses none of it.

Batches are gathered on the event loop and committed by one commit thread, one batch at a time,
so the fsync never holds the loop and the thread is woken once per batch, not per request: a
writer thread woken per request fought the loop for the GIL and cost ~250 µs more per request.
A lock held by another process is retried on later loop turns until `busy_timeout` has passed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import operator
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from signalvault.errors import StoreError

log = logging.getLogger("signalvault.store")
RETRY_SECONDS = 0.001


@dataclass(slots=True)  # not frozen: a frozen __init__ costs five times as much, per record
class WriteOp:
    """One statement and its parameters; consecutive ops with the same statement run as one
    executemany, in submission order. A value: `dataclasses.replace` it, never change it."""

    statement: Any
    params: dict[str, Any]
    # Synced when committed though no one waits for it (a refused request's record: evidence
    # that a guardrail or limit acted), where other write-behind batches may skip their fsync.
    must_sync: bool = False
    # Its place among the batch's other statements does not matter (an insert into a table no
    # other op of a batch reads or changes): it runs at the end of its transaction, in one
    # executemany with the batch's others of its statement, instead of splitting the runs.
    order_free: bool = False


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # A row's values in the driver's parameter order (positional drivers: SQLite), else None.
    values: Callable[[dict[str, Any]], tuple[Any, ...]] | None
    unmatched_log: str | None  # logged with the count of rows an UPDATE did not match


def _values_in_order(names: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """`itemgetter` reads a row's ~40 values in C, a third of a generator's cost; it returns a
    bare value, not a 1-tuple, for a single name, and refuses none."""
    if not names:
        return lambda row: ()
    if len(names) == 1:
        name = names[0]
        return lambda row: (row[name],)
    return operator.itemgetter(*names)


class GroupCommitWriter:
    """Batches writes per event-loop turn; outside an event loop (CLI) it writes at once."""

    def __init__(self, engine: Engine, batch_max: int, busy_timeout: float = 5.0) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._busy_timeout = busy_timeout
        self._in_flight: list[tuple[Sequence[WriteOp], asyncio.Future[None] | None]] | None = None
        self._in_flight_job: concurrent.futures.Future[float] | None = None  # its commit
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._execute_lock = threading.RLock()  # one transaction at a time on the connection
        self._pending: list[tuple[Sequence[WriteOp], asyncio.Future[None] | None]] = []
        self._scheduled = False
        self._lock = threading.Lock()  # flush() may come from another thread (demo, tests)
        self._connection: Any = None  # the writer's own DBAPI connection
        self._sql: dict[int, _Compiled] = {}
        dbapi = engine.dialect.dbapi
        self._dbapi_error: type[Exception] = dbapi.Error if dbapi is not None else Exception
        # Only SQLite has "busy" (another process's lock) to wait out; on PostgreSQL a failed
        # batch fails at once, whatever words its driver message holds.
        self._is_sqlite = engine.dialect.name == "sqlite"
        # Statements run once on each new connection of the writer (SQLite pragmas).
        self.setup_sql: tuple[str, ...] = ()
        # (statement making the next commits skip their fsync, statement restoring it): a batch
        # no caller waits for commits with the first (at c=1 a request's completion cost a
        # second fsync, ~0.25 ms of CPU). None: every commit syncs. Set by the store.
        self.sync_modes: tuple[str, str] | None = None
        # Run first in each batch no one waits for, inside its transaction (PostgreSQL).
        self.relaxed_transaction: str | None = None
        # Called in the commit thread after each commit (SQLite: wakes the WAL checkpointer).
        self.after_commit: Callable[[], None] | None = None
        self._is_relaxed = False  # the writer's connection is in sync_modes[0]'s mode
        self.batches = 0  # counters for metrics and tests
        self.inline_batches = 0  # of them, committed on the event loop's thread
        self.failed_batches = 0
        # Called once per settled batch with (operations, commit seconds, committed?): metrics.
        self.on_batch: Callable[[int, float, bool], None] | None = None
        # Called with the write-behind operations (no one waits for them) of a batch that failed,
        # so they can be kept elsewhere (the trail's spool); unset, they are logged as lost.
        self.on_lost: Callable[[list[WriteOp]], None] | None = None
        # Whether a batch someone waits for may commit on the event loop's thread (SQLite; no
        # other request in flight): set by the gateway, off for everyone else.
        self.may_commit_inline: Callable[[], bool] = lambda: False

    @property
    def pending_ops(self) -> int:
        """Operations queued and not yet committed (the batch in flight included)."""
        with self._lock:
            queued = self._pending + (self._in_flight or [])
            return sum(len(ops) for ops, _ in queued)

    def stop(self) -> None:
        """Write everything queued, then release the connection."""
        self.flush()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.close()
                self._connection = None

    async def write(self, ops: Sequence[WriteOp]) -> None:
        """Queue `ops` and return once they are committed.

        Raises:
            StoreError: the transaction holding them failed; nothing of it was written.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._enqueue(ops, future, loop)
        await future

    def submit(self, ops: Sequence[WriteOp]) -> None:
        """Queue `ops` without waiting for the commit (written at once outside an event loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self._enqueue(ops, None, loop)
        if loop is None:
            self.flush()

    def flush(self) -> None:
        """Commit everything queued now (CLI, shutdown, tests), and wait for the batch already
        handed to the commit thread. The batch and its job are taken under one lock, so a batch
        taken from the queue is always one flush sees (a no-op queued behind the thread's jobs
        missed a batch taken but not yet submitted)."""
        while True:
            with self._lock:
                job = self._in_flight_job
                while self._pending:
                    self._commit_pending()
            if job is None:
                return
            # Its outcome (a failure included) is settled by the loop that submitted it.
            concurrent.futures.wait([job])
            if not job.cancelled():
                return
            # Taken back by the loop and handed over again with more: wait for that batch.

    def _enqueue(
        self,
        ops: Sequence[WriteOp],
        future: asyncio.Future[None] | None,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        with self._lock:
            self._pending.append((ops, future))
            if loop is not None and not self._scheduled:
                # After the callbacks already ready in this turn, so their writes join the batch.
                self._scheduled = True
                loop.call_soon(self._on_turn_end)

    def _on_turn_end(self) -> None:
        """Start committing the queued batch in the commit thread, unless one is in flight:
        then everything queued meanwhile forms the next batch (group commit), or joins the one
        in flight if the thread has not begun it. A batch someone waits for commits right here
        when the gateway has no other request in flight (`_commit_inline`)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._scheduled = False
            if not self._pending:
                return
            batch = self._taken_back()
            if batch is None:
                return
            room = self._batch_max - len(batch)
            batch = batch + self._pending[:room]
            del self._pending[:room]
            ops = [op for ops, _ in batch for op in ops]
            waited = any(future is not None for _, future in batch)
            durable = waited or any(op.must_sync for op in ops)
            inline = self._commit_inline(ops) if waited and self.may_commit_inline() else None
            if inline is not None:
                self._in_flight = self._in_flight_job = None
            else:
                self._in_flight = batch
                job = self._commit_thread().submit(self._execute_locked, ops, durable)
                self._in_flight_job = job
        if inline is not None:
            self.inline_batches += inline[0] is None
            self._settle(batch, ops, *inline)
            self._schedule_rest(loop)  # what did not fit in the batch
            return
        done = asyncio.wrap_future(job, loop=loop)
        done.add_done_callback(lambda result: self._on_committed(loop, batch, ops, result))

    def _commit_inline(self, ops: list[WriteOp]) -> tuple[BaseException | None, float] | None:
        """Commit `ops` (synced) on this thread, if it can without waiting: (error or None,
        seconds); None if the connection or the database is busy (the commit thread then
        waits it out). Only when `may_commit_inline` says no other request is in flight: the
        event loop has nothing to do meanwhile, and the two handoffs to and from the commit
        thread (~0.1 ms at c=1, and 0.15 M instructions per request) are saved; with other
        requests in flight the thread's commit lets the loop scan them during the fsync."""
        if not self._is_sqlite or not self._execute_lock.acquire(blocking=False):
            return None  # SQLite only: a PostgreSQL commit waits for the network
        try:
            began = time.perf_counter()
            try:
                self._execute(ops, True)
            except (SQLAlchemyError, self._dbapi_error) as error:
                if _is_busy(error):
                    return None  # `_execute` rolled back; the connection stays sound
                self._discard_connection()
                return error, 0.0
            except Exception as error:  # settled as the commit thread's job would be: not lost
                return error, 0.0
            return None, time.perf_counter() - began
        finally:
            self._execute_lock.release()

    def _taken_back(self) -> list[tuple[Sequence[WriteOp], asyncio.Future[None] | None]] | None:
        """The batch to add what is queued to: none in flight, [] (a new one); the batch in
        flight if the commit thread has not begun it, taken back from the thread so both commit
        in one transaction; None while it runs (what is queued waits for the next turn). The
        thread cannot begin while this thread holds the GIL: after a request's completion was
        handed over, the next request's key check and input scan ran first, and its write-ahead
        record then waited for that second transaction (~0.2 ms at c=1, bench/phases.py)."""
        job = self._in_flight_job
        if self._in_flight is None or job is None:
            return []
        if len(self._in_flight) >= self._batch_max or not job.cancel():
            return None
        return self._in_flight

    def _on_committed(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[Sequence[WriteOp], asyncio.Future[None] | None]],
        ops: list[WriteOp],
        result: asyncio.Future[float],
    ) -> None:
        if result.cancelled():
            return  # taken back: its operations commit in a later batch (`_taken_back`)
        exc = result.exception()
        with self._lock:
            self._in_flight = None
            self._in_flight_job = None
        self._settle(batch, ops, exc, 0.0 if exc is not None else result.result())
        self._schedule_rest(loop)

    def _schedule_rest(self, loop: asyncio.AbstractEventLoop) -> None:
        """After a batch settled: the operations queued meanwhile go next."""
        with self._lock:
            if self._pending and not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._on_turn_end)

    def _settle(
        self,
        batch: list[tuple[Sequence[WriteOp], asyncio.Future[None] | None]],
        ops: list[WriteOp],
        exc: BaseException | None,
        seconds: float,
    ) -> None:
        error: StoreError | None = None
        if self.on_batch is not None:
            self.on_batch(len(ops), seconds, exc is None)
        if exc is None:
            self.batches += 1
        else:
            self.failed_batches += 1
            # The driver message may quote bound values; log only the exception type.
            log.error("audit store write failed: %s", describe_error(exc))
            error = StoreError("the audit store could not commit the write")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for _, future in batch:
            if future is None:
                continue
            if future.get_loop() is running:
                _resolve(future, error)
            else:  # flush() from another thread (demo, tests): futures belong to their loop
                future.get_loop().call_soon_threadsafe(_resolve, future, error)
        orphans = [op for ops, future in batch if future is None for op in ops]
        if error is not None and orphans:
            if self.on_lost is not None:
                self.on_lost(orphans)
            else:
                log.error("queued audit writes were lost: %d operation(s)", len(orphans))

    def _commit_thread(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, "signalvault-commit")
        return self._executor

    def _execute_locked(self, ops: list[WriteOp], durable: bool = True) -> float:
        """Run one transaction, in the commit thread or a flushing caller's (`durable`: it must
        be synced when it commits); returns its duration in seconds. A lock held by another
        connection or process (SQLite: the sealer, the CLI) is waited out here, retrying, up to
        `busy_timeout`, so a batch's outcome is final when this returns (a flush waiting for it
        sees it committed or failed)."""
        with self._execute_lock:
            started = time.monotonic()
            while True:
                began = time.perf_counter()
                try:
                    self._execute(ops, durable)
                    return time.perf_counter() - began
                except (SQLAlchemyError, self._dbapi_error) as error:
                    is_busy = self._is_sqlite and _is_busy(error)
                    if not is_busy:
                        self._discard_connection()
                    # A busy database leaves the connection sound (`_execute` rolled back): it
                    # is kept. Replacing it on every retry while the sealer held the lock cost a
                    # new connection, its pragmas and statements every 2 ms.
                    if not is_busy or time.monotonic() - started >= self._busy_timeout:
                        raise
                time.sleep(RETRY_SECONDS)

    def _commit_pending(self) -> None:
        """Commit the oldest batch now: the synchronous path for the CLI, shutdown and tests."""
        batch = self._pending[: self._batch_max]
        del self._pending[: len(batch)]
        ops = [op for ops, _ in batch for op in ops]
        exc: BaseException | None = None
        seconds = 0.0
        if ops:
            try:
                seconds = self._execute_locked(ops)
            except (SQLAlchemyError, self._dbapi_error) as error:
                exc = error
        self._settle(batch, ops, exc, seconds)

    def _execute(self, ops: list[WriteOp], durable: bool = True) -> None:
        """One transaction on the writer's own DBAPI connection. SQLAlchemy compiles each statement
        once; rows go straight to the driver's executemany (SQLAlchemy's per-row work would cost
        more than the write itself)."""
        if self._connection is not None and _has_unread_input(self._connection):
            # An idle server connection has nothing to say unless the server closed it (restart,
            # outage, idle timeout): replace it now instead of failing the batch on it.
            with contextlib.suppress(Exception):
                self._connection.invalidate()
            self._connection = None
        if self._connection is None:
            self._connection = self._engine.raw_connection()
            self._is_relaxed = False
            with contextlib.closing(self._connection.cursor()) as setup:
                if self._is_sqlite:
                    # Wait for other processes' locks here (retrying), not inside SQLite.
                    setup.execute("PRAGMA busy_timeout=0")
                for sql in self.setup_sql:
                    setup.execute(sql)
        cursor = self._connection.cursor()
        try:
            if self.sync_modes is not None and self._is_relaxed == durable:
                cursor.execute(self.sync_modes[1] if durable else self.sync_modes[0])
                self._is_relaxed = not durable
            if self.relaxed_transaction is not None and not durable:
                cursor.execute(self.relaxed_transaction)
            for statement, rows in _runs(ops):
                compiled = self._compiled(statement)
                if compiled.values is None:
                    cursor.executemany(compiled.sql, rows)
                else:
                    cursor.executemany(compiled.sql, list(map(compiled.values, rows)))
                unmatched = compiled.unmatched_log  # e.g. completions of sealed records
                if unmatched and 0 <= cursor.rowcount < len(rows):
                    log.warning("%d %s", len(rows) - cursor.rowcount, unmatched)
            self._connection.commit()
            if self.after_commit is not None:
                self.after_commit()
        except BaseException:
            with contextlib.suppress(Exception):
                self._connection.rollback()
            raise
        finally:
            cursor.close()

    def _compiled(self, statement: Any) -> _Compiled:
        """The statement as the engine's driver runs it, compiled once."""
        found = self._sql.get(id(statement))
        if found is None:
            compiled = statement.compile(dialect=self._engine.dialect)
            options: dict[str, Any] = getattr(statement, "get_execution_options", dict)()
            found = _Compiled(
                str(compiled),
                _values_in_order(tuple(compiled.positiontup)) if compiled.positional else None,
                options.get("unmatched_log"),
            )
            self._sql[id(statement)] = found
        return found

    def _discard_connection(self) -> None:
        with self._execute_lock:
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.invalidate()
                self._connection = None


def _resolve(future: asyncio.Future[None], error: StoreError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _runs(ops: list[WriteOp]) -> list[tuple[Any, list[dict[str, Any]]]]:
    runs: list[tuple[Any, list[dict[str, Any]]]] = []
    last: dict[int, tuple[Any, list[dict[str, Any]]]] = {}  # order-free ops, by statement
    for op in ops:
        if op.order_free:
            last.setdefault(id(op.statement), (op.statement, []))[1].append(op.params)
        elif runs and runs[-1][0] is op.statement:
            runs[-1][1].append(op.params)
        else:
            runs.append((op.statement, [op.params]))
    return runs + list(last.values()) if last else runs


def _has_unread_input(connection: Any) -> bool:
    """True if a network connection between transactions has bytes (or EOF) waiting: for an idle
    PostgreSQL connection that means the server ended it. One poll, no round trip."""
    fileno = getattr(connection.driver_connection, "fileno", None)
    if fileno is None:  # SQLite: no socket
        return False
    try:
        if hasattr(select, "poll"):  # no descriptor limit, unlike select() (1024)
            poller = select.poll()
            poller.register(fileno(), select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([fileno()], [], [], 0)
    except Exception:  # closed, or no usable socket: replace it
        return True
    return bool(readable)


def _is_busy(exc: BaseException) -> bool:
    message = str(getattr(exc, "orig", None) or exc).lower()
    return "locked" in message or "busy" in message


def describe_error(exc: BaseException) -> str:
    """The driver error's type name: its message may quote bound values, so it is not logged."""
    original = getattr(exc, "orig", None)
    return type(original or exc).__name__

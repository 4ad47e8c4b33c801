"""The sealer: commits finished audit records to the Merkle tree under a signed checkpoint.

Gateway processes insert records without coordinating; one process at a time holds the
`sealer` lease and, per batch, numbers the sealable records after the last checkpoint, stores
their leaf hashes (in short write transactions) and inserts the next checkpoint. Imports no
HTTP code.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from signalvault.config import AuditSettings
from signalvault.crypto.envelope import MasterKeys
from signalvault.errors import StoreError
from signalvault.store import Store
from signalvault.store import seal_queries as q
from signalvault.store.writer import describe_error
from signalvault.trail.integrity.checkpoint import Checkpoint, body_digest, sign_checkpoint
from signalvault.trail.integrity.leaf import COLUMN_INDEX, leaf_data_of_values
from signalvault.trail.integrity.merkle import Frontier, leaf_hash
from signalvault.trail.integrity.sink import CheckpointSinks
from signalvault.trail.signing import Signer, load_signer

log = logging.getLogger("signalvault.integrity")

# Records per checkpoint. The batch's rows are read and hashed in Python at once (about 15 ms
# of the GIL for 500; 2,000 held it ~60 ms and left ~9 MiB more heap behind after load).
SEAL_BATCH = 500
# Records numbered per write transaction, and the pause after each: setting a seal rewrites the
# whole row (~50 us each in SQLite, commit included), so one transaction for 2,000 held the write
# lock 70-170 ms while every request's write-ahead record waited. The pause is longer than the
# group-commit writer's retry interval, so its batches get the lock between steps.
SEAL_STEP = 100
STEP_PAUSE_SECONDS = 0.003
IDS_PER_ROUND = 50_000  # records chosen per sorted read (a few MB of ids)
MIN_LEASE_SECONDS = 30.0
_SEQ = COLUMN_INDEX["seq"]


@dataclass(frozen=True, slots=True)
class SealResult:
    """What one `seal()` did. `is_leader` is False when another process holds the sealer lease
    (it seals instead) and nothing was done here."""

    is_leader: bool
    sealed: int
    tree_size: int
    checkpoints: tuple[Checkpoint, ...] = ()


class Sealer:
    """Seals on demand; `serve` calls it every `seal_interval_seconds` and on shutdown."""

    def __init__(
        self,
        store: Store,
        master_key: MasterKeys,
        settings: AuditSettings,
        *,
        batch: int = SEAL_BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._master_key = master_key
        self._settings = settings
        self._batch = batch
        self._clock = clock
        self._signer: Signer | None = None
        self._sinks = CheckpointSinks(settings)
        self.holder = uuid.uuid4().hex
        self._assign_seals = q.SealAssigner()
        self.lease_seconds = max(MIN_LEASE_SECONDS, 3 * settings.seal_interval_seconds)

    def seal(self) -> SealResult:
        """Seal every record that can be sealed now, one checkpoint per batch.

        Raises:
            StoreError: the store failed, or its tree does not extend (run `audit verify`).
        """
        if self._signer is None:
            self._signer = load_signer(self._store, self._master_key)
        made: list[Checkpoint] = []
        sealed = 0
        while True:
            # Which records, chosen once per round by a narrow sorted read outside the write
            # transactions: sorting whole rows per batch made a large backlog quadratic.
            ids = self._sealable_ids()
            for start in range(0, max(len(ids), 1), self._batch):
                outcome = self._seal_batch(self._signer, ids[start : start + self._batch])
                if outcome is None:
                    return SealResult(False, sealed, 0, tuple(made))
                count, size, checkpoint = outcome
                if checkpoint is not None:
                    sealed += count
                    made.append(checkpoint)
                    log.info("audit records sealed", extra={"records": count, "tree_size": size})
                    self._sinks.publish(checkpoint)
            if len(ids) < IDS_PER_ROUND:
                return SealResult(True, sealed, size, tuple(made))

    def _sealable_ids(self) -> list[str]:
        stale_before = self._clock() - self._settings.seal_after_seconds
        try:
            with self._store.engine.connect() as conn:
                return q.sealable_ids(conn, stale_before, IDS_PER_ROUND)
        except SQLAlchemyError as exc:
            raise StoreError(f"sealing failed: {describe_error(exc)}") from None

    def _seal_batch(
        self, signer: Signer, ids: list[str]
    ) -> tuple[int, int, Checkpoint | None] | None:
        """Seal the records `ids` still unsealed under one new checkpoint: (records sealed, tree
        size, new checkpoint or None), or None if another process holds the lease.

        The rows are read and the leaves and signed checkpoint computed first, outside any write
        transaction: in SQLite it holds the write lock, which every request's write-ahead record
        waits for. Then the seals are written in short steps (`_commit_in_steps`), each set only
        on a row still exactly as read; if any changed meanwhile, the batch is done again in one
        transaction reading and hashing under the lock.
        """
        engine = self._store.engine
        try:
            with engine.connect() as conn:
                now = self._clock()
                if not q.may_take_lease(conn, q.SEALER_LEASE, self.holder, now):
                    return None  # another process seals: no work prepared in vain
                frontier, prev = _frontier(conn)
                read = q.unsealed_rows(conn, ids)
            if not read:
                return self._commit_locked(signer, ids)
            prepared = _prepare(signer, frontier, prev, read, now)
            try:
                return self._commit_in_steps(prepared)
            except _Changed:
                return self._commit_locked(signer, ids)
        except IntegrityError:
            # A seq or tree size already taken: another sealer won a race despite the lease,
            # or someone wrote seals by hand. Nothing of this batch was committed.
            raise StoreError(
                "sealing conflicted with existing seals (nothing committed); if it persists, "
                "run `signalvault audit verify`"
            ) from None
        except SQLAlchemyError as exc:
            raise StoreError(f"sealing failed: {describe_error(exc)}") from None

    def _commit_in_steps(self, prepared: _Prepared) -> tuple[int, int, Checkpoint | None] | None:
        """Number the prepared records `SEAL_STEP` at a time, one short write transaction each,
        the last one also inserting the checkpoint. Records numbered by earlier steps sit beyond
        the last checkpoint until it is inserted; if the seal stops in between (crash, lease
        lost), the next seal unseals them first (`release_numbered`). Raises _Changed if the
        tree moved or a record changed since it was read (redo under the lock)."""
        rows, seals = prepared.rows, prepared.seals
        for start in range(0, len(rows), SEAL_STEP):
            if start:
                time.sleep(STEP_PAUSE_SECONDS)  # the writer's batches go first
            is_last = start + SEAL_STEP >= len(rows)
            with contextlib.ExitStack() as stack:
                conn = stack.enter_context(self._store.engine.connect())
                if not is_last:  # fsynced after the lock is released
                    stack.enter_context(q.unsynced_commits(conn))
                stack.enter_context(conn.begin())
                now = self._clock()
                until = now + self.lease_seconds
                if start == 0:
                    if not q.take_lease(conn, q.SEALER_LEASE, self.holder, now, until):
                        return None
                elif not q.keep_lease(conn, q.SEALER_LEASE, self.holder, until):
                    return None  # taken over: the new holder unseals what was numbered here
                frontier, prev = _frontier(conn)
                if not prepared.extends(frontier.size, prev):
                    raise _Changed
                if start == 0:
                    q.release_numbered(conn, frontier.size)
                step = slice(start, start + SEAL_STEP)
                if not self._assign_seals(conn, rows[step], seals[step]):
                    raise _Changed  # rolls this step back; `_commit_locked` unseals the others
                if start == 0 and not is_last:
                    q.mark_numbered(conn, len(rows))  # so verify tells them from inserted ones
                if is_last:
                    if start:
                        q.mark_numbered(conn, 0)
                    _insert_checkpoint(conn, prepared)
        return len(rows), prepared.checkpoint.tree_size, prepared.checkpoint

    def _commit_locked(
        self, signer: Signer, ids: list[str]
    ) -> tuple[int, int, Checkpoint | None] | None:
        """One write transaction reading, hashing and sealing `ids` under the lock: when
        nothing was read beforehand, or what was read changed before it was sealed."""
        with self._store.engine.begin() as conn:
            now = self._clock()
            if not q.take_lease(conn, q.SEALER_LEASE, self.holder, now, now + self.lease_seconds):
                return None
            frontier, prev = _frontier(conn)
            q.release_numbered(conn, frontier.size)
            rows = q.unsealed_rows(conn, ids, lock=True)
            if not rows:
                return 0, frontier.size, None
            prepared = _prepare(signer, frontier, prev, rows, now)
            if not self._assign_seals(conn, prepared.rows, prepared.seals):
                raise StoreError("a record changed while it was being sealed (rolled back)")
            _insert_checkpoint(conn, prepared)
        return len(rows), prepared.checkpoint.tree_size, prepared.checkpoint

    def release(self) -> None:
        """Give up the lease so another process can seal at once (best effort)."""
        try:
            with self._store.engine.begin() as conn:
                q.release_lease(conn, q.SEALER_LEASE, self.holder)
        except SQLAlchemyError as exc:
            log.warning("could not release the sealer lease: %s", describe_error(exc))

    def close(self) -> None:
        """Release the lease and deliver queued webhook copies (bounded wait)."""
        self.release()
        self._sinks.close()


class _Changed(Exception):
    """A record prepared for sealing changed before the write transaction set its seal."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    """Seals (seq, leaf hash) of `rows` appended to the tree of `base_size` leaves, and the
    signed checkpoint over them."""

    base_size: int
    prev: str | None
    rows: list[tuple[Any, ...]]
    seals: list[tuple[int, bytes]]
    checkpoint: Checkpoint
    frontier: bytes

    def extends(self, size: int, prev: str | None) -> bool:
        """Whether this work still fits the tree (whether the rows do is checked as they are
        sealed)."""
        return self.base_size == size and self.prev == prev


def _insert_checkpoint(conn: Any, prepared: _Prepared) -> None:
    checkpoint = prepared.checkpoint
    q.insert_checkpoint(
        conn,
        {
            "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root,
            "created_at": checkpoint.time,
            "body": checkpoint.body,
            "signature": checkpoint.signature,
            "signing_key_id": checkpoint.key_id,
            "frontier": prepared.frontier,
        },
    )


def _frontier(conn: Any) -> tuple[Frontier, str | None]:
    """The tree as the last checkpoint left it, and that checkpoint's digest."""
    last = q.last_checkpoint(conn)
    if last is None:
        return Frontier(), None
    frontier = Frontier.from_bytes(last.tree_size, last.frontier)
    if frontier.root() != last.root_hash:
        raise StoreError(
            "the last checkpoint's stored frontier does not match its root: "
            "sealing stopped (run `signalvault audit verify`)"
        )
    return frontier, body_digest(last.body)


def _prepare(
    signer: Signer,
    base: Frontier,
    prev: str | None,
    rows: list[tuple[Any, ...]],
    now: float,
) -> _Prepared:
    frontier = base.copy()
    seals = []
    for row in rows:
        values = list(row)  # table column order, as `leaf_data_of_values` takes
        values[_SEQ] = frontier.size
        leaf = leaf_hash(leaf_data_of_values(values))
        seals.append((frontier.size, leaf))
        frontier.append(leaf)
    checkpoint = sign_checkpoint(signer, frontier.size, frontier.root(), prev, now)
    return _Prepared(base.size, prev, rows, seals, checkpoint, frontier.to_bytes())


class HasSealer(Protocol):
    sealer: Sealer


def seal_now(services: HasSealer) -> SealResult:
    """Seal what can be sealed before a command that reads or removes records (erasure,
    retention, export). Returns is_leader=False if a running gateway holds the lease (it seals
    within `seal_interval_seconds` itself). The lease is handed back at once, so a gateway
    started next is not kept waiting; a command should still call `services.sealer.close()`
    before it exits, which lets queued webhook copies go out."""
    result = services.sealer.seal()
    if result.is_leader:
        services.sealer.release()
    return result

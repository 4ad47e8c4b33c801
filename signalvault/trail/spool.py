"""An on-disk spool for audit writes while the store cannot commit them (`[store] spool_dir`).

When a write-ahead record cannot be committed, its operations are appended to this process's
spool file and fsync'd before the request is forwarded; from then on every audit write of the
trail goes to the spool too, behind them, so a record is never completed before it exists. A
replay task inserts the spooled operations into the store, in order, once it answers again, and
empties the file when it has caught up. Replay is idempotent: an insert whose row is already
there (committed before a crash cut the replay short) is skipped; completions are updates.

The operations hold ciphertext and metadata only (content is encrypted before it gets here). Each
process owns one file (`spool-<pid>-<random>.log`, mode 0600) under an exclusive lock; files of
processes that died are replayed by the next one to start, before it serves.

Entry format: 4-byte length, 4-byte CRC-32, JSON `[[statement, params], ...]` with bytes as
`{"b": base64}`. A torn last entry (a crash mid-append, so never acknowledged) is ignored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from signalvault.errors import StoreError
from signalvault.store import Store
from signalvault.store.run_queries import has_link
from signalvault.store.sql import COMPLETE_RECORD, INSERT_DATA_KEY, INSERT_RECORD
from signalvault.store.writer import WriteOp
from signalvault.trail.linked import INSERT_LINK

log = logging.getLogger("signalvault.spool")

# The statements a spool can carry, by a stable name; anything else is refused (then 503).
STATEMENTS: dict[str, Any] = {
    "insert_record": INSERT_RECORD,
    "insert_data_key": INSERT_DATA_KEY,
    "complete_record": COMPLETE_RECORD,
    "insert_link": INSERT_LINK,
}
_NAMES = {id(statement): name for name, statement in STATEMENTS.items()}
_HEADER = struct.Struct(">II")  # payload length, CRC-32 of the payload
REPLAY_BATCH = 256  # entries committed per replay transaction


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self._directory = directory
        self._max_bytes = max_bytes
        self._fd: int | None = None
        self.path: Path | None = None
        self._size = 0  # bytes appended to the file
        self._replayed = 0  # bytes of it already in the store
        self._pending = asyncio.Event()  # set while there is something to replay

    @property
    def is_active(self) -> bool:
        """True while spooled writes wait for the store: new writes must queue behind them."""
        return self._size > self._replayed

    @property
    def pending_bytes(self) -> int:
        return self._size - self._replayed

    def open(self) -> list[Path]:
        """Create this process's spool file; returns (locked) files left by dead processes,
        to be replayed with `replay_file` before serving.

        Raises:
            StoreError: the spool directory or file cannot be used.
        """
        try:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self._directory, 0o700)  # tightened if it existed with a looser mode
            orphans = [p for p in sorted(self._directory.glob("spool-*.log")) if _claim(p)]
            self.path = self._directory / f"spool-{os.getpid()}-{os.urandom(4).hex()}.log"
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise StoreError(f"cannot use the audit spool directory: {exc.strerror}") from None
        return orphans

    def close(self) -> None:
        """Release the file; it is removed when empty, else replayed at the next start."""
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        if not self.is_active and self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def append(self, ops: Sequence[WriteOp]) -> None:
        """Append `ops` as one entry (written, not yet fsync'd).

        Raises:
            StoreError: the spool is full, not open, or cannot carry one of the statements.
        """
        if self._fd is None:
            raise StoreError("the audit spool is not open")
        entry = _encode(ops)
        if self.pending_bytes + len(entry) > self._max_bytes:
            raise StoreError("the audit spool is full")
        try:
            written = os.write(self._fd, entry)
            if written != len(entry):  # disk full mid-entry: take the torn piece back
                os.ftruncate(self._fd, self._size)
                raise StoreError("the audit spool's disk is full")
        except OSError as exc:
            raise StoreError(f"cannot write the audit spool: {exc.strerror}") from None
        self._size += len(entry)
        self._pending.set()

    async def append_durable(self, ops: Sequence[WriteOp]) -> None:
        """Append `ops` and return once they are on disk.

        Raises:
            StoreError: as `append`, or the fsync failed.
        """
        self.append(ops)
        fd = self._fd
        assert fd is not None
        try:
            await asyncio.to_thread(os.fsync, fd)
        except OSError as exc:
            raise StoreError(f"cannot sync the audit spool: {exc.strerror}") from None

    async def wait_pending(self) -> None:
        await self._pending.wait()

    async def replay(self, store: Store) -> None:
        """Insert everything spooled into `store`, then empty the file.

        Raises:
            StoreError: the store still fails; what was replayed so far stays replayed.
        """
        while True:
            assert self._fd is not None and self.path is not None
            entries = _read(self.path, self._replayed, REPLAY_BATCH)
            if not entries:
                # Appends run on this loop without awaiting, so nothing lands between the check
                # and the truncation.
                if self._replayed >= self._size:
                    os.ftruncate(self._fd, 0)
                    self._size = self._replayed = 0
                    self._pending.clear()
                    log.info("audit spool replayed into the store")
                    return
                raise StoreError("the audit spool has an unreadable entry")
            await commit_once(store, [op for _, ops in entries for op in ops])
            self._replayed = entries[-1][0]


async def replay_file(store: Store, path: Path) -> int:
    """Replay a dead process's spool file into `store` and delete it; returns the entries.

    Raises:
        StoreError: the store failed; the file stays for the next attempt.
    """
    offset = count = 0
    while entries := _read(path, offset, REPLAY_BATCH):
        await commit_once(store, [op for _, ops in entries for op in ops])
        offset, count = entries[-1][0], count + len(entries)
    if path.stat().st_size > offset:
        log.warning("audit spool file ends in a torn entry (never acknowledged); ignored")
    path.unlink()
    return count


async def commit_once(store: Store, ops: list[WriteOp]) -> None:
    """Write `ops`, leaving out inserts whose row exists (replayed before a crash)."""
    fresh = await asyncio.to_thread(_not_yet_stored, store, ops)
    if fresh:
        await store.write_ahead(fresh)


def _not_yet_stored(store: Store, ops: list[WriteOp]) -> list[WriteOp]:
    kept = []
    for op in ops:
        if op.statement is INSERT_RECORD and store.get_record(op.params["id"]) is not None:
            continue
        if op.statement is INSERT_DATA_KEY and store.get_data_key(op.params["id"]) is not None:
            continue
        if op.statement is INSERT_LINK and has_link(
            store.engine, op.params["call_id"], op.params["event_id"]
        ):
            continue
        kept.append(op)
    return kept


def _claim(path: Path) -> bool:
    """Lock a spool file if no living process holds it (its owner died); keeps it locked."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    return True  # the descriptor stays open (and locked) until this process exits


def _encode(ops: Sequence[WriteOp]) -> bytes:
    items = []
    for op in ops:
        name = _NAMES.get(id(op.statement))
        if name is None:
            raise StoreError("this audit write cannot be spooled")
        items.append((name, op.params))
    # Column names are str subclasses (SQLAlchemy `quoted_name`), hence OPT_NON_STR_KEYS.
    try:
        payload = orjson.dumps(items, default=_bytes_as_json, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        raise StoreError("this audit write cannot be spooled") from None
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _bytes_as_json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b": base64.b64encode(bytes(value)).decode()}
    raise TypeError(type(value).__name__)


def _read(path: Path, offset: int, limit: int) -> list[tuple[int, list[WriteOp]]]:
    """Up to `limit` whole entries from `offset`: (offset after the entry, its ops)."""
    entries: list[tuple[int, list[WriteOp]]] = []
    with path.open("rb") as handle:
        handle.seek(offset)
        while len(entries) < limit:
            header = handle.read(_HEADER.size)
            if len(header) < _HEADER.size:
                break
            length, crc = _HEADER.unpack(header)
            payload = handle.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                break  # torn tail: its append never returned, so its request never went out
            offset += _HEADER.size + length
            ops = [
                WriteOp(STATEMENTS[name], {k: _decode(v) for k, v in params.items()})
                for name, params in orjson.loads(payload)
            ]
            entries.append((offset, ops))
    return entries


def _decode(value: Any) -> Any:
    return base64.b64decode(value["b"]) if isinstance(value, dict) else value

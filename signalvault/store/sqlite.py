"""The embedded store: SQLite in WAL mode in the data directory (one writer, many readers).

Every request asks whether keys changed. Reading the counter from SQLite each time cost ~100 µs
under load, so processes sharing the data directory also publish counter changes in a small
memory-mapped file: the hot-path check is a memory read, with a store read once a second as a
backstop in case a process died between its commit and its notice.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool

from signalvault.errors import StoreError
from signalvault.store.sql import SCHEMA_HEAD, SqlStore
from signalvault.store.wal import BACKSTOP_PAGES, WalCheckpointer

DATABASE_FILE = "signalvault.db"
SIGNALS_FILE = "signals"
# The change counters processes publish in the signals file, by slot (append only: a slot's
# meaning must not change under processes of an older version sharing the file).
SLOTS = {"keys": 0, "policy": 1, "credentials": 2, "settings": 3}
SIGNAL_SPAN = 1 << 32
BACKSTOP_SECONDS = 1.0


def bind_as_is() -> None:
    """Bind `bytes` and None without sqlite3's adaptation lookup. The module adapts every
    parameter that is not an int, float or str: a miss in its adapter table then looks up
    `__adapt__` on its protocol class, which raises and swallows an AttributeError, ~0.8 µs per
    parameter (34 per proxied request: ciphertexts, hashes, NULLs). Identity adapters, found in
    the table, bind the same values. Process-wide, as sqlite3's table is; idempotent."""
    sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b itself for an exact bytes object
    sqlite3.register_adapter(type(None), _null)


def _null(value: None) -> None:
    return value


class Signals:
    """Change counters shared by the processes of one data directory through a mapped file."""

    SIZE = 4096

    def __init__(self, path: Path) -> None:
        self._path = path
        self._map: mmap.mmap | None = None

    def open(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    def read(self, slot: int) -> int:
        if self._map is None:
            return 0
        return int.from_bytes(self._map[slot * 8 : slot * 8 + 8], "little") % SIGNAL_SPAN

    def bump(self, slot: int) -> None:
        """Change the counter; lost updates between processes are harmless: any change is
        noticed, and the store remains the truth."""
        if self._map is not None:
            self._map[slot * 8 : slot * 8 + 8] = (self.read(slot) + 1).to_bytes(8, "little")


class SqliteStore(SqlStore):
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "full",
        busy_timeout_ms: int = 5000,
        batch_max: int = 512,
        checkpoint_thread: bool = True,
    ) -> None:
        self.path = path
        bind_as_is()
        engine = create_engine(
            f"sqlite:///{path}",
            poolclass=QueuePool,
            pool_size=4,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        )
        sync = "FULL" if synchronous == "full" else "NORMAL"

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={sync}")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            # Deleted rows (retention, erasure) are overwritten with zeros, not left in free pages.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        super().__init__(engine, batch_max, busy_timeout_ms / 1000)
        self._busy_timeout = busy_timeout_ms / 1000
        self._signals = Signals(path.with_name(SIGNALS_FILE))
        self._checked_at: dict[str, float] = {}  # counter -> when the store was last read
        self._stored: dict[str, int] = {}  # counter -> its value in the store then
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        # Checkpoints off the request path: the writer's own commits only as a backstop.
        self.checkpointer = WalCheckpointer(path, sync)
        self.writer.after_commit = self.checkpointer.wake
        self._checkpoint_thread = checkpoint_thread
        self.writer.setup_sql = (f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}",)
        if sync == "FULL":  # writes no one waits for are synced by the next commit that is
            self.writer.sync_modes = ("PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL")

    def open(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        super().open()
        self._signals.open()
        if self._checkpoint_thread:
            self.checkpointer.start()
        for suffix in ("", "-wal", "-shm"):
            file = Path(f"{self.path}{suffix}")
            if file.exists():
                file.chmod(0o600)

    def _migrate(self) -> None:
        """Migrate, trying again while another process holds the file's lock. Two processes
        opening a fresh file at once can each hold a shared lock and want an exclusive one
        (switching to WAL, starting the migration): SQLite answers one of them "database is
        locked" at once, without waiting, to break the deadlock. The migration is one
        transaction, so trying again is safe."""
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.01
        while True:
            try:
                super()._migrate()
                return
            except OperationalError as exc:
                if "locked" not in str(exc.orig) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _is_at_head(self, conn: Any) -> bool:
        known = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).scalar()
        if not known:
            return False
        current = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        return bool(current == SCHEMA_HEAD)

    def _lock_migrations(self, conn: Any) -> None:
        """The schema is not at head: take the write lock before alembic reads its version.
        pysqlite begins only at the first INSERT (its DDL runs outside a transaction), so two
        processes opening a fresh file at once both created the tables and one failed; now the
        second waits (busy timeout) and finds the schema at head. A store already at head is
        opened without the write lock (`_is_at_head`): a busy writer does not delay it."""
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    def close(self) -> None:
        self.checkpointer.stop()
        super().close()
        self._signals.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _read_one(self, sql: str, params: tuple[Any, ...]) -> Any:
        with self._reader_lock:
            try:
                if self._reader is None:
                    self._reader = sqlite3.connect(
                        f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
                    )
                return self._reader.execute(sql, params).fetchone()
            except sqlite3.Error:
                raise StoreError("the store does not answer") from None

    def keys_version(self) -> int:
        return self._version("keys")

    def policy_version(self) -> int:
        """Changes whenever the active guardrail policy changes (in any process of this data
        directory)."""
        return self._version("policy")

    def credentials_version(self) -> int:
        """Like `keys_version`, for provider credentials (checked on every upstream call)."""
        return self._version("credentials")

    def settings_version(self) -> int:
        """Like `keys_version`, for run-time settings (signalvault/runtime_settings.py)."""
        return self._version("settings")

    def _version(self, name: str) -> int:
        """A number that changes after every committed change of counter `name`: read on every
        request, so a memory read, with a store read once a second as the backstop."""
        now = time.monotonic()
        if now - self._checked_at.get(name, -BACKSTOP_SECONDS) >= BACKSTOP_SECONDS:
            self._checked_at[name] = now
            row = self._read_one("SELECT value FROM state WHERE name = ?", (name,))
            self._stored[name] = int(row[0]) if row else 0
        # Either source changing invalidates the caller's cache; equality is all that is compared.
        return self._stored.get(name, 0) * SIGNAL_SPAN + self._signals.read(SLOTS[name])

    def changed(self, name: str) -> None:
        slot = SLOTS.get(name)
        if slot is not None:
            self._signals.bump(slot)

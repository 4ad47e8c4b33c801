"""SQLite's WAL copied back into the database file by a thread of its own, off the request path.

By default SQLite checkpoints inside the commit that grows the WAL past 1,000 pages: about one
write-ahead commit in a hundred also copied the WAL into the database and fsynced it (measured
+2-10 ms on that request, one of 150 ms; `bench/cost.py --histogram`). The group-commit writer's
connection instead checkpoints only as a backstop (`BACKSTOP_PAGES`), and this thread runs a
PASSIVE checkpoint `INTERVAL_SECONDS` after the writer's commits wake it (`wake`), on its own
connection: PASSIVE takes no write lock and waits for no one, so commits go on while it copies.
Unwoken (an idle store, or commits of other processes only) it checkpoints every `IDLE_SECONDS`:
ten runs a second on an idle store were half of an idle gateway's CPU (4.0 -> 2.0 ms/s).

When a checkpoint has copied everything and no reader needs the WAL, SQLite's next writer starts
the WAL over from its beginning. Under constant writes the checkpointer may never catch up
completely; the writer's backstop then checkpoints once the WAL reaches `BACKSTOP_PAGES`, mostly
already copied.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("signalvault.store")
INTERVAL_SECONDS = 0.1
IDLE_SECONDS = 5.0
BACKSTOP_PAGES = 8000  # ~32 MB of 4 KiB pages


class WalCheckpointer:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` `interval` seconds after a commit, until stopped."""

    def __init__(self, path: Path, synchronous: str, interval: float = INTERVAL_SECONDS) -> None:
        self._path = path
        self._synchronous = synchronous
        self._interval = interval
        self._stopping = threading.Event()
        self._written = threading.Event()  # a commit since the last checkpoint began
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # completed runs, for tests

    def wake(self) -> None:
        """A commit was made: checkpoint within `interval` seconds."""
        self._written.set()

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._written.set()  # whatever the WAL holds already
            self._thread = threading.Thread(
                target=self._run, name="signalvault-wal-checkpoint", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._written.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                self._written.wait(IDLE_SECONDS)
                if self._stopping.wait(self._interval):  # gathers the commits that follow
                    break
                self._written.clear()  # before copying: a commit meanwhile runs another turn
                try:
                    if connection is None:
                        connection = sqlite3.connect(self._path, check_same_thread=False)
                        # The sync flags of a checkpoint are its connection's.
                        connection.execute(f"PRAGMA synchronous={self._synchronous}")
                    _, frames, copied = connection.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                    self.checkpoints += 1
                    if copied < frames:  # readers kept some frames: try again next turn
                        self._written.set()
                except sqlite3.Error as exc:  # the writer's backstop still checkpoints
                    log.warning("WAL checkpoint failed: %s", type(exc).__name__)
                    if connection is not None:
                        with contextlib.suppress(sqlite3.Error):
                            connection.close()
                    connection = None
        finally:
            if connection is not None:
                connection.close()

"""The shared store: PostgreSQL through psycopg 3, for several gateway processes (replicas).

Every request asks whether keys changed, and a round trip per request is too dear, so a listener
thread with its own connection LISTENs for the NOTIFY sent inside every transaction that bumps a
`state` counter (delivered on commit) and rereads `state` once a second as a backstop. While the
listener is down, every call reads `state` from the database instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import psycopg
from sqlalchemy import URL, Engine, create_engine, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.pool import NullPool

from signalvault.errors import StoreError
from signalvault.store.schema import add_postgres_options, state
from signalvault.store.sql import SqlStore
from signalvault.store.writer import describe_error

log = logging.getLogger("signalvault.store")
add_postgres_options()  # the partial indexes' conditions (schema.py leaves them to this backend)

CHANNEL = "signalvault_state"
BACKSTOP_SECONDS = 1.0
RECONNECT_SECONDS = (0.2, 5.0)  # first and longest wait between listener reconnects
SIGNAL_SPAN = 1 << 32
# pg_advisory_xact_lock(MIGRATION_LOCK, hashtext(current_schema())): one migration per schema.
MIGRATION_LOCK = 0x5356
# Fail rather than hang when the server vanishes: libpq connect timeout, TCP keepalives, and
# unacknowledged data abandoned after tcp_user_timeout (ms).
CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


class PostgresStore(SqlStore):
    """Audit records and keys in PostgreSQL, shared by every replica."""

    def __init__(
        self,
        url: URL,
        *,
        pool_size: int = 10,
        batch_max: int = 512,
        connect_args: dict[str, Any] | None = None,
        backstop_seconds: float = BACKSTOP_SECONDS,
    ) -> None:
        args = {**CONNECT_ARGS, **(connect_args or {})}
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,  # connections broken by an outage are replaced, not handed out
            connect_args=args,
        )
        super().__init__(engine, batch_max)
        # Completions and other writes no one waits for: the commit does not wait for the WAL
        # flush (a server crash can lose the last few hundred ms of them; ours loses none).
        self.writer.relaxed_transaction = "SET LOCAL synchronous_commit TO OFF"
        # The listener's own unpooled connection: it stays in LISTEN for the process's life.
        self._listen_engine: Engine = create_engine(url, poolclass=NullPool, connect_args=args)
        self._backstop = backstop_seconds
        self._stored: dict[str, int] = {}  # state counters as last read
        self._notified: dict[str, int] = {}  # notifications received, per counter
        self._notified_lock = threading.Lock()  # the listener and committing threads both count
        self._listening = False  # the listener is connected and LISTENing
        self._listener: threading.Thread | None = None
        self._listener_pid: int | None = None  # the listener connection's server process
        self._stop = threading.Event()
        self._ready = threading.Event()

    def open(self) -> None:
        url = self.engine.url
        try:
            super().open()
        except StoreError as exc:
            # Where, for the operator; never the URL itself (it may carry the password).
            where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
            raise StoreError(f"{exc} (PostgreSQL at {where})") from None
        self._stop.clear()
        self._listener = threading.Thread(
            target=self._listen, name="signalvault-listener", daemon=True
        )
        self._listener.start()
        # A change committed right after open() must reach this process: wait until it listens
        # (briefly; if it cannot, keys_version() reads the database on every call meanwhile).
        self._ready.wait(timeout=5.0)

    def close(self) -> None:
        self._stop.set()
        self._wake_listener()
        if self._listener is not None:
            self._listener.join(timeout=BACKSTOP_SECONDS + 1)
            self._listener = None
        self._listening = False
        super().close()
        self._listen_engine.dispose()

    def _wake_listener(self) -> None:
        """End the listener's wait for notifications now rather than at its next backstop read."""
        pid = self._listener_pid
        if not self._listening or pid is None:
            return
        with contextlib.suppress(Exception), self.engine.begin() as conn:
            conn.execute(select(func.pg_notify(CHANNEL, f"wake:{pid}")))

    def _lock_migrations(self, conn: Any) -> None:
        """Processes starting together migrate one at a time; the lock ends with the transaction,
        and the next process then finds the schema already at head."""
        conn.execute(
            select(func.pg_advisory_xact_lock(MIGRATION_LOCK, func.hashtext(func.current_schema())))
        )

    def _bump(self, conn: Any, name: str) -> None:
        conn.execute(
            insert(state)
            .values(name=name, value=1)
            .on_conflict_do_update(index_elements=[state.c.name], set_={"value": state.c.value + 1})
        )
        # Queued by PostgreSQL until this transaction commits, and dropped if it rolls back. The
        # schema in the payload keeps deployments sharing one database apart.
        conn.execute(
            text("SELECT pg_notify(:channel, current_schema() || ':' || :name)"),
            {"channel": CHANNEL, "name": name},
        )

    def changed(self, name: str) -> None:
        """This process's own commit: seen at once, not when its notice comes back."""
        self._count(name)

    def keys_version(self) -> int:
        return self._version("keys")

    def credentials_version(self) -> int:
        """Changes whenever a stored provider credential changes (in any replica)."""
        return self._version("credentials")

    def policy_version(self) -> int:
        """Changes whenever the active guardrail policy changes (in any replica)."""
        return self._version("policy")

    def settings_version(self) -> int:
        """Changes whenever a run-time setting changes (in any replica)."""
        return self._version("settings")

    def _version(self, name: str) -> int:
        """A number that changes after every committed change of counter `name`.

        Only equality is meaningful: the stored value and the notifications seen both count.
        """
        if not self._listening:
            # No notifications can arrive: the database is the only truth, read every call.
            with self._connect() as conn:
                value = conn.execute(select(state.c.value).where(state.c.name == name)).scalar()
            self._store_value(name, int(value or 0))
        return self._stored.get(name, 0) * SIGNAL_SPAN + self._notified.get(name, 0) % SIGNAL_SPAN

    def _store_value(self, name: str, value: int) -> None:
        self._stored[name] = max(value, self._stored.get(name, 0))

    # -- the listener thread --------------------------------------------------------------------
    def _listen(self) -> None:
        wait = RECONNECT_SECONDS[0]
        while not self._stop.is_set():
            try:
                raw = self._listen_engine.raw_connection()
                try:
                    conn = raw.driver_connection
                    assert isinstance(conn, psycopg.Connection)
                    self._serve(conn)
                finally:
                    raw.invalidate()  # closed without the rollback a lost connection cannot do
            except Exception as exc:  # any failure: fall back, then reconnect
                if self._listening:
                    wait = RECONNECT_SECONDS[0]
                    log.warning(
                        "store change listener lost its connection: %s", describe_error(exc)
                    )
            self._listening = False
            if self._stop.wait(wait):
                return
            wait = min(wait * 2, RECONNECT_SECONDS[1])

    def _serve(self, conn: psycopg.Connection[Any]) -> None:
        conn.autocommit = True
        conn.execute(f"LISTEN {CHANNEL}")
        schema = conn.execute("SELECT current_schema()").fetchone()
        prefix = f"{schema[0] if schema else ''}:"
        self._listener_pid = conn.info.backend_pid
        self._refresh(conn)
        # Notifications missed while disconnected are unknown: count one for every counter so
        # every cache built meanwhile is dropped.
        for name in set(self._notified) | set(self._stored) | {"keys", "policy", "settings"}:
            self._count(name)
        self._listening = True
        self._ready.set()
        log.info("store change listener connected")
        while not self._stop.is_set():
            checked = time.monotonic()
            for notice in conn.notifies(timeout=self._backstop):
                if self._stop.is_set():
                    return
                if notice.payload.startswith(prefix):
                    self._count(notice.payload[len(prefix) :])
                if time.monotonic() - checked >= self._backstop:
                    break
            # Backstop: a process may have committed without its notice arriving (none is lost
            # on a live connection, but this also proves the connection is still alive).
            self._refresh(conn)

    def _count(self, name: str) -> None:
        with self._notified_lock:
            self._notified[name] = self._notified.get(name, 0) + 1

    def _refresh(self, conn: psycopg.Connection[Any]) -> None:
        for name, value in conn.execute("SELECT name, value FROM state").fetchall():
            self._store_value(name, int(value))

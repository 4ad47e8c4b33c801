"""The PostgreSQL store behind a gateway: encrypted content, changes seen by other replicas,
fail-closed during an outage and recovery without restart, concurrent migrations, no password
in errors. Each test has its own schema (`pg_url`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from signalvault.config import Secret, StoreSettings
from signalvault.errors import StoreError
from signalvault.store import RecordFilter, open_store
from signalvault.store.postgres import PostgresStore
from tests.conftest import make_settings, records, running_gateway

PROMPT_CANARY = "canary-prompt-5d1e9a77"
REPLY_CANARY = "canary-reply-c03b42e1"


def open_pg(url: str, **options) -> PostgresStore:
    store = PostgresStore(make_url(url).set(drivername="postgresql+psycopg"), **options)
    store.open()
    return store


def chat(content: str) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}


class Relay:
    """A TCP relay to PostgreSQL, on its own thread and loop, that a test can cut and restore.

    The gateway's blocking store calls must not wait on the loop that relays them, hence the
    thread."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.port = 0
        self._is_cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> Relay:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result()
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """Abort every open connection; new ones are closed as soon as they are accepted."""

        def _cut() -> None:
            self._is_cut = True
            for writer in self._writers:
                writer.transport.abort()
            self._writers.clear()

        self._call(_cut)

    def restore(self) -> None:
        self._call(lambda: setattr(self, "_is_cut", False))

    def stop(self) -> None:
        self.cut()
        self._call(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _call(self, fn) -> None:
        async def run() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._is_cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._writers.discard(writer)


@pytest.fixture
def relay(pg_url) -> Iterator[Relay]:
    relay = Relay(make_url(pg_url).port or 5432).start()
    yield relay
    relay.stop()


def pg_settings(tmp_path, mock_provider, url: str):
    return make_settings(tmp_path, mock_provider[1], database_url=Secret(url))


def all_values(url: str) -> list[object]:
    """Every value of every table in the test's schema."""
    params = make_url(url).query
    options = params["options"]
    assert isinstance(options, str)
    values: list[object] = []
    with psycopg.connect(
        host="127.0.0.1", dbname="test", user=make_url(url).username, options=options
    ) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        assert len(tables) > 5
        for (table,) in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 (catalog names)
                values.extend(row)
    return values


@pytest.mark.anyio
async def test_gateway_on_postgres_records_requests_with_content_encrypted(
    tmp_path, mock_provider, mock, pg_url
):
    settings = pg_settings(tmp_path, mock_provider, pg_url)
    async with running_gateway(settings) as (app, client, key):
        prompt = f"{PROMPT_CANARY} [[mock:reply={REPLY_CANARY}]]"
        response = await client.post(
            "/v1/chat/completions", json=chat(prompt), headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200, response.text
        assert REPLY_CANARY in response.text
        [record] = records(app)
        assert record["id"] == response.headers["x-signalvault-request-id"]
        assert record["outcome"] == "ok" and record["provider"] == "openai"
        assert app.services is not None
        prompt_plain, reply_plain = app.services.trail.decrypt(record)
        assert PROMPT_CANARY.encode() in (prompt_plain or b"")
        assert REPLY_CANARY.encode() in (reply_plain or b"")
    assert mock.stats()["total"] == 1
    values = all_values(pg_url)
    assert any(isinstance(v, bytes) for v in values)  # the ciphertext columns are there
    for canary in (PROMPT_CANARY, REPLY_CANARY):
        for value in values:
            if isinstance(value, bytes | memoryview):
                assert canary.encode() not in bytes(value)
            elif isinstance(value, str):
                assert canary not in value


def test_revocation_reaches_another_replica_by_notification(tmp_path, pg_url):
    """The backstop is an hour here, so only the NOTIFY can carry the change."""
    first = open_pg(pg_url)
    second = open_pg(pg_url, backstop_seconds=3600)
    try:
        from signalvault.gateway.keyring import KeyRing

        pepper = b"p" * 32
        ring_first, ring_second = KeyRing(first, pepper), KeyRing(second, pepper)
        key, secret = ring_first.create(name="k", environment="dev")
        ring_second.authenticate(secret)  # cached in the second replica
        before = second.keys_version()
        ring_first.revoke(key.id)
        deadline = time.monotonic() + 5
        while second.keys_version() == before and time.monotonic() < deadline:
            time.sleep(0.001)
        assert second.keys_version() != before
        with pytest.raises(Exception, match="revoked"):
            ring_second.authenticate(secret)
    finally:
        first.close()
        second.close()


def test_without_its_listener_a_replica_reads_every_change_on_the_next_call(pg_url, pg_user):
    first = open_pg(pg_url)
    second = open_pg(pg_url, backstop_seconds=3600)
    try:
        pid = second._listener_pid
        with psycopg.connect(host="127.0.0.1", dbname="test", user=pg_user) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 5
        while second._listening and time.monotonic() < deadline:
            time.sleep(0.001)
        assert not second._listening
        with first.engine.begin() as conn:
            first._bump(conn, "keys")
        before = second.keys_version()
        with first.engine.begin() as conn:
            first._bump(conn, "keys")
        assert second.keys_version() != before  # no waiting: read from the database
        deadline = time.monotonic() + 5
        while not second._listening and time.monotonic() < deadline:
            time.sleep(0.01)
        assert second._listening and second._listener_pid != pid  # reconnected by itself
    finally:
        first.close()
        second.close()


@pytest.mark.anyio
async def test_store_outage_answers_503_forwards_nothing_and_recovers(
    tmp_path, mock_provider, mock, pg_url, relay
):
    url = make_url(pg_url).set(port=relay.port).render_as_string(hide_password=False)
    settings = pg_settings(tmp_path, mock_provider, url)
    async with running_gateway(settings) as (app, client, key):
        headers = {"Authorization": f"Bearer {key}"}
        ok = await client.post("/v1/chat/completions", json=chat("before"), headers=headers)
        assert ok.status_code == 200
        assert app.services is not None
        app.services.store.flush()  # its completion is committed, not lost in the outage
        relay.cut()
        for _ in range(3):
            down = await client.post("/v1/chat/completions", json=chat("during"), headers=headers)
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "audit_store_unavailable"
        assert mock.stats()["total"] == 1
        relay.restore()
        again = await client.post("/v1/chat/completions", json=chat("after"), headers=headers)
        assert again.status_code == 200, again.text
        assert mock.stats()["total"] == 2
        forwarded = [r for r in records(app) if r["outcome"] == "ok"]
        assert len(forwarded) == 2


def test_only_batches_someone_waits_for_wait_for_the_wal_flush(pg_url):
    """A batch of write-behind operations alone commits with synchronous_commit off (for its
    own transaction only); one holding a write-ahead record keeps the server's setting."""
    from signalvault.store.sql import INSERT_RECORD
    from signalvault.store.writer import WriteOp
    from tests.store.test_store import row

    store = open_pg(pg_url)
    writer = store.writer
    writer._execute([], True)  # opens the writer's connection
    connection = writer._connection
    commit = connection.commit
    settings: list[str] = []

    def noted_commit() -> None:
        cursor = connection.cursor()
        cursor.execute("SHOW synchronous_commit")  # inside the batch's transaction
        settings.append(cursor.fetchone()[0])
        cursor.close()
        commit()

    connection.commit = noted_commit

    async def batches() -> None:
        store.write_later([WriteOp(INSERT_RECORD, row("behind-1"))])
        await asyncio.sleep(0.05)
        await store.write_ahead([WriteOp(INSERT_RECORD, row("ahead"))])
        store.write_later([WriteOp(INSERT_RECORD, row("behind-2"))])
        await asyncio.sleep(0.05)

    try:
        asyncio.run(batches())
        assert settings == ["off", "on", "off"]
        assert {r["id"] for r in store.list_records(RecordFilter())} == {
            "behind-1",
            "ahead",
            "behind-2",
        }
    finally:
        store.close()


def test_writer_fails_its_callers_while_the_database_is_away_then_recovers(pg_url, relay):
    from signalvault.store.sql import INSERT_RECORD
    from signalvault.store.writer import WriteOp
    from tests.store.test_store import row

    url = make_url(pg_url).set(port=relay.port).render_as_string(hide_password=False)
    store = open_pg(url)
    try:
        asyncio.run(store.write_ahead([WriteOp(INSERT_RECORD, row("before"))]))
        relay.cut()
        with pytest.raises(StoreError):
            asyncio.run(store.write_ahead([WriteOp(INSERT_RECORD, row("during"))]))
        relay.restore()
        asyncio.run(store.write_ahead([WriteOp(INSERT_RECORD, row("after"))]))
        assert [r["id"] for r in store.list_records(RecordFilter())] == ["before", "after"]
        assert store.writer.failed_batches == 1
    finally:
        store.close()


@pytest.mark.anyio
async def test_a_failing_audit_write_answers_503_and_forwards_nothing(
    tmp_path, mock_provider, mock, pg_url, pg_user
):
    """The key check reads fine but the write-ahead insert fails (a trigger refuses it)."""
    settings = pg_settings(tmp_path, mock_provider, pg_url)
    options = make_url(pg_url).query["options"]
    async with running_gateway(settings) as (_, client, key):
        headers = {"Authorization": f"Bearer {key}"}
        with psycopg.connect(
            host="127.0.0.1", dbname="test", user=pg_user, options=options, autocommit=True
        ) as admin:
            admin.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
            admin.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON audit_records "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
            down = await client.post("/v1/chat/completions", json=chat("x"), headers=headers)
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "audit_store_unavailable"
            assert mock.stats()["total"] == 0
            admin.execute("DROP TRIGGER refuse ON audit_records")
        ok = await client.post("/v1/chat/completions", json=chat("y"), headers=headers)
        assert ok.status_code == 200
        assert mock.stats()["total"] == 1


def migration_head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from signalvault.store.sql import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def test_replicas_starting_together_migrate_once(pg_url):
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            stores.append(open_pg(pg_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with stores[0].engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [
                (migration_head(),)
            ]
    finally:
        for store in stores:
            store.close()


def test_unreachable_database_error_never_shows_the_password(tmp_path, caplog):
    url = Secret("postgresql://someone:hunter2-secret@127.0.0.1:1/db")
    store = open_store(StoreSettings(data_dir=tmp_path, database_url=url))
    with pytest.raises(StoreError) as caught:
        store.open()
    store.close()
    assert "hunter2" not in str(caught.value)
    assert "PostgreSQL at 127.0.0.1:1/db" in str(caught.value)
    assert "hunter2" not in caplog.text


@pytest.mark.anyio
async def test_two_gateways_on_one_database_act_as_one(tmp_path, mock_provider, mock, pg_url):
    """A key issued through one replica works on the other; revoked through one, it is refused
    there at once and by the other as soon as the notice arrives."""
    settings = pg_settings(tmp_path, mock_provider, pg_url)
    async with (
        running_gateway(settings) as (first, first_client, secret),
        running_gateway(settings) as (_, second_client, _),
    ):
        headers = {"Authorization": f"Bearer {secret}"}
        ok = await second_client.post("/v1/chat/completions", json=chat("hi"), headers=headers)
        assert ok.status_code == 200
        assert first.services is not None
        key = first.services.keyring.authenticate(secret)
        first.services.keyring.revoke(key.id)
        refused = await first_client.post("/v1/chat/completions", json=chat("x"), headers=headers)
        assert refused.status_code == 401
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            response = await second_client.post(
                "/v1/chat/completions", json=chat("again"), headers=headers
            )
            if response.status_code != 200:
                break
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "revoked_api_key"

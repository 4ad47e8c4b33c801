"""Shared fixtures: a mock provider on a loopback port, settings in tmp_path, an in-process
gateway driven by httpx's ASGI transport, and a fresh gateway key."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest

from signalvault.app import GatewayApp, create_app
from signalvault.config import ProviderSettings, Secret, Settings, StoreSettings
from signalvault.mock_provider import MockProvider
from signalvault.server import BackgroundServer

PROVIDER_KEY = "sk-provider-secret-0f4e2c"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def mock_provider() -> Iterator[tuple[MockProvider, str]]:
    """One mock provider for the session; tests reset its counters."""
    mock = MockProvider()
    server = BackgroundServer(mock).start()
    yield mock, f"http://127.0.0.1:{server.port}/v1"
    server.stop()


@pytest.fixture
def mock(mock_provider: tuple[MockProvider, str]) -> MockProvider:
    mock_provider[0].reset()
    return mock_provider[0]


def make_settings(tmp_path, base_url: str, **store: object) -> Settings:
    return Settings(
        store=replace(StoreSettings(data_dir=tmp_path / "data"), **store),  # type: ignore[arg-type]
        providers=(
            ProviderSettings(
                name="openai",
                kind="openai",
                base_url=base_url,
                models=("gpt-*", "text-embedding-*"),
                api_key=Secret(PROVIDER_KEY),
            ),
            ProviderSettings(
                name="anthropic",
                kind="anthropic",
                base_url=base_url,
                models=("claude-*",),
                api_key=Secret(PROVIDER_KEY),
            ),
        ),
    )


@pytest.fixture
def settings(tmp_path, mock_provider) -> Settings:
    return make_settings(tmp_path, mock_provider[1])


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[GatewayApp]:
    app = create_app(settings)
    await app.startup()
    yield app
    await app.shutdown()


@pytest.fixture
async def client(gateway: GatewayApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


@pytest.fixture
def api_key(gateway: GatewayApp) -> str:
    assert gateway.services is not None
    _, secret = gateway.services.keyring.create(name="test", environment="dev")
    return secret


def records(gateway: GatewayApp) -> list[dict]:
    """Every audit record, oldest first, after flushing queued writes, but the record of the
    first policy version that every fresh store starts with (`is_policy_bootstrap`); the tool
    calls and results a record holds come as rows of their own (`trail.linked.expand`), at their
    place in time."""
    from signalvault.store import RecordFilter
    from signalvault.trail.linked import expand

    assert gateway.services is not None
    gateway.services.store.flush()
    rows = reversed(gateway.services.store.list_records(RecordFilter(), limit=10_000))
    found = []
    for row in rows:
        if not is_policy_bootstrap(row):
            found += [row, *expand(row)]
    return sorted(found, key=lambda row: row["created_at"])


def is_policy_bootstrap(row: dict) -> bool:
    """A record every fresh store starts with: the `policy_activated` record of version 1, and
    the provider register as configured (`provider_register`, recorded when it changes)."""
    import orjson

    if row["kind"] == "provider_register":
        return True
    return row["kind"] == "policy_activated" and orjson.loads(row["details"])["how"] == "bootstrap"


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings,
) -> AsyncIterator[tuple[GatewayApp, httpx.AsyncClient, str]]:
    """A gateway for settings a test chose: the app, a client, and a fresh key."""
    app = create_app(settings)
    await app.startup()
    try:
        assert app.services is not None
        _, key = app.services.keyring.create(name="t", environment="dev")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://g") as c:
            yield app, c, key
    finally:
        await app.shutdown()


PG_HOST, PG_PORT, PG_DATABASE = "127.0.0.1", 5432, "test"


def _pg_user() -> str | None:
    """`postgres` if it can log in, else the OS user; None if PostgreSQL is unreachable."""
    import getpass

    import psycopg

    for user in dict.fromkeys(("postgres", getpass.getuser())):
        try:
            psycopg.connect(
                host=PG_HOST, port=PG_PORT, dbname=PG_DATABASE, user=user, connect_timeout=3
            ).close()
            return user
        except psycopg.OperationalError:
            continue
    return None


@pytest.fixture(scope="session")
def pg_user() -> str:
    user = _pg_user()
    if user is None:
        reason = f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}/{PG_DATABASE}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    return user


@pytest.fixture
def pg_url(pg_user: str) -> Iterator[str]:
    """A PostgreSQL URL whose tables land in a schema of this test's own, dropped afterwards."""
    import secrets

    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, dbname=PG_DATABASE, user=pg_user, autocommit=True
    ) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield (
            f"postgresql://{pg_user}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"
            f"?options=-csearch_path%3D{schema}"
        )
    finally:
        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, dbname=PG_DATABASE, user=pg_user, autocommit=True
        ) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

"""Provider credentials stored encrypted under the master key: used upstream instead of the
configured key, per environment, changed without a restart in every gateway process, listed only
masked, audited, re-wrapped by master-key rotation, and never in clear in files, logs or output."""

from __future__ import annotations

import logging
import time

import httpx
import orjson
import pytest
from click.testing import CliRunner

from signalvault.app import create_app
from signalvault.cli.main import cli
from signalvault.config import load_settings
from signalvault.control.credentials import ProviderCredentials, wrap_name
from signalvault.control.services import open_services
from signalvault.crypto.envelope import MasterKey
from signalvault.errors import ConfigError
from signalvault.store import RecordFilter
from signalvault.store.postgres import PostgresStore
from signalvault.trail.audit import AuditTrail
from tests.conftest import PROVIDER_KEY, records

STORED = "sk-stored-4f8a1c9e2b7d6a30QwErTy"
ROTATED = "sk-rotated-0b1c2d3e4f5a6b7cZxCvBn"
PROD_ONLY = "sk-prod-only-9e8d7c6b5a4f3e2dAsDf"


async def chat(client, key: str) -> httpx.Response:
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return response


def upstream_credential(mock) -> str:
    """The credential the mock provider received with the last request."""
    headers = mock.recent_requests(1)[0]["headers"]
    return headers.get("authorization") or "x-api-key " + headers["x-api-key"]


@pytest.mark.anyio
async def test_stored_credential_wins_and_changes_without_a_restart(gateway, client, mock, caplog):
    caplog.set_level(logging.DEBUG)
    _, key = gateway.services.keyring.create(name="app", environment="dev")
    credentials = gateway.services.credentials
    await chat(client, key)
    assert upstream_credential(mock) == f"Bearer {PROVIDER_KEY}"  # the configured key

    credentials.set("openai", STORED, "test")
    await chat(client, key)
    assert upstream_credential(mock) == f"Bearer {STORED}"

    credentials.set("openai", ROTATED + "\n", "test")  # rotated; whitespace dropped
    await chat(client, key)
    assert upstream_credential(mock) == f"Bearer {ROTATED}"

    # Another provider keeps its configured key.
    response = await client.post(
        "/v1/messages",
        json={"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": key},
    )
    assert response.status_code == 200
    assert upstream_credential(mock) == f"x-api-key {PROVIDER_KEY}"

    credentials.remove("openai", "test")
    await chat(client, key)
    assert upstream_credential(mock) == f"Bearer {PROVIDER_KEY}"  # the configured key again

    for record in records(gateway):
        assert STORED not in str(record) and ROTATED not in str(record)
    gateway.services.store.flush()
    data_dir = gateway.settings.store.data_dir
    for file in data_dir.iterdir():
        data = file.read_bytes()
        assert STORED.encode() not in data and ROTATED.encode() not in data, file.name
    assert STORED not in caplog.text and ROTATED not in caplog.text
    for entry in caplog.records:
        assert STORED not in str(entry.__dict__) and ROTATED not in str(entry.__dict__)


@pytest.mark.anyio
async def test_a_credential_per_environment_falls_back_to_the_provider_wide_one(
    gateway, client, mock
):
    keyring, credentials = gateway.services.keyring, gateway.services.credentials
    _, prod = keyring.create(name="p", environment="prod")
    _, dev = keyring.create(name="d", environment="dev")
    credentials.set("openai", PROD_ONLY, "test", environment="prod")
    await chat(client, prod)
    assert upstream_credential(mock) == f"Bearer {PROD_ONLY}"
    await chat(client, dev)
    assert upstream_credential(mock) == f"Bearer {PROVIDER_KEY}"

    credentials.set("openai", STORED, "test")  # every environment
    await chat(client, dev)
    assert upstream_credential(mock) == f"Bearer {STORED}"
    await chat(client, prod)
    assert upstream_credential(mock) == f"Bearer {PROD_ONLY}"  # the environment's own wins

    listed = {(c.provider, c.environment): c.masked for c in credentials.list_masked()}
    assert listed == {("openai", None): "****" + STORED[-4:], ("openai", "prod"): "****AsDf"}


@pytest.mark.anyio
async def test_a_second_gateway_uses_a_changed_credential_on_its_next_request(settings, mock):
    first, second = create_app(settings), create_app(settings)
    await first.startup()
    await second.startup()
    try:
        _, key = first.services.keyring.create(name="app", environment="dev")
        transport = httpx.ASGITransport(app=first)
        async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
            await chat(client, key)
            assert upstream_credential(mock) == f"Bearer {PROVIDER_KEY}"
            second.services.credentials.set("openai", STORED, "other-process")
            await chat(client, key)
            assert upstream_credential(mock) == f"Bearer {STORED}"
            second.services.credentials.set("openai", ROTATED, "other-process")
            await chat(client, key)
            assert upstream_credential(mock) == f"Bearer {ROTATED}"
            second.services.credentials.remove("openai", "other-process")
            await chat(client, key)
            assert upstream_credential(mock) == f"Bearer {PROVIDER_KEY}"
    finally:
        await first.shutdown()
        await second.shutdown()


def test_changes_are_audited_with_masked_values_only(settings):
    services = open_services(settings)
    try:
        services.credentials.set("openai", STORED, "account:ann@example.com", environment="prod")
        services.credentials.set("openai", ROTATED, "account:ann@example.com", environment="prod")
        services.credentials.remove("openai", "account:bob@example.com", environment="prod")
        rows = list(reversed(services.store.list_records(RecordFilter(), 100)))
    finally:
        services.store.close()
    events = [(r["kind"], r["actor"], orjson.loads(r["details"])) for r in rows]
    assert events == [
        (
            "provider_credential_set",
            "account:ann@example.com",
            {"provider": "openai", "environment": "prod", "before": None, "after": "****ErTy"},
        ),
        (
            "provider_credential_set",
            "account:ann@example.com",
            {
                "provider": "openai",
                "environment": "prod",
                "before": "****ErTy",
                "after": "****CvBn",
            },
        ),
        (
            "provider_credential_removed",
            "account:bob@example.com",
            {"provider": "openai", "environment": "prod", "before": "****CvBn", "after": None},
        ),
    ]


@pytest.mark.parametrize(
    ("provider", "secret", "environment", "message"),
    [
        ("nope", STORED, None, "no provider named 'nope' is configured"),
        ("openai", "   \n", None, "the credential is empty"),
        ("openai", "sk-with space-0123456789", None, "printable ASCII without spaces"),
        ("openai", "sk-line\r\nx-injected: 1", None, "printable ASCII without spaces"),
        ("openai", "x" * 4097, None, "longer than 4096"),
        ("openai", STORED, "Prod", "environment must be"),
    ],
)
def test_bad_input_is_refused_without_quoting_it(settings, provider, secret, environment, message):
    services = open_services(settings)
    try:
        with pytest.raises(ConfigError, match=message) as caught:
            services.credentials.set(provider, secret, "test", environment=environment)
        assert secret.strip() not in str(caught.value) or not secret.strip()
        assert services.credentials.list_masked() == []
        with pytest.raises(ConfigError, match="no stored credential for provider 'openai'"):
            services.credentials.remove("openai", "test")
    finally:
        services.store.close()


def test_short_credentials_show_no_characters(settings):
    services = open_services(settings)
    try:
        info = services.credentials.set("openai", "short-key-1", "test")
        assert info.masked == "****" and info.rotated_at is None
        again = services.credentials.set("openai", "short-key-2", "test")
        assert again.rotated_at is not None and again.created_at == info.created_at
    finally:
        services.store.close()


def test_a_row_moved_to_another_provider_does_not_unwrap(settings):
    """The wrap binds the credential to its provider and environment."""
    master = MasterKey.from_bytes(bytes(range(32)))
    wrapped = master.wrap(wrap_name("openai", ""), STORED.encode())
    assert master.unwrap(wrap_name("openai", ""), wrapped) == STORED.encode()
    for other in (wrap_name("anthropic", ""), wrap_name("openai", "prod")):
        with pytest.raises(Exception, match="cannot unwrap"):
            master.unwrap(other, wrapped)


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path, monkeypatch, mock_provider):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "signalvault.toml"
    config.write_text(
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[[providers]]\nname = "openai"\nkind = "openai"\nbase_url = "{mock_provider[1]}"\n'
        'api_key_env = "CRED_TEST_OPENAI_KEY"\nmodels = ["gpt-*"]\n'
    )
    return {"SIGNALVAULT_CONFIG": str(config), "CRED_TEST_OPENAI_KEY": PROVIDER_KEY}


def invoke(env, *args: str, stdin: str | None = None):
    result = CliRunner().invoke(cli, list(args), env=env, input=stdin)
    assert "Traceback" not in result.output
    return result


def test_cli_set_list_remove_masked_and_never_in_clear(cli_env, tmp_path):
    stored = invoke(cli_env, "providers", "set-key", "openai", "--key-stdin", stdin=STORED + "\n")
    assert stored.exit_code == 0, stored.output
    assert "Stored" in stored.output and "****" + STORED[-4:] in stored.output
    prod = invoke(
        cli_env, "providers", "set-key", "openai", "--env", "prod", "--key-stdin", stdin=PROD_ONLY
    )
    assert prod.exit_code == 0, prod.output

    listed = invoke(cli_env, "providers", "list", "--json")
    rows = [orjson.loads(line) for line in listed.output.splitlines()]
    assert [(r["provider"], r["environment"], r["source"], r["in_use"]) for r in rows] == [
        ("openai", "*", "config:api_key_env=CRED_TEST_OPENAI_KEY", False),
        ("openai", "*", "stored", True),
        ("openai", "prod", "stored", True),
    ]
    assert [r["credential"] for r in rows] == [
        "****" + PROVIDER_KEY[-4:],
        "****" + STORED[-4:],
        "****" + PROD_ONLY[-4:],
    ]
    table = invoke(cli_env, "providers", "list")
    assert table.exit_code == 0 and "stored" in table.output

    replaced = invoke(cli_env, "providers", "set-key", "openai", "--key-stdin", stdin=ROTATED)
    assert "Replaced" in replaced.output
    removed = invoke(cli_env, "providers", "remove-key", "openai", "--env", "prod")
    assert removed.exit_code == 0 and "Removed" in removed.output

    outputs = [stored, prod, listed, table, replaced, removed, invoke(cli_env, "logs", "--json")]
    for secret in (STORED, ROTATED, PROD_ONLY, PROVIDER_KEY):
        for result in outputs:
            assert secret not in result.output
        for file in (tmp_path / "data").iterdir():
            assert secret.encode() not in file.read_bytes(), file.name


def test_cli_errors_are_one_line(cli_env):
    no_stdin = invoke(cli_env, "providers", "set-key", "openai", stdin="")
    assert no_stdin.exit_code == 1 and "--key-stdin" in no_stdin.output
    unknown = invoke(cli_env, "providers", "set-key", "azure", "--key-stdin", stdin=STORED)
    assert unknown.exit_code == 1 and "no provider named 'azure'" in unknown.output
    assert STORED not in unknown.output
    missing = invoke(cli_env, "providers", "remove-key", "openai")
    assert missing.exit_code == 1 and "no stored credential" in missing.output
    for result in (no_stdin, unknown, missing):
        assert len(result.output.strip().splitlines()) == 1


def test_master_key_rotation_rewraps_credentials(cli_env, tmp_path):
    invoke(cli_env, "providers", "set-key", "openai", "--key-stdin", stdin=STORED)
    rotated = invoke(cli_env, "master-key", "rotate")
    assert rotated.exit_code == 0, rotated.output
    finished = invoke(cli_env, "master-key", "rotate", "--finish")
    assert finished.exit_code == 0, finished.output  # nothing left under the old key

    new_id = MasterKey.from_bytes(
        bytes.fromhex((tmp_path / "data" / "master.key").read_text().strip())
    ).key_id
    services = open_services(load_settings(tmp_path / "signalvault.toml"))
    try:
        [stored] = services.store.list_credentials()
        assert stored.master_key_id == new_id
        assert services.credentials.resolve("openai", "dev").reveal() == STORED
    finally:
        services.store.close()


def test_credentials_reach_another_postgresql_replica(pg_url):
    from sqlalchemy.engine import make_url

    url = make_url(pg_url).set(drivername="postgresql+psycopg")
    master = MasterKey.from_bytes(bytes(range(32)))
    stores = [PostgresStore(url, pool_size=2), PostgresStore(url, pool_size=2)]
    for store in stores:
        store.open()
    try:
        here, there = (
            ProviderCredentials(store, master, AuditTrail(store, master), ("openai",))
            for store in stores
        )
        assert there.resolve("openai", "dev") is None
        here.set("openai", STORED, "test")
        deadline = time.monotonic() + 5
        while there.resolve("openai", "dev") is None:  # NOTIFY arrives within moments
            assert time.monotonic() < deadline, "the change never reached the other replica"
            time.sleep(0.01)
        assert there.resolve("openai", "dev").reveal() == STORED
    finally:
        for store in stores:
            store.close()


@pytest.mark.anyio
async def test_an_unreadable_credential_store_fails_the_request_closed(
    gateway, client, mock, monkeypatch
):
    """No guessing: a credential change that cannot be read is a 503, nothing is forwarded."""
    from signalvault.errors import StoreError

    _, key = gateway.services.keyring.create(name="app", environment="dev")

    def unreadable(provider: str, environment: str | None):
        raise StoreError("the store does not answer")

    monkeypatch.setattr(gateway.services.credentials, "resolve", unreadable)
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "audit_store_unavailable"
    assert mock.stats()["total"] == 0

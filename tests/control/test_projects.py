"""Projects (issue 4): the registry and its audit records, registration on first use (keys,
account roles, retention overrides), the detail, the migration's backfill of an upgraded store,
the `projects` commands and the /api/projects routes with their visibility per role."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import orjson
import pytest
from alembic import command
from alembic.config import Config
from click.testing import CliRunner

from signalvault.app import GatewayApp
from signalvault.cli.main import cli
from signalvault.config import AccountSettings, RetentionSettings, Secret, Settings, StoreSettings
from signalvault.control.accounts.passwords import Passwords
from signalvault.control.accounts.service import AccountService
from signalvault.control.projects import CREATED, UPDATED, ProjectRegistry
from signalvault.control.services import open_services
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.errors import BadRequest, Conflict, NotFound, StoreError
from signalvault.store import RecordFilter, open_store
from signalvault.store.account_queries import Account, AccountQueries
from signalvault.store.sql import MIGRATIONS
from signalvault.trail.legal_holds import add_hold, release_hold
from signalvault.trail.retention import EXPIRING_KINDS, PROJECT_DAYS_SETTING, set_project_days

FAST = Passwords(time_cost=1, memory_kib=1024, parallelism=1)
PASSWORD = "correct horse battery staple 9"
BAD_NAMES = ["", " lead", "trail ", "*", "x" * 129, "tab\there", "nul\x00", "line\nbreak"]
GOOD_NAMES = ["alpha", "team/app", "x" * 128, "Zürich ops", "a b"]


def trail(services: Any, kind: str) -> list[dict[str, Any]]:
    """Records of one kind, oldest first, with their details parsed."""
    services.store.flush()
    rows = services.store.list_records(RecordFilter(), limit=10_000)
    found = [dict(r) for r in reversed(rows) if r["kind"] == kind]
    for r in found:
        r["details"] = orjson.loads(r["details"])
    return found


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path) -> StoreSettings:
    settings = StoreSettings(data_dir=tmp_path / "data")
    if request.param == "postgres":
        settings = replace(settings, database_url=Secret(request.getfixturevalue("pg_url")))
    return settings


@pytest.fixture
def services(backend):
    opened = open_services(Settings(store=backend))
    yield opened
    opened.store.close()


@pytest.fixture
def registry(services) -> ProjectRegistry:
    return ProjectRegistry(services.store, services.trail)


# -- the registry ----------------------------------------------------------------------------------


def test_create_is_audited_with_actor_and_after(services, registry):
    made = registry.create("checkout", "Checkout bots", "cli:ops")
    assert (made.name, made.description, made.created_by) == (
        "checkout",
        "Checkout bots",
        "cli:ops",
    )
    assert made.updated_at is None
    assert registry.get("checkout") == made
    [record] = trail(services, CREATED)
    assert record["actor"] == "cli:ops" and record["project"] == "checkout"
    assert record["details"] == {
        "project": "checkout",
        "via": "create",
        "before": None,
        "after": {"name": "checkout", "description": "Checkout bots"},
    }


def test_an_existing_name_is_a_conflict_and_changes_nothing(services, registry):
    registry.create("checkout", "first", "cli:ops")
    with pytest.raises(Conflict, match="already exists"):
        registry.create("checkout", "second", "cli:other")
    assert registry.get("checkout").description == "first"
    assert len(trail(services, CREATED)) == 1


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_with_the_rule(services, registry, name):
    with pytest.raises(BadRequest, match="1-128 printable characters") as raised:
        registry.create(name, "", "cli:ops")
    assert raised.value.code == "invalid_project_name"
    with pytest.raises(BadRequest):
        registry.ensure(name, "cli:ops", "gateway_key")
    assert registry.list_all() == [] and trail(services, CREATED) == []


def test_good_names_round_trip(registry):
    for name in GOOD_NAMES:
        registry.create(name, "", "cli:ops")
    assert [p.name for p in registry.list_all()] == sorted(GOOD_NAMES)


def test_update_records_before_and_after_and_a_no_op_records_nothing(services, registry):
    registry.create("checkout", "old words", "cli:ops")
    changed = registry.update("checkout", "new words", "account:ana@example.com")
    assert changed.description == "new words"
    assert changed.updated_by == "account:ana@example.com" and changed.updated_at is not None
    [record] = trail(services, UPDATED)
    assert record["actor"] == "account:ana@example.com"
    assert record["details"] == {
        "project": "checkout",
        "before": {"name": "checkout", "description": "old words"},
        "after": {"name": "checkout", "description": "new words"},
    }
    registry.update("checkout", "new words", "cli:ops")
    assert len(trail(services, UPDATED)) == 1
    with pytest.raises(NotFound):
        registry.update("nope", "x", "cli:ops")
    with pytest.raises(BadRequest, match="description"):
        registry.update("checkout", "x" * 1001, "cli:ops")
    with pytest.raises(BadRequest, match="description"):
        registry.update("checkout", "two\nlines", "cli:ops")
    assert registry.get("checkout").description == "new words"


def test_ensure_registers_once_and_says_how(services, registry):
    assert registry.ensure("alpha", "cli:ops", "gateway_key") is True
    assert registry.ensure("alpha", "cli:other", "retention") is False
    registry.create("beta", "", "cli:ops")
    assert registry.ensure("beta", "cli:ops", "gateway_key") is False
    records = trail(services, CREATED)
    assert [(r["project"], r["actor"], r["details"]["via"]) for r in records] == [
        ("alpha", "cli:ops", "gateway_key"),
        ("beta", "cli:ops", "create"),
    ]
    assert registry.get("alpha").created_by == "cli:ops"


def test_a_registration_the_trail_refuses_does_not_stand(services, registry, monkeypatch):
    def broken(*args, **kwargs):
        raise StoreError("disk full")

    monkeypatch.setattr(services.trail, "record_event", broken)
    with pytest.raises(StoreError):
        registry.ensure("alpha", "cli:ops", "gateway_key")
    with pytest.raises(NotFound):
        registry.get("alpha")


def test_project_changes_outlive_retention():
    assert not {CREATED, UPDATED} & set(EXPIRING_KINDS)


# -- the detail ------------------------------------------------------------------------------------


def _key(services, project: str, env: str, *, by: str = "cli:ops", expires_in=None) -> GatewayKey:
    key, _ = services.keyring.create(
        name="k", environment=env, project=project, created_by=by, expires_in=expires_in
    )
    return key


def test_detail_counts_keys_and_shows_retention_and_holds(services, registry):
    registry.create("alpha", "", "cli:ops")
    _key(services, "alpha", "prod")
    _key(services, "alpha", "prod", by="account:dev@example.com")
    services.keyring.revoke(_key(services, "alpha", "prod").id)
    _key(services, "alpha", "dev", expires_in=0.001)
    # Revoked and expired: revoked wins.
    services.keyring.revoke(_key(services, "alpha", "dev", expires_in=0.001).id)
    _key(services, "beta", "prod")  # another project's key is not counted
    time.sleep(0.01)
    retention = RetentionSettings(days=30)

    detail = registry.detail("alpha", retention)
    counts = {env: (c.active, c.revoked, c.expired) for env, c in detail.keys.items()}
    assert counts == {"prod": (2, 1, 0), "dev": (0, 1, 1)}
    assert (detail.retention.days, detail.retention.source) == (30, "default")
    assert detail.legal_holds == 0
    mine = registry.detail("alpha", retention, keys_created_by="account:dev@example.com")
    assert {env: c.active for env, c in mine.keys.items()} == {"prod": 1}

    set_project_days(services.store, services.trail, "alpha", 7, "cli:ops")
    hold = add_hold(services.store, services.trail, "project", "alpha", "case 1", "cli:ops")
    add_hold(services.store, services.trail, "project", "alpha", "case 2", "cli:ops")
    add_hold(services.store, services.trail, "project", "beta", None, "cli:ops")
    release_hold(services.store, services.trail, hold.id, "cli:ops")
    detail = registry.detail("alpha", retention)
    assert (detail.retention.days, detail.retention.source) == (7, "project")
    assert detail.legal_holds == 1
    # A project override of the config file counts as the project's own.
    from_file = RetentionSettings(days=30, projects={"alpha": 0})
    set_project_days(services.store, services.trail, "alpha", None, "cli:ops")
    assert registry.detail("alpha", from_file).retention.source == "project"
    with pytest.raises(NotFound):
        registry.detail("beta", retention)


# -- registration on first use ---------------------------------------------------------------------


def test_account_roles_register_their_projects(services, registry):
    accounts = AccountService(
        services.store, services.trail, services.keyring.pepper, AccountSettings(), passwords=FAST
    )
    account, _ = accounts.create_account(
        "ana@example.com", {None: "viewer", "alpha": "developer"}, "cli:ops", PASSWORD
    )
    accounts.set_roles(account.id, {"alpha": "admin", "beta": "auditor"}, "cli:ops")
    assert [p.name for p in registry.list_all()] == ["alpha", "beta"]
    records = trail(services, CREATED)
    assert [(r["project"], r["details"]["via"]) for r in records] == [
        ("alpha", "account_role"),
        ("beta", "account_role"),
    ]
    with pytest.raises(BadRequest, match="1-128 printable characters"):
        accounts.set_roles(account.id, {" gamma": "viewer"}, "cli:ops")
    assert accounts.get_account(account.id).roles == {"alpha": "admin", "beta": "auditor"}


# -- the backfill of an upgraded store -------------------------------------------------------------


def _upgrade(engine, revision: str) -> None:
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_upgrading_registers_the_projects_a_deployment_already_uses(backend):
    """A store at the revision before projects, with keys, roles and retention overrides naming
    projects, has them registered (and audited) once it is opened by this version."""
    store = open_store(backend)
    try:
        _upgrade(store.engine, "0006")
        now = time.time()
        for n, project in enumerate(["alpha", "alpha", " spaced"]):
            key = GatewayKey(
                id=f"key_{n}", name="k", project=project, environment="dev", prefix=f"sv-dev-{n}",
                models=(), rpm=None, tpm=None, expires_at=None, revoked_at=None,
                created_at=now, created_by="cli:ops",
            )  # fmt: skip
            store.insert_key(key, bytes([n]) * 32)
        roles = {"*": "viewer", "beta": "developer", "alpha": "admin"}
        AccountQueries(store.engine).insert_account(
            Account("acc_1", "ana@example.com", roles, now, "cli:ops", None, None, now), "hash"
        )
        store.put_setting(PROJECT_DAYS_SETTING, orjson.dumps({"gamma": 7}).decode(), "cli:ops")
        store.open()  # migrates to the newest revision
        trail_rows = store.list_records(RecordFilter(), limit=100)
    finally:
        store.close()

    services = open_services(Settings(store=backend))  # opening again changes nothing
    try:
        registry = ProjectRegistry(services.store, services.trail)
        names = [p.name for p in registry.list_all()]
        assert names == ["alpha", "beta", "gamma"]  # not "*", not the name the rule refuses
        assert all(p.created_by == "migration" for p in registry.list_all())
        records = trail(services, CREATED)
    finally:
        services.store.close()
    assert sorted(r["project"] for r in records) == ["alpha", "beta", "gamma"]
    assert all(r["actor"] == "migration" and r["details"]["via"] == "migration" for r in records)
    assert len(trail_rows) == 3


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"SIGNALVAULT_DATA_DIR": str(tmp_path / "data"), "SIGNALVAULT_CONFIG": ""}

    def invoke(*args: str):
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_cli_create_list_show(run, tmp_path):
    made = run("projects", "create", "checkout", "--description", "Checkout bots")
    assert made.exit_code == 0 and made.output.strip() == "Created project checkout."
    assert (
        run("keys", "create", "--name", "a", "--env", "prod", "--project", "checkout").exit_code
        == 0
    )
    assert (
        run("keys", "create", "--name", "b", "--env", "dev", "--project", "new-one").exit_code == 0
    )

    listed = run("projects", "list")
    assert listed.exit_code == 0
    assert "checkout" in listed.output and "Checkout bots" in listed.output
    assert "new-one" in listed.output
    rows = [orjson.loads(line) for line in run("projects", "list", "--json").output.splitlines()]
    assert [r["name"] for r in rows] == ["checkout", "new-one"]
    assert rows[1]["description"] == "" and rows[1]["created_by"].startswith("cli:")

    shown = orjson.loads(run("projects", "show", "checkout", "--json").output)
    assert shown["keys"] == {"prod": {"active": 1, "revoked": 0, "expired": 0}}
    assert shown["retention"] == {"days": 0, "source": "default"}
    assert shown["legal_holds"] == 0 and shown["accounts"] == []
    text = run("projects", "show", "checkout").output
    assert "prod: 1 active, 0 revoked, 0 expired" in text and "kept forever" in text

    services = open_services(Settings(store=StoreSettings(data_dir=tmp_path / "data")))
    try:
        records = trail(services, CREATED)
    finally:
        services.store.close()
    assert [(r["project"], r["details"]["via"]) for r in records] == [
        ("checkout", "create"),
        ("new-one", "gateway_key"),
    ]


def test_cli_errors_are_one_line(run, tmp_path):
    assert_one_line_error(run("projects", "create", " spaced"), "printable characters")
    assert not (tmp_path / "data").exists()  # refused before the store was opened
    assert_one_line_error(
        run("keys", "create", "--name", "a", "--env", "dev", "--project", "*"),
        "printable characters",
    )
    assert not (tmp_path / "data").exists()
    assert run("projects", "create", "checkout").exit_code == 0
    assert_one_line_error(run("projects", "create", "checkout"), "already exists")
    assert_one_line_error(run("projects", "show", "nope"), "no project nope")
    assert_one_line_error(
        run("projects", "create", "x", "--description", "a" * 1001), "description"
    )


# -- the admin API ---------------------------------------------------------------------------------


@dataclass
class Api:
    app: GatewayApp
    accounts: AccountService
    http: httpx.AsyncClient

    @property
    def services(self) -> Any:
        assert self.app.services is not None
        return self.app.services

    def token(self, email: str, roles: dict[str | None, str]) -> dict[str, str]:
        account, _ = self.accounts.create_account(email, roles, "test", PASSWORD)
        secret = self.accounts.create_token(account.id, "t", None, "test")[1]
        return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    app = GatewayApp(
        settings,
        lambda services: AccountService(
            services.store,
            services.trail,
            services.keyring.pepper,
            settings.accounts,
            passwords=FAST,
        ),
    )
    await app.startup()
    try:
        assert app.services is not None
        accounts = app.accounts(app.services)
        assert isinstance(accounts, AccountService)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://gateway") as http:
            yield Api(app, accounts, http)
    finally:
        await app.shutdown()


@pytest.mark.anyio
async def test_api_create_patch_and_read(api: Api) -> None:
    owner = api.token("owner@example.com", {None: "owner"})
    made = await api.http.post(
        "/api/projects", json={"name": "checkout", "description": "bots"}, headers=owner
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["name"] == "checkout" and body["description"] == "bots"
    assert body["created_by"] == "account:owner@example.com"
    assert body["keys"] == {} and body["legal_holds"] == 0
    assert body["retention"] == {"days": 0, "source": "default"}
    assert body["accounts"] == []

    again = await api.http.post("/api/projects", json={"name": "checkout"}, headers=owner)
    assert again.status_code == 409 and again.json()["error"]["code"] == "project_exists"

    admin = api.token("adm@example.com", {"checkout": "admin"})
    changed = await api.http.patch(
        "/api/projects/checkout", json={"description": "payment bots"}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["description"] == "payment bots"
    assert changed.json()["updated_by"] == "account:adm@example.com"
    [record] = trail(api.services, UPDATED)
    assert record["actor"] == "account:adm@example.com"
    assert record["details"]["before"]["description"] == "bots"
    assert record["details"]["after"]["description"] == "payment bots"

    read = (await api.http.get("/api/projects/checkout", headers=owner)).json()
    assert read["description"] == "payment bots"
    assert read["accounts"] == [
        {
            "account_id": read["accounts"][0]["account_id"],
            "email": "adm@example.com",
            "role": "admin",
            "disabled": False,
        }
    ]
    # Only the accounts permission sees who holds roles.
    assert (await api.http.get("/api/projects/checkout", headers=admin)).json()["accounts"] is None

    missing = await api.http.get("/api/projects/nope", headers=owner)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert (
        await api.http.patch("/api/projects/nope", json={"description": "x"}, headers=owner)
    ).status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize("name", [" lead", "*", "x" * 129, "nul\x00", ""])
async def test_api_bad_names_are_a_422_naming_the_field(api: Api, name: str) -> None:
    owner = api.token("owner@example.com", {None: "owner"})
    for url, body in (
        ("/api/projects", {"name": name}),
        ("/api/keys", {"name": "k", "environment": "dev", "project": name}),
    ):
        refused = await api.http.post(url, json=body, headers=owner)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "validation_error"
        assert "body." in error["message"]
    refused = await api.http.put("/api/retention", json={"projects": {name: 3}}, headers=owner)
    assert refused.status_code == 422
    assert api.services.store.list_keys() == []
    assert (await api.http.get("/api/projects", headers=owner)).json()["data"] == []


@pytest.mark.anyio
async def test_api_flows_register_unknown_projects(api: Api) -> None:
    owner = api.token("owner@example.com", {None: "owner"})
    key = await api.http.post(
        "/api/keys", json={"name": "k", "environment": "dev", "project": "team/app"}, headers=owner
    )
    assert key.status_code == 201, key.text
    days = await api.http.put("/api/retention", json={"projects": {"archive": 30}}, headers=owner)
    assert days.status_code == 200, days.text
    made = await api.http.post(
        "/api/accounts",
        json={"email": "ana@example.com", "roles": {"research": "viewer"}},
        headers=owner,
    )
    assert made.status_code == 201, made.text
    # Removing an override registers nothing.
    await api.http.put("/api/retention", json={"projects": {"ghost": None}}, headers=owner)

    listed = (await api.http.get("/api/projects", headers=owner)).json()
    assert listed["next_cursor"] is None
    assert [p["name"] for p in listed["data"]] == ["archive", "research", "team/app"]
    records = trail(api.services, CREATED)
    assert {(r["project"], r["actor"], r["details"]["via"]) for r in records} == {
        ("team/app", "account:owner@example.com", "gateway_key"),
        ("archive", "account:owner@example.com", "retention"),
        ("research", "account:owner@example.com", "account_role"),
    }
    # A name with "/" is one path parameter, sent as is or escaped.
    for url in ("/api/projects/team/app", "/api/projects/team%2Fapp"):
        detail = await api.http.get(url, headers=owner)
        assert detail.status_code == 200, detail.text
        assert detail.json()["keys"] == {"dev": {"active": 1, "revoked": 0, "expired": 0}}
    assert (await api.http.get("/api/projects/archive", headers=owner)).json()["retention"] == {
        "days": 30,
        "source": "project",
    }


@pytest.mark.anyio
async def test_api_list_pages_by_name_with_a_cursor(api: Api) -> None:
    owner = api.token("owner@example.com", {None: "owner"})
    made = [f"p{n:02d}" for n in range(7)]
    for name in made:
        await api.http.post("/api/projects", json={"name": name}, headers=owner)
    few = api.token("few@example.com", {"p01": "viewer", "p05": "viewer"})
    registered = [
        p.name for p in ProjectRegistry(api.services.store, api.services.trail).list_all()
    ]
    assert set(made) <= set(registered)
    for headers, expected in ((owner, registered), (few, ["p01", "p05"])):
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            url = "/api/projects?limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = (await api.http.get(url, headers=headers)).json()
            assert len(page["data"]) <= 3
            seen += [p["name"] for p in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected


@pytest.mark.anyio
async def test_api_visibility_per_role(api: Api) -> None:
    owner = api.token("owner@example.com", {None: "owner"})
    for name in ("alpha", "beta", "gamma"):
        await api.http.post("/api/projects", json={"name": name}, headers=owner)
    reg = api.services.keyring
    reg.create(
        name="mine", environment="dev", project="alpha", created_by="account:dev@example.com"
    )
    reg.create(
        name="theirs", environment="dev", project="alpha", created_by="account:x@example.com"
    )

    async def names(headers: dict[str, str]) -> list[str]:
        response = await api.http.get("/api/projects", headers=headers)
        assert response.status_code == 200
        return [p["name"] for p in response.json()["data"]]

    viewer = api.token("viewer@example.com", {None: "viewer"})
    dev = api.token("dev@example.com", {"alpha": "developer", "beta": "viewer"})
    security = api.token("sec@example.com", {"gamma": "security"})
    assert await names(viewer) == ["alpha", "beta", "gamma"]
    assert await names(dev) == ["alpha", "beta"]
    assert await names(security) == ["gamma"]

    # Not visible: 404 (whether or not it exists), for reads and changes alike.
    assert (await api.http.get("/api/projects/gamma", headers=dev)).status_code == 404
    assert (await api.http.get("/api/projects/alpha", headers=security)).status_code == 404
    admin_in_beta = api.token("adm-beta@example.com", {"beta": "admin"})
    patched = await api.http.patch(
        "/api/projects/alpha", json={"description": "x"}, headers=admin_in_beta
    )
    assert patched.status_code == 404
    # Visible but not the role to change it, or to register one.
    patched = await api.http.patch("/api/projects/alpha", json={"description": "x"}, headers=dev)
    assert patched.status_code == 403
    assert (
        await api.http.post("/api/projects", json={"name": "d"}, headers=dev)
    ).status_code == 403
    admin_in_alpha = api.token("adm@example.com", {"alpha": "admin"})
    made = await api.http.post("/api/projects", json={"name": "d"}, headers=admin_in_alpha)
    assert made.status_code == 403  # registering needs the role globally

    # Each part of the detail follows the caller's read permission in the project.
    mine = (await api.http.get("/api/projects/alpha", headers=dev)).json()
    assert mine["keys"] == {"dev": {"active": 1, "revoked": 0, "expired": 0}}  # their own only
    assert mine["retention"] is None and mine["legal_holds"] is None and mine["accounts"] is None
    seen = (await api.http.get("/api/projects/alpha", headers=viewer)).json()
    assert seen["keys"] == {"dev": {"active": 2, "revoked": 0, "expired": 0}}
    sec = (await api.http.get("/api/projects/gamma", headers=security)).json()
    assert sec["keys"] is None and sec["name"] == "gamma"

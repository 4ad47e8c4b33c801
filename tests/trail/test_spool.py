"""The audit spool ([store] spool_dir): while the store cannot commit, write-ahead records and
their completions go to an fsync'd file (ciphertext only) and requests are still served; when
the store answers again they are replayed in order, idempotently; a full spool refuses (503)."""

from __future__ import annotations

import asyncio
import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from signalvault import app as app_module
from signalvault.app import create_app
from signalvault.store.sql import INSERT_RECORD
from signalvault.store.writer import WriteOp
from signalvault.trail.spool import Spool, _read, replay_file
from tests.conftest import make_settings, records, running_gateway
from tests.gateway.test_metrics import samples, value

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def quick_replay_retries(monkeypatch):
    monkeypatch.setattr(app_module, "SPOOL_RETRY_MAX_SECONDS", 0.1)


def chat(text: str, **extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


class Outage:
    """Makes a store's commits fail (as a full disk or a dead database would) until `end()`."""

    def __init__(self, app, monkeypatch) -> None:
        writer = app.services.store.writer
        real = writer._execute
        self.is_down = True

        def execute(ops, durable=True):
            if self.is_down:
                raise OperationalError("INSERT ...", {}, Exception("disk I/O error"))
            return real(ops, durable)

        monkeypatch.setattr(writer, "_execute", execute)

    def end(self) -> None:
        self.is_down = False


def spooling(tmp_path, mock_provider, **store):
    settings = make_settings(tmp_path, mock_provider[1])
    return replace(
        settings,
        store=replace(settings.store, spool_dir=tmp_path / "spool", **store),
    )


async def wait_replayed(app, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while app._spool.is_active:
        assert time.monotonic() < deadline, "the spool was not replayed"
        await asyncio.sleep(0.05)


async def test_requests_are_served_through_an_outage_and_recorded_after_it(
    tmp_path, mock_provider, mock, monkeypatch
):
    canary = "CANARY-spooled-prompt-5d1e"
    async with running_gateway(spooling(tmp_path, mock_provider)) as (app, c, key):
        outage = Outage(app, monkeypatch)
        auth = {"Authorization": f"Bearer {key}"}
        plain = await c.post("/v1/chat/completions", json=chat(canary), headers=auth)
        streamed = await c.post(
            "/v1/chat/completions", json=chat(canary, stream=True), headers=auth
        )
        assert plain.status_code == streamed.status_code == 200
        assert mock.stats()["total"] == 2
        assert records(app) == []  # nothing reached the store yet

        [spool_file] = (tmp_path / "spool").iterdir()
        assert stat.S_IMODE(spool_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
        data = spool_file.read_bytes()
        assert data and canary.encode() not in data and key.encode() not in data
        scraped = samples((await c.get("/metrics")).text)
        assert value(scraped, "signalvault_audit_spool_bytes") == len(data)

        outage.end()
        await wait_replayed(app)
        stored = records(app)
        assert spool_file.stat().st_size == 0
    ids = {plain.headers["x-signalvault-request-id"], streamed.headers["x-signalvault-request-id"]}
    assert {r["id"] for r in stored} == ids
    assert all(r["outcome"] == "ok" and r["completed_at"] for r in stored)  # completions replayed
    prompt, response = app_trail_decrypt(stored, app)
    assert canary.encode() in prompt and b"You said" in response


def app_trail_decrypt(stored, app):
    # The app is shut down; its trail still decrypts with the key material it holds.
    from signalvault.control.services import open_services

    services = open_services(app.settings)
    try:
        return services.trail.decrypt(stored[0])
    finally:
        services.store.close()


async def test_a_tool_loop_is_spooled_through_an_outage_with_its_events(
    tmp_path, mock_provider, mock, monkeypatch
):
    """Tool calls and results held in their records, and their call-id rows, go through the
    spool too (a statement the spool cannot carry would refuse the request with 503)."""
    from sqlalchemy import func, select

    from signalvault.store.schema import tool_call_links

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    ask = 'weather? [[mock:tool=get_weather {"city": "Oslo"}]]'
    async with running_gateway(spooling(tmp_path, mock_provider)) as (app, c, key):
        outage = Outage(app, monkeypatch)
        auth = {"Authorization": f"Bearer {key}"}
        first = await c.post("/v1/chat/completions", json=chat(ask, tools=tools), headers=auth)
        assert first.status_code == 200, first.text
        message = first.json()["choices"][0]["message"]
        call_id = message["tool_calls"][0]["id"]
        result = {"role": "tool", "tool_call_id": call_id, "content": "rain"}
        body = chat(ask, tools=tools)
        body["messages"] += [message, result]
        second = await c.post("/v1/chat/completions", json=body, headers=auth)
        assert second.status_code == 200, second.text
        assert records(app) == []
        outage.end()
        await wait_replayed(app)
        stored = records(app)
        with app.services.store.engine.connect() as conn:
            links = conn.execute(select(func.count()).select_from(tool_call_links)).scalar()
    kinds = sorted(r["kind"] for r in stored)
    assert kinds == ["interaction", "interaction", "tool_call", "tool_result"]
    assert {r["call_id"] for r in stored if "event_index" in r} == {call_id}
    assert links == 1  # the call's; its result is found in the run's records


async def test_a_full_spool_refuses_with_503_and_forwards_nothing(
    tmp_path, mock_provider, mock, monkeypatch
):
    settings = spooling(tmp_path, mock_provider, spool_max_bytes=64)
    async with running_gateway(settings) as (app, c, key):
        Outage(app, monkeypatch)
        response = await c.post(
            "/v1/chat/completions", json=chat("hello"), headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "audit_store_unavailable"
        assert mock.stats()["total"] == 0


async def test_a_spool_left_by_a_stopped_process_is_replayed_at_the_next_start(
    tmp_path, mock_provider, mock, monkeypatch
):
    settings = spooling(tmp_path, mock_provider)
    async with running_gateway(settings) as (app, c, key):
        Outage(app, monkeypatch)  # still down at shutdown: the spool stays on disk
        response = await c.post(
            "/v1/chat/completions", json=chat("hello"), headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200
    [left] = (tmp_path / "spool").iterdir()
    assert left.stat().st_size > 0

    app = create_app(settings)
    await app.startup()
    try:
        [record] = records(app)
        assert record["id"] == response.headers["x-signalvault-request-id"]
        assert record["outcome"] == "ok"
        assert not left.exists()
    finally:
        await app.shutdown()
    assert list((tmp_path / "spool").iterdir()) == []  # an empty spool is removed at shutdown


async def test_replay_skips_inserts_already_in_the_store(tmp_path, gateway):
    store = gateway.services.store
    row = {**records_row(), "id": "0193a5b0-0000-7000-8000-000000000001"}
    ops = [WriteOp(INSERT_RECORD, row)]
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.open()
    await spool.append_durable(ops)
    await store.write_ahead(ops)  # committed, but the spool does not know (a crash mid-replay)
    await spool.replay(store)  # no duplicate-key failure
    assert not spool.is_active
    assert [r["id"] for r in records(gateway)] == [row["id"]]
    spool.close()


def records_row() -> dict:
    from signalvault.trail.audit import Interaction

    return Interaction(api="chat", outcome="ok").metadata()


async def test_a_torn_last_entry_is_ignored(tmp_path, gateway):
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.open()
    first = {**records_row(), "id": "0193a5b0-0000-7000-8000-000000000002"}
    second = {**records_row(), "id": "0193a5b0-0000-7000-8000-000000000003"}
    spool.append([WriteOp(INSERT_RECORD, first)])
    spool.append([WriteOp(INSERT_RECORD, second)])
    path: Path = spool.path
    spool.close()
    path.write_bytes(path.read_bytes()[:-10])  # the second append was cut by a crash
    [(_, ops)] = _read(path, 0, 10)
    assert ops[0].params == first
    assert await replay_file(gateway.services.store, path) == 1
    assert [r["id"] for r in records(gateway)] == [first["id"]]

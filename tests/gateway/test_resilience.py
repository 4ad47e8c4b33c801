"""Provider calls under failure, in-process: retries, Retry-After, fallbacks, timeouts, circuit
breakers and streams, each judged by what the caller got, the audit record's `attempts` and the
mock providers' own counters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import orjson
import pytest

from signalvault.config import ProviderSettings, RouteSettings, Secret, Settings, StoreSettings
from signalvault.mock_provider import MockOptions, MockProvider
from signalvault.server import BackgroundServer
from tests.conftest import PROVIDER_KEY, records, running_gateway

pytestmark = pytest.mark.anyio


class Mock:
    """A mock provider on its own loopback port."""

    def __init__(self) -> None:
        self.provider = MockProvider()
        self.server = BackgroundServer(self.provider).start()
        self.url = f"http://127.0.0.1:{self.server.port}/v1"

    def reset(self, options: MockOptions | None = None) -> None:
        self.provider.options = options or MockOptions()
        self.provider.reset()

    @property
    def calls(self) -> int:
        return self.provider.stats()["total"]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Mock, Mock]]:
    primary, backup = Mock(), Mock()
    yield primary, backup
    primary.server.stop()
    backup.server.stop()


@pytest.fixture
def mocks(servers) -> tuple[Mock, Mock]:
    for mock in servers:
        mock.reset()
    return servers


FAST = {
    "backoff_base_seconds": 0.01,
    "backoff_max_seconds": 0.02,
    "first_byte_timeout_seconds": 5.0,
    "idle_timeout_seconds": 5.0,
}


def configure(tmp_path, primary: str, backup: str | None = None, **overrides) -> Settings:
    """`primary` (with `overrides`) and optionally `backup` serving gpt-*, in that order."""

    def provider(name: str, url: str, kind: str = "openai", **extra) -> ProviderSettings:
        models = ("claude-*",) if kind == "anthropic" else ("gpt-*",)
        return ProviderSettings(
            name=name,
            kind=kind,
            base_url=url,
            models=models,
            api_key=Secret(PROVIDER_KEY),
            **{**FAST, **extra},
        )

    providers = [provider("primary", primary, **overrides)]
    targets = ["primary"]
    if backup is not None:
        providers.append(provider("backup", backup))
        targets.append("backup")
    providers.append(provider("claude", primary, kind="anthropic", **overrides))
    return Settings(
        store=StoreSettings(data_dir=tmp_path / "data", sqlite_synchronous="normal"),
        providers=tuple(providers),
        routes=(RouteSettings(model="gpt-*", targets=tuple(targets)),),
    )


def chat(text: str, **extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post_asgi(app, path: str, payload: dict, key: str) -> list[dict]:
    """Drive the gateway's ASGI callable directly, for answers an HTTP client cannot take in
    process: a stream cut short ends without its final message (the server then drops the
    connection). The caller stays connected throughout."""
    sent: list[dict] = []
    body = orjson.dumps(payload)
    delivered = False

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # never disconnects

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *auth_raw(key)],
    }
    await app(scope, receive, send)
    return sent


async def settled(app) -> list[dict]:
    """Every record once queued completions are committed. conftest's `records` can return
    while the commit thread has been handed a batch but not yet started it (a race in
    GroupCommitWriter.flush), so wait for the gateway's completions to land."""
    for _ in range(200):
        rows = records(app)
        if all(row["outcome"] != "unknown" for row in rows):
            break
        await asyncio.sleep(0.01)
    return rows


def auth_raw(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {key}".encode())]


def attempts(record: dict) -> list[dict]:
    return orjson.loads(record["attempts"]) if record["attempts"] else []


async def test_thirty_percent_5xx_on_the_primary_loses_almost_nothing(tmp_path, mocks):
    """1000 requests while a third of the primary's answers are 5xx: retries and the fallback
    carry at least 99.9% of them to a 200."""
    primary, backup = mocks
    primary.reset(MockOptions(fail_rate=0.3, fail_codes=(500, 502, 503), seed=1234))
    gate = asyncio.Semaphore(32)

    async def one(client, key, n):
        async with gate:
            response = await client.post(
                "/v1/chat/completions", json=chat(f"request {n}"), headers=auth(key)
            )
            return response.status_code

    # A breaker deciding on few calls could open by chance at 30% (a run of bad luck in the first
    # 20 calls reaches 50% about once in twenty); it is tested on its own below.
    settings = configure(tmp_path, primary.url, backup.url, breaker_min_requests=200)
    async with running_gateway(settings) as (app, c, key):
        statuses = await asyncio.gather(*(one(c, key, n) for n in range(1000)))
        rows = await settled(app)
    assert statuses.count(200) >= 999
    assert len(rows) == 1000
    assert sum(row["outcome"] == "ok" for row in rows) >= 999
    failed_first = [row for row in rows if attempts(row)[0].get("status") != 200]
    # About 30% of first attempts fail; each such record names every attempt it took.
    assert 200 < len(failed_first) < 400
    for row in failed_first:
        notes = attempts(row)
        assert notes[0]["provider"] == "primary" and notes[0]["status"] >= 500
        last = notes[-1]
        if row["outcome"] == "ok":
            assert last["status"] == 200 and row["provider"] == last["provider"]
        assert all(note["retry"] or note["fallback"] for note in notes[1:])
    assert primary.provider.stats()["by_status"]["200"] + backup.calls >= 999
    # Both paths were taken: retries on the primary, and the backup when those ran out.
    assert any(any(n["retry"] for n in attempts(row)) for row in failed_first)
    assert backup.calls > 0
    assert app.upstream.breaker_states()["primary"] == "closed"


async def test_a_hung_provider_times_out_with_504_in_each_native_shape(tmp_path, mocks):
    primary, _ = mocks
    settings = configure(tmp_path, primary.url, first_byte_timeout_seconds=0.3, max_retries=1)
    async with running_gateway(settings) as (app, client, key):
        started = time.monotonic()
        openai_style = await client.post(
            "/v1/chat/completions", json=chat("wait [[mock:hang]]"), headers=auth(key)
        )
        anthropic_style = await client.post(
            "/v1/messages",
            json={
                "model": "claude-haiku-4-5",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "wait [[mock:hang]]"}],
            },
            headers={"x-api-key": key},
        )
        elapsed = time.monotonic() - started
        rows = await settled(app)
    assert openai_style.status_code == anthropic_style.status_code == 504
    assert openai_style.json()["error"]["code"] == "provider_timeout"
    assert anthropic_style.json()["type"] == "error"
    assert anthropic_style.json()["error"]["type"] == "api_error"  # Anthropic's type for 5xx
    # Two requests, two attempts each, 0.3 s apiece (plus tiny backoffs): far below 10 s.
    assert 1.2 <= elapsed < 10
    for row in rows:
        assert row["outcome"] == "provider_error" and row["status_code"] == 504
        notes = attempts(row)
        assert [n["error"] for n in notes] == ["first_byte_timeout", "first_byte_timeout"]
        assert [n["retry"] for n in notes] == [False, True]
        assert all(250 <= n["ms"] < 3000 for n in notes)
    assert primary.calls == 4


async def test_retry_after_is_waited_for_before_the_retry(tmp_path, mocks):
    primary, _ = mocks
    async with running_gateway(configure(tmp_path, primary.url)) as (app, client, key):
        text = "[[mock:fail=429]] [[mock:fail_first=1]] [[mock:retry_after=1]] hello"
        response = await client.post("/v1/chat/completions", json=chat(text), headers=auth(key))
        [row] = await settled(app)
    assert response.status_code == 200
    first, second = attempts(row)
    assert (first["status"], second["status"]) == (429, 200)
    assert second["retry"] and not second["fallback"]
    assert second["at_ms"] - (first["at_ms"] + first["ms"]) >= 990
    assert primary.calls == 2


async def test_retry_after_beyond_the_budget_passes_the_429_through(tmp_path, mocks):
    primary, _ = mocks
    settings = configure(tmp_path, primary.url, retry_budget_seconds=0.5)
    async with running_gateway(settings) as (app, client, key):
        text = "[[mock:fail=429]] [[mock:retry_after=1]] hello"
        response = await client.post("/v1/chat/completions", json=chat(text), headers=auth(key))
        [row] = await settled(app)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"  # the provider's own body
    assert row["outcome"] == "provider_error" and row["error_code"] == "provider_429"
    assert [n["status"] for n in attempts(row)] == [429]
    assert primary.calls == 1


async def test_a_long_retry_after_moves_on_to_the_fallback(tmp_path, mocks):
    primary, backup = mocks
    primary.reset(MockOptions(fail_rate=1.0, fail_codes=(429,), retry_after_s=60))
    settings = configure(tmp_path, primary.url, backup.url, retry_after_max_seconds=5)
    async with running_gateway(settings) as (app, client, key):
        text = "hello"
        started = time.monotonic()
        response = await client.post("/v1/chat/completions", json=chat(text), headers=auth(key))
        elapsed = time.monotonic() - started
        [row] = await settled(app)
    assert response.status_code == 200 and elapsed < 5
    notes = attempts(row)
    assert [(n["provider"], n["status"]) for n in notes] == [("primary", 429), ("backup", 200)]
    assert notes[1]["fallback"] and not notes[1]["retry"]
    assert row["provider"] == "backup" and row["model_used"] == "gpt-4o-mini"


async def test_a_client_error_is_neither_retried_nor_sent_to_the_fallback(tmp_path, mocks):
    primary, backup = mocks
    async with running_gateway(configure(tmp_path, primary.url, backup.url)) as (app, c, key):
        response = await c.post(
            "/v1/chat/completions", json=chat("[[mock:fail=400]]"), headers=auth(key)
        )
        [row] = await settled(app)
    assert response.status_code == 400
    assert [n["status"] for n in attempts(row)] == [400]
    assert (primary.calls, backup.calls) == (1, 0)


async def test_an_unreachable_provider_is_retried_then_the_fallback_answers(tmp_path, mocks):
    _, backup = mocks
    closed = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    async with running_gateway(configure(tmp_path, closed, backup.url)) as (app, client, key):
        response = await client.post("/v1/chat/completions", json=chat("hello"), headers=auth(key))
        [row] = await settled(app)
    assert response.status_code == 200
    notes = attempts(row)
    assert [n.get("error") or n["status"] for n in notes] == [
        "connect_error",
        "connect_error",
        "connect_error",
        200,
    ]
    assert row["provider"] == "backup"


async def test_when_every_target_fails_the_last_failure_is_answered(tmp_path, mocks):
    primary, _ = mocks
    closed = "http://127.0.0.1:9/v1"
    settings = configure(tmp_path, primary.url, closed, max_retries=0)
    async with running_gateway(settings) as (app, client, key):
        response = await client.post(
            "/v1/chat/completions", json=chat("[[mock:fail=503]]"), headers=auth(key)
        )
        [row] = await settled(app)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_error"
    assert attempts(row)[0]["status"] == 503
    assert attempts(row)[-1]["error"] == "connect_error"


async def test_the_breaker_opens_sheds_to_the_fallback_and_recovers(tmp_path, mocks):
    primary, backup = mocks
    primary.reset(MockOptions(fail_rate=1.0, fail_codes=(503,)))
    settings = configure(
        tmp_path,
        primary.url,
        backup.url,
        max_retries=0,
        breaker_min_requests=4,
        breaker_failure_ratio=0.5,
        breaker_cooldown_seconds=0.4,
    )
    async with running_gateway(settings) as (app, client, key):

        async def ask() -> int:
            r = await client.post("/v1/chat/completions", json=chat("hi"), headers=auth(key))
            return r.status_code

        assert [await ask() for _ in range(4)] == [200] * 4
        assert primary.calls == 4
        states = app.upstream.breaker_states()
        assert states["primary"] == states["primary:gpt-4o-mini"] == "open"
        assert [await ask() for _ in range(3)] == [200] * 3
        assert primary.calls == 4  # shed: the open provider was not called
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["breakers"]["primary"] == "open"

        primary.reset()  # the provider recovers
        await asyncio.sleep(0.45)
        assert app.upstream.breaker_states()["primary"] == "half_open"
        assert await ask() == 200
        assert primary.calls == 1
        assert app.upstream.breaker_states()["primary"] == "closed"
        rows = await settled(app)
    shed = attempts(rows[5])
    assert shed[0] == {
        "provider": "primary",
        "model": "gpt-4o-mini",
        "at_ms": shed[0]["at_ms"],
        "retry": False,
        "fallback": False,
        "skipped": "breaker_open",
        "breaker": "primary",
    }
    assert shed[1]["provider"] == "backup" and shed[1]["status"] == 200
    probe = attempts(rows[-1])
    assert [(n["provider"], n["status"]) for n in probe] == [("primary", 200)]


async def test_every_breaker_open_answers_503_with_the_cooldown_left(tmp_path, mocks):
    primary, _ = mocks
    primary.reset(MockOptions(fail_rate=1.0, fail_codes=(500,)))
    settings = configure(
        tmp_path, primary.url, max_retries=0, breaker_min_requests=2, breaker_cooldown_seconds=30
    )
    settings = replace(settings, providers=settings.providers[:1])
    async with running_gateway(settings) as (app, client, key):
        for _ in range(2):
            r = await client.post("/v1/chat/completions", json=chat("hi"), headers=auth(key))
            assert r.status_code == 500
        r = await client.post("/v1/chat/completions", json=chat("hi"), headers=auth(key))
        ready = await client.get("/readyz")
        [*_, row] = await settled(app)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "provider_unavailable"
    assert 28 <= int(r.headers["retry-after"]) <= 30
    assert primary.calls == 2
    assert row["outcome"] == "provider_error" and attempts(row)[0]["skipped"] == "breaker_open"
    assert ready.status_code == 503
    assert ready.json()["providers"] == "every circuit breaker open"


async def test_a_stream_cut_after_its_head_is_not_retried(tmp_path, mocks):
    primary, backup = mocks
    primary.reset(MockOptions(cut_rate=1.0))
    async with running_gateway(configure(tmp_path, primary.url, backup.url)) as (app, _, key):
        sent = await post_asgi(app, "/v1/chat/completions", chat("hi", stream=True), key)
        [row] = await settled(app)
    assert sent[0]["status"] == 200
    raw = b"".join(message.get("body", b"") for message in sent[1:])
    assert b"data: " in raw and b"[DONE]" not in raw
    *_, told = raw.rstrip(b"\n").rsplit(b"\n\n", 1)  # the caller is told in its own shape
    assert orjson.loads(told.removeprefix(b"data: "))["error"]["code"] == "stream_cut"
    assert row["outcome"] == "stream_cut"
    assert [(n["provider"], n["status"]) for n in attempts(row)] == [("primary", 200)]
    assert (primary.calls, backup.calls) == (1, 0)


async def test_a_stalled_stream_is_cut_after_the_idle_timeout(tmp_path, mocks):
    primary, backup = mocks
    settings = configure(tmp_path, primary.url, backup.url, idle_timeout_seconds=0.3)
    async with running_gateway(settings) as (app, _, key):
        body = chat("[[mock:stall_after=2]] stream me", stream=True)
        started = time.monotonic()
        sent = await post_asgi(app, "/v1/chat/completions", body, key)
        elapsed = time.monotonic() - started
        [row] = await settled(app)
    raw = b"".join(message.get("body", b"") for message in sent[1:])
    # Two events came before the stall; output guardrails may still hold back the second.
    assert sent[0]["status"] == 200 and 1 <= raw.count(b'"chat.completion.chunk"') <= 2
    assert raw.endswith(b'"code":"stream_cut"}}\n\n')  # then the caller is told
    assert 0.25 <= elapsed < 5
    assert row["outcome"] == "stream_cut" and row["error_code"] == "stream_cut"
    assert len(attempts(row)) == 1 and backup.calls == 0


async def test_attempts_and_logs_hold_no_key_and_no_content(tmp_path, mocks, caplog):
    primary, backup = mocks
    caplog.set_level(logging.DEBUG)
    secret_text = "my-private-question-7731"
    async with running_gateway(configure(tmp_path, primary.url, backup.url)) as (app, c, key):
        prompt = f"{secret_text} [[mock:fail=503]]"
        await c.post("/v1/chat/completions", json=chat(prompt), headers=auth(key))
        [row] = await settled(app)
    assert len(attempts(row)) == 6  # three tries on each target: both fail
    logged = "\n".join(str(record.__dict__) for record in caplog.records)  # extras included
    assert "'provider': 'backup'" in logged
    for text in (row["attempts"], logged):
        assert PROVIDER_KEY not in text and key not in text
        assert secret_text not in text and "mock:fail" not in text
    assert "provider attempt failed" in caplog.text

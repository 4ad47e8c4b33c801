"""A hostile (or broken) provider: each misbehaviour the mock can act out (mock_provider/faults.py)
becomes the documented answer (502 `provider_error`, 504 `provider_timeout`, or a stream cut),
recorded with the matching outcome, never a 500, never a hang past the configured timeouts, and
never content the output guardrails did not read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace

import anthropic
import httpx
import httpx2  # the anthropic SDK's own fork of httpx
import openai
import orjson
import pytest

from signalvault.app import GatewayApp
from signalvault.config import (
    GuardrailSettings,
    ProviderSettings,
    Secret,
    Settings,
    StoreSettings,
)
from signalvault.mock_provider import MockProvider
from signalvault.mock_provider.wire_faults import WireFaultServer
from signalvault.server import BackgroundServer
from tests.conftest import PROVIDER_KEY, running_gateway
from tests.gateway.test_resilience import post_asgi

pytestmark = pytest.mark.anyio

# Small per-provider timeouts: every fault ends within a few seconds, and a hang fails the test
# (HANG_GUARD) instead of holding the suite. The breaker never opens: each test starts afresh.
TIMEOUTS = {
    "timeout_seconds": 1.5,
    "connect_timeout_seconds": 1.0,
    "first_byte_timeout_seconds": 1.0,
    "idle_timeout_seconds": 0.5,
    "max_retries": 1,
    "backoff_base_seconds": 0.01,
    "backoff_max_seconds": 0.02,
    "breaker_min_requests": 1_000_000,
}
HANG_GUARD = 30.0
WIRE = "wire-"  # models with this prefix go to the WireFaultServer


@dataclass
class Providers:
    asgi: MockProvider  # the mock under uvicorn: faults an ASGI app can commit
    wire: WireFaultServer  # the mock behind a hand-written server: lying lengths, resets
    asgi_url: str
    wire_url: str


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def providers() -> Iterator[Providers]:
    asgi = MockProvider()
    server = BackgroundServer(asgi).start()
    wire = WireFaultServer(MockProvider()).start()
    yield Providers(
        asgi, wire, f"http://127.0.0.1:{server.port}/v1", f"http://127.0.0.1:{wire.port}/v1"
    )
    wire.stop()
    server.stop()


def configure(tmp_path, providers: Providers) -> Settings:
    def provider(name: str, kind: str, url: str, models: tuple[str, ...]) -> ProviderSettings:
        return ProviderSettings(
            name=name,
            kind=kind,
            base_url=url,
            models=models,
            api_key=Secret(PROVIDER_KEY),
            **TIMEOUTS,
        )

    return Settings(
        store=StoreSettings(data_dir=tmp_path / "data", sqlite_synchronous="normal"),
        providers=(
            provider("wire-openai", "openai", providers.wire_url, (f"{WIRE}gpt-*",)),
            provider("wire-anthropic", "anthropic", providers.wire_url, (f"{WIRE}claude-*",)),
            provider("openai", "openai", providers.asgi_url, ("gpt-*",)),
            provider("anthropic", "anthropic", providers.asgi_url, ("claude-*",)),
        ),
    )


@pytest.fixture(scope="module")
async def gateway(providers, tmp_path_factory) -> AsyncIterator[tuple[GatewayApp, str]]:
    """One gateway for the module: the faults are per request, the state is per record."""
    settings = configure(tmp_path_factory.mktemp("hostile"), providers)
    async with running_gateway(settings) as (app, _, key):
        yield app, key


@pytest.fixture
def hostile(providers) -> Providers:
    providers.asgi.reset()
    providers.wire.provider.reset()
    providers.wire.bodies.clear()
    return providers


def chat(text: str, model: str = "gpt-4o-mini", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def message(text: str, model: str = "claude-haiku-4-5", **extra) -> dict:
    return {
        "model": model,
        "max_tokens": 32,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


async def ask(gateway, path: str, payload: dict) -> tuple[int, bytes, list[dict], dict]:
    """The answer's status and body bytes, its ASGI messages (a cut stream never ends), and
    its audit record once completed."""
    app, key = gateway
    sent = await asyncio.wait_for(post_asgi(app, path, payload, key), HANG_GUARD)
    body = b"".join(message.get("body", b"") for message in sent[1:])
    record_id = dict(sent[0]["headers"])[b"x-signalvault-request-id"].decode()
    return sent[0]["status"], body, sent, await completed(app, record_id)


async def completed(app: GatewayApp, record_id: str) -> dict:
    assert app.services is not None
    for _ in range(500):
        app.services.store.flush()
        row = app.services.store.get_record(record_id)
        if row is not None and row["outcome"] != "unknown":
            return row
        await asyncio.sleep(0.01)
    raise AssertionError(f"record {record_id} never completed")


def is_finished(sent: list[dict]) -> bool:
    """True when the answer ended cleanly (its last body message said no more follows)."""
    return any(m["type"] == "http.response.body" and not m.get("more_body") for m in sent)


def told_of_the_cut(path: str, body: bytes, sent: list[dict]) -> bool:
    """True when a cut stream ended with an error event in the caller's own shape (its SDK
    raises it), the answer then finished; a cut after half an event leaves the answer broken
    off instead (no event can follow half of one): then True only if it did end mid-event."""
    if not is_finished(sent):
        return not body.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))
    last = body.rstrip(b"\r\n").replace(b"\r\n", b"\n").rsplit(b"\n\n", 1)[-1]
    fields = dict(line.split(b": ", 1) for line in last.split(b"\n"))
    data = orjson.loads(fields[b"data"])
    if path == "/v1/messages":
        return fields.get(b"event") == b"error" and data["error"]["type"] == "api_error"
    if path == "/v1/responses":
        return fields.get(b"event") == b"error" and data["error"]["code"] == "stream_cut"
    return data["error"]["code"] == "stream_cut"


@pytest.fixture
def gateway_logs(caplog) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="signalvault")
    return caplog


def no_gateway_tracebacks(caplog: pytest.LogCaptureFixture) -> bool:
    return not any(
        r.exc_info or "unexpected error" in r.getMessage()
        for r in caplog.records
        if r.name.startswith("signalvault")
    )


JSON_FAULTS = [
    pytest.param("[[mock:malformed]]", 502, "provider_error", id="malformed-json"),
    pytest.param("[[mock:undecodable]]", 502, "provider_error", id="invalid-utf8"),
    pytest.param("[[mock:deep=600]]", 502, "provider_error", id="nested-600-deep"),
    pytest.param(
        "[[mock:content_type=text/html]] [[mock:malformed]]",
        502,
        "provider_error",
        id="html-not-json",
    ),
    pytest.param("[[mock:endless]]", 504, "provider_timeout", id="never-ends"),
]


@pytest.mark.parametrize(("marker", "status", "code"), JSON_FAULTS)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_broken_json_answer_becomes_a_native_5xx_and_is_recorded(
    gateway, hostile, gateway_logs, marker, status, code, path
):
    payload = (chat if path.endswith("completions") else message)(f"hi {marker}")
    answered, body, sent, row = await ask(gateway, path, payload)
    assert (answered, is_finished(sent)) == (status, True)
    error = orjson.loads(body)
    if path == "/v1/messages":
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
    else:
        assert error["error"]["code"] == code
    assert (row["outcome"], row["status_code"], row["error_code"]) == (
        "provider_error",
        status,
        code,
    )
    assert hostile.asgi.stats()["total"] == 2  # tried, and retried once: both recorded
    assert len(orjson.loads(row["attempts"])) == 2
    assert no_gateway_tracebacks(gateway_logs)


async def test_valid_json_labelled_as_html_is_relayed_as_json(gateway, hostile):
    answered, body, sent, row = await ask(
        gateway, "/v1/chat/completions", chat("[[mock:content_type=text/html]]")
    )
    assert answered == 200 and orjson.loads(body)["object"] == "chat.completion"
    assert dict(sent[0]["headers"])[b"content-type"] == b"application/json"
    assert row["outcome"] == "ok"


NOT_UTF8 = b"\xe2\x82("
STREAM_FAULTS = [
    pytest.param("[[mock:malformed]]", id="broken-event"),
    pytest.param("[[mock:undecodable]]", id="invalid-utf8-split-across-writes"),
    pytest.param("[[mock:undecodable]] [[mock:chunk_bytes=3]]", id="invalid-utf8-3-byte-writes"),
    pytest.param("[[mock:deep=600]]", id="event-nested-600-deep"),
    pytest.param("[[mock:cut_after=3]]", id="connection-closed-mid-body"),
    pytest.param("[[mock:cut_after=3]] [[mock:half_event]]", id="connection-closed-mid-event"),
    pytest.param("[[mock:endless]]", id="never-ends"),
]


def streamed(path: str, text: str, model_prefix: str = "") -> dict:
    if path == "/v1/messages":
        return message(text, model=f"{model_prefix}claude-haiku-4-5", stream=True)
    if path == "/v1/responses":
        return {"model": f"{model_prefix}gpt-4o-mini", "input": text, "stream": True}
    return chat(text, model=f"{model_prefix}gpt-4o-mini", stream=True)


@pytest.mark.parametrize("marker", STREAM_FAULTS)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses"])
async def test_a_broken_stream_is_cut_and_recorded_as_stream_cut(
    gateway, hostile, gateway_logs, marker, path
):
    answered, body, sent, row = await ask(gateway, path, streamed(path, f"hello {marker}"))
    assert answered == 200  # the head went out before the stream broke
    assert told_of_the_cut(path, body, sent)
    assert is_finished(sent)  # the output guard relays whole events only: always told
    assert "provider stream cut" in [r.getMessage() for r in gateway_logs.records]
    assert NOT_UTF8 not in body and b"x_deep" not in body  # nothing unreadable passed
    assert (row["outcome"], row["error_code"]) == ("stream_cut", "stream_cut")
    assert hostile.asgi.stats()["total"] == 1  # a stream that started is never retried
    assert no_gateway_tracebacks(gateway_logs)


@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses"])
async def test_a_cut_is_told_unless_half_an_event_went_out(providers, tmp_path, path, half):
    """Without output rules the provider's writes are relayed as they come: a cut after half
    an event leaves the answer broken off, as no event can follow half of one."""
    only_input = ({"name": "pii", "detector": "pii", "action": "redact", "direction": "input"},)
    settings = replace(
        configure(tmp_path, providers), guardrails=GuardrailSettings(rules=only_input)
    )
    marker = "[[mock:cut_after=3]]" + (" [[mock:half_event]]" if half else "")
    async with running_gateway(settings) as (app, _, key):
        answered, body, sent, row = await ask((app, key), path, streamed(path, f"hi {marker}"))
    assert answered == 200 and told_of_the_cut(path, body, sent)
    assert is_finished(sent) != half
    assert (row["outcome"], row["error_code"]) == ("stream_cut", "stream_cut")


async def test_the_sdks_raise_a_cut_stream_with_the_gateways_words(gateway, hostile):
    """What a caller sees of a cut: the official SDKs raise it as an API error, naming it."""
    app, key = gateway
    said = "The provider's stream broke off before its end"
    marker = "hi [[mock:cut_after=3]]"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as h:
        client = openai.AsyncOpenAI(api_key=key, base_url="http://g/v1", http_client=h)
        with pytest.raises(openai.APIError, match=said):
            async for _ in await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": marker}], stream=True
            ):
                pass
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://g") as h2:
        claude = anthropic.AsyncAnthropic(api_key=key, base_url="http://g", http_client=h2)
        with pytest.raises(anthropic.APIStatusError, match=said):
            async for _ in await claude.messages.create(
                model="claude-haiku-4-5",
                max_tokens=32,
                messages=[{"role": "user", "content": marker}],
                stream=True,
            ):
                pass


async def test_characters_split_across_writes_arrive_whole(gateway, hostile):
    reply = "Grüße, 東京 🎉 ok"
    text = f"[[mock:reply={reply}]] [[mock:chunk_bytes=1]]"
    answered, body, sent, row = await ask(gateway, "/v1/chat/completions", chat(text, stream=True))
    assert answered == 200 and is_finished(sent)
    deltas = [
        orjson.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in body.split(b"\n\n")
        if line.startswith(b"data: {")
    ]
    assert "".join(deltas) == reply
    assert row["outcome"] == "ok"


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/v1/chat/completions", chat("[[mock:foreign_error=400]]")),
        ("/v1/chat/completions", chat("[[mock:foreign_error=529]]")),
        ("/v1/messages", message("[[mock:foreign_error=429]] [[mock:retry_after=0]]")),
    ],
)
async def test_an_error_in_the_other_apis_shape_reaches_the_caller_in_its_own(
    gateway, hostile, path, payload
):
    answered, body, _, row = await ask(gateway, path, payload)
    assert answered == row["status_code"] and answered in (400, 429, 529)
    error = orjson.loads(body)
    if path == "/v1/messages":
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
    else:
        assert set(error["error"]) == {"message", "type", "param", "code"}
        assert error["error"]["code"] == f"provider_{answered}"
    assert "mock provider failure" in error["error"]["message"]  # the provider's own words
    assert row["outcome"] == "provider_error" and row["error_code"] == f"provider_{answered}"


async def test_a_content_length_far_smaller_than_the_body_is_a_502(gateway, hostile):
    answered, body, _, row = await ask(
        gateway, "/v1/chat/completions", chat("[[mock:length_lie]]", model=f"{WIRE}gpt-4o-mini")
    )
    assert answered == 502 and orjson.loads(body)["error"]["code"] == "provider_error"
    assert (row["outcome"], row["error_code"]) == ("provider_error", "provider_error")
    again, _, _, next_row = await ask(
        gateway, "/v1/chat/completions", chat("fine now", model=f"{WIRE}gpt-4o-mini")
    )
    assert again == 200  # no byte of the lie leaked into the next answer
    assert next_row["outcome"] == "ok"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_reset_mid_stream_is_a_stream_cut(gateway, hostile, path):
    payload = streamed(path, "stream [[mock:reset_after=3]]", model_prefix=WIRE)
    answered, body, sent, row = await ask(gateway, path, payload)
    assert answered == 200 and told_of_the_cut(path, body, sent)
    assert row["outcome"] == "stream_cut"
    assert hostile.wire.provider.stats()["total"] == 1


async def test_a_key_sent_twice_reaches_the_provider_once_as_screened(gateway, hostile):
    """Guardrails and provider must read the same request: a JSON parser that keeps the first
    of two equal keys would otherwise see a secret the gateway never screened."""
    app, key = gateway
    secret = b"AKIAIOSFODNN7EXAMPLE"
    body = (
        b'{"model":"wire-gpt-4o-mini","messages":[{"role":"user","content":"' + secret + b'"}],'
        b'"messages":[{"role":"user","content":"hello"}]}'
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://g") as client:
        response = await client.post(
            "/v1/chat/completions",
            content=body,
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        )
    assert response.status_code == 200
    [forwarded] = hostile.wire.bodies
    assert secret not in forwarded and forwarded.count(b'"messages"') == 1

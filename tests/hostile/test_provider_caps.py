"""A provider answer too large to hold: a body over the provider's `max_response_bytes` is the
documented 502 (read no further than the cap, whether its length was announced or not), an event
over `max_event_bytes` cuts the stream (`stream_cut`), and so does a stream past
`max_stream_bytes` in all; each recorded, none relayed whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import orjson
import pytest

from signalvault.app import GatewayApp
from tests.conftest import running_gateway
from tests.hostile import test_hostile_providers as hostile_providers
from tests.hostile.test_hostile_providers import (
    ask,
    chat,
    configure,
    is_finished,
    message,
    no_gateway_tracebacks,
    streamed,
    told_of_the_cut,
)

# The hostile mock providers and their per-test reset, shared with test_hostile_providers.
anyio_backend = hostile_providers.anyio_backend
providers = hostile_providers.providers
hostile = hostile_providers.hostile
pytestmark = pytest.mark.anyio

MAX_BODY = 64 * 1024
MAX_EVENT = 16 * 1024
# Above the whole one-write stream of a 50 kB event below (so the event cap is what cuts it),
# below a stream of eight events each under MAX_EVENT.
MAX_STREAM = 64 * 1024


@pytest.fixture(scope="module")
async def gateway(providers, tmp_path_factory) -> AsyncIterator[tuple[GatewayApp, str]]:
    settings = configure(tmp_path_factory.mktemp("caps"), providers)
    capped = tuple(
        replace(
            p, max_response_bytes=MAX_BODY, max_event_bytes=MAX_EVENT, max_stream_bytes=MAX_STREAM
        )
        for p in settings.providers
    )
    async with running_gateway(replace(settings, providers=capped)) as (app, _, key):
        yield app, key


@pytest.fixture
def gateway_logs(caplog) -> pytest.LogCaptureFixture:
    caplog.set_level("INFO", logger="signalvault")
    return caplog


BODIES = [
    pytest.param("[[mock:huge=200000]]", id="announced-length-over-cap"),
    # Half of the body, then padding forever, no Content-Length: cut once the cap is passed,
    # long before the provider's timeout would end it as a 504.
    pytest.param("[[mock:huge=200000]] [[mock:endless]]", id="unannounced-length-over-cap"),
]


@pytest.mark.parametrize("marker", BODIES)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_body_over_the_cap_is_a_502_recorded(gateway, hostile, gateway_logs, marker, path):
    payload = (chat if path.endswith("completions") else message)(f"hi {marker}")
    answered, body, sent, row = await ask(gateway, path, payload)
    assert (answered, is_finished(sent)) == (502, True)
    assert b"xxxx" not in body
    error = orjson.loads(body)
    if path == "/v1/messages":
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
    else:
        assert error["error"]["code"] == "provider_error"
    assert (row["outcome"], row["status_code"]) == ("provider_error", 502)
    attempts = orjson.loads(row["attempts"])
    assert [a.get("error") for a in attempts] == ["answer_too_large"] * 2  # retried once
    assert no_gateway_tracebacks(gateway_logs)


async def test_a_body_under_the_cap_is_relayed(gateway, hostile):
    answered, body, _, row = await ask(gateway, "/v1/chat/completions", chat("[[mock:huge=30000]]"))
    assert answered == 200 and len(body) > 30000
    assert row["outcome"] == "ok"


@pytest.mark.parametrize(
    "marker",
    [
        pytest.param("[[mock:huge=50000]]", id="one-write"),
        pytest.param("[[mock:huge=50000]] [[mock:chunk_bytes=1000]]", id="1000-byte-writes"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses"])
async def test_an_event_over_the_cap_cuts_the_stream(gateway, hostile, gateway_logs, marker, path):
    answered, body, sent, row = await ask(gateway, path, streamed(path, f"hello {marker}"))
    assert answered == 200 and is_finished(sent) and told_of_the_cut(path, body, sent)
    assert b"x_pad" not in body  # the event never reached the caller
    assert (row["outcome"], row["error_code"]) == ("stream_cut", "stream_cut")
    assert hostile.asgi.stats()["total"] == 1
    assert no_gateway_tracebacks(gateway_logs)


async def test_a_stream_with_events_under_the_cap_is_relayed(gateway, hostile):
    path = "/v1/chat/completions"
    answered, body, sent, row = await ask(gateway, path, streamed(path, "[[mock:huge=8000]]"))
    assert answered == 200 and is_finished(sent) and b"x_pad" in body
    assert row["outcome"] == "ok"


# Not /v1/responses: its last event repeats the whole output, which the event cap cuts anyway.
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_stream_past_its_total_cap_is_cut(gateway, hostile, gateway_logs, path):
    """Every event under MAX_EVENT (the mock echoes the prompt in eight pieces), the whole over
    MAX_STREAM: cut before the chunk that crosses it, so the gateway never holds more."""
    words = " ".join(f"w{i:05d}" for i in range(13_000))  # 78 kB, echoed in ~10 kB events
    prompt = f"[[mock:chunk_bytes=4000]] {words}"  # in 4 kB writes, as a model streams
    answered, body, sent, row = await ask(gateway, path, streamed(path, prompt))
    assert answered == 200 and is_finished(sent) and told_of_the_cut(path, body, sent)
    assert len(body) <= MAX_STREAM
    assert b"w12990" not in body  # nothing past the cut (the output guard may hold back more)
    assert (row["outcome"], row["error_code"]) == ("stream_cut", "stream_cut")
    assert no_gateway_tracebacks(gateway_logs)

"""The mock provider: wire formats, fault injection, counters and the request log."""

from __future__ import annotations

import base64
import contextlib
import socket
import struct
import threading
import time

import anthropic
import httpx
import openai
import orjson
import pytest
import uvicorn

from signalvault.errors import ConfigError
from signalvault.mock_provider import MockOptions, MockProvider, run, server_config

OPENAI_AUTH = {"authorization": "Bearer sk-provider-key"}
ANTHROPIC_AUTH = {"x-api-key": "sk-ant-provider-key", "anthropic-version": "2023-06-01"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
MESSAGES = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hello there"}],
}


@pytest.fixture
def anyio_backend():
    return "asyncio"


def client_for(provider: MockProvider) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=provider), base_url="http://mock")


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) for each SSE event in a response body."""
    events = []
    for block in filter(None, text.split("\n\n")):
        lines = block.split("\n")
        name = next((line[7:] for line in lines if line.startswith("event: ")), None)
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        events.append((name, data))
    return events


async def call_asgi(provider, method, path, payload=None, headers=OPENAI_AUTH):
    """Drive the ASGI app directly; returns the messages it sent and whether it waited for EOF."""
    sent, waited = [], []
    body = orjson.dumps(payload) if payload is not None else b""
    request_done = False

    async def receive():
        nonlocal request_done
        if not request_done:
            request_done = True
            return {"type": "http.request", "body": body, "more_body": False}
        waited.append(True)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    await provider(scope, receive, send)
    return sent, bool(waited)


@pytest.mark.anyio
async def test_chat_completion_echoes_last_user_message():
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "hello there"},
    ]
    async with client_for(MockProvider()) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4.1-mini", "messages": messages},
            headers=OPENAI_AUTH,
        )
    assert response.status_code == 200
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "gpt-4.1-mini"
    assert completion["choices"][0]["message"]["content"] == "You said: hello there"
    assert completion["choices"][0]["finish_reason"] == "stop"
    prompt_tokens = len(response.request.content) // 4
    assert completion["usage"]["prompt_tokens"] == prompt_tokens
    assert completion["usage"]["completion_tokens"] == 4
    assert completion["usage"]["total_tokens"] == prompt_tokens + 4


@pytest.mark.anyio
async def test_content_block_lists_are_echoed_as_their_text_parts():
    chat_content = [
        {"type": "text", "text": "look at"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "this"},
    ]
    anthropic_content = [{"type": "text", "text": "block one"}, {"type": "text", "text": "two"}]
    async with client_for(MockProvider()) as client:
        chat = await client.post(
            "/v1/chat/completions",
            json={**CHAT, "messages": [{"role": "user", "content": chat_content}]},
            headers=OPENAI_AUTH,
        )
        message = await client.post(
            "/v1/messages",
            json={**MESSAGES, "messages": [{"role": "user", "content": anthropic_content}]},
            headers=ANTHROPIC_AUTH,
        )
    assert chat.json()["choices"][0]["message"]["content"] == "You said: look at this"
    assert message.json()["content"] == [{"type": "text", "text": "You said: block one two"}]


@pytest.mark.anyio
async def test_reply_marker_makes_the_provider_answer_the_chosen_text():
    prompt = "please [[mock:reply=AKIA-CANARY and more]] thanks"
    async with client_for(MockProvider()) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={**CHAT, "messages": [{"role": "user", "content": prompt}]},
            headers=OPENAI_AUTH,
        )
    assert response.json()["choices"][0]["message"]["content"] == "AKIA-CANARY and more"
    assert response.json()["usage"]["completion_tokens"] == 3


@pytest.mark.anyio
async def test_chat_stream_splits_the_reply_and_ends_with_done():
    async with client_for(MockProvider(MockOptions(chunks=4))) as client:
        response = await client.post(
            "/v1/chat/completions", json={**CHAT, "stream": True}, headers=OPENAI_AUTH
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == (None, "[DONE]")
    chunks = [orjson.loads(data) for _, data in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    pieces = [chunk["choices"][0]["delta"].get("content") for chunk in chunks[1:-1]]
    assert len(pieces) == 4
    assert "".join(pieces) == "You said: hello there"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_chat_stream_sends_a_usage_chunk_only_when_asked():
    payload = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with client_for(MockProvider()) as client:
        response = await client.post("/v1/chat/completions", json=payload, headers=OPENAI_AUTH)
    chunks = [orjson.loads(data) for _, data in sse_events(response.text)[:-1]]
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4


@pytest.mark.anyio
async def test_responses_answer_with_output_text_and_usage():
    payload = {"model": "gpt-4o", "input": [{"role": "user", "content": "summarise this"}]}
    async with client_for(MockProvider()) as client:
        response = await client.post("/v1/responses", json=payload, headers=OPENAI_AUTH)
    body = response.json()
    assert body["object"] == "response"
    assert body["status"] == "completed"
    assert body["model"] == "gpt-4o"
    assert body["output"][0]["content"][0] == {
        "type": "output_text",
        "text": "You said: summarise this",
        "annotations": [],
        "logprobs": [],
    }
    assert body["usage"]["output_tokens"] == 4


@pytest.mark.anyio
async def test_responses_stream_sends_the_full_event_sequence():
    payload = {"model": "gpt-4o", "input": "hi you", "stream": True}
    async with client_for(MockProvider(MockOptions(chunks=3))) as client:
        response = await client.post("/v1/responses", json=payload, headers=OPENAI_AUTH)
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    datas = [orjson.loads(data) for _, data in events]
    assert [d["sequence_number"] for d in datas] == list(range(len(events)))
    assert all(d["type"] == name for d, name in zip(datas, names, strict=True))
    deltas = [d["delta"] for d in datas if d["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "You said: hi you"
    assert datas[-1]["response"]["usage"]["output_tokens"] == 4


@pytest.mark.anyio
async def test_embeddings_come_as_floats_or_matching_base64():
    payload = {"model": "text-embedding-3-small", "input": ["one", "two"], "dimensions": 8}
    async with client_for(MockProvider()) as client:
        floats = await client.post("/v1/embeddings", json=payload, headers=OPENAI_AUTH)
        encoded = await client.post(
            "/v1/embeddings", json={**payload, "encoding_format": "base64"}, headers=OPENAI_AUTH
        )
        single = await client.post(
            "/v1/embeddings", json={**payload, "input": "one"}, headers=OPENAI_AUTH
        )
    vectors = [item["embedding"] for item in floats.json()["data"]]
    assert len(vectors) == 2
    assert len(vectors[0]) == 8
    raw = base64.b64decode(encoded.json()["data"][0]["embedding"])
    assert list(struct.unpack("<8f", raw)) == vectors[0]
    assert len(single.json()["data"]) == 1
    assert single.json()["model"] == "text-embedding-3-small"


@pytest.mark.anyio
async def test_models_list_uses_the_calling_providers_shape():
    async with client_for(MockProvider()) as client:
        openai_models = (await client.get("/v1/models", headers=OPENAI_AUTH)).json()
        claude_models = (await client.get("/v1/models", headers=ANTHROPIC_AUTH)).json()
        one = (await client.get("/v1/models/gpt-4o", headers=OPENAI_AUTH)).json()
    assert openai_models["object"] == "list"
    assert {"id": "gpt-4o-mini", "object": "model"}.items() <= openai_models["data"][0].items()
    assert claude_models["data"][0]["type"] == "model"
    assert claude_models["has_more"] is False
    assert one["id"] == "gpt-4o"


@pytest.mark.anyio
async def test_messages_answer_in_anthropic_shape():
    async with client_for(MockProvider()) as client:
        response = await client.post("/v1/messages", json=MESSAGES, headers=ANTHROPIC_AUTH)
    message = response.json()
    assert message["type"] == "message"
    assert message["model"] == "claude-haiku-4-5"
    assert message["content"] == [{"type": "text", "text": "You said: hello there"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["output_tokens"] == 4


@pytest.mark.anyio
async def test_messages_stream_sends_the_full_event_sequence():
    async with client_for(MockProvider(MockOptions(chunks=2))) as client:
        response = await client.post(
            "/v1/messages", json={**MESSAGES, "stream": True}, headers=ANTHROPIC_AUTH
        )
    events = sse_events(response.text)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    datas = [orjson.loads(data) for _, data in events]
    assert all(d["type"] == name for d, (name, _) in zip(datas, events, strict=True))
    text = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
    assert text == "You said: hello there"
    assert datas[6]["usage"]["output_tokens"] == 4


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "payload", "expected"),
    [
        ("/v1/chat/completions", CHAT, {"error": {"type": "invalid_request_error"}}),
        ("/v1/messages", MESSAGES, {"type": "error", "error": {"type": "authentication_error"}}),
    ],
)
async def test_missing_api_key_is_401_in_the_native_shape(path, payload, expected):
    async with client_for(MockProvider()) as client:
        response = await client.post(path, json=payload)
    assert response.status_code == 401
    body = response.json()
    for key, value in expected.items():
        assert value.items() <= body[key].items() if isinstance(value, dict) else body[key] == value


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "headers", "error_of"),
    [
        ("/v1/chat/completions", OPENAI_AUTH, lambda body: body["error"]),
        ("/v1/messages", ANTHROPIC_AUTH, lambda body: body["error"]),
    ],
)
async def test_bad_json_is_400_in_the_native_shape(path, headers, error_of):
    async with client_for(MockProvider()) as client:
        response = await client.post(path, content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert error_of(response.json())["type"] == "invalid_request_error"
    if path.endswith("/messages"):
        assert response.json()["type"] == "error"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/v1/chat/completions", {"messages": CHAT["messages"]}, "model"),
        ("/v1/chat/completions", {"model": "gpt-4o", "messages": []}, "messages"),
        ("/v1/messages", {**MESSAGES, "max_tokens": None}, "max_tokens"),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": []}, "input"),
        ("/v1/embeddings", {"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
    ],
)
async def test_requests_missing_required_fields_are_400(path, payload, field):
    headers = ANTHROPIC_AUTH if path.endswith("/messages") else OPENAI_AUTH
    async with client_for(MockProvider()) as client:
        response = await client.post(path, json=payload, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(field)


@pytest.mark.anyio
async def test_request_without_user_text_gets_an_empty_echo():
    system_only = {"model": "gpt-4o", "messages": [{"role": "system", "content": "rules"}]}
    async with client_for(MockProvider(MockOptions(latency_ms=0.01))) as client:
        chat = await client.post("/v1/chat/completions", json=system_only, headers=OPENAI_AUTH)
        response = await client.post("/v1/responses", json={"model": "o3"}, headers=OPENAI_AUTH)
    assert chat.json()["choices"][0]["message"]["content"] == "You said: "
    assert response.json()["output"][0]["content"][0]["text"] == "You said: "


@pytest.mark.anyio
async def test_body_sent_in_several_parts_is_reassembled():
    async def parts():
        raw = orjson.dumps(CHAT)
        yield raw[:10]
        yield raw[10:]

    async with client_for(MockProvider()) as client:
        response = await client.post("/v1/chat/completions", content=parts(), headers=OPENAI_AUTH)
    assert response.json()["choices"][0]["message"]["content"] == "You said: hello there"


@pytest.mark.anyio
async def test_control_routes_answer_health_and_check_methods():
    async with client_for(MockProvider()) as client:
        health = await client.get("/health")
        wrong_reset = await client.get("/stats/reset")
        wrong_stats = await client.post("/stats")
    assert health.json() == {"status": "ok"}
    assert wrong_reset.status_code == wrong_stats.status_code == 405


@pytest.mark.anyio
async def test_unknown_path_is_404_and_wrong_method_is_405():
    async with client_for(MockProvider()) as client:
        missing = await client.post("/v1/completions/legacy", json=CHAT, headers=OPENAI_AUTH)
        wrong = await client.get("/v1/chat/completions", headers=OPENAI_AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_url"
    assert wrong.status_code == 405


@pytest.mark.anyio
async def test_paths_match_with_or_without_the_v1_prefix():
    async with client_for(MockProvider()) as client:
        chat = await client.post("/chat/completions", json=CHAT, headers=OPENAI_AUTH)
        messages = await client.post("/messages", json=MESSAGES, headers=ANTHROPIC_AUTH)
    assert chat.status_code == messages.status_code == 200


@pytest.mark.anyio
async def test_injected_failures_use_native_shapes_and_retry_after():
    provider = MockProvider(MockOptions(fail_rate=1.0, fail_codes=(429,), retry_after_s=2))
    async with client_for(provider) as client:
        chat = await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
        message = await client.post("/v1/messages", json=MESSAGES, headers=ANTHROPIC_AUTH)
    assert chat.status_code == message.status_code == 429
    assert chat.headers["retry-after"] == message.headers["retry-after"] == "2"
    assert chat.json()["error"]["code"] == "rate_limit_exceeded"
    assert message.json()["error"]["type"] == "rate_limit_error"
    assert provider.stats()["by_status"] == {"429": 2}


@pytest.mark.anyio
async def test_seeded_faults_are_reproducible():
    async def statuses(provider):
        async with client_for(provider) as client:
            return [
                (
                    await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
                ).status_code
                for _ in range(20)
            ]

    options = MockOptions(fail_rate=0.5, fail_codes=(500, 503), seed=7)
    first, second = await statuses(MockProvider(options)), await statuses(MockProvider(options))
    assert first == second
    assert {200, 500, 503} >= set(first)
    assert len(set(first)) > 1


@pytest.mark.anyio
async def test_stats_count_model_requests_and_reset():
    async with client_for(MockProvider()) as client:
        await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
        await client.post("/v1/messages", json=MESSAGES, headers=ANTHROPIC_AUTH)
        await client.post("/v1/nowhere", json=CHAT, headers=OPENAI_AUTH)
        await client.get("/health")
        stats = (await client.get("/stats")).json()
        assert stats == {
            "total": 3,
            "by_path": {"/v1/chat/completions": 1, "/v1/messages": 1, "/v1/nowhere": 1},
            "by_status": {"200": 2, "404": 1},
        }
        assert (await client.get("/stats?reset=1")).json()["total"] == 0
        await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
        assert (await client.post("/stats/reset")).json()["total"] == 0
        assert (await client.get("/stats")).json() == {"total": 0, "by_path": {}, "by_status": {}}
        assert (await client.get("/requests")).json() == {"data": []}


@pytest.mark.anyio
async def test_request_log_shows_what_reached_the_provider():
    async with client_for(MockProvider()) as client:
        await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
        await client.post("/v1/messages", json=MESSAGES, headers=ANTHROPIC_AUTH)
        records = (await client.get("/requests")).json()["data"]
        latest = (await client.get("/requests?limit=1")).json()["data"]
        bad_limit = await client.get("/requests?limit=many")
    assert [record["path"] for record in records] == ["/v1/chat/completions", "/v1/messages"]
    assert records[0]["headers"]["authorization"] == "Bearer sk-provider-key"
    assert records[0]["headers"]["content-type"] == "application/json"
    assert records[0]["body"] == CHAT
    assert records[1]["headers"]["x-api-key"] == "sk-ant-provider-key"
    assert records[1]["headers"]["anthropic-version"] == "2023-06-01"
    assert records[1]["status"] == 200
    assert latest == records[1:]
    assert bad_limit.status_code == 400


@pytest.mark.anyio
async def test_request_log_keeps_only_the_most_recent_200():
    provider = MockProvider()
    async with client_for(provider) as client:
        for n in range(205):
            await client.post(
                "/v1/embeddings", json={"model": "m", "input": f"n{n}"}, headers=OPENAI_AUTH
            )
    records = provider.recent_requests()
    assert len(records) == 200
    assert records[0]["body"]["input"] == "n5"
    assert provider.stats()["total"] == 205


def chat_saying(text: str, **extra) -> dict:
    return {**CHAT, "messages": [{"role": "user", "content": text}], **extra}


@pytest.mark.anyio
async def test_fail_marker_answers_that_status_with_its_retry_after():
    provider = MockProvider()
    async with client_for(provider) as client:
        failed = await client.post(
            "/v1/chat/completions",
            json=chat_saying("[[mock:fail=503]] [[mock:retry_after=7]]"),
            headers=OPENAI_AUTH,
        )
        limited = await client.post(
            "/v1/messages",
            json={**MESSAGES, "messages": [{"role": "user", "content": "[[mock:fail=429]]"}]},
            headers=ANTHROPIC_AUTH,
        )
        fine = await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI_AUTH)
    assert failed.status_code == 503 and failed.headers["retry-after"] == "7"
    assert failed.json()["error"]["type"] == "server_error"
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"  # the option
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert fine.status_code == 200
    assert provider.stats()["by_status"] == {"503": 1, "429": 1, "200": 1}


@pytest.mark.anyio
async def test_fail_first_marker_fails_only_the_first_tries_of_the_same_body():
    provider = MockProvider()
    once, other = chat_saying("[[mock:fail_first=2]] a"), chat_saying("[[mock:fail_first=2]] b")
    async with client_for(provider) as client:
        statuses = [
            (await client.post("/v1/chat/completions", json=body, headers=OPENAI_AUTH)).status_code
            for body in (once, once, other, once, other, other)
        ]
    assert statuses == [503, 503, 503, 200, 503, 200]


@pytest.mark.anyio
async def test_hang_and_latency_markers():
    provider = MockProvider()
    sent, waited = await call_asgi(
        provider, "POST", "/v1/chat/completions", chat_saying("[[mock:hang]]")
    )
    assert sent == [] and waited
    started = time.monotonic()
    sent, _ = await call_asgi(
        provider, "POST", "/v1/chat/completions", chat_saying("[[mock:latency_ms=50]]")
    )
    assert sent[0]["status"] == 200 and time.monotonic() - started >= 0.05


@pytest.mark.anyio
async def test_stall_marker_sends_some_events_then_waits_for_the_client_to_leave():
    provider = MockProvider()
    payload = chat_saying("[[mock:stall_after=2]] hi", stream=True)
    sent, waited = await call_asgi(provider, "POST", "/v1/chat/completions", payload)
    assert sent[0]["status"] == 200
    [body] = sent[1:]
    assert body["more_body"] and body["body"].count(b"data: ") == 2
    assert waited  # held open, silent, until the disconnect


@pytest.mark.anyio
@pytest.mark.parametrize(
    "marker", ["[[mock:fail=200]]", "[[mock:fail=abc]]", "[[mock:latency_ms=-1]]"]
)
async def test_an_unusable_marker_gets_400_naming_it(marker):
    async with client_for(MockProvider()) as client:
        response = await client.post(
            "/v1/chat/completions", json=chat_saying(marker), headers=OPENAI_AUTH
        )
    assert response.status_code == 400
    assert "mock marker" in response.json()["error"]["message"]


@pytest.mark.anyio
async def test_hung_request_sends_nothing_until_the_client_disconnects():
    provider = MockProvider(MockOptions(hang_rate=1.0))
    sent, waited = await call_asgi(provider, "POST", "/v1/chat/completions", CHAT)
    assert sent == []
    assert waited
    assert provider.stats()["total"] == 1
    assert provider.recent_requests()[0]["status"] is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "payload", "headers", "terminal"),
    [
        ("/v1/chat/completions", CHAT, OPENAI_AUTH, b"[DONE]"),
        ("/v1/responses", {"model": "gpt-4o", "input": "hi"}, OPENAI_AUTH, b"response.completed"),
        ("/v1/messages", MESSAGES, ANTHROPIC_AUTH, b"message_stop"),
    ],
)
async def test_cut_stream_ends_without_terminal_events(path, payload, headers, terminal):
    provider = MockProvider(MockOptions(cut_rate=1.0))
    sent, _ = await call_asgi(provider, "POST", path, {**payload, "stream": True}, headers)
    assert sent[0]["status"] == 200
    bodies = sent[1:]
    assert bodies
    assert all(message["more_body"] for message in bodies)
    streamed = b"".join(message["body"] for message in bodies)
    assert b"delta" in streamed
    assert terminal not in streamed


@pytest.mark.anyio
async def test_chunk_delay_sends_each_event_on_its_own():
    provider = MockProvider(MockOptions(chunks=3, chunk_delay_ms=0.01))
    sent, _ = await call_asgi(provider, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    bodies = [message["body"] for message in sent[1:]]
    # role chunk, 3 pieces, finish chunk, [DONE], then the empty closing body
    assert len(bodies) == 7
    assert bodies[-1] == b""
    assert sent[-1]["more_body"] is False


@pytest.mark.anyio
async def test_lifespan_handshake_completes():
    provider = MockProvider()
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(incoming)

    async def send(message):
        sent.append(message["type"])

    await provider({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize(
    "options",
    [
        {"fail_rate": 1.5},
        {"hang_rate": -0.1},
        {"chunks": 0},
        {"fail_codes": ()},
        {"fail_codes": (200,)},
    ],
)
def test_options_reject_impossible_values(options):
    with pytest.raises(ConfigError, match="must"):
        MockOptions(**options)


def test_run_refuses_to_bind_a_non_loopback_address():
    """The request log exposes received credentials, so the mock never listens publicly."""
    with pytest.raises(ConfigError, match="loopback"):
        run("0.0.0.0", 0, MockOptions())  # noqa: S104


@contextlib.contextmanager
def serving(options: MockOptions):
    """Serve a mock provider with uvicorn in a thread on a free 127.0.0.1 port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config("127.0.0.1", port, options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "mock provider did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", server.config.app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def served():
    with serving(MockOptions(chunks=4)) as (url, provider):
        yield url, provider


@pytest.fixture
def openai_client(served):
    url, _ = served
    with openai.OpenAI(base_url=f"{url}/v1", api_key="sk-provider", max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(served):
    url, _ = served
    with anthropic.Anthropic(base_url=url, api_key="sk-ant-provider", max_retries=0) as client:
        yield client


def test_openai_sdk_parses_chat_and_chat_streams(openai_client):
    user = [{"role": "user", "content": "hello sdk"}]
    completion = openai_client.chat.completions.create(model="gpt-4o-mini", messages=user)
    assert completion.choices[0].message.content == "You said: hello sdk"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4

    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=user,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: hello sdk"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4

    with openai_client.chat.completions.stream(model="gpt-4o", messages=user) as helper:
        final = helper.get_final_completion()
    assert final.choices[0].message.content == "You said: hello sdk"
    assert final.model == "gpt-4o"


def test_openai_sdk_parses_responses_and_response_streams(openai_client):
    response = openai_client.responses.create(model="gpt-4o", input="hello responses")
    assert response.output_text == "You said: hello responses"
    assert response.usage is not None
    assert response.usage.output_tokens == 4

    content = [{"type": "input_text", "text": "streamed please"}]
    with openai_client.responses.stream(
        model="gpt-4o", input=[{"role": "user", "content": content}]
    ) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert final.output_text == "You said: streamed please"


def test_openai_sdk_parses_embeddings_and_models(openai_client):
    floats = openai_client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [item.index for item in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 1536
    encoded = openai_client.embeddings.create(
        model="text-embedding-3-small", input="a", encoding_format="base64"
    )
    raw = base64.b64decode(encoded.data[0].embedding)
    assert list(struct.unpack("<1536f", raw)) == floats.data[0].embedding
    assert "gpt-4o-mini" in [model.id for model in openai_client.models.list()]


def test_anthropic_sdk_parses_messages_and_message_streams(anthropic_client):
    user = [{"role": "user", "content": "hello claude"}]
    message = anthropic_client.messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=user
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "You said: hello claude"
    assert message.usage.output_tokens == 4

    with anthropic_client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=64, messages=user
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 4
    assert "".join(pieces) == "You said: hello claude"
    assert final.model == "claude-sonnet-4-6"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4
    assert "claude-sonnet-4-6" in [model.id for model in anthropic_client.models.list()]


def test_provider_key_reaches_the_request_log_over_a_socket(served, openai_client):
    url, provider = served
    openai_client.models.list()
    records = httpx.get(f"{url}/requests?limit=1").json()["data"]
    assert records[0]["headers"]["authorization"] == "Bearer sk-provider"
    assert provider.stats()["total"] >= 1


def test_sdks_raise_their_own_errors_for_injected_failures():
    with serving(MockOptions(fail_rate=1.0, fail_codes=(429,), retry_after_s=0)) as (url, _):
        with (
            openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as oai,
            pytest.raises(openai.RateLimitError) as openai_error,
        ):
            oai.chat.completions.create(model="gpt-4o-mini", messages=CHAT["messages"])
        with (
            anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as claude,
            pytest.raises(anthropic.RateLimitError) as anthropic_error,
        ):
            claude.messages.create(**MESSAGES)
    assert openai_error.value.code == "rate_limit_exceeded"
    assert anthropic_error.value.body["error"]["type"] == "rate_limit_error"


def test_sdks_see_a_cut_stream_as_a_broken_connection():
    with serving(MockOptions(cut_rate=1.0)) as (url, _):
        with (
            openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as oai,
            pytest.raises(openai.APIConnectionError),
        ):
            list(oai.chat.completions.create(**CHAT, stream=True))
        # The anthropic SDK lets the transport's protocol error through unwrapped.
        with (
            anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as claude,
            pytest.raises(Exception, match="incomplete chunked read"),
        ):
            list(claude.messages.create(**MESSAGES, stream=True))

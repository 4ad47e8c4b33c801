"""The /v1 data plane in-process: each endpoint, the audit record it leaves, and the error paths."""

from __future__ import annotations

import sqlite3

import orjson
import pytest

from tests.conftest import PROVIDER_KEY, make_settings, records, running_gateway

pytestmark = pytest.mark.anyio

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_chat_completion_is_forwarded_and_recorded(client, gateway, api_key, mock):
    response = await client.post(
        "/v1/chat/completions",
        json={**CHAT, "user": "alice"},
        headers={
            **auth(api_key),
            "X-SignalVault-Session": "s-1",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        },
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "You said: hello there"
    # A length, not chunks: the server sends head and body at once (server/protocol.py).
    assert response.headers["content-length"] == str(len(response.content))
    request_id = response.headers["x-signalvault-request-id"]
    [record] = records(gateway)
    assert record["id"] == request_id
    assert record["outcome"] == "ok" and record["status_code"] == 200
    assert record["end_user"] == "alice" and record["session_id"] == "s-1"
    assert record["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert record["api"] == "chat" and record["provider"] == "openai"
    assert record["model_requested"] == record["model_used"] == "gpt-4o-mini"
    assert record["key_id"] is not None and record["environment"] == "dev"
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] == 4  # words of the reply
    assert record["total_tokens"] == record["prompt_tokens"] + 4
    assert not record["tokens_estimated"] and not record["is_stream"]
    assert record["latency_ms"] > 0 and record["ttfb_ms"] > 0
    assert b"hello there" not in record["prompt_ct"]
    assert b"You said" not in record["response_ct"]
    prompt, answer = gateway.services.trail.decrypt(record)
    assert orjson.loads(prompt)["messages"][0]["content"] == "hello there"
    assert orjson.loads(answer)["choices"][0]["message"]["content"] == "You said: hello there"
    # The provider got the provider's key, never the caller's gateway key.
    [seen] = mock.recent_requests()
    assert seen["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"


async def test_streamed_chat_is_relayed_and_assembled(client, gateway, api_key):
    body = {**CHAT, "stream": True}
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=auth(api_key)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = b"".join([chunk async for chunk in r.aiter_bytes()])
    assert raw.rstrip().endswith(b"data: [DONE]")
    [record] = records(gateway)
    assert record["is_stream"] and record["outcome"] == "ok"
    # The mock sends no usage unless asked (like OpenAI), so tokens are counted with tiktoken.
    assert record["tokens_estimated"] and record["completion_tokens"] > 0
    _, answer = gateway.services.trail.decrypt(record)
    assembled = orjson.loads(answer)
    assert assembled["content"] == "You said: hello there"
    assert assembled["complete"] is True and assembled["finish_reason"] == "stop"


async def test_stream_usage_from_provider_is_used_when_present(client, gateway, api_key):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=auth(api_key)) as r:
        [_ async for _ in r.aiter_bytes()]
    [record] = records(gateway)
    assert not record["tokens_estimated"] and record["completion_tokens"] == 4  # words of the reply


async def test_embeddings_and_models(client, gateway, api_key):
    response = await client.post(
        "/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "vector me"},
        headers=auth(api_key),
    )
    assert response.status_code == 200 and response.json()["data"][0]["embedding"]
    [record] = records(gateway)
    assert record["api"] == "embeddings" and record["outcome"] == "ok"
    models = await client.get("/v1/models", headers=auth(api_key))
    assert models.status_code == 200 and models.json()["object"] == "list"


async def test_responses_api_stream(client, gateway, api_key):
    body = {"model": "gpt-4o-mini", "input": "respond please", "stream": True}
    async with client.stream("POST", "/v1/responses", json=body, headers=auth(api_key)) as r:
        assert r.status_code == 200
        [_ async for _ in r.aiter_bytes()]
    [record] = records(gateway)
    assert record["api"] == "responses" and record["outcome"] == "ok"
    assert not record["tokens_estimated"]
    _, answer = gateway.services.trail.decrypt(record)
    assert orjson.loads(answer)["content"] == "You said: respond please"


async def test_anthropic_messages_with_x_api_key(client, gateway, api_key, mock):
    body = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 32,
        "metadata": {"user_id": "u-9"},
        "messages": [{"role": "user", "content": "bonjour"}],
    }
    headers = {"x-api-key": api_key, "anthropic-version": "2023-06-01"}
    response = await client.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == "You said: bonjour"
    async with client.stream(
        "POST", "/v1/messages", json={**body, "stream": True}, headers=headers
    ) as r:
        [_ async for _ in r.aiter_bytes()]
    plain, streamed = records(gateway)
    assert plain["api"] == streamed["api"] == "messages"
    assert plain["end_user"] == "u-9" and streamed["outcome"] == "ok"
    assert not streamed["tokens_estimated"] and streamed["prompt_tokens"] > 0
    assert mock.recent_requests()[-1]["headers"]["x-api-key"] == PROVIDER_KEY


@pytest.mark.parametrize(
    ("path", "headers", "content", "status", "code"),
    [
        (
            "/v1/chat/completions",
            {"content-type": "application/json"},
            b"{not json",
            400,
            "invalid_request_error",
        ),
        (
            "/v1/chat/completions",
            {"content-type": "text/plain"},
            orjson.dumps(CHAT),
            415,
            "unsupported_media_type",
        ),
        (
            "/v1/chat/completions",
            {"content-type": "application/json"},
            b'{"model": "gpt-4o", "x": "\xff\xfe"}',
            400,
            "invalid_request_error",
        ),
        (
            "/v1/chat/completions",
            {"content-type": "application/json"},
            b"[1, 2]",
            400,
            "invalid_request_error",
        ),
        (
            "/v1/chat/completions",
            {"content-type": "application/json"},
            b'{"messages": []}',
            400,
            "invalid_request_error",
        ),
        (
            "/v1/chat/completions",
            {"content-type": "application/json"},
            orjson.dumps({**CHAT, "model": "nope-1"}),
            404,
            "model_not_found",
        ),
        (
            "/v1/messages",
            {"content-type": "application/json"},
            orjson.dumps({**CHAT, "model": "gpt-4o"}),
            404,
            "not_found_error",
        ),
    ],
)
async def test_bad_input_is_refused_recorded_and_never_forwarded(
    client, gateway, api_key, mock, path, headers, content, status, code
):
    response = await client.post(path, content=content, headers={**headers, **auth(api_key)})
    assert response.status_code == status
    body = response.json()
    if path == "/v1/messages":
        assert body["type"] == "error" and body["error"]["type"] == code
    else:
        assert body["error"]["code"] == code and body["error"]["message"]
    assert mock.stats()["total"] == 0
    [record] = records(gateway)
    assert record["outcome"] == "rejected" and record["status_code"] == status
    assert record["id"] == response.headers["x-signalvault-request-id"]


async def test_body_over_the_limit_gets_413(tmp_path, mock_provider, mock):

    settings = make_settings(tmp_path, mock_provider[1])
    settings = type(settings)(
        server=type(settings.server)(max_body_bytes=1000),
        store=settings.store,
        providers=settings.providers,
    )
    async with running_gateway(settings) as (app, c, key):
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
        response = await c.post("/v1/chat/completions", json=big, headers=auth(key))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        assert mock.stats()["total"] == 0
        [record] = records(app)
        assert record["outcome"] == "rejected" and record["prompt_ct"] is None


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_missing_or_unknown_key_gets_native_401(client, gateway, mock, path):
    missing = await client.post(path, json=CHAT)
    fake = "sv-dev-" + "A" * 49
    unknown = await client.post(path, json=CHAT, headers=auth(fake))
    for response in (missing, unknown):
        assert response.status_code == 401
        body = response.json()
        if path == "/v1/messages":
            assert body == {
                "type": "error",
                "error": {"type": "authentication_error", "message": body["error"]["message"]},
            }
        else:
            assert body["error"]["type"] == "authentication_error"
    assert mock.stats()["total"] == 0
    assert [r["outcome"] for r in records(gateway)] == ["unauthorized", "unauthorized"]
    assert all(r["prompt_ct"] is None for r in records(gateway))


async def test_revoked_key_is_refused_on_the_next_request(client, gateway, api_key, mock):
    assert (
        await client.post("/v1/chat/completions", json=CHAT, headers=auth(api_key))
    ).status_code == 200
    [key] = gateway.services.store.list_keys()
    # Revoke through a second, independent store handle, as the CLI in another process would.
    from signalvault.control.services import open_services

    other = open_services(gateway.settings)
    other.keyring.revoke(key.id)
    other.store.close()
    response = await client.post("/v1/chat/completions", json=CHAT, headers=auth(api_key))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "revoked_api_key"
    assert mock.stats()["total"] == 1


async def test_model_outside_the_keys_allowlist_gets_403(client, gateway, mock):
    _, secret = gateway.services.keyring.create(
        name="narrow", environment="dev", models=("gpt-4o-mini",)
    )
    ok = await client.post("/v1/chat/completions", json=CHAT, headers=auth(secret))
    denied = await client.post(
        "/v1/chat/completions", json={**CHAT, "model": "gpt-4o"}, headers=auth(secret)
    )
    assert ok.status_code == 200 and denied.status_code == 403
    assert denied.json()["error"]["code"] == "model_not_allowed"
    assert mock.stats()["total"] == 1


async def test_store_that_cannot_write_refuses_with_503_and_forwards_nothing(
    tmp_path, mock_provider, mock
):

    settings = make_settings(tmp_path, mock_provider[1], sqlite_busy_timeout_ms=100)
    async with running_gateway(settings) as (_, c, key):
        # Another process holds the write lock: every write of the gateway times out.
        locker = sqlite3.connect(tmp_path / "data" / "signalvault.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        response = await c.post("/v1/chat/completions", json=CHAT, headers=auth(key))
        anthropic = await c.post(
            "/v1/messages", json={**CHAT, "model": "claude-x"}, headers={"x-api-key": key}
        )
        locker.execute("ROLLBACK")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "audit_store_unavailable"
        assert anthropic.status_code == 503 and anthropic.json()["error"]["type"] == "api_error"
        assert mock.stats()["total"] == 0
        # The store recovers by itself once the lock is gone.
        again = await c.post("/v1/chat/completions", json=CHAT, headers=auth(key))
        assert again.status_code == 200 and mock.stats()["total"] == 1
        locker.close()


async def test_unknown_path_and_wrong_method(client, api_key):
    assert (await client.get("/v1/chat/completions", headers=auth(api_key))).status_code == 405
    assert (await client.post("/v1/nothing", json={}, headers=auth(api_key))).status_code == 404
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["store"] == "ok"


async def test_a_data_key_whose_insert_failed_is_never_used_again(tmp_path, mock_provider, mock):
    """A new end user's first write fails (store locked): the next request must not encrypt with
    the key that was never stored, or its content would be unreadable."""

    async with running_gateway(
        make_settings(tmp_path, mock_provider[1], sqlite_busy_timeout_ms=100)
    ) as (app, c, key):
        body = {**CHAT, "user": "new-user"}
        locker = sqlite3.connect(tmp_path / "data" / "signalvault.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        failed = await c.post("/v1/chat/completions", json=body, headers=auth(key))
        locker.execute("ROLLBACK")
        locker.close()
        ok = await c.post("/v1/chat/completions", json=body, headers=auth(key))
        assert failed.status_code == 503 and ok.status_code == 200
        [record] = records(app)
        prompt, _ = app.services.trail.decrypt(record)
        assert orjson.loads(prompt)["user"] == "new-user"


async def test_an_unexpected_error_answers_500_in_the_callers_shape(gateway, api_key, caplog):
    """A bug in a component must not leak a traceback or request content to caller or logs."""
    import httpx

    from signalvault.gateway.proxy import Proxy
    from signalvault.gateway.tokens import TokenCounter

    class BrokenScreen:
        def request(self, *args):
            raise RuntimeError("boom with SECRET-CANARY-7731 inside")

    proxy = Proxy(
        keyring=gateway.services.keyring,
        trail=gateway.services.trail,
        router=gateway.router,
        screen=BrokenScreen(),
        upstream=gateway.upstream,
        tokens=TokenCounter(),
        max_body_bytes=10_000,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=proxy), base_url="http://g"
    ) as c:
        openai_style = await c.post("/v1/chat/completions", json=CHAT, headers=auth(api_key))
        anthropic_style = await c.post(
            "/v1/messages", json={**CHAT, "model": "claude-x"}, headers={"x-api-key": api_key}
        )
    assert openai_style.status_code == anthropic_style.status_code == 500
    assert openai_style.json()["error"]["type"] == "server_error"
    assert anthropic_style.json()["error"]["type"] == "api_error"
    for response in (openai_style, anthropic_style):
        assert "CANARY" not in response.text
    assert "CANARY" not in caplog.text
    assert [r.error for r in caplog.records if r.name == "signalvault.proxy"] == [
        "RuntimeError"
    ] * 2


async def test_an_unexpected_error_after_forwarding_completes_the_record(gateway, api_key):
    """The record written ahead is completed as `gateway_error`, not left `unknown`."""
    import httpx

    from signalvault.gateway.proxy import Proxy
    from signalvault.gateway.tokens import TokenCounter

    real = gateway._proxy._screen

    class BrokenOnResponse:
        def request(self, *args):
            return real.request(*args)

        def response(self, *args):
            raise RuntimeError("bug while screening the answer")

    proxy = Proxy(
        keyring=gateway.services.keyring,
        trail=gateway.services.trail,
        router=gateway.router,
        screen=BrokenOnResponse(),
        upstream=gateway.upstream,
        tokens=TokenCounter(),
        max_body_bytes=10_000,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=proxy), base_url="http://g"
    ) as c:
        response = await c.post("/v1/chat/completions", json=CHAT, headers=auth(api_key))
    assert response.status_code == 500
    [record] = records(gateway)
    assert (record["outcome"], record["status_code"]) == ("gateway_error", 500)
    assert gateway.services.trail.complete_open("cancelled", "gateway_shutdown") == 0

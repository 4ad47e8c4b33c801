"""Request bodies the fuzzing found (or that its properties imply), each pinned down as a case:
refused with a clear 400 in the caller's own shape before anything is recorded or forwarded,
or forwarded exactly as screened."""

from __future__ import annotations

import orjson
import pytest

from signalvault.gateway.safe_json import REQUEST_DEPTH
from tests.conftest import make_settings, running_gateway

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway(mock_provider, tmp_path_factory):
    """One gateway for the module: each test reads the record of its own answer."""
    settings = make_settings(tmp_path_factory.mktemp("bodies"), mock_provider[1])
    async with running_gateway(settings) as running:
        yield running


def record_of(app, response) -> dict:
    assert app.services is not None
    app.services.store.flush()
    row = app.services.store.get_record(response.headers["x-signalvault-request-id"])
    assert row is not None
    return row


PII = "write to bob.smith@example.com"
BODIES = {
    "/v1/chat/completions": {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": PII}],
    },
    "/v1/responses": {"model": "gpt-4o-mini", "input": PII},
    "/v1/embeddings": {"model": "text-embedding-3-small", "input": PII},
    "/v1/messages": {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": PII}],
    },
}


def deep(depth: int) -> bytes:
    """Arrays `depth` levels deep holding personal data (so the body must be redacted)."""
    return b"[" * depth + orjson.dumps(PII) + b"]" * depth


def with_field(path: str, raw: bytes) -> bytes:
    return orjson.dumps(BODIES[path])[:-1] + b',"metadata":' + raw + b"}"


@pytest.mark.parametrize("path", sorted(BODIES))
@pytest.mark.parametrize("depth", [REQUEST_DEPTH + 1, 300, 1000])
async def test_personal_data_nested_hundreds_deep_gets_a_native_400(gateway, mock, path, depth):
    """Before: 500 internal_error (the redacted body could not be serialised again)."""
    app, client, api_key = gateway
    response = await client.post(
        path,
        content=with_field(path, deep(depth)),
        headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    body = response.json()
    message = body["error"]["message"]
    assert f"more than {REQUEST_DEPTH} deep" in message and "bob" not in message
    if path == "/v1/messages":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    else:
        assert body["error"]["code"] == "invalid_request_error"
    record = record_of(app, response)
    assert (record["outcome"], record["status_code"]) == ("rejected", 400)
    assert record["prompt_ct"] is None  # content that never passed the guardrails is not kept
    assert mock.stats()["total"] == 0


async def test_a_body_at_the_depth_limit_is_redacted_and_forwarded(gateway, mock):
    app, client, api_key = gateway
    # The body's own object, the messages list and the message take three of the levels.
    content = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":'
    content += deep(REQUEST_DEPTH - 3) + b"}]}"
    response = await client.post(
        "/v1/chat/completions",
        content=content,
        headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    [forwarded] = mock.recent_requests()
    assert "bob.smith" not in orjson.dumps(forwarded["body"]).decode()
    assert record_of(app, response)["outcome"] == "ok"

"""The provider register's routing control (SPEC §7c): a request whose class no candidate target
may receive is refused before forwarding (403 `classification_not_allowed`, in the caller's
shape, recorded, never forwarded); fallbacks skip targets that may not receive it."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import records, running_gateway
from tests.evidence.helpers import EMAIL, PATHS, auth, body, provider, with_register

pytestmark = pytest.mark.anyio
INTERNAL_ONLY = ("public", "internal")


def register(settings, base_url, *, eu_classes=("public", "internal", "confidential")):
    return with_register(
        settings,
        provider("us", base_url, allowed_classes=INTERNAL_ONLY, region="US"),
        provider("eu", base_url, allowed_classes=eu_classes, region="eu-west-1", dpa=True),
        routes=[("gpt-4o-mini", ["us:gpt-us-model", "eu:gpt-eu-model"])],
    )


async def test_confidential_request_falls_back_to_the_target_that_may_receive_it(
    settings, mock_provider, mock
):
    async with running_gateway(register(settings, mock_provider[1])) as (app, client, key):
        answer = await client.post(
            PATHS["chat"], json=body("chat", f"write to {EMAIL}"), headers=auth(key)
        )
        plain = await client.post(PATHS["chat"], json=body("chat", "hello"), headers=auth(key))
        rows = {r["id"]: r for r in records(app)}
    assert answer.status_code == 200 and plain.status_code == 200
    sent = [r["body"]["model"] for r in mock.recent_requests()]
    assert sent == ["gpt-eu-model", "gpt-us-model"]  # the personal data never went to `us`
    record = rows[answer.headers["x-signalvault-request-id"]]
    assert (record["classification"], record["provider"]) == ("confidential", "eu")
    skipped, called = orjson.loads(record["attempts"])
    assert skipped == {
        "provider": "us",
        "model": "gpt-us-model",
        "skipped": "classification_not_allowed",
        "classification": "confidential",
    }
    assert called["provider"] == "eu" and called["status"] == 200
    assert rows[plain.headers["x-signalvault-request-id"]]["provider"] == "us"


@pytest.mark.parametrize("stream", [False, True])
async def test_no_allowed_target_is_refused_in_openai_shape_and_never_forwarded(
    settings, mock_provider, mock, stream
):
    closed = register(settings, mock_provider[1], eu_classes=INTERNAL_ONLY)
    async with running_gateway(closed) as (app, client, key):
        answer = await client.post(
            PATHS["chat"], json=body("chat", f"write to {EMAIL}", stream=stream), headers=auth(key)
        )
        [record] = [r for r in records(app) if r["kind"] == "interaction"]
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "classification_not_allowed" and error["param"] == "model"
    assert EMAIL not in answer.text
    assert mock.stats()["total"] == 0
    assert record["id"] == answer.headers["x-signalvault-request-id"]
    assert (record["outcome"], record["status_code"], record["error_code"]) == (
        "rejected",
        403,
        "classification_not_allowed",
    )
    assert record["classification"] == "confidential"
    assert record["provider"] is None  # it went to no provider
    assert record["prompt_ct"] is None  # refused before it was recorded as forwarded content
    assert [a["provider"] for a in orjson.loads(record["attempts"])] == ["us", "eu"]


async def test_refusal_on_the_anthropic_api_has_the_anthropic_shape(settings, mock_provider, mock):
    from dataclasses import replace

    closed = replace(
        settings,
        providers=tuple(
            replace(p, allowed_classes=INTERNAL_ONLY) if p.kind == "anthropic" else p
            for p in settings.providers
        ),
    )
    async with running_gateway(closed) as (_, client, key):
        answer = await client.post(
            PATHS["messages"], json=body("messages", f"mail {EMAIL}"), headers=auth(key)
        )
    assert answer.status_code == 403
    assert answer.json() == {
        "type": "error",
        "error": {
            "type": "classification_not_allowed",
            "message": answer.json()["error"]["message"],
        },
    }
    assert mock.stats()["total"] == 0


async def test_a_changed_register_is_recorded_with_before_and_after(settings, mock_provider, mock):
    first = register(settings, mock_provider[1])
    async with running_gateway(first) as (app, _, _key):
        pass
    changed = register(settings, mock_provider[1], eu_classes=INTERNAL_ONLY)
    async with running_gateway(changed) as (app, _, _key):
        assert app.services is not None
        app.services.store.flush()
        from signalvault.store import RecordFilter

        rows = app.services.store.list_records(RecordFilter(kind="provider_register"), limit=10)
    assert len(rows) == 2  # the first register, then the change (not one per start)
    details = orjson.loads(rows[0]["details"])
    assert details["changed"] == ["eu"]
    before = {p["name"]: p for p in details["before"]}
    after = {p["name"]: p for p in details["after"]}
    assert "confidential" in before["eu"]["allowed_classes"]
    assert after["eu"]["allowed_classes"] == ["public", "internal"]

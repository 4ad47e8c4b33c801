"""Where a forwarded request's write-ahead record commits: the gateway lets it commit on the
event loop's thread when the request is its only one in flight, not when others are (the
writer's side, and its fallback to the commit thread when the database is busy, are tested in
tests/store/test_writer.py)."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.anyio


def chat(text: str) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


async def test_a_request_alone_may_commit_inline_and_one_among_others_may_not(
    client, gateway, api_key
):
    writer = gateway.services.store.writer
    allowed = writer.may_commit_inline
    answers: list[bool] = []
    writer.may_commit_inline = lambda: answers.append(allowed()) or answers[-1]
    headers = {"Authorization": f"Bearer {api_key}"}
    for n in range(2):
        response = await client.post("/v1/chat/completions", json=chat(f"hi {n}"), headers=headers)
        assert response.status_code == 200
    assert answers == [True, True]  # asked once per write-ahead record

    slow = asyncio.ensure_future(
        client.post(
            "/v1/chat/completions", json=chat("[[mock:latency_ms=400]] hi"), headers=headers
        )
    )
    for _ in range(200):  # until the slow one waits for the provider
        if len(answers) == 3:
            break
        await asyncio.sleep(0.01)
    response = await client.post("/v1/chat/completions", json=chat("meanwhile"), headers=headers)
    assert response.status_code == 200 and (await slow).status_code == 200
    assert answers == [True, True, True, False]

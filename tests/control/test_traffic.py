"""The overview's numbers: what passed, was blocked or redacted, findings by type, tokens by
model and project, counted only for records the reader may see, and the same from the cache."""

from __future__ import annotations

from typing import Any

import pytest

from signalvault.control.traffic import TrafficCache, overview, percentile

pytestmark = pytest.mark.anyio


async def _chat(client: Any, key: str, content: str) -> int:
    answer = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
    )
    return int(answer.status_code)


async def test_overview_counts_outcomes_findings_and_tokens(gateway: Any, client: Any) -> None:
    services = gateway.services
    mine, secret = services.keyring.create(name="a", environment="dev", project="alpha")
    _, other = services.keyring.create(name="b", environment="dev", project="beta")
    assert await _chat(client, secret, "hello") == 200
    assert await _chat(client, secret, "mail jane.doe@example.com") == 200
    assert await _chat(client, secret, "key AKIA" + "Q3VZ7TXK2MBN4PLD now") == 400
    assert await _chat(client, other, "hello from beta") == 200
    services.store.flush()
    cache = TrafficCache()
    everything = overview(services.store, cache, "1h", lambda project, key: True)
    totals = everything["totals"]
    assert (totals["requests"], totals["blocked"], totals["redacted"]) == (4, 1, 1)
    assert {f["type"] for f in everything["findings"]} >= {"EMAIL", "AWS_ACCESS_KEY_ID"}
    assert {p["name"] for p in everything["tokens_by_project"]} == {"alpha", "beta"}
    assert totals["p50_ms"] is not None and totals["tokens"] > 0

    only_alpha = overview(services.store, cache, "1h", lambda project, key: key == mine.id)
    assert only_alpha["totals"]["requests"] == 3
    assert [p["name"] for p in only_alpha["tokens_by_project"]] == ["alpha"]
    assert sum(p["requests"] for p in only_alpha["series"]) == 3


def test_percentile_is_the_upper_bound_of_its_bin() -> None:
    assert percentile([0] * 14, 0.5) is None
    histogram = [0] * 14
    histogram[2] = 90  # 10..25 ms
    histogram[5] = 10  # 100..250 ms
    assert percentile(histogram, 0.5) == 25.0
    assert percentile(histogram, 0.99) == 250.0

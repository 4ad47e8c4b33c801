"""The Redis limiter against the Redis on 127.0.0.1:6379: the same contract as the in-memory one,
atomic under concurrency across separate clients, shared by gateway replicas, and what happens
when Redis is down. Each test writes under its own key prefix and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import orjson
import pytest
import redis.asyncio

from signalvault.config import LimitsSettings, Secret
from signalvault.errors import LimiterUnavailable, RateLimited
from signalvault.gateway.limits import Charge, Limits
from signalvault.gateway.limits.redis import RedisLimiter
from tests.conftest import records, running_gateway
from tests.gateway.test_limits import CHAT, auth, gateway_key, limited_key

pytestmark = pytest.mark.anyio

URL = "redis://127.0.0.1:6379/0"
DOWN = "redis://127.0.0.1:9/0"  # nothing listens there


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    client = redis.asyncio.Redis.from_url(URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except redis.RedisError as exc:
        await client.aclose()
        reason = f"Redis at {URL} is unreachable ({type(exc).__name__})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"svtest:{uuid.uuid4().hex}:"
    yield name
    keys = [key async for key in client.scan_iter(match=name + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def limiter(prefix: str) -> AsyncIterator[RedisLimiter]:
    instance = RedisLimiter(URL, prefix, 1.0)
    yield instance
    await instance.close()


async def stored(prefix: str) -> dict[str, object]:
    client = redis.asyncio.Redis.from_url(URL)
    try:
        found: dict[str, object] = {}
        async for key in client.scan_iter(match=prefix + "*"):
            kind = await client.type(key)
            value = await client.hgetall(key) if kind == b"hash" else await client.get(key)
            found[key.decode()[len(prefix) :]] = (value, await client.pttl(key))
        return found
    finally:
        await client.aclose()


async def settled(limiter: RedisLimiter) -> None:
    await asyncio.gather(*limiter._pending)


async def test_rate_bucket_admits_a_burst_then_says_when(limiter):
    rpm = [Charge("k:rpm", 3, 1)]
    for _ in range(3):
        assert await limiter.acquire(rpm) is None
    denial = await limiter.acquire(rpm)
    assert denial is not None and denial.index == 0
    assert 19.0 < denial.retry_after <= 20.0  # 60 s / 3, less what drained meanwhile


async def test_a_denied_request_takes_nothing_from_any_bucket(limiter):
    assert await limiter.acquire([Charge("a", 1, 1)]) is None
    denial = await limiter.acquire([Charge("b", 5, 1), Charge("a", 1, 1)])
    assert denial is not None and denial.index == 1
    for _ in range(5):
        assert await limiter.acquire([Charge("b", 5, 1)]) is None
    assert await limiter.acquire([Charge("b", 5, 1)]) is not None


async def test_adjust_refunds_and_charges_the_difference(limiter):
    tpm = Charge("k:tpm", 100, 80)
    assert await limiter.acquire([tpm]) is None
    assert await limiter.acquire([tpm.with_cost(30)]) is not None
    limiter.adjust([tpm.with_cost(-70)])
    await settled(limiter)
    assert await limiter.acquire([tpm.with_cost(89)]) is None
    limiter.adjust([tpm.with_cost(50)])
    await settled(limiter)
    denial = await limiter.acquire([tpm.with_cost(1)])
    assert denial is not None and 29.0 < denial.retry_after <= 30.6


async def test_quota_uses_its_seed_and_expires_after_its_window(limiter, prefix):
    end = time.time() + 3600
    assert await limiter.acquire([Charge("q", 100, 30, window_end=end, seed=60)]) is None
    assert await limiter.acquire([Charge("q", 100, 10, window_end=end, seed=0)]) is None
    denial = await limiter.acquire([Charge("q", 100, 1, window_end=end)])
    assert denial is not None and 3590 < denial.retry_after <= 3600
    (value, ttl) = (await stored(prefix))["q"]
    assert value == b"100" and 3600 * 1000 < ttl <= 7200 * 1000  # the window plus an hour


async def test_rate_buckets_expire_once_drained(limiter, prefix):
    await limiter.acquire([Charge("r", 60, 6)])  # 6 of 60 per minute: empty in 6 s
    (state, ttl) = (await stored(prefix))["r"]
    assert float(state[b"l"]) == 6.0 and 6000 < ttl <= 7000


async def test_concurrent_acquires_from_two_clients_admit_exactly_the_limit(prefix):
    first, second = RedisLimiter(URL, prefix, 2.0), RedisLimiter(URL, prefix, 2.0)
    try:
        charge = [Charge("k:rpm", 50, 1)]
        results = await asyncio.gather(
            *((first if i % 2 else second).acquire(charge) for i in range(200))
        )
        assert sum(result is None for result in results) == 50
    finally:
        await first.close()
        await second.close()


async def test_bucket_names_never_carry_the_end_user(limiter, prefix):
    limits = Limits(
        LimitsSettings(user_rpm=5, user_tpm=1000),
        limiter,
        count_tokens=lambda text, model: 1,
        usage=lambda key_id, since: 0,
    )
    await limits.reserve(gateway_key(rpm=5), "alice@example.com", "chat", {}, None)
    names = list(await stored(prefix))
    assert len(names) == 3 and not any("alice" in name for name in names)


async def test_unreachable_redis_refuses_or_passes_as_configured():
    down = RedisLimiter(DOWN, "x:", 0.5)
    try:
        with pytest.raises(LimiterUnavailable):
            await down.acquire([Charge("a", 1, 1)])
        down.adjust(
            [Charge("a", 1, -1)]
        )  # a correction that cannot reach Redis is logged, not raised
        await settled(down)
        closed = Limits(LimitsSettings(), down, count_tokens=lambda t, m: 1, usage=lambda k, s: 0)
        with pytest.raises(LimiterUnavailable):
            await closed.reserve(gateway_key(rpm=1), None, "chat", {}, None)
        opened = Limits(
            LimitsSettings(failure_mode="open"),
            down,
            count_tokens=lambda t, m: 1,
            usage=lambda k, s: 0,
        )
        assert (await opened.reserve(gateway_key(rpm=1), None, "chat", {}, None)).is_bypassed
    finally:
        await down.close()


async def test_replicas_share_one_limit(settings, mock, prefix):
    shared = replace(settings, limits=LimitsSettings(redis_url=Secret(URL), redis_prefix=prefix))
    async with running_gateway(shared) as (app, one, _):
        key = limited_key(app, rpm=3)
        async with running_gateway(shared) as (_, two, _):
            statuses = []
            for client in (one, two, one, two):
                response = await client.post("/v1/chat/completions", json=CHAT, headers=auth(key))
                statuses.append(response.status_code)
            assert statuses == [200, 200, 200, 429]
    assert mock.stats()["total"] == 3


async def test_fail_open_passes_and_marks_the_record(settings, mock):
    down = LimitsSettings(redis_url=Secret(DOWN), failure_mode="open", redis_timeout_seconds=0.5)
    async with running_gateway(replace(settings, limits=down)) as (app, client, _):
        key = limited_key(app, rpm=1)
        for _ in range(2):
            response = await client.post("/v1/chat/completions", json=CHAT, headers=auth(key))
            assert response.status_code == 200
        evaluations = [orjson.loads(r["guardrails"]) for r in records(app)]
    assert all(
        any(e["rule"] == "rate_limits" and e["outcome"] == "bypassed" for e in found)
        for found in evaluations
    )
    assert mock.stats()["total"] == 2


async def test_budget_refusal_through_redis(settings, mock, prefix):
    shared = replace(settings, limits=LimitsSettings(redis_url=Secret(URL), redis_prefix=prefix))
    async with running_gateway(shared) as (app, client, _):
        key = limited_key(app, budget_tokens=100)
        body = {**CHAT, "max_tokens": 200}  # the estimate alone exceeds the budget
        response = await client.post("/v1/chat/completions", json=body, headers=auth(key))
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "budget_exceeded"
    assert mock.stats()["total"] == 0
    with pytest.raises(RateLimited):  # the Limits service says the same on its own
        limits = Limits(
            LimitsSettings(),
            RedisLimiter(URL, prefix, 1.0),
            count_tokens=lambda t, m: 150,
            usage=lambda k, s: 0,
        )
        try:
            await limits.reserve(gateway_key(budget_tokens=100), None, "chat", {}, None)
        finally:
            await limits.close()

"""Limiter cost per admitted request: reserve plus settle, for each kind of limit and backend.

    python bench/limits.py [--requests N] [--redis URL]

"no limits" is what every request without limits pays (one attribute check). The Redis rows need
a reachable Redis; they write under a fresh `svbench:<hex>:` prefix and delete it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from signalvault.config import LimitsSettings
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.gateway.limits import Limiter, Limits
from signalvault.gateway.limits.memory import MemoryLimiter
from signalvault.gateway.limits.redis import RedisLimiter
from signalvault.gateway.tokens import TokenCounter

PAYLOAD = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "How are the quarterly numbers looking? " * 10}],
}


def key(**limits: int) -> GatewayKey:
    return GatewayKey(
        id="key_bench",
        name="bench",
        project="bench",
        environment="dev",
        prefix="sv-dev-bench0",
        models=(),
        rpm=limits.get("rpm"),
        tpm=limits.get("tpm"),
        expires_at=None,
        revoked_at=None,
        created_at=0.0,
        created_by="bench",
    )


async def per_request(
    limiter: Limiter, gateway_key: GatewayKey, tokens: TokenCounter, n: int
) -> float:
    limits = Limits(LimitsSettings(), limiter, count_tokens=tokens.count, usage=lambda k, s: 0)
    started = time.perf_counter()
    for _ in range(n):
        if limits.applies(gateway_key, None):
            reservation = await limits.reserve(gateway_key, None, "chat", PAYLOAD, "gpt-4o-mini")
            limits.settle(reservation, 50)
    await limits.close()  # includes Redis corrections still in flight
    return (time.perf_counter() - started) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    tokens = TokenCounter()
    tokens.warm()
    huge = 10**12
    rows = [
        ("no limits", MemoryLimiter(), key()),
        ("memory rpm", MemoryLimiter(), key(rpm=huge)),
        ("memory rpm+tpm", MemoryLimiter(), key(rpm=huge, tpm=huge)),
    ]
    prefix = f"svbench:{uuid.uuid4().hex}:"
    try:
        redis.Redis.from_url(args.redis, socket_connect_timeout=1).ping()
        rows.append(
            ("redis rpm+tpm", RedisLimiter(args.redis, prefix, 1.0), key(rpm=huge, tpm=huge))
        )
    except redis.RedisError:
        print(f"(Redis at {args.redis} unreachable: Redis row skipped)")
    for label, limiter, gateway_key in rows:
        n = args.requests if isinstance(limiter, MemoryLimiter) else max(args.requests // 10, 100)
        print(f"{label:>16}: {await per_request(limiter, gateway_key, tokens, n):8.1f} µs/request")
    client = redis.Redis.from_url(args.redis, socket_connect_timeout=1)
    try:
        stale = list(client.scan_iter(match=prefix + "*"))
        if stale:
            client.delete(*stale)
    except redis.RedisError:
        pass


if __name__ == "__main__":
    asyncio.run(main())

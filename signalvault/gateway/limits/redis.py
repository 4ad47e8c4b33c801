"""Limits shared by every replica through Redis: one Lua script checks and updates all of a
request's buckets atomically (no check-then-set race), on Redis's clock.

The script runs by EVALSHA (redis-py's `register_script` loads it again after a Redis restart).
Every bucket of one request is touched by one script call, so on Redis Cluster the prefix needs a
hash tag (e.g. `{signalvault}:`) to put them in one slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio
from redis.exceptions import RedisError

from signalvault.errors import LimiterUnavailable
from signalvault.gateway.limits.buckets import Charge, Denial

log = logging.getLogger("signalvault.limits")

# KEYS[i]: bucket i. ARGV[1]: "acquire" (all or nothing) or "adjust" (add, never refuse), then
# five values per bucket: limit, cost, period (0 marks a quota), ttl (a quota's seconds until its
# window ends), seed (a quota's starting value if absent, -1 for none). Mirrors buckets.py.
SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local acquire = ARGV[1] == 'acquire'
local levels = {}
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 5
  local limit, cost = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local period, ttl, seed = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local level
  if period > 0 then
    local state = redis.call('HMGET', KEYS[i], 'l', 't')
    local last = tonumber(state[2]) or now
    level = math.max((tonumber(state[1]) or 0) - math.max(now - last, 0) * limit / period, 0)
  else
    level = tonumber(redis.call('GET', KEYS[i])) or math.max(seed, 0)
  end
  if acquire and level + cost > limit then
    local retry
    if period == 0 then
      retry = math.max(ttl, 1)
    elseif cost > limit then
      retry = period
    else
      retry = (level + cost - limit) * period / limit
    end
    return {i, string.format('%.6f', retry)}
  end
  levels[i] = level
end
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 5
  local limit, cost = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local period, ttl = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local level = math.max(levels[i] + cost, 0)
  if period > 0 then
    redis.call('HSET', KEYS[i], 'l', string.format('%.17g', level), 't', string.format('%.6f', now))
    redis.call('PEXPIRE', KEYS[i], math.ceil(level * period / limit * 1000) + 1000)
  else
    redis.call('SET', KEYS[i], string.format('%d', level), 'EX', math.max(math.ceil(ttl), 0) + 3600)
  end
end
return {0, '0'}
"""


class RedisLimiter:
    def __init__(self, url: str, prefix: str, timeout_seconds: float) -> None:
        # from_url builds a connection pool and connects lazily: no network work here.
        self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=30,
        )
        self._script = self._client.register_script(SCRIPT)
        self._prefix = prefix
        self._pending: set[asyncio.Task[None]] = set()

    async def acquire(self, charges: Sequence[Charge]) -> Denial | None:
        index, retry_after = await self._run("acquire", charges)
        return None if int(index) == 0 else Denial(int(index) - 1, float(retry_after))

    def adjust(self, charges: Sequence[Charge]) -> None:
        # In the background: a response must not wait for its own bookkeeping.
        task = asyncio.ensure_future(self._adjust(charges))
        self._pending.add(task)  # held until done, so a correction is never dropped half-way
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending))
        await self._client.aclose()

    async def _adjust(self, charges: Sequence[Charge]) -> None:
        try:
            await self._run("adjust", charges)
        except LimiterUnavailable:
            log.warning("rate limiter unreachable; a token reservation was not corrected")

    async def _run(self, mode: str, charges: Sequence[Charge]) -> Any:
        now = time.time()
        args: list[str | int | float] = [mode]
        for charge in charges:
            is_quota = charge.window_end is not None
            args += [
                charge.limit,
                charge.cost,
                0 if is_quota else charge.period,
                charge.window_end - now if charge.window_end is not None else 0,
                -1 if charge.seed is None else charge.seed,
            ]
        keys = [self._prefix + charge.bucket for charge in charges]
        try:
            return await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(
                f"The rate limiter is unavailable ({type(exc).__name__}); "
                "the request was not forwarded."
            ) from None

"""Requests and tokens per minute per gateway key and per end user, and a monthly token budget per
key, checked after authentication and before anything is recorded ahead or forwarded.

A request reserves its estimated tokens (prompt plus `max_tokens`, else a configured guess) and
the reservation is corrected to the actual usage once the response ends, whatever the ending.
Backends: `MemoryLimiter` (per process) or `RedisLimiter` (shared by replicas); see buckets.py for
the algorithm and its error bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from signalvault.config import LimitsSettings
from signalvault.crypto.gateway_keys import GatewayKey
from signalvault.errors import LimiterUnavailable, RateLimited, StoreError, StoreUnavailable
from signalvault.gateway.limits.buckets import Charge, Denial
from signalvault.gateway.limits.memory import MemoryLimiter
from signalvault.gateway.wire import prompt_text

__all__ = ["BYPASS", "Charge", "Denial", "Limiter", "Limits", "Reservation", "open_limiter"]

log = logging.getLogger("signalvault.limits")

# Kept on the audit record (with the guardrail evaluations) when fail-open let a request pass
# because the shared limiter could not be reached: the bypass is visible per request.
BYPASS: dict[str, Any] = {
    "rule": "rate_limits",
    "detector": "limiter",
    "direction": "input",
    "action": "bypass",
    "outcome": "bypassed",
    "kinds": {},
    "spans": [],
    "ms": 0.0,
}
WARN_EVERY = 10.0  # seconds between log warnings about a fail-open bypass
_OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


class Limiter(Protocol):
    async def acquire(self, charges: Sequence[Charge]) -> Denial | None:
        """Take every charge, or none of them and say which one did not fit."""

    def adjust(self, charges: Sequence[Charge]) -> None:
        """Add each charge's cost (negative refunds), never refusing; now or in the background
        (a backend with I/O finishes it before `close` returns)."""

    async def close(self) -> None: ...


def open_limiter(settings: LimitsSettings) -> Limiter:
    """Redis when `redis_url` is set, else this process's memory. Connects lazily."""
    if settings.redis_url is None:
        return MemoryLimiter()
    # Loaded only when configured: the Redis client is ~3 MiB of a process that never uses it.
    from signalvault.gateway.limits.redis import RedisLimiter

    return RedisLimiter(
        settings.redis_url.reveal(), settings.redis_prefix, settings.redis_timeout_seconds
    )


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one admitted request holds: its token charges and the estimate they reserved."""

    tokens: tuple[Charge, ...] = ()
    reserved: int = 0
    is_bypassed: bool = False


class Limits:
    def __init__(
        self,
        settings: LimitsSettings,
        limiter: Limiter,
        *,
        count_tokens: Callable[[str, str | None], int],
        usage: Callable[[str, float], int],
        clock: Callable[[], float] = time.time,
        live: Callable[[], LimitsSettings] | None = None,
    ) -> None:
        """`live`: the settings in force now (run-time overrides of the per-user limits);
        default: `settings` as given."""
        self._limiter = limiter
        self._live = live or (lambda: settings)
        self._output_estimate = settings.output_tokens_estimate
        self._is_fail_open = settings.failure_mode == "open"
        self._count = count_tokens
        self._usage = usage  # tokens a key used since a time, from the audit store
        self._clock = clock
        self._seeds: dict[str, int] = {}  # budget bucket -> month-to-date usage, until admitted
        self._seeded: set[str] = set()
        self._warned_at = -WARN_EVERY

    def applies(self, key: GatewayKey | None, end_user: str | None) -> bool:
        """False when nothing limits this request: then the limiter is not touched at all."""
        if key is None:
            return False
        if key.rpm or key.tpm or key.budget_tokens:
            return True
        if end_user is None:
            return False
        live = self._live()
        return bool(live.user_rpm or live.user_tpm)

    async def reserve(
        self,
        key: GatewayKey,
        end_user: str | None,
        api: str,
        payload: dict[str, Any],
        model: str | None,
    ) -> Reservation:
        """Take this request's share of every limit that applies.

        Raises:
            RateLimited: a limit is reached (`retry_after` says when to try again).
            LimiterUnavailable: the shared limiter is unreachable and the mode is closed.
            StoreUnavailable: the month-to-date usage of a budgeted key could not be read.
        """
        live = self._live()
        user_rpm, user_tpm = live.user_rpm, live.user_tpm
        user = _user_bucket(key.project, end_user) if end_user and (user_rpm or user_tpm) else None
        has_tokens = bool(key.tpm or key.budget_tokens or (user and user_tpm))
        estimate = self._estimate(api, payload, model) if has_tokens else 0
        charges: list[Charge] = []
        labels: list[str] = []  # formatted with the limit only if a charge is refused
        tokens: list[Charge] = []  # the charges corrected to the actual usage at the end
        if key.rpm:
            charges.append(Charge(f"k:{key.id}:rpm", key.rpm, 1))
            labels.append("this API key allows {} requests per minute")
        if key.tpm:
            tokens.append(Charge(f"k:{key.id}:tpm", key.tpm, estimate))
            charges.append(tokens[-1])
            labels.append("this API key allows {} tokens per minute")
        if user and user_rpm:
            charges.append(Charge(f"u:{user}:rpm", user_rpm, 1))
            labels.append("each end user may send {} requests per minute")
        if user and user_tpm:
            tokens.append(Charge(f"u:{user}:tpm", user_tpm, estimate))
            charges.append(tokens[-1])
            labels.append("each end user may use {} tokens per minute")
        budget: str | None = None
        if key.budget_tokens:
            start, end = _month(self._clock())
            budget = f"k:{key.id}:budget:{datetime.fromtimestamp(start, UTC):%Y%m}"
            seed = await self._seed(budget, key.id, start)
            tokens.append(Charge(budget, key.budget_tokens, estimate, window_end=end, seed=seed))
            charges.append(tokens[-1])
            labels.append("this API key's monthly budget is {} tokens")
        try:
            denial = await self._limiter.acquire(charges)
        except LimiterUnavailable:
            if not self._is_fail_open:
                raise
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY:  # every record shows it; the log needn't
                self._warned_at = now
                log.warning("rate limiter unreachable; requests pass unlimited (failure_mode open)")
            return Reservation(is_bypassed=True)
        if denial is not None:
            raise _refusal(charges[denial.index], labels[denial.index], denial.retry_after)
        if budget is not None and budget not in self._seeded:
            self._seeded.add(budget)
            self._seeds.pop(budget, None)
        return Reservation(tuple(tokens), estimate)

    def settle(self, reservation: Reservation | None, actual_tokens: int | None) -> None:
        """Correct the token reservation to the actual usage (refund or charge the difference)."""
        if reservation is None or not reservation.tokens:
            return
        delta = (actual_tokens or 0) - reservation.reserved
        if delta == 0:
            return
        self._limiter.adjust([c.with_cost(delta) for c in reservation.tokens])

    async def close(self) -> None:
        """Finish outstanding settlements, then close the backend."""
        await self._limiter.close()

    async def _seed(self, bucket: str, key_id: str, since: float) -> int | None:
        """Month-to-date usage from the audit store, read once per process and month."""
        if bucket in self._seeded:
            return None
        seed = self._seeds.get(bucket)
        if seed is None:
            try:
                seed = await asyncio.to_thread(self._usage, key_id, since)
            except StoreError:
                raise StoreUnavailable(
                    "The audit store is unavailable; the request was not forwarded."
                ) from None
            self._seeds[bucket] = seed
        return seed

    def _estimate(self, api: str, payload: dict[str, Any], model: str | None) -> int:
        prompt = self._count(prompt_text(payload), model)
        if api == "embeddings":
            return prompt
        for name in _OUTPUT_CAPS:
            value = payload.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return prompt + value
        return prompt + self._output_estimate


def _refusal(charge: Charge, template: str, retry_after: float) -> RateLimited:
    label = template.format(charge.limit)
    if charge.window_end is not None:
        renews = datetime.fromtimestamp(charge.window_end, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return RateLimited(
            f"Token budget exceeded: {label}; it renews at {renews}.",
            retry_after=retry_after,
            code="budget_exceeded",
        )
    if charge.cost > charge.limit:
        return RateLimited(
            f"Rate limit exceeded: {label}, and this request needs about {charge.cost}.",
            retry_after=retry_after,
        )
    return RateLimited(f"Rate limit exceeded: {label}.", retry_after=retry_after)


def _user_bucket(project: str, end_user: str) -> str:
    """End user ids are hashed: bucket names (in Redis too) never carry them."""
    return hashlib.blake2b(f"{project}\0{end_user}".encode(), digest_size=12).hexdigest()


def _month(now: float) -> tuple[float, float]:
    """Start and end (epoch seconds) of the calendar month, UTC, that contains `now`."""
    day = datetime.fromtimestamp(now, UTC)
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    end = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()

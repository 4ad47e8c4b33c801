"""When to try a provider again: retryable answers, full-jitter backoff and `Retry-After`.

Pure functions and a value object; no I/O, so the rules are tested with fixed inputs.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

# 408 timeout, 409 conflict (lock contention upstream) and 429 rate limit are transient; other
# 4xx are the request's fault and would fail the same way again, here or at a fallback.
_RETRYABLE_4XX = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status in _RETRYABLE_4XX


def backoff_delay(retry: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^retry)], so retrying clients spread out
    instead of arriving together (retry 0 is the wait before the first retry)."""
    return rng.uniform(0.0, min(cap, base * 2.0 ** min(retry, 32)))


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the provider asks us to wait, or None when it says nothing readable.

    Reads `retry-after-ms` (OpenAI) first, then `retry-after` as delta-seconds or an HTTP date.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = -1.0
        if 0.0 <= value < math.inf:
            return value
    raw = headers.get("retry-after")
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        seconds = None
    if seconds is not None:
        return seconds if 0.0 <= seconds < math.inf else None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long one provider is retried within one request."""

    max_retries: int = 2
    budget_seconds: float = 30.0
    backoff_base_seconds: float = 0.25
    backoff_max_seconds: float = 8.0
    retry_after_max_seconds: float = 10.0

    def next_wait(
        self, retries_done: int, retry_after: float | None, elapsed: float, rng: random.Random
    ) -> float | None:
        """Seconds to wait before retrying, or None when this provider gets no more tries.

        Args:
            retries_done: retries of this provider already made in this request.
            retry_after: what the provider's `Retry-After` asked for, if anything.
            elapsed: seconds since this provider's first attempt in this request.
        """
        if retries_done >= self.max_retries:
            return None
        if retry_after is not None:
            if retry_after > self.retry_after_max_seconds:
                return None  # a long wait is better spent on the next target or by the client
            wait = retry_after
        else:
            wait = backoff_delay(
                retries_done, self.backoff_base_seconds, self.backoff_max_seconds, rng
            )
        if elapsed + wait > self.budget_seconds:
            return None
        return wait

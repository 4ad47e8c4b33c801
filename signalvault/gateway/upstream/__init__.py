"""Calls to providers: timeouts, retries with backoff, fallbacks along a route's targets and
circuit breakers. Sees HTTP to providers, never the caller's connection or the store."""

from signalvault.gateway.upstream.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerPolicy
from signalvault.gateway.upstream.forward import Answer, Upstream, UpstreamFailed
from signalvault.gateway.upstream.retry import RetryPolicy, backoff_delay, parse_retry_after

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "Answer",
    "Breaker",
    "BreakerPolicy",
    "RetryPolicy",
    "Upstream",
    "UpstreamFailed",
    "backoff_delay",
    "parse_retry_after",
]

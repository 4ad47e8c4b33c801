"""One request's way to a provider: attempts along the route's targets with per-provider
timeouts, retries, fallbacks and circuit breakers. Every attempt (and every target skipped by
a breaker) is noted on the interaction; notes hold names, statuses and timings, never content.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from signalvault.agents.telemetry.ids import traceparent_of
from signalvault.config import ProviderSettings, Secret
from signalvault.errors import (
    HTTPError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    StoreError,
    StoreUnavailable,
)
from signalvault.gateway import safe_json
from signalvault.gateway.providers import Target
from signalvault.gateway.upstream.breaker import Breaker, BreakerPolicy, Breakers, Clock, Permit
from signalvault.gateway.upstream.http1 import Client, Response, Timeouts, UpstreamError
from signalvault.gateway.upstream.retry import RetryPolicy, is_retryable_status, parse_retry_after
from signalvault.trail.audit import Interaction

log = logging.getLogger("signalvault.upstream")
BREAKER_OPEN = "breaker_open"
INVALID_ANSWER = "invalid_answer"  # a success whose body is not a JSON object
ANSWER_TOO_LARGE = "answer_too_large"  # a body over the provider's `max_response_bytes`
_READ_SIZE = 1 << 16
# (provider name, the gateway key's environment) -> the stored credential to use, if any.
CredentialLookup = Callable[[str, str | None], Secret | None]


@dataclass(frozen=True, slots=True)
class _Limits:
    timeouts: Timeouts
    retry: RetryPolicy
    max_body: int  # bytes of a non-streamed answer read at most
    max_event: int  # bytes of one stream event held at most
    max_stream: int  # bytes of one stream read at most


class UpstreamFailed(Exception):
    """No provider answer can be relayed; `error` is what the caller gets (502, 503 or 504)."""

    def __init__(self, error: HTTPError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(slots=True)
class Answer:
    """A provider response to relay: a stream still to be read, or a body already read."""

    target: Target
    response: Response
    is_stream: bool
    permits: list[tuple[Breaker, Permit]] = field(default_factory=list)  # a stream's, unjudged
    body: bytes = b""  # a non-streamed answer's body, read within `max_response_bytes`
    parsed: Any = None  # a successful body's JSON object, as read to check it
    max_event_bytes: int = 0  # a stream's: the longest event the relay may hold
    max_stream_bytes: int = 0  # a stream's: the most it may carry in all

    def settle(self, failed: bool) -> None:
        """Tell the breakers how a relayed stream ended (`failed`: cut or stalled). Idempotent."""
        for breaker, permit in self.permits:
            breaker.record(permit, failed)
        self.permits.clear()


@dataclass(slots=True)
class _Failure:
    """How a target's last attempt failed: an HTTP error answer, or no answer at all."""

    answer: Answer | None = None
    error: HTTPError | None = None

    def discard(self) -> None:
        if self.answer is not None:
            self.answer.response.release()


class Upstream:
    """Calls providers for the proxy; owns the retry rules and the circuit breakers."""

    def __init__(
        self,
        providers: tuple[ProviderSettings, ...],
        client: Callable[[], Client],
        *,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        credentials: CredentialLookup | None = None,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._clock = clock
        self._sleep = sleep
        # Jitter only spreads retries out; it needs no unpredictability.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._limits = {p.name: _limits(p) for p in providers}
        self._breakers = Breakers({p.name: _breaker_policy(p) for p in providers}, clock)

    def on_breaker_open(self, listener: Callable[[str], None]) -> None:
        """Call `listener(name)` whenever a circuit breaker opens (on the event loop)."""
        self._breakers.on_open = listener

    def breaker_states(self) -> dict[str, str]:
        """`closed`, `open` or `half_open` by provider name and by `provider:model`."""
        return self._breakers.states()

    async def call(
        self,
        interaction: Interaction,
        targets: list[Target],
        endpoint: str,
        payload: dict[str, Any],
        body: bytes,
        headers: Mapping[str, str],
    ) -> Answer:
        """Try `targets` in order until one answers.

        Returns a success, a provider error that retrying cannot fix (a 400, say), or, when
        every target failed, the last provider error (a 429 keeps its `Retry-After`).

        Raises:
            UpstreamFailed: the last attempt got no answer (502, 504), or no target could be
                tried because every breaker on the way is open (503 with the cooldown left).
        """
        last: _Failure | None = None
        cooldowns: list[float] = []
        for index, target in enumerate(targets):
            result = await self._try_target(
                interaction, target, index > 0, endpoint, payload, body, headers, cooldowns
            )
            if result is None:
                continue
            if last is not None:
                last.discard()
            if isinstance(result, Answer):
                return result
            last = result
        if last is None:
            raise UpstreamFailed(
                ProviderUnavailable(
                    "Every provider for this model is failing; try again later.",
                    retry_after=min(cooldowns),
                )
            )
        if last.answer is not None:
            return last.answer
        assert last.error is not None
        raise UpstreamFailed(last.error)

    async def _try_target(
        self,
        interaction: Interaction,
        target: Target,
        is_fallback: bool,
        endpoint: str,
        payload: dict[str, Any],
        body: bytes,
        headers: Mapping[str, str],
        cooldowns: list[float],
    ) -> Answer | _Failure | None:
        """Attempts on one target, retried per its provider's policy. None: never attempted."""
        provider = target.provider
        limits = self._limits[provider.name]
        breakers = self._breakers.for_target(provider.name, target.model)
        if target.model != payload.get("model"):
            body = safe_json.dumps({**payload, "model": target.model})
        stored_key = None
        if self._credentials is not None:
            key = interaction.key
            try:
                stored_key = self._credentials(provider.name, key.environment if key else None)
            except StoreError:
                # Fail closed: never guess which credential an operator meant.
                raise UpstreamFailed(
                    StoreUnavailable("The provider credential store does not answer; try again.")
                ) from None
        url, upstream_headers = provider.url(endpoint), provider.headers(headers, stored_key)
        # The provider's spans, if it makes any, become children of this record's span.
        upstream_headers["traceparent"] = traceparent_of(interaction)
        first_try = self._clock()
        failure: _Failure | None = None
        retries = 0
        while True:
            note: dict[str, Any] = {
                "provider": provider.name,
                "model": target.model,
                "at_ms": round(interaction.elapsed_ms(), 1),
                "retry": retries > 0,
                "fallback": is_fallback,
            }
            interaction.attempts.append(note)
            shut = [b for b in breakers if not b.is_available()]
            if shut:
                note.update(skipped=BREAKER_OPEN, breaker=shut[0].name)
                cooldowns.append(max(b.remaining_cooldown() for b in shut))
                return failure
            if failure is not None:
                failure.discard()
            interaction.provider, interaction.model_used = provider.name, target.model
            permits = [(b, b.acquire()) for b in breakers]
            try:
                result = await self._attempt(interaction, limits, url, body, upstream_headers)
            except BaseException:
                for breaker, permit in permits:
                    breaker.release(permit)
                raise
            note["ms"] = round(interaction.elapsed_ms() - note["at_ms"], 1)
            retry_after = None
            if isinstance(result, str):
                note["error"] = result
                failure = _Failure(error=_error_for(result))
            else:
                response, data, parsed = result
                note["status"] = response.status
                if not is_retryable_status(response.status):
                    if _is_stream(interaction, response):  # judged when the relay ends
                        return Answer(
                            target,
                            response,
                            True,
                            permits,
                            max_event_bytes=limits.max_event,
                            max_stream_bytes=limits.max_stream,
                        )
                    for breaker, permit in permits:
                        breaker.record(permit, False)
                    return Answer(target, response, False, body=data, parsed=parsed)
                retry_after = parse_retry_after(response.headers)
                failure = _Failure(answer=Answer(target, response, False, body=data))
            for breaker, permit in permits:
                breaker.record(permit, True)
            wait = limits.retry.next_wait(
                retries, retry_after, self._clock() - first_try, self._rng
            )
            log.info(
                "provider attempt failed",
                extra={
                    "request_id": interaction.id,
                    "provider": provider.name,
                    "status": note.get("status"),
                    "error": note.get("error"),
                    "retrying": wait is not None,
                },
            )
            if wait is None:
                return failure
            await self._sleep(wait)
            retries += 1

    async def _attempt(
        self,
        interaction: Interaction,
        limits: _Limits,
        url: str,
        body: bytes,
        headers: dict[str, str],
    ) -> tuple[Response, bytes, Any] | str:
        """One HTTP call: the response, its body (empty for a stream to relay) and a success's
        parsed body (else None), or the kind of error that ended it. A success must be a JSON
        object the gateway can screen and re-emit (see `safe_json`): anything else is an
        `invalid_answer`, retried like an error.
        A body over `max_response_bytes` is an `answer_too_large`, whatever its status."""
        try:
            response = await self._client().post(url, body, headers, limits.timeouts)
        except UpstreamError as exc:
            return exc.kind
        interaction.ttfb_ms = interaction.elapsed_ms()
        if _is_stream(interaction, response):
            return response, b"", None
        try:
            data = await _read_within(response, limits.max_body)
        except UpstreamError as exc:
            response.close()
            return exc.kind
        if data is None:
            response.close()  # the rest is never read: memory stays bounded by the cap
            return ANSWER_TOO_LARGE
        parsed = None
        if response.status < 300:
            parsed = _json_object(data)
            if parsed is None:
                # Malformed, truncated (a Content-Length that lied), not UTF-8 or nested too
                # deep: relayed, it would pass the output guardrails unread.
                response.close()
                return INVALID_ANSWER
        return response, data, parsed


async def _read_within(response: Response, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is known to be longer than `limit` bytes (by its
    announced length, or by what arrived, whichever comes first)."""
    announced = response.content_length
    if announced is not None and announced > limit:
        return None
    parts: list[bytes] = []
    size = 0
    while chunk := await response.read(_READ_SIZE):
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        value = safe_json.loads(data)
    except safe_json.InvalidJSON:
        return None
    return value if isinstance(value, dict) else None


def _is_stream(interaction: Interaction, response: Response) -> bool:
    content_type = response.headers.get("content-type", "")
    return (
        interaction.is_stream
        and response.status == 200
        and content_type.startswith("text/event-stream")
    )


def _error_for(kind: str) -> HTTPError:
    if kind.endswith("timeout"):
        return ProviderTimeout("The provider did not answer in time.")
    if kind == INVALID_ANSWER:
        return ProviderError("The provider's answer was not a readable JSON object.")
    if kind == ANSWER_TOO_LARGE:
        return ProviderError("The provider's answer was larger than the gateway accepts.")
    return ProviderError("The provider could not be reached.")


def _limits(p: ProviderSettings) -> _Limits:
    return _Limits(
        timeouts=Timeouts(
            total=p.timeout_seconds,
            connect=p.connect_timeout_seconds,
            first_byte=p.first_byte_timeout_seconds,
            idle=p.idle_timeout_seconds,
        ),
        max_body=p.max_response_bytes,
        max_event=p.max_event_bytes,
        max_stream=p.max_stream_bytes,
        retry=RetryPolicy(
            max_retries=p.max_retries,
            budget_seconds=p.retry_budget_seconds,
            backoff_base_seconds=p.backoff_base_seconds,
            backoff_max_seconds=p.backoff_max_seconds,
            retry_after_max_seconds=p.retry_after_max_seconds,
        ),
    )


def _breaker_policy(p: ProviderSettings) -> BreakerPolicy:
    return BreakerPolicy(
        failure_ratio=p.breaker_failure_ratio,
        min_requests=p.breaker_min_requests,
        window_seconds=p.breaker_window_seconds,
        cooldown_seconds=p.breaker_cooldown_seconds,
        half_open_probes=p.breaker_half_open_probes,
    )

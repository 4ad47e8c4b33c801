"""The mock provider's ASGI app: routing, fault injection, counters, request log, and serving.

A raw ASGI callable (no framework on its routes) so it costs microseconds per request under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import ipaddress
import random
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypedDict
from urllib.parse import parse_qs

import orjson
import uvicorn

from signalvault.errors import ConfigError
from signalvault.mock_provider import anthropic_wire, misbehave, openai_wire
from signalvault.mock_provider.faults import Faults, read_faults
from signalvault.mock_provider.tools import plan_tools
from signalvault.mock_provider.turn import JSON, Turn, compose_turn, last_user_text, missing_field

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_LOG_SIZE = 200
_SEEN_BODIES = 4096
# Suffix match: gateways differ in whether they keep the /v1 prefix of the base URL.
_ROUTES = (
    ("/chat/completions", "chat", "POST"),
    ("/responses", "responses", "POST"),
    ("/embeddings", "embeddings", "POST"),
    ("/messages", "messages", "POST"),
    ("/models", "models", "GET"),
)
_CONTROL = {"/health": "GET", "/stats": "GET", "/stats/reset": "POST", "/requests": "GET"}


@dataclass(frozen=True, slots=True)
class MockOptions:
    """How the mock answers: delays, stream shape and injected faults (rates are 0..1).

    Raises:
        ConfigError: a rate outside 0..1, fewer than one chunk, a negative delay, or a
            fail code that is not an HTTP error status.
    """

    latency_ms: float = 0.0  # before the response head
    chunk_delay_ms: float = 0.0  # between stream events
    chunks: int = 8  # reply pieces in a stream
    fail_rate: float = 0.0  # model requests answered with one of fail_codes
    fail_codes: tuple[int, ...] = (500, 429)
    hang_rate: float = 0.0  # model requests never answered, until the client disconnects
    cut_rate: float = 0.0  # streams closed half-way, without their terminal events
    seed: int | None = None
    retry_after_s: int = 1  # `retry-after` sent with 429s

    def __post_init__(self) -> None:
        for name in ("fail_rate", "hang_rate", "cut_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1")
        if self.chunks < 1 or min(self.latency_ms, self.chunk_delay_ms, self.retry_after_s) < 0:
            raise ConfigError("chunks must be >= 1, delays and retry_after_s >= 0")
        if not self.fail_codes or any(not 400 <= code <= 599 for code in self.fail_codes):
            raise ConfigError("fail_codes must be HTTP error statuses (400-599)")


class Stats(TypedDict):
    total: int
    by_path: dict[str, int]
    by_status: dict[str, int]


class RequestRecord(TypedDict):
    time: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON object, None when the body was not one
    status: int | None  # None while pending, or for a hung request


@dataclass(slots=True)
class _Answer:
    status: int
    body: bytes = b""
    events: list[bytes] | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class MockProvider:
    """The ASGI app: answers model routes, counts them and keeps a bounded log of recent requests.

    Every request outside /health, /stats, /stats/reset and /requests counts as a model request,
    including 404s, so "the provider never saw it" checks cannot miss a mistyped path.
    """

    def __init__(self, options: MockOptions = MockOptions()) -> None:
        self.options = options
        # Fault injection, not security: a seedable PRNG keeps test runs reproducible.
        self._rng = random.Random(options.seed)  # noqa: S311
        self._seq = 0
        self._started = int(time.time())
        self._total = 0
        self._by_path: dict[str, int] = {}
        self._by_status: dict[str, int] = {}
        self._log: deque[RequestRecord] = deque(maxlen=_LOG_SIZE)
        self._vectors: dict[int, tuple[list[float], str]] = {}
        self._seen_bodies: OrderedDict[bytes, int] = OrderedDict()  # for `fail_first` markers

    def stats(self) -> Stats:
        """Model requests received: total, by path, and by the status they were answered with."""
        return {
            "total": self._total,
            "by_path": dict(self._by_path),
            "by_status": dict(self._by_status),
        }

    def recent_requests(self, limit: int = _LOG_SIZE) -> list[RequestRecord]:
        """The last `limit` model requests received (at most 200 are kept), oldest first."""
        return list(self._log)[-limit:] if limit > 0 else []

    def reset(self) -> None:
        """Zero the counters and forget the request log."""
        self._total = 0
        self._by_path.clear()
        self._by_status.clear()
        self._log.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        path: str = scope["path"]
        method: str = scope["method"]
        if path in _CONTROL:
            await _respond(send, self._control(path, method, scope["query_string"]))
            return
        headers = _headers(scope["headers"])
        request = _parse_object(body)
        record: RequestRecord = {
            "time": time.time(),
            "method": method,
            "path": path,
            "headers": headers,
            "body": request,
            "status": None,
        }
        self._log.append(record)
        self._total += 1
        self._by_path[path] = self._by_path.get(path, 0) + 1

        answer = self._refusal(path, method, headers, request)
        faults = None
        if answer is None:
            try:
                faults = read_faults(body)
            except ValueError as exc:
                answer = self._error(400, path, headers, str(exc))
        if answer is None and (
            (faults is not None and faults.is_hang) or self._draw(self.options.hang_rate)
        ):
            await _wait_for_disconnect(receive)
            return
        if answer is None and faults is not None and self._is_marked_failure(faults, body):
            status = faults.status or 503
            answer = self._error(status, path, headers, retry_after=faults.retry_after)
        if answer is None and faults is not None and faults.foreign_error is not None:
            answer = self._error(faults.foreign_error, path, headers, is_foreign=True)
        if answer is None and self._draw(self.options.fail_rate):
            answer = self._error(self._rng.choice(self.options.fail_codes), path, headers)
        if answer is None:
            try:
                answer = self._answer(path, headers, body, request or {})
            except (AttributeError, TypeError, KeyError, IndexError, ValueError):
                # A field of the wrong shape (stream_options as a string, say): a real
                # provider's validation answers 400, so the mock does too.
                answer = self._error(400, path, headers, "a field has the wrong type")
        latency_ms = self.options.latency_ms + (faults.latency_ms if faults is not None else 0)
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)
        record["status"] = answer.status
        status_key = str(answer.status)
        self._by_status[status_key] = self._by_status.get(status_key, 0) + 1
        if answer.events is not None and faults is not None and faults.stall_after is not None:
            await _stall(send, receive, answer, faults.stall_after)
            return
        if faults is not None and faults.misbehaves:
            await misbehave.respond(
                send, receive, answer.status, answer.body, answer.events, faults
            )
            return
        is_cut = answer.events is not None and self._draw(self.options.cut_rate)
        await _respond(send, answer, self.options.chunk_delay_ms / 1000, is_cut)

    def _is_marked_failure(self, faults: Faults, body: bytes) -> bool:
        if faults.status is None:
            return False
        if faults.fail_first is None:
            return True
        # Retries resend the same bytes, so the body identifies "the same request".
        digest = hashlib.sha256(body).digest()
        seen = self._seen_bodies.pop(digest, 0)
        self._seen_bodies[digest] = seen + 1
        if len(self._seen_bodies) > _SEEN_BODIES:
            self._seen_bodies.popitem(last=False)
        return seen < faults.fail_first

    def _draw(self, rate: float) -> bool:
        # Draw only when the fault is on, so a seeded run's sequence depends on enabled faults only.
        return rate > 0 and self._rng.random() < rate

    def _control(self, path: str, method: str, query: bytes) -> _Answer:
        if method != _CONTROL[path]:
            return _json(405, openai_wire.error_body(405, f"{method} not allowed on {path}"))
        params = parse_qs(query.decode("latin-1"))
        if path == "/health":
            return _json(200, {"status": "ok"})
        if path == "/requests":
            raw = params.get("limit", [str(_LOG_SIZE)])[0]
            if not raw.isdigit():
                return _json(400, openai_wire.error_body(400, "limit: a non-negative integer"))
            return _json(200, {"data": self.recent_requests(int(raw))})
        if path == "/stats/reset" or params.get("reset", [""])[0] in ("1", "true"):
            self.reset()
        return _json(200, self.stats())

    def _refusal(
        self, path: str, method: str, headers: dict[str, str], request: JSON | None
    ) -> _Answer | None:
        """The 4xx a real provider would give this request, or None when it is acceptable."""
        kind, expected = _route(path)
        if kind is None:
            return self._error(404, path, headers, f"Invalid URL ({method} {path})")
        if method != expected:
            return self._error(405, path, headers, f"{method} not allowed on {path}")
        if not (headers.get("authorization") or headers.get("x-api-key")):
            return self._error(
                401, path, headers, "No API key provided (Authorization or x-api-key)"
            )
        if method == "GET":
            return None
        problem = "body: not a JSON object" if request is None else missing_field(kind, request)
        return None if problem is None else self._error(400, path, headers, problem)

    def _error(
        self,
        status: int,
        path: str,
        headers: dict[str, str],
        message: str | None = None,
        retry_after: str | None = None,
        is_foreign: bool = False,
    ) -> _Answer:
        """An error in the caller's API shape (`is_foreign`: in the other API's shape)."""
        message = message or f"mock provider failure ({status})"
        if retry_after is None and status == 429:
            retry_after = str(self.options.retry_after_s)
        extra = [(b"retry-after", retry_after.encode("latin-1"))] if retry_after else []
        if _is_anthropic(path, headers) != is_foreign:
            request_id = f"req_mock{self._total:06d}"
            return _json(status, anthropic_wire.error_body(status, message, request_id), extra)
        return _json(status, openai_wire.error_body(status, message), extra)

    def _answer(self, path: str, headers: dict[str, str], body: bytes, request: JSON) -> _Answer:
        kind, _ = _route(path)
        wire = anthropic_wire if _is_anthropic(path, headers) else openai_wire
        if kind == "models":
            return _json(200, wire.models_list(self._started))
        if kind == "model":
            return _json(200, wire.model_entry(path.rsplit("/", 1)[1], self._started))
        if kind == "embeddings":
            return _json(200, self._embeddings(request, body))
        is_stream = request.get("stream") is True
        if kind == "responses":
            turn = self._turn(kind, request, body, request.get("input"))
            if is_stream:
                return _sse(openai_wire.responses_events(turn, request))
            return _json(200, openai_wire.response_object(turn, request, "completed"))
        turn = self._turn(kind, request, body, request["messages"])
        if kind == "chat" and is_stream:
            include_usage = (request.get("stream_options") or {}).get("include_usage") is True
            return _sse(openai_wire.chat_events(turn, include_usage))
        if kind == "chat":
            return _json(200, openai_wire.chat_body(turn))
        if is_stream:
            return _sse(anthropic_wire.message_events(turn))
        return _json(200, anthropic_wire.message_body(turn))

    def _turn(self, kind: str | None, request: JSON, body: bytes, messages: Any) -> Turn:
        self._seq += 1
        text = last_user_text(messages)
        plan = plan_tools(kind or "", request, text, self._seq)
        if plan is None:
            return compose_turn(self._seq, request["model"], body, text, self.options.chunks)
        return compose_turn(
            self._seq,
            request["model"],
            body,
            text,
            self.options.chunks,
            reply=plan.results_reply,
            tool_calls=plan.calls,
        )

    def _embeddings(self, request: JSON, body: bytes) -> JSON:
        dim: int = request.get("dimensions") or openai_wire.EMBEDDING_DIM
        if dim not in self._vectors:
            if len(self._vectors) >= 8:  # callers may ask for many sizes; keep the cache small
                self._vectors.clear()
            self._vectors[dim] = openai_wire.unit_vector(dim)
        floats, b64 = self._vectors[dim]
        vector = b64 if request.get("encoding_format") == "base64" else floats
        return openai_wire.embeddings_body(request, body, vector)


def server_config(host: str, port: int, options: MockOptions) -> uvicorn.Config:
    """The uvicorn configuration `run` serves; tests use it with `uvicorn.Server` in a thread."""
    return uvicorn.Config(
        MockProvider(options),
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools",
        ws="none",
        lifespan="on",
        access_log=False,
        server_header=False,
        log_level="warning",
    )


def run(host: str, port: int, options: MockOptions) -> None:
    """Serve the mock provider on a loopback address until interrupted (blocking).

    Raises:
        ConfigError: `host` is not loopback; `/requests` shows the credentials callers send.
    """
    is_loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        is_loopback = is_loopback or ipaddress.ip_address(host).is_loopback
    if not is_loopback:
        raise ConfigError(f"the mock provider binds loopback addresses only, not {host!r}")
    uvicorn.Server(server_config(host, port, options)).run()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _wait_for_disconnect(receive: Receive) -> None:
    # Once the body is read, receive() returns only when the client goes away: that is the hang.
    while (await receive())["type"] != "http.disconnect":
        pass


async def _stall(send: Send, receive: Receive, answer: _Answer, events: int) -> None:
    """Start the stream, send `events` events, then go silent until the client leaves."""
    headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    sent = b"".join((answer.events or [])[:events])
    await send({"type": "http.response.body", "body": sent, "more_body": True})
    await _wait_for_disconnect(receive)


async def _respond(send: Send, answer: _Answer, delay: float = 0.0, is_cut: bool = False) -> None:
    if answer.events is None:
        length = str(len(answer.body)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", length)]
        start = {"type": "http.response.start", "status": answer.status}
        await send({**start, "headers": headers + answer.headers})
        await send({"type": "http.response.body", "body": answer.body})
        return
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    events = answer.events[: len(answer.events) // 2] if is_cut else answer.events
    if delay <= 0:
        # One write for the whole stream: SSE framing, not TCP segments, separates the events.
        await send({"type": "http.response.body", "body": b"".join(events), "more_body": is_cut})
    else:
        for index, event in enumerate(events):
            if index:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if not is_cut:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    # A cut stream returns with its body unfinished: the ASGI server then closes the connection
    # (uvicorn logs one error line), so the client sees a truncated chunked body.


def _json(status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None) -> _Answer:
    return _Answer(status, orjson.dumps(payload), None, headers or [])


def _sse(events: list[bytes]) -> _Answer:
    return _Answer(200, b"", events)


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _parse_object(body: bytes) -> JSON | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _route(path: str) -> tuple[str | None, str]:
    for suffix, kind, method in _ROUTES:
        if path.endswith(suffix):
            return kind, method
    return ("model", "GET") if "/models/" in path else (None, "")


def _is_anthropic(path: str, headers: dict[str, str]) -> bool:
    # /v1/models is shared: the Anthropic SDK always sends anthropic-version, OpenAI's never does.
    return path.endswith("/messages") or "anthropic-version" in headers

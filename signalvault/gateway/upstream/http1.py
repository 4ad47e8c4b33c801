"""The pooled HTTP/1.1 client that calls providers.

A provider call is one POST of a body already in memory, answered by JSON or by a server-sent
event stream, so the client needs keep-alive pooling, TLS, the provider's four timeouts and
streamed reading with back-pressure, and nothing of a general client (cookies, redirects,
multipart, proxies). Built on asyncio's transports and httptools' llhttp parser (the parser
uvicorn serves with), it costs ~1/5 of aiohttp's instructions per call (`bench/upstream_client.py`).
Every failure is an `UpstreamError` whose `kind` says which limit or step failed; messages carry
no content, headers or keys.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 1 << 18  # bytes buffered from a response before the socket stops being read
_UNSAFE = re.compile(r"[\r\n\x00]")  # a header that could smuggle another line into the request
_ENDS_AT_CLOSE = object()
_KEEP_ALIVE_TIMEOUT = re.compile(r"timeout\s*=\s*(\d+)")


class UpstreamError(Exception):
    """A call that failed; `kind` is `connect_timeout`, `connect_error`, `first_byte_timeout`,
    `idle_timeout`, `timeout` (the total) or `connection_error` (dropped, or not HTTP)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"provider call failed: {kind}")
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Timeouts:
    total: float  # the whole call, a stream included
    connect: float  # opening the connection (TLS handshake included)
    first_byte: float  # from the request sent to the response head
    idle: float  # the longest silence between parts of the body


@dataclass(frozen=True, slots=True)
class _Origin:
    key: tuple[str, str, int]  # scheme, host, port: the pool a connection belongs to
    host_header: str
    target: str  # path and query


class Response:
    """A response whose head has arrived; its body is read with `read` or `iter_any`. Either
    `release` (the connection goes back to the pool if the body was read to its end) or
    `close` must be called."""

    __slots__ = ("_conn", "_deadline", "_idle", "_inflate", "content_length", "headers", "status")

    def __init__(self, conn: _Connection, deadline: float, idle: float) -> None:
        self.status: int = conn.status
        self.headers: dict[str, str] = conn.headers  # lower-case names
        length = self.headers.get("content-length")
        self.content_length = int(length) if length is not None and length.isdigit() else None
        self._conn: _Connection | None = conn
        self._deadline = deadline
        self._idle = idle
        coding = self.headers.get("content-encoding", "identity").strip().lower()
        # Asked for identity; a provider that compresses anyway is still read (gzip, deflate).
        self._inflate = zlib.decompressobj(wbits=47) if coding in ("gzip", "deflate") else None
        if coding not in ("identity", "", "gzip", "deflate"):
            self.close()
            raise UpstreamError("connection_error")

    async def read(self, limit: int) -> bytes:
        """Up to `limit` bytes of the body as they arrive; b"" at its end."""
        conn = self._conn
        if conn is None:
            return b""
        if self._inflate is None:
            return await conn.take(limit, self._deadline, self._idle)
        try:
            while True:  # at most `limit` bytes inflated at a time: no bomb held whole
                data = self._inflate.unconsumed_tail or await conn.take(
                    limit, self._deadline, self._idle
                )
                if not data:
                    return self._inflate.flush()
                if out := self._inflate.decompress(data, limit):
                    return out
        except zlib.error:
            self.close()
            raise UpstreamError("connection_error") from None

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrives in (whatever is buffered at each wake)."""
        while data := await self.read(1 << 30):
            yield data

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class _Connection(asyncio.Protocol):
    """One connection to an origin, and the parser of the response in flight on it."""

    def __init__(self, client: Client, key: tuple[str, str, int]) -> None:
        self._client = client
        self._key = key
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.in_use = False
        self.expires = 0.0  # while idle in the pool: when it is too old to reuse
        self._waiter: asyncio.Future[None] | None = None
        self._error: UpstreamError | None = None
        self._paused = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_done = False
        self.keep_alive = False
        self.complete = False
        self.buffer: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self._framing: object = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it

    def data_received(self, data: bytes) -> None:
        if not self.in_use or self.complete:
            self.close()  # bytes nobody asked for: the connection cannot be trusted again
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._fail(UpstreamError("connection_error"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and self._framing is _ENDS_AT_CLOSE and exc is None:
            self.complete = True  # a body without length or chunks ends with the connection
            self._wake()
        elif not self.complete:
            self._fail(UpstreamError("connection_error"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self.headers = {}  # an interim response: the real head follows
            return
        self.status = status
        self.head_done = True
        self.keep_alive = self._parser.should_keep_alive()  # the flags reset once a message ends
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if not chunked and "content-length" not in self.headers and status not in (204, 304):
            self._framing = _ENDS_AT_CLOSE
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.buffer.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True
            self._wake()

    # the client's side
    async def send(self, head: bytes, body: bytes, deadline: float, first_byte: float) -> None:
        assert self.transport is not None
        self._error = None
        self._reset()
        self.in_use = True
        self.transport.writelines((head, body))
        while not self.head_done:
            await self._wait(deadline, first_byte, "first_byte_timeout")

    async def take(self, limit: int, deadline: float, idle: float) -> bytes:
        while not self.buffer:
            if self.complete:
                return b""
            await self._wait(deadline, idle, "idle_timeout")
        if len(self.buffer) == 1 and self.buffered <= limit:
            data = self.buffer.popleft()
        else:
            parts = []
            size = 0
            while self.buffer and size < limit:
                part = self.buffer.popleft()
                if size + len(part) > limit:
                    part, rest = part[: limit - size], part[limit - size :]
                    self.buffer.appendleft(rest)
                parts.append(part)
                size += len(part)
            data = b"".join(parts)
        self.buffered -= len(data)
        if self._paused and self.buffered <= _HIGH_WATER // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def _wait(self, deadline: float, seconds: float, kind: str) -> None:
        if self._error is not None:
            raise self._error
        left = deadline - time.monotonic()
        if left <= seconds:
            seconds, kind = left, "timeout"
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(max(seconds, 0.0), _expire, waiter, kind)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def finish(self) -> None:
        """After the caller is done: back to the pool if the exchange ended cleanly."""
        self.in_use = False
        if self.complete and not self.buffer and self.keep_alive:
            self._client.put_back(self._key, self, self.headers.get("keep-alive"))
        else:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def is_reusable(self, now: float) -> bool:
        transport = self.transport
        return (
            not self.closed
            and transport is not None
            and not transport.is_closing()
            and now < self.expires
        )


def _expire(waiter: asyncio.Future[None], kind: str) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamError(kind))


class Client:
    """Keep-alive connections per origin, reused most recently idle first; no limit on their
    number (the gateway's own concurrency bounds it)."""

    def __init__(self, keepalive_seconds: float = 60.0, tls: ssl.SSLContext | None = None) -> None:
        self._keepalive = keepalive_seconds
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._origins: dict[str, _Origin] = {}
        self._tls = tls  # None: the system's CAs, made at the first https call
        self._closed = False
        self._sweeper: asyncio.TimerHandle | None = None

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeouts: Timeouts
    ) -> Response:
        """Send `body` and wait for the response head. Raises UpstreamError, or ValueError for
        a header that holds a line break or a character HTTP/1.1 cannot carry."""
        started = time.monotonic()
        deadline = started + timeouts.total
        origin = self._origin(url)
        head = _request_head(origin, len(body), headers)
        conn = self._pooled(origin.key, started)
        if conn is None:
            conn = await self._connect(origin.key, deadline, timeouts.connect)
        try:
            await conn.send(head, body, deadline, timeouts.first_byte)
        except BaseException:
            conn.close()
            raise
        return Response(conn, deadline, timeouts.idle)

    def put_back(
        self, key: tuple[str, str, int], conn: _Connection, keep_alive: str | None
    ) -> None:
        """Pool `conn` for reuse; a server's `Keep-Alive: timeout=N` shortens its stay, by a
        second, so it is not reused just as the server closes it."""
        if self._closed:
            conn.close()
            return
        seconds = self._keepalive
        if keep_alive is not None and (said := _KEEP_ALIVE_TIMEOUT.search(keep_alive)):
            seconds = min(seconds, int(said.group(1)) - 1.0)
        conn.expires = time.monotonic() + seconds
        self._idle.setdefault(key, []).append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self._keepalive, self._sweep)

    def _sweep(self) -> None:
        """Close what stayed idle past its time, or what the server closed: after a burst the
        pool shrinks back instead of holding the burst's connections open. Runs, every
        keep-alive period, while anything is pooled."""
        self._sweeper = None
        now = time.monotonic()
        for idle in self._idle.values():
            for conn in idle:
                if not conn.is_reusable(now):
                    conn.close()
            idle[:] = [conn for conn in idle if not conn.closed]
        if any(self._idle.values()):
            self._sweeper = asyncio.get_running_loop().call_later(self._keepalive, self._sweep)

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    def _pooled(self, key: tuple[str, str, int], now: float) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.is_reusable(now):
                return conn
            conn.close()
        return None

    async def _connect(
        self, key: tuple[str, str, int], deadline: float, seconds: float
    ) -> _Connection:
        scheme, host, port = key
        left = deadline - time.monotonic()
        kind = "connect_timeout" if seconds < left else "timeout"
        tls = self._tls_context() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(min(seconds, left)):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, key),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
        except TimeoutError:
            raise UpstreamError(kind) from None
        except (OSError, ssl.SSLError):
            raise UpstreamError("connect_error") from None
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()  # the system's CAs; hostnames checked
        return self._tls

    def _origin(self, url: str) -> _Origin:
        origin = self._origins.get(url)
        if origin is None:
            if len(self._origins) >= 256:
                self._origins.clear()
            origin = self._origins[url] = _parse_origin(url)
        return origin


def _parse_origin(url: str) -> _Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a provider URL must be http:// or https:// with a host")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Origin((scheme, host, port), host_header, target)


def _request_head(origin: _Origin, length: int, headers: Mapping[str, str]) -> bytes:
    lines = [
        f"POST {origin.target} HTTP/1.1\r\nhost: {origin.host_header}\r\n"
        f"content-length: {length}\r\naccept-encoding: identity\r\n"
    ]
    for name, value in headers.items():
        if _UNSAFE.search(name) or _UNSAFE.search(value):
            raise ValueError("a header for the provider holds a line break")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("a header for the provider holds a character HTTP cannot carry") from None

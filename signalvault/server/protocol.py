"""The HTTP/1.1 protocol the gateway serves with: uvicorn's httptools protocol, bounded.

uvicorn's httptools protocol bounds neither the size nor the arrival time of a request head, so
`GuardedHttpTools` adds both: a slow or oversized head costs the gateway one closed socket. At
shutdown it answers one more request on each connection between requests (accepted just before
the listener closed, or kept alive) instead of closing it under a request on its way. What a
response writes in one step of the event loop leaves in one send.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from signalvault.config import ServerSettings

_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 32\r\nconnection: close\r\n\r\nRequest header fields too large\n"
)


class GatheredWrites:
    """A connection's transport as its protocol and responses write to it: what they write while
    the event loop's current step runs leaves in one send when the step ends.

    uvicorn writes a response's head, then each body piece, then a stream's closing chunk, each
    in a send of its own: two system calls per JSON answer, and the last event of a stream and
    its end in two more. The body of a response of known length leaves as soon as it is
    complete, with its head (nothing follows it); a stream's pieces leave when the step that
    wrote them ends (the relay then waits for the provider). Closing sends what is held first.
    """

    __slots__ = ("_held", "_loop", "_protocol", "_transport")

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        protocol: HttpToolsProtocol,
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._protocol = protocol
        self._held: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._transport.is_closing():  # it raises, as without us: the caller has left
            self._transport.write(data)
            return
        held = self._held
        if held is None:
            self._held = held = []
            self._loop.call_soon(self.flush)
        held.append(data)
        # A body of known length is complete (uvicorn counts it down before writing), or a
        # chunked one ends (uvicorn's last write ends with the empty chunk; a piece that merely
        # ends so is only sent sooner): nothing follows, send now.
        if data.endswith(b"0\r\n\r\n") or _is_complete_body(self._protocol.cycle):
            self.flush()

    def flush(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # get_extra_info, pause_reading, ...: the socket's
        return getattr(self._transport, name)


def _is_complete_body(cycle: Any) -> bool:
    if cycle is None or cycle.chunked_encoding is not False:  # no response, or a stream
        return False
    return not cycle.expected_content_length


# How long a connection between requests may take to send one more once a worker stops.
SHUTDOWN_GRACE = 1.0


class GuardedHttpTools(HttpToolsProtocol):
    """httptools with a byte limit (431) and a deadline (disconnect) on each request head.

    The parser reports the URL and each header as they complete; reads that end inside a head are
    counted too, so one endless header holds at most `max_head_bytes` plus one read in memory.
    Once refused, the rest of the read is parsed but ignored: no request reaches the app.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        max_head_bytes: int,
        head_timeout: float,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._max_head = max_head_bytes
        self._head_timeout = head_timeout
        self._head_bytes = 0  # parsed URL and headers of the current head
        self._partial_bytes = 0  # bytes of reads that ended inside the current head
        self._is_in_head = False  # from a message's first byte to the end of its headers
        self._is_refused = False
        self._is_last_request = False  # shutting down: the next request is served, then closes
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = GatheredWrites(transport, self.loop, self)  # type: ignore[assignment]
        self._arm_head_timer()  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._is_refused:
            return
        super().data_received(data)
        if self._is_in_head and not self._is_refused:
            self._partial_bytes += len(data)
            if self._partial_bytes > self._max_head:
                self._refuse()

    def on_message_begin(self) -> None:
        if self._is_refused:
            return
        super().on_message_begin()
        self._is_in_head = True
        self._head_bytes = self._partial_bytes = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        if self._is_within_limit(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._is_within_limit(len(name) + len(value) + 4):  # ": " and CRLF
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._is_in_head = False
        self._disarm_head_timer()
        if not self._is_refused:
            super().on_headers_complete()
            if self._is_last_request and self.cycle is not None:
                self.cycle.keep_alive = False

    def shutdown(self) -> None:
        """Graceful shutdown (uvicorn calls it once the listener is closed). uvicorn closes every
        connection between requests at once, and a client whose request was already on its way
        (a connection accepted just before the listener closed, or a kept-alive one it reused
        that moment) got a reset for a request nobody refused: on every reload under load. So
        a connection between requests is served one more request, answered `Connection: close`;
        one that sends nothing within SHUTDOWN_GRACE seconds is closed then."""
        if self.cycle is not None and not self.cycle.response_complete:
            super().shutdown()  # inside a response: the connection closes after it
            return
        self._is_last_request = True
        if not self._is_in_head:  # a head on its way keeps its own deadline
            self._disarm_head_timer()
            timeout = min(SHUTDOWN_GRACE, self._head_timeout)
            self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

    def on_body(self, body: bytes) -> None:
        if not self._is_refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._is_refused:
            super().on_message_complete()

    def _is_within_limit(self, size: int) -> bool:
        if self._is_refused:
            return False
        self._head_bytes += size
        if self._head_bytes > self._max_head:
            self._refuse()
        return not self._is_refused

    def _refuse(self) -> None:
        self._is_refused = True
        self._disarm_head_timer()
        if self.cycle is None or self.cycle.response_complete:  # never inside another response
            self.transport.write(_HEAD_TOO_LARGE)
        self.transport.close()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and not self.transport.is_closing():
            self._is_refused = True
            self.transport.close()


def http_protocol(settings: ServerSettings) -> Any:
    """The protocol factory uvicorn calls per connection (a partial, so workers can unpickle it)."""
    return functools.partial(
        GuardedHttpTools,
        max_head_bytes=settings.max_header_bytes,
        head_timeout=settings.header_timeout_seconds,
    )

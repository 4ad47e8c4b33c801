"""Faults below HTTP, which no ASGI server lets an app commit: a Content-Length far smaller than
the body that follows, and a TCP reset in the middle of a stream.

`WireFaultServer` serves a `MockProvider` over plain asyncio sockets (loopback only; for tests),
writes its answers as HTTP/1.1 itself and breaks them where a request's `[[mock:length_lie]]` or
`[[mock:reset_after=N]]` marker says; every other answer goes out well-formed. It keeps every
request body it reads, byte for byte (`bodies`). Imports only the mock provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any

from signalvault.mock_provider.app import Message, MockProvider
from signalvault.mock_provider.faults import Faults, read_faults

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 429: b"Too Many Requests"}
LIE = 64  # the Content-Length announced by `length_lie`, whatever the body's size
_PAD_TO = 1 << 20  # a lying answer is padded to at least this many bytes: "far larger"


class WireFaultServer:
    """A MockProvider behind a hand-written HTTP/1.1 server on a loopback port, in a thread."""

    def __init__(self, provider: MockProvider) -> None:
        self.provider = provider
        self.bodies: list[bytes] = []  # request bodies as they arrived
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> WireFaultServer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0), self._loop
        ).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._exchange(reader, writer):
                pass
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the client went away or spoke no HTTP: drop the connection
        finally:
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection is to be dropped."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = [
            (name.strip().lower().encode("latin-1"), value.strip().encode("latin-1"))
            for name, _, value in (line.partition(":") for line in lines if line)
        ]
        length = int(dict(headers).get(b"content-length", b"0"))
        body = await reader.readexactly(length)
        self.bodies.append(body)
        faults = _faults(body)
        answer = _Collected(writer, faults)
        gone = asyncio.ensure_future(reader.read(1))  # the gateway never pipelines: data means EOF

        async def receive() -> Message:
            if not answer.body_delivered:
                answer.body_delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone
            return {"type": "http.disconnect"}

        path, _, query = target.partition("?")
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": query.encode("latin-1"),
            "headers": headers,
        }
        try:
            await self.provider(scope, receive, answer.send)
            return await answer.finish()
        finally:
            gone.cancel()


class _Collected:
    """Writes one answer's ASGI messages to the socket, or holds them back to break them."""

    def __init__(self, writer: asyncio.StreamWriter, faults: Faults | None) -> None:
        self._writer = writer
        self._faults = faults
        self._is_held = faults is not None and (
            faults.is_length_lie or faults.reset_after is not None
        )
        self._status = 200
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._is_chunked = False
        self._is_complete = False
        self.body_delivered = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = message["status"]
            self._headers = list(message.get("headers", []))
            self._is_chunked = not any(name == b"content-length" for name, _ in self._headers)
            if not self._is_held:
                self._write_head(self._headers, chunked=self._is_chunked)
            return
        data: bytes = message.get("body", b"")
        self._is_complete = not message.get("more_body", False)
        if self._is_held:
            self._body.append(data)
            return
        if self._is_chunked:
            if data:
                self._writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            if self._is_complete:
                self._writer.write(b"0\r\n\r\n")
        else:
            self._writer.write(data)
        await self._writer.drain()

    async def finish(self) -> bool:
        """Break a held answer as its faults say; True if the connection may serve another."""
        faults = self._faults
        if not self._is_held or faults is None:
            return self._is_complete
        body = b"".join(self._body)
        if faults.reset_after is not None:
            events = body.split(b"\n\n")[: faults.reset_after]
            self._write_head(self._headers, chunked=True)
            for event in events:
                self._writer.write(b"%x\r\n%s\n\n\r\n" % (len(event) + 2, event))
            await self._writer.drain()
            _reset(self._writer)
            return False
        padded = body + b" " * max(0, _PAD_TO - len(body))
        headers = [(n, v) for n, v in self._headers if n != b"content-length"]
        self._write_head([*headers, (b"content-length", str(LIE).encode())], chunked=False)
        self._writer.write(padded)  # far more than announced; the rest is garbage on the wire
        await self._writer.drain()
        return False

    def _write_head(self, headers: list[tuple[bytes, bytes]], *, chunked: bool) -> None:
        reason = _REASONS.get(self._status, b"Status")
        lines = [b"HTTP/1.1 %d %s" % (self._status, reason)]
        lines += [name + b": " + value for name, value in headers]
        if chunked:
            lines.append(b"transfer-encoding: chunked")
        self._writer.write(b"\r\n".join(lines) + b"\r\n\r\n")


def _faults(body: bytes) -> Faults | None:
    with contextlib.suppress(ValueError):  # the mock itself answers 400 for a bad marker
        return read_faults(body)
    return None


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN: linger on, with a zero timeout."""
    sock: Any = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()

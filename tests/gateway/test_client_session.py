"""The pooled upstream client is shared by every caller, so nothing one provider answer sets may
ride along on another caller's request."""

from __future__ import annotations

import asyncio

from signalvault.gateway.providers import new_client_session


async def _serve_and_call() -> list[bytes]:
    """Two calls to a server whose first answer sets a cookie; the request heads it received."""
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            heads.append(head)
            cookie = b"Set-Cookie: session=caller-a; Path=/\r\n" if len(heads) == 1 else b""
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + cookie + b"\r\nok")
            await writer.drain()
            if len(heads) == 2:
                break
        writer.close()

    # A host name, not an address: the default cookie jar ignores cookies from IP addresses.
    server = await asyncio.start_server(answer, "localhost", 0)
    port = server.sockets[0].getsockname()[1]
    session = new_client_session()
    try:
        for _ in range(2):
            async with session.get(f"http://localhost:{port}/v1/models") as response:
                assert await response.read() == b"ok"
    finally:
        await session.close()
        server.close()
        await server.wait_closed()
    return heads


def test_cookies_a_provider_sets_are_never_sent_on_later_requests():
    heads = asyncio.run(_serve_and_call())
    assert len(heads) == 2
    assert b"cookie:" not in heads[1].lower()

"""The provider client (`gateway.upstream.http1`) against scripted servers: pooling, framing,
timeouts, back-pressure and refusals, each as a provider or the network can cause them."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signalvault.gateway.upstream.http1 import Client, Response, Timeouts, UpstreamError

FAST = Timeouts(total=5, connect=2, first_byte=2, idle=2)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Server:
    """Accepts connections and hands every request (head read, body skipped) to `handler`
    with its number; counts connections and keeps the request heads."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.hangups = 0  # connections the client closed
        self.heads: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.heads.append(head)
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                await self.handler(reader, writer, len(self.heads))
        except asyncio.IncompleteReadError:
            self.hangups += 1
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    async def __aexit__(self, *exc: object) -> None:
        for writer in self.writers:
            writer.close()
        self._server.close()


def answer(body: bytes = b'{"ok":true}', extra: bytes = b"") -> Handler:
    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n" % (len(body), extra))
        writer.write(body)
        await writer.drain()

    return handler


async def body_of(response: Response) -> bytes:
    parts = []
    while part := await response.read(1 << 16):
        parts.append(part)
    response.release()
    return b"".join(parts)


async def call(client: Client, url: str, timeouts: Timeouts = FAST) -> tuple[int, bytes]:
    response = await client.post(url, b'{"model":"m"}', {"x-api-key": "k"}, timeouts)
    return response.status, await body_of(response)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_one_connection_serves_calls_one_after_another_and_sends_no_cookie_back():
    async def test() -> None:
        server = Server(answer(extra=b"set-cookie: session=caller-a\r\n"))
        async with server as url:
            client = Client()
            for _ in range(3):
                assert await call(client, url) == (200, b'{"ok":true}')
            await client.close()
        assert server.connections == 1
        head = server.heads[1].lower()
        assert b"cookie" not in head
        assert b"host: 127.0.0.1:" in head and b"accept-encoding: identity" in head
        assert b"x-api-key: k" in head and b"content-length: 13" in head

    run(test)


@pytest.mark.parametrize(
    "extra", [b"connection: close\r\n", b"keep-alive: timeout=1\r\n"], ids=["close", "short"]
)
def test_a_connection_the_server_will_close_is_not_reused(extra: bytes):
    async def test() -> None:
        server = Server(answer(extra=extra))
        async with server as url:
            client = Client()
            for _ in range(2):
                assert (await call(client, url))[0] == 200
            await client.close()
        assert server.connections == 2

    run(test)


def _drop(writer: asyncio.StreamWriter) -> None:
    writer.close()  # the provider's idle timeout


def _speak_unasked(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")


@pytest.mark.parametrize("disturb", [_drop, _speak_unasked], ids=["dropped", "unasked-bytes"])
def test_a_pooled_connection_the_server_disturbed_is_replaced_without_an_error(
    disturb: Callable[[asyncio.StreamWriter], None],
):
    async def test() -> None:
        server = Server(answer())
        async with server as url:
            client = Client()
            await call(client, url)
            disturb(server.writers[0])
            await asyncio.sleep(0.05)
            assert (await call(client, url))[0] == 200
            await client.close()
        assert server.connections == 2

    run(test)


def test_connections_idle_past_the_keep_alive_period_are_closed():
    async def test() -> None:
        server = Server(answer())
        async with server as url:
            client = Client(keepalive_seconds=0.2)
            responses = [await client.post(url, b"{}", {}, FAST) for _ in range(3)]  # a burst
            for response in responses:
                await body_of(response)
            await asyncio.sleep(0.1)
            assert server.hangups == 0
            await asyncio.sleep(0.5)
            assert (server.connections, server.hangups) == (3, 3)
            await client.close()

    run(test)


def _stalls_after(data: bytes) -> Handler:
    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(5)

    return handler


@pytest.mark.parametrize(
    ("sent", "timeouts", "kind"),
    [
        (b"", Timeouts(total=5, connect=2, first_byte=0.1, idle=2), "first_byte_timeout"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc",
            Timeouts(total=5, connect=2, first_byte=2, idle=0.1),
            "idle_timeout",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc",
            Timeouts(total=0.3, connect=2, first_byte=2, idle=2),
            "timeout",
        ),
    ],
    ids=["first-byte", "idle", "total"],
)
def test_each_limit_ends_a_silent_call_with_its_own_kind(
    sent: bytes, timeouts: Timeouts, kind: str
):
    async def test() -> None:
        async with Server(_stalls_after(sent)) as url:
            client = Client()
            with pytest.raises(UpstreamError) as failure:
                await call(client, url, timeouts)
            assert failure.value.kind == kind
            await client.close()

    run(test)


def test_a_port_nobody_listens_on_is_a_connect_error():
    async def test() -> None:
        async with Server(answer()) as url:
            pass  # closed again: the port is free
        with pytest.raises(UpstreamError) as failure:
            await call(Client(), url)
        assert failure.value.kind == "connect_error"

    run(test)


@pytest.mark.parametrize(
    "sent",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n" + b"x" * 20,  # a length that lied
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",  # not HTTP
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabc",  # a chunk cut off
    ],
    ids=["short-body", "not-http", "cut-chunk"],
)
def test_an_answer_broken_off_or_not_http_is_a_connection_error(sent: bytes):
    async def closes_after(_: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(sent)
        await writer.drain()
        writer.close()

    async def test() -> None:
        async with Server(closes_after) as url:
            with pytest.raises(UpstreamError) as failure:
                await call(Client(), url)
            assert failure.value.kind == "connection_error"

    run(test)


def test_a_body_without_length_ends_with_the_connection_and_interim_heads_are_skipped():
    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nx-a: 0\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nx-a: 1\r\nX-A: 2\r\n\r\n")
        writer.write(b"all of it")
        await writer.drain()
        writer.close()

    async def test() -> None:
        async with Server(handler) as url:
            response = await Client().post(url, b"{}", {}, FAST)
            assert response.status == 201 and response.headers["x-a"] == "1, 2"
            assert await body_of(response) == b"all of it"

    run(test)


def test_a_stream_arrives_piece_by_piece():
    pieces = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]

    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
        writer.write(b"transfer-encoding: chunked\r\n\r\n")
        for piece in pieces:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def test() -> None:
        async with Server(handler) as url:
            response = await Client().post(url, b"{}", {}, FAST)
            assert [piece async for piece in response.iter_any()] == pieces
            response.release()

    run(test)


def test_a_reader_that_falls_behind_stops_the_socket_and_loses_nothing():
    body = bytes(range(256)) * 16384  # 4 MiB

    async def test() -> None:
        async with Server(answer(body)) as url:
            response = await Client().post(url, b"{}", {}, FAST)
            await asyncio.sleep(0.3)  # the server has written all it could
            conn = response._conn
            assert conn is not None and conn.buffered < 1 << 20
            assert await body_of(response) == body

    run(test)


def test_a_compressed_answer_is_inflated_a_bounded_piece_at_a_time():
    plain = b'{"text":"' + b"a" * 200_000 + b'"}'

    async def test() -> None:
        async with Server(answer(gzip.compress(plain), b"content-encoding: gzip\r\n")) as url:
            response = await Client().post(url, b"{}", {}, FAST)
            pieces = []
            while piece := await response.read(4096):
                assert len(piece) <= 4096
                pieces.append(piece)
            assert b"".join(pieces) == plain

    run(test)


def test_a_header_that_would_inject_a_line_is_refused_before_anything_is_sent():
    async def test() -> None:
        server = Server(answer())
        async with server as url:
            with pytest.raises(ValueError) as refused:
                await Client().post(url, b"{}", {"x-api-key": "k\r\nx-evil: 1"}, FAST)
            assert "k\r\n" not in str(refused.value)
        assert server.heads == []

    run(test)


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `localhost` and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_checks_the_provider_certificate(tmp_path: Path):
    cert_file, key_file = _certificate(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))

    async def test() -> None:
        server = Server(answer())
        server_side = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=served)
        port = server_side.sockets[0].getsockname()[1]
        try:
            client = Client(tls=trusting)
            url = f"https://localhost:{port}/v1/chat/completions"
            assert await call(client, url) == (200, b'{"ok":true}')
            assert b"host: localhost:%d" % port in server.heads[0]
            with pytest.raises(UpstreamError) as refused:
                await call(Client(), url)  # the system's CAs do not know this certificate
            assert refused.value.kind == "connect_error"
            await client.close()
        finally:
            server_side.close()

    run(test)

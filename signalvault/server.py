"""Running the gateway under uvicorn (uvloop + httptools), one or several worker processes
(several: `Supervisor`, each worker on a socket of its own).

uvicorn's httptools protocol bounds neither the size nor the arrival time of a request head, so
`GuardedHttpTools` adds both: a slow or oversized head costs the gateway one closed socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from signalvault import BUILD
from signalvault.app import GatewayApp, create_app
from signalvault.config import ServerSettings, Settings, load_settings
from signalvault.control.services import open_services
from signalvault.errors import ConfigError
from signalvault.gateway.providers import Router
from signalvault.logfmt import configure_logging

NO_PROVIDERS = (
    "no providers configured: add one to signalvault.toml, e.g.\n\n"
    "[[providers]]\n"
    'name = "openai"\n'
    'kind = "openai"\n'
    'base_url = "https://api.openai.com/v1"\n'
    'api_key_env = "OPENAI_API_KEY"\n'
    'models = ["gpt-*", "o*"]\n\n'
    "(or run `signalvault demo` to try it with the built-in mock provider)"
)


_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 32\r\nconnection: close\r\n\r\nRequest header fields too large\n"
)


# How long a connection accepted just before a worker stops may take to send its first request.
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
        connection between requests at once; a connection accepted just before the listener
        closed has not sent its request yet, and its client gets a reset for a request it
        never saw refused (seen on every reload under load). So a connection that has carried
        no request yet, or is inside a request's head, is served one more request and closed;
        one that sends nothing within SHUTDOWN_GRACE seconds is closed then."""
        is_fresh = self.cycle is None
        is_next_arriving = self._is_in_head and (is_fresh or self.cycle.response_complete)
        if not (is_fresh or is_next_arriving):
            super().shutdown()  # inside a response (closes after it) or idle between requests
            return
        self._is_last_request = True
        if not self._is_in_head:
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


def preflight(settings: Settings) -> None:
    """Fail fast with a clear message: providers, credentials, master key, store migrations."""
    if not settings.providers and not settings.mcp_servers:  # an MCP-only gateway is one too
        raise ConfigError(NO_PROVIDERS)
    Router(settings)
    open_services(settings).store.close()


# Young-generation collections every 10,000 net allocations instead of 700: a request allocates
# hundreds of short-lived objects, nearly all freed by reference counting, so most collections
# found nothing to free and cost ~15 us per request.
GC_THRESHOLDS = (10_000, 10, 10)


def settle_heap() -> None:
    """After startup, before the first request: move everything loaded so far (modules, detector
    tables) out of the collector's sight with `gc.freeze()`. A full collection
    otherwise walked those objects and held every request for ~100 ms (measured at c=16)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# glibc malloc options (mallopt). Allocations of 128 KiB and more are mapped, and unmapped when
# freed: by default that threshold rises with the largest block freed (to 32 MiB), so startup's
# big transient tables (tiktoken's ranks, the name lists) and later large buffers stayed in the
# heap as free memory the process kept. Measured with bench RSS runs: startup 141 -> 130 MiB,
# after 3,000 JSON requests 146 -> 135 MiB. Fixing one threshold fixes the other too; the heap's
# free top is kept up to 16 MiB (128 KiB, glibc's fixed default, unmapped and faulted back pages
# ~240 times per 2,000 requests for no RSS gain). An operator's MALLOC_*_ variables win.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOC_OPTIONS = (
    (_M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 128 * 1024),
    (_M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 16 * 1024 * 1024),
)


def tune_malloc() -> None:
    """Apply the malloc options above in this process (no-op without glibc's mallopt)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without the symbol)
        return
    for option, variable, value in _MALLOC_OPTIONS:
        if variable not in os.environ:
            mallopt(option, value)


def served_app(settings: Settings) -> GatewayApp:
    """The gateway as a server runs it: its heap settled once startup is complete."""
    app = create_app(settings)
    app.on_started = settle_heap
    # The admin API, built on its first request, joins what the collector no longer walks
    # (no full collection here: it would hold the event loop).
    app.on_control_built = gc.freeze
    return app


def worker_app() -> object:
    """uvicorn factory for multi-worker mode: each worker process loads the settings itself."""
    tune_malloc()
    settings = load_settings()  # SIGNALVAULT_CONFIG names the file, set by `serve`
    configure_logging(settings.logging)
    return served_app(settings)


def serve(
    settings: Settings,
    config_file: Path | None,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    tune_malloc()
    configure_logging(settings.logging)
    preflight(settings)
    # Which code serves (signalvault/compiled.py): an operator can tell a stale build.
    logging.getLogger("signalvault.server").info("serving", extra={"build": BUILD})
    host = host or settings.server.host
    port = port or settings.server.port
    workers = workers or settings.server.workers
    common = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": http_protocol(settings.server),
        "lifespan": "on",
        # The audit trail is the access log; uvicorn's own would add per-request cost.
        "access_log": False,
        "log_config": None,
        # On SIGTERM: stop accepting, let requests and streams finish, then cancel the rest.
        "timeout_graceful_shutdown": settings.server.shutdown_grace_seconds,
        "timeout_keep_alive": settings.server.keep_alive_seconds,
        "limit_concurrency": settings.server.max_concurrency or None,
    }
    if workers > 1:
        if config_file is not None:
            os.environ["SIGNALVAULT_CONFIG"] = str(config_file.resolve())
        app_path = "signalvault.server:worker_app"
        if SPREADS_CONNECTIONS:
            Supervisor(uvicorn.Config(app_path, factory=True, **common), workers).run()
        else:  # one socket shared by uvicorn's workers: uneven, but no SO_REUSEPORT to spread
            uvicorn.run(app_path, factory=True, workers=workers, **common)
    else:
        # uvicorn handles SIGTERM (graceful shutdown) and then raises it again for the handler
        # it found installed; a no-op one makes a clean SIGTERM shutdown exit 0, not -15.
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        uvicorn.run(served_app(settings), **common)


# Several workers on one port, each accepting on a listening socket of its own (Linux). uvicorn's
# supervisor binds one socket all its workers accept on: the one that wakes first drains the
# accept queue, so long-lived keep-alive connections split unevenly (16 went 13/3, 14/2, 12/4 and
# 6/10 in four runs) and one worker's core capped the gateway. Here each worker listens on its
# own socket bound with SO_REUSEPORT and Linux hashes every new connection to one of them; other
# systems' SO_REUSEPORT does not spread connections, and `serve` keeps uvicorn's supervisor there.
# A worker that dies after it started serving is replaced; one that exits before (the app failed
# to start) stops them all, as it would fail the same way again. SIGTERM or SIGINT stops every
# worker gracefully; SIGHUP replaces them one by one, each replacement serving before its
# predecessor stops.
# The supervisor keeps each worker's socket open and hands it to the worker's replacement: a
# listening socket that closes resets every connection the kernel already queued on it, so
# closing the old worker's socket (as each reload did) reset some connections of every reload
# under load. Kept, the socket queues those connections for the replacement, which accepts
# on it alongside the old worker until that one stops.

SPREADS_CONNECTIONS = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")

_spawn = multiprocessing.get_context("spawn")  # a fresh interpreter per worker, as uvicorn's
_POLL_SECONDS = 0.2
logger = logging.getLogger(__name__)


def listening_socket(host: str, port: int, *, backlog: int | None) -> socket.socket:
    """A TCP socket bound to host:port: listening and in the port's SO_REUSEPORT group when
    `backlog` is given, else bound only (a probe that fails if anything listens there)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, as uvicorn
        if backlog is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if backlog is not None:
            sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


class _Worker(uvicorn.Server):
    """uvicorn's server, telling the supervisor once it accepts connections."""

    def __init__(self, config: uvicorn.Config, started: Connection) -> None:
        super().__init__(config)
        self._started_pipe = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._started_pipe.send_bytes(b"serving")
            self._started_pipe.close()


def _run_worker(config: uvicorn.Config, sock: socket.socket, started: Connection) -> None:
    """A worker process's main function."""
    config.configure_logging()  # uvicorn's log settings, which the pickled config lost
    _Worker(config, started).run(sockets=[sock])


@dataclass
class _Slot:
    process: Any  # multiprocessing's SpawnProcess
    started: Connection  # a pipe's reading end: a message once the worker serves
    sock: socket.socket  # the listening socket, kept open for the worker's replacement
    _is_serving: bool = False

    @property
    def is_serving(self) -> bool:
        if not self._is_serving and self.started.poll():
            with contextlib.suppress(EOFError):  # EOF: the worker exited before it served
                self._is_serving = self.started.recv_bytes() == b"serving"
        return self._is_serving


class Supervisor:
    """Runs `count` workers of `config` (an import string, loaded in each worker) on host:port."""

    def __init__(self, config: uvicorn.Config, count: int) -> None:
        self.config = config
        self.count = count
        self.port = config.port
        self._slots: list[_Slot] = []
        self._stop_requested = False
        self._restart_requested = False

    def run(self) -> None:
        self._claim_port()
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            self._slots = [self._start() for _ in range(self.count)]
            logger.info(
                "%d workers on %s:%d, each with its own socket (SO_REUSEPORT)",
                self.count, self.config.host, self.port,
            )  # fmt: skip
            while not self._stop_requested:
                time.sleep(_POLL_SECONDS)
                self._replace_dead()
                if self._restart_requested:
                    self._restart_requested = False
                    self._replace_all()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _claim_port(self) -> None:
        """Fail clearly when anything listens on the port: the workers' SO_REUSEPORT binds would
        otherwise join the sockets of another `serve` (same user) and share its traffic. The
        probe binds without SO_REUSEPORT, so any listener there refuses it."""
        try:
            probe = listening_socket(self.config.host, self.port, backlog=None)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.config.host}:{self.port}: {exc.strerror}"
            ) from None
        with probe:
            self.port = probe.getsockname()[1]  # port 0: the one the kernel picked

    def _start(self, sock: socket.socket | None = None) -> _Slot:
        """A worker accepting on `sock` (its predecessor's), or on a new socket of the group."""
        if sock is None:
            sock = listening_socket(self.config.host, self.port, backlog=self.config.backlog)
        started, started_writer = _spawn.Pipe(duplex=False)  # a pipe needs no resource tracker
        process = _spawn.Process(
            target=_run_worker, args=(self.config, sock, started_writer), name="signalvault-worker"
        )
        with started_writer:
            process.start()
        return _Slot(process, started, sock)

    def _replace_dead(self) -> None:
        for index, slot in enumerate(self._slots):
            if slot.process.is_alive() or self._stop_requested:
                continue
            slot.process.join()
            if not slot.is_serving:
                raise ConfigError(
                    f"worker process {slot.process.pid} exited with code "
                    f"{slot.process.exitcode} before it started serving (its log is above)"
                )
            logger.warning(
                "worker process %d exited with code %s; starting another",
                slot.process.pid, slot.process.exitcode,
            )  # fmt: skip
            self._slots[index] = self._start(slot.sock)

    def _replace_all(self) -> None:
        """SIGHUP: one worker at a time, the replacement serving before the old one stops."""
        for index, old in enumerate(self._slots):
            new = self._start(old.sock)
            while not new.is_serving and new.process.is_alive() and not self._stop_requested:
                time.sleep(_POLL_SECONDS)
            if not new.is_serving:  # failed to start, or a stop came first
                self._terminate(new)
                new.process.join()
                logger.error("a replacement worker did not start; keeping the others")
                return
            self._terminate(old)
            old.process.join()
            self._slots[index] = new

    def _stop_all(self) -> None:
        """SIGTERM each worker (graceful: see uvicorn's shutdown) and wait for all of them."""
        for slot in self._slots:
            self._terminate(slot)
            # Each socket closes with its worker's copy then: new connections go to the workers
            # still listening, or are refused once none is, instead of queuing for no one.
            slot.sock.close()
        for slot in self._slots:
            slot.process.join()

    @staticmethod
    def _terminate(slot: _Slot) -> None:
        if slot.process.is_alive() and slot.process.pid is not None:
            os.kill(slot.process.pid, signal.SIGTERM)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._restart_requested = True
        else:
            self._stop_requested = True


class BackgroundServer:
    """An ASGI app served by uvicorn in a thread (demo, tests); `stop()` shuts it down cleanly."""

    def __init__(
        self, app: object, host: str = "127.0.0.1", port: int = 0, http: Any = "httptools"
    ) -> None:
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=host,
            port=port,
            loop="uvloop",
            http=http,
            lifespan="auto",
            access_log=False,
            log_config=None,
            log_level="warning",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="uvicorn")
        self.port = port

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError("the server did not start (is the port free?)")
            time.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

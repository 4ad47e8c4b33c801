"""Running the gateway under uvicorn (uvloop + httptools), one or several worker processes
(several: `Supervisor` in `supervisor.py`, each worker on a socket of its own), with the bounded
HTTP protocol of `protocol.py`.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from signalvault import BUILD
from signalvault.app import GatewayApp, create_app
from signalvault.config import Settings, load_settings
from signalvault.control.services import open_services
from signalvault.errors import ConfigError
from signalvault.gateway.providers import Router
from signalvault.logfmt import configure_logging
from signalvault.server.protocol import http_protocol as http_protocol
from signalvault.server.supervisor import SPREADS_CONNECTIONS, Supervisor

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
        if hasattr(signal, "SIGHUP"):
            # SIGHUP replaces the workers of `--workers N`; its default action would kill this
            # single process outright, cutting requests in flight and leaving them `unknown`.
            signal.signal(signal.SIGHUP, _hangup_ignored)
        uvicorn.run(served_app(settings), **common)


def _hangup_ignored(signum: int, frame: object) -> None:
    logging.getLogger("signalvault.server").warning(
        "SIGHUP ignored: one worker has no replacement to start (settings are read at start; "
        "serve --workers 2 or more replaces its workers on SIGHUP, with no request lost)"
    )


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

"""Running the gateway under uvicorn (uvloop + httptools), one or several worker processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import uvicorn

from signalvault.app import create_app, open_services
from signalvault.config import Settings, load_settings
from signalvault.errors import ConfigError
from signalvault.logfmt import configure_logging
from signalvault.providers import Router

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
    if not settings.providers:
        raise ConfigError(NO_PROVIDERS)
    Router(settings)
    open_services(settings).store.close()


def worker_app() -> object:
    """uvicorn factory for multi-worker mode: each worker process loads the settings itself."""
    settings = load_settings()  # SIGNALVAULT_CONFIG names the file, set by `serve`
    configure_logging(settings.logging)
    return create_app(settings)


def serve(
    settings: Settings,
    config_file: Path | None,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    configure_logging(settings.logging)
    preflight(settings)
    host = host or settings.server.host
    port = port or settings.server.port
    workers = workers or settings.server.workers
    common = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        # The audit trail is the access log; uvicorn's own would add per-request cost.
        "access_log": False,
        "log_config": None,
        # On SIGTERM: stop accepting, let requests and streams finish, then cancel the rest.
        "timeout_graceful_shutdown": settings.server.shutdown_grace_seconds,
    }
    if workers > 1:
        if config_file is not None:
            os.environ["SIGNALVAULT_CONFIG"] = str(config_file.resolve())
        app_path = "signalvault.server:worker_app"
        uvicorn.run(app_path, factory=True, workers=workers, **common)  # type: ignore[arg-type]
    else:
        # uvicorn handles SIGTERM (graceful shutdown) and then raises it again for the handler
        # it found installed; a no-op one makes a clean SIGTERM shutdown exit 0, not -15.
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]


class BackgroundServer:
    """An ASGI app served by uvicorn in a thread (demo, tests); `stop()` shuts it down cleanly."""

    def __init__(self, app: object, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
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

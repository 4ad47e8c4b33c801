"""The worker supervisor of `serve --workers N` on its own, with stand-in apps (the gateway's
workers are tested end to end in tests/e2e/test_serve.py)."""

from __future__ import annotations

import socket

import pytest
import uvicorn

from signalvault.errors import ConfigError
from signalvault.server.supervisor import SPREADS_CONNECTIONS, Supervisor, listening_socket

pytestmark = pytest.mark.skipif(not SPREADS_CONNECTIONS, reason="SO_REUSEPORT spreading: Linux")


def broken_app() -> object:
    raise RuntimeError("this app does not start")


def test_a_worker_that_fails_to_start_stops_the_supervisor_with_a_clear_error():
    config = uvicorn.Config(
        "tests.test_supervisor:broken_app", factory=True, host="127.0.0.1", port=0, log_config=None
    )
    with pytest.raises(ConfigError, match="exited with code 1 before it started serving"):
        Supervisor(config, 2).run()


def test_the_port_probe_is_refused_by_any_listener_even_one_sharing_its_port():
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        port = plain.getsockname()[1]
        with pytest.raises(OSError):
            listening_socket("127.0.0.1", port, backlog=None)
    with listening_socket("127.0.0.1", 0, backlog=8) as shared:
        port = shared.getsockname()[1]
        with listening_socket("127.0.0.1", port, backlog=8):  # a second worker joins the group
            pass
        with pytest.raises(OSError):
            listening_socket("127.0.0.1", port, backlog=None)

"""Several uvicorn worker processes on one port, each accepting on a listening socket of its own.

uvicorn's own supervisor binds one socket that every worker accepts on: the worker that wakes
first drains the accept queue, so long-lived keep-alive connections split unevenly (16 split
13/3, 14/2, 12/4 and 6/10 in four runs) and one worker's core caps the gateway. Here each worker
listens on its own socket bound with SO_REUSEPORT, and Linux hashes every new connection to one
of them. Other systems' SO_REUSEPORT does not spread connections: `serve` keeps uvicorn's
supervisor there (`SPREADS_CONNECTIONS`).

The supervisor restarts a worker that dies after it started serving; a worker that exits before
(the app failed to start) stops them all, as it would fail the same way again. SIGTERM or SIGINT
stops every worker gracefully, SIGHUP replaces them one by one (each replacement serves before
its predecessor is stopped).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

import uvicorn

from signalvault.errors import ConfigError

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
    _is_serving: bool = False

    @property
    def is_serving(self) -> bool:
        if not self._is_serving and self.started.poll():
            try:
                self._is_serving = self.started.recv_bytes() == b"serving"
            except EOFError:  # the worker exited before it served
                pass
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

    def _start(self) -> _Slot:
        sock = listening_socket(self.config.host, self.port, backlog=self.config.backlog)
        started, started_writer = _spawn.Pipe(duplex=False)  # a pipe needs no resource tracker
        process = _spawn.Process(
            target=_run_worker, args=(self.config, sock, started_writer), name="signalvault-worker"
        )
        # The worker holds its own copies: a socket left open here would queue connections the
        # kernel hashes to it after the worker died.
        with sock, started_writer:
            process.start()
        return _Slot(process, started)

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
            self._slots[index] = self._start()

    def _replace_all(self) -> None:
        """SIGHUP: one worker at a time, the replacement serving before the old one stops."""
        for index, old in enumerate(self._slots):
            new = self._start()
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

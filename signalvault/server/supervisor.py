"""`serve --workers N` on Linux: N worker processes, each accepting on a socket of its own."""

from __future__ import annotations

import contextlib
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
logger = logging.getLogger("signalvault.server")  # as before the split: one logger name


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
            for _ in range(self.count):  # one by one: a failed start still stops the others
                self._slots.append(self._start())
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

"""Clocks around one request's phases, for `bench/phases.py` (not part of the gateway).

Python imports `sitecustomize` at start-up from the first folder on its path that has one:
`bench/phases.py` starts `signalvault serve` with this folder first on PYTHONPATH and
SIGNALVAULT_PHASES_OUT set. Each phase's method is wrapped with a clock; at exit (serve returns
on SIGTERM) the measured phases of every request go to that file as JSON lines. The load runs
one request at a time, so the request in flight is the only one: a durable commit in the commit
thread belongs to it (the previous request's completion commits without anyone waiting).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any

_OUT = os.environ.get("SIGNALVAULT_PHASES_OUT")
_requests: list[dict[str, float]] = []
_current: dict[str, float] = {}
_arrived = [0.0]  # when the HTTP server began parsing the request in flight


def _add(phase: str, seconds: float) -> None:
    _current[phase] = _current.get(phase, 0.0) + seconds


def _timed(phase: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            _add(phase, time.perf_counter() - started)

    return wrapper


def _timed_async(phase: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            _add(phase, time.perf_counter() - started)

    return wrapper


def _install() -> None:
    from signalvault.gateway.keyring import KeyRing
    from signalvault.gateway.proxy import Proxy
    from signalvault.gateway.screening import Screen
    from signalvault.gateway.upstream.forward import Upstream
    from signalvault.server.protocol import GuardedHttpTools
    from signalvault.store.writer import GroupCommitWriter
    from signalvault.trail.audit import AuditTrail

    handle = Proxy.__call__

    @functools.wraps(handle)
    async def request(self: Any, scope: Any, receive: Any, send: Any) -> None:
        _current.clear()
        started = time.perf_counter()
        try:
            await handle(self, scope, receive, send)
        finally:
            if "input scan" in _current:  # a chat request, not a probe of /readyz
                ended = time.perf_counter()
                _current["total"] = ended - started
                _current["to the handler"] = started - _arrived[0]
                _current["in the server"] = ended - _arrived[0]
                _requests.append(dict(_current))

    message_begin = GuardedHttpTools.on_message_begin

    @functools.wraps(message_begin)
    def on_message_begin(self: Any) -> None:
        _arrived[0] = time.perf_counter()
        message_begin(self)

    GuardedHttpTools.on_message_begin = on_message_begin  # type: ignore[method-assign]

    execute = GroupCommitWriter._execute_locked
    enqueue = GroupCommitWriter._enqueue
    queued: list[float] = []

    @functools.wraps(enqueue)
    def enqueued(self: Any, ops: Any, future: Any, loop: Any) -> None:
        if future is not None:  # the write-ahead record: a caller waits for it
            queued.append(time.perf_counter())
        enqueue(self, ops, future, loop)

    @functools.wraps(execute)
    def commit(self: Any, ops: Any, durable: bool = True) -> float:
        started = time.perf_counter()
        if durable and queued:
            _add("to the commit thread (in write-ahead)", started - queued[0])
            queued.clear()
        try:
            return execute(self, ops, durable)
        finally:
            if durable:
                _add("commit (SQLite, in write-ahead)", time.perf_counter() - started)

    inline = getattr(GroupCommitWriter, "_commit_inline", None)

    def commit_inline(self: Any, ops: Any) -> Any:  # on the loop's thread: no handoff
        started = time.perf_counter()
        result = inline(self, ops)
        if result is not None:
            _add("commit (SQLite, in write-ahead)", time.perf_counter() - started)
            queued.clear()
        return result

    Proxy.__call__ = request  # type: ignore[method-assign]
    GroupCommitWriter._execute_locked = commit  # type: ignore[method-assign]
    if inline is not None:  # checkouts from before 2026-12-07 have no inline commits
        GroupCommitWriter._commit_inline = commit_inline  # type: ignore[attr-defined]
    GroupCommitWriter._enqueue = enqueued  # type: ignore[method-assign]
    AuditTrail._prepare = _timed("record build (in write-ahead)", AuditTrail._prepare)  # type: ignore[method-assign]
    KeyRing.authenticate = _timed("key check", KeyRing.authenticate)  # type: ignore[method-assign]
    Screen.request = _timed("input scan", Screen.request)  # type: ignore[method-assign]
    Screen.response = _timed("output scan", Screen.response)  # type: ignore[method-assign]
    AuditTrail.begin = _timed_async("write-ahead", AuditTrail.begin)  # type: ignore[method-assign]
    AuditTrail.complete = _timed("completion", AuditTrail.complete)  # type: ignore[method-assign]
    Upstream.call = _timed_async("provider call", Upstream.call)  # type: ignore[method-assign]

    def dump() -> None:
        with open(_OUT or "", "w") as out:
            out.writelines(json.dumps(r) + "\n" for r in _requests)

    atexit.register(dump)


if _OUT:
    _install()

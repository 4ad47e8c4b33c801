"""An async context manager kept open in a task of its own, so that one opened by one request
(an upstream MCP connection, the SDK's session manager) can serve every later one: anyio's
cancel scopes must be entered and left by the same task."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

T = TypeVar("T")


class Held(Generic[T]):
    """`await open()` enters the context in a new task and returns its value; `await close()`
    leaves it (in that task). `is_open` turns False by itself when the context ends early."""

    def __init__(self, context: AbstractAsyncContextManager[T]) -> None:
        self._context = context
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._task is not None and not self._task.done()

    async def open(self) -> T:
        entered: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold(entered))
        return await entered

    async def _hold(self, entered: asyncio.Future[T]) -> None:
        try:
            async with self._context as value:
                entered.set_result(value)
                await self._stop.wait()
        except BaseException as exc:
            if not entered.done():
                entered.set_exception(exc if isinstance(exc, Exception) else ConnectionError())
            elif not isinstance(exc, Exception):
                raise

    async def close(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(Exception):
                await task

"""The base of the query mixins `SqlStore` is assembled from (lifecycle, policies, credentials,
settings): what they use of the store, declared once."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select

from signalvault.store.schema import state


class StoreMixin:
    engine: Engine

    if TYPE_CHECKING:  # provided by SqlStore

        def _bump(self, conn: Any, name: str) -> None: ...
        def changed(self, name: str) -> None: ...
        def _connect(
            self, *, write: bool = False
        ) -> contextlib.AbstractContextManager[Connection]: ...

    def _stored_counter(self, name: str) -> int:
        """A change counter as committed in the `state` table (0 before its first change)."""
        with self._connect() as conn:
            value = conn.execute(select(state.c.value).where(state.c.name == name)).scalar()
        return int(value or 0)

"""Run-time settings in the store: JSON values by dotted name (`limits.user_rpm`) in the `settings`
table, and the `settings` change counter every gateway process watches. Knows SQL, not which
names exist or what their values mean (signalvault/runtime_settings.py does)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from signalvault.errors import StoreError
from signalvault.store.mixin import StoreMixin
from signalvault.store.schema import settings

COUNTER = "settings"


@dataclass(frozen=True, slots=True)
class StoredSetting:
    name: str
    value: str  # JSON
    updated_at: float
    updated_by: str


class SettingStore(Protocol):
    def settings_version(self) -> int: ...
    def get_setting(self, name: str) -> str | None: ...
    def put_setting(self, name: str, value: str, actor: str) -> None: ...
    def put_settings(
        self, values: Mapping[str, str | None], actor: str
    ) -> dict[str, StoredSetting | None]: ...
    def list_settings(self) -> list[StoredSetting]: ...


class SettingQueries(StoreMixin):
    """Mixed into `SqlStore`: uses its engine and counters."""

    def settings_version(self) -> int:
        """Changes after every committed settings change (backends add a faster signal)."""
        return self._stored_counter(COUNTER)

    def get_setting(self, name: str) -> str | None:
        with self._connect() as conn:
            value = conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar()
        return None if value is None else str(value)

    def list_settings(self) -> list[StoredSetting]:
        with self._connect() as conn:
            rows = conn.execute(select(settings).order_by(settings.c.name))
            return [StoredSetting(r.name, r.value, r.updated_at, r.updated_by) for r in rows]

    def put_setting(self, name: str, value: str, actor: str) -> None:
        self.put_settings({name: value}, actor)

    def put_settings(
        self, values: Mapping[str, str | None], actor: str
    ) -> dict[str, StoredSetting | None]:
        """Store every value (None deletes the name) in one transaction and signal the change;
        returns what each name held before, read in that same transaction."""
        for _ in range(2):  # a concurrent first insert of a name: update it instead
            try:
                with self._connect(write=True) as conn:
                    before = self._write(conn, values, actor)
                    self._bump(conn, COUNTER)
            except IntegrityError:
                continue
            self.changed(COUNTER)
            return before
        raise StoreError("could not store the settings (concurrent changes); try again")

    def _write(
        self, conn: Connection, values: Mapping[str, str | None], actor: str
    ) -> dict[str, StoredSetting | None]:
        c = settings.c
        now = time.time()
        before: dict[str, StoredSetting | None] = {}
        for name, value in values.items():
            row = conn.execute(select(settings).where(c.name == name)).first()
            before[name] = (
                None
                if row is None
                else StoredSetting(name, row.value, row.updated_at, row.updated_by)
            )
            if value is None:
                conn.execute(delete(settings).where(c.name == name))
            elif row is None:
                conn.execute(
                    settings.insert().values(
                        name=name, value=value, updated_at=now, updated_by=actor
                    )
                )
            else:
                conn.execute(
                    update(settings)
                    .where(c.name == name)
                    .values(value=value, updated_at=now, updated_by=actor)
                )
        return before

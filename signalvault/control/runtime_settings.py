"""Run-time settings overlaid on the configuration, kept current in every gateway process.

Overrides are JSON in the store's `settings` table under the dotted name and bump the `settings`
change counter; `RuntimeSettings.current()` compares that counter (a memory read, as for key
revocations) and reloads the table only after a change, so several processes on one store behave
as one gateway. What may be overridden, and how values are checked: settings_allowlist.py.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from signalvault.config import AccountSettings, LimitsSettings, Settings
from signalvault.control.settings_allowlist import RUNTIME, check_changes, config_value, to_json
from signalvault.errors import StoreError
from signalvault.store import Store
from signalvault.trail.audit import AuditTrail
from signalvault.trail.retention import PROJECT_DAYS_SETTING

log = logging.getLogger("signalvault.settings")

EVENT_KIND = "settings"  # the audit record of a change (retention.py records the same kind)
RETRY_SECONDS = 1.0  # after a failed reload the values in force stay this long


@dataclass(frozen=True, slots=True)
class Override:
    """A stored run-time value, and who stored it when."""

    value: Any
    updated_at: float
    updated_by: str


@dataclass(frozen=True, slots=True)
class Change:
    """One name's effective value before and after a change (JSON-shaped)."""

    name: str
    before: Any
    after: Any
    is_reset: bool  # the override was removed: the configured value applies again


def load_overrides(store: Store) -> dict[str, Override]:
    """The stored overrides of allow-listed settings (and retention's per-project days).

    A stored value that no longer passes its check is skipped, and logged: the configured value
    applies instead of a value nobody could have set through the checks.
    """
    found: dict[str, Override] = {}
    for row in store.list_settings():
        if row.name not in RUNTIME and row.name != PROJECT_DAYS_SETTING:
            continue
        try:
            value = orjson.loads(row.value)
            if row.name in RUNTIME:
                value = RUNTIME[row.name].check(value)
            elif not isinstance(value, dict) or not all(
                isinstance(days, int) and not isinstance(days, bool) for days in value.values()
            ):
                raise ValueError("expected an object of days")
        except (ValueError, orjson.JSONDecodeError) as exc:
            log.error("stored setting ignored", extra={"setting": row.name, "error": str(exc)})
            continue
        found[row.name] = Override(value, row.updated_at, row.updated_by)
    return found


def overlay(settings: Settings, overrides: Mapping[str, Override]) -> Settings:
    """`settings` with every override in place (per-project retention days merged)."""
    sections: dict[str, dict[str, Any]] = {}
    for name, override in overrides.items():
        section, field = name.split(".", 1)
        value = override.value
        if name == PROJECT_DAYS_SETTING:
            value = {**settings.retention.projects, **value}
        sections.setdefault(section, {})[field] = value
    if not sections:
        return settings
    replaced = {
        section: dataclasses.replace(getattr(settings, section), **values)
        for section, values in sections.items()
    }
    return dataclasses.replace(settings, **replaced)


class RuntimeSettings:
    """The configuration with the store's overrides on top, kept current in this process."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.base = settings
        self._store = store
        self._current = settings
        self._seen: int | None = None  # the settings counter the current values were loaded at
        self._lock = threading.Lock()  # the event loop and request threads both ask
        self._retry_at = 0.0

    def current(self) -> Settings:
        """The effective settings: a memory read unless a setting changed since the last call
        (then one read of the settings table). If the store fails, the values in force stay."""
        try:
            version = self._store.settings_version()
        except StoreError:
            return self._current
        if version == self._seen:
            return self._current
        with self._lock:
            if version == self._seen or time.monotonic() < self._retry_at:
                return self._current
            try:
                # The counter was read first: a change committed during the load moves it again.
                overrides = load_overrides(self._store)
            except StoreError as exc:
                log.error("run-time settings reload failed; the values in force stay: %s", exc)
                self._retry_at = time.monotonic() + RETRY_SECONDS
                return self._current
            self._current = overlay(self.base, overrides)
            self._seen = version
            return self._current

    def limits(self) -> LimitsSettings:
        return self.current().limits

    def accounts(self) -> AccountSettings:
        return self.current().accounts

    def alert_events(self) -> tuple[str, ...]:
        return self.current().alerts.events


def change_settings(
    store: Store, trail: AuditTrail, settings: Settings, changes: Mapping[str, Any], actor: str
) -> list[Change]:
    """Validate every change, store them in one transaction, and record one `settings` event
    with the effective value of each name before and after. None removes an override.

    Raises:
        BadRequest: see `check_changes`; nothing is stored then.
        StoreError: the store failed (nothing is stored, or the audit record is missing: the
            caller reports the failure rather than success).
    """
    checked = check_changes(changes)
    stored = {
        name: None if value is None else orjson.dumps(to_json(value)).decode()
        for name, value in checked.items()
    }
    previous = store.put_settings(stored, actor)
    result = []
    for name, value in checked.items():
        was = previous.get(name)
        before = config_value(settings, name) if was is None else orjson.loads(was.value)
        after = config_value(settings, name) if value is None else value
        result.append(Change(name, to_json(before), to_json(after), value is None))
    trail.record_event(
        EVENT_KIND,
        actor,
        {
            "action": "update",
            "before": {c.name: c.before for c in result},
            "after": {c.name: c.after for c in result},
            "reset": [c.name for c in result if c.is_reset],
        },
    )
    return result

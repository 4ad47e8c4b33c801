"""The navigation: each entry names the permissions of the API routes its page mirrors, and is
shown to accounts holding one of them somewhere. To add a page (agent runs, incidents, the
evidence report), add its entry here and its routes in `site.py`."""

from __future__ import annotations

from dataclasses import dataclass

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz


@dataclass(frozen=True, slots=True)
class NavEntry:
    label: str
    path: str
    permissions: tuple[str, ...]  # any of these


NAV: tuple[NavEntry, ...] = (
    NavEntry("Overview", "/", ("logs.read",)),
    NavEntry("Logs", "/logs", ("logs.read",)),
    NavEntry("Guardrails", "/guardrails", ("policies.read",)),
    NavEntry("Keys", "/keys", ("keys.read",)),
    NavEntry("Accounts", "/accounts", ("accounts",)),
    NavEntry("Providers", "/providers", ("providers.read",)),
    NavEntry("Retention", "/retention", ("retention.read", "holds.read")),
    NavEntry("Exports", "/exports", ("export",)),
    NavEntry("Data subjects", "/subjects", ("subjects.export", "subjects.erase")),
    NavEntry("Integrity", "/integrity", ("integrity.read",)),
    NavEntry("Alerts", "/alerts", ("settings.read",)),
    NavEntry("Settings", "/settings", ("settings.read",)),
    NavEntry("Audit log", "/audit-log", ("logs.read",)),
)


def visible_entries(who: Principal) -> list[NavEntry]:
    """The entries whose permission the account holds in some project or globally."""
    return [e for e in NAV if any(authz.has_anywhere(who, p) for p in e.permissions)]

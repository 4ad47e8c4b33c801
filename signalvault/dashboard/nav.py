"""The navigation: each entry names the permissions of the API routes its page mirrors, and is
shown to accounts holding one of them somewhere (globally, for pages whose routes check the
permission without a project). To add a page, add its entry here and its routes in `site.py`."""

from __future__ import annotations

from dataclasses import dataclass

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz


@dataclass(frozen=True, slots=True)
class NavEntry:
    label: str
    path: str
    permissions: tuple[str, ...]  # any of these
    globally: bool = False  # held by the global role (the route checks it without a project)


NAV: tuple[NavEntry, ...] = (
    NavEntry("Overview", "/", ("logs.read",)),
    NavEntry("Logs", "/logs", ("logs.read",)),
    NavEntry("Agent runs", "/runs", ("logs.read",)),
    # Incidents and the report are global: their routes check the permission without a project.
    NavEntry("Incidents", "/incidents", ("incidents.read",), globally=True),
    NavEntry("Evidence report", "/report", ("reports",), globally=True),
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
    return [e for e in NAV if any(_holds(who, p, e.globally) for p in e.permissions)]


def _holds(who: Principal, permission: str, globally: bool) -> bool:
    if globally:
        return authz.role_allows(who, permission, None)
    return authz.has_anywhere(who, permission)

"""Who may do what: the one place the admin API decides access, deny by default.

Every route (method + path template) maps to a permission; every permission maps to the roles of
SPEC §5 that hold it. A route missing from `ROUTE_PERMISSIONS` is refused, and the app refuses to
build at all if one of its routes has no entry. Roles are per project or global
(`Principal.role_in`), so project-scoped checks take the project the action touches.
"""

from __future__ import annotations

from collections.abc import Iterable

from signalvault.control.accounts.principal import Principal
from signalvault.errors import Forbidden

PUBLIC = "public"  # no credentials (login, the OpenAPI document)
SIGNED_IN = "signed_in"  # any account with any role (logout, password, personal tokens)

# Permission -> roles holding it (SPEC §5). Developers hold key and log permissions only for
# their own keys (`is_own_only`).
PERMISSION_ROLES: dict[str, frozenset[str]] = {
    "logs.read": frozenset({"owner", "admin", "security", "auditor", "developer", "viewer"}),
    "logs.content": frozenset({"owner", "auditor"}),
    "keys.read": frozenset({"owner", "admin", "auditor", "developer", "viewer"}),
    "keys.write": frozenset({"owner", "admin", "developer"}),
    "audit.verify": frozenset({"owner", "auditor"}),
    # Seals and checkpoints: sizes and hashes of the whole trail, no record in them; not for
    # developers, who see only their own traffic.
    "integrity.read": frozenset({"owner", "admin", "security", "auditor", "viewer"}),
    "export": frozenset({"owner", "auditor"}),
    "retention.read": frozenset({"owner", "admin", "auditor"}),
    "retention.write": frozenset({"owner", "admin"}),
    "holds.read": frozenset({"owner", "admin", "auditor"}),
    "holds.write": frozenset({"owner", "admin"}),
    "subjects.export": frozenset({"owner", "auditor"}),
    "subjects.erase": frozenset({"owner", "admin"}),
    "providers.read": frozenset({"owner", "admin"}),
    "providers.write": frozenset({"owner", "admin"}),
    # Policy rules are configuration, not content: every role but developer reads them. Admins
    # propose; only security and owners approve or reject (two-person review, SPEC §5).
    "policies.read": frozenset({"owner", "admin", "security", "auditor", "viewer"}),
    "policies.propose": frozenset({"owner", "admin", "security"}),
    "policies.approve": frozenset({"owner", "security"}),
    "accounts": frozenset({"owner"}),
    # Every role sees the projects it has a role in; owners and admins register and describe
    # them (registering needs the role globally: there is no project to hold it in yet).
    "projects.read": frozenset({"owner", "admin", "security", "auditor", "developer", "viewer"}),
    "projects.write": frozenset({"owner", "admin"}),
    # The effective configuration names internal hosts: not for developers and viewers.
    "settings.read": frozenset({"owner", "admin", "security", "auditor"}),
    "settings.write": frozenset({"owner", "admin"}),
    # Incidents and the evidence report hold metadata only (never content).
    "incidents.read": frozenset({"owner", "admin", "security", "auditor", "viewer"}),
    "incidents.write": frozenset({"owner", "admin", "security"}),
    "reports": frozenset({"owner", "admin", "security", "auditor"}),
    SIGNED_IN: frozenset({"owner", "admin", "security", "auditor", "developer", "viewer"}),
}
OWN_ONLY_ROLES = frozenset({"developer"})

ROUTE_PERMISSIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/openapi.json"): PUBLIC,
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/auth/logout"): SIGNED_IN,
    ("POST", "/api/auth/password"): SIGNED_IN,
    ("POST", "/api/tokens"): SIGNED_IN,
    ("GET", "/api/tokens"): SIGNED_IN,  # own tokens; another account's: "accounts" in the route
    ("DELETE", "/api/tokens/{token_id}"): SIGNED_IN,  # idem
    ("GET", "/api/logs"): "logs.read",
    ("GET", "/api/logs/{record_id}"): "logs.read",
    # Agent runs are records too: the same metadata and content rules as /api/logs.
    ("GET", "/api/traces"): "logs.read",
    ("GET", "/api/traces/{run_id}"): "logs.read",
    ("GET", "/api/keys"): "keys.read",
    ("POST", "/api/keys"): "keys.write",
    ("GET", "/api/keys/{key_id}"): "keys.read",
    ("POST", "/api/keys/{key_id}/revoke"): "keys.write",
    ("POST", "/api/keys/{key_id}/rotate"): "keys.write",
    ("GET", "/api/providers"): "providers.read",
    ("PUT", "/api/providers/{name}"): "providers.write",
    ("GET", "/api/policies"): "policies.read",
    ("POST", "/api/policies"): "policies.propose",
    ("GET", "/api/policies/{version}"): "policies.read",
    ("POST", "/api/policies/{version}/approve"): "policies.approve",
    ("POST", "/api/policies/{version}/reject"): "policies.approve",
    ("POST", "/api/policies/{version}/rollback"): "policies.propose",
    ("GET", "/api/accounts"): "accounts",
    ("POST", "/api/accounts"): "accounts",
    ("GET", "/api/accounts/{account_id}"): "accounts",
    ("PATCH", "/api/accounts/{account_id}"): "accounts",
    ("GET", "/api/projects"): "projects.read",
    ("POST", "/api/projects"): "projects.write",
    # `:path`: a project name may contain "/" (send it as is or as %2F).
    ("GET", "/api/projects/{name:path}"): "projects.read",
    ("PATCH", "/api/projects/{name:path}"): "projects.write",
    ("POST", "/api/audit/verify"): "audit.verify",
    ("GET", "/api/audit/checkpoints"): "integrity.read",
    ("GET", "/api/overview"): "logs.read",
    # Runs a draft on the caller's own text; nothing is stored, so reading policies suffices.
    ("POST", "/api/policies/playground"): "policies.read",
    ("GET", "/api/export"): "export",
    ("GET", "/api/exports/{export_id}/manifest"): "export",
    ("GET", "/api/retention"): "retention.read",
    ("PUT", "/api/retention"): "retention.write",
    ("GET", "/api/legal-holds"): "holds.read",
    ("POST", "/api/legal-holds"): "holds.write",
    ("DELETE", "/api/legal-holds/{hold_id}"): "holds.write",
    ("GET", "/api/subjects/{user}"): "subjects.export",
    ("DELETE", "/api/subjects/{user}"): "subjects.erase",
    ("GET", "/api/incidents"): "incidents.read",
    ("GET", "/api/incidents/{incident_id}"): "incidents.read",
    ("POST", "/api/incidents/{incident_id}/ack"): "incidents.write",
    ("POST", "/api/incidents/{incident_id}/resolve"): "incidents.write",
    ("GET", "/api/reports/soc2"): "reports",
    ("GET", "/api/settings"): "settings.read",
    ("PATCH", "/api/settings"): "settings.write",
}

# The only routes an account holding a generated one-time password may use (with any role);
# every other one answers 403 `password_change_required` until it has chosen a password.
OPEN_BEFORE_PASSWORD_CHANGE = frozenset(
    {("POST", "/api/auth/logout"), ("POST", "/api/auth/password")}
)


def route_permission(method: str, path: str) -> str | None:
    """The permission a route needs; None if it has no rule (refuse it)."""
    return ROUTE_PERMISSIONS.get((method, path))


def is_open_before_password_change(method: str, path: str | None) -> bool:
    """True if an account that must change its one-time password may use this route."""
    return (method, path or "") in OPEN_BEFORE_PASSWORD_CHANGE


def has_anywhere(principal: Principal, permission: str) -> bool:
    """True if any of the principal's roles (global or in some project) holds `permission`."""
    allowed = PERMISSION_ROLES.get(permission, frozenset())
    return any(role in allowed for role in principal.roles.values())


def role_allows(principal: Principal, permission: str, project: str | None) -> bool:
    """True if the principal's role for `project` (None: its global role) holds `permission`."""
    role = principal.roles.get(None) if project is None else principal.role_in(project)
    return role is not None and role in PERMISSION_ROLES.get(permission, frozenset())


def require(principal: Principal, permission: str, project: str | None) -> None:
    """Raise Forbidden unless the principal holds `permission` for `project` (None: globally)."""
    if not role_allows(principal, permission, project):
        where = "globally" if project is None else f"in project {project!r}"
        raise Forbidden(f"your role {where} does not allow this", code="forbidden")


def is_own_only(principal: Principal, project: str | None) -> bool:
    """True if in `project` the principal may touch only what it created (developer)."""
    role = principal.roles.get(None) if project is None else principal.role_in(project)
    return role in OWN_ONLY_ROLES


def may_touch_key(principal: Principal, permission: str, project: str, created_by: str) -> bool:
    """Key permissions: the role in the key's project, and for developers only their own keys."""
    if not role_allows(principal, permission, project):
        return False
    return not is_own_only(principal, project) or created_by == principal.actor


def may_read_record(
    principal: Principal, project: str | None, key_id: str | None, own_keys: Iterable[str]
) -> bool:
    """Record metadata: the role in the record's project; developers only their keys' traffic."""
    if not role_allows(principal, "logs.read", project):
        return False
    return not is_own_only(principal, project) or (key_id is not None and key_id in own_keys)

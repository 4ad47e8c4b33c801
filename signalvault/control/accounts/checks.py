"""What an account's email and roles must look like, and who counts as an owner."""

from __future__ import annotations

import re
from collections.abc import Mapping

from signalvault.control.accounts.principal import ROLES
from signalvault.control.projects import check_project_name
from signalvault.errors import BadRequest
from signalvault.store.account_queries import GLOBAL, Account

EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str) -> str:
    """The normalized (lower-cased) email. Raises BadRequest if it is not an address."""
    address = normalize_email(email)
    if len(address) > 320 or not EMAIL_PATTERN.fullmatch(address):
        raise BadRequest("invalid email address", param="email")
    return address


def roles_json(roles: Mapping[str, str]) -> dict[str, str]:
    return dict(sorted(roles.items()))


def check_roles(roles: Mapping[str | None, str]) -> dict[str, str]:
    """Validated roles keyed by project or "*" (global; None is accepted for it too)."""
    checked: dict[str, str] = {}
    for project, role in roles.items():
        if role not in ROLES:
            raise BadRequest(f"unknown role {role!r}; roles: {', '.join(ROLES)}", param="role")
        key = GLOBAL if project in (None, GLOBAL) else project
        if key != GLOBAL:
            check_project_name(key)
        if role == "owner" and key != GLOBAL:
            raise BadRequest("owner is a global role; give it without a project", param="role")
        checked[key] = role
    if not checked:
        raise BadRequest("an account needs a role", param="role")
    return roles_json(checked)


def is_owner(account: Account) -> bool:
    return not account.is_disabled and account.roles.get(GLOBAL) == "owner"

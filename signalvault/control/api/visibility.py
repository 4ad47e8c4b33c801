"""Which audit records a principal may read, as data the store turns into SQL: the permission
table of `authz` (`may_read_record`) applied to whole listings and aggregates at once, so lists,
counts and charts narrow exactly as a single record's check does."""

from __future__ import annotations

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import authz
from signalvault.store import Store
from signalvault.store.record_queries import Readable


def own_key_ids(store: Store, who: Principal) -> frozenset[str]:
    """Ids of the keys the principal created (only needed where its role is own-only)."""
    if not any(role in authz.OWN_ONLY_ROLES for role in who.roles.values()):
        return frozenset()
    return frozenset(k.id for k in store.list_keys() if k.created_by == who.actor)


def readable(who: Principal, own: frozenset[str], permission: str = "logs.read") -> Readable:
    """Exactly the records `authz.may_read_record` admits, for every record at once."""
    allowed = authz.PERMISSION_ROLES.get(permission, frozenset())

    def reads(role: str | None) -> bool:
        return role is not None and role in allowed

    projects, own_projects, blind = set(), set(), set()
    for project, role in who.roles.items():
        if project is None:
            continue
        if not reads(role):
            blind.add(project)
        elif role in authz.OWN_ONLY_ROLES:
            own_projects.add(project)
        else:
            projects.add(project)
    global_role = who.roles.get(None)
    return Readable(
        everywhere=reads(global_role) and global_role not in authz.OWN_ONLY_ROLES,
        own_everywhere=reads(global_role) and global_role in authz.OWN_ONLY_ROLES,
        projects=frozenset(projects),
        own_projects=frozenset(own_projects),
        blind_projects=frozenset(blind),
        key_ids=own,
    )

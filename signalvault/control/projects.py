"""Projects (issue 4): the registry of the names gateway keys, account roles, retention overrides
and legal holds refer to, and what a project's detail shows. Every registration and change is
an audit record (actor, before/after). The admin API and the CLI call this; neither touches the
table itself. Imports services below it (retention), never the API or the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from signalvault.config import RetentionSettings
from signalvault.errors import BadRequest, Conflict, NotFound
from signalvault.store import Store
from signalvault.store.account_queries import GLOBAL, Account
from signalvault.store.project_queries import KeyCounts, Project, ProjectQueries
from signalvault.trail.audit import AuditTrail
from signalvault.trail.retention import load_policy

CREATED, UPDATED = "project_created", "project_updated"  # audit record kinds
MAX_NAME = 128
MAX_DESCRIPTION = 1000
NAME_RULE = (
    f"a project name is 1-{MAX_NAME} printable characters, without leading or trailing "
    f'spaces, and not "{GLOBAL}"'
)
# How a project came to be registered (the `via` of its project_created record).
Via = Literal["create", "gateway_key", "account_role", "retention"]


def is_project_name(name: str) -> bool:
    """The one rule for project names, wherever one is given (keys, roles, retention, here).
    "*" is refused: in account roles it means "every project"."""
    return (
        0 < len(name) <= MAX_NAME and name.isprintable() and name.strip() == name and name != GLOBAL
    )


def check_project_name(name: str) -> str:
    """`name` if it is a valid project name. Raises BadRequest (one line, no echo of the input)."""
    if not is_project_name(name):
        raise BadRequest(NAME_RULE, code="invalid_project_name", param="project")
    return name


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION or not description.isprintable():
        raise BadRequest(
            f"a description is at most {MAX_DESCRIPTION} printable characters (no line breaks)",
            param="description",
        )
    return description


def project_state(project: Project) -> dict[str, Any]:
    """What a change replaces, for the audit record's before/after (time and actor are the
    record's own)."""
    return {"name": project.name, "description": project.description}


@dataclass(frozen=True, slots=True)
class RetentionInForce:
    days: int  # 0: kept forever
    source: Literal["project", "default"]  # a per-project override, or the global default


@dataclass(frozen=True, slots=True)
class ProjectDetail:
    project: Project
    keys: dict[str, KeyCounts]  # per environment
    retention: RetentionInForce
    legal_holds: int  # active holds on the project


@dataclass(frozen=True, slots=True)
class RoleHolder:
    account_id: str
    email: str
    role: str
    disabled: bool


def role_holders(accounts: Iterable[Account], name: str) -> list[RoleHolder]:
    """Accounts with a role in project `name` itself (global roles apply everywhere and are
    not listed), by email."""
    holders = [
        RoleHolder(a.id, a.email, a.roles[name], a.is_disabled) for a in accounts if name in a.roles
    ]
    return sorted(holders, key=lambda h: h.email)


class ProjectRegistry:
    """Projects over a Store, audited through an AuditTrail."""

    def __init__(
        self, store: Store, trail: AuditTrail, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._queries = ProjectQueries(store.engine)
        self._trail = trail
        self._clock = clock

    def create(self, name: str, description: str, actor: str) -> Project:
        """Register a project.

        Raises:
            BadRequest: invalid name or description. Conflict: the project exists.
        """
        project = self._new(check_project_name(name), check_description(description), actor)
        if not self._register(project, actor, "create"):
            raise Conflict(f"project {name} already exists", code="project_exists")
        return project

    def ensure(self, name: str, actor: str, via: Via) -> bool:
        """Register `name` on its first use (a key, a role, a retention override), so flows that
        name a project never fail for want of one; True if this call registered it.

        Raises:
            BadRequest: invalid name.
        """
        check_project_name(name)
        if self._queries.get(name) is not None:
            return False
        return self._register(self._new(name, "", actor), actor, via)

    def update(self, name: str, description: str, actor: str) -> Project:
        """Change a project's description (unchanged: nothing is written or recorded).

        Raises:
            NotFound: no such project. BadRequest: invalid description.
        """
        check_description(description)
        current = self.get(name)
        if current.description == description:
            return current
        changed = self._queries.set_description(name, description, self._clock(), actor)
        if changed is None:
            raise NotFound(f"no project {name}")
        before, after = changed
        self._trail.record_event(
            UPDATED,
            actor,
            {"project": name, "before": project_state(before), "after": project_state(after)},
            project=name,
        )
        return after

    def get(self, name: str) -> Project:
        """Raises NotFound."""
        project = self._queries.get(name)
        if project is None:
            raise NotFound(f"no project {name}")
        return project

    def list_all(self) -> list[Project]:
        """Every registered project, by name."""
        return self._queries.list_page(None, None)

    def list_page(
        self, after: str | None, limit: int, names: frozenset[str] | None = None
    ) -> list[Project]:
        """A page of registered projects by name, after `after` (only `names` if given)."""
        return self._queries.list_page(after, limit, names)

    def detail(
        self, name: str, retention: RetentionSettings, *, keys_created_by: str | None = None
    ) -> ProjectDetail:
        """A project with its key counts (only the keys `keys_created_by` made, if given), the
        retention in force for its records and its active legal holds. Raises NotFound."""
        project = self.get(name)
        policy = load_policy(self._store, retention)
        days = policy.projects.get(name)
        holds = [h for h in self._store.list_holds() if h.scope == "project" and h.value == name]
        return ProjectDetail(
            project=project,
            keys=self._queries.key_counts(name, self._clock(), keys_created_by),
            retention=RetentionInForce(policy.default_days, "default")
            if days is None
            else RetentionInForce(days, "project"),
            legal_holds=len(holds),
        )

    def _new(self, name: str, description: str, actor: str) -> Project:
        return Project(name, description, self._clock(), actor, None, None)

    def _register(self, project: Project, actor: str, via: Via) -> bool:
        """Insert and audit; False if the name was taken (then nothing is recorded)."""
        if not self._queries.insert(project):
            return False
        try:
            self._trail.record_event(
                CREATED,
                actor,
                {
                    "project": project.name,
                    "via": via,
                    "before": None,
                    "after": project_state(project),
                },
                project=project.name,
            )
        except Exception:
            # A registration the trail does not show must not stand.
            self._queries.delete(project.name)
            raise
        return True

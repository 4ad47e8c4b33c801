"""Store queries for guardrail policy versions and their review. A mixin of `SqlStore`; it knows
SQL and the status transitions, not who may make them (signalvault.control.policies decides that).

Statuses: `proposed` -> `active` (approved) or `rejected`; `active` -> `superseded` when another
version becomes active. Exactly one version is active once any is. Every activation bumps the
`policy` counter so running gateways rebuild their guardrail engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from signalvault.errors import StoreError
from signalvault.store.mixin import StoreMixin
from signalvault.store.schema import policies

PROPOSED, ACTIVE, SUPERSEDED, REJECTED = "proposed", "active", "superseded", "rejected"
VERSION_TRIES = 3  # another process may take the same version number first
# PostgreSQL: concurrent activations queue on the active row, and the later one then finds it
# superseded (its base check fails) instead of leaving two versions active. SQLite serializes
# writers anyway.
_ACTIVE_FOR_UPDATE = select(policies.c.version).where(policies.c.status == ACTIVE).with_for_update()


class PolicyStateChanged(Exception):
    """The version is not in the state the decision needs (already decided, or stale)."""


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version: int
    digest: str
    rules: str  # canonical JSON list of rules
    source: str  # default | config | cli | api | rollback
    status: str
    created_at: float
    created_by: str
    reason: str | None
    base_version: int | None  # the active version when it was proposed: the diff's base
    rollback_of: int | None
    decided_by: str | None
    decided_at: float | None
    decision_reason: str | None
    superseded_at: float | None


def _version(row: Any) -> PolicyVersion:
    return PolicyVersion(
        **{name: getattr(row, name) for name in PolicyVersion.__dataclass_fields__}
    )


class PolicyStore(Protocol):
    def policy_version(self) -> int: ...
    def get_policy(self, version: int) -> PolicyVersion | None: ...
    def current_policy(self) -> PolicyVersion | None: ...
    def list_policies(self) -> list[PolicyVersion]: ...
    def add_policy(
        self,
        *,
        rules: str,
        digest: str,
        source: str,
        created_by: str,
        reason: str | None,
        rollback_of: int | None,
        activate: bool,
        first: bool = False,
    ) -> PolicyVersion: ...
    def decide_policy(
        self, version: int, *, approve: bool, actor: str, reason: str | None
    ) -> PolicyVersion: ...


class PolicyQueries(StoreMixin):
    """Mixed into `SqlStore`: uses its connections and counters."""

    def get_policy(self, version: int) -> PolicyVersion | None:
        with self._connect() as conn:
            row = conn.execute(select(policies).where(policies.c.version == version)).first()
        return None if row is None else _version(row)

    def current_policy(self) -> PolicyVersion | None:
        """The active version, None before the first."""
        with self._connect() as conn:
            row = conn.execute(select(policies).where(policies.c.status == ACTIVE)).first()
        return None if row is None else _version(row)

    def list_policies(self) -> list[PolicyVersion]:
        with self._connect() as conn:
            rows = conn.execute(select(policies).order_by(policies.c.version)).all()
        return [_version(row) for row in rows]

    def add_policy(
        self,
        *,
        rules: str,
        digest: str,
        source: str,
        created_by: str,
        reason: str | None,
        rollback_of: int | None,
        activate: bool,
        first: bool = False,
    ) -> PolicyVersion:
        """A new version, `proposed`, or `active` at once (superseding the active one) if
        `activate`. Its base is the version active now.

        Raises:
            PolicyStateChanged: `first` (a bootstrap) and a version is active already.
        """
        for _ in range(VERSION_TRIES):
            now = time.time()
            try:
                with self._connect(write=True) as conn:
                    base = conn.execute(_ACTIVE_FOR_UPDATE).scalar()
                    if first and base is not None:
                        raise PolicyStateChanged(f"policy version {base} is active already")
                    newest = conn.execute(select(func.max(policies.c.version))).scalar()
                    version = int(newest or 0) + 1
                    if activate:
                        self._supersede(conn, now)
                    conn.execute(
                        policies.insert().values(
                            version=version,
                            digest=digest,
                            rules=rules,
                            source=source,
                            status=ACTIVE if activate else PROPOSED,
                            created_at=now,
                            created_by=created_by,
                            reason=reason,
                            base_version=base,
                            rollback_of=rollback_of,
                            decided_by=created_by if activate else None,
                            decided_at=now if activate else None,
                        )
                    )
                    if activate:
                        self._bump(conn, "policy")
                    row = conn.execute(select(policies).where(policies.c.version == version)).one()
            except IntegrityError:
                continue
            if activate:
                self.changed("policy")
            return _version(row)
        raise StoreError("could not record the policy version (concurrent changes)")

    def decide_policy(
        self, version: int, *, approve: bool, actor: str, reason: str | None
    ) -> PolicyVersion:
        """Approve (activate) or reject a proposed version, atomically.

        Raises:
            PolicyStateChanged: it is not `proposed`, or (approving) its base is no longer the
                active version, so the diff its reviewer saw is not the change it would make.
        """
        now = time.time()
        with self._connect(write=True) as conn:
            row = conn.execute(select(policies).where(policies.c.version == version)).first()
            if row is None or row.status != PROPOSED:
                raise PolicyStateChanged(
                    f"policy version {version} is {row.status if row else 'unknown'}, not proposed"
                )
            if approve:
                active = conn.execute(_ACTIVE_FOR_UPDATE).scalar()
                if active != row.base_version:
                    raise PolicyStateChanged(
                        f"policy version {version} was proposed against version "
                        f"{row.base_version}, but version {active} is active now; reject it "
                        "and propose the change again"
                    )
                self._supersede(conn, now)
            decided = conn.execute(
                update(policies)
                .where(policies.c.version == version, policies.c.status == PROPOSED)
                .values(
                    status=ACTIVE if approve else REJECTED,
                    decided_by=actor,
                    decided_at=now,
                    decision_reason=reason,
                )
            )
            if decided.rowcount != 1:  # a concurrent decision won
                raise PolicyStateChanged(f"policy version {version} was decided meanwhile")
            if approve:
                self._bump(conn, "policy")
            row = conn.execute(select(policies).where(policies.c.version == version)).one()
        if approve:
            self.changed("policy")
        return _version(row)

    def _supersede(self, conn: Connection, now: float) -> None:
        conn.execute(
            update(policies)
            .where(policies.c.status == ACTIVE)
            .values(status=SUPERSEDED, superseded_at=now)
        )


__all__ = ["PolicyQueries", "PolicyStateChanged", "PolicyStore", "PolicyVersion"]

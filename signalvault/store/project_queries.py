"""Queries of the project registry, and the per-project key counts its detail shows, over the
store's engine (SQLAlchemy Core, the same on SQLite and PostgreSQL). No names are checked here:
signalvault.control.projects decides what a valid name is and who may change what."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from signalvault.store.schema import gateway_keys, projects
from signalvault.store.sql import connect


@dataclass(frozen=True, slots=True)
class Project:
    name: str
    description: str
    created_at: float
    created_by: str
    updated_at: float | None
    updated_by: str | None


@dataclass(frozen=True, slots=True)
class KeyCounts:
    """Gateway keys of one project and environment by status."""

    active: int
    revoked: int
    expired: int


def _project(row: Any) -> Project:
    return Project(**{name: getattr(row, name) for name in Project.__dataclass_fields__})


class ProjectQueries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _connect(self, *, write: bool = False) -> contextlib.AbstractContextManager[Connection]:
        return connect(self._engine, write=write)

    def insert(self, project: Project) -> bool:
        """False if a project of that name exists (also when another process just added it)."""
        values = {name: getattr(project, name) for name in Project.__dataclass_fields__}
        try:
            with self._connect(write=True) as conn:
                conn.execute(projects.insert().values(**values))
        except IntegrityError:
            return False
        return True

    def delete(self, name: str) -> None:
        with self._connect(write=True) as conn:
            conn.execute(delete(projects).where(projects.c.name == name))

    def get(self, name: str) -> Project | None:
        with self._connect() as conn:
            row = conn.execute(select(projects).where(projects.c.name == name)).first()
        return None if row is None else _project(row)

    def list_page(
        self, after: str | None, limit: int | None, names: frozenset[str] | None = None
    ) -> list[Project]:
        """Up to `limit` (None: all) projects by name, after `after`; only `names` if given."""
        query = select(projects).order_by(projects.c.name).limit(limit)
        if after is not None:
            query = query.where(projects.c.name > after)
        if names is not None:
            query = query.where(projects.c.name.in_(sorted(names)))
        with self._connect() as conn:
            return [_project(row) for row in conn.execute(query)]

    def set_description(
        self, name: str, description: str, when: float, by: str
    ) -> tuple[Project, Project] | None:
        """Change a project's description: (before, after), read in the same transaction so the
        audited "before" is what was replaced; None if there is no such project."""
        where = projects.c.name == name
        with self._connect(write=True) as conn:
            row = conn.execute(select(projects).where(where).with_for_update()).first()
            if row is None:
                return None
            conn.execute(
                update(projects)
                .where(where)
                .values(description=description, updated_at=when, updated_by=by)
            )
            after = conn.execute(select(projects).where(where)).one()
        return _project(row), _project(after)

    def key_counts(
        self, name: str, now: float, created_by: str | None = None
    ) -> dict[str, KeyCounts]:
        """Keys of a project per environment: active, revoked, expired (at `now`; a revoked key
        counts as revoked whatever its expiry). `created_by` counts only the keys it created."""
        k = gateway_keys.c
        # Sums rather than GROUP BY a CASE: PostgreSQL cannot match a bound `now` in the select
        # list with the same value in GROUP BY.
        expired = func.sum(case((and_(k.revoked_at.is_(None), k.expires_at <= now), 1), else_=0))
        query = (
            select(
                k.environment,
                func.count().label("total"),
                func.count(k.revoked_at).label("revoked"),
                expired.label("expired"),
            )
            .where(k.project == name)
            .group_by(k.environment)
            .order_by(k.environment)
        )
        if created_by is not None:
            query = query.where(k.created_by == created_by)
        with self._connect() as conn:
            rows = conn.execute(query).all()
        return {
            row.environment: KeyCounts(
                active=int(row.total) - int(row.revoked) - int(row.expired or 0),
                revoked=int(row.revoked),
                expired=int(row.expired or 0),
            )
            for row in rows
        }

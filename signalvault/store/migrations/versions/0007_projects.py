"""projects registry, backfilled from the projects keys, account roles and retention name

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from alembic import op

from signalvault.trail.audit import new_record_id

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ACTOR = "migration"
RETENTION_OVERRIDES = "retention.projects"  # settings row: JSON {project: days}
GLOBAL_ROLE = "*"  # the accounts.roles key of a global role, not a project

# The tables as this revision sees them (a later schema must not change what it does).
_projects = sa.table(
    "projects",
    sa.column("name", sa.String),
    sa.column("description", sa.Text),
    sa.column("created_at", sa.Float),
    sa.column("created_by", sa.String),
)
_records = sa.table(
    "audit_records",
    sa.column("id", sa.String),
    sa.column("kind", sa.String),
    sa.column("created_at", sa.Float),
    sa.column("completed_at", sa.Float),
    sa.column("project", sa.String),
    sa.column("is_stream", sa.Boolean),
    sa.column("outcome", sa.String),
    sa.column("tokens_estimated", sa.Boolean),
    sa.column("actor", sa.String),
    sa.column("details", sa.Text),
)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=True),
        sa.Column("updated_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    _backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("projects")  # the project_created records stay: they are evidence


def _is_project_name(name: str) -> bool:
    """The project name rule when this revision was written (signalvault.control.projects)."""
    return (
        0 < len(name) <= 128 and name.isprintable() and name.strip() == name and name != GLOBAL_ROLE
    )


def _named_projects(conn: sa.Connection) -> set[str]:
    names = {row[0] for row in conn.execute(sa.text("SELECT DISTINCT project FROM gateway_keys"))}
    for (roles,) in conn.execute(sa.text("SELECT roles FROM accounts")):
        names.update(json.loads(roles))
    overrides = conn.execute(
        sa.text("SELECT value FROM settings WHERE name = :name"), {"name": RETENTION_OVERRIDES}
    ).scalar()
    if overrides:
        names.update(json.loads(overrides))
    return names


def _backfill(conn: sa.Connection) -> None:
    """Register every project the deployment already uses, so an upgraded gateway lists them.

    Each registration is audited like one made by the gateway (`project_created`, via
    "migration"). Names the registry would refuse (e.g. with surrounding spaces) stay
    unregistered: they keep working on keys, but cannot be managed as projects.
    """
    now = time.time()
    for name in sorted(n for n in _named_projects(conn) if _is_project_name(n)):
        conn.execute(
            _projects.insert().values(name=name, description="", created_at=now, created_by=ACTOR)
        )
        details = {
            "project": name,
            "via": ACTOR,
            "before": None,
            "after": {"name": name, "description": ""},
        }
        conn.execute(
            _records.insert().values(
                id=new_record_id(),
                kind="project_created",
                created_at=now,
                completed_at=now,
                project=name,
                is_stream=False,
                outcome="ok",
                tokens_estimated=False,
                actor=ACTOR,
                details=json.dumps(details),
            )
        )

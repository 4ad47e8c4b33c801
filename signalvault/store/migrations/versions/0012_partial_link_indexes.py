"""records: the call_id, run_id and trace_id indexes hold only the records that have one

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

Most records are plain model calls with none of the three, yet every insert put a NULL entry
into each index (SQLite and PostgreSQL index NULLs): three B-tree inserts, and at low
concurrency three more pages written per commit, for entries no query reads. Every query on
these columns asks for a value (`=`, `IN`, `IS NOT NULL`), which both databases know implies
the index's condition.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_audit_records_call_id": ["call_id"],
    "ix_audit_records_run_id": ["run_id", "created_at"],
    "ix_audit_records_trace_id": ["trace_id", "created_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        present = sa.text(f"{columns[0]} IS NOT NULL")
        op.drop_index(name, "audit_records")
        op.create_index(
            name, "audit_records", columns, sqlite_where=present, postgresql_where=present
        )


def downgrade() -> None:
    for name, columns in INDEXES.items():
        op.drop_index(name, "audit_records")
        op.create_index(name, "audit_records", columns)

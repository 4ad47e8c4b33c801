"""records: classification, and run/parent/call/tool columns for agent events

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.add_column(sa.Column("classification", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("run_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("parent_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("call_id", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("tool_name", sa.String(length=256), nullable=True))
        batch.create_index("ix_audit_records_run_id", ["run_id", "created_at"])
        batch.create_index("ix_audit_records_call_id", ["call_id"])


def downgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.drop_index("ix_audit_records_call_id")
        batch.drop_index("ix_audit_records_run_id")
        for name in ("tool_name", "call_id", "parent_id", "run_id", "classification"):
            batch.drop_column(name)

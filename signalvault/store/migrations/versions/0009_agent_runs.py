"""records: index on trace_id, so spans ingested over OTLP find the run of their trace

Revision ID: 0009
Revises: 0008 (main took 0010 first; the lead may renumber)
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.create_index("ix_audit_records_trace_id", ["trace_id", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.drop_index("ix_audit_records_trace_id")

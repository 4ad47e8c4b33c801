"""records: tool calls and results held in the record they were found in, and a call id index

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

A tool call or result was a record of its own: a whole audit row with every index and a seal,
about half of a request's own cost for each event. From here on they are held in the record of
the model call that asked for them or the request that sent them back (`events`, `events_ct`,
`tool_calls`), sealed with it, and a narrow table finds them by call id. Event records written
before this stay as they are (sealed rows never change); their call ids are copied into the
new table so results answering them are still matched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.add_column(sa.Column("events", sa.Text()))
        batch.add_column(sa.Column("events_ct", sa.LargeBinary()))
        batch.add_column(sa.Column("tool_calls", sa.Integer()))
    op.create_table(
        "tool_call_links",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("project", sa.String(128)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("record_id", sa.String(36), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("tool_name", sa.String(256)),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_tool_call_links_call_id", "tool_call_links", ["call_id"])
    op.execute(
        "INSERT INTO tool_call_links "
        "(call_id, project, kind, event_id, record_id, run_id, tool_name, created_at) "
        "SELECT call_id, project, kind, id, id, run_id, tool_name, created_at "
        "FROM audit_records "
        "WHERE call_id IS NOT NULL AND kind IN ('tool_call', 'tool_result')"
    )


def downgrade() -> None:
    op.drop_index("ix_tool_call_links_call_id", "tool_call_links")
    op.drop_table("tool_call_links")
    with op.batch_alter_table("audit_records") as batch:
        batch.drop_column("tool_calls")
        batch.drop_column("events_ct")
        batch.drop_column("events")

"""guardrail policy review: reason, base version, rollback origin, decision reason, superseded_at

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("base_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rollback_of", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("decision_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("superseded_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policies") as batch:
        for name in ("superseded_at", "decision_reason", "rollback_of", "base_version", "reason"):
            batch.drop_column(name)

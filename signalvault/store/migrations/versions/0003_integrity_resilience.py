"""attempts, event actor/details, seal columns, checkpoints, leases, holds, settings, budgets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.add_column(sa.Column("attempts", sa.Text(), nullable=True))
        batch.add_column(sa.Column("actor", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("details", sa.Text(), nullable=True))
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("leaf_hash", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("tombstoned_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("tombstone_reason", sa.String(length=32), nullable=True))
        batch.create_index("ix_audit_records_seq", ["seq"], unique=True)
    with op.batch_alter_table("gateway_keys") as batch:
        batch.add_column(sa.Column("budget_tokens", sa.BigInteger(), nullable=True))
    op.create_table(
        "checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("signing_key_id", sa.String(length=32), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("released_at", sa.Float(), nullable=True),
        sa.Column("released_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_legal_holds_scope_value", "legal_holds", ["scope", "value"])
    op.create_table(
        "settings",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_index("ix_legal_holds_scope_value", table_name="legal_holds")
    op.drop_table("legal_holds")
    op.drop_table("leases")
    op.drop_table("checkpoints")
    with op.batch_alter_table("gateway_keys") as batch:
        batch.drop_column("budget_tokens")
    with op.batch_alter_table("audit_records") as batch:
        batch.drop_index("ix_audit_records_seq")
        for name in (
            "tombstone_reason",
            "tombstoned_at",
            "leaf_hash",
            "seq",
            "details",
            "actor",
            "attempts",
        ):
            batch.drop_column(name)

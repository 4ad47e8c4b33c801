"""rotated gateway key secrets (grace periods), stored provider credentials

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_keys") as batch:
        batch.add_column(sa.Column("rotated_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("grace_until", sa.Float(), nullable=True))
        batch.add_column(sa.Column("previous_prefix", sa.String(length=64), nullable=True))
    op.create_table(
        "key_secrets",
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=64), nullable=False),
        sa.Column("retired_at", sa.Float(), nullable=False),
        sa.Column("valid_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("secret_hash"),
    )
    op.create_index("ix_key_secrets_key_id", "key_secrets", ["key_id"])
    op.create_index("ix_key_secrets_prefix", "key_secrets", ["prefix"])
    op.create_table(
        "provider_credentials",
        sa.Column("provider", sa.String(length=128), nullable=False),
        sa.Column("environment", sa.String(length=32), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("master_key_id", sa.String(length=32), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("rotated_at", sa.Float(), nullable=True),
        sa.Column("rotated_by", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("provider", "environment"),
    )


def downgrade() -> None:
    op.drop_table("provider_credentials")
    op.drop_index("ix_key_secrets_prefix", table_name="key_secrets")
    op.drop_index("ix_key_secrets_key_id", table_name="key_secrets")
    op.drop_table("key_secrets")
    with op.batch_alter_table("gateway_keys") as batch:
        for name in ("previous_prefix", "grace_until", "rotated_at"):
            batch.drop_column(name)

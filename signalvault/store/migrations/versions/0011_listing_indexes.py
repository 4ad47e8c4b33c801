"""records: (column, created_at) indexes for the dashboard's and the API's filtered listings

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

Listings run newest first by (created_at, id); each filter the dashboard offers gets an index
leading with its column and then created_at, so a filtered page reads only the rows it shows
(key_id and end_user had theirs already). See bench/dashboard_logs.py.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEXES = ("project", "outcome", "classification", "kind", "model_requested")


def upgrade() -> None:
    for column in INDEXES:
        op.create_index(f"ix_audit_records_{column}", "audit_records", [column, "created_at"])


def downgrade() -> None:
    for column in INDEXES:
        op.drop_index(f"ix_audit_records_{column}", "audit_records")

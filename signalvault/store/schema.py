"""Table definitions (SQLAlchemy Core). Alembic migrations create them; a test keeps both equal.

Times are Unix epoch seconds as floats. Content columns hold AES-GCM ciphertext only.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

audit_records = Table(
    "audit_records",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("completed_at", Float),
    Column("project", String(128)),
    Column("key_id", String(64)),
    Column("environment", String(32)),
    Column("end_user", String(256)),
    Column("session_id", String(256)),
    Column("trace_id", String(64)),
    Column("api", String(32)),
    Column("provider", String(128)),
    Column("model_requested", String(256)),
    Column("model_used", String(256)),
    Column("is_stream", Boolean, nullable=False, default=False),
    Column("status_code", Integer),
    Column("outcome", String(32), nullable=False),
    Column("error_code", String(64)),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("total_tokens", Integer),
    Column("tokens_estimated", Boolean, nullable=False, default=False),
    Column("latency_ms", Float),
    Column("ttfb_ms", Float),
    Column("data_key_id", String(64)),
    Column("policy_version", Integer),
    Column("guardrails", Text),  # JSON: one evaluation per rule and direction, never values
    Column("prompt_ct", LargeBinary),
    Column("response_ct", LargeBinary),
    Index("ix_audit_records_created_at", "created_at"),
    Index("ix_audit_records_key_id", "key_id", "created_at"),
    Index("ix_audit_records_end_user", "end_user", "created_at"),
)

data_keys = Table(
    "data_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("subject", String(256), nullable=False),
    Column("wrapped", LargeBinary),
    Column("master_key_id", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("destroyed_at", Float),
    Index("ix_data_keys_subject", "subject"),
)

gateway_keys = Table(
    "gateway_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("project", String(128), nullable=False),
    Column("environment", String(32), nullable=False),
    Column("prefix", String(64), nullable=False),
    Column("secret_hash", LargeBinary, nullable=False, unique=True),
    Column("models", Text, nullable=False),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("expires_at", Float),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
    Index("ix_gateway_keys_prefix", "prefix"),
)

wrapped_secrets = Table(
    "wrapped_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("master_key_id", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
)

# Guardrail policy versions. `status`: active (exactly one), superseded, and (with review)
# proposed / rejected. Every audit record names the version that judged it.
policies = Table(
    "policies",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("digest", String(64), nullable=False),
    Column("rules", Text, nullable=False),
    Column("source", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("decided_by", String(256)),
    Column("decided_at", Float),
    Index("ix_policies_status", "status"),
)

# Monotonic counters other processes watch, e.g. `keys` bumps on every key change so a running
# gateway drops its key cache on the next request.
state = Table(
    "state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

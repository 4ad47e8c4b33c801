"""Table definitions (SQLAlchemy Core). Alembic migrations create them; a test keeps both equal.

Times are Unix epoch seconds as floats. Content columns hold AES-GCM ciphertext only.
"""

from __future__ import annotations

from typing import Any

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
    text,
)

metadata = MetaData()


def _present(column: str) -> dict[str, Any]:
    """A partial index's condition: rows where `column` is set. Given for SQLite here; PostgreSQL
    gets the same from `add_postgres_options()`, which signalvault.store.postgres calls: a
    `postgresql_*` argument here made SQLAlchemy import its PostgreSQL dialect in every process
    (~2.5 MiB resident that a SQLite gateway never uses)."""
    return {"sqlite_where": text(f"{column} IS NOT NULL")}


def add_postgres_options() -> None:
    """Give the partial indexes their PostgreSQL condition (the same as SQLite's)."""
    for table in metadata.tables.values():
        for index in table.indexes:
            where = index.dialect_options["sqlite"]["where"]
            if where is not None and index.dialect_options["postgresql"]["where"] is None:
                index.dialect_kwargs["postgresql_where"] = where


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
    # JSON: every provider attempt (provider, model, status or error, ms), fallbacks included.
    Column("attempts", Text),
    # Records that are not interactions (admin actions, content reads, retention runs, erasure
    # receipts, seals): who acted, and what happened as JSON metadata (never content).
    Column("actor", String(256)),
    Column("details", Text),
    # Tamper evidence: the sealer assigns `seq` (position in the Merkle tree, from 0) and stores
    # the leaf hash; a sealed record is never updated again except to become a tombstone.
    Column("seq", BigInteger),
    Column("leaf_hash", LargeBinary),
    # A tombstone keeps id, kind, created_at, seq and leaf_hash; every other column is cleared.
    Column("tombstoned_at", Float),
    Column("tombstone_reason", String(32)),
    # Added in migration 0008 (they enter a record's leaf only when set; see integrity/leaf.py).
    # Data classification (SPEC §7c): public, internal, confidential, restricted.
    Column("classification", String(16)),
    # Agent runs (SPEC §7b): the run a record belongs to, the event it hangs under, and for
    # tool calls and results the provider's call id and the tool's name.
    Column("run_id", String(64)),
    Column("parent_id", String(36)),
    Column("call_id", String(128)),
    Column("tool_name", String(256)),
    # Added in migration 0013: the tool calls a model call's answer asked for and the tool
    # results its request sent back, held in its own row (SPEC §7b events with this record as
    # `record_id`), so its seal covers them. `events` is JSON metadata (never content), one
    # object per event; `events_ct` their arguments or results (a JSON array in the same order)
    # encrypted like the prompt; `tool_calls` how many of them are calls (run counters).
    Column("events", Text),
    Column("events_ct", LargeBinary),
    Column("tool_calls", Integer),
    Index("ix_audit_records_created_at", "created_at"),
    Index("ix_audit_records_seq", "seq", unique=True),
    Index("ix_audit_records_key_id", "key_id", "created_at"),
    Index("ix_audit_records_end_user", "end_user", "created_at"),
    # Migration 0012: only records that have one (most have none; every query asks for one).
    Index("ix_audit_records_run_id", "run_id", "created_at", **_present("run_id")),
    Index("ix_audit_records_call_id", "call_id", **_present("call_id")),
    # Migration 0011: one per filter of the listings, which run newest first by created_at.
    Index("ix_audit_records_project", "project", "created_at"),
    Index("ix_audit_records_outcome", "outcome", "created_at"),
    Index("ix_audit_records_classification", "classification", "created_at"),
    Index("ix_audit_records_kind", "kind", "created_at"),
    Index("ix_audit_records_model_requested", "model_requested", "created_at"),
    # Added in migration 0009: spans ingested over OTLP join the run of their trace.
    Index("ix_audit_records_trace_id", "trace_id", "created_at", **_present("trace_id")),
)

# Migration 0013: where each tool call and result held in a record's `events` is, by call id, so
# a result answering a call made through another process (or before a restart) finds it. A
# lookup aid derived from the records, not evidence: the records' seals cover the events.
tool_call_links = Table(
    "tool_call_links",
    metadata,
    Column("call_id", String(128), nullable=False),
    Column("project", String(128)),
    Column("kind", String(16), nullable=False),  # tool_call or tool_result
    Column("event_id", String(36), nullable=False),
    Column("record_id", String(36), nullable=False),
    Column("run_id", String(64)),
    Column("tool_name", String(256)),
    Column("created_at", Float, nullable=False),
    Index("ix_tool_call_links_call_id", "call_id"),
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
    Column("budget_tokens", BigInteger),  # optional tokens per calendar month (UTC)
    Column("expires_at", Float),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
    # The last rotation: when, the previous secret's prefix, and when that secret stops working.
    Column("rotated_at", Float),
    Column("grace_until", Float),
    Column("previous_prefix", String(64)),
    Index("ix_gateway_keys_prefix", "prefix"),
)

# Secrets a rotation replaced (only their keyed hash): valid until `valid_until`, then kept so a
# late caller is told the key was rotated rather than that it is unknown.
key_secrets = Table(
    "key_secrets",
    metadata,
    Column("secret_hash", LargeBinary, primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("prefix", String(64), nullable=False),
    Column("retired_at", Float, nullable=False),
    Column("valid_until", Float, nullable=False),
    Index("ix_key_secrets_key_id", "key_id"),
    Index("ix_key_secrets_prefix", "prefix"),
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
# proposed / rejected. `decided_by`/`decided_at`: who approved (activated) or rejected it.
# Every audit record names the version that judged it.
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
    # Review: the proposer's reason, the version active when proposed (its diff base), the
    # version a rollback restores, the reviewer's reason, and when a later version replaced it.
    Column("reason", Text),
    Column("base_version", Integer),
    Column("rollback_of", Integer),
    Column("decision_reason", Text),
    Column("superseded_at", Float),
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

# Signed tree heads of the audit Merkle tree, one per seal. `body` is the exact signed text
# (JSON: tree size, root, previous checkpoint's digest, time, key id); `frontier` caches the
# roots of the tree's perfect subtrees so the next seal appends without rereading every leaf.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("body", Text, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("signing_key_id", String(32), nullable=False),
    Column("frontier", LargeBinary, nullable=False),
)

# Time-limited exclusive roles among gateway processes (e.g. the one sealer at a time).
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Legal holds suspend retention and erasure for a project, key, end user or single record.
legal_holds = Table(
    "legal_holds",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("scope", String(16), nullable=False),  # project | key | user | record
    Column("value", String(256), nullable=False),
    Column("reason", Text),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("released_at", Float),
    Column("released_by", String(256)),
    Index("ix_legal_holds_scope_value", "scope", "value"),
)

# Settings changed at run time (e.g. retention days per project), JSON values.
settings = Table(
    "settings",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(256), nullable=False),
)

# Dashboard and admin-API accounts (SPEC §5). `email` is stored lower-cased; `roles` is JSON
# {project or "*": role}; `password_hash` is an Argon2id PHC string, never the password.
accounts = Table(
    "accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("roles", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("disabled_at", Float),
    Column("disabled_by", String(256)),
    # None while the password is one the gateway generated and printed (a one-time password).
    Column("password_changed_at", Float),
)

# Browser sessions. `id` is the SHA-256 (hex) of the cookie secret and `csrf_hash` that of the
# CSRF token, so the database never holds either.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("csrf_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),  # absolute end, however active
    Column("revoked_at", Float),
    Column("address", String(64)),
    Index("ix_sessions_account_id", "account_id"),
)

# Personal API tokens (`svadm-...`) for scripts, stored as HMAC-SHA-256 under the key pepper.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("name", String(256), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("secret_hash", LargeBinary, nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
    Index("ix_api_tokens_account_id", "account_id"),
)

# Failed-login counters shared by every process: `key` is `email:<address>` or `address:<ip>`.
# After `failures` reach the limit within the window the key is locked until `locked_until`;
# `lockouts` counts consecutive locks, each twice as long as the one before.
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("window_start", Float, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("locked_until", Float),
    Column("lockouts", Integer, nullable=False),
)

# Provider API keys stored wrapped by the master key (name `provider:<provider>:<environment>`).
# `environment` "" is the provider-wide credential; `hint` is the last four characters, for
# masked listings.
provider_credentials = Table(
    "provider_credentials",
    metadata,
    Column("provider", String(128), primary_key=True),
    Column("environment", String(32), primary_key=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("master_key_id", String(32), nullable=False),
    Column("hint", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("rotated_at", Float),
    Column("rotated_by", String(256)),
)

# Projects (issue 4): the names gateway keys, account roles, retention overrides and legal holds
# refer to, registered explicitly or on first use. `description` is "" when there is none.
projects = Table(
    "projects",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("description", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("updated_at", Float),
    Column("updated_by", String(256)),
)

# Incidents (SPEC §7c, migration 0010): alerts of one kind and scope open or join one; people
# acknowledge and resolve it with a note. Times of acknowledgement and resolution give the
# response times the report measures.
incidents = Table(
    "incidents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("scope", String(256), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # open | acknowledged | resolved
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("count", Integer, nullable=False),
    Column("summary", Text),  # JSON metadata of the latest alert (never content)
    Column("acknowledged_at", Float),
    Column("acknowledged_by", String(256)),
    Column("ack_note", Text),
    Column("resolved_at", Float),
    Column("resolved_by", String(256)),
    Column("resolution_note", Text),
    Index("ix_incidents_open", "kind", "scope", "status"),
    Index("ix_incidents_first_seen", "first_seen"),
)
# The records an incident's alerts came from (a record id may be absent: a failed verification).
incident_records = Table(
    "incident_records",
    metadata,
    Column("incident_id", String(36), primary_key=True),
    Column("record_id", String(36), primary_key=True),
    Column("at", Float, nullable=False),
)

"""Admin API bodies of the trail's resources: log records, verification, retention, legal holds,
erasure receipts, export manifests and the signing key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from signalvault.control.api.models import ProjectName, RequestBody, Text


class LogRecord(BaseModel):
    """A record's metadata (`audit.record_json`): never content, never ciphertext."""

    id: str
    kind: str
    time: str | None
    completed_at: str | None
    stream: bool
    has_content: bool
    project: str | None
    key_id: str | None
    environment: str | None
    end_user: str | None
    session_id: str | None
    trace_id: str | None
    run_id: str | None = None
    parent_id: str | None = None
    call_id: str | None = None
    tool_name: str | None = None
    classification: str | None = None
    api: str | None
    provider: str | None
    model_requested: str | None
    model_used: str | None
    status_code: int | None
    outcome: str | None
    error_code: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    tokens_estimated: bool
    latency_ms: float | None
    ttfb_ms: float | None
    policy_version: int | None
    guardrails: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    actor: str | None = None
    details: dict[str, Any] | None = None


class LogDetail(LogRecord):
    prompt: str | None = Field(default=None, description="Only with ?content=true.")
    response: str | None = Field(default=None, description="Only with ?content=true.")
    content_erased: bool | None = None


class LogPage(BaseModel):
    data: list[LogRecord]
    next_cursor: str | None


class VerifyFinding(BaseModel):
    kind: str
    message: str
    record_id: str | None
    seq: int | None
    checkpoint: int | None


class VerifyResult(BaseModel):
    status: Literal["intact", "suspicious", "tampered"]
    tree_size: int
    root: str | None
    records_checked: int
    tombstones: int
    checkpoints_checked: int
    sealed_during_run: int
    unsealed: int
    trusted_checkpoints_checked: int
    consistency: dict[str, Any] | None
    problems: dict[str, int]
    findings: list[VerifyFinding]


class Retention(BaseModel):
    default_days: int
    projects: dict[str, int]


class RetentionUpdate(RequestBody):
    default_days: int | None = Field(default=None, ge=0, le=36500)
    projects: dict[ProjectName, Annotated[int, Field(ge=0, le=36500)] | None] = Field(
        default_factory=dict, description="Per-project days; null removes the override."
    )


class LegalHold(BaseModel):
    id: str
    scope: str
    value: str
    reason: str | None
    status: Literal["active", "released"]
    created_at: str | None
    created_by: str
    released_at: str | None
    released_by: str | None


class LegalHoldPage(BaseModel):
    data: list[LegalHold]
    next_cursor: str | None


class LegalHoldCreate(RequestBody):
    scope: Literal["project", "key", "user", "record"]
    value: Text = Field(min_length=1, max_length=256)
    reason: Text | None = Field(default=None, max_length=1000)


class ErasureReceipt(BaseModel):
    record_id: str
    subject_hash: str
    records: int
    data_keys: int
    space_reclaimed: bool


class SigningKey(BaseModel):
    algorithm: str
    id: str
    public_key: str = Field(description="Base64 of the raw Ed25519 public key")


class ExportManifest(BaseModel):
    """A signed export manifest, exactly as `signalvault export verify` reads it (fields beyond
    these, such as `subject`, pass through unchanged)."""

    model_config = ConfigDict(extra="allow")

    kind: str
    file: str
    format: str
    include_content: bool
    filters: dict[str, Any]
    record_count: int
    sha256: str
    size_bytes: int
    audit_record_id: str | None
    signing_key: SigningKey
    signature: str = Field(description="Base64 Ed25519 signature of the canonical manifest")

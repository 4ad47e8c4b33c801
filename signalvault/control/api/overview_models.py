"""Admin API bodies of the overview (traffic over a period), the integrity status and the
checkpoint list, and the guardrail playground."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from signalvault.control.api.models import RequestBody, Text

Period = Literal["1h", "24h", "7d", "30d"]


class Totals(BaseModel):
    requests: int
    blocked: int
    redacted: int = Field(description="Records in which a guardrail redacted something")
    errors: int = Field(description="Provider and gateway errors")
    error_rate: float
    tokens: int
    p50_ms: float | None = Field(description="Upper bound of the histogram bin (approximate)")
    p99_ms: float | None


class Point(BaseModel):
    start: str | None
    requests: int
    blocked: int
    errors: int
    redacted: int
    tokens: int


class Usage(BaseModel):
    name: str
    requests: int
    tokens: int


class OutcomeCount(BaseModel):
    outcome: str
    requests: int


class FindingCount(BaseModel):
    type: str
    count: int


class Overview(BaseModel):
    """Interactions over a period, only those the caller may see (as `GET /api/logs`)."""

    period: Period
    since: str | None
    until: str | None
    bucket_seconds: int
    totals: Totals
    series: list[Point]
    outcomes: list[OutcomeCount]
    findings: list[FindingCount]
    tokens_by_model: list[Usage]
    tokens_by_project: list[Usage]
    breakers: dict[str, str] = Field(description="Circuit breaker state per provider")


class Verification(BaseModel):
    at: str | None
    by: str | None
    status: str | None
    records_checked: int | None


class CheckpointOut(BaseModel):
    tree_size: int
    root: str
    created_at: str | None
    signing_key_id: str
    prev: str | None


class IntegrityView(BaseModel):
    last_seal_at: str | None
    tree_size: int
    unsealed: int
    last_verification: Verification | None
    data: list[CheckpointOut]
    next_cursor: str | None


class PlaygroundRun(RequestBody):
    """A draft policy and a text to judge: nothing is stored, nothing is forwarded."""

    rules: list[dict[str, Any]] = Field(max_length=200)
    text: Text = Field(max_length=100_000)
    direction: Literal["input", "output"] = "input"
    model: Text | None = Field(default=None, max_length=256)


class PlaygroundFinding(BaseModel):
    type: str
    start: int
    end: int
    rule: str


class PlaygroundEvaluation(BaseModel):
    rule: str
    detector: str
    action: str
    outcome: str
    kinds: dict[str, int]


class PlaygroundResult(BaseModel):
    decision: Literal["allow", "redact", "block"]
    evaluations: list[PlaygroundEvaluation]
    findings: list[PlaygroundFinding]
    redacted_text: str | None = Field(description="The text as it would be forwarded")

"""The report as data: criteria with their status, evidence items and gaps. Every evidence item
says how it was produced (query and parameters), when, over how many rows, which part of the
trail it covers (sequence numbers and checkpoint) and until when it stays valid, so an auditor
can re-perform it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MET, GAP, NOT_APPLICABLE = "met", "gap", "not_applicable"


@dataclass(slots=True)
class Evidence:
    title: str
    produced_by: dict[str, Any]  # {"source": trail | configuration | store, "query", "parameters"}
    generated_at: str
    row_count: int
    trail_range: dict[str, Any] | None
    valid_until: str | None
    figures: dict[str, Any] = field(default_factory=dict)
    table: dict[str, Any] | None = None  # {"columns": [...], "rows": [[...], ...]}
    record_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "produced_by": self.produced_by,
            "generated_at": self.generated_at,
            "row_count": self.row_count,
            "trail_range": self.trail_range,
            "valid_until": self.valid_until,
            "figures": self.figures,
            "table": self.table,
            "record_ids": self.record_ids,
        }


@dataclass(frozen=True, slots=True)
class Gap:
    problem: str
    remedy: str

    def as_json(self) -> dict[str, str]:
        return {"problem": self.problem, "remedy": self.remedy}


@dataclass(slots=True)
class Criterion:
    id: str
    title: str
    category: str  # security, availability, processing integrity, confidentiality, privacy
    evidence: list[Evidence]
    gaps: list[Gap] = field(default_factory=list)
    is_applicable: bool = True
    note: str = ""  # why it does not apply, or how to read the evidence

    @property
    def status(self) -> str:
        if not self.is_applicable:
            return NOT_APPLICABLE
        return GAP if self.gaps else MET

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category,
            "status": self.status,
            "note": self.note or None,
            "evidence": [e.as_json() for e in self.evidence],
            "gaps": [g.as_json() for g in self.gaps],
        }

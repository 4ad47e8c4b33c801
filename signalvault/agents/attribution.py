"""Which guardrail findings belong to which tool call or result: a scan judges every text of a
request or response at once, and its findings name segments; an event gets the part of each
rule's judgement that fell in its own segments. Positions and kinds only, never values."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from signalvault.guardrails.engine import Evaluation, Verdict

_STRENGTH = {"pass": 0, "logged": 1, "spotlighted": 1, "redacted": 2, "blocked": 3, "error": 4}

Hit = tuple[str, str]  # (rule, finding kind)


def hits_by_segment(verdict: Verdict) -> dict[int, list[Hit]]:
    """(rule, kind) of every finding of a verdict, by the segment it was found in."""
    found: dict[int, list[Hit]] = {}
    findings = iter(verdict.findings)
    for evaluation in verdict.evaluations:
        for _ in evaluation.spans:
            segment, finding = next(findings)
            found.setdefault(segment, []).append((evaluation.rule, finding.kind))
    return found


def summarize(
    evaluations: Sequence[Evaluation], hits: Iterable[Hit], direction: str | None = None
) -> list[dict[str, Any]]:
    """The rules that found something in the event, one entry each with the rule's outcome and
    the kinds found there. Rules that found nothing are left out: the model call's record lists
    every rule that ran (and each event row is sealed and kept, so it stays small)."""
    kinds: dict[str, dict[str, int]] = {}
    for rule, kind in hits:
        counts = kinds.setdefault(rule, {})
        counts[kind] = counts.get(kind, 0) + 1
    summary = []
    for e in evaluations:
        mine = kinds.get(e.rule)
        if not mine:
            continue
        summary.append(
            {
                "rule": e.rule,
                "detector": e.detector,
                "direction": direction or e.direction,
                "action": e.action,
                "outcome": e.outcome,
                "kinds": mine,
            }
        )
    return summary


def segments_of(holders: Collection[int], slots: Sequence[tuple[Any, Any]]) -> list[int]:
    """Indexes of the scanned slots (container, key) whose container is one of `holders`."""
    return [i for i, (container, _) in enumerate(slots) if id(container) in holders]


def own_evaluations(evaluations: Sequence[Evaluation]) -> list[dict[str, Any]]:
    """Evaluations that judged the event alone (tool policies), as recorded."""
    return [
        {
            "rule": e.rule,
            "detector": e.detector,
            "direction": e.direction,
            "action": e.action,
            "outcome": e.outcome,
            "kinds": dict(e.kinds),
        }
        for e in evaluations
    ]


def merge_into(record: list[dict[str, Any]], evaluations: Iterable[Evaluation]) -> None:
    """Add per-event evaluations to the model call's record, one entry per rule and direction
    (the strongest outcome, kinds summed), as the record's other evaluations are kept."""
    index: dict[tuple[str, str], dict[str, Any]] | None = None  # built once there is one
    for e in evaluations:
        if index is None:
            index = {(r["rule"], r["direction"]): r for r in record}
        existing = index.get((e.rule, e.direction))
        if existing is None:
            entry = e.as_dict()
            entry["kinds"] = dict(e.kinds)
            record.append(entry)
            index[(e.rule, e.direction)] = entry
            continue
        for kind, count in e.kinds.items():
            existing["kinds"][kind] = existing["kinds"].get(kind, 0) + count
        if _STRENGTH.get(e.outcome, 0) > _STRENGTH.get(existing["outcome"], 0):
            existing["outcome"] = e.outcome
        existing["ms"] = round(existing.get("ms", 0.0) + e.ms, 3)

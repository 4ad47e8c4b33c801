"""The guardrail playground: a draft policy judged on a pasted text, exactly as the gateway's
engine would judge a request, with nothing stored, recorded or forwarded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from signalvault.gateway.tokens import TokenCounter
from signalvault.guardrails.engine import Context, Engine, Redactor
from signalvault.guardrails.policy import Policy, parse_rules

DRAFT_VERSION = 0  # not a stored version: the draft is never saved


def try_policy(
    rules: Sequence[Mapping[str, Any]],
    text: str,
    direction: str,
    model: str | None,
    tokens: TokenCounter,
) -> dict[str, Any]:
    """What the draft `rules` would do to `text`: the decision, each rule's evaluation, where
    each finding is, and the text as it would be forwarded after redaction.

    Raises:
        ConfigError: a rule is malformed (the message names it).
    """
    engine = Engine(Policy(DRAFT_VERSION, parse_rules(rules)), tokens.count)
    verdict = engine.scan([text], direction, Context(model=model), Redactor())
    kinds = {(f.start, f.end): f.kind for _, f in verdict.findings}
    findings = [
        {"type": kinds.get((start, end), "?"), "start": start, "end": end, "rule": e.rule}
        for e in verdict.evaluations
        for _, start, end in e.spans
        if end > start
    ]
    redacted = verdict.texts[0] if verdict.texts else None
    return {
        "decision": verdict.decision,
        "evaluations": [
            {
                "rule": e.rule,
                "detector": e.detector,
                "action": e.action,
                "outcome": e.outcome,
                "kinds": dict(e.kinds),
            }
            for e in verdict.evaluations
        ],
        "findings": sorted(findings, key=lambda f: (f["start"], f["end"])),
        "redacted_text": None if verdict.decision == "block" else (redacted or text),
    }

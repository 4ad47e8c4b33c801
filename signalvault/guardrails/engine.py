"""Running a policy over text: each applicable rule scans, and findings become one Verdict
(block, redact or allow) plus an Evaluation per rule for the audit record (never values).

Detectors are built once per distinct configuration and shared between rules.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from signalvault.guardrails.finding import Finding
from signalvault.guardrails.policy import AGENT_DETECTORS, Policy, Rule
from signalvault.guardrails.scan_cache import ScanCache

# Context windows for the default token limit; unknown models get no default limit.
CONTEXT_WINDOWS: tuple[tuple[str, int], ...] = (
    ("gpt-4.1*", 1_047_576),
    ("gpt-5*", 400_000),
    ("gpt-4o*", 128_000),
    ("gpt-4-turbo*", 128_000),
    ("gpt-4*", 8_192),
    ("gpt-3.5-turbo*", 16_385),
    ("o1*", 200_000),
    ("o3*", 200_000),
    ("o4*", 200_000),
    ("claude-*", 200_000),
    ("text-embedding-*", 8_192),
)


# What a rule's action makes of a finding. `spotlight` marks tool results as data (the caller,
# signalvault.agents, does the marking); like `log` it lets the text through.
_OUTCOMES = {"block": "blocked", "redact": "redacted", "log": "logged", "spotlight": "spotlighted"}


# Context and Evaluation are built several times per request: not frozen, as a frozen
# dataclass's __init__ (object.__setattr__ per field) costs five times a plain one's. Treat
# them as values all the same.
@dataclass(slots=True)
class Context:
    """What rules may depend on besides text."""

    project: str | None = None
    key_id: str | None = None
    environment: str | None = None
    model: str | None = None
    max_output_tokens: int | None = None


@dataclass(slots=True)
class Evaluation:
    """One rule's judgement of one direction, as recorded with the request."""

    rule: str
    detector: str
    direction: str
    action: str
    outcome: str  # pass | logged | redacted | blocked | error
    kinds: dict[str, int]
    spans: tuple[tuple[int, int, int], ...]  # (segment, start, end), positions only
    ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "detector": self.detector,
            "direction": self.direction,
            "action": self.action,
            "outcome": self.outcome,
            "kinds": self.kinds,
            "spans": list(map(list, self.spans)),  # (no comprehension frame per evaluation)
            "ms": round(self.ms, 3),
        }


@dataclass(slots=True)
class Verdict:
    decision: str = "allow"  # allow | redact | block
    evaluations: list[Evaluation] = field(default_factory=list)
    texts: list[str] | None = None  # the segments after redaction, when decision == "redact"
    findings: list[tuple[int, Finding]] = field(default_factory=list)  # every finding, any action

    @property
    def blocked_by(self) -> list[Evaluation]:
        return [e for e in self.evaluations if e.outcome == "blocked"]


class Redactor:
    """Typed, numbered placeholders, stable within one request: the same value always maps to the
    same placeholder, and placeholders can be mapped back (`restore`)."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self.originals: dict[str, str] = {}  # placeholder -> value, for rules with restore

    def placeholder(self, kind: str, value: str, *, restorable: bool) -> str:
        existing = self._by_value.get((kind, value))
        if existing is None:
            count = self._counts.get(kind, 0) + 1
            self._counts[kind] = count
            existing = f"[{kind}_{count}]"
            self._by_value[(kind, value)] = existing
        if restorable:
            self.originals[existing] = value
        return existing

    def restore(self, text: str) -> str:
        for placeholder, value in self.originals.items():
            if placeholder in text:
                text = text.replace(placeholder, value)
        return text


TextDetector = Callable[[str], list[Finding]]


def _build_detector(rule: Rule) -> TextDetector:
    options = rule.options
    if rule.detector == "pii":
        from signalvault.guardrails.pii import PiiDetector

        return PiiDetector(
            types=options.get("types"),
            threshold=float(options.get("threshold", 0.5)),
            allow=options.get("allow", ()),
        )
    if rule.detector == "secrets":
        from signalvault.guardrails.secrets import SecretsDetector

        return SecretsDetector(
            types=options.get("types"),
            allow=options.get("allow", ()),
            threshold=float(options.get("threshold", 0.5)),
        )
    if rule.detector == "prompt_injection":
        from signalvault.guardrails.injection import InjectionDetector

        return InjectionDetector(threshold=float(options.get("threshold", 0.5)))
    if rule.detector == "indirect_injection":
        from signalvault.guardrails.indirect_injection import IndirectInjectionDetector

        return IndirectInjectionDetector(threshold=float(options.get("threshold", 0.5)))
    from signalvault.guardrails.custom import CustomDetector

    return CustomDetector(
        rule.name,
        patterns=options.get("patterns", ()),
        keywords=options.get("keywords", ()),
        ignore_case=bool(options.get("ignore_case", True)),
    )


class Engine:
    """A compiled policy. `scan` is called for input and for output of every request."""

    def __init__(
        self,
        policy: Policy,
        token_counter: Callable[[str, str | None], int],
        *,
        cache_entries: int = 0,
    ) -> None:
        self.policy = policy
        self._count_tokens = token_counter
        self.cache = ScanCache(cache_entries)
        self._windows: dict[str | None, int | None] = {}  # model -> its context window
        built: dict[bytes, TextDetector] = {}
        self._detectors: dict[str, TextDetector] = {}
        for rule in policy.rules:
            # Agent rules judge tools and runs, not text (signalvault.agents.tool_policy).
            if rule.detector in ("token_limit", "model_allowlist") or rule.detector in (
                AGENT_DETECTORS
            ):
                continue
            signature = orjson.dumps(
                [rule.detector, rule.name if rule.detector == "custom" else "", rule.options],
                option=orjson.OPT_SORT_KEYS,
            )
            if signature not in built:
                built[signature] = _build_detector(rule)
            self._detectors[rule.name] = built[signature]

    def rules_for(self, direction: str, context: Context) -> list[Rule]:
        return [
            r for r in self.policy.rules if r.applies(direction, context.project, context.key_id)
        ]

    def scan(
        self,
        segments: Sequence[str],
        direction: str,
        context: Context,
        redactor: Redactor,
        rules: Sequence[Rule] | None = None,
    ) -> Verdict:
        """Judge `segments` (the texts of one request or response) by the rules of `direction`
        that apply in `context`, or by `rules` (some of them: a stream's hold-back windows).

        Raises:
            Exception: whatever a detector raised; the caller applies the failure mode.
        """
        verdict = Verdict()
        to_redact: list[tuple[int, Finding, bool]] = []
        memo: dict[int, list[list[Finding]]] = {}  # detector id -> findings per segment
        # Cache keys, one per segment for every detector. Only inputs are cached: they are what
        # comes again (system prompts, the conversation so far); outputs are new each time, and
        # a stream's growing windows would flush the cache.
        keys = [self.cache.digest(text) if direction == "input" else None for text in segments]
        for rule in self.rules_for(direction, context) if rules is None else rules:
            started = time.perf_counter()
            per_segment = self._findings(rule, segments, context, memo, keys)
            # Most rules find nothing: any() skips building the (empty) list in a comprehension.
            found = (
                [(i, f) for i, fs in enumerate(per_segment) for f in fs] if any(per_segment) else []
            )
            verdict.findings.extend(found)
            kinds: dict[str, int] = {}
            for _, finding in found:
                kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
            outcome = "pass"
            if found:
                outcome = _OUTCOMES[rule.action]
                if rule.action == "block":
                    verdict.decision = "block"
                elif rule.action == "redact":
                    restorable = bool(rule.options.get("restore", False))
                    to_redact.extend((i, f, restorable) for i, f in found)
                    if verdict.decision == "allow":
                        verdict.decision = "redact"
            # Positional: keywords to a class call build a dict of them for its __init__.
            verdict.evaluations.append(
                Evaluation(
                    rule.name,
                    rule.detector,
                    direction,
                    rule.action,
                    outcome,
                    kinds,
                    tuple([(i, f.start, f.end) for i, f in found]) if found else (),
                    (time.perf_counter() - started) * 1000.0,
                )
            )
        if to_redact:
            verdict.texts = _apply_redactions(segments, to_redact, redactor)
        return verdict

    def mask(self, segments: Sequence[str], verdict: Verdict) -> list[str]:
        """`segments` with every text finding of `verdict` replaced by a placeholder."""
        spans = [(i, f, False) for i, f in verdict.findings if f.end > f.start]
        return _apply_redactions(segments, spans, Redactor()) if spans else list(segments)

    def _findings(
        self,
        rule: Rule,
        segments: Sequence[str],
        context: Context,
        memo: dict[int, list[list[Finding]]],
        keys: list[bytes | None],
    ) -> list[list[Finding]]:
        if rule.detector == "token_limit":
            return [self._token_findings(rule, segments, context)]
        if rule.detector == "model_allowlist":
            return [_model_findings(rule, context)]
        detector = self._detectors[rule.name]
        cached = memo.get(id(detector))
        if cached is None:
            cached = [
                self._detect(detector, text, key) for text, key in zip(segments, keys, strict=True)
            ]
            memo[id(detector)] = cached
        return cached

    def _detect(self, detector: TextDetector, text: str, key: bytes | None) -> list[Finding]:
        if not text:
            return []
        if key is None:
            return detector(text)
        # id() is stable: the engine holds its detectors, and its cache dies with it.
        found = self.cache.get(id(detector), key)
        if found is None:
            found = tuple(detector(text))
            self.cache.put(id(detector), key, found)
        return list(found)

    def _context_window(self, model: str | None) -> int | None:
        """`_context_window(model)`, remembered: matching the model against every glob cost
        ~10K instructions per request. Bounded: the model is what the client sent."""
        if model in self._windows:
            return self._windows[model]
        size = _context_window(model)
        if len(self._windows) >= 1000:
            self._windows.clear()
        self._windows[model] = size
        return size

    def _token_findings(
        self, rule: Rule, segments: Sequence[str], context: Context
    ) -> list[Finding]:
        limit = rule.options.get("max_input_tokens") or self._context_window(context.model)
        findings: list[Finding] = []
        if limit:
            size = sum(len(s) for s in segments)
            # A token covers at least one character, so short texts need no counting at all.
            if size > limit:
                tokens = sum(self._count_tokens(s, context.model) for s in segments)
                if tokens > limit:
                    findings.append(Finding("INPUT_TOKENS_OVER_LIMIT", 0, 0, 1.0, "token_limit"))
        max_output = rule.options.get("max_output_tokens")
        if max_output and context.max_output_tokens and context.max_output_tokens > max_output:
            findings.append(Finding("MAX_TOKENS_OVER_LIMIT", 0, 0, 1.0, "token_limit"))
        return findings


def _context_window(model: str | None) -> int | None:
    if model:
        for glob, size in CONTEXT_WINDOWS:
            if fnmatch.fnmatchcase(model, glob):
                return size
    return None


def _model_findings(rule: Rule, context: Context) -> list[Finding]:
    environments = rule.options.get("environments")
    if environments and context.environment not in environments:
        return []
    models = rule.options.get("models", ())
    if context.model and not any(fnmatch.fnmatchcase(context.model, g) for g in models):
        return [Finding("MODEL_NOT_ALLOWED", 0, 0, 1.0, "model_allowlist")]
    return []


def _apply_redactions(
    segments: Sequence[str], findings: list[tuple[int, Finding, bool]], redactor: Redactor
) -> list[str]:
    texts = list(segments)
    by_segment: dict[int, list[tuple[Finding, bool]]] = {}
    for index, finding, restorable in findings:
        by_segment.setdefault(index, []).append((finding, restorable))
    for index, items in by_segment.items():
        # Longest first at each start; overlaps (e.g. an email inside a connection string)
        # collapse into the first, outermost finding so no part of either survives.
        items.sort(key=lambda item: (item[0].start, -(item[0].end - item[0].start)))
        text = texts[index]
        pieces: list[str] = []
        cursor = 0
        for finding, restorable in items:
            if finding.end <= cursor:
                continue
            start = max(finding.start, cursor)
            pieces.append(text[cursor:start])
            value = text[finding.start : finding.end]
            pieces.append(redactor.placeholder(finding.kind, value, restorable=restorable))
            cursor = finding.end
        pieces.append(text[cursor:])
        texts[index] = "".join(pieces)
    return texts

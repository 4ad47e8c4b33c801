"""The `prompt_injection` detector: weighted phrase rules per attack kind, plus decoded payloads.

Rules are data; each match adds evidence to its kind and kinds score by noisy-or. Uses scanner only.
"""

from __future__ import annotations

import base64
import binascii
import re
import string
from dataclasses import dataclass

from signalvault.guardrails.finding import Finding
from signalvault.guardrails.scanner import Pattern, PatternSet
from signalvault.guardrails.skeleton import skeleton

OVERRIDE = "INSTRUCTION_OVERRIDE"
JAILBREAK = "ROLE_PLAY_JAILBREAK"
EXTRACTION = "SYSTEM_PROMPT_EXTRACTION"
ENCODED = "ENCODED_PAYLOAD"
PADDING = "ADVERSARIAL_PADDING"


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    weight: float
    regex: str


# Shared vocabulary. Objects of an override are what the operator or the model was told before.
_PRIOR = (
    r"(?:all|any|every|each|the|your|my|these|those|this|its|of|previous(?:ly)?|prior|above|earlier"
    r"|preceding|former|initial|original|old|given|other|system|developer|existing|current"
    r"|out of date|allprevious|and|following|subsequent|provided)"
)
_ORDERS = (
    r"(?:instructions?|directions|directives?|rules?|prompts?|guidelines?|orders?|commands?"
    r"|context|texts?|inputs?|messages?|tasks?|constraints?|restrictions?|programming|policies"
    r"|polic(?:y|ies)|requests?|information|training|settings|content|prompting)"
)
_SHOW = (
    r"(?:respond\s+with|repeat|print|show|reveal|output|display|tell|give|write|list|relay|share|leak|dump|spell"
    r"|return|recite|disclose|provide|copy|paste|summari[sz]e|translate|describe)"
)
_HIDDEN_SETUP = (
    r"(?:system\s+(?:prompt|message|instructions?)|(?:initial|original|hidden|secret|full|entire"
    r"|complete|exact|first|pre-?|above)\s+(?:prompt|instructions?)|prompt\s+(?:above"
    r"|so\s+far)|your\s+(?:[\w'"
    "\u2019"  # typographic apostrophe (U+2019), common in pasted text
    r"]+\s+){0,3}?(?:prompt|instructions|rules|directives|guidelines"
    r"|configuration|parameters))"
)

# Instruction override: telling the model to drop what it was told (English, German, French,
# Spanish). Everyday verbs such as "drop" or "skip" count only for earlier instructions.
_OVERRIDE_RULES: tuple[tuple[float, str], ...] = (
    (
        0.85,
        rf"\b(?:ignore|disregard|forget|bypass|neglect|stop following)\b"
        rf"(?:\s+{_PRIOR}){{1,4}}\s+{_ORDERS}\b",
    ),
    (
        0.7,
        r"\b(?:skip|abandon|drop|discard|omit|dismiss|cancel|delete|erase|override|throw\s+away)\s+"
        r"(?:all\s+|any\s+|the\s+|of\s+)*(?:your\s+|(?:previous|prior|above|earlier|preceding"
        r"|initial|original|system)\s+)+(?:instructions?|directions?|directives?|rules|prompts?"
        r"|guidelines|orders|commands|programming)\b",
    ),
    (0.7, r"\bforget\s+(?:about\s+)?(?:everything|all)\b"),
    (
        0.75,
        r"\b(?:ignore|disregard|forget)\s+(?:the\s+|all\s+)?(?:above|previous|prior|earlier|everything)\b",
    ),
    (
        0.7,
        r"\b(?:leave|remove|put|set|clear|wipe|reset)\b(?:\s+\w+){0,2}\s+(?:previous|prior|earlier)"
        r"\s+\w+\s+(?:behind|aside|out\s+of)",
    ),
    (
        0.6,
        r"(?:previous|prior|above|earlier|old|initial|original)\s*(?:instructions|rules|prompt)\s+"
        r"(?:are|were|is|was)\s+(?:now\s+)?(?:false|void|wrong|invalid|cancel+ed|obsolete|fake"
        r"|out of date|revoked|null|over)",
    ),
    (0.6, r"\b(?:keep|retain)\s+(?:your\s+)?previous\s+instructions\s*,?\s+but\b"),
    (0.55, r"\bend\s+(?:of\s+)?(?:the\s+)?(?:\w+\s+)?instructions\b"),
    (0.5, r"\bre-?program(?:med|ming)?\b"),
    (0.5, r"\bstop\s+everything\b|\b(?:attention|achtung)\W+stopp?\b"),
    (0.6, r"\[\s*system\s*(?:note|message|prompt|override|instruction)\s*:"),
    (0.4, r"\bthe\s+situation\s+has\s+changed\b"),
    (0.55, r"\byour\s+(?:initial|original|real|actual|previous)\s+instructions\s+(?:were|are)\b"),
    (
        0.4,
        r"\b(?:well\s+done|very\s+good|excellent|simply\s+great|congratulations|good\s+job"
        r"|that\s+is\s+(?:done|enough)|sehr\s+gut|gut\s+gemacht|ausgezeichnet|einfach\s+großartig"
        r"|das\s+genügt|das\s+ist\s+erledigt)\b[^.!?\n]{0,60}[.!?]\s*(?:[^.!?\n]{0,80}?)"
        r"\b(?:now|nun|jetzt)\b",
    ),
    (
        0.35,
        r"\b(?:another|new|further|next|different)\s+(?:task|challenge|assignment)s?\b"
        r"|\b(?:weitere[nr]?|neue)\s+(?:aufgabe|herausforderung)n?\b",
    ),
    (
        0.5,
        r"\b(?:correct|right|valid)\s+(?:password|passcode|access\s+code|passphrase|pin)\s+"
        r"(?:has\s+been|was|is)?\s*(?:entered|input|provided|given|registered|verified|accepted)",
    ),
    (
        0.5,
        r"\b(?:do\s+not|don'?t|never)\s+(?:say|write|output|print)\s+(?:anything|any\s+words?)\s+"
        r"(?:else|besides|except|other\s+than)|\b(?:say|include|output|write)\s+nothing\s+"
        r"(?:but|else|except|besides)\b",
    ),
    (0.4, r"\byour\s+default\s+(?:response|reply|answer)\s+is\b"),
    (0.75, r"\b(?:obigen|vorherigen|bisherigen|vorigen)\s+\w+\s+(?:ignorieren|vergessen)\b"),
    (
        0.6,
        r"\b(?:ignore|disregard)\s+(?:everything|all\s+(?:of\s+)?(?:that|this|the\s+above|above"
        r"|before|previous|prior))\b",
    ),
    (
        0.55,
        r"\b(?:new|updated|different|real|actual|true|following)\s+(?:instructions?|tasks?|rules"
        r"|orders|directives?|mission)\s*(?:follow|are|is|:|!|for you|now)",
    ),
    (0.5, r"\bnow\s+(?:comes|here\s+is|follows?)\s+(?:a|the|your)?\s*new\b"),
    (0.45, r"\b(?:from now on|henceforth|starting now)\b"),
    (0.5, r"\b(?:begin|end|start|stop)\s+(?:of\s+)?(?:new|out of date|old)\s+instruct"),
    (0.6, r"\b(?:end|begin)\s+(?:of\s+)?(?:the\s+)?(?:untrusted\s+(?:user\s+)?|user\s+)input\b"),
    (0.6, r"<\|(?:im_start|im_end|endoftext|system)\|>"),
    (0.5, r"(?:^|\n)\s*(?:#{2,}|%{3}|={3,})\s*(?:system|new|end|begin)\b"),
    (0.5, r"\byou\s+(?:are|have\s+been)\s+(?:now\s+)?(?:re-?programmed|updated|upgraded|freed)"),
    (0.45, r"\byou\s+are\s+now\s+(?:a|an|the|my|in)\b"),
    (0.4, r"\b(?:system|security)\s+(?:upgrade|override|update|alert)\b"),
    (0.4, r"\binstead\s*,?\s+(?:say|output|print|respond|reply|write)\b"),
    (
        0.35,
        r"\b(?:say|output|print|respond with|reply with|answer with)\s+(?:only|just|exactly)\b"
        r"|\b(?:just|only)\s+(?:say|output|print|write)\b",
    ),
    # Retrieval-augmented prompts: steering the model away from the documents it was given.
    (
        0.55,
        r"\b(?:disregard(?:ing)?|ignor(?:e|ing)|not\s+by|do\s+not\s+(?:look\s+(?:in|at)|rely\s+on))"
        r"\s+(?:the\s+|any\s+)?(?:provided\s+)?(?:articles?|documents?|context|sources?)\b",
    ),
    (0.6, r"\bdespite\s+what\s+you(?:'ve|\s+have)?\s+been\s+told\b"),
    (0.6, r"\byour\s+(?:new\s+)?instructions\s+are\s+now\b"),
    (0.5, r"\bdo\s+not\s+answer\s+(?:this|the)\s+question\b"),
    (0.6, r"\b(?:vorherigen|bisherigen|obigen)\s+(?:instruktionen|anweisungen|befehle|regeln)\b"),
    (0.7, r"\b(?:olvid[aeo]\w*|zaboravi)\s+(?:todo|sve)\b"),
    (0.35, r"\b(?:begin|start|prefix|prepend)\s+your\s+(?:reply|response|answer|output)\s+with\b"),
    (
        0.5,
        r"\b(?:do\s+not|don'?t|never)\s+follow\s+(?:your|the|any)\s+(?:previous\s+|prior\s+"
        r"|original\s+|initial\s+|system\s+)?(?:instructions|rules|guidelines|programming|prompt)",
    ),
    (0.45, r"\bregardless\s+of\s+(?:your|the|any)\s+(?:instructions|rules|previous)\b"),
    (
        0.8,
        r"\b(?:ignorier(?:e|en)?|vergiss|vergessen|missachte|übergehe)\b(?:\s+\w+){0,4}\s+"
        r"(?:anweisungen|instruktionen|befehle|regeln|aufgaben?|alles|vorherige\w*)",
    ),
    (0.55, r"\b(?:neue|nächste|folgende)\s+(?:aufgabe|anweisung|anweisungen)\b"),
    (
        0.8,
        r"\b(?:ignore[zr]?|oublie[zr]?|olvida|ignora)\b(?:\s+\w+){0,3}\s+(?:instructions|consignes"
        r"|instrucciones|reglas|règles)",
    ),
)
# Role-play jailbreaks: a persona defined by having no rules. "jailbreak my phone" alone is a
# normal question, hence its low weight.
_JAILBREAK_RULES: tuple[tuple[float, str], ...] = (
    (0.5, r"\b(?:now|jetzt|nun)\s*,?\s+(?:you\s+are|you're|bist\s+du|sind\s+sie)\b"),
    (0.5, r"\b(?:absorbed|immersed)\s+in\s+(?:your|the)\s+role\b|\bin\s+deiner\s+rolle\b"),
    (0.6, r"\b(?:böse|unzensierte|uneingeschränkte)\s+ki\b"),
    (
        0.75,
        r"\byou(?:\s+are|'re)\s+(?:now\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|amoral"
        r"|unethical|evil|rogue|jailbroken)\b",
    ),
    (0.85, r"\bdo\s+anything\s+now\b|\bdeveloper\s+mode\b"),
    (0.4, r"\bjailbreak"),
    (0.6, r"\b(?:you\s+are|you're|been|now)\s+(?:\w+\s+)?jailbroken\b"),
    (
        0.6,
        r"\b(?:unrestricted|unfiltered|uncensored|amoral|unethical|evil|rogue)\s+(?:ai|assistant|bot"
        r"|chatbot|mode|persona|character)\b",
    ),
    (
        0.6,
        r"\b(?:not|never|no longer)\s+(?:be\s+)?(?:bound|restricted|limited|constrained)\s+by\s+"
        r"(?:any\s+|the\s+|your\s+|openai'?s?\s+)*(?:rules|guidelines|polic(?:y|ies)|ethics|laws"
        r"|restrictions|filters|programming|content\s+policy|morals)\b",
    ),
    (
        0.55,
        r"\b(?:no|without|free\s+(?:of|from))\s+(?:any\s+)?(?:ethical|moral|content|safety)\s+"
        r"(?:restrictions|filters|censorship|limitations|guidelines|boundaries)\b",
    ),
    (0.5, r"\b(?:stay|remain)\s+in\s+character\b"),
    (0.5, r"\b(?:safe|safety|god|admin|sudo)\s+mode\s+(?:off|on|enabled|disabled|activated)"),
    (0.45, r"\bpretend\s+(?:to\s+be|you\s+(?:are|have|can))\b"),
    (
        0.4,
        r"\b(?:disregard|ignore|break|bypass|violate)\s+(?:any|all|your|the|openai'?s?)\s+"
        r"(?:rules|policies|guidelines|ethics|filters|safeguards)",
    ),
)
# System prompt extraction.
_EXTRACTION_RULES: tuple[tuple[float, str], ...] = (
    (0.85, rf"\b{_SHOW}\b(?:\s+\w+){{0,5}}\s+{_HIDDEN_SETUP}"),
    (
        0.7,
        r"\bwhat\s+(?:is|was|were|are)\s+(?:written|said|stated|the\s+text)\s+(?:at\s+the\s+"
        r"(?:beginning|start|top)|above|before)",
    ),
    (0.5, r"\b(?:beginning|start|top)\s+of\s+(?:this|the|your)\s+prompt\b"),
    (
        0.7,
        r"\b(?:what|which)\s+(?:is|are|were)\s+your\s+(?:system\s+prompt|instructions|initial"
        r"|original|rules|directives)",
    ),
    (0.6, rf"\b{_SHOW}\b(?:\s+\w+){{0,3}}\s+(?:every|all)\s+(?:the\s+)?instructions?\b"),
    (
        0.65,
        r"\binstructions?\s+(?:you\s+(?:have\s+been|were)\s+given|given\s+to\s+you|you\s+received)",
    ),
    (
        0.6,
        r"\b(?:was|wie)\s+steht\s+(?:am\s+anfang|oben|davor)"
        r"|\bzeige?\s+(?:mir\s+)?(?:deine|die)\s+(?:anweisungen|instruktionen|prompt)",
    ),
)
# Encoded payloads: an instruction to decode and obey (blobs themselves are decoded below).
_ENCODED_RULES: tuple[tuple[float, str], ...] = (
    (
        0.5,
        r"\b(?:decode|convert|translate)\s+(?:this|the\s+following)\s+(?:base64|hex|binary|rot13"
        r"|morse)\b",
    ),
)
_RULES = tuple(
    _Rule(kind, weight, regex)
    for kind, table in (
        (OVERRIDE, _OVERRIDE_RULES),
        (JAILBREAK, _JAILBREAK_RULES),
        (EXTRACTION, _EXTRACTION_RULES),
        (ENCODED, _ENCODED_RULES),
    )
    for weight, regex in table
)

# Tensor Trust style floods: dozens of one- or two-symbol tokens in a row ("ö ö ö", ") ] } ) ] }")
# push the real instructions out of the model's attention. Digits are excluded for data tables.
_FLOOD = _Rule(PADDING, 0.55, r"(?:[^\s0-9]{1,2}\s+){40}")
# Matched as written, since case is the signal ("DAN" is a jailbreak persona, "Dan" a colleague).
# All other rules are lower case and run on lower-cased text: ~3x faster than IGNORECASE.
_CASED = (
    _Rule(OVERRIDE, 0.6, r"\[/?(?:INST|SYS)\]|<</?SYS>>"),
    _Rule(
        JAILBREAK,
        0.9,
        r"\b(?:DAN|STAN|DUDE|AIM)\b.{0,40}\b(?i:do anything|strive|no rules|unfiltered)",
    ),
)
_RULES_ALL = (*_RULES, _FLOOD, *_CASED)
# Blobs that may hide instructions; each is decoded and run through the rules once more.
_BLOBS = {
    "b64": r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])",
    "hex": r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{2}[\s:]?){16,}(?![0-9a-fA-F])",
    "bits": r"(?:[01]{8}\s?){6,}",
}
# Long prompts are matched chunk by chunk: the prefilter is coarse (word boundaries and repeat
# bounds are widened), so on a 64 KB prompt it reports most rules; running each reported rule's
# `re` over only the chunks the prefilter flags keeps the cost near one Hyperscan pass.
_CHUNK = 2048
# Longer than any rule match, so a match across a chunk edge is seen whole. A blob longer than
# this is cut at the edge, but its aligned start still decodes to the text it begins with.
_OVERLAP = 512
Span = tuple[str, int, int]
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class InjectionDetector:
    """Scores prompt-injection evidence per kind; reports the phrases of kinds at `threshold`+."""

    def __init__(self, threshold: float = 0.5) -> None:
        self._threshold = threshold
        lower = [Pattern(str(i), r.regex) for i, r in enumerate(_RULES_ALL) if r not in _CASED]
        cased = [Pattern(str(_RULES_ALL.index(r)), r.regex) for r in _CASED]
        self._lower = PatternSet(lower)
        self._cased = PatternSet(cased)
        # Blobs keep their case: base64 decodes differently once lower-cased.
        self._cased_and_blobs = PatternSet(cased + [Pattern(k, rx) for k, rx in _BLOBS.items()])

    def _scan(self, text: str, *, with_blobs: bool) -> list[Span]:
        lowered = text.lower()
        if len(lowered) != len(text):
            lowered = text.translate(_ASCII_LOWER)  # keep offsets when "İ" would grow
        cased = self._cased_and_blobs if with_blobs else self._cased
        found = _matches(self._lower, lowered) + _matches(cased, text)
        read = skeleton(text)
        if read is not None:  # look-alike letters (a Cyrillic i in "ignore"), read as ASCII too
            merged = set(found) | set(_matches(self._lower, read))
            found = sorted(merged, key=lambda span: (span[1], -span[2], span[0]))
        return found

    def __call__(self, text: str) -> list[Finding]:
        evidence: dict[str, float] = {}  # one weight per rule: repeating a phrase adds nothing
        spans: list[tuple[str, int, int]] = []
        for key, start, end in self._scan(text, with_blobs=True):
            kind, weight = self._judge(key, text[start:end])
            if weight > 0:
                evidence[key] = max(evidence.get(key, 0.0), weight)
                spans.append((kind, start, end))
        weights: dict[str, list[float]] = {}
        for key, weight in evidence.items():
            weights.setdefault(_kind_of(key), []).append(weight)
        scores = {kind: _noisy_or(ws) for kind, ws in weights.items()}
        kept: list[Finding] = []
        for kind, start, end in sorted(spans, key=lambda s: (-scores[s[0]], s[1])):
            if scores[kind] < self._threshold:
                continue
            if all(end <= k.start or k.end <= start for k in kept):
                kept.append(Finding(kind, start, end, scores[kind], "prompt_injection"))
        return sorted(kept, key=lambda f: f.start)

    def _judge(self, key: str, value: str) -> tuple[str, float]:
        """The kind and weight of one match; a blob weighs what its decoded text says."""
        if key not in _BLOBS:
            rule = _RULES_ALL[int(key)]
            return rule.kind, rule.weight
        decoded = _DECODERS[key](value)
        if decoded is None:
            return ENCODED, 0.0
        inner = [_RULES_ALL[int(k)].weight for k, _, _ in self._scan(decoded, with_blobs=False)]
        return ENCODED, (min(0.95, 0.2 + max(inner)) if inner else 0.0)


def _kind_of(key: str) -> str:
    return ENCODED if key in _BLOBS else _RULES_ALL[int(key)].kind


def _matches(patterns: PatternSet, text: str) -> list[Span]:
    """(pattern key, start, end) of every match, chunk by chunk for long texts."""
    if len(text) <= 2 * _CHUNK:
        return [(p.key, m.start(), m.end()) for p, m in patterns.finditer(text)]
    if not patterns.hits(text):
        return []
    found: set[Span] = set()
    lo = 0
    while lo < len(text):
        hi = min(len(text), lo + _CHUNK + _OVERLAP)
        for p, m in patterns.finditer(text[lo:hi]):
            found.add((p.key, lo + m.start(), lo + m.end()))
        if hi == len(text):
            break
        # Start the next chunk after a space so no match begins in the middle of a word.
        nxt = text.find(" ", lo + _CHUNK, hi)
        lo = lo + _CHUNK if nxt == -1 else nxt + 1
    return sorted(found, key=lambda s: s[1])


def _noisy_or(weights: list[float]) -> float:
    miss = 1.0
    for w in weights:
        miss *= 1.0 - w
    return round(1.0 - miss, 4)


def _printable(raw: bytes) -> str | None:
    """Decoded bytes count as hidden text only if they are mostly printable UTF-8 with spaces."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(c.isprintable() or c in "\n\t" for c in decoded)
    if not decoded or printable / len(decoded) < 0.95 or " " not in decoded:
        return None
    return decoded


def _from_b64(blob: str) -> str | None:
    try:
        return _printable(base64.b64decode(blob + "=" * (-len(blob) % 4)))
    except (binascii.Error, ValueError):
        return None


def _from_hex(blob: str) -> str | None:
    try:
        return _printable(bytes.fromhex(re.sub(r"[\s:]", "", blob)))
    except ValueError:
        return None


def _from_bits(blob: str) -> str | None:
    bits = re.sub(r"\s", "", blob)
    return _printable(bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits) - 7, 8)))


_DECODERS = {"b64": _from_b64, "hex": _from_hex, "bits": _from_bits}

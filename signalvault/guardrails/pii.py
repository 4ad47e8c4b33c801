"""The `pii` detector: wires the rule modules (numbers, ids, patterns, names, addresses) together,
then applies the caller's types, threshold and allow-list and resolves overlaps into `Finding`s.
"""

from __future__ import annotations

from collections.abc import Iterable

from signalvault.guardrails.finding import Finding
from signalvault.guardrails.pii_address import AddressRules
from signalvault.guardrails.pii_checks import Candidate
from signalvault.guardrails.pii_national import NATIONAL_KINDS
from signalvault.guardrails.pii_numbers import scan_numbers
from signalvault.guardrails.pii_patterns import PatternRules
from signalvault.guardrails.pii_person import PersonDetector

PII_TYPES: frozenset[str] = frozenset(
    {
        "EMAIL",
        "PHONE",
        "CREDIT_CARD",
        "US_SSN",
        "IBAN",
        "IP_ADDRESS",
        "PERSON",
        "ADDRESS",
        "DATE_OF_BIRTH",
        "US_PASSPORT",
        "US_DRIVER_LICENSE",
        "US_BANK_ACCOUNT",
        # Identifiers with letters (pii_ids); digit-only ones come from pii_national's table.
        "UK_NINO",
        "IN_PAN",
        "ES_NIF",
        "ES_NIE",
        "IT_FISCAL_CODE",
        "SG_NRIC",
        "FI_HETU",
        "MX_CURP",
    }
    | NATIONAL_KINDS
)
_STRUCTURED = PII_TYPES - {"PERSON", "ADDRESS"}


def _outside(person: Candidate, spans: list[tuple[int, int]]) -> Candidate | None:
    """The part of a name span outside every address span (None if nothing is left)."""
    kind, start, end, score = person
    for s, e in spans:
        if s < end and start < e:
            if start < s:
                end = s
            elif end > e:
                start = e
            else:
                return None
    return (kind, start, end, score) if end > start else None


class PiiDetector:
    """Finds personal data; build once (dictionaries, patterns), call per text.

    Args:
        types: the kinds to report (None: all of `PII_TYPES`).
        threshold: findings scoring below it are dropped.
        allow: literal values (compared after trimming whitespace) that are never reported.
    """

    def __init__(
        self, types: Iterable[str] | None = None, threshold: float = 0.5, allow: Iterable[str] = ()
    ) -> None:
        self._types = PII_TYPES if types is None else frozenset(types)
        unknown = self._types - PII_TYPES
        if unknown:
            raise ValueError(f"unknown PII types: {sorted(unknown)}")
        self._threshold = threshold
        self._allow = frozenset(value.strip() for value in allow)
        self._patterns = PatternRules() if self._types & _STRUCTURED else None
        self._names = PersonDetector() if "PERSON" in self._types else None
        self._addresses = AddressRules() if "ADDRESS" in self._types else None

    def __call__(self, text: str) -> list[Finding]:
        """Findings (detector "pii") sorted by start, never overlapping, str offsets."""
        candidates: list[Candidate] = []
        if self._patterns is not None:
            candidates.extend(scan_numbers(text))
            candidates.extend(self._patterns.scan(text))
        people = self._names.scan(text) if self._names is not None else []
        if self._addresses is not None:
            places = self._addresses.scan(text)
            candidates.extend(places)
            # Streets are often named after people ("Rua João Pessoa"): where a name and an
            # address overlap, the address reading wins.
            spans = [(s, e) for _, s, e, score in places if score >= self._threshold]
            people = [p for p in (_outside(p, spans) for p in people) if p is not None]
        candidates.extend(people)
        return self._resolve(text, candidates)

    def _resolve(self, text: str, candidates: list[Candidate]) -> list[Finding]:
        kept: list[Candidate] = []
        taken: list[tuple[int, int]] = []
        wanted = [c for c in candidates if c[3] >= self._threshold and c[0] in self._types]
        # Highest score first, then the longer span: a card beats the phone reading of its digits.
        for cand in sorted(wanted, key=lambda c: (-c[3], c[1] - c[2], c[1])):
            start, end = cand[1], cand[2]
            if any(start < e and s < end for s, e in taken):
                continue
            if text[start:end].strip() in self._allow:
                continue
            kept.append(cand)
            taken.append((start, end))
        kept.sort(key=lambda c: c[1])
        return [Finding(k, s, e, round(sc, 3), "pii") for k, s, e, sc in kept]

"""Pattern-shaped PII: e-mail, IBAN, IPv6, lettered national IDs and keyword-anchored numbers.

All patterns go into one `PatternSet` (one Hyperscan pass); each hit is confirmed by a check
digit from `pii_checks`, or by the keyword the pattern itself requires (passport, licence, DOB).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

from signalvault.guardrails.pii_checks import (
    IBAN_LENGTHS,
    context_near,
    es_nif_ok,
    iban_ok,
    it_fiscal_code_ok,
    sg_nric_ok,
)
from signalvault.guardrails.pii_numbers import Candidate
from signalvault.guardrails.scanner import Pattern, PatternSet

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE = (
    r"(?:\d{1,2}[/.\-]\d{1,2}[/.\-](?:19|20)?\d{2}|(?:19|20)\d{2}[/.\-]\d{1,2}[/.\-]\d{1,2}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+(?:19|20)\d{{2}}"
    rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+(?:19|20)\d{{2}})"
)
# Between a label and its value: "number is", "no.:", "#", a few words at most, no digits.
_FILLER = r"[^\n\d]{0,28}?"

_PATTERNS: dict[str, tuple[str, bool]] = {
    # key: (regex, ignore_case); group 1, when present, is the value to report.
    "EMAIL": (
        # \w, not [a-z0-9]: internationalised addresses (RFC 6531) are mail too.
        r"(?<![\w.+\-])\w[\w.%+\-]{0,63}@\w(?:[\w\-]{0,62}\w)?"
        r"(?:\.\w(?:[\w\-]{0,62}\w)?)*\.[^\W\d_]{2,24}(?![\w\-])",
        True,
    ),
    "IBAN": (r"(?<![\w])[a-z]{2}\d{2}(?: ?[a-z0-9]){11,30}(?![\w])", True),
    "IPV6": (
        r"(?<![\w:.])(?:[0-9a-f]{1,4}:|::)(?:[0-9a-f]{0,4}:){1,6}[0-9a-f]{0,4}"
        r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])",
        True,
    ),
    "UK_NINO": (
        r"(?<![\w])[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w])",
        False,
    ),
    "IN_PAN": (r"(?<![\w])[A-Z]{3}[ABCFGHJLPT][A-Z]\d{4}[A-Z](?![\w])", False),
    "ES_NIF": (r"(?<![\w])\d{8}-?[A-Z](?![\w])", False),
    "ES_NIE": (r"(?<![\w])[XYZ]-?\d{7}-?[A-Z](?![\w])", False),
    "SG_NRIC": (r"(?<![\w])[STFG]\d{7}[A-Z](?![\w])", False),
    "IT_FISCAL_CODE": (
        r"(?<![\w])[A-Z]{6}[0-9L-V]{2}[ABCDEHLMPRST][0-9L-V]{2}[A-Z][0-9L-V]{3}[A-Z](?![\w])",
        False,
    ),
    "US_PASSPORT": (rf"passport{_FILLER}(?<![\w])([a-z]?\d{{8,9}})(?![\w])", True),
    "US_DRIVER_LICENSE": (
        rf"(?:driver'?s?|driving)\W{{0,2}}licen[cs]e{_FILLER}(?<![\w])([a-z]{{0,3}}\d[a-z0-9\-]{{3,18}})(?![\w])",
        True,
    ),
    "US_BANK_ACCOUNT": (
        rf"(?:bank|checking|savings|acct|account)(?:\s+account)?(?:\s+(?:number|no\.?|num|#))"
        rf"{_FILLER}(?<![\w])(\d[\d \-]{{6,22}}\d)(?![\w])",
        True,
    ),
    "DATE_OF_BIRTH": (
        rf"(?:born|birth|dob|d\.o\.b|b-?day|birthday){_FILLER}(?<![\w])({_DATE})(?![\w])",
        True,
    ),
}
# US SSA mod-97-free fields only: numbers that lack any check digit get their score from the label.
_KEYWORD_SCORES = {
    "US_PASSPORT": 0.85,
    "US_DRIVER_LICENSE": 0.85,
    "US_BANK_ACCOUNT": 0.8,
    "DATE_OF_BIRTH": 0.85,
}
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_PAN_WORDS = re.compile(r"\b(?:pan|permanent account|income tax)\b", re.IGNORECASE)
_NINO_WORDS = re.compile(r"\b(?:nino|national insurance|\bni\b)", re.IGNORECASE)


def _compact(value: str) -> str:
    return re.sub(r"[\s\-]", "", value).upper()


def _iban(text: str, start: int, value: str) -> Candidate | None:
    """Cut the run to its country's length before checking (it may run into a following word)."""
    country = value[:2].upper()
    length = IBAN_LENGTHS.get(country)
    if length is None:
        return None
    taken, end = 0, start
    for i, ch in enumerate(value):
        if ch != " ":
            taken += 1
        if taken == length:
            end = start + i + 1
            break
    else:
        return None
    if end < start + len(value) and text[end].isalnum():
        return None  # a longer alphanumeric token: not an IBAN of this country
    return ("IBAN", start, end, 0.95) if iban_ok(_compact(text[start:end])) else None


def _ipv6(text: str, start: int, value: str) -> Candidate | None:
    if sum(1 for part in value.split(":") if part) < 2:
        return None
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return None
    return "IP_ADDRESS", start, start + len(value), 0.9


def _checked(
    kind: str, check: Callable[[str], bool], score: float
) -> Callable[..., Candidate | None]:
    def confirm(text: str, start: int, value: str) -> Candidate | None:
        return (kind, start, start + len(value), score) if check(_compact(value)) else None

    return confirm


def _labelled(
    kind: str, words: re.Pattern[str], plain: float, labelled: float
) -> Callable[..., Candidate | None]:
    def confirm(text: str, start: int, value: str) -> Candidate | None:
        if kind == "UK_NINO" and value[:2] in _NINO_BAD_PREFIXES:
            return None
        end = start + len(value)
        return kind, start, end, labelled if context_near(text, start, end, words) else plain

    return confirm


_CONFIRM: dict[str, Callable[[str, int, str], Candidate | None]] = {
    "EMAIL": lambda text, start, value: ("EMAIL", start, start + len(value), 0.95),
    "IBAN": _iban,
    "IPV6": _ipv6,
    "UK_NINO": _labelled("UK_NINO", _NINO_WORDS, 0.7, 0.95),
    "IN_PAN": _labelled("IN_PAN", _PAN_WORDS, 0.7, 0.95),
    "ES_NIF": _checked("ES_NIF", es_nif_ok, 0.85),
    "ES_NIE": _checked("ES_NIE", es_nif_ok, 0.9),
    "SG_NRIC": _checked("SG_NRIC", sg_nric_ok, 0.9),
    "IT_FISCAL_CODE": _checked("IT_FISCAL_CODE", it_fiscal_code_ok, 0.95),
}


class PatternRules:
    """The pattern-shaped PII kinds, compiled once into one `PatternSet`."""

    def __init__(self) -> None:
        self._set = PatternSet([Pattern(k, rx, ic) for k, (rx, ic) in _PATTERNS.items()])

    def scan(self, text: str) -> Iterator[Candidate]:
        """Confirmed candidates (kind, start, end, score) for every pattern hit in `text`."""
        for pattern, match in self._set.finditer(text):
            key = pattern.key
            if key in _KEYWORD_SCORES:
                start, end = match.span(1)
                if key == "US_BANK_ACCOUNT" and not 8 <= len(_compact(match.group(1))) <= 17:
                    continue
                yield key, start, end, _KEYWORD_SCORES[key]
                continue
            found = _CONFIRM[key](text, match.start(), match.group())
            if found is not None:
                yield found

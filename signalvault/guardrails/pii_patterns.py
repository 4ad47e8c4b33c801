"""Pattern-shaped PII: e-mail (from each "@"), then IPv6 and keyword-anchored values (passport,
licence, DOB, bank) in one `PatternSet` pass, confirmed by `ipaddress` or by their keyword.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

from signalvault.guardrails.pii_checks import Candidate
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
    "IPV6": (
        # Three colons at least: clock times ("10:05:07") never reach `re`; "::1" and
        # "fe80::1" (loopback, link-local) are not anyone's address anyway.
        r"(?<![\w:.])(?:[0-9a-f]{1,4}:|::)(?:[0-9a-f]{0,4}:){2,6}[0-9a-f]{0,4}"
        r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])",
        True,
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


_SEPARATORS = re.compile(r"[\s\-]")


# E-mail is found from each "@" (str.find runs at C speed); `re` only reads the domain after it.
_DOMAIN = re.compile(r"\w(?:[\w\-]{0,62}\w)?(?:\.\w(?:[\w\-]{0,62}\w)?)*\.[^\W\d_]{2,24}(?![\w\-])")
_LOCAL_CHARS = frozenset(".%+-_")


def _emails(text: str) -> Iterator[Candidate]:
    """Addresses around every "@"; \\w, not [a-z0-9], because RFC 6531 mail is mail too."""
    at = text.find("@")
    while at > 0:
        start = at
        while start > max(0, at - 64) and (
            text[start - 1].isalnum() or text[start - 1] in _LOCAL_CHARS
        ):
            start -= 1
        while start < at and not text[start].isalnum():
            start += 1  # a local part does not start with a dot or a dash
        domain = _DOMAIN.match(text, at + 1)
        if domain and start < at:
            yield "EMAIL", start, domain.end(), 0.95
        at = text.find("@", at + 1)


def _compact(value: str) -> str:
    return _SEPARATORS.sub("", value).upper()


def _ipv6(text: str, start: int, value: str) -> Candidate | None:
    if sum(1 for part in value.split(":") if part) < 2:
        return None
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return None
    return "IP_ADDRESS", start, start + len(value), 0.9


_CONFIRM: dict[str, Callable[[str, int, str], Candidate | None]] = {
    "IPV6": _ipv6,
}


class PatternRules:
    """The pattern-shaped PII kinds, compiled once into one `PatternSet`."""

    def __init__(self) -> None:
        self._set = PatternSet([Pattern(k, rx, ic) for k, (rx, ic) in _PATTERNS.items()])

    def scan(self, text: str) -> Iterator[Candidate]:
        """Confirmed candidates (kind, start, end, score) for every pattern hit in `text`."""
        yield from _emails(text)
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

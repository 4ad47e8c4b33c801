"""Pattern-shaped PII: e-mail (from each "@"), then IPv6 and keyword-anchored values (passport,
licence, DOB, bank; label before or after the value) in one `PatternSet` pass, confirmed by
`ipaddress` or by their keyword.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

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

# Keyword-anchored kinds: (label, value). Numbers without a check digit are personal only when
# labelled, before the value ("passport no. X") or after it ("X is my passport number").
_KEYWORDED: dict[str, tuple[str, str]] = {
    "US_PASSPORT": (r"passport", r"[a-z]{0,2}\d{7,9}"),
    "US_DRIVER_LICENSE": (
        r"(?:driver'?s?|driving)\W{0,2}licen[cs]e|\bdl\b#?",
        r"[a-z]{0,3}\d[a-z0-9\-]{3,18}",
    ),
    "US_BANK_ACCOUNT": (
        r"(?:bank|checking|savings|acct|account)(?:\s+account)?(?:\s+(?:number|no\.?|num|#))",
        r"\d[\d \-]{6,22}\d",
    ),
    "DATE_OF_BIRTH": (r"born|birth|dob|d\.o\.b|b-?day|birthday", _DATE),
}
# "X is my passport number", "X, the account number": a few short words, no digits.
_LINK = r"[\s,:]+(?:(?:is|was|as|are|the|a|an|my|your|his|her|their|our|valid|correct)\s+){0,4}"
# key: (regex, ignore_case); group 1 is the value to report.
_PATTERNS: dict[str, tuple[str, bool]] = {}
for _kind, (_label, _value) in _KEYWORDED.items():
    _PATTERNS[_kind] = (rf"(?:{_label}){_FILLER}(?<![\w])({_value})(?![\w])", True)
    if _kind != "DATE_OF_BIRTH":  # "born" follows dates only in other senses
        _PATTERNS[_kind + ":after"] = (rf"(?<![\w])({_value})(?![\w]){_LINK}(?:{_label})", True)
# Numbers that lack any check digit get their score from the label.
_KEYWORD_SCORES = {
    "US_PASSPORT": 0.85,
    "US_DRIVER_LICENSE": 0.85,
    "US_BANK_ACCOUNT": 0.8,
    "DATE_OF_BIRTH": 0.85,
}


_SEPARATORS = re.compile(r"[\s\-]")


# E-mail is found from each "@" (str.find runs at C speed); `re` only reads the domain after it.
_DOMAIN = re.compile(r"\w(?:[\w\-]{0,62}\w)?(?:\.\w(?:[\w\-]{0,62}\w)?)*\.[^\W\d_]{2,24}(?![\w\-])")
_LOCAL_CHARS = ".%+-_"  # and the letters and digits (str.isalnum): \w is those and "_"
_LOCAL = re.compile(r"[\w.%+\-]*")


def _local_start(text: str, at: int) -> int:
    """Where the local part before the "@" at `at` starts: up to 64 letters, digits and ".%+-_",
    not opening with a dot or a dash. Read backwards by matching the reversed window (`re` only
    reads forwards; a loop per character cost twice as much)."""
    local = _LOCAL.match(text[max(0, at - 64) : at][::-1]).end()  # type: ignore[union-attr]
    return at - len(text[at - local : at].lstrip(_LOCAL_CHARS))


def _emails(text: str) -> Iterator[Candidate]:
    """Addresses around every "@"; \\w, not [a-z0-9], because RFC 6531 mail is mail too."""
    at = text.find("@")
    while at != -1:  # an "@" opening the text ("@bob ...") has no local part: go on
        start = _local_start(text, at)
        domain = _DOMAIN.match(text, at + 1)
        if domain and start < at:
            yield "EMAIL", start, domain.end(), 0.95
        at = text.find("@", at + 1)


def _compact(value: str) -> str:
    return _SEPARATORS.sub("", value).upper()


def _ipv6(text: str, start: int, value: str) -> Candidate | None:
    """The longest valid IPv6 address the candidate starts with (RFC 4291 and 5952 spellings).

    Loopback (::1) and unspecified (::) addresses name no host and no person; they stay. A bare
    pair of short groups ("1::2", a Python slice) is code, not an address.
    """
    value = value.rstrip(".-")  # sentence punctuation: "... from fe80::1%eth0."
    if not _valid_ipv6(value):
        value = value.rstrip(":")  # "fe80::1: unreachable"
        if not _valid_ipv6(value):
            return None
    address = ipaddress.IPv6Address(value)
    if address.is_loopback or address.is_unspecified:
        return None
    groups = [g for g in value.split("%")[0].split(":") if g]
    if len(groups) < 3 and "." not in value and max(len(g) for g in groups) < 3:
        return None
    return "IP_ADDRESS", start, start + len(value), 0.9


def _valid_ipv6(value: str) -> bool:
    # Eight groups take seven colons (six before a dotted IPv4 tail) unless "::" elides some:
    # clock times ("10:05:07") and MAC addresses leave before `ipaddress` is asked.
    colons = value.split("%", 1)[0].count(":")
    if "::" not in value and colons not in (6, 7):
        return False
    if colons < 2 or value[-1] in ".%":
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


_HEX = frozenset("0123456789abcdefABCDEF")
_IPV6_CHARS = _HEX | frozenset(":.")
_ZONE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _ipv6_candidates(text: str) -> Iterator[Candidate]:
    """A permissive IPv6 candidate around each colon that joins hex groups (hex, colons, the
    dots of an embedded IPv4, a zone id); `ipaddress` decides. Found from `str.find`: a regex
    over every position of the text cost more than the rest of the PII patterns together.
    """
    n = len(text)
    at = text.find(":")
    while at != -1:
        before = text[at - 1] if at else ""
        after = text[at + 1] if at + 1 < n else ""
        if (before in _HEX or before == ":") and (after in _HEX or after == ":"):
            start = at
            while start > 0 and text[start - 1] in _IPV6_CHARS:
                start -= 1
            end = at
            while end < n and text[end] in _IPV6_CHARS:
                end += 1
            if end < n and text[end] == "%":  # zone id: fe80::1%eth0, %25 in URLs (RFC 6874)
                zone_end = end + 1
                while zone_end < n and text[zone_end] in _ZONE_CHARS and zone_end - end < 20:
                    zone_end += 1
                end = zone_end
            bounded = not (start and (text[start - 1].isalnum() or text[start - 1] in "_%"))
            if bounded and not (end < n and (text[end].isalnum() or text[end] == "_")):
                found = _ipv6(text, start, text[start:end])
                if found is not None:
                    yield found
            at = text.find(":", max(end, at + 1))
            continue
        at = text.find(":", at + 1)


class PatternRules:
    """The pattern-shaped PII kinds, compiled once into one `PatternSet`."""

    def __init__(self) -> None:
        self._set = PatternSet([Pattern(k, rx, ic) for k, (rx, ic) in _PATTERNS.items()])

    def scan(self, text: str) -> Iterator[Candidate]:
        """Confirmed candidates (kind, start, end, score) for every pattern hit in `text`."""
        yield from _emails(text)
        yield from _ipv6_candidates(text)
        for pattern, match in self._set.finditer(text):
            key = pattern.key.removesuffix(":after")
            start, end = match.span(1)
            if key == "US_BANK_ACCOUNT" and not 8 <= len(_compact(match.group(1))) <= 17:
                continue
            yield key, start, end, _KEYWORD_SCORES[key]

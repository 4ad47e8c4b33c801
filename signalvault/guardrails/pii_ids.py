"""Identifiers that mix letters and digits: IBAN, UK NINO, Indian PAN, Spanish NIF/NIE,
Singapore NRIC, Italian codice fiscale, Finnish HETU, Mexican CURP. Each is tried only where a
digit run touches a letter, so no regex scans the whole text for them; check characters come
from python-stdnum (`pii_national.stdnum_check`) or, where it has none, `pii_checks`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from signalvault.guardrails.pii_checks import (
    IBAN_LENGTHS,
    Candidate,
    context_near,
    iban_ok,
    sg_nric_ok,
)
from signalvault.guardrails.pii_national import stdnum_check

_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_PAN_WORDS = re.compile(r"\b(?:pan|permanent account|income tax)\b", re.IGNORECASE)
_PAN_OK = stdnum_check("in_.pan")
_NINO_WORDS = re.compile(r"\b(?:nino|national insurance|ni)\b", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s\-]")


def _compact(value: str) -> str:
    return _SEPARATORS.sub("", value).upper()


def _iban(text: str, match: re.Match[str]) -> Candidate | None:
    """Cut the run to its country's length before checking (it may run into a following word)."""
    start, value = match.start(), match.group()
    length = IBAN_LENGTHS.get(value[:2].upper())
    if length is None:
        return None
    taken = 0
    for i, ch in enumerate(value):
        taken += ch != " "
        if taken == length:
            end = start + i + 1
            break
    else:
        return None
    if end < len(text) and text[end].isalnum():
        return None  # a longer alphanumeric token: not an IBAN of this country
    return ("IBAN", start, end, 0.95) if iban_ok(_compact(text[start:end])) else None


def _checked(kind: str, check: Callable[[str], bool], score: float, raw: bool = False) -> _Confirm:
    """Confirm with `check` on the value without separators (or as written, when `raw`)."""

    def confirm(text: str, match: re.Match[str]) -> Candidate | None:
        if not check(match.group() if raw else _compact(match.group())):
            return None
        return kind, match.start(), match.end(), score

    return confirm


def _labelled(kind: str, words: re.Pattern[str], plain: float, labelled: float) -> _Confirm:
    """Formats with no check character: the shape is specific, a label makes it certain."""

    def confirm(text: str, match: re.Match[str]) -> Candidate | None:
        if kind == "UK_NINO" and match.group()[:2] in _NINO_BAD_PREFIXES:
            return None
        if kind == "IN_PAN" and not _PAN_OK(match.group()):
            return None
        start, end = match.span()
        return kind, start, end, labelled if context_near(text, start, end, words) else plain

    return confirm


_Confirm = Callable[[str, re.Match[str]], Candidate | None]

# (digits the value's first run needs, where it may start relative to that run, regex, confirm)
_RULES: list[tuple[int, tuple[int, ...], re.Pattern[str], _Confirm]] = [
    (2, (2,), re.compile(r"[a-z]{2}\d{2}(?: ?[a-z0-9]){11,30}", re.IGNORECASE), _iban),
    (
        2,
        (2, 3),
        re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]"),
        _labelled("UK_NINO", _NINO_WORDS, 0.7, 0.95),
    ),
    (
        4,
        (5,),
        re.compile(r"[A-Z]{3}[ABCFGHJLPT][A-Z]\d{4}[A-Z]"),
        _labelled("IN_PAN", _PAN_WORDS, 0.7, 0.95),
    ),
    (8, (0,), re.compile(r"\d{8}-?[A-Z]"), _checked("ES_NIF", stdnum_check("es.dni"), 0.85)),
    (
        7,
        (1, 2),
        re.compile(r"[XYZ]-?\d{7}-?[A-Z]"),
        _checked("ES_NIE", stdnum_check("es.nie"), 0.9),
    ),
    (7, (1,), re.compile(r"[STFG]\d{7}[A-Z]"), _checked("SG_NRIC", sg_nric_ok, 0.9)),
    (
        2,
        (6,),
        re.compile(r"[A-Z]{6}[0-9L-V]{2}[ABCDEHLMPRST][0-9L-V]{2}[A-Z][0-9L-V]{3}[A-Z]"),
        _checked("IT_FISCAL_CODE", stdnum_check("it.codicefiscale"), 0.95),
    ),
    # Finnish HETU: DDMMYY, century sign (- + A, or since 2023 B-F and U-Y), 3 digits, check.
    (
        6,
        (0,),
        re.compile(r"\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]"),
        _checked("FI_HETU", stdnum_check("fi.hetu"), 0.85, raw=True),
    ),
    # Mexican CURP: 4 letters, birth date, sex, state, 3 consonants, homonym char, check digit.
    (
        6,
        (4,),
        re.compile(r"[A-Z]{4}\d{6}[HMX][A-Z]{5}[0-9A-Z]\d"),
        _checked("MX_CURP", stdnum_check("mx.curp"), 0.85),
    ),
]
_LEADING_DIGITS = re.compile(r"\d+")
_HETU_SIGNS = frozenset("+ABCDEFUVWXY")


def touches_letters(text: str, start: int, end: int) -> bool:
    """Whether a digit run at [start, end) may belong to a lettered ID ("GB82", "AB 12", "X-12").

    Strict on purpose: code and logs are full of "v1", "s3", "worker-6" and hex, and each
    candidate costs a round of anchored matches. Every "no" is one `scan_lettered` would give.
    """
    before = text[start - 1] if start else ""
    if before.isalpha():
        if before.isupper():
            # Letters opening the ID put another letter before this one; a one-letter prefix
            # ("S1234567D") starts a word. A digit there ("25T10:00", ISO times) rules out both.
            two = text[start - 2 : start - 1]
            return two.isalpha() or not two.isalnum()
        # Only IBANs are also written in lower case: two letters opening a word ("gb82").
        return (
            start >= 2 and text[start - 2].isalpha() and not text[start - 3 : start - 2].isalnum()
        )
    if before == " ":  # "AB 12 34 56 C"
        prefix = text[max(0, start - 3) : start - 1]
        if len(prefix) == 2 and prefix.isalpha() and prefix.isupper():
            return True
    elif before == "-" and text[start - 2 : start - 1] in ("X", "Y", "Z"):  # "X-1234567-L"
        return True
    # The IDs read from what follows the run open with six digits or more: not "2026-11-25T".
    if not text[start : start + 6].isdecimal():
        return False
    after = text[end : end + 2]
    # "12345678Z", "12345678-Z": a Spanish NIF; "131052A308T", "131052-308T": a Finnish HETU
    if end - start == 6 and after[:1] in _HETU_SIGNS:
        return True
    return end - start >= 8 and (after[:1].isupper() or (after[:1] == "-" and after[1:].isupper()))


def _placements(run: int, prefixed: bool) -> list[tuple[int, re.Pattern[str], _Confirm]]:
    """(offset, regex, confirm) of every rule a first digit run of `run` digits leaves possible,
    in `_RULES` order: rules needing more digits go, and so do placements that start before the
    run unless a letter, a space ("AB 12 34 56 C") or a dash ("X-1234567-L") precedes it.
    """
    return [
        (offset, regex, confirm)
        for needed, offsets, regex, confirm in _RULES
        if run >= needed
        for offset in offsets
        if offset == 0 or prefixed
    ]


_MOST_NEEDED = max(needed for needed, *_ in _RULES)
# Built once: scan_lettered runs on every timestamp ("T10:") and token digit in code and logs.
_PLACEMENTS = {
    (run, prefixed): _placements(run, prefixed)
    for run in range(_MOST_NEEDED + 1)
    for prefixed in (False, True)
}


def scan_lettered(text: str, start: int) -> Iterator[Candidate]:
    """Lettered identifiers whose first digit run starts at `start`."""
    digits = _LEADING_DIGITS.match(text, start)
    run = digits.end() - start if digits else 0
    before = text[start - 1 : start]
    prefixed = before.isalpha() or before == " " or before == "-"
    for offset, regex, confirm in _PLACEMENTS[min(run, _MOST_NEEDED), prefixed]:
        pos = start - offset
        if pos < 0 or (pos and text[pos - 1].isalnum()) or (offset and not text[pos].isalpha()):
            continue
        match = regex.match(text, pos)
        if match is None:
            continue
        # An IBAN match may overrun into the next word; _iban cuts it to length itself.
        if confirm is not _iban and text[match.end() : match.end() + 1].isalnum():
            continue
        found = confirm(text, match)
        if found is not None:
            yield found

"""Digit-run PII: one regex finds digit runs joined by phone-style separators; each run's shape is
offered to the card, SSN, phone, IPv4 and numeric-ID validators (lettered IDs go to `pii_ids`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

import phonenumbers

from signalvault.guardrails.pii_checks import (
    Candidate,
    au_medicare_ok,
    au_tfn_ok,
    card_brand_ok,
    context_near,
    de_tax_id_ok,
    kr_rrn_ok,
    luhn_ok,
    nhs_ok,
    sin_ok,
    ssn_ok,
    verhoeff_ok,
)
from signalvault.guardrails.pii_ids import scan_lettered, touches_letters

__all__ = ["Candidate", "scan_numbers"]


# Digits joined by single separators (space, dot, dash, parentheses), optional +, extension.
# A plain character-class scan is ~4x faster in `re` than look-arounds; `_bounded` and the
# trimming in `scan_numbers` check the edges afterwards.
_RUN = re.compile(r"[\d(+][\d.()\-]*(?: [\d(][\d.()\-]*)*(?: ?(?:x|ext\.?) ?\d{1,6})?", re.I)
_GROUP = re.compile(r"\d+")
_NOT_SEPARATOR = re.compile(r"[\d+()]")
_NOT_DIGIT = re.compile(r"\D")
_EXTENSION = re.compile(r" ?(?:x|ext\.?) ?\d{1,6}$", re.IGNORECASE)
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DATE = re.compile(r"\d{4}[-.]\d{1,2}[-.]\d{1,2}|\d{1,2}[-.]\d{1,2}[-.](?:\d{2}|\d{4})")


def _words(*words: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z])(?:" + "|".join(words) + r")(?![a-z])", re.IGNORECASE)


_PHONE_WORDS = _words(
    r"phone", r"tel", r"telephone", r"mobile", r"cell", r"call(?:ing|ed)?", r"fax", r"office",
    r"home", r"work", r"contact", r"reach", r"whatsapp", r"sms", r"text", r"dial", r"ring",
    r"answering", r"m", r"f", r"t", r"ph", r"mob", r"landline",
)  # fmt: skip
_CARD_WORDS = _words(
    r"card", r"credit", r"debit", r"visa", r"master ?card", r"amex", r"american express",
    r"discover", r"cc", r"pan", r"payment", r"charge", r"billing", r"cvv", r"expir\w*",
)  # fmt: skip
_SSN_WORDS = _words(r"ssn", r"ss#", r"social security", r"social sec\.?", r"ssa")
_NOT_PII_WORDS = _words(
    r"order", r"invoice", r"tracking", r"ref(?:erence)?", r"transaction", r"txn", r"sku",
    r"serial", r"isbn", r"version", r"build", r"ticket", r"case", r"po", r"item", r"part",
    r"model", r"shipment", r"confirmation", r"booking", r"id",
)  # fmt: skip
_UNIT_WORDS = _words(r"apt\.?", r"apartment", r"suite", r"unit", r"box", r"floor", r"room", r"flat")
_VERSION_WORDS = _words(r"v", r"version", r"release", r"build", r"ver\.?", r"rev")
_ID_WORDS: dict[str, re.Pattern[str]] = {
    "UK_NHS": _words(r"nhs", r"national health"),
    "CA_SIN": _words(r"sin", r"social insurance", r"nas"),
    "IN_AADHAAR": _words(r"aadhaa?r", r"uidai", r"uid"),
    "DE_TAX_ID": _words(r"steuer[- ]?id\w*", r"steuerliche", r"idnr", r"tax id\w*", r"tin"),
    "AU_TFN": _words(r"tfn", r"tax file"),
    "AU_MEDICARE": _words(r"medicare"),
    "KR_RRN": _words(r"rrn", r"resident registration", r"주민등록번호", r"주민번호"),
}
# Shapes (digit-group lengths) under which each identifier is written; () means "no separators".
_ID_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "UK_NHS": ((3, 3, 4), (10,)),
    "CA_SIN": ((3, 3, 3), (9,)),
    "IN_AADHAAR": ((4, 4, 4), (12,)),
    "DE_TAX_ID": ((11,), (2, 3, 3, 3), (3, 3, 3, 2)),
    "AU_TFN": ((3, 3, 3), (9,)),
    "AU_MEDICARE": ((4, 5, 1), (4, 5, 1, 1), (10,), (11,)),
    "KR_RRN": ((6, 7),),
}
_ID_CHECKS = {
    "UK_NHS": nhs_ok,
    "CA_SIN": sin_ok,
    "IN_AADHAAR": lambda d: d[0] not in "01" and verhoeff_ok(d),
    "DE_TAX_ID": de_tax_id_ok,
    "AU_TFN": au_tfn_ok,
    "AU_MEDICARE": au_medicare_ok,
    "KR_RRN": kr_rrn_ok,
}
# Without a label, only these shapes are distinctive enough to report on the check digit alone.
_ID_SCORE_UNLABELLED = {"IN_AADHAAR": 0.55, "KR_RRN": 0.6}
_NANP = re.compile(r"(?:1[ .\-]?)?\(?\d{3}\)?[ .\-]?\d{3}[ .\-]\d{4}")


def scan_numbers(text: str) -> Iterator[Candidate]:
    """Every plausible PII reading of every digit run in `text` (overlaps resolved later)."""
    for match in _RUN.finditer(text):
        start, end = match.span()
        if end - start < 2:
            continue  # one digit is never PII, and most runs in prose are that short
        raw = match.group().rstrip(".-(")
        if raw.endswith(")") and raw.count("(") < raw.count(")"):
            raw = raw[:-1]
        end = start + len(raw)
        if touches_letters(text, start, end):
            yield from scan_lettered(text, start)
        if (not raw[-1:].isdigit() and not raw.endswith(")")) or not _bounded(text, start, end):
            continue
        if len(raw) < 7 and raw.count(".") != 3:
            continue
        yield from _classify(text, raw, start, end)


def _bounded(text: str, start: int, end: int) -> bool:
    """Keep runs out of words, UUIDs, hashes, times ("12:30"), versions and amounts."""
    if start and (text[start - 1].isalnum() or text[start - 1] in "_.-/:@+#$€£"):
        return False
    if end < len(text):
        after = text[end]
        if after.isalnum() or after in "_@":
            return False
        if after in ".-/:" and text[end + 1 : end + 2].isdigit():
            return False
    return True


def _classify(text: str, raw: str, start: int, end: int) -> Iterator[Candidate]:
    if _IPV4.fullmatch(raw):
        yield from _ipv4(text, raw, start, end)
        return
    ext = _EXTENSION.search(raw)
    main = raw[: ext.start()] if ext else raw
    if _DATE.fullmatch(main):
        return  # plain dates are not ours; birth dates come from the keyword rules
    groups = _GROUP.findall(main)
    digits = "".join(groups)
    shape = tuple(len(g) for g in groups)
    seps = set(_NOT_SEPARATOR.sub("", main.replace(" (", "(").replace(") ", ")")))
    if 12 <= len(digits) <= 19 and not ext:
        yield from _cards(text, main, start, groups)
    if len(digits) == 9 and shape in ((3, 2, 4), (9,)) and ssn_ok(digits):
        labelled = context_near(text, start, end, _SSN_WORDS)
        if shape == (9,):
            score = 0.85 if labelled else 0.3
        else:
            score = 0.95 if labelled else (0.7 if len(seps) == 1 else 0.4)
        yield "US_SSN", start, start + len(main), score
    for kind, shapes in _ID_SHAPES.items():
        if shape in shapes and not ext and _ID_CHECKS[kind](digits):
            if context_near(text, start, end, _ID_WORDS[kind]):
                yield kind, start, end, 0.9
            elif len(shape) > 1 and kind in _ID_SCORE_UNLABELLED:
                yield kind, start, end, _ID_SCORE_UNLABELLED[kind]
    if 6 <= len(digits) <= 15:
        score = _phone_score(text, raw, main, start, end, shape, seps)
        if score:
            yield "PHONE", start, end, score


def _ipv4(text: str, raw: str, start: int, end: int) -> Iterator[Candidate]:
    try:
        ipaddress.IPv4Address(raw)
    except ValueError:
        return
    # "version 1.2.3.4" is a release, not a host.
    score = 0.3 if context_near(text, start, end, _VERSION_WORDS, before=12) else 0.9
    yield "IP_ADDRESS", start, end, score


def _cards(text: str, main: str, start: int, groups: list[str]) -> Iterator[Candidate]:
    """Luhn + brand over the whole run, then over runs of groups (a trailing year, a CVV)."""
    offsets = [m.start() for m in _GROUP.finditer(main)]
    n = len(groups)
    for i in range(n):
        for j in range(n, i, -1):
            digits = "".join(groups[i:j])
            if not 12 <= len(digits) <= 19:
                continue
            if luhn_ok(digits) and card_brand_ok(digits):
                s = start + offsets[i]
                e = start + offsets[j - 1] + len(groups[j - 1])
                if context_near(text, s, e, _CARD_WORDS):
                    score = 0.95
                elif context_near(text, s, e, _NOT_PII_WORDS, before=24):
                    score = 0.35
                else:
                    score = 0.8 if len(digits) > 12 else 0.55
                yield "CREDIT_CARD", s, e, score
                return


def _phone_score(
    text: str, raw: str, main: str, start: int, end: int, shape: tuple[int, ...], seps: set[str]
) -> float:
    international = raw.startswith("+") or main.startswith("00")
    if len(seps) > 2 or max(shape) > (15 if international else 10):
        return 0.0
    if context_near(text, start, end, _UNIT_WORDS, before=8):
        return 0.0
    labelled = context_near(text, start, end, _PHONE_WORDS, before=40)
    digits = _NOT_DIGIT.sub("", main)
    if len(shape) == 1 and not international and not raw.startswith("("):
        # A bare digit string is a phone only when labelled as one.
        return 0.7 if labelled and len(main) <= 12 else 0.0
    if international:
        # The country code makes the number checkable: phonenumbers knows every plan.
        score = _international_score(main, digits, checked=len(shape) > 1 or labelled)
    elif _NANP.fullmatch(main) or (len(shape) >= 2 and min(shape[1:]) >= 2 and max(shape) <= 5):
        score = 0.6  # national grouping: area/exchange/line blocks of 2-5 digits
    else:
        score = 0.3
    if labelled:
        score += 0.3
    elif len(digits) < 7:
        return 0.0
    if shape == (3, 2, 4) and "-" in seps:
        score -= 0.25  # written like an SSN
    if context_near(text, start, end, _NOT_PII_WORDS, before=20):
        score -= 0.3
    return round(min(score, 1.0), 2) if score >= 0.1 else 0.0


def _international_score(number: str, digits: str, checked: bool) -> float:
    """Score a +CC / 00CC number: a real country calling code and a plausible national length.

    Full libphonenumber validation costs ~70 us and recompiles regexes per region, so it runs
    only on bare, unlabelled strings, where neither grouping nor a label gives other evidence.
    """
    if number.startswith("00"):
        number, digits = "+" + number[2:], digits[2:]
    codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    code = next((n for n in (1, 2, 3) if int(digits[:n]) in codes), 0) if digits[:1] != "0" else 0
    if not code or not 4 <= len(digits) - code <= 14:
        return 0.3
    if checked:
        return 0.8
    try:
        valid = phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        valid = False
    return 0.85 if valid else 0.4

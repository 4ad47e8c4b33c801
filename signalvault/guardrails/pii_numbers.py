"""Digit-run PII: one regex finds digit runs joined by phone-style separators; each run's shape is
offered to the card, SSN, phone, IPv4 and numeric-ID validators (lettered IDs go to `pii_ids`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from itertools import accumulate

import phonenumbers

from signalvault.guardrails.pii_checks import (
    Candidate,
    card_brand_ok,
    context_near,
    luhn_ok,
    ssn_ok,
)
from signalvault.guardrails.pii_ids import scan_lettered, touches_letters
from signalvault.guardrails.pii_national import BY_SHAPE, score_national

__all__ = ["Candidate", "scan_numbers"]


def _run_regex(digit: str) -> re.Pattern[str]:
    """Digits joined by single separators (space, dot, dash, parentheses), optional +, extension.

    A plain character-class scan is ~4x faster in `re` than look-behinds at every position;
    `_bounded` and the trimming in `scan_numbers` check the edges afterwards. The look-ahead
    after the first character (tried only where a run starts) drops runs of one character
    ("(" in code, "7" in "worker-7"): nothing reads them, `finditer` searched on from the next
    character after them anyway, and they were half of all runs, each a match object and a
    turn of the Python loop.
    """
    extension = rf" ?(?:x|ext\.?) ?[{digit}]"
    return re.compile(
        rf"[{digit}(+](?=[{digit}.()\-]| [{digit}(]|{extension})"
        rf"[{digit}.()\-]*(?: [{digit}(][{digit}.()\-]*)*(?:{extension}{{1,6}})?",
        re.I,
    )


_RUN = _run_regex(r"\d")
# On ASCII text \d is 0-9, and `re` tests a range ~35% faster than the Unicode digit category.
_RUN_ASCII = _run_regex("0-9")
_GROUP = re.compile(r"\d+")
_EXTENSION = re.compile(r" ?(?:x|ext\.?) ?\d{1,6}$", re.IGNORECASE)
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_IP_SUFFIX = re.compile(r"(?::\d{1,5}|/\d{1,2})(?![\w:/]|\.\d)")
_CNPJ = re.compile(r"\d{2}\.?\d{3}\.?\d{3}/\d{4}-?\d{2}(?![\w/])")
_DATE = re.compile(r"\d{4}[-.]\d{1,2}[-.]\d{1,2}|\d{1,2}[-.]\d{1,2}[-.](?:\d{2}|\d{4})")


def _words(*words: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z])(?:" + "|".join(words) + r")(?![a-z])", re.IGNORECASE)


# Cue words near a run, by group. Looked up word by word in a dict: one `re` alternation of
# all of them, tried at every position of the window, cost ~30 us per run.
_CUE_WORDS = {
    "phone": (
        "phone phones tel telephone mobile cell call calling called fax office home work contact "
        "reach whatsapp sms text dial ring answering m f t ph mob landline"
    ),
    "card": (
        "card credit debit visa mastercard master amex discover cc pan payment charge billing "
        "cvv expiry expires expiration exp"
    ),
    "ssn": "ssn ss# ssa",
    # Labels of numbers that are not personal: order, invoice, ticket numbers look like cards.
    "other": (
        "order invoice tracking ref reference transaction txn sku serial isbn version build "
        "ticket case po item part model shipment confirmation booking id"
    ),
}
_CUE_GROUP = {word: group for group, words in _CUE_WORDS.items() for word in words.split()}
_CUE_PAIRS = {"social security": "ssn", "social sec": "ssn", "american express": "card"}
_CUE_PAIR_ENDS = frozenset(pair.split()[1] for pair in _CUE_PAIRS)
_CUE_TOKEN = re.compile(r"[a-z]+#?")
_CUE_KEYS = frozenset(_CUE_GROUP) | _CUE_PAIR_ENDS
_ALNUMS = re.compile(r"[^\W_]*")  # what str.isalnum accepts
_UNIT_BEFORE = re.compile(
    r"(?<![a-z])(?:apt|apartment|suite|unit|box|floor|room|flat)\.?\W*$", re.IGNORECASE
)
_VERSION_WORDS = _words(r"v", r"version", r"release", r"build", r"ver\.?", r"rev")
_NANP = re.compile(r"(?:1[ .\-]?)?\(?\d{3}\)?[ .\-]?\d{3}[ .\-]\d{4}")


def scan_numbers(text: str) -> Iterator[Candidate]:
    """Every plausible PII reading of every digit run in `text` (overlaps resolved later)."""
    runs = _RUN_ASCII if text.isascii() else _RUN
    for match in runs.finditer(text):
        start, end = match.span()
        if end - start < 6:
            # Most runs in prose ("2019", "15") are short: only a lettered ID ("GB82 ...",
            # "ABCDE1234F") can start with one, so skip the rest of the shaping.
            if text[start].isdigit() and touches_letters(text, start, end):  # 2+ characters
                yield from scan_lettered(text, start)
            continue
        raw = match.group().rstrip(".-(")
        if raw.endswith(")") and raw.count("(") < raw.count(")"):
            raw = raw[:-1]
        end = start + len(raw)
        if touches_letters(text, start, end):
            yield from scan_lettered(text, start)
        if text[end : end + 1] == "/" and (cnpj := _CNPJ.match(text, start)) is not None:
            yield from _classify(text, cnpj.group().replace("/", "."), start, cnpj.end())
            continue
        if len(raw) == 17 and text[end : end + 1] in ("X", "x") and raw.isdigit():
            # A Chinese resident ID whose check character is X (10).
            if _bounded(text, start, end + 1):
                other = _cues(text, start, end).get("other", 99) <= 24
                yield from score_national(
                    text, start, end + 1, raw + "X", (18,), set(), other.__bool__
                )
            continue
        if (not raw[-1:].isdigit() and not raw.endswith(")")) or not _bounded(text, start, end):
            ipv4 = raw.count(".") == 3 and _IPV4.fullmatch(raw)
            suffix = _IP_SUFFIX.match(text, end) if ipv4 else None
            if suffix and _bounded(text, start, -1) and not _is_network(raw, suffix.group()):
                yield from _ipv4(text, raw, start, end)  # "10.0.0.7:8080", "10.0.0.7/32"
            continue
        if len(raw) < 7 and raw.count(".") != 3:
            continue
        yield from _classify(text, raw, start, end)


def _bounded(text: str, start: int, end: int) -> bool:
    """Keep runs out of words, UUIDs, hashes, times ("12:30"), versions and amounts.

    `end` -1 checks the start only.
    """
    if start and (text[start - 1].isalnum() or text[start - 1] in "_.-/:@+#$€£"):
        return False
    if 0 <= end < len(text):
        after = text[end]
        if after.isalnum() or after in "_@":
            return False
        if after in ".-/:" and text[end + 1 : end + 2].isdigit():
            return False
    return True


def _is_network(address: str, suffix: str) -> bool:
    """ "10.0.0.0/8" names a range of hosts, not one: its host bits are zero."""
    if not suffix.startswith("/"):
        return False
    try:
        return int(suffix[1:]) < 32 and bool(ipaddress.IPv4Network(address + suffix))
    except ValueError:
        return False  # host bits set: "10.0.0.7/24" is a host written with its netmask


def _cues(text: str, start: int, end: int) -> dict[str, int]:
    """Cue groups near a run: how far before it the nearest one ends (0 if it follows the run)."""
    low = max(0, start - 56)
    if low:
        # Never read half a word ("apo" must not look like "po"): start after the one cut.
        low = min(_ALNUMS.match(text, low - 1, start).end() + 1, start)  # type: ignore[union-attr]
    found = _cues_before(text[low:start], start - low)
    for word in _CUE_GROUP.keys() & _window_words(text[end : end + 24]):
        found.setdefault(_CUE_GROUP[word], 0)
    return found


# Cue words are ASCII letters: in an ASCII text without "#", the words are its runs of letters,
# and bytes.translate + split find them ~5x cheaper than the regex (every other byte a space).
_LETTER_BYTES = bytes(c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 else 32 for c in range(256))


def _window_words(window: str) -> list[str]:
    """The lower-cased words of `window` as `_CUE_TOKEN` reads them."""
    if window.isascii() and "#" not in window:
        return window.encode().translate(_LETTER_BYTES).decode().split()
    return _CUE_TOKEN.findall(window.lower())


def _cues_before(window: str, width: int) -> dict[str, int]:
    """Cue groups in the `width` characters before a run: how far before it the last one ends."""
    if window.isascii() and "#" not in window:
        letters = window.encode().translate(_LETTER_BYTES).decode()
        cue_words = _CUE_KEYS.intersection(letters.split())
        if not cue_words:
            return {}  # most windows
        if cue_words.isdisjoint(_CUE_PAIR_ENDS):
            # The last occurrence of each cue word, found from the end; a group keeps its last.
            padded = f" {letters} "
            ends: dict[str, int] = {}
            for word in cue_words:
                cue = _CUE_GROUP[word]
                ends[cue] = max(ends.get(cue, 0), padded.rfind(f" {word} ") + len(word))
            return {cue: width - word_end for cue, word_end in ends.items()}
    # Word by word: "social security" needs the word before; other scripts, "ss#".
    found: dict[str, int] = {}
    previous = ""
    for match in _CUE_TOKEN.finditer(window.lower()):
        word = match.group()
        group = _CUE_GROUP.get(word)
        if group is None and word in _CUE_PAIR_ENDS:
            group = _CUE_PAIRS.get(f"{previous} {word}")
        if group:
            found[group] = width - match.end()
        previous = word
    return found


# What is left of a run once digits, "+" and parentheses go: its separators.
_SEPARATORS = frozenset(".- ")
_NOT_DIGITS = "()+.- "  # everything but digits a run's main part can hold


def _classify(text: str, raw: str, start: int, end: int) -> Iterator[Candidate]:
    if raw.isdigit():
        # Most long runs are one bare digit string (ids, trace numbers): nothing to split, and
        # no IPv4 address, extension or date to look for.
        main, ext, groups = raw, False, [raw]
        seps: set[str] = set()
    else:
        if raw.count(".") == 3 and _IPV4.fullmatch(raw):
            yield from _ipv4(text, raw, start, end)
            return
        extension = _EXTENSION.search(raw) if "x" in raw or "X" in raw else None
        main = raw[: extension.start()] if extension else raw
        groups = _GROUP.findall(main)
        if len(groups) == 3 and _DATE.fullmatch(main):
            return  # plain dates are not ours; birth dates come from the keyword rules
        # `main` holds only digits, "+", parentheses and the separators: no regex needed.
        seps = set(main.replace(" (", "(").replace(") ", ")")) & _SEPARATORS
        ext = extension is not None
    digits = "".join(groups)
    shape = tuple(map(len, groups))
    memo: list[dict[str, int]] = []

    def cues() -> dict[str, int]:
        # Reading the words around a run costs more than shaping it: only on demand.
        if not memo:
            memo.append(_cues(text, start, end))
        return memo[0]

    if 12 <= len(digits) <= 19 and not ext and (card := _card(main, start, groups, cues)):
        yield card
    if len(digits) == 9 and shape in ((3, 2, 4), (9,)) and ssn_ok(digits):
        labelled = "ssn" in cues()
        if shape == (9,):
            score = 0.85 if labelled else 0.3
        else:
            score = 0.95 if labelled else (0.7 if len(seps) == 1 else 0.4)
        yield "US_SSN", start, start + len(main), score
    if not ext and shape in BY_SHAPE:
        yield from score_national(
            text, start, start + len(main), digits, shape, seps, lambda: _other_near(cues())
        )
    if 6 <= len(digits) <= 15:
        score = _phone_score(text, raw, main, digits, start, shape, seps, cues)
        if score:
            yield "PHONE", start, end, score


def _other_near(cues: dict[str, int]) -> bool:
    """A label of a number that is not personal ("order", "invoice") within 24 characters."""
    return cues.get("other", 99) <= 24


def _ipv4(text: str, raw: str, start: int, end: int) -> Iterator[Candidate]:
    """An IPv4 address; loopback and unspecified (0.0.0.0) addresses name no host: they stay."""
    try:
        address = ipaddress.IPv4Address(raw)
    except ValueError:
        return
    if address.is_loopback or address.is_unspecified:
        return
    # "version 1.2.3.4" is a release, not a host.
    score = 0.3 if context_near(text, start, end, _VERSION_WORDS, before=12) else 0.9
    yield "IP_ADDRESS", start, end, score


def _card(
    main: str, start: int, groups: list[str], cues: Callable[[], dict[str, int]]
) -> Candidate | None:
    """Luhn + brand over the whole run, then over runs of groups (a trailing year, a CVV)."""
    if main == groups[0]:  # a bare digit string (its length checked by the caller)
        return _card_score(main, start, start + len(main), cues) if _card_ok(main) else None
    n = len(groups)
    before = list(accumulate(map(len, groups), initial=0))  # digits before each group
    for i in range(n):
        for j in range(n, i, -1):
            if 12 <= before[j] - before[i] <= 19 and _card_ok(digits := "".join(groups[i:j])):
                s, e = _groups_span(main, groups, i, j)
                return _card_score(digits, start + s, start + e, cues)
    return None


def _groups_span(main: str, groups: list[str], i: int, j: int) -> tuple[int, int]:
    """Where groups[i:j] start and end in `main`."""
    if i == 0 and j == len(groups):  # the whole run (most cards): strip what is not a digit
        return len(main) - len(main.lstrip(_NOT_DIGITS)), len(main.rstrip(_NOT_DIGITS))
    offsets = [m.start() for m in _GROUP.finditer(main)]
    return offsets[i], offsets[j - 1] + len(groups[j - 1])


def _card_ok(digits: str) -> bool:
    return card_brand_ok(digits) and luhn_ok(digits)  # the brand test is the cheaper one


def _card_score(digits: str, start: int, end: int, cues: Callable[[], dict[str, int]]) -> Candidate:
    if "card" in cues():
        score = 0.95
    elif _other_near(cues()):
        score = 0.35
    else:
        score = 0.8 if len(digits) > 12 else 0.55
    return "CREDIT_CARD", start, end, score


def _phone_score(
    text: str,
    raw: str,
    main: str,
    digits: str,
    start: int,
    shape: tuple[int, ...],
    seps: set[str],
    cues: Callable[[], dict[str, int]],
) -> float:
    international = raw.startswith("+") or main.startswith("00")
    if len(seps) > 2 or max(shape) > (15 if international else 10):
        return 0.0
    if _UNIT_BEFORE.search(text, max(0, start - 10), start):
        return 0.0  # "Apt. 722 20 40": a unit and a house number, not a phone
    labelled = cues().get("phone", 99) <= 40
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
    if cues().get("other", 99) <= 20:
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

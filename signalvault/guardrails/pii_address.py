"""ADDRESS: an anchor (street line, unit, PO box, "City, ST 12345") grown over its place tail and
the short lines after it in a block. Imports only `pii_checks`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from signalvault.guardrails.pii_checks import Candidate

# Street types written before the name (Romance languages) and after it (English and others).
_PREFIX_TYPES = (
    r"rue|rua|r\.|via|viale|calle|c/|avenida|av\.|avda\.?|avenue|piazza|corso|travessa|largo|"
    r"praça|praca|boulevard|bd\.?|chemin|allée|allee|place|ulica|ul\.|strada|carrer|camino|"
    r"camiño|estrada|rambla|paseo|plaza|quai|route|colonia|cjón\.?|callejón|alameda|rodovia"
)
_SUFFIX_TYPES = (
    r"street|st|avenue|ave|road|rd|lane|ln|drive|dr|way|boulevard|blvd|court|ct|place|pl|"
    r"terrace|ter|crescent|cres|close|square|sq|highway|hwy|parkway|pkwy|circle|cir|trail|trl|"
    r"plaza|alley|row|walk|gardens|gdns|grove|mews|loop|pike|path|point|ridge|heights|hts|"
    r"expressway|freeway|fwy|turnpike|causeway|crossing|commons|junction|park|port|landing"
)
# Scandinavian, German, Dutch, Finnish, Hungarian street names end in a type: Koskikatu.
_COMPOUND_TYPES = (
    r"straße|strasse|str\.|gasse|weg|allee|platz|damm|ring|vej|vegen|veien|veg|gade|gata|gatan|"
    r"katu|tie|kuja|laan|straat|plein|kade|gracht|utca|út|ulice|väg|vägen|bakken|stien"
)
_WORD = r"(?:[^\W\d_][\w'\u2019.\-/]*)"
_LINKS = r"(?:de|del|da|do|dos|das|di|du|la|le|les|von|van|der|den|al|el|y|e|of|the)"
_LINKS_SET = frozenset(_LINKS[3:-1].split("|"))
_NUMBER = r"\d{1,5}[a-zA-Z]?(?:[ \-/]\d{1,5}[a-zA-Z]?)?"
_NAME = rf"{_WORD}(?: (?:{_LINKS} )*{_WORD}){{0,4}}"

_TYPE_WORDS = re.compile(
    rf"(?<![\w])(?:{_PREFIX_TYPES}|{_SUFFIX_TYPES})(?![\w])|[^\W\d_]+(?:{_COMPOUND_TYPES})(?![\w])",
    re.IGNORECASE,
)
# Addresses nearly always carry a number, so every rule starts from one. A number glued to a
# letter or digit, or to one of . , : - / $ € £ (versions, times, amounts, identifiers), starts
# none: the lookbehind rejects those inside `re` (`[^\W_]` is `str.isalnum`), and it sits after
# the first `\d` so that `re` keeps skipping to the next digit in C instead of starting a match
# attempt at every character. On bench/scan_speed.py's 1 KB prompt the search costs 148k
# instructions (298k for `\d{1,5}...`) and 16 of its 24 numbers no longer reach Python.
_DIGITS = re.compile(r"\d(?<!(?:[^\W_]|[.,:\-/$€£])\d)\d{0,4}[a-zA-Z]?(?![\w])")
# On ASCII text (most prompts) the ASCII-mode twin finds the same numbers, and `re` tests each
# character against `\d` with a table instead of the Unicode database: 148k -> 105k per KB.
_DIGITS_ASCII = re.compile(_DIGITS.pattern, re.ASCII)
_NUMBER_FIRST = re.compile(rf"{_NUMBER},? {_NAME}(?: {_NUMBER}(?![\w]))?", re.IGNORECASE)
_STREET_WORD = re.compile(_WORD)
_UNIT_WORDS = frozenset(
    [
        "apt", "apartment", "suite", "ste", "unit", "flat", "room", "rm", "floor", "fl", "box",
        "psc", "cmr", "usns", "uss", "usnv"
    ]
)  # fmt: skip
_PART_SCORE = 0.45  # a unit alone ("room 700") is part of an address, not one
_PART_UNITS = frozenset(
    ["apt", "apartment", "suite", "ste", "unit", "flat", "room", "rm", "floor", "fl"]
)
_MILITARY = frozenset({"apo aa", "apo ae", "apo ap", "fpo aa", "fpo ae", "fpo ap", "dpo aa",
                       "dpo ae", "dpo ap"})  # fmt: skip
# `_unit_start` finds nothing unless the lower-cased text ends with one of these: a unit word
# or the last word of a military code ("APO AE").
_UNIT_ENDINGS = tuple(sorted(_UNIT_WORDS | {code.split()[-1] for code in _MILITARY}))
_LOWER_WORD = re.compile(r"[a-z]+")
_NON_SPACE = re.compile(r"\S+")
_STATE_ZIP_BEFORE = re.compile(r"[A-Z][\w .'\-]{1,30}, ?[A-Z]{2},? $")
_FUNCTION_WORDS = frozenset(
    [
        "and", "or", "but", "is", "are", "was", "were", "be", "been", "am", "i", "you", "he",
        "she", "we", "they", "it", "my", "your", "our", "their", "his", "her", "its", "to",
        "in", "on", "at", "for", "with", "from", "by", "as", "than", "then", "that", "this",
        "these", "those", "what", "which", "who", "when", "where", "how", "not", "no", "yes",
        "if", "so", "do", "does", "did", "have", "has", "had", "can", "could", "will", "would",
        "should", "may", "might", "must", "please", "call", "me", "us", "them", "a", "an",
        "all", "any", "some", "more", "most"
    ]
)  # fmt: skip
_ADDRESS_CUE = re.compile(
    r"(?:address|addresses|live[sd]? (?:at|in|on)|living at|located at|located on|office is at|"
    r"moved to|move to|ship(?:ped)? to|deliver(?:ed)? to|send (?:it|them|a new one)? ?to|"
    r"taxi to|return to|meet (?:me|us) at|arrived at|zip|postal|postcode|mail to|residence)",
    re.IGNORECASE,
)
# "zip code is 86786", "ZIP: 394 13", "postcode SW1A 1AA": the value must hold a digit.
_ZIP_CUE = re.compile(
    r"\b(?:zip|postal|post) ?(?:code)?\b(?: is|:)?\s*((?=[A-Z]{0,4}\d)[A-Z0-9]{3,5}"
    r"(?:[ \-][A-Z0-9]{3,4})?)\b",
    re.IGNORECASE,
)
# Every `_ZIP_CUE` match starts with "zip" or "post" in some case. Searching the whole text
# with `_ZIP_CUE` costs ~300k instructions per KB (caseless and opening with `\b`, so `re` tries
# a match at every position); the pattern is only tried where a cue word starts (see
# `_zip_cue_starts`). On non-ASCII text this hint finds those: it opens with a plain class that
# `re` skips to in C. Besides ASCII case, `re.IGNORECASE` lets the dotless i (U+0131) and the
# dotted capital I (U+0130) match i, and the long s (U+017F) match s: the only such letters
# among z, i, p, o, s, t (a test checks every code point), so the hint lists them too.
_ZIP_HINT = re.compile("[zZpP](?:[iI\u0131\u0130][pP]|[oO][sS\u017f][tT])")
_CALENDAR = frozenset(
    [
        "january", "february", "march", "april", "may", "june", "july", "august", "september",
        "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
        "sep", "sept", "oct", "nov", "dec", "monday", "tuesday", "wednesday", "thursday",
        "friday", "saturday", "sunday"
    ]
)  # fmt: skip
# A following line belongs to the block when it is short and made of place words and numbers.
# Quoting and list markers ("> ", "??? ", "* ") may start each line of a pasted block.
_TAIL_LINE = re.compile(r"[ \t,>?*|•\-]*[\w .,'\u2019\-()/#]{1,60}$")
_COUNTRY_ZIP_LINE = re.compile(r"[ \t,>?*|•\-]*[^\W\d_][\w .'\u2019\-]{1,40} \d{4,6}$")
_SAME_LINE_TAIL = re.compile(r"(?:,? (?:\d{4,6}|[A-Z0-9]{2,4}|[A-Z][\w'\u2019.\-]*)(?![\w])){1,7}")


class AddressRules:
    """Street-address candidates (the patterns are compiled once, at import)."""

    def scan(self, text: str) -> list[Candidate]:
        """ADDRESS candidates in `text`."""
        lowered = text.lower()
        lowered_text = lowered == text  # no upper-case letter, as `pii_checks.is_lower_case`
        spans = [(s, e, score) for s, e, score in self._anchor_spans(text, lowered_text)]
        for match in _zip_values(text, lowered):
            spans.append((match.start(1), match.end(1), 0.8))
        return [("ADDRESS", s, e, score) for s, e, score in _merge(text, spans)]

    def _anchor_spans(self, text: str, lowered_text: bool) -> Iterator[tuple[int, int, float]]:
        skip_to = 0
        for number in (_DIGITS_ASCII if text.isascii() else _DIGITS).finditer(text):
            n_start, n_end = number.span()
            if n_start < skip_to:
                continue
            before = text[max(0, n_start - 48) : n_start]
            unit = _unit_start(before)
            if unit >= 0:
                # A box (PO Box, PSC, APO) is a postal address by itself; "room 700, floor 10"
                # is only part of one, reported when it joins a street or city line.
                word = before[unit:].split(maxsplit=1)[0].lower().rstrip(".#,")
                score = _PART_SCORE if word in _PART_UNITS else 0.7
                yield n_start - len(before) + unit, n_end, score
                continue
            if n_end - n_start == 5:
                state = _STATE_ZIP_BEFORE.search(before)
                if state:
                    yield n_start - len(before) + state.start(), n_end, 0.75
                    continue
            found = self._street(text, n_start, before, lowered_text)
            if found:
                skip_to = found[1]
                yield found

    def _street(
        self, text: str, n_start: int, before: str, lowered_text: bool
    ) -> tuple[int, int, float] | None:
        """A street line through the number at `n_start`: number first, or name then number."""
        forward = _NUMBER_FIRST.match(text, n_start)
        candidates: list[tuple[int, int]] = []
        if forward:
            candidates.append(forward.span())
        name_start = _name_start(before)
        if name_start >= 0:
            number_end = n_start
            while number_end < len(text) and text[number_end].isalnum():
                number_end += 1
            candidates.append((n_start - len(before) + name_start, number_end))
        for start, end in candidates:
            # Trim function words: leading ones are prose, and the street ends where the
            # sentence goes on ("12 Main St. is nice").
            parts = [
                (m.start(), m.end(), m.group().strip(".,").lower())
                for m in _NON_SPACE.finditer(text, start, end)
            ]
            while parts and parts[0][2] in _FUNCTION_WORDS:
                parts.pop(0)
            cut = next((i for i, p in enumerate(parts) if p[2] in _FUNCTION_WORDS), len(parts))
            parts = parts[:cut]
            if not parts:
                continue
            start, end = parts[0][0], parts[-1][1]
            value = text[start:end]
            letters = [w for w in value.split() if w[0].isalpha()]
            if not letters or (not lowered_text and not any(w[0].isupper() for w in letters)):
                continue  # "5 ways to go": prose, not a street
            typed = _TYPE_WORDS.search(value) is not None
            numbers = sum(1 for w in value.split() if w[0].isdigit())
            if not typed and (numbers < 2 or any(p[2] in _CALENDAR for p in parts)):
                continue  # "08 March 2021" is a date
            if (
                not typed
                and not lowered_text
                and not all(w[0].isupper() or w.lower() in _LINKS_SET for w in letters)
            ):
                continue  # "2019 Apple released 3": a sentence between two numbers
            cue = _ADDRESS_CUE.search(text[max(0, start - 60) : start]) is not None
            return start, end, min(0.95, (0.75 if typed else 0.65) + (0.15 if cue else 0.0))
        return None


def _zip_values(text: str, lowered: str) -> Iterator[re.Match[str]]:
    """The matches of `_ZIP_CUE.finditer(text)`, trying the pattern only where a cue may start.

    Skipping the starts inside the last match keeps the matches non-overlapping, as `finditer`
    does. `lowered` is `text.lower()`.
    """
    end = 0
    for start in _zip_cue_starts(text, lowered):
        if start < end:
            continue
        match = _ZIP_CUE.match(text, start)  # `\b` still sees the character before
        if match:
            end = match.end()
            yield match


def _zip_cue_starts(text: str, lowered: str) -> list[int]:
    """Every offset where a `_ZIP_CUE` match can start (and a few more), in order."""
    if text.isascii():
        # ASCII letters match caselessly only their ASCII case, and lower() keeps the offsets of
        # ASCII text: a substring search (far cheaper than any `re` scan) finds every cue word.
        return sorted([*_find_all(lowered, "zip"), *_find_all(lowered, "post")])
    # Hints never overlap a cue word's start: a cue starting inside a hint would follow a
    # letter and fail its `\b`.
    return [hint.start() for hint in _ZIP_HINT.finditer(text)]


def _find_all(text: str, word: str) -> list[int]:
    found = []
    at = text.find(word)
    while at >= 0:
        found.append(at)
        at = text.find(word, at + 1)
    return found


def _unit_start(before: str, endings: tuple[str, ...] = _UNIT_ENDINGS) -> int:
    """Where "Apt. ", "Suite #", "P.O. Box ", "APO AE " starts, if `before` ends with one.

    `endings` is there for the tests: ("",) switches the cheap first test off.
    """
    head = before.rstrip(" #.")
    if not head.lower().endswith(endings):
        return -1  # the cheap test first: most numbers follow no unit word at all
    words = _LOWER_WORD.findall(head[-16:].lower())
    if not words or not head.lower().endswith(words[-1]):
        return -1
    if " ".join(words[-2:]) in _MILITARY:
        return len(head) - 6
    if words[-1] not in _UNIT_WORDS:
        return -1
    start = len(head) - len(words[-1])
    if words[-1] == "box":  # "P.O. Box", "PO Box", "Box"
        prefix = head[:start].rstrip()
        if prefix.lower().replace(".", "").replace(" ", "").endswith("po"):
            start = len(prefix) - len(prefix.rsplit(" ", 1)[-1])
    return start


def _name_start(before: str) -> int:
    """Start of the one to five street-name words (with links such as "de") ending `before`."""
    if not before.endswith(" ") or len(before) < 2 or not before[-2].isalpha():
        return -1
    pos = len(before) - 1
    words = 0
    while words < 5:
        space = before.rfind(" ", 0, pos)
        token = before[space + 1 : pos]
        if not _STREET_WORD.fullmatch(token) or token.lower() in _FUNCTION_WORDS:
            break
        if token.lower() not in _LINKS_SET:
            words += 1
        pos = space
        if space < 0:
            break
    return pos + 1 if words else -1


def _merge(text: str, spans: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """Grow each span over its place tail and following block lines, then join neighbours."""
    grown: list[tuple[int, int, float]] = []
    for start, end, score in sorted(spans):
        if score < 0.5 and score != _PART_SCORE:
            grown.append((start, end, score))
            continue
        anchor_end = end
        tail = _SAME_LINE_TAIL.match(text, end)
        if tail and not _ends_sentence(text, end):
            end = tail.end()
        end = _grow_block(text, end)
        if score == _PART_SCORE and end > anchor_end:
            score = 0.7  # "Suite 824\n Äksi\n Costa Rica 89215": the unit opens an address
        grown.append((start, end, score))
    merged: list[tuple[int, int, float]] = []
    for start, end, score in grown:
        if merged and start <= merged[-1][1] + 2 and "\n\n" not in text[merged[-1][1] : start]:
            s, e, sc = merged[-1]
            merged[-1] = (s, max(e, end), max(sc, score))
        else:
            merged.append((start, end, score))
    return merged


def _grow_block(text: str, end: int) -> int:
    """Extend over up to four short following lines (unit, city, region, country + ZIP)."""
    for _ in range(4):
        line_end = text.find("\n", end)
        if line_end == -1 or text[end:line_end].strip(" ,\t"):
            return end  # the anchor's own line goes on with something else
        next_end = text.find("\n", line_end + 1)
        next_end = len(text) if next_end == -1 else next_end
        line = text[line_end + 1 : next_end]
        if not line.strip() and next_end < len(text):
            # One blank line may separate the last "Country 12345" line from the block.
            after = text.find("\n", next_end + 1)
            after = len(text) if after == -1 else after
            if _COUNTRY_ZIP_LINE.match(text[next_end + 1 : after]):
                return after
        if not line.strip() or not _TAIL_LINE.match(line) or len(line.split()) > 6:
            return end
        if "@" in line or sum(map(str.isdigit, line)) > 6:  # map: no bytecode per character
            return end  # an e-mail or phone line ends the block
        end = line_end + 1 + len(line.rstrip())
    return end


def _ends_sentence(text: str, end: int) -> bool:
    return text[end : end + 1] in (".", "?", "!", "\n") or end >= len(text)

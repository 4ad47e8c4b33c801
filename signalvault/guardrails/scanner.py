"""One-pass multi-pattern matching: Hyperscan finds which patterns occur, `re` gives exact spans.

Running dozens of `re` patterns over every prompt costs ~0.5 ms per KB; one Hyperscan pass over a
combined database costs microseconds, and `re` then runs only the patterns that hit. Patterns are
written in Python `re` syntax and compiled for Hyperscan as a *prefilter*: a widened form that can
only match more, never less, than `re` would (see `widen`). Hyperscan's own Unicode mode would be
exact but compiles 10-50x slower (tens of seconds at start-up), so the prefilter runs on UTF-8
bytes. Compiled databases are cached in memory and on disk, keyed by the patterns.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import hyperscan

_CLASS_ESCAPES = {"w": r"\w", "d": r"\d", "s": r"\s"}
_HIGH_BYTES = r"\x80-\xff"  # every byte of a multi-byte UTF-8 character
_REPEAT = re.compile(r"\{(\d*)(,?)(\d*)\}")
_MAX_UTF8 = 4  # bytes per character at most
_MEMO: dict[str, bytes] = {}  # digest -> serialized database; compiling is deterministic
# The only non-ASCII characters Python's caseless `re` matches as ASCII letters, in literals and
# in classes alike (dotted and dotless I, long s, Kelvin sign; found by trying every code point).
_ASCII_FOLDS = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


@dataclass(frozen=True, slots=True)
class Pattern:
    """A named regular expression (Python syntax). `key` identifies it in results."""

    key: str
    regex: str
    ignore_case: bool = False


def widen(regex: str) -> str:
    """A byte-level regex matching at least everything `regex` matches in Unicode text.

    `\\w \\d \\s` (and classes using them) also accept any non-ASCII byte; non-ASCII literals
    become "any multi-byte character"; word boundaries are dropped (removing a zero-width
    condition only widens); bounded repeats of atoms that can match a multi-byte character allow
    four times as many bytes.
    """
    out: list[str] = []
    i, n = 0, len(regex)
    multibyte_atom = False
    while i < n:
        ch = regex[i]
        if ch == "\\" and i + 1 < n:
            escape = regex[i + 1]
            i += 2
            multibyte_atom = escape in _CLASS_ESCAPES or escape in "WSD"
            if escape in _CLASS_ESCAPES:
                out.append(f"[{_CLASS_ESCAPES[escape]}{_HIGH_BYTES}]")
            elif escape not in "bB":
                out.append("\\" + escape)
            continue
        if ch == "[":
            end, text = _widen_class(regex, i)
            out.append(text)
            i, multibyte_atom = end, True
            continue
        if ch == "{" and multibyte_atom:
            match = _REPEAT.match(regex, i)
            if match and (match.group(1) or match.group(3)):
                low = match.group(1) or "0"
                high = match.group(3) if match.group(2) else match.group(1)
                out.append(f"{{{low},{_MAX_UTF8 * int(high) if high else ''}}}")
                i, multibyte_atom = match.end(), False
                continue
        if ord(ch) > 0x7F:
            # A non-ASCII literal: its bytes in any case form (caseless matching is ASCII-only
            # on bytes), so any 2-4 high bytes.
            out.append(f"(?:[{_HIGH_BYTES}]{{2,{_MAX_UTF8}}})")
        else:
            out.append(ch)
        multibyte_atom = ch == "."
        i += 1
    return "".join(out)


def _widen_class(regex: str, start: int) -> tuple[int, str]:
    """Widen the character class opening at `start`; returns (index after it, new text)."""
    j = start + 1
    negated = j < len(regex) and regex[j] == "^"
    j += negated
    if j < len(regex) and regex[j] == "]":
        j += 1  # a leading ']' is a literal
    body: list[str] = [regex[start:j]]
    if not negated:
        body.append(_HIGH_BYTES)  # any non-ASCII member of the class becomes "any high byte"
    while j < len(regex) and regex[j] != "]":
        if regex[j] == "\\" and j + 1 < len(regex):
            body.append(regex[j : j + 2])
            j += 2
        elif ord(regex[j]) > 0x7F:
            j += 1  # a literal non-ASCII member: covered by the high-byte range
        else:
            body.append(regex[j])
            j += 1
    return j + 1, "".join(body) + "]"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "signalvault" / "hyperscan"


def _compile(patterns: Sequence[Pattern]) -> hyperscan.Database:
    flags = [
        hyperscan.HS_FLAG_PREFILTER
        | hyperscan.HS_FLAG_SINGLEMATCH
        | hyperscan.HS_FLAG_ALLOWEMPTY
        | (hyperscan.HS_FLAG_CASELESS if p.ignore_case else 0)
        for p in patterns
    ]
    expressions = [widen(p.regex).encode() for p in patterns]
    digest = hashlib.sha256(
        repr((hyperscan.__version__, expressions, flags)).encode()  # type: ignore[attr-defined]
    ).hexdigest()
    blob = _MEMO.get(digest)
    path = _cache_dir() / f"{digest}.hsdb"
    if blob is None:
        with contextlib.suppress(OSError):
            blob = path.read_bytes()
    if blob is not None:
        with contextlib.suppress(hyperscan.error):  # a damaged cache file is just recompiled
            database = hyperscan.loadb(blob, hyperscan.HS_MODE_BLOCK)
            database.scratch = hyperscan.Scratch(database)
            _MEMO[digest] = blob
            return database
    database = hyperscan.Database()
    database.compile(
        expressions=expressions, ids=list(range(len(patterns))), elements=len(patterns), flags=flags
    )
    blob = hyperscan.dumpb(database)
    _MEMO[digest] = blob
    with contextlib.suppress(OSError):  # a read-only home only costs the next start its compile
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
            handle.write(blob)
        os.replace(handle.name, path)
    return database


class PatternSet:
    """A compiled set of patterns scanned together; build once, scan many times."""

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        if not patterns:
            raise ValueError("a PatternSet needs at least one pattern")
        self._patterns = list(patterns)
        self._compiled = [
            re.compile(p.regex, re.IGNORECASE if p.ignore_case else 0) for p in self._patterns
        ]
        self._db = _compile(self._patterns)

    def hits(self, text: str) -> list[int]:
        """Indexes of the patterns that may match somewhere in `text` (prefilter, sorted)."""
        found: set[int] = set()

        def _on_match(pattern_id: int, _start: int, _end: int, _flags: int, _ctx: object) -> None:
            found.add(pattern_id)

        # Lone surrogates cannot be UTF-8 encoded; they are never part of a pattern, so
        # replacing them cannot hide a match.
        self._db.scan(text.encode("utf-8", "replace"), match_event_handler=_on_match)
        if not text.isascii():
            folded = text.translate(_ASCII_FOLDS)
            if folded != text:
                # Caseless `re` matches these as their ASCII letters, Hyperscan's caseless mode
                # does not: scanned once more as those letters, a caseless pattern's match is
                # found ("pa\u017f\u017fword: ..."); the first scan keeps every case-sensitive
                # one.
                self._db.scan(folded.encode("utf-8", "replace"), match_event_handler=_on_match)
        return sorted(found)

    def finditer(self, text: str) -> Iterator[tuple[Pattern, re.Match[str]]]:
        """Every exact `re` match of every pattern that the prefilter reported."""
        for index in self.hits(text):
            pattern = self._patterns[index]
            for match in self._compiled[index].finditer(text):
                yield pattern, match

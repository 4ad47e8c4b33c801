"""Look-alike letters read as the ASCII letters they imitate, one character for one, so that
phrase rules written for English read "ignore" spelt with a Cyrillic i (U+0456), a dotless i
(U+0131), full-width or mathematical bold letters, or "instructions" with a long s (U+017F), as
"ignore" and "instructions", and every match keeps its offsets in the original text.

The table is `data/lookalikes.txt`, generated from Unicode's data by `build_table` (run
`python -m signalvault.guardrails.skeleton --write`; a test checks the file against it). Reading
the confusables list at start-up instead kept ~4 to 17 MiB resident for good. What each character
becomes, first that applies: its case fold when that is one ASCII letter or digit (long s -> s,
the Kelvin sign -> k); its compatibility decomposition without combining marks when that is one
(i with diaeresis -> i, full-width and mathematical letters); else the letter or digit that
Unicode's confusables list (UTS #39, from the `confusable_homoglyphs` package) names as looking
the same (Cyrillic and Greek look-alikes); and a capital reads as its small letter does.
Characters with none of these are left as they are. Vertical strokes that the list pairs only
with "l" (I-like letters of Lisu, Vai and other scripts) read as "l", not "i".
"""

from __future__ import annotations

import argparse
import re
import string
import sys
import unicodedata
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).parent / "data" / "lookalikes.txt"
_ASCII_ALNUM = frozenset(string.ascii_lowercase + string.digits)
# Blocks of letters that pass for Latin ones: Latin-1 and the Latin extensions, IPA, Greek,
# Cyrillic, phonetic extensions, letter-like and enclosed symbols, full-width forms and the
# mathematical alphanumerics; the confusables list adds what other scripts hold.
_BLOCKS = (
    range(0x80, 0x530),
    range(0x1D00, 0x2000),
    range(0x2100, 0x2500),
    range(0xFF00, 0xFFF0),
    range(0x1D400, 0x1D800),
)


def _load(path: Path = TABLE_PATH) -> dict[int, str]:
    """The table file: one `XXXX c` line per character (hex code point, what it reads as)."""
    table = {}
    for line in path.read_text(encoding="ascii").splitlines():
        if line and not line.startswith("#"):
            point, read = line.split()
            table[int(point, 16)] = read
    return table


_LOOKALIKES = _load()
_LOOKALIKE_CHARS = frozenset(map(chr, _LOOKALIKES))
_SKELETON = {**_LOOKALIKES, **{ord(c): c.lower() for c in string.ascii_uppercase}}
# Most text that is not ASCII holds a few such characters (quotes, dashes, an emoji): found in C,
# they are all that is looked up (a character class of the table's 2,000 letters took ~2 ms/KB).
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")


def skeleton(text: str) -> str | None:
    """`text` lower-cased with look-alikes read as ASCII, the same length; None when it holds
    no look-alike (all ASCII text included)."""
    if text.isascii() or _LOOKALIKE_CHARS.isdisjoint(_NOT_ASCII.findall(text)):
        return None
    return text.translate(_SKELETON)


# -- building the table (development only: needs the `confusable_homoglyphs` package) -----------
def _bare(text: str) -> str:
    """`text` without combining marks, lower-cased (Greek eta is listed as n with a mark)."""
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def _folded(char: str) -> str | None:
    """What `char` reads as by case folding or compatibility decomposition, if one ASCII
    letter or digit."""
    folded = char.casefold()
    if len(folded) == 1 and folded in _ASCII_ALNUM:
        return folded
    base = _bare(unicodedata.normalize("NFKD", char))
    return base if len(base) == 1 and base in _ASCII_ALNUM else None


def _looks_like(homoglyphs: list[dict[str, Any]]) -> str | None:
    """The ASCII letter (else digit) a confusables entry names, if any: "l" over "1"."""
    found = sorted({_bare(h["c"]) for h in homoglyphs} & _ASCII_ALNUM)
    return next((c for c in found if c.isalpha()), found[0] if found else None)


def build_table() -> dict[int, str]:
    """The table from this Python's Unicode database and the confusables list."""
    from confusable_homoglyphs.confusables import confusables_data

    table: dict[int, str] = {}
    for block in _BLOCKS:
        for point in block:
            found = _folded(chr(point))
            if found is not None:
                table[point] = found
    for char, homoglyphs in confusables_data.items():
        if len(char) == 1 and not char.isascii() and ord(char) not in table:
            found = _looks_like(homoglyphs)
            if found is not None:
                table[ord(char)] = found
    # The list also goes the other way, an ASCII letter to what looks like it (a to U+237A).
    for char, homoglyphs in sorted(confusables_data.items()):
        if char.isascii() and char.lower() in _ASCII_ALNUM:
            for entry in homoglyphs:
                other = entry["c"]
                if len(other) == 1 and not other.isascii():
                    table.setdefault(ord(other), char.lower())
    # A capital reads as its small letter does where that one reads as something (Cyrillic
    # U+0406 as U+0456, which reads as i, where the list pairs U+0406 with l).
    for point in [*table, *(p for block in _BLOCKS for p in block)]:
        lower = chr(point).lower()
        if len(lower) == 1 and lower != chr(point) and ord(lower) in table:
            table[point] = table[ord(lower)]
    return dict(sorted(table.items()))


def table_text(table: dict[int, str]) -> str:
    """The table file's content."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    header = (
        "# Look-alike letters and what they read as (signalvault/guardrails/skeleton.py).\n"
        "# Generated by `python -m signalvault.guardrails.skeleton --write` with Python "
        f"{python} (Unicode {unicodedata.unidata_version})\n"
        "# and the confusables list of Unicode Technical Standard #39 as the\n"
        "# confusable_homoglyphs package ships it (Unicode License v3).\n"
    )
    return header + "".join(f"{point:04X} {read}\n" for point, read in table.items())


def main() -> int:
    parser = argparse.ArgumentParser(description="Write or check data/lookalikes.txt.")
    parser.add_argument("--write", action="store_true", help="write the file")
    args = parser.parse_args()
    text = table_text(build_table())
    if args.write:
        TABLE_PATH.write_text(text, encoding="ascii")
        return 0
    same = TABLE_PATH.read_text(encoding="ascii") == text
    print("data/lookalikes.txt is up to date" if same else "data/lookalikes.txt differs")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())

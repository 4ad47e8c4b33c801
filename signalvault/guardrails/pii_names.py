"""PERSON: gazetteers (gender-guesser first names, US Census surnames, cl100k vocabulary for
everyday words), capitalisation and cue words; our stop-lists are in data/. No model, no network.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat

from signalvault.guardrails.pii_checks import Candidate, is_lower_case
from signalvault.guardrails.pii_name_lists import (
    census,
    country_names,
    first_names,
    package_words,
    vocabulary,
)

_TOKEN = re.compile(r"[^\W\d_]+(?:['\u2019\-][^\W\d_]+)*")
_PARTICLE_WORDS = "van von der den de del della di da dos das du la le ten ter bin binti al el ibn"
_PARTICLES = frozenset([*_PARTICLE_WORDS.split(), "mac", "st"])
# German capitalises every noun: with its function words about, a lone capitalised word is no cue.
_GERMAN_WORDS = "und ist nicht ich wir für auf eine sind wird auch oder bitte können mit das der"
_GERMAN = frozenset([*_GERMAN_WORDS.split(), "dem", "sie", "ein", "zu", "von", "es"])
_TITLE_WORDS = "mr mrs ms miss mx dr prof sir madam dame rev fr sr sra srta herr frau"
_TITLES = frozenset(_TITLE_WORDS.split())
# Cues right before a name ("my name is", "Dear", "says") and right after ("said", "wrote"),
# looked up as the last one or two words before the run (sets, not regexes: this runs per run).
_STRONG_CUES = frozenset(
    [
        "name", "names", "name is", "name's", "i am", "i'm", "call me", "dear", "mr", "mrs", "ms",
        "miss", "dr", "prof", "signed", "regards", "sincerely", "attn"
    ]
)  # fmt: skip
# Cues that only people take (kinship, thanks, farewells): enough for a name no list knows.
_PERSON_CUES = frozenset(
    [
        "thank you", "thanks", "bye", "related to", "wife", "husband", "son", "daughter",
        "mother", "father", "mom", "dad", "brother", "sister", "friend"
    ]
)  # fmt: skip
_CUES = _STRONG_CUES | _PERSON_CUES | frozenset(
    [
        "this is", "hi", "hello", "hey", "by", "with", "contact", "cc", "ask", "asked", "told",
        "tell", "meet", "met", "married", "boss", "manager", "colleague", "patient", "client",
        "customer", "user", "sir", "madam", "from", "to", "for", "and", "cheers", "tribute to",
        "congrats", "congratulations", "rip", "lol", "love", "of", "player", "director", "ceo",
        "founder", "actor", "actress", "singer", "rapper", "star", "coach", "senator", "president"
    ]
)  # fmt: skip
# '"Go," said Maria' names the speaker; "you said Stream" or "said: Stream" quotes a word.
_SPEECH = frozenset(["says", "said"])
_QUOTE_ENDS = frozenset(",!?\"'\u201d\u2019")


def glued(text: str, start: int, end: int) -> bool:
    """True if the letters at start:end are part of a larger token: they touch a digit, an
    underscore or "@", or a dot joins them to more letters (`jane.doe@`, `os.environ`)."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if before.isdigit() or before in "_@" or after.isdigit() or after in "_@":
        return True
    if after == "." and text[end + 1 : end + 2].isalpha() and end - start > 1:
        return True  # "jane.doe", but "J.R.R. Tolkien" keeps its initials
    return before == "." and text[start - 2 : start - 1].isalpha() and end - start > 1


_CUE_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# In an ASCII window the cue words lie in its runs of letters and apostrophes: bytes.translate
# (which lower-cases too) + split find those, and `_CUE_WORD` reads only a run with a "'".
_CUE_BYTES = bytes(
    c if 97 <= c <= 122 or c == 39 else c + 32 if 65 <= c <= 90 else 32 for c in range(256)
)
_SUBJECT_OF = re.compile(
    r"(?:'s|\u2019s)? (?:(?:is|was)(?! an? )|has|had|will|would|did|does|should|could|can|knew|"
    r"just|really|never|always|and [A-Z])\b"
)
_CUE_AFTER = re.compile(
    r"(?:'s|\u2019s)?\s*(?:,\s*)?(?:says|said|wrote|replied|asked|told|tweeted|posted|added|"
    r"explained|is a|was a|who|and (?:his|her) (?:wife|husband))\b",
    re.IGNORECASE,
)


NameToken = tuple[int, int, str]  # start, end, word (a trailing possessive 's removed)
_UPPER = "".join(sorted({ch for ch in map(chr, range(0x10000)) if ch.isupper()}))
# A capitalised word. Whether it starts a token (no letter, nor letter + apostrophe or hyphen,
# right before it) is checked in Python: look-behinds in the regex cost 6x the whole scan.
_CAPITALISED = re.compile("[" + re.escape(_UPPER) + r"][^\W\d_]*(?:['\u2019\-][^\W\d_]+)*")
_APART = " \n\t,;:!?()\"'"  # no letter glues across these (nor across "": the text's ends)
_EDGE_PUNCTUATION = ".,;:!?\"'()[]{}<>*\u201c\u201d\u2018\u2019"


# ASCII text with its letters as "A" and "a": the regex engine finds each capital by its fast
# search for a literal first character (`_CAPITALISED` tests a class of ~1800 capitals at every
# position), and the look-behinds do `_follows_token`'s test at capitals only (so they refuse
# the capitals inside a word as it does: the same words are found).
_LETTER_SHAPES = bytes(65 if 65 <= c <= 90 else 97 if 97 <= c <= 122 else c for c in range(256))
_CAPITALISED_SHAPE = re.compile(rb"A(?<![Aa]A)(?<![Aa]['\-]A)[Aa]*(?:['\-][Aa]+)*")


def _capitalised(text: str) -> list[tuple[int, int]]:
    """The spans of the capitalised words that start a token, in order."""
    if text.isascii():
        shapes = text.encode("ascii").translate(_LETTER_SHAPES)
        return [m.span() for m in _CAPITALISED_SHAPE.finditer(shapes)]
    spans = [m.span() for m in _CAPITALISED.finditer(text)]
    return [(s, e) for s, e in spans if not (s and _follows_token(text, s))]


def _is_token_char(ch: str) -> bool:
    return ch.isalpha() or ch in "'\u2019-"


def _follows_token(text: str, start: int) -> bool:
    """Whether the letter at `start` continues a token ("dO'Neil", "mary-Jane")."""
    before = text[start - 1]
    return before.isalpha() or (before in "'\u2019-" and text[start - 2 : start - 1].isalpha())


def _words(text: str) -> set[str]:
    """The whitespace-split words of `text`, edge punctuation stripped (map: no Python step)."""
    return set(map(str.strip, text.split(), repeat(_EDGE_PUNCTUATION)))


# Bytes next to one of `_words` (space, edge punctuation, non-ASCII) as spaces: "1st" stays whole.
_APART_BYTES = bytes(
    32 if c > 127 or chr(c).isspace() or chr(c) in _EDGE_PUNCTUATION else c for c in range(256)
)


def _lower_ok_names(text: str, lexicon: NameLexicon) -> set[str]:
    """The `_words` of mixed-case `text` in `lexicon.lower_ok`: all a-z, so whole pieces of the
    text split at `_APART_BYTES` (bytes, no strip); the few found (~4% of texts) are checked."""
    pieces = text.encode("utf-8", "surrogatepass").translate(_APART_BYTES).decode("ascii").split()
    found = lexicon.lower_ok.intersection(pieces)
    return {word for word in found if _is_word(text, word)} if found else set()


def _is_word(text: str, word: str) -> bool:
    """Whether `word` (letters) is in `_words(text)`: edge punctuation alone around it, once."""
    at = text.find(word)
    while at != -1:
        start, end = at, at + len(word)
        while start and text[start - 1] in _EDGE_PUNCTUATION:
            start -= 1
        while end < len(text) and text[end] in _EDGE_PUNCTUATION:
            end += 1
        if (not start or text[start - 1].isspace()) and (end == len(text) or text[end].isspace()):
            return True
        at = text.find(word, at + 1)
    return False


def name_tokens(text: str, lexicon: NameLexicon, lowered_text: bool) -> list[NameToken]:
    """The tokens that may be (part of) a name, in order: capitalised ones, and lower-case ones
    the lexicon knows as names. Found by regex and set intersection, so the Python loop runs
    over candidates only, not over every word of the text.
    """
    spans = [] if lowered_text else _capitalised(text)
    known = lexicon.lowered_names(_words(text)) if lowered_text else _lower_ok_names(text, lexicon)
    if known:
        # Few texts hold a lower-case name; find each one's occurrences as a whole token.
        for word in known:
            at = text.find(word)
            while at != -1:
                end = at + len(word)
                if not (at and _is_token_char(text[at - 1])) and not (
                    end < len(text) and _is_token_char(text[end])
                ):
                    spans.append((at, end))
                at = text.find(word, end)
        spans.sort()
    # Not letters inside an identifier or hex id (`3f2eda91`): a space or line end on both
    # sides (most candidates) cannot glue, the rest ask `glued`.
    out = [
        (start, end, text[start:end])
        for start, end in spans
        if (text[start - 1 : start] in _APART and text[end : end + 1] in _APART)
        or not glued(text, start, end)
    ]
    if "'s" in text or "\u2019s" in text:  # a possessive 's is no part of the name
        out = [(s, e - 2, w[:-2]) if w[-2:] in ("'s", "\u2019s") else (s, e, w) for s, e, w in out]
    return out


@dataclass(frozen=True, slots=True)
class NameLexicon:
    """The word lists PERSON detection reads (rules and model alike), loaded once."""

    ambiguous: frozenset[str]
    not_names: frozenset[str]
    first: frozenset[str]
    common_first: frozenset[str]
    last: frozenset[str]
    english: frozenset[str]
    proper: frozenset[str]
    countries: frozenset[str]
    places: frozenset[str]  # heads of place and organisation names ("Gardens", "Spectator")
    lower_ok: frozenset[str]  # names written in lower case in mixed-case text

    def lowered_names(self, words: set[str]) -> set[str]:
        """The `words` of an all-lower-case text that may be names: any first name or surname
        of three letters or more that is no everyday word, and the particles. Looked up word by
        word, not kept as one more set: that set held every first name and surname again
        (116k entries, ~4 MiB of table) for the rare all-lower-case text."""
        # Set operations in C over the text's few words, then the length test on what is left.
        named = ((words & self.first) | (words & self.last)) - self.english - self.not_names
        return {w for w in named if len(w) > 2} | (words & _PARTICLES)


@functools.cache  # immutable and ~0.5 s to build: one per process, shared by every engine
def load_lexicon() -> NameLexicon:
    data = "signalvault.guardrails.data"
    ambiguous = frozenset(package_words(data, "pii_ambiguous_names.txt"))
    not_names = frozenset(package_words(data, "pii_not_names.txt")) - ambiguous
    # One string object per word across the sets: 17k words are in several lists (~0.9 MiB).
    pool: dict[str, str] = {}
    first = first_names(pool) - not_names - ambiguous
    last = census("dist.all.last", pool) - not_names
    common_first = census("dist.male.first", pool) | census("dist.female.first", pool)
    english, proper = vocabulary(pool)
    del pool
    # Lower case in mixed-case text: common first names and words that BPE mostly sees
    # capitalised ("trump", "obama") still read as names.
    well_known = (common_first | {w for w in proper if len(w) > 3}) - ambiguous
    never = english | not_names
    lower_ok = frozenset({w for w in well_known - never if len(w) > 2} | _PARTICLES)
    if not all(map(re.compile("[a-z]+").fullmatch, lower_ok)):
        raise ValueError("lower_ok holds a word not all a-z letters: _lower_ok_names misses it")
    return NameLexicon(
        ambiguous=ambiguous,
        not_names=not_names,
        first=first,
        common_first=common_first,
        last=last,
        english=english,
        proper=proper,
        countries=country_names(),
        places=frozenset(package_words(data, "pii_place_words.txt")),
        lower_ok=lower_ok,
    )


class NameRules:
    """Scores runs of name-like tokens; gazetteers load once per instance."""

    def __init__(self, lexicon: NameLexicon | None = None) -> None:
        self.lexicon = lex = lexicon or load_lexicon()
        self._ambiguous, self._not_names = lex.ambiguous, lex.not_names
        self._first, self._last = lex.first, lex.last
        self._english, self._proper, self._countries = lex.english, lex.proper, lex.countries
        self._common_first = lex.common_first
        self._never_alone = self._not_names | _TITLES | _PARTICLES
        # (one set lookup where the run's edges are trimmed, instead of two or three)
        self._not_name_or_particle = self._not_names | _PARTICLES

    def scan(
        self, text: str, tokens: list[NameToken] | None = None, lowered_text: bool | None = None
    ) -> list[Candidate]:
        """PERSON candidates in `text` (`tokens`: its `name_tokens`, when already found)."""
        if lowered_text is None:
            lowered_text = is_lower_case(text)
        memo: list[bool] = []

        def german() -> bool:
            # Read only where a run's score hangs on it: splitting the text costs ~80K a KB.
            if not memo:
                memo.append(len(_GERMAN.intersection(text.lower().split())) >= 3)
            return memo[0]

        if tokens is None:
            tokens = name_tokens(text, self.lexicon, lowered_text)
        found: list[Candidate] = []
        run: list[tuple[int, int, str]] = []
        prev_end = -1
        for start, end, word in tokens:
            if run:
                gap = text[prev_end:start]
                if gap not in (" ", "-") and (gap != ". " or len(word) < 2):
                    self._score_run(found, text, run, lowered_text, german)
                    run = []
            run.append((start, end, word.lower()))
            prev_end = end
        if run:
            self._score_run(found, text, run, lowered_text, german)
        return found

    def _trim(self, text: str, run: list[NameToken]) -> tuple[int, list[NameToken]]:
        """(A title's start or -1, the run without the titles and function words at its edges)."""
        title_start = -1
        while run:
            word = run[0][2]
            if word in _TITLES:
                title_start = run[0][0]
            elif word not in self._not_name_or_particle:
                # "Ask Maria", "Contact Sarah": an everyday word opening the sentence before a
                # name is a verb or a greeting, a cue, unless the census knows it as a first name
                # ("Max Verstappen"). (Three lookups, not a set of these: it held ~1 MiB.)
                if (
                    len(run) < 2
                    or word not in self._english
                    or word in self._common_first
                    or word in self._ambiguous
                    or title_start >= 0
                ):
                    break
                if not _sentence_initial(text[max(0, run[0][0] - 8) : run[0][0]]):
                    break
            run = run[1:]
        while run and run[-1][2] in self._never_alone:  # not-names, particles and titles
            run = run[:-1]
        return title_start, run

    def _score_run(
        self,
        found: list[Candidate],
        text: str,
        run: list[tuple[int, int, str]],
        lowered_text: bool,
        german: Callable[[], bool],
    ) -> None:
        """Append the PERSON reading of one run of name-like tokens to `found`, if it has one."""
        if len(run) == 1:  # most runs: one word, with nothing to trim but itself
            if run[0][2] in self._never_alone:
                return  # "The", "I", "Mr": most runs are one such word, so leave before any work
            title_start = -1
        else:
            title_start, run = self._trim(text, run)
            if not run or len(run) > 4:
                return  # a run of many capitalised words is a heading or a title, not a name
        start, end = run[0][0], run[-1][1]
        if len(run) > 1:
            words = [w for _, _, w in run if w not in _PARTICLES]
            if not self._not_names.isdisjoint(words) or " ".join(words) in self._countries:
                return
            # Counted by map over the set's __contains__: no generator frame per run.
            firsts = sum(map(self._first.__contains__, words))
            lasts = sum(map(self._last.__contains__, words))
            english = sum(map(self._english.__contains__, words))
        else:  # one word, neither a particle nor a not-name (trimmed): its counts are bools
            word = run[0][2]
            if word in self._countries:
                return
            words = [word]
            firsts, lasts, english = word in self._first, word in self._last, word in self._english
        before = text[max(0, start - 32) : start]
        cue_words = _last_cue_words(before)
        last = cue_words[-1] if cue_words else ""
        pair = " ".join(cue_words)
        if title_start < 0 and last in _TITLES and before.rstrip(". ").lower().endswith(last):
            title_start = start - len(before) + before.lower().rindex(last)
        title = title_start >= 0
        strong = title or last in _STRONG_CUES or pair in _STRONG_CUES
        strong = strong or (last in _SPEECH and _is_speaker_tag(before, last))
        initial = _sentence_initial(text[max(0, (title_start if title else start) - 8) : start])
        if len(words) >= 2:
            if words[0] in self._first or (firsts and lasts):
                score = 0.85
            elif firsts or lasts:
                score = 0.7
            else:
                score = 0.45
        elif firsts:
            score = 0.55 if initial and not lowered_text else 0.65
        elif lasts:
            score = 0.35 if initial else 0.55
        elif words[0] in self._proper:
            score = 0.2 if initial else 0.55
        else:
            score = 0.2 if initial else 0.45
        subject = initial and len(words) == 1 and _SUBJECT_OF.match(text, end) is not None
        if subject:
            # "Shaq had me weak", "Muselk is the best": an unknown capitalised word opening a
            # sentence as the subject of a verb is mostly someone's name ("X is a 2001 film"
            # defines a thing, so "is a" does not count).
            score = max(score, 0.5)
        if english == len(words) and not strong:
            # Every word is an everyday word ("Princess Royal", "Wisdom", "Guy"): weak evidence.
            score = 0.4 if firsts and not initial and len(words) == 1 else min(score, 0.3)
        lone = len(words) == 1 and not strong
        # A lone word no name list knows ("Kubernetes", "Anthropic") needs a strong cue, a cue
        # only people take, or to open a sentence as a subject while unknown to BPE ("Muselk is").
        capped = (
            lone
            and not (firsts or lasts or last in _PERSON_CUES or pair in _PERSON_CUES)
            and not (subject and words[0] not in self._proper)
        )
        # A weak cue right before the run (its last cue words) or after it adds to its score.
        bonus = not strong and english < len(words)
        if bonus and not (last in _CUES or pair in _CUES or before.endswith("@")):
            bonus = _CUE_AFTER.match(text, end, end + 24) is not None
        shouted = lone and text[start:end].isupper()  # shouted words and acronyms
        cues = (strong, bonus, capped, lone and run[0][2] in self._ambiguous, shouted)
        final = _finish(score, *cues)
        # "Frage", "Unternehmen": German nouns score 0.3. Whether the text is German is read
        # only where that changes the outcome: splitting the text costs more than the rest.
        if score > 0.3 and not firsts and not strong and final != _finish(0.3, *cues) and german():
            final = _finish(0.3, *cues)
        found.append(("PERSON", title_start if title else start, end, final))


def _finish(score: float, strong: bool, bonus: bool, capped: bool, zero: bool, up: bool) -> float:
    """A run's score as reported, from its evidence (`score`), cues and case (`up`: shouted)."""
    if strong:
        score += 0.45
    elif bonus:
        score += 0.2
    if capped and score > 0.45:
        score = 0.45
    score = 0.0 if zero else score
    return round(min(score - 0.2 if up else score, 0.95), 2)


def _last_cue_words(before: str) -> list[str]:
    """The last two `_CUE_WORD` matches in `before`, lower-cased."""
    if not before.isascii():
        return _CUE_WORD.findall(before.lower())[-2:]
    pieces = before.encode().translate(_CUE_BYTES).decode().split()
    if "'" not in before:
        return pieces[-2:]  # each piece is one a-z word
    found: list[str] = []
    for piece in reversed(pieces):
        found[:0] = _CUE_WORD.findall(piece) if "'" in piece else [piece]
        if len(found) >= 2:
            break
    return found[-2:]


def _sentence_initial(before: str) -> bool:
    stripped = before.rstrip(" \t\"'\u201c\u2018(")
    return not stripped or stripped[-1] in ".!?\n"


def _is_speaker_tag(before: str, verb: str) -> bool:
    """Whether `before` ends in a quotation, `verb` and spaces ('"Go," said ')."""
    head = before.rstrip(" ").lower()
    return head.endswith(verb) and head[: -len(verb)].rstrip()[-1:] in _QUOTE_ENDS


# Shared with the statistical model (pii_person), which reads the same cue classes as features.
TOKEN = _TOKEN
TITLES = _TITLES
STRONG_CUES = _STRONG_CUES
PERSON_CUES = _PERSON_CUES
WEAK_CUES = _CUES

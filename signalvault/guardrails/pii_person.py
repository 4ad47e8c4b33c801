"""PERSON from a compact statistical model: logistic regression over the features of each
name-like token (the word, its shape and suffix, gazetteer membership, the words and cue
classes around it), with weights trained by training/train_person.py and shipped in data/.

Only tokens that could be a name are scored (capitalised, or a known name in lower case), so
the cost grows with candidates, not text length. Pure Python, offline; no model download.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from importlib import resources
from itertools import pairwise
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from signalvault.guardrails.pii_checks import Candidate, is_lower_case
from signalvault.guardrails.pii_name_shape import shipped
from signalvault.guardrails.pii_names import (
    PERSON_CUES,
    STRONG_CUES,
    TITLES,
    WEAK_CUES,
    NameLexicon,
    NameRules,
    NameToken,
    load_lexicon,
    name_tokens,
)

MODEL_FILE = "pii_person_model.json.gz"
_SENTENCE_END = frozenset(".!?\n")
OWN_GATE = -2.8  # own-word score below which context is not read (see PersonModel); set where
# no finding changed on ../shared/eval's and bench/heldout.py's labelled texts with the model of
# its time; with the current one (2026-12-07, round six, 0.65 / 0.15) it differs on 1 of 36,160
# texts (../shared/eval and every bench/heldout.py split; the model before: 0 of them)
WORD_CACHE = 8_192  # words a per-word cache holds (~300 B each: 50k held 17 MiB), then restarts
_JOINS = frozenset([" ", "-", ". "])  # between the tokens of one name: "Mary-Jane", "J. Smith"
# Closed-class words (articles, pronouns, prepositions, conjunctions, auxiliaries) of English
# and of the other languages common in tweets: capitalised ("LE", "Te"), they are still no name.
# Words shared by English and another language ("a", "no", "me", "so", "do") are in neither set.
_ENGLISH_WORDS = (
    "the and you your to of is are was were it this that for with have has had my i we they "
    "he she his her its our their them what when where who which how just not but be been "
    "will would can could should does did don't i'm it's at on from if or an about "
    "there than then because into over some any all"
)
_OTHER_WORDS = (
    # Spanish, Portuguese, French, German, Italian, Dutch, Indonesian/Malay, Tagalog
    "el la los las que y un una por para es del lo mi tu te se pero muy como yo "
    "o os um uma não nao eu você voce com da na ao isso "
    "le les des du et est je il elle nous vous pas mais avec dans pour sur ce ça qui "
    "der das und ist ich nicht mit dem ein eine auf für sie wir auch "
    "di che non sono della "
    "de het een en van ik niet op met "
    "yang dan ini itu aku kamu saya tidak dengan untuk ke dari ada sudah juga "
    "ang ng mga sa ako ko mo ka ikaw hindi siya"
)
_ENGLISH_FUNCTION = frozenset(_ENGLISH_WORDS.split())
_OTHER_FUNCTION = frozenset(_OTHER_WORDS.split())
# Cue words and pairs by the strongest class they belong to (features "pc=...").
_CUE_RANK = dict.fromkeys(WEAK_CUES, 1) | dict.fromkeys(PERSON_CUES, 2)
_CUE_RANK |= dict.fromkeys(STRONG_CUES, 3)
_CUE_FEATURES = {1: "pc=weak", 2: "pc=person", 3: "pc=strong"}
_PAIR_TAILS = frozenset(cue.split()[-1] for cue in _CUE_RANK if " " in cue)
_CAMEL_PART = re.compile(r"[A-Z][a-z]+|[A-Z]+(?![a-z])")


class Token(NamedTuple):
    """A candidate token; a tuple: one is made per candidate (3x faster than a dataclass)."""

    start: int
    end: int
    word: str  # as written, a trailing possessive 's removed
    lower: str


def _candidates(text: str, tokens: list[NameToken]) -> list[Token]:
    """The `name_tokens` but @handles (no names: the WNUT-17 convention), as `Token`s."""
    new = tuple.__new__  # (NamedTuple's own __new__ is a Python function: 2.5x the cost)
    return [
        new(Token, (s, e, w, w.lower())) for s, e, w in tokens if not (s and text[s - 1] == "@")
    ]


_start = itemgetter(0)  # a Token's start
_WORD_JOINS = frozenset("'\u2019-")


def _before(text: str, start: int) -> tuple[int, int, str] | None:
    """The word ending at most three characters before `start` (manual scan: a regex search
    per candidate cost more than scoring it)."""
    end = start
    while end > 0 and start - end < 3 and not text[end - 1].isalpha():
        end -= 1
    if end == 0 or not text[end - 1].isalpha():
        return None
    begin = end - 1
    while begin > 0 and (
        text[begin - 1].isalpha()
        or (text[begin - 1] in _WORD_JOINS and text[begin - 2 : begin - 1].isalpha())
    ):
        begin -= 1
    return begin, end, text[begin:end]


def _after(text: str, end: int) -> tuple[int, int, str] | None:
    """The word starting at most three characters after `end` (a trailing 's removed)."""
    n = len(text)
    begin = end
    while begin < n and begin - end < 3 and not text[begin].isalpha():
        begin += 1
    if begin >= n or not text[begin].isalpha():
        return None
    stop = begin + 1
    while stop < n and (
        text[stop].isalpha() or (text[stop] in _WORD_JOINS and text[stop + 1 : stop + 2].isalpha())
    ):
        stop += 1
    word = text[begin:stop]
    if word[-2:] in ("'s", "\u2019s") and len(word) > 3:
        word, stop = word[:-2], stop - 2
    return begin, stop, word


def _shape(word: str) -> str:
    if word.istitle():
        return "Xx" if len(word) > 1 else "X"
    if word.isupper():
        return "XX"
    if word.islower():
        return "x"
    return "xX"


def _sentence_initial(text: str, start: int) -> bool:
    at = start - 1
    while at >= 0 and text[at] in " \t\"'\u201c\u2018(":
        at -= 1
    return at < 0 or text[at] in _SENTENCE_END


class PersonFeatures:
    """Feature strings of one candidate token in context; shared by training and inference.

    Features split in two: the word's own (cached per word: most names recur) and its context.
    """

    def __init__(self, lexicon: NameLexicon, weights: Mapping[str, float] | None = None) -> None:
        self.lexicon = lexicon
        # The word-only model ("own:" weights, trained first): how name-like a neighbour is.
        self._own_weights = weights or {}
        self._gazetteers: dict[str, str] = {}
        self._words: dict[str, tuple[str, str, str]] = {}
        self._neighbours: dict[str, str] = {}
        self._shapes = shipped()  # now, not in the first request with a new word (~57 ms)
        # A neighbour's four features beside a token of a shape and gazetteer class: built once.
        self._side_features: dict[tuple[str, str, str], tuple[tuple[str, ...], ...]] = {}

    def word(self, word: str) -> tuple[str, str, str]:
        """(lower case, shape, gazetteer classes) of a word as written; cached, bounded."""
        known = self._words.get(word)
        if known is None:
            lower = word.lower()
            known = (lower, _shape(word), self.gazetteer(lower))
            if len(self._words) >= WORD_CACHE:
                self._words.clear()  # a long-running gateway sees unbounded words
            self._words[word] = known
        return known

    def candidates(self, text: str, lowered_text: bool) -> list[Token]:
        """Tokens that may be (part of) a name; @handles are not (the WNUT-17 convention)."""
        return _candidates(text, name_tokens(text, self.lexicon, lowered_text))

    def gazetteer(self, lower: str) -> str:
        known = self._gazetteers.get(lower)
        if known is not None:
            return known
        lex = self.lexicon
        flags = [
            name
            for name, words in (
                ("first", lex.first),
                ("cfirst", lex.common_first),
                ("last", lex.last),
                ("eng", lex.english),
                ("proper", lex.proper),
                ("not", lex.not_names),
                ("amb", lex.ambiguous),
                ("country", lex.countries),
                ("place", lex.places),
                ("title", TITLES),
            )
            if lower in words
        ]
        known = "+".join(flags) or "none"
        if len(self._gazetteers) >= WORD_CACHE:
            self._gazetteers.clear()  # bounded: a long-running gateway sees unbounded words
        self._gazetteers[lower] = known
        return known

    def own(self, token: Token) -> list[str]:
        """The features of the word itself, whatever its context."""
        return self.own_word(token.word)

    def own_word(self, word: str) -> list[str]:
        lower, shape, gaz = self.word(word)
        feats = ["b", "w=" + lower, "s3=" + lower[-3:], "sh=" + shape, "g=" + gaz,
                 "gs=" + gaz + "|" + shape, *self._shapes.features(lower, shape, gaz)]  # fmt: skip
        if shape == "xX":
            feats.append("cm=" + self._camel(word))
        if len(lower) > 3:
            # Letter pieces say what language and kind of word it is, most for words seen
            # rarely or never ("-ski", "-ović", "mc-" for surnames; "-ware", "-ics" for products).
            feats += ["p3=" + lower[:3], "s4=" + lower[-4:], "s2=" + lower[-2:]]
        if lower in _OTHER_FUNCTION:
            feats.append("fw=other|" + shape)  # "LE", "Te": no name, whatever the language
        elif lower in _ENGLISH_FUNCTION:
            feats.append("fw=en|" + shape)
        return feats

    def neighbour(self, word: str) -> str:
        """How name-like a neighbouring word is by itself, in four steps ("nc": it could not
        be a name), from the word-only model: "Dikembe Mutombo" holds two unknown words, and
        each makes the other more likely a name."""
        known = self._neighbours.get(word)
        if known is None:
            if not (word[:1].isupper() or word.lower() in self.lexicon.lower_ok):
                known = "nc"
            else:
                weights = self._own_weights
                z = sum(weights.get("own:" + f, 0.0) for f in self.own_word(word))
                known = "0" if z < -2.0 else "1" if z < 0.0 else "2" if z < 2.0 else "3"
            if len(self._neighbours) >= WORD_CACHE:
                self._neighbours.clear()  # bounded: a long-running gateway sees unbounded words
            self._neighbours[word] = known
        return known

    def _sides(self, word: str, shape: str, gaz: str) -> tuple[tuple[str, ...], ...]:
        """The features of `word` as the neighbour before and after a token (cached)."""
        low, ws, wg = self.word(word)
        own = self.neighbour(word)
        before = ("p=" + low, f"psh={ws}|{shape}", f"pg={wg}|{gaz}", f"pown={own}|{shape}")
        after = ("n=" + low, f"nsh={shape}|{ws}", f"ng={gaz}|{wg}", f"nown={shape}|{own}")
        if len(self._side_features) > 4_000:  # (~0.75 KB an entry)
            self._side_features.clear()  # bounded: a long-running gateway sees unbounded words
        self._side_features[word, shape, gaz] = before, after
        return before, after

    def _camel(self, word: str) -> str:
        """What the parts of a run-together word are, as hashtags and user names write names
        ("AlanPardew": a common first name, then a word that is no everyday word)."""
        parts = [part.lower() for part in _CAMEL_PART.findall(word)]
        if len(parts) < 2:
            return "no"
        lex = self.lexicon
        pair = any(
            a in lex.common_first and (b in lex.last or b not in lex.english)
            for a, b in pairwise(parts)
        )
        everyday = sum(p in lex.english for p in parts)
        return f"{'P' if pair else 'p'}{min(len(parts), 4)}e{min(everyday, 2)}"

    def context(self, text: str, token: Token, lowered_text: bool, rule: float) -> list[str]:
        """The features of the token's place: sentence position, neighbours, cues, rules."""
        # The caches are read inline (a method call per word cost more than the lookup).
        sides = self._side_features
        _, shape, gaz = self._words.get(token.word) or self.word(token.word)
        start = token.start
        initial = "i=True|" if _sentence_initial(text, start) else "i=False|"
        feats = [f"{initial}{shape}|{gaz}"]
        if lowered_text:
            feats.append("lowtext|" + gaz)
        if rule >= 0:
            bucket = str(min(9, int(rule * 10)))
            feats.append("r=" + bucket)
            feats.append(f"r={bucket}|{shape}")
        else:
            feats.append("r=none")
        if start and text[start - 1] == "#":
            feats.append("hash")
            feats.append(f"hash|{shape}|{gaz}")
        if text[token.end : token.end + 2] in ("'s", "\u2019s"):
            feats.append("poss")
        before = _before(text, token.start)
        if before is None or "\n" in text[before[1] : token.start]:
            feats.append("p=<s>")
        else:
            b_start, b_end, b_word = before
            feats += (sides.get((b_word, shape, gaz)) or self._sides(b_word, shape, gaz))[0]
            b_lower = b_word.lower()
            gap = text[b_end : token.start].strip()
            if gap:
                feats.append("pgap=" + gap[:1])
            cue = _CUE_RANK.get(b_lower, 0)
            if b_lower in _PAIR_TAILS:  # the word before may make a two-word cue ("ask for")
                head = text[max(0, b_start - 20) : b_start].split()
                if head:
                    cue = max(cue, _CUE_RANK.get(head[-1].lower() + " " + b_lower, 0))
            if cue:
                feats.append(_CUE_FEATURES[cue])
        after = _after(text, token.end)
        if after is None or "\n" in text[token.end : after[0]]:
            feats.append("n=</s>")
        else:
            a_word = after[2]
            feats += (sides.get((a_word, shape, gaz)) or self._sides(a_word, shape, gaz))[1]
            gap = text[token.end : after[0]].strip()
            if gap:
                feats.append("ngap=" + gap[:1])
        return feats


class PersonModel:
    """Scores name-like tokens with the shipped weights and joins positive ones into spans."""

    def __init__(self, lexicon: NameLexicon, weights: dict[str, float] | None = None) -> None:
        if weights is None:
            weights, self.meta = load_weights()
        else:
            self.meta = {}
        self.features = PersonFeatures(lexicon, weights)
        self._weights = weights
        self._own: dict[str, float] = {}  # word as written -> the sum of its own weights

    def token_scores(
        self,
        text: str,
        rules: Sequence[Candidate] = (),
        tokens: list[Token] | None = None,
        lowered_text: bool | None = None,
    ) -> list[tuple[Token, float]]:
        """(token, probability of being part of a name) for every candidate token."""
        if lowered_text is None:
            lowered_text = is_lower_case(text)
        if tokens is None:
            tokens = self.features.candidates(text, lowered_text)
        get = self._weights.get
        own_scores, context = self._own, self.features.context  # locals: this loop is hot
        rules_at = rule_scores(rules, tokens)
        out = []
        for token, rule in zip(tokens, rules_at, strict=True):
            z = own_scores.get(token.word)
            if z is None:
                z = sum(get(f, 0.0) for f in self.features.own(token))
                if len(own_scores) >= WORD_CACHE:
                    own_scores.clear()
                own_scores[token.word] = z
            if z < OWN_GATE and rule < 0.5:
                # The word alone rules itself out ("GET", "INFO", "Kubernetes") and no rule
                # says otherwise: context unread (half the candidates in tweets, 2/3 in code)
                out.append((token, 0.0))
                continue
            for feature in context(text, token, lowered_text, rule):
                z += get(feature, 0.0)
            out.append((token, 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))))
        return out

    def scan(self, text: str, rules: Sequence[Candidate] = ()) -> list[Candidate]:
        """PERSON spans of the model alone (`rules`: the rules' candidates, read as features)."""
        return self.spans(text, self.token_scores(text, rules))

    def spans(
        self, text: str, scores: list[tuple[Token, float]], floor: float = 0.3
    ) -> list[Candidate]:
        """Runs of tokens scoring `floor` or more, at the best token's score."""
        found: list[Candidate] = []
        run: list[tuple[Token, float]] = []
        for token, score in scores:
            if score < floor:
                continue
            if run and text[run[-1][0].end : token.start] not in _JOINS:
                found.append(_span(text, run))
                run = []
            run.append((token, score))
        if run:
            found.append(_span(text, run))
        return [c for c in found if c[3] >= floor]


def rule_scores(rules: Sequence[Candidate], tokens: Sequence[Token]) -> list[float]:
    """For each token, the best score of a rule span holding it (-1.0 where none does).

    Both lists are in text order and tokens do not overlap (their ends rise with their starts),
    so each rule span's tokens are found by bisection: a step per rule and per token it holds.
    """
    out = [-1.0] * len(tokens)
    for _, rule_start, rule_end, score in rules:
        at = bisect_left(tokens, rule_start, key=_start)
        while at < len(tokens) and tokens[at][1] <= rule_end:
            if score > out[at]:
                out[at] = score
            at += 1
    return out


_TITLE_BEFORE = re.compile(r"(?:^|(?<=\W))([A-Z][a-z]{1,3})\.? $")


def _span(text: str, run: list[tuple[Token, float]]) -> Candidate:
    start, end = run[0][0].start, run[-1][0].end
    score = max(s for _, s in run)
    # A title stays with the name it introduces ("Dr. Aiko Tanaka").
    title = _TITLE_BEFORE.search(text, max(0, start - 6), start)
    if title and title.group(1).lower() in TITLES:
        start = title.start(1)
    return "PERSON", start, end, round(score, 3)


def load_weights(path: Path | None = None) -> tuple[dict[str, float], dict[str, object]]:
    """The shipped weights (or those of the model file `path`, a candidate in training) and
    their provenance (data, licences, training settings)."""
    source = path or resources.files("signalvault.guardrails.data").joinpath(MODEL_FILE)
    with source.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as handle:
        model = json.load(handle)
    return {k: float(v) for k, v in model["weights"].items()}, model["meta"]


class PersonDetector:
    """PERSON from the rules and the model together, the combination measured best on text
    neither was tuned on (see docs/guardrails.md): the model's spans, plus the rules' spans the
    model does not contradict. The rules know formal cues and address blocks; the model knows
    informal text and weighs every signal at once.
    """

    # A model span is reported from this token probability: its score is shifted (_shift) so
    # that this point lands on the engine's 0.5. Both numbers chosen on the training corpora
    # by the rule in training/README.md (cv_person.py --novel, --select; guard_person.py):
    # novel-name CV P 0.753, R 0.649; 4-fold CV P 0.761, R 0.765 (2026-12-07, sixth round,
    # fresh9 held out; round four's V2 settings), the top of the --select list with both
    # precision floors at the 0.75 (until then 0.78 for the 4-fold floor, whose pick on
    # this pool, 0.65 / 0.2, found novel-name R 0.635).
    MODEL_THRESHOLD = 0.65
    VETO = 0.15  # a rule span whose tokens score below this on average is demoted
    TRUSTED = 0.95  # ... unless the rules give their top score (a strong cue, a full name)

    def __init__(self, lexicon: NameLexicon | None = None) -> None:
        lexicon = lexicon or load_lexicon()
        self.lexicon = lexicon
        self.rules = NameRules(lexicon)
        self.model = PersonModel(lexicon)

    def scan(self, text: str) -> list[Candidate]:
        lowered_text = is_lower_case(text)
        tokens = name_tokens(text, self.lexicon, lowered_text)
        if not tokens:
            return []
        ruled = self.rules.scan(text, tokens, lowered_text)
        scores = self.model.token_scores(text, ruled, _candidates(text, tokens), lowered_text)
        found = [
            (kind, start, end, _shift(score, self.MODEL_THRESHOLD))
            for kind, start, end, score in self.model.spans(text, scores)
        ]
        at = 0
        scored = len(scores)
        for kind, start, end, score in ruled:
            while at < scored and scores[at][0].start < start:
                at += 1
            # Every part of a name looks like one: a rule span whose words the model reads as
            # no name on average ("Annual Sales Review") is demoted, even if one word might be.
            # The rules' top score (a strong cue such as "my name is", a title and a full name)
            # is not overruled: whatever the word, one who says "call me Kubernetes" names a person.
            if 0.5 <= score < self.TRUSTED:  # (most rule spans score below 0.5: no sum)
                total, count = 0.0, 0
                j = at
                while j < scored and scores[j][0].end <= end:
                    total += scores[j][1]
                    count += 1
                    j += 1
                if total < self.VETO * max(count, 1):
                    score = min(score, 0.4)  # the model reads this as no name
            found.append((kind, start, end, score))
        return _union(found)


def _shift(probability: float, point: float) -> float:
    """The probability with its odds divided by those of `point`: `point` lands on 0.5, the
    order of scores is kept and they stay probabilities."""
    p = min(max(probability, 1e-6), 1.0 - 1e-6)
    z = math.log(p / (1.0 - p)) - math.log(point / (1.0 - point))
    return round(1.0 / (1.0 + math.exp(-z)), 3)


def _union(found: list[Candidate]) -> list[Candidate]:
    """Overlapping PERSON spans become one, at the best score: no part of a name is left out."""
    merged: list[Candidate] = []
    # By start (tuple order, no key function to call): spans of one start merge in any order.
    for kind, start, end, score in sorted(found):
        if merged and start < merged[-1][2]:
            _, s, e, sc = merged[-1]
            merged[-1] = (kind, s, max(e, end), max(sc, score))
        else:
            merged.append((kind, start, end, score))
    return merged

"""The `custom` detector: operator-written regular expressions and keyword lists, compiled once.

Operator patterns run under RE2 (linear time in the text, whatever the pattern), so no rule can
hang the gateway; a pattern RE2 cannot run is refused when the policy is checked, not at scan time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import re2

from signalvault.guardrails.finding import Finding
from signalvault.guardrails.scanner import Pattern, PatternSet

# RE2 compiles a pattern into an automaton of bounded size; past this a pattern is refused
# (a repetition such as `(x{1000}){1000}` would otherwise cost the process memory, not time).
_MAX_PATTERN_MEMORY = 8 << 20
# Python-only escapes with an RE2 spelling: `\u00e9` is `\x{00e9}`, `\Z` is `\z`.
_PYTHON_ESCAPES = re.compile(r"\\\\|\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})|\\Z")
_UNSUPPORTED = {
    "invalid perl operator": "look-around ((?=, (?!, (?<=, (?<!) is not supported",
    "invalid escape sequence": "back-references (\\1, (?P=name)) and this escape are not supported",
    "pattern too large": "the pattern's automaton is too large (reduce nested repetition)",
    "bad repetition operator": "nested or unbounded repetition is not supported here",
}


class CustomDetector:
    """Reports matches of operator regexes and whole-word keywords as kind `name.upper()`.

    `ignore_case` applies to patterns and keywords alike. Patterns use RE2 syntax: Python `re`
    syntax without look-around or back-references, with ASCII `\\w`, `\\d` and `\\b`.

    Raises:
        ValueError: empty name, nothing to match, or a pattern RE2 refuses (named by position).
    """

    def __init__(
        self,
        name: str,
        patterns: Iterable[str] = (),
        keywords: Iterable[str] = (),
        ignore_case: bool = True,
    ) -> None:
        if not name.strip():
            raise ValueError("a custom detector needs a non-empty name")
        self._kind = name.upper()
        self._patterns = [
            compile_pattern(regex, ignore_case, f"custom detector {name!r}: pattern #{i + 1}")
            for i, regex in enumerate(patterns)
        ]
        words = sorted({k.strip() for k in keywords if k.strip()}, key=len, reverse=True)
        self._keywords: PatternSet | None = None
        if words:
            # Whole words: a keyword must not touch a letter, digit or underscore on either side,
            # which also works for keywords such as "C++" or "@acme" where \b would not. The
            # regex is ours (escaped literals), so Python's engine cannot backtrack on it.
            body = "|".join(re.escape(w) for w in words)
            self._keywords = PatternSet([Pattern("k", rf"(?<!\w)(?:{body})(?!\w)", ignore_case)])
        if not self._patterns and self._keywords is None:
            raise ValueError(f"custom detector {name!r}: give at least one pattern or keyword")

    def __call__(self, text: str) -> list[Finding]:
        spans: list[tuple[int, int]] = []
        for regex in self._patterns:
            spans.extend(m.span() for m in regex.finditer(text))
        if self._keywords is not None:
            spans.extend(m.span() for _, m in self._keywords.finditer(text))
        kept: list[Finding] = []
        last_end = -1
        # Earliest first, longest first at a tie; zero-width matches mark nothing.
        for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
            if end > start and start >= last_end:
                kept.append(Finding(self._kind, start, end, 1.0, "custom"))
                last_end = end
        return kept


def compile_pattern(regex: str, ignore_case: bool, where: str) -> re2._Regexp:
    """Compile an operator pattern under RE2, or raise ValueError saying why it cannot run.

    The message names the rule and position and what is unsupported, never text it would scan.
    """
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not ignore_case
    options.max_mem = _MAX_PATTERN_MEMORY
    try:
        return re2.compile(_PYTHON_ESCAPES.sub(_to_re2, regex), options)
    except re2.error as err:
        detail = str(err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else err)
        reason = next(
            (f"{why} ({detail})" for k, why in _UNSUPPORTED.items() if k in detail), detail
        )
        raise ValueError(
            f"{where} {regex!r} is not a valid regular expression for RE2, the linear-time engine "
            f"custom patterns run under: {reason}"
        ) from None


def _to_re2(match: re.Match[str]) -> str:
    if match.group(1) or match.group(2):
        return "\\x{" + (match.group(1) or match.group(2)) + "}"
    return "\\z" if match.group() == "\\Z" else match.group()

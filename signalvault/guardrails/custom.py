"""The `custom` detector: operator-written regular expressions and keyword lists, compiled once.

Builds on scanner.PatternSet; operator input is validated here so a bad rule fails at load time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import hyperscan

from signalvault.guardrails.finding import Finding
from signalvault.guardrails.scanner import Pattern, PatternSet

_KEYWORDS_KEY = "keywords"


class CustomDetector:
    """Reports matches of operator regexes and whole-word keywords as kind `name.upper()`.

    `ignore_case` applies to patterns and keywords alike. Patterns use Python `re` syntax.

    Raises:
        ValueError: empty name, nothing to match, or a pattern that is not a valid regex.
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
        flags = re.IGNORECASE if ignore_case else 0
        compiled: list[Pattern] = []
        for index, regex in enumerate(patterns):
            try:
                re.compile(regex, flags)
            except re.error as err:
                # The message names the rule and position, never the text it would scan.
                raise ValueError(
                    f"custom detector {name!r}: pattern #{index + 1} {regex!r} is not a valid "
                    f"regular expression: {err}"
                ) from err
            compiled.append(Pattern(f"p{index}", regex, ignore_case))
        words = sorted({k.strip() for k in keywords if k.strip()}, key=len, reverse=True)
        if words:
            # Whole words: a keyword must not touch a letter, digit or underscore on either side,
            # which also works for keywords such as "C++" or "@acme" where \b would not.
            body = "|".join(re.escape(w) for w in words)
            compiled.append(Pattern(_KEYWORDS_KEY, rf"(?<!\w)(?:{body})(?!\w)", ignore_case))
        if not compiled:
            raise ValueError(f"custom detector {name!r}: give at least one pattern or keyword")
        self._fast, self._slow = _partition(compiled)

    def __call__(self, text: str) -> list[Finding]:
        spans: list[tuple[int, int]] = []
        if self._fast is not None:
            spans.extend(m.span() for _, m in self._fast.finditer(text))
        for regex in self._slow:
            spans.extend(m.span() for m in regex.finditer(text))
        kept: list[Finding] = []
        last_end = -1
        # Earliest first, longest first at a tie; zero-width matches mark nothing.
        for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
            if end > start and start >= last_end:
                kept.append(Finding(self._kind, start, end, 1.0, "custom"))
                last_end = end
        return kept


def _partition(patterns: list[Pattern]) -> tuple[PatternSet | None, list[re.Pattern[str]]]:
    """Hyperscan-compatible patterns go into one PatternSet; the rest run through `re` alone.

    A few valid Python constructs (e.g. some Unicode escapes) are rejected by Hyperscan even in
    prefilter mode; such rules still work, only without the one-pass prefilter.
    """
    try:
        return PatternSet(patterns), []
    except hyperscan.error:
        pass
    fast: list[Pattern] = []
    slow: list[re.Pattern[str]] = []
    for pattern in patterns:
        try:
            PatternSet([pattern])
            fast.append(pattern)
        except hyperscan.error:
            flags = re.IGNORECASE if pattern.ignore_case else 0
            slow.append(re.compile(pattern.regex, flags))
    return (PatternSet(fast) if fast else None), slow

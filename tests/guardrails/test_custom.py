"""Custom detector: operator regexes and keyword lists."""

from __future__ import annotations

import pytest

from signalvault.guardrails.custom import CustomDetector


def spans(detector, text):
    return [text[f.start : f.end] for f in detector(text)]


@pytest.mark.parametrize(
    ("patterns", "keywords", "text", "expected"),
    [
        ([r"PRJ-\d{4}"], [], "tickets PRJ-1234 and PRJ-99", ["PRJ-1234"]),
        ([], ["Apollo"], "apollo, Apollonian, APOLLO.", ["apollo", "APOLLO"]),
        (
            [],
            ["C++", "@acme"],
            "we write C++ at @acme; ObjectiveC++ and acme do not count",
            ["C++", "@acme"],
        ),
        ([], ["project x"], "Project X ships; project xyz does not", ["Project X"]),
        ([r"\bcodename \w+"], ["Zephyr"], "codename Zephyr is secret", ["codename Zephyr"]),
        ([r"a*"], [], "bbb", []),  # empty matches mark nothing
        ([r"caf\u00e9"], [], "un café noir", ["café"]),  # Python's \u escape is understood
        ([r"(?i)ticket\s+#?\d+\Z"], [], "see Ticket #42", ["Ticket #42"]),
    ],
)
def test_matches_patterns_and_whole_word_keywords(patterns, keywords, text, expected):
    assert spans(CustomDetector("rule", patterns, keywords), text) == expected


def test_case_sensitive_when_asked():
    detector = CustomDetector("rule", [r"secret-\d+"], ["Apollo"], ignore_case=False)
    assert spans(detector, "Apollo apollo SECRET-1 secret-2") == ["Apollo", "secret-2"]


def test_kind_is_the_upper_cased_name_and_detector_is_custom():
    (finding,) = CustomDetector("internal_project", keywords=["Apollo"])("about Apollo")
    assert (finding.kind, finding.detector, finding.score) == ("INTERNAL_PROJECT", "custom", 1.0)


def test_overlapping_matches_keep_the_earliest_longest():
    detector = CustomDetector("rule", [r"abc", r"abcdef", r"cde"])
    assert spans(detector, "xx abcdef yy") == ["abcdef"]


def test_invalid_regex_raises_a_clear_error():
    with pytest.raises(ValueError, match=r"'deny'.*pattern #2.*not a valid regular expression"):
        CustomDetector("deny", [r"ok", r"(unclosed"])


def test_needs_a_name_and_something_to_match():
    with pytest.raises(ValueError, match="name"):
        CustomDetector(" ", keywords=["x"])
    with pytest.raises(ValueError, match="at least one"):
        CustomDetector("empty", keywords=["  "])


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(?<!\w)secret", "look-around"),
        (r"(?=x)y", "look-around"),
        (r"(a)\1", "back-references"),
        (r"(?:x{1000}){1000}", "repetition"),
    ],
)
def test_patterns_the_linear_time_engine_cannot_run_are_refused_with_the_reason(pattern, reason):
    with pytest.raises(ValueError, match=rf"'deny'.*pattern #1.*RE2.*{reason}"):
        CustomDetector("deny", [pattern])


def test_a_catastrophic_backtracking_pattern_runs_in_linear_time():
    """`(a+)+$` takes 2^n steps under a backtracking engine; under RE2 this returns at once."""
    detector = CustomDetector("rule", [r"(a+)+$", r"(x+x+)+y"])
    assert detector("a" * 5000 + "!" + "x" * 5000) == []

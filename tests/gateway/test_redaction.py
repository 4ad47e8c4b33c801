"""Redaction properties: no finding survives, placeholders are stable within a request, and
offsets stay right in multi-byte text."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from signalvault.guardrails.engine import Context, Engine, Redactor
from signalvault.guardrails.policy import Policy, parse_rules

ENGINE = Engine(
    Policy(
        1,
        parse_rules(
            [
                {
                    "name": "codes",
                    "detector": "custom",
                    "action": "redact",
                    "options": {"patterns": [r"SV-\d{4}"], "keywords": ["kiwi"]},
                },
                {
                    "name": "pii",
                    "detector": "pii",
                    "action": "redact",
                    "options": {"types": ["EMAIL"]},
                },
            ]
        ),
    ),
    lambda text, model: len(text),
)
VALUES = ["SV-1234", "SV-9876", "kiwi", "ana@example.com", "bo.x@mail.example.org"]
FILLER = st.text(alphabet="abc xyz,.\n日本語éü😀", max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(FILLER, st.sampled_from(VALUES)), min_size=1, max_size=6), FILLER)
def test_no_finding_survives_and_placeholders_are_stable(parts, tail):
    text = "".join(f"{filler} {value} " for filler, value in parts) + tail
    verdict = ENGINE.scan([text], "input", Context(), Redactor())
    assert verdict.decision == "redact"
    [redacted] = verdict.texts
    for _, value in parts:
        assert value not in redacted
    placeholders = re.findall(r"\[[A-Z_]+_\d+\]", redacted)
    assert len(placeholders) == len(parts)
    # The same value always gets the same placeholder; different values never share one.
    by_value: dict[str, set[str]] = {}
    for (_, value), placeholder in zip(parts, placeholders, strict=True):
        by_value.setdefault(value, set()).add(placeholder)
    assert all(len(p) == 1 for p in by_value.values())
    assert len({next(iter(p)) for p in by_value.values()}) == len(by_value)
    # Everything between findings is kept, in order, multi-byte characters included.
    assert re.sub(r"\[[A-Z_]+_\d+\]", "", redacted) == re.sub(
        "|".join(re.escape(v) for v in VALUES), "", text
    )


def test_placeholders_are_shared_across_input_and_output_and_restore():
    redactor = Redactor()
    ENGINE.scan(["ask ana@example.com"], "input", Context(), redactor)
    verdict = ENGINE.scan(["reply to ana@example.com"], "output", Context(), redactor)
    assert verdict.texts == ["reply to [EMAIL_1]"]
    assert redactor.restore("hi [EMAIL_1]") == "hi [EMAIL_1]"  # not restorable by this rule

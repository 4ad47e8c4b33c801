"""What a detector reports: a `Finding` per sensitive span, and the `Detector` signature."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected span: `text[start:end]` is the sensitive value (never stored or logged).

    `kind` is a canonical upper-case type (EMAIL, PHONE, CREDIT_CARD, OPENAI_API_KEY, ...),
    `detector` the family that found it (pii, secrets, prompt_injection, custom), and `score`
    a confidence in [0, 1].
    """

    kind: str
    start: int
    end: int
    score: float
    detector: str


Detector = Callable[[str], list[Finding]]

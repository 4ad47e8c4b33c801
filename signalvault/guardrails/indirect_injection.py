"""The `indirect_injection` detector: instructions addressed to the model inside data (a tool
result, a retrieved document, an e-mail). Placeholder until tuned: the direct rules only."""

from __future__ import annotations

from signalvault.guardrails.finding import Finding
from signalvault.guardrails.injection import InjectionDetector


class IndirectInjectionDetector:
    def __init__(self, threshold: float = 0.5) -> None:
        self._direct = InjectionDetector(threshold)

    def __call__(self, text: str) -> list[Finding]:
        return self._direct(text)

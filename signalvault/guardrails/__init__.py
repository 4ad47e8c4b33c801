"""Guardrail detectors and the policy engine; imports only errors and config, never HTTP or SQL.

A detector is a plain callable: text in, list of `Finding` out. The gateway hands this package
text and acts on what comes back.
"""

from signalvault.guardrails.finding import Detector, Finding

__all__ = ["Detector", "Finding"]

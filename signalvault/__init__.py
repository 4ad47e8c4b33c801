"""SignalVault: a self-hosted AI gateway with guardrails and an encrypted, tamper-evident audit trail."""

__version__ = "0.1.0"

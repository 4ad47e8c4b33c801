"""SignalVault: a self-hosted AI gateway with guardrails and an encrypted audit trail."""

__version__ = "0.1.0"

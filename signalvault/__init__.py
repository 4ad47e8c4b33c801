"""SignalVault: a self-hosted AI gateway with guardrails and an encrypted audit trail."""

from signalvault import compiled as _compiled

__version__ = "0.1.0"
# Whether the mypyc-compiled modules or their sources run (signalvault/compiled.py).
BUILD = _compiled.apply()

"""Evidence for auditors (SPEC §7c, §8): data classification and its controls, the provider
register, incidents raised from alerts, auditor samples with inclusion proofs, and the SOC 2
report built from live data.

May import the trail, guardrails, store, crypto, config and leaves; the gateway, the control
plane and the app import it, never the other way round.
"""

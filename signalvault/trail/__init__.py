"""The audit trail and everything in its life: recording (audit.py), the spool, tamper evidence
(integrity/: Merkle tree, seals, signed checkpoints, verification), the signing key, retention,
legal holds, erasure, export, alerts and master-key rotation.

May import guardrails' types, store, crypto, config and the leaves; never the gateway, the
control plane or HTTP serving.
"""

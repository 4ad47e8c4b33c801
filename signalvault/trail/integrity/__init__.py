"""Tamper evidence of the audit trail: Merkle tree, sealer, signed checkpoints, verification."""

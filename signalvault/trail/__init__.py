"""The audit trail and everything in its life."""

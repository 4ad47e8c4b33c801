"""Audit-trail export (CSV, JSON, JSON Lines) and data-subject export, each with a signed manifest.

A service over the store: it imports store, crypto, signing and audit, never the CLI or HTTP.
"""

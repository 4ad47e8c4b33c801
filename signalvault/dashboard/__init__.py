"""The dashboard at `/` (SPEC §8): server-rendered pages over the same services and the same
permission table as the admin API, with its static assets served by the gateway (no CDN).

May import the control plane and everything below it; only app.py imports it.
"""

"""Accounts of people who use the dashboard and the admin API (SPEC §5), and who they are on a
request: the `Principal` and the `Authenticator` that the admin API depends on."""

"""The control plane: accounts and roles, the admin API (api/), policy change control, projects,
provider credentials, run-time and effective settings, and the services bundle every surface
opens (services.py).

May import the gateway, the trail and everything below; never app.py, the server or the CLI.
"""

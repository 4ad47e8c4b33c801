"""Agent runs (SPEC §7b): tool calls and their results as events linked into runs, tool
policies, MCP through the gateway, OpenTelemetry in and out.

May import the gateway's wire formats, the trail, guardrails, store, crypto, config and leaves;
the control plane and the app import it, never the other way round.
"""

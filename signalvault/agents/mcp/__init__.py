"""MCP through the gateway (SPEC §7b): connections to the configured upstream MCP servers, the
SDK server each is exposed as, which tools a key may use, and the `mcp_call` record of every
call. The HTTP surface (`/mcp/<name>`) lives in gateway/mcp_endpoint.py and calls in here;
guardrails are handed in as a `Guard`, since screening belongs to the gateway above.
"""

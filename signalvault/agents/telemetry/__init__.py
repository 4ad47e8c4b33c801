"""OpenTelemetry out (SPEC §7b): the W3C trace context of each record (ids.py), and a span per
model call, tool call and MCP call exported over OTLP/HTTP with the GenAI semantic conventions,
batched off the request path (exporter.py)."""

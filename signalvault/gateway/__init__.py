"""The /v1 data plane: the proxy (proxy.py) and what it needs per request: request admission,
wire formats and SSE, screening and the stream guard, relaying, provider routing and upstream
calls (retries, breakers), limits, token counts, the key ring, metrics.

May import the trail, guardrails, store, crypto, config and the leaves; never the control plane
(it is handed what it needs from there, e.g. a credential lookup and the run-time limits).
"""

"""OpenAI + Anthropic compatible stand-in provider for `signalvault demo`, tests and benchmarks.

A raw ASGI app served by uvicorn (see app.py); it imports only signalvault.errors.
"""

from signalvault.mock_provider.app import (
    MockOptions,
    MockProvider,
    RequestRecord,
    Stats,
    run,
    server_config,
)

__all__ = ["MockOptions", "MockProvider", "RequestRecord", "Stats", "run", "server_config"]

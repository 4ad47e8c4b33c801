"""What the evidence tests share: request bodies per API, a secret and personal data to find,
and settings with a provider register."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from signalvault.config import ProviderSettings, RouteSettings, Secret, Settings
from tests.conftest import PROVIDER_KEY

AWS_KEY = "AKIA" + "Q3VZ7TXK2MBN4PLD"
EMAIL = "jane.doe@example.com"
CANARY = "zebra-canary-7731"  # a word that must never appear outside encrypted content


def body(api: str, text: str, *, stream: bool = False, model: str = "gpt-4o-mini") -> dict:
    if api == "chat":
        return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    if api == "responses":
        return {"model": model, "input": text, "stream": stream}
    if api == "embeddings":
        return {"model": "text-embedding-3-small", "input": text}
    return {
        "model": "claude-sonnet-4",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    }


PATHS = {
    "chat": "/v1/chat/completions",
    "responses": "/v1/responses",
    "embeddings": "/v1/embeddings",
    "messages": "/v1/messages",
}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def provider(name: str, base_url: str, **register: Any) -> ProviderSettings:
    return ProviderSettings(
        name=name,
        kind="openai",
        base_url=base_url,
        models=("gpt-*",),
        api_key=Secret(PROVIDER_KEY),
        **register,
    )


def with_register(settings: Settings, *providers: ProviderSettings, routes=()) -> Settings:
    """`settings` with these OpenAI-family providers first (the Anthropic one kept)."""
    anthropic = tuple(p for p in settings.providers if p.kind == "anthropic")
    return replace(
        settings,
        providers=(*providers, *anthropic),
        routes=tuple(RouteSettings(model=m, targets=tuple(t)) for m, t in routes),
    )

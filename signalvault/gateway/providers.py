"""Configured providers, routing from a requested model to ordered targets, and the one pooled
HTTP client per process that talks to them (`upstream.http1`)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from signalvault import __version__
from signalvault.config import ProviderSettings, Secret, Settings
from signalvault.errors import ConfigError, NotFound

ANTHROPIC_VERSION = "2023-06-01"
# Which provider kinds speak which client API family.
FAMILY_KINDS = {"openai": ("openai", "openai-compatible"), "anthropic": ("anthropic",)}


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider with its resolved credential."""

    name: str
    kind: str
    base_url: str
    models: tuple[str, ...]
    api_key: Secret | None

    def serves(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, glob) for glob in self.models)

    def url(self, endpoint: str) -> str:
        """`endpoint` is the path after the API version, e.g. `/chat/completions`."""
        return self.base_url.rstrip("/") + endpoint

    def headers(
        self, client_headers: Mapping[str, str], stored_key: Secret | None = None
    ) -> dict[str, str]:
        """Upstream headers: the provider's own credential, never the caller's gateway key. A
        stored credential (`signalvault providers set-key`) wins over the configured key."""
        headers = {"content-type": "application/json", "user-agent": f"signalvault/{__version__}"}
        credential = stored_key if stored_key is not None else self.api_key
        key = credential.reveal() if credential is not None else None
        if self.kind == "anthropic":
            headers["anthropic-version"] = client_headers.get(
                "anthropic-version", ANTHROPIC_VERSION
            )
            if "anthropic-beta" in client_headers:
                headers["anthropic-beta"] = client_headers["anthropic-beta"]
            if key:
                headers["x-api-key"] = key
        elif key:
            headers["authorization"] = f"Bearer {key}"
        return headers


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    model: str  # the model name sent upstream


def _resolve_key(settings: ProviderSettings) -> Secret | None:
    if settings.api_key is not None:
        return settings.api_key
    if settings.api_key_env:
        raise ConfigError(
            f"provider {settings.name!r}: environment variable {settings.api_key_env} is not set"
        )
    if settings.api_key_file is not None:
        try:
            return Secret(settings.api_key_file.read_text().strip())
        except OSError as exc:
            raise ConfigError(
                f"provider {settings.name!r}: cannot read api_key_file: {exc.strerror}"
            ) from None
    return None  # e.g. a local OpenAI-compatible server without authentication


class Router:
    """Maps (API family, requested model) to the ordered targets to try."""

    def __init__(self, settings: Settings) -> None:
        self.providers = {
            p.name: Provider(
                name=p.name,
                kind=p.kind,
                base_url=p.base_url,
                models=p.models,
                api_key=_resolve_key(p),
            )
            for p in settings.providers
        }
        self._routes = settings.routes

    def route(self, family: str, model: str) -> list[Target]:
        """Raises NotFound when no provider of this API family serves `model`."""
        kinds = FAMILY_KINDS[family]
        for route in self._routes:
            if fnmatch.fnmatchcase(model, route.model):
                targets = []
                for target in route.targets:
                    name, _, upstream_model = target.partition(":")
                    provider = self.providers[name]
                    if provider.kind in kinds:
                        targets.append(Target(provider, upstream_model or model))
                if targets:
                    return targets
        for provider in self.providers.values():
            if provider.kind in kinds and provider.serves(model):
                return [Target(provider, model)]
        raise NotFound(
            f"The model `{model}` does not exist or is not served by this gateway.",
            code="model_not_found",
            param="model",
        )

    def listed_models(self, family: str = "openai") -> list[tuple[str, str]]:
        """(model, provider) pairs with literal names, for `GET /v1/models`."""
        kinds = FAMILY_KINDS[family]
        seen: dict[str, str] = {}
        for route in self._routes:
            if not any(ch in route.model for ch in "*?["):
                seen.setdefault(route.model, route.targets[0].partition(":")[0])
        for provider in self.providers.values():
            if provider.kind in kinds:
                for glob in provider.models:
                    if not any(ch in glob for ch in "*?["):
                        seen.setdefault(glob, provider.name)
        return sorted(seen.items())

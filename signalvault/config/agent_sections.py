"""Settings of the agent features (SPEC §7b): MCP servers behind the gateway (`[[mcp_servers]]`)
and OpenTelemetry export (`[telemetry]`). Same rules as sections.py: a default and a help string
per field, documented in docs/configuration.md."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from signalvault.config.secret import Secret
from signalvault.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


def _empty(help: str) -> Any:
    return field(default_factory=lambda: MappingProxyType({}), metadata={"help": help})


@dataclass(frozen=True, slots=True)
class McpServerSettings:
    name: str = _setting("", "Name of the server; callers reach it at `/mcp/<name>`.")
    url: str = _setting("", "Streamable HTTP endpoint of the upstream MCP server.")
    command: str = _setting("", "Program started as a stdio MCP server (instead of `url`).")
    args: tuple[str, ...] = _setting((), "Arguments of `command`.")
    env: Mapping[str, Secret] = _empty(
        "Environment variables given to `command` (values are secrets: masked in every repr)."
    )
    headers: Mapping[str, Secret] = _empty(
        "HTTP headers sent to `url` with every request, e.g. the upstream's own credential."
    )
    tools: tuple[str, ...] = _setting(
        ("*",),
        "Tools (globs) of this server the gateway exposes at all; which of them a key may use "
        "is the guardrail policy's `tool_allowlist`.",
    )
    timeout_seconds: float = _setting(
        60.0, "Longest wait for the upstream server to answer one request."
    )


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    otlp_endpoint: str = _setting(
        "",
        "OTLP/HTTP collector root (e.g. http://collector:4318); spans go to "
        "`<endpoint>/v1/traces`. Unset exports nothing.",
    )
    headers: Mapping[str, Secret] = _empty(
        "HTTP headers sent with every export, e.g. the collector's API key."
    )
    capture_content: bool = _setting(
        False, "Put tool arguments and results of MCP calls in the exported spans (content!)."
    )
    service_name: str = _setting("signalvault", "`service.name` of the exported spans.")
    queue_size: int = _setting(
        2048, "Spans waiting for export at most; more are dropped (counted in /metrics)."
    )
    batch_size: int = _setting(512, "Most spans sent in one export request.")
    export_interval_seconds: float = _setting(2.0, "How often queued spans are sent.")
    timeout_seconds: float = _setting(
        5.0, "Time allowed for one export request (a slow collector only delays the exporter)."
    )
    shutdown_timeout_seconds: float = _setting(
        3.0, "At shutdown, longest wait for the queued spans to be sent."
    )


def validate_agents(servers: tuple[McpServerSettings, ...], telemetry: TelemetrySettings) -> None:
    """Raises ConfigError naming the first MCP server or telemetry setting that is wrong."""
    names = [server.name for server in servers]
    for server in servers:
        where = f"[[mcp_servers]] {server.name!r}"
        if not _NAME.fullmatch(server.name):
            raise ConfigError(
                "[[mcp_servers]]: every server needs a name of letters, digits, `-` and `_` "
                "(it is part of the URL /mcp/<name>)"
            )
        if bool(server.url) == bool(server.command):
            raise ConfigError(f"{where}: set exactly one of `url` and `command`")
        if server.url and not server.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: url must start with http(s)://")
        if server.timeout_seconds <= 0:
            raise ConfigError(f"{where}: timeout_seconds must be positive")
    if len(set(names)) != len(names):
        raise ConfigError("[[mcp_servers]]: server names must be unique")
    endpoint = telemetry.otlp_endpoint
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ConfigError("[telemetry] otlp_endpoint must start with http(s)://")
    for name in ("queue_size", "batch_size"):
        if getattr(telemetry, name) < 1:
            raise ConfigError(f"[telemetry] {name} must be at least 1")
    if telemetry.batch_size > telemetry.queue_size:
        raise ConfigError("[telemetry] batch_size must not exceed queue_size")
    for name in ("export_interval_seconds", "timeout_seconds", "shutdown_timeout_seconds"):
        if getattr(telemetry, name) <= 0:
            raise ConfigError(f"[telemetry] {name} must be positive")

"""Checks of loaded settings that a type alone cannot express (ranges, names that must exist,
combinations); each failure is one `ConfigError` line naming the setting."""

from __future__ import annotations

import datetime as dt

from signalvault.config.agent_sections import validate_agents
from signalvault.config.evidence_sections import (
    CLASSES,
    INCIDENT_SEVERITIES,
    LAWFUL_BASES,
    WEBHOOK_FORMATS,
)
from signalvault.config.sections import (
    ALERT_KINDS,
    PROVIDER_KINDS,
    AccountSettings,
    ProviderSettings,
    Settings,
)
from signalvault.errors import ConfigError


def _validate_resilience(provider: ProviderSettings) -> None:
    where = f"provider {provider.name!r}"
    for name in (
        "timeout_seconds",
        "connect_timeout_seconds",
        "first_byte_timeout_seconds",
        "idle_timeout_seconds",
        "backoff_base_seconds",
        "backoff_max_seconds",
        "breaker_window_seconds",
        "breaker_cooldown_seconds",
    ):
        if getattr(provider, name) <= 0:
            raise ConfigError(f"{where}: {name} must be positive")
    if min(provider.max_response_bytes, provider.max_event_bytes, provider.max_stream_bytes) <= 0:
        raise ConfigError(
            f"{where}: max_response_bytes, max_event_bytes and max_stream_bytes must be positive"
        )
    if provider.max_retries < 0 or provider.retry_budget_seconds < 0:
        raise ConfigError(f"{where}: max_retries and retry_budget_seconds must be >= 0")
    if provider.retry_after_max_seconds < 0:
        raise ConfigError(f"{where}: retry_after_max_seconds must be >= 0")
    if not 0 < provider.breaker_failure_ratio <= 1:
        raise ConfigError(f"{where}: breaker_failure_ratio must be in (0, 1]")
    if provider.breaker_min_requests < 1 or provider.breaker_half_open_probes < 1:
        raise ConfigError(
            f"{where}: breaker_min_requests and breaker_half_open_probes must be at least 1"
        )


def validate(settings: Settings) -> None:
    """Raises ConfigError naming the first setting that is out of range or inconsistent."""
    names = [p.name for p in settings.providers]
    for provider in settings.providers:
        if not provider.name:
            raise ConfigError("[[providers]]: every provider needs a name")
        if provider.kind not in PROVIDER_KINDS:
            raise ConfigError(
                f"provider {provider.name!r}: kind must be one of {', '.join(PROVIDER_KINDS)}"
            )
        if not provider.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"provider {provider.name!r}: base_url must start with http(s)://")
        _validate_resilience(provider)
        _validate_register(provider)
    if len(set(names)) != len(names):
        raise ConfigError("[[providers]]: provider names must be unique")
    for route in settings.routes:
        if not route.model or not route.targets:
            raise ConfigError("[[routes]]: every route needs a model and at least one target")
        for target in route.targets:
            if target.split(":", 1)[0] not in names:
                raise ConfigError(f"route {route.model!r}: unknown provider in target {target!r}")
    validate_agents(settings.mcp_servers, settings.telemetry)
    if settings.store.sqlite_synchronous not in ("full", "normal"):
        raise ConfigError("[store] sqlite_synchronous must be `full` or `normal`")
    if settings.guardrails.stream_holdback_chars < 1:
        raise ConfigError("[guardrails] stream_holdback_chars must be at least 1")
    if settings.guardrails.failure_mode not in ("closed", "open"):
        raise ConfigError("[guardrails] failure_mode must be `closed` or `open`")
    if settings.logging.format not in ("json", "text"):
        raise ConfigError("[logging] format must be `json` or `text`")
    if not 1 <= settings.server.port <= 65535:
        raise ConfigError("[server] port must be between 1 and 65535")
    if settings.server.workers < 1:
        raise ConfigError("[server] workers must be at least 1")
    _validate_limits(settings)
    _validate_accounts(settings.accounts)
    _validate_evidence(settings)
    retention = settings.retention
    if retention.days < 0 or any(days < 0 for days in retention.projects.values()):
        raise ConfigError("[retention] days must be 0 (keep) or more")
    _check_classes("[retention] classes", retention.classes)
    if any(days < 0 for days in retention.classes.values()):
        raise ConfigError("[retention] classes: days must be 0 (no limit) or more")
    if retention.batch_size < 1 or retention.interval_seconds <= 0:
        raise ConfigError("[retention] batch_size and interval_seconds must be positive")
    if settings.store.spool_max_bytes <= 0:
        raise ConfigError("[store] spool_max_bytes must be positive")
    if settings.server.shutdown_grace_seconds < 0:
        raise ConfigError("[server] shutdown_grace_seconds must not be negative")
    alerts = settings.alerts
    url = alerts.webhook_url.reveal() if alerts.webhook_url is not None else ""
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError("[alerts] webhook_url must start with http(s)://")
    unknown_kinds = set(alerts.events) - set(ALERT_KINDS)
    if unknown_kinds:
        raise ConfigError(
            f"[alerts] events: unknown kind(s) {', '.join(sorted(unknown_kinds))}; "
            f"known: {', '.join(ALERT_KINDS)}"
        )
    if alerts.timeout_seconds <= 0 or alerts.retries < 0 or alerts.queue_size < 1:
        raise ConfigError(
            "[alerts] timeout_seconds and queue_size must be positive, retries not negative"
        )
    if settings.server.max_body_bytes <= 0 or settings.store.audit_batch_max <= 0:
        raise ConfigError("[server] max_body_bytes and [store] audit_batch_max must be positive")
    if settings.store.pool_size < 1:
        raise ConfigError("[store] pool_size must be at least 1")
    audit = settings.audit
    if audit.seal_interval_seconds <= 0:
        raise ConfigError("[audit] seal_interval_seconds must be positive")
    longest = max((p.timeout_seconds for p in settings.providers), default=0.0)
    if audit.seal_after_seconds <= longest:
        raise ConfigError(
            "[audit] seal_after_seconds must be longer than the longest provider timeout_seconds"
            f" ({longest:g}): a request still running when its record is sealed loses its outcome"
        )
    if audit.checkpoint_webhook and not audit.checkpoint_webhook.startswith(
        ("http://", "https://")
    ):
        raise ConfigError("[audit] checkpoint_webhook must start with http:// or https://")


def _validate_limits(settings: Settings) -> None:
    limits, server = settings.limits, settings.server
    if limits.failure_mode not in ("closed", "open"):
        raise ConfigError("[limits] failure_mode must be `closed` or `open`")
    if min(limits.user_rpm, limits.user_tpm, limits.output_tokens_estimate) < 0:
        raise ConfigError("[limits] user_rpm, user_tpm and output_tokens_estimate must be >= 0")
    if limits.redis_timeout_seconds <= 0:
        raise ConfigError("[limits] redis_timeout_seconds must be positive")
    if min(server.body_timeout_seconds, server.header_timeout_seconds) <= 0:
        raise ConfigError(
            "[server] body_timeout_seconds and header_timeout_seconds must be positive"
        )
    if (
        server.max_header_bytes < 1024
        or server.keep_alive_seconds < 1
        or server.max_concurrency < 0
    ):
        raise ConfigError(
            "[server] max_header_bytes must be at least 1024, keep_alive_seconds at least 1 and "
            "max_concurrency at least 0"
        )


def _validate_accounts(accounts: AccountSettings) -> None:
    for name in (
        "session_idle_minutes",
        "session_max_hours",
        "login_window_minutes",
        "login_lock_minutes",
        "login_lock_max_minutes",
        "token_default_days",
        "token_max_days",
    ):
        if getattr(accounts, name) <= 0:
            raise ConfigError(f"[accounts] {name} must be positive")
    if accounts.login_max_failures < 1:
        raise ConfigError("[accounts] login_max_failures must be at least 1")
    if accounts.token_default_days > accounts.token_max_days:
        raise ConfigError("[accounts] token_default_days must not exceed token_max_days")
    if accounts.password_min_length < 12:
        raise ConfigError("[accounts] password_min_length must be at least 12")
    if accounts.password_time_cost < 1 or accounts.password_parallelism < 1:
        raise ConfigError(
            "[accounts] password_time_cost and password_parallelism must be at least 1"
        )
    if accounts.password_memory_kib < 19456:
        raise ConfigError("[accounts] password_memory_kib must be at least 19456 (19 MiB)")


ZDR_FIELDS = frozenset({"scope", "granted_to", "evidence", "excluded_endpoints", "granted_on"})


def _check_classes(where: str, names: object) -> None:
    unknown = sorted(set(names) - set(CLASSES))  # type: ignore[call-overload]
    if unknown:
        raise ConfigError(
            f"{where}: unknown class(es) {', '.join(unknown)}; known: {', '.join(CLASSES)}"
        )


def _check_date(where: str, value: str) -> None:
    if value:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{where} must be a date YYYY-MM-DD, not {value!r}") from None


def _validate_register(provider: ProviderSettings) -> None:
    where = f"provider {provider.name!r}"
    _check_classes(f"{where}: allowed_classes", provider.allowed_classes)
    _check_date(f"{where}: dpa_signed", provider.dpa_signed)
    _check_date(f"{where}: dpa_review", provider.dpa_review)
    zdr = provider.zero_data_retention
    if zdr:
        unknown = sorted(set(zdr) - ZDR_FIELDS)
        if unknown:
            raise ConfigError(
                f"{where}: zero_data_retention: unknown field(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(ZDR_FIELDS))}"
            )
        if zdr.get("scope") not in ("organisation", "project"):
            raise ConfigError(
                f'{where}: zero_data_retention needs scope = "organisation" or "project"'
            )
        if not zdr.get("evidence"):
            raise ConfigError(
                f"{where}: zero_data_retention needs `evidence` (the provider's confirmation)"
            )
        _check_date(f"{where}: zero_data_retention granted_on", zdr.get("granted_on", ""))


def _validate_evidence(settings: Settings) -> None:
    classification = settings.classification
    _check_classes("[classification] default", [classification.default])
    _check_classes("[classification] projects", classification.projects.values())
    _check_classes("[classification] keys", classification.keys.values())
    _check_classes("[classification] content_roles", classification.content_roles)
    _check_classes("[classification] alert_classes", classification.alert_classes)
    roles = {"owner", "admin", "security", "auditor", "developer", "viewer"}
    for name, allowed in classification.content_roles.items():
        unknown = sorted(set(allowed) - roles)
        if unknown:
            raise ConfigError(
                f"[classification] content_roles.{name}: unknown role(s) {', '.join(unknown)}"
            )
    privacy = settings.privacy
    bases = [*privacy.lawful_basis.values()]
    if privacy.default_lawful_basis:
        bases.append(privacy.default_lawful_basis)
    unknown = sorted(set(bases) - set(LAWFUL_BASES))
    if unknown:
        raise ConfigError(
            f"[privacy] unknown lawful basis {', '.join(unknown)}; known: {', '.join(LAWFUL_BASES)}"
        )
    incidents = settings.incidents
    wrong = sorted(set(incidents.severities.values()) - set(INCIDENT_SEVERITIES))
    if wrong:
        raise ConfigError(
            f"[incidents] severities: unknown severity {', '.join(wrong)}; "
            f"known: {', '.join(INCIDENT_SEVERITIES)}"
        )
    if incidents.webhook_format not in WEBHOOK_FORMATS:
        raise ConfigError("[incidents] webhook_format must be `generic` or `slack`")
    url = incidents.webhook_url.reveal() if incidents.webhook_url is not None else ""
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError("[incidents] webhook_url must start with http(s)://")
    if incidents.storm_threshold < 1 or incidents.storm_window_seconds <= 0:
        raise ConfigError(
            "[incidents] storm_threshold must be at least 1, storm_window_seconds positive"
        )

"""The settings value types: one frozen dataclass per TOML section, each field with a default
and a help string (docs/configuration.md documents each one; a test keeps the two in step)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from signalvault.config.agent_sections import McpServerSettings, TelemetrySettings
from signalvault.config.evidence_sections import (
    CLASSES,
    ClassificationSettings,
    IncidentSettings,
    PrivacySettings,
)
from signalvault.config.secret import Secret

PROVIDER_KINDS = ("openai", "anthropic", "openai-compatible")
ALERT_KINDS = (
    "secrets_blocked",
    "pii_blocked",
    "prompt_injection",
    "guardrail_bypass",
    "verification_failed",
    "pii_output",
    "classified_data",
    "breaker_storm",
)


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = _setting("127.0.0.1", "Address `serve` listens on.")
    port: int = _setting(8700, "Port `serve` listens on.")
    max_body_bytes: int = _setting(
        10 * 1024 * 1024, "Largest request body accepted; larger bodies get 413."
    )
    workers: int = _setting(1, "Worker processes for `serve` (one per core is the useful maximum).")
    body_timeout_seconds: float = _setting(
        30.0, "Longest wait for a request body to arrive in full; slower bodies get 408."
    )
    header_timeout_seconds: float = _setting(
        10.0,
        "Longest wait for a request's line and headers once a connection has sent its first byte "
        "(slow clients are disconnected).",
    )
    max_header_bytes: int = _setting(
        32 * 1024, "Largest request line plus headers accepted; larger heads get 431."
    )
    keep_alive_seconds: int = _setting(
        5, "How long an idle keep-alive connection stays open between requests."
    )
    max_concurrency: int = _setting(
        0,
        "Most connections and requests one worker serves at once; beyond that it answers 503. "
        "0 means no limit.",
    )
    metrics_token: Secret | None = _setting(
        None, "Bearer token `GET /metrics` requires; unset leaves /metrics open."
    )
    shutdown_grace_seconds: float = _setting(
        30.0,
        "On SIGTERM, how long in-flight requests and streams may run before they are cut.",
    )


@dataclass(frozen=True, slots=True)
class StoreSettings:
    data_dir: Path = _setting(
        Path(".signalvault"), "Data directory: SQLite store and generated master key (mode 0700)."
    )
    database_url: Secret | None = _setting(
        None,
        "PostgreSQL URL of a store shared by replicas (postgresql://user:password@host/dbname); "
        "unset means SQLite in the data directory.",
    )
    sqlite_synchronous: str = _setting(
        "full", "SQLite durability: `full` survives power loss, `normal` survives process crashes."
    )
    sqlite_busy_timeout_ms: int = _setting(
        5000, "How long a SQLite write waits for a lock held elsewhere before failing (then 503)."
    )
    audit_batch_max: int = _setting(
        512, "Most audit writes committed together in one transaction (group commit)."
    )
    pool_size: int = _setting(
        10,
        "PostgreSQL connections kept open per process (as many more may open under load); "
        "the audit writer holds one and the change listener one more of its own.",
    )
    spool_dir: Path | None = _setting(
        None,
        "Directory of the on-disk spool that keeps audit writes while the store cannot commit "
        "them; unset: such requests are refused (503).",
    )
    spool_max_bytes: int = _setting(
        256 * 1024 * 1024, "Most bytes the spool holds; when full, requests are refused (503)."
    )


@dataclass(frozen=True, slots=True)
class CryptoSettings:
    master_key: Secret | None = _setting(
        None, "Master key: 32 bytes as 64 hex digits or base64. Overrides the key file."
    )
    master_key_file: Path | None = _setting(
        None,
        "File holding the master key; unset means `<data_dir>/master.key`, generated on first "
        "start with mode 0600.",
    )
    previous_master_key: Secret | None = _setting(
        None,
        "The master key before a rotation, while keys wrapped by it remain (only needed when "
        "the key comes from the environment); remove it after `master-key rotate --finish`.",
    )


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = _setting(
        "info", "Log level of the gateway's own logs: debug, info, warning, error."
    )
    format: str = _setting("json", "Log line format: `json` (one object per line) or `text`.")


@dataclass(frozen=True, slots=True)
class GuardrailSettings:
    failure_mode: str = _setting(
        "closed",
        "If the guardrail engine itself fails: `closed` refuses the request, `open` lets it pass "
        "and records the bypass.",
    )
    stream_holdback_chars: int = _setting(
        256,
        "Characters of streamed text held back while output rules that block or redact apply, "
        "so a finding split across chunks is caught before any part of it leaves.",
    )
    rules: tuple[dict[str, Any], ...] = _setting(
        (), "Policy rules ([[guardrails.rules]] tables); none means the default policy."
    )
    scan_cache_entries: int = _setting(
        4096,
        "Texts (of 128+ characters) whose findings are remembered per detector, so a system "
        "prompt or conversation history sent again is not scanned again; 0 turns it off. "
        "Keys are keyed hashes; no text is kept.",
    )
    two_person_review: bool = _setting(
        True,
        "Policy changes take effect only after a second account approves them; off, a "
        "proposed policy is active at once (still recorded).",
    )


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    redis_url: Secret | None = _setting(
        None,
        "Redis URL (redis://...) that makes rate limits shared by every replica; unset keeps "
        "them in each process's memory.",
    )
    redis_prefix: str = _setting("signalvault:", "Prefix of every Redis key the limiter writes.")
    redis_timeout_seconds: float = _setting(
        0.5, "Longest wait for Redis to connect or answer before it counts as unreachable."
    )
    failure_mode: str = _setting(
        "closed",
        "If Redis is unreachable: `closed` refuses requests with 503, `open` lets them pass "
        "unlimited and records the bypass on each audit record.",
    )
    user_rpm: int = _setting(0, "Requests per minute per end user (within a project); 0 = none.")
    user_tpm: int = _setting(0, "Tokens per minute per end user (within a project); 0 = none.")
    output_tokens_estimate: int = _setting(
        256,
        "Output tokens reserved for a request that sets no `max_tokens`/`max_output_tokens`; the "
        "reservation is corrected to the actual usage when the response ends.",
    )


@dataclass(frozen=True, slots=True)
class AuditSettings:
    seal_interval_seconds: float = _setting(
        10.0, "How often `serve` seals new audit records under a signed checkpoint."
    )
    seal_after_seconds: float = _setting(
        3600.0,
        "A record still `unknown` (in flight) is sealed as it is once this old, so requests "
        "lost in a crash are sealed too; longer than the longest request, after which its "
        "completion is dropped.",
    )
    checkpoint_file: Path | None = _setting(
        None, "File each signed checkpoint is appended to as a JSON line (keep it elsewhere)."
    )
    checkpoint_webhook: str = _setting(
        "", "URL each signed checkpoint is POSTed to as JSON (in the background, retried)."
    )


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    days: int = _setting(
        0, "Days audit records are kept (global default); 0 keeps them until deleted by hand."
    )
    projects: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata={
            "help": "Days per project (`{name = days}`), overriding `days`; 0 keeps that "
            "project's records."
        },
    )
    interval_seconds: float = _setting(
        3600.0, "How often `serve` applies retention (one process at a time holds the lease)."
    )
    batch_size: int = _setting(
        500, "Records tombstoned per transaction, so audit writes are never blocked for long."
    )
    batch_pause_ms: float = _setting(
        50.0, "Pause between batches, leaving the database to the gateway's own writes."
    )
    classes: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata={
            "help": "Most days records of a class are kept (`{restricted = 30}`), whatever their "
            "project's days; 0 or unnamed: no limit by class."
        },
    )
    archive_dir: Path | None = _setting(
        None,
        "Directory where expired records are appended (JSON Lines, content still encrypted) "
        "before they are tombstoned; unset archives nothing.",
    )


@dataclass(frozen=True, slots=True)
class AlertSettings:
    webhook_url: Secret | None = _setting(
        None,
        "URL that receives a JSON POST for each alert (blocked secrets, bypasses, ...); a secret, "
        "since chat webhooks carry their token in the URL.",
    )
    events: tuple[str, ...] = _setting(
        ALERT_KINDS, "Alert kinds that are sent; others are ignored."
    )
    signing_secret: Secret | None = _setting(
        None,
        "Key that signs each POST (`x-signalvault-signature`: HMAC-SHA256 of timestamp and body) "
        "so the receiver can check it came from this gateway; unset: unsigned.",
    )
    timeout_seconds: float = _setting(5.0, "Time allowed for one webhook POST.")
    retries: int = _setting(3, "Further attempts after a failed POST (backoff 0.5 s, doubling).")
    queue_size: int = _setting(
        1000, "Alerts waiting for delivery at most; more are dropped (counted in /metrics)."
    )


@dataclass(frozen=True, slots=True)
class AccountSettings:
    session_idle_minutes: float = _setting(
        30.0, "A dashboard session unused for this long ends (idle expiry)."
    )
    session_max_hours: float = _setting(
        12.0, "A dashboard session ends this long after login, however active (absolute expiry)."
    )
    login_max_failures: int = _setting(
        5,
        "Failed logins for one email, or from one address, within `login_window_minutes` that "
        "lock further attempts.",
    )
    login_window_minutes: float = _setting(15.0, "Window in which failed logins are counted.")
    login_lock_minutes: float = _setting(
        15.0, "First lock after too many failures; each further lock doubles it."
    )
    login_lock_max_minutes: float = _setting(1440.0, "Longest lock, however many came before.")
    token_default_days: float = _setting(
        90.0, "Lifetime of a personal API token created without an expiry."
    )
    token_max_days: float = _setting(365.0, "Longest lifetime a personal API token may have.")
    password_min_length: int = _setting(12, "Shortest password accepted (at least 12).")
    password_time_cost: int = _setting(3, "Argon2id passes over memory (password hashing).")
    password_memory_kib: int = _setting(
        65536, "Argon2id memory per hash in KiB (at least 19456, the OWASP minimum)."
    )
    password_parallelism: int = _setting(4, "Argon2id lanes per hash.")


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: str = _setting("", "Name routes refer to.")
    kind: str = _setting("openai", "Wire protocol: openai, anthropic or openai-compatible.")
    base_url: str = _setting("", "Provider API root, e.g. https://api.openai.com/v1.")
    api_key_env: str = _setting("", "Environment variable holding the provider key.")
    api_key_file: Path | None = _setting(None, "File holding the provider key.")
    api_key: Secret | None = _setting(
        None, "The provider key itself (prefer api_key_env or api_key_file: config files leak)."
    )
    models: tuple[str, ...] = _setting(("*",), "Requested models this provider serves (globs).")
    timeout_seconds: float = _setting(
        600.0, "Total time allowed for one provider call, stream included (per attempt)."
    )
    connect_timeout_seconds: float = _setting(
        10.0, "Time allowed to open a connection to the provider."
    )
    first_byte_timeout_seconds: float = _setting(
        300.0,
        "Time allowed between sending the request and the response head (a non-streamed answer "
        "arrives whole, so this bounds generation time).",
    )
    idle_timeout_seconds: float = _setting(
        120.0, "Longest silence allowed between chunks of a response body or stream."
    )
    max_response_bytes: int = _setting(
        32 << 20,
        "Largest non-streamed answer read from this provider; a larger one is a 502, never "
        "buffered whole.",
    )
    max_event_bytes: int = _setting(
        8 << 20, "Largest single event of a stream from this provider; a larger one cuts it."
    )
    max_stream_bytes: int = _setting(
        64 << 20,
        "Largest streamed answer read from this provider in all; past it the stream is cut "
        "(the gateway holds what it relays for the record).",
    )
    max_retries: int = _setting(
        2, "Retries of this provider per request on 408/409/429/5xx, connection errors, timeouts."
    )
    retry_budget_seconds: float = _setting(
        30.0, "No retry of this provider starts later than this after its first attempt."
    )
    backoff_base_seconds: float = _setting(
        0.25, "Backoff before retry n is random in [0, base * 2^n] (full jitter)."
    )
    backoff_max_seconds: float = _setting(8.0, "Upper bound of one backoff wait.")
    retry_after_max_seconds: float = _setting(
        10.0, "A `Retry-After` longer than this is not waited for: the next target is tried."
    )
    breaker_failure_ratio: float = _setting(
        0.5, "Failure ratio over the window at which the circuit breaker opens."
    )
    breaker_min_requests: int = _setting(
        50, "Calls needed in the window before the failure ratio can open the breaker."
    )
    breaker_window_seconds: float = _setting(
        60.0, "Rolling window over which the breaker counts calls and failures."
    )
    breaker_cooldown_seconds: float = _setting(
        30.0, "How long an open breaker sheds calls before letting probes through."
    )
    breaker_half_open_probes: int = _setting(
        1, "Calls let through at once after the cooldown; a success closes, a failure reopens."
    )
    # The provider register (SPEC §7c): what an auditor asks about each processor.
    dpa: bool = _setting(False, "A data processing agreement with this provider is on file.")
    dpa_reference: str = _setting("", "Where the DPA is kept (contract number, document link).")
    dpa_signed: str = _setting("", "Date the DPA was signed (YYYY-MM-DD).")
    dpa_review: str = _setting("", "Date the DPA is next due for review (YYYY-MM-DD).")
    region: str = _setting("", "Where the provider processes the data (e.g. `eu-west-1`, `US`).")
    processor: str = _setting(
        "",
        "The legal processor, when not the provider itself: for a model hosted by a cloud "
        "(Azure OpenAI, Bedrock, Vertex) the cloud is the processor.",
    )
    sub_processors: tuple[str, ...] = _setting(
        (), "The processor's sub-processors that may see the data."
    )
    retention_terms: str = _setting(
        "", "What the provider keeps and for how long (e.g. `30 days for abuse monitoring`)."
    )
    zero_data_retention: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata={
            "help": 'Zero data retention as granted, not a flag: `{scope = "organisation" | '
            '"project", granted_to = "org-...", evidence = "ticket or letter", '
            'excluded_endpoints = "/v1/files, /v1/batches"}`; empty: none.'
        },
    )
    allowed_classes: tuple[str, ...] = _setting(
        CLASSES, "Classes this provider may receive; a request of another class skips it."
    )


@dataclass(frozen=True, slots=True)
class RouteSettings:
    model: str = _setting("", "Requested model name (glob) this route applies to.")
    targets: tuple[str, ...] = _setting(
        (), "Ordered targets: provider name, optionally `:model` to change the model."
    )


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    crypto: CryptoSettings = field(default_factory=CryptoSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    guardrails: GuardrailSettings = field(default_factory=GuardrailSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    accounts: AccountSettings = field(default_factory=AccountSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    classification: ClassificationSettings = field(default_factory=ClassificationSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    incidents: IncidentSettings = field(default_factory=IncidentSettings)
    providers: tuple[ProviderSettings, ...] = ()
    routes: tuple[RouteSettings, ...] = ()
    mcp_servers: tuple[McpServerSettings, ...] = ()
    # Where `load_settings` found each value it did not default: dotted name ("limits.user_rpm",
    # "providers.0.api_key") -> "file" or "env". Empty for Settings built in code.
    sources: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )


SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "store": StoreSettings,
    "crypto": CryptoSettings,
    "logging": LoggingSettings,
    "guardrails": GuardrailSettings,
    "limits": LimitsSettings,
    "audit": AuditSettings,
    "retention": RetentionSettings,
    "alerts": AlertSettings,
    "accounts": AccountSettings,
    "telemetry": TelemetrySettings,
    "classification": ClassificationSettings,
    "privacy": PrivacySettings,
    "incidents": IncidentSettings,
}
LISTS: dict[str, type[Any]] = {
    "providers": ProviderSettings,
    "routes": RouteSettings,
    "mcp_servers": McpServerSettings,
}

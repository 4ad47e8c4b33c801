"""Settings as frozen dataclasses, loaded from a TOML file and `SIGNALVAULT_*` variables.

This is the only module that reads TOML or `os.environ`. Every field carries a help string;
docs/configuration.md documents each one and a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args, get_origin, get_type_hints

from signalvault.errors import ConfigError

DEFAULT_CONFIG_FILE = "signalvault.toml"
SOURCE_FILE, SOURCE_ENV = "file", "env"  # where `load_settings` found a value (Settings.sources)
PROVIDER_KINDS = ("openai", "anthropic", "openai-compatible")
ALERT_KINDS = (
    "secrets_blocked",
    "pii_blocked",
    "prompt_injection",
    "guardrail_bypass",
    "verification_failed",
)


class Secret:
    """A secret string whose repr and str are masked; call `reveal()` where it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


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
    providers: tuple[ProviderSettings, ...] = ()
    routes: tuple[RouteSettings, ...] = ()
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
}
LISTS: dict[str, type[Any]] = {"providers": ProviderSettings, "routes": RouteSettings}

# Short names promised by the specification, equal to the long SIGNALVAULT_<SECTION>_<NAME> ones.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "SIGNALVAULT_DATA_DIR": ("store", "data_dir"),
    "SIGNALVAULT_DATABASE_URL": ("store", "database_url"),
    "SIGNALVAULT_MASTER_KEY": ("crypto", "master_key"),
    "SIGNALVAULT_REDIS_URL": ("limits", "redis_url"),
}


def env_name(section: str, name: str) -> str:
    return f"SIGNALVAULT_{section}_{name}".upper()


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Read `config_file` (else `signalvault.toml` in `cwd`, else defaults), then the environment.

    Raises:
        ConfigError: the file is missing or invalid, or a value has the wrong type.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    path = config_file
    if path is None and environ.get("SIGNALVAULT_CONFIG"):
        path = Path(environ["SIGNALVAULT_CONFIG"])
    if path is None:
        candidate = (cwd or Path.cwd()) / DEFAULT_CONFIG_FILE
        path = candidate if candidate.is_file() else None
    if path is not None:
        raw = _read_toml(path)

    unknown = set(raw) - set(SECTIONS) - set(LISTS)
    if unknown:
        raise ConfigError(f"{path}: unknown section(s): {', '.join(sorted(unknown))}")

    sections: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        values = dict(table)
        sources.update({f"{section}.{name}": SOURCE_FILE for name in table})
        for f in dataclasses.fields(cls):
            for var in [env_name(section, f.name)] + [
                alias for alias, target in ENV_ALIASES.items() if target == (section, f.name)
            ]:
                if var in environ:
                    values[f.name] = environ[var]
                    sources[f"{section}.{f.name}"] = SOURCE_ENV
        sections[section] = _build(cls, values, f"[{section}]")

    lists: dict[str, Any] = {}
    for name, cls in LISTS.items():
        items = raw.get(name, [])
        if not isinstance(items, list):
            raise ConfigError(f"{path}: {name} must be an array of tables ([[{name}]])")
        lists[name] = tuple(
            _build(cls, item, f"[[{name}]] #{i + 1}") for i, item in enumerate(items)
        )
        for i, item in enumerate(items):
            sources.update({f"{name}.{i}.{key}": SOURCE_FILE for key in item})
    providers = tuple(_with_env_key(p, environ) for p in lists["providers"])
    for i, (before, after) in enumerate(zip(lists["providers"], providers, strict=True)):
        if after.api_key is not before.api_key:
            sources[f"providers.{i}.api_key"] = SOURCE_ENV
    lists["providers"] = providers
    settings = Settings(**sections, **lists, sources=MappingProxyType(sources))
    _validate(settings)
    return settings


def _with_env_key(provider: ProviderSettings, environ: Mapping[str, str]) -> ProviderSettings:
    """Fill `api_key` from `api_key_env` when that variable is set (checked again at serve)."""
    if provider.api_key is None and provider.api_key_env and environ.get(provider.api_key_env):
        return dataclasses.replace(provider, api_key=Secret(environ[provider.api_key_env]))
    return provider


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: the file is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _build(cls: type[Any], values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a table")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s): {', '.join(sorted(unknown))}")
    kwargs = {
        name: _convert(hints[name], value, f"{where} {name}") for name, value in values.items()
    }
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str) -> Any:
    args = get_args(hint)
    if type(None) in args:
        if value is None or value == "":
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is Secret:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string")
        return Secret(value)
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a path string")
        return Path(value).expanduser()
    if get_origin(hint) is Mapping:
        if isinstance(value, str):  # from the environment: a JSON object
            try:
                value = json.loads(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a JSON object") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        item = get_args(hint)[1]
        return MappingProxyType(
            {str(k): _convert(item, v, f"{where}.{k}") for k, v in value.items()}
        )
    if get_origin(hint) is tuple and get_origin(get_args(hint)[0]) is dict:
        if isinstance(value, str):  # from the environment: a JSON array of objects
            try:
                value = json.loads(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a JSON array of objects") from None
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{where}: expected an array of tables")
        return tuple(value)
    if get_origin(hint) is tuple:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings")
        return tuple(value)
    if hint is bool:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false")
    if hint in (int, float):
        # bool is an int subclass, and int(8700.9) would silently truncate a TOML float.
        if isinstance(value, bool) or (hint is int and isinstance(value, float)):
            _fail(where, hint)
        try:
            return hint(value)
        except (TypeError, ValueError):
            _fail(where, hint)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string")
        return value
    raise ConfigError(f"{where}: unsupported setting type {hint}")  # pragma: no cover


def _fail(where: str, hint: Any) -> Any:
    raise ConfigError(f"{where}: expected {'an integer' if hint is int else 'a number'}")


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


def _validate(settings: Settings) -> None:
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
    if len(set(names)) != len(names):
        raise ConfigError("[[providers]]: provider names must be unique")
    for route in settings.routes:
        if not route.model or not route.targets:
            raise ConfigError("[[routes]]: every route needs a model and at least one target")
        for target in route.targets:
            if target.split(":", 1)[0] not in names:
                raise ConfigError(f"route {route.model!r}: unknown provider in target {target!r}")
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
    retention = settings.retention
    if retention.days < 0 or any(days < 0 for days in retention.projects.values()):
        raise ConfigError("[retention] days must be 0 (keep) or more")
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


def config_path(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path:
    """The config file `load_settings` reads, or would read once created (`init` writes it)."""
    environ = os.environ if environ is None else environ
    if config_file is not None:
        return config_file
    if environ.get("SIGNALVAULT_CONFIG"):
        return Path(environ["SIGNALVAULT_CONFIG"])
    return (cwd or Path.cwd()) / DEFAULT_CONFIG_FILE

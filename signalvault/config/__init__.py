"""Settings: value types per section (sections.py), `Secret` (secret.py), and the one loader of
TOML and `SIGNALVAULT_*` variables (loader.py). Imports only errors."""

from signalvault.config.agent_sections import McpServerSettings, TelemetrySettings
from signalvault.config.loader import (
    DEFAULT_CONFIG_FILE,
    ENV_ALIASES,
    SOURCE_ENV,
    SOURCE_FILE,
    config_path,
    env_name,
    load_settings,
)
from signalvault.config.secret import Secret
from signalvault.config.sections import (
    ALERT_KINDS,
    LISTS,
    PROVIDER_KINDS,
    SECTIONS,
    AccountSettings,
    AlertSettings,
    AuditSettings,
    CryptoSettings,
    GuardrailSettings,
    LimitsSettings,
    LoggingSettings,
    ProviderSettings,
    RetentionSettings,
    RouteSettings,
    ServerSettings,
    Settings,
    StoreSettings,
)

__all__ = [
    "ALERT_KINDS",
    "DEFAULT_CONFIG_FILE",
    "ENV_ALIASES",
    "LISTS",
    "PROVIDER_KINDS",
    "SECTIONS",
    "SOURCE_ENV",
    "SOURCE_FILE",
    "AccountSettings",
    "AlertSettings",
    "AuditSettings",
    "CryptoSettings",
    "GuardrailSettings",
    "LimitsSettings",
    "LoggingSettings",
    "McpServerSettings",
    "ProviderSettings",
    "RetentionSettings",
    "RouteSettings",
    "Secret",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "TelemetrySettings",
    "config_path",
    "env_name",
    "load_settings",
]

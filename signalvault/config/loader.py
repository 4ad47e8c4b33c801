"""`load_settings`: the one reader of the TOML file and of `SIGNALVAULT_*` variables; values
are converted to the section types and then checked (validation.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args, get_origin, get_type_hints

from signalvault.config.secret import Secret
from signalvault.config.sections import LISTS, SECTIONS, ProviderSettings, Settings
from signalvault.config.validation import validate
from signalvault.errors import ConfigError

DEFAULT_CONFIG_FILE = "signalvault.toml"
SOURCE_FILE, SOURCE_ENV = "file", "env"  # where `load_settings` found a value (Settings.sources)

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
    validate(settings)
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


# Settings that moved elsewhere: the error names where.
_MOVED = {
    name: " (which tools a key or project may use is the guardrail policy's `tool_allowlist`, "
    "scoped `key:<id>` or `project:<name>`; see docs/guardrails.md)"
    for name in ("key_tools", "project_tools")
}


def _build(cls: type[Any], values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a table")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        hint = next((_MOVED[name] for name in sorted(unknown) if name in _MOVED), "")
        raise ConfigError(f"{where}: unknown setting(s): {', '.join(sorted(unknown))}{hint}")
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

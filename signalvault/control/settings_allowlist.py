"""Which settings may change while gateways run, and how their values are checked.

`RUNTIME` is the allow-list: only settings every gateway process reads per use (not once at
start) are on it, each with its type, range and when a change takes effect. Everything else is
refused with the reason (`check_changes`). Imports only config and errors.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from signalvault.config import ALERT_KINDS, SECTIONS, Settings
from signalvault.errors import BadRequest
from signalvault.trail.retention import DEFAULT_DAYS_SETTING

YEAR_MINUTES = 366 * 24 * 60
# Config-file settings refused at run time on purpose, with the reason the refusal gives.
CONFIG_ONLY = {
    "guardrails.two_person_review": "so that no single account can switch off two-person review",
    "guardrails.failure_mode": "so that no single account can let traffic pass unscreened",
    "limits.failure_mode": "so that no single account can lift rate limits by failing open",
}


@dataclass(frozen=True, slots=True)
class RuntimeSetting:
    """One setting on the allow-list: its value type and range, and when a change applies."""

    name: str  # "<section>.<field>"
    kind: str  # "integer", "number" or "alert_kinds"
    low: float = 0
    high: float = 0
    is_low_open: bool = False  # the value must be greater than `low`, not equal to it
    effect: str = ""

    def check(self, value: Any) -> Any:
        """The value as stored and applied. Raises ValueError saying what is wrong."""
        if self.kind == "alert_kinds":
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError("expected a list of alert kinds")
            unknown = sorted(set(value) - set(ALERT_KINDS))
            if unknown:
                raise ValueError(f"unknown kind(s) {', '.join(unknown)}; known: {ALERT_KINDS}")
            return tuple(dict.fromkeys(value))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected {'an integer' if self.kind == 'integer' else 'a number'}")
        if self.kind == "integer" and not isinstance(value, int):
            raise ValueError("expected an integer")
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        below = value <= self.low if self.is_low_open else value < self.low
        if below or value > self.high:
            low = f"greater than {self.low:g}" if self.is_low_open else f"at least {self.low:g}"
            raise ValueError(f"must be {low} and at most {self.high:g}")
        return value if self.kind == "integer" else float(value)

    def parse(self, text: str) -> Any:
        """A value typed on the command line (`5`, `0.5`, `secrets_blocked,pii_blocked`)."""
        text = text.strip()
        if self.kind == "alert_kinds":
            if text.startswith("["):
                return self.check(_json(text))
            return self.check([part.strip() for part in text.split(",") if part.strip()])
        try:
            number = int(text) if self.kind == "integer" else float(text)
        except ValueError:
            raise ValueError(
                f"expected {'an integer' if self.kind == 'integer' else 'a number'}"
            ) from None
        return self.check(number)


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("expected a JSON list") from None


RUNTIME: dict[str, RuntimeSetting] = {
    s.name: s
    for s in (
        RuntimeSetting(
            "limits.user_rpm", "integer", 0, 10**9, effect="the next request (every replica)"
        ),
        RuntimeSetting(
            "limits.user_tpm", "integer", 0, 10**12, effect="the next request (every replica)"
        ),
        RuntimeSetting(
            "accounts.session_idle_minutes",
            "number",
            0,
            YEAR_MINUTES,
            is_low_open=True,
            effect="the next admin request, existing sessions included",
        ),
        RuntimeSetting(
            "accounts.session_max_hours",
            "number",
            0,
            366 * 24,
            is_low_open=True,
            effect="the next admin request: a shorter limit ends existing sessions too, a longer "
            "one applies to sessions started afterwards",
        ),
        RuntimeSetting(
            "accounts.login_max_failures", "integer", 1, 10_000, effect="the next failed login"
        ),
        RuntimeSetting(
            "accounts.login_window_minutes",
            "number",
            0,
            YEAR_MINUTES,
            is_low_open=True,
            effect="the next failed login",
        ),
        RuntimeSetting(
            "accounts.login_lock_minutes",
            "number",
            0,
            YEAR_MINUTES,
            is_low_open=True,
            effect="the next lock",
        ),
        RuntimeSetting(
            "accounts.login_lock_max_minutes",
            "number",
            0,
            YEAR_MINUTES,
            is_low_open=True,
            effect="the next lock",
        ),
        RuntimeSetting(
            "alerts.events",
            "alert_kinds",
            effect="the next alert (only with [alerts] webhook_url set)",
        ),
        RuntimeSetting(
            DEFAULT_DAYS_SETTING,
            "integer",
            0,
            36_500,
            effect="the next retention run (same value as PUT /api/retention default_days)",
        ),
    )
}


def config_value(settings: Settings, name: str) -> Any:
    section, field = name.split(".", 1)
    return getattr(getattr(settings, section), field)


def to_json(value: Any) -> Any:
    """Tuples and mappings of a settings value as JSON lists and objects."""
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def check_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Every change validated (None: remove the override), before any is applied.

    Raises:
        BadRequest: no change; a name that is unknown or not changeable at run time; a value of
            the wrong type or out of range. The message names each offending setting.
    """
    if not changes:
        raise BadRequest("no settings to change", code="invalid_setting")
    refused = sorted(name for name in changes if name not in RUNTIME)
    if refused:
        more = f" (and {len(refused) - 10} more)" if len(refused) > 10 else ""
        raise BadRequest(
            "; ".join(_refusal(name) for name in refused[:10])
            + f"{more}. Settings changeable at run time: {', '.join(RUNTIME)}",
            code="not_runtime_setting",
            param=_shown(refused[0]),
        )
    checked: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in changes.items():
        try:
            checked[name] = None if value is None else RUNTIME[name].check(value)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise BadRequest("; ".join(problems), code="invalid_setting")
    return checked


def _refusal(name: str) -> str:
    section, _, field = name.partition(".")
    if name in CONFIG_ONLY:
        return f"{name} can only be set in the config file ({CONFIG_ONLY[name]})"
    cls = SECTIONS.get(section)
    if cls is not None and field in {f.name for f in dataclasses.fields(cls)}:
        return f"{name} is read at start only: change it in the config file and restart"
    return f"unknown setting {_shown(name)!r}"


def _shown(name: str) -> str:
    """An unknown name as quoted back: bounded, whatever the caller sent."""
    return name if len(name) <= 80 else name[:77] + "..."

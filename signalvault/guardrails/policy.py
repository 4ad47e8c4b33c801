"""Guardrail policies: versioned lists of rules (detector, direction, scope, action, options).

Rules come from the config file or the store; when none are written the default policy of the
specification applies. Parsing is strict: a typo in a rule is an error, never a silent no-op.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from signalvault.errors import ConfigError

ACTIONS = ("block", "redact", "log", "spotlight")
DIRECTIONS = ("input", "output")
# Agent rules (SPEC §7b) judge what passes between a model and its tools: `tool_call` the calls a
# model asks for (and the tools a request offers), `tool_result` the results sent back, `run`
# whole agent runs. Rules of these directions never run in the plain input/output scans.
TOOL_CALL, TOOL_RESULT, RUN = "tool_call", "tool_result", "run"
AGENT_DIRECTIONS = (TOOL_CALL, TOOL_RESULT, RUN)
DETECTORS = (
    "pii",
    "secrets",
    "token_limit",
    "model_allowlist",
    "prompt_injection",
    "indirect_injection",
    "custom",
    "tool_allowlist",
    "tool_arguments",
    "run_limit",
)
# Detectors that judge tools and runs, not text; each belongs to exactly one direction.
AGENT_DETECTORS = {"tool_allowlist": TOOL_CALL, "tool_arguments": TOOL_CALL, "run_limit": RUN}
# Options each detector accepts; anything else is a mistake worth reporting.
OPTIONS: dict[str, frozenset[str]] = {
    "pii": frozenset({"types", "threshold", "allow", "restore"}),
    "secrets": frozenset({"types", "threshold", "allow", "restore"}),
    "prompt_injection": frozenset({"threshold"}),
    "indirect_injection": frozenset({"threshold"}),
    "tool_allowlist": frozenset({"tools"}),
    "tool_arguments": frozenset({"tools", "patterns", "keywords", "allowed_hosts"}),
    "run_limit": frozenset({"max_model_calls", "max_tool_calls"}),
    "custom": frozenset({"patterns", "keywords", "ignore_case", "restore"}),
    "token_limit": frozenset({"max_input_tokens", "max_output_tokens"}),
    "model_allowlist": frozenset({"models", "environments"}),
}


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    detector: str
    action: str
    directions: tuple[str, ...] = DIRECTIONS
    scope: str = "global"  # global | project:<name> | key:<key id>
    options: Mapping[str, Any] = field(default_factory=dict)

    def applies(self, direction: str, project: str | None, key_id: str | None) -> bool:
        if direction not in self.directions:
            return False
        if self.scope == "global":
            return True
        kind, _, value = self.scope.partition(":")
        return (kind == "project" and value == project) or (kind == "key" and value == key_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "detector": self.detector,
            "action": self.action,
            "direction": "both" if len(self.directions) == 2 else self.directions[0],
            "scope": self.scope,
            "options": dict(self.options),
        }


@dataclass(frozen=True, slots=True)
class Policy:
    version: int
    rules: tuple[Rule, ...]

    def digest(self) -> str:
        return rules_digest(self.rules)


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("secrets", "secrets", "block"),
    Rule("pii-input", "pii", "redact", ("input",)),
    Rule("pii-output", "pii", "log", ("output",)),
    Rule("prompt-injection", "prompt_injection", "log", ("input",)),
    Rule("token-limit", "token_limit", "block", ("input",)),
)


def rules_digest(rules: Sequence[Rule]) -> str:
    canonical = orjson.dumps([r.as_dict() for r in rules], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def parse_rules(raw: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """Validate rule tables from the config file or the admin API.

    Raises:
        ConfigError: naming the rule and what is wrong with it.
    """
    rules: list[Rule] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        where = f"guardrail rule #{index + 1}"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: must be a table")
        unknown = set(item) - {"name", "detector", "action", "direction", "scope", "options"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s): {', '.join(sorted(unknown))}")
        detector = item.get("detector")
        if detector not in DETECTORS:
            raise ConfigError(f"{where}: detector must be one of {', '.join(DETECTORS)}")
        name = str(item.get("name") or detector)
        where = f"guardrail rule {name!r}"
        if name in names:
            raise ConfigError(f"{where}: rule names must be unique")
        names.add(name)
        action = item.get("action")
        if action not in ACTIONS:
            raise ConfigError(f"{where}: action must be one of {', '.join(ACTIONS)}")
        own = AGENT_DETECTORS.get(detector)
        direction = item.get("direction", own or "both")
        if direction not in ("input", "output", "both", *AGENT_DIRECTIONS):
            raise ConfigError(
                f"{where}: direction must be input, output, both, tool_call, tool_result or run"
            )
        if own is not None and direction != own:
            raise ConfigError(f"{where}: {detector} rules have direction {own}")
        if own is None and direction in (TOOL_CALL, RUN):
            raise ConfigError(
                f"{where}: direction {direction} takes tool_allowlist, tool_arguments or "
                "run_limit rules"
            )
        directions = DIRECTIONS if direction == "both" else (direction,)
        scope = str(item.get("scope", "global"))
        if scope != "global" and scope.partition(":")[0] not in ("project", "key"):
            raise ConfigError(f"{where}: scope must be global, project:<name> or key:<id>")
        options = item.get("options", {})
        if not isinstance(options, Mapping):
            raise ConfigError(f"{where}: options must be a table")
        # `spotlight` takes how to mark: delimit (default) or datamark (agents/spotlight.py).
        allowed = OPTIONS[detector] | ({"mode"} if action == "spotlight" else set())
        bad = set(options) - allowed
        if bad:
            raise ConfigError(
                f"{where}: unknown option(s) for {detector}: {', '.join(sorted(bad))}"
            )
        if action == "redact" and (
            detector in ("token_limit", "model_allowlist", "prompt_injection", "indirect_injection")
            or direction in AGENT_DIRECTIONS
        ):
            raise ConfigError(f"{where}: {detector} findings cannot be redacted; use block or log")
        if action == "spotlight" and direction != TOOL_RESULT:
            raise ConfigError(f"{where}: spotlight marks tool results; use direction tool_result")
        if options.get("mode", "delimit") not in ("delimit", "datamark"):
            raise ConfigError(f"{where}: mode must be delimit or datamark")
        _check_agent_options(where, detector, options)
        rules.append(Rule(name, detector, action, directions, scope, dict(options)))
    return tuple(rules)


def _check_agent_options(where: str, detector: str, options: Mapping[str, Any]) -> None:
    """Agent rules' options have shapes a typo would silently break: check them here."""
    for name in ("tools", "patterns", "keywords", "allowed_hosts"):
        value = options.get(name)
        if value is not None and (
            isinstance(value, str) or not all(isinstance(v, str) for v in value)
        ):
            raise ConfigError(f"{where}: {name} must be a list of strings")
    if detector == "tool_allowlist" and "tools" not in options:
        raise ConfigError(f"{where}: tool_allowlist needs `tools` (names or globs)")
    if detector == "tool_arguments" and not any(
        options.get(n) for n in ("patterns", "keywords", "allowed_hosts")
    ):
        raise ConfigError(f"{where}: tool_arguments needs patterns, keywords or allowed_hosts")
    if detector == "tool_arguments":
        from signalvault.guardrails.custom import compile_pattern  # RE2, as custom rules

        for number, regex in enumerate(options.get("patterns", ())):
            try:
                compile_pattern(regex, True, f"{where}: pattern #{number + 1}")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    if detector == "run_limit":
        limits = [options.get(n) for n in ("max_model_calls", "max_tool_calls")]
        if not any(v is not None for v in limits) or any(
            v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1)
            for v in limits
        ):
            raise ConfigError(
                f"{where}: run_limit needs max_model_calls and/or max_tool_calls, integers >= 1"
            )

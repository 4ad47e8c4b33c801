"""Tool policies (SPEC §7b, docs/guardrails.md): the agent rules of a guardrail policy, compiled.

`tool_allowlist` (which tools a key or project may offer and call), `tool_arguments` (block or log
calls whose arguments match patterns, keywords, or name a URL outside allowed hosts), `run_limit`
(model and tool calls per run); text rules of direction `tool_result` run through the engine.
Judgements are `Evaluation`s like every other rule's; never a matched value.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from signalvault.guardrails.custom import compile_pattern
from signalvault.guardrails.engine import Context, Engine, Evaluation, Redactor, Verdict
from signalvault.guardrails.policy import RUN, TOOL_CALL, TOOL_RESULT, Rule

NOT_ALLOWED = "TOOL_NOT_ALLOWED"
ARGUMENT_MATCH = "ARGUMENT_MATCH"
HOST_NOT_ALLOWED = "URL_HOST_NOT_ALLOWED"
_URL = re.compile(r"\b(?:https?|ftp|wss?)://[^\s\"'<>\\`]+", re.IGNORECASE)
_OUTCOME = {"block": "blocked", "log": "logged", "spotlight": "spotlighted"}


def _matches(name: str | None, globs: Iterable[str]) -> bool:
    return name is not None and any(fnmatch.fnmatchcase(name, g) for g in globs)


@dataclass(frozen=True, slots=True)
class _ArgumentRule:
    rule: Rule
    tools: tuple[str, ...]
    patterns: tuple[Any, ...]  # RE2: linear time on whatever a model writes
    keywords: tuple[str, ...]
    hosts: tuple[str, ...]

    def kinds(self, arguments: str) -> dict[str, int]:
        found: dict[str, int] = {}
        hits = sum(1 for p in self.patterns if p.search(arguments))
        lowered = arguments.lower()
        hits += sum(1 for k in self.keywords if k in lowered)
        if hits:
            found[ARGUMENT_MATCH] = hits
        if self.hosts:
            outside = sum(1 for url in _URL.findall(arguments) if not self._is_allowed(url))
            if outside:
                found[HOST_NOT_ALLOWED] = outside
        return found

    def _is_allowed(self, url: str) -> bool:
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            return False
        return any(fnmatch.fnmatchcase(host, glob.lower()) for glob in self.hosts)


@dataclass(frozen=True, slots=True)
class RunLimits:
    """The tightest run limits that apply to a key (None: no limit)."""

    max_model_calls: int | None = None
    max_tool_calls: int | None = None

    @property
    def is_set(self) -> bool:
        return self.max_model_calls is not None or self.max_tool_calls is not None


class ToolPolicy:
    """The agent rules of one policy version, compiled once per version (with its Engine)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        rules = engine.policy.rules
        self._allowlists = [r for r in rules if r.detector == "tool_allowlist"]
        self._arguments = [
            _ArgumentRule(
                r,
                tuple(r.options.get("tools", ("*",))),
                tuple(
                    compile_pattern(p, True, f"rule {r.name!r} pattern #{n + 1}")
                    for n, p in enumerate(r.options.get("patterns", ()))
                ),
                tuple(k.lower() for k in r.options.get("keywords", ())),
                tuple(r.options.get("allowed_hosts", ())),
            )
            for r in rules
            if r.detector == "tool_arguments"
        ]
        self._limits = [r for r in rules if r.detector == "run_limit"]
        self._results = [r for r in rules if TOOL_RESULT in r.directions]
        self.has_rules = bool(self._allowlists or self._arguments or self._limits or self._results)
        # Most policies have no agent rules: a tool loop then skips judging entirely.
        self.has_call_rules = bool(self._allowlists or self._arguments)
        self.has_allowlists = bool(self._allowlists)
        self.has_result_rules = bool(self._results)

    def _applying(self, rules: Sequence[Rule], direction: str, context: Context) -> list[Rule]:
        return [r for r in rules if r.applies(direction, context.project, context.key_id)]

    def judge_offered(self, names: Sequence[str], context: Context) -> list[Evaluation]:
        """The allowlists on the tools a request offers the model."""
        evaluations = []
        for rule in self._applying(self._allowlists, TOOL_CALL, context):
            started = time.perf_counter()
            refused = sum(1 for n in names if not _matches(n, rule.options["tools"]))
            evaluations.append(
                _evaluation(rule, {NOT_ALLOWED: refused} if refused else {}, started)
            )
        return evaluations

    def judge_call(self, name: str | None, arguments: str, context: Context) -> list[Evaluation]:
        """The allowlists and argument rules on one call a model asked for."""
        return self.judge_allowlist(name, context) + self.judge_arguments(name, arguments, context)

    def judge_allowlist(self, name: str | None, context: Context) -> list[Evaluation]:
        """The allowlists on one tool a model or an MCP client calls."""
        evaluations = []
        for rule in self._applying(self._allowlists, TOOL_CALL, context):
            started = time.perf_counter()
            kinds = {} if _matches(name, rule.options["tools"]) else {NOT_ALLOWED: 1}
            evaluations.append(_evaluation(rule, kinds, started))
        return evaluations

    def judge_arguments(
        self, name: str | None, arguments: str, context: Context
    ) -> list[Evaluation]:
        """The argument rules on one call's arguments (JSON text)."""
        evaluations = []
        for argument_rule in self._arguments:
            rule = argument_rule.rule
            if not rule.applies(TOOL_CALL, context.project, context.key_id):
                continue
            if not _matches(name, argument_rule.tools):
                continue
            started = time.perf_counter()
            evaluations.append(_evaluation(rule, argument_rule.kinds(arguments), started))
        return evaluations

    def refused(self, names: Sequence[str], context: Context) -> set[str]:
        """The names a blocking allowlist refuses (an MCP server's `tools/list` hides them)."""
        rules = [
            r for r in self._applying(self._allowlists, TOOL_CALL, context) if r.action == "block"
        ]
        return {n for n in names for r in rules if not _matches(n, r.options["tools"])}

    def blocks_calls(self, context: Context) -> bool:
        """True if a tool-call rule that may block applies (calls must then be held whole)."""
        rules = [*self._allowlists, *(a.rule for a in self._arguments)]
        return any(r.action == "block" for r in self._applying(rules, TOOL_CALL, context))

    def judge_results(self, texts: Sequence[str], context: Context) -> Verdict:
        """The text rules of direction `tool_result` over each result (one segment each)."""
        if not self._applying(self._results, TOOL_RESULT, context):
            return Verdict()
        return self._engine.scan(texts, TOOL_RESULT, context, Redactor())

    def spotlight_rules(self, context: Context) -> list[Rule]:
        """The applying `spotlight` rules (they mark every result; the first one's mode wins)."""
        return [
            r
            for r in self._applying(self._results, TOOL_RESULT, context)
            if r.action == "spotlight"
        ]

    def limits(self, context: Context) -> RunLimits:
        applying = self._applying(self._limits, RUN, context)
        models = [r.options["max_model_calls"] for r in applying if "max_model_calls" in r.options]
        tools = [r.options["max_tool_calls"] for r in applying if "max_tool_calls" in r.options]
        return RunLimits(min(models, default=None), min(tools, default=None))

    def limit_rules(self, context: Context) -> list[Rule]:
        return self._applying(self._limits, RUN, context)


def _evaluation(rule: Rule, kinds: dict[str, int], started: float) -> Evaluation:
    outcome = _OUTCOME.get(rule.action, "logged") if kinds else "pass"
    direction = rule.directions[0]
    ms = (time.perf_counter() - started) * 1000.0
    return Evaluation(rule.name, rule.detector, direction, rule.action, outcome, kinds, (), ms)


def run_limit_evaluation(rule: Rule, kind: str | None) -> Evaluation:
    """A run_limit rule's judgement of one model call (kind: the limit it reached, if any)."""
    kinds = {kind: 1} if kind else {}
    outcome = _OUTCOME.get(rule.action, "logged") if kind else "pass"
    return Evaluation(rule.name, rule.detector, RUN, rule.action, outcome, kinds, (), 0.0)

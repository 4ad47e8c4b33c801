"""Guardrails applied to requests and responses: which texts are scanned, what a verdict does to
the payload, what gets stored, and the failure mode when the engine itself breaks.

Nothing a detector found is ever stored in clear or in a message: blocked content is recorded
with every finding replaced by its placeholder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from signalvault.agents.tool_policy import ToolPolicy
from signalvault.errors import GuardrailBlocked, GuardrailUnavailable
from signalvault.gateway import safe_json
from signalvault.gateway.sse import Event
from signalvault.gateway.stream_guard import ArgumentJudge, StreamGuard
from signalvault.gateway.wire import (
    REQUEST_TEXT_FIELDS,
    RESPONSE_TEXT_FIELDS,
    Slot,
    StreamAssembler,
    text_slots,
)
from signalvault.guardrails.engine import Context, Engine, Evaluation, Redactor, Verdict
from signalvault.guardrails.policy import Rule
from signalvault.trail.audit import Interaction

log = logging.getLogger("signalvault.guardrails")


@dataclass(slots=True)
class Screened:
    """The outcome of screening one body."""

    forward: bytes  # what continues (to the provider, or to the caller)
    stored: bytes  # what the audit trail keeps
    blocked: GuardrailBlocked | None = None
    # The scan: which texts (slots) it judged and what it found, for attributing findings to
    # tool calls and results (signalvault.agents.attribution).
    slots: list[Slot] = field(default_factory=list)
    verdict: Verdict | None = None


class Screen:
    def __init__(self, engine: Engine, failure_mode: str, holdback: int = 256) -> None:
        self.engine = engine
        self.policy_version = engine.policy.version
        self.tools = ToolPolicy(engine)  # the policy's agent rules (tool calls, results, runs)
        self._is_fail_open = failure_mode == "open"
        self._holdback = holdback

    def _input_context(self, interaction: Interaction, payload: dict[str, Any]) -> Context:
        max_tokens = (
            payload.get("max_tokens")
            or payload.get("max_completion_tokens")
            or payload.get("max_output_tokens")
        )
        return _context(
            interaction,
            interaction.model_requested,
            max_tokens if isinstance(max_tokens, int) else None,
        )

    def request(
        self, interaction: Interaction, payload: dict[str, Any], body: bytes, redactor: Redactor
    ) -> Screened:
        """Scan everything the client sends; redact in place or report a block."""
        interaction.policy_version = self.policy_version
        slots = text_slots(payload, REQUEST_TEXT_FIELDS)
        verdict = self._scan(
            interaction, slots, "input", self._input_context(interaction, payload), redactor
        )
        return self._apply(verdict, slots, payload, body, "The request")

    def context(self, interaction: Interaction) -> Context:
        """What rules of this request depend on besides text (key, project, model)."""
        return _context(interaction, interaction.model_requested)

    def response(
        self, interaction: Interaction, payload: Any, body: bytes, redactor: Redactor
    ) -> Screened:
        """Scan a complete (non-streamed) response; redact, block, and restore placeholders."""
        if not isinstance(payload, dict):
            return Screened(body, body)
        slots = text_slots(payload, RESPONSE_TEXT_FIELDS)
        verdict = self._scan(
            interaction, slots, "output", self._output_context(interaction), redactor
        )
        screened = self._apply(verdict, slots, payload, body, "The response")
        if screened.blocked is None and redactor.originals and slots:
            # Placeholders the model repeated go back to their values for the caller only.
            for container, key in slots:
                container[key] = redactor.restore(container[key])
            screened.forward = safe_json.dumps(payload)
        return screened

    def texts(
        self, interaction: Interaction, slots: list[Slot], direction: str, what: str
    ) -> GuardrailBlocked | None:
        """Screen the strings of another protocol's payload in place (an MCP call's arguments
        or result): redacted where a rule redacts; on a block every finding is masked (what the
        trail keeps) and the block returned."""
        interaction.policy_version = self.policy_version
        verdict = self._scan(interaction, slots, direction, _context(interaction, None), Redactor())
        return self._apply(verdict, slots, {}, b"", what).blocked

    def stream(
        self,
        interaction: Interaction,
        redactor: Redactor,
        judge_arguments: ArgumentJudge | None = None,
    ) -> StreamGuard | None:
        """A guard for one streamed response (hold-back, in-stream redaction or block), or None
        when every output rule only logs, nothing needs restoring and no tool call needs judging
        before it leaves: then the stream passes untouched, with no hold-back delay.

        The guard's hold-back windows judge only the rules that block or redact: rules that only
        log change nothing that leaves, so `log_stream` runs them once over the whole text at
        the stream's end (`rules_left_to_log`), as for a complete response. Scanned in the windows,
        which overlap, they read a long answer about eight times."""
        context = self._output_context(interaction)
        acting = [r for r in self.engine.rules_for("output", context) if r.action != "log"]
        if not redactor.originals and judge_arguments is None and not acting:
            return None
        return StreamGuard(
            interaction.api, self.engine, context, redactor, self._holdback, judge_arguments,
            acting,
        )  # fmt: skip

    def rules_left_to_log(
        self, interaction: Interaction, guard: StreamGuard | None
    ) -> list[Rule] | None:
        """The output rules `log_stream` runs over a stream's whole text once it ended: every
        one (None) when no guard ran, else those the guard's windows left out, the rules that
        only log (none if the engine failed on the guard, which has recorded that)."""
        if guard is None:
            return None
        if guard.engine_failed:
            return []
        rules = self.engine.rules_for("output", self._output_context(interaction))
        return [r for r in rules if r.action == "log"]

    def log_stream(
        self,
        interaction: Interaction,
        text: str,
        redactor: Redactor,
        arguments: list[str],
        rules: Sequence[Rule] | None = None,
    ) -> Verdict:
        """Record the log-only output rules' findings (`rules`: those a guard left, else every
        output rule) on a stream's whole text (segment 0) and each tool call's arguments
        (segments 1, 2, ...), once it ended. If the engine fails, the record says the rules were
        bypassed, whatever the failure mode: the stream has already left."""
        holder = [text, *arguments]
        slots: list[Slot] = [(holder, i) for i in range(len(holder))]
        context = self._output_context(interaction)
        return self._scan(
            interaction, slots, "output", context, redactor, rules, after_the_fact=True
        )

    def feed(
        self,
        guard: StreamGuard,
        interaction: Interaction,
        assembler: StreamAssembler,
        chunk: bytes | None,
        events: list[Event],
    ) -> bytes:
        """Screen the events `assembler` read from one provider chunk (None: the stream ended,
        its unterminated tail, if any, is read now); applies the failure mode."""
        try:
            if chunk is None:
                return guard.finish(assembler.rest())
            return guard.feed(chunk, events)
        except Exception as exc:
            log.error(
                "guardrail engine failed on a stream",
                extra={"request_id": interaction.id, "error": type(exc).__name__},
            )
            if not self._is_fail_open:
                return guard.abort(
                    GuardrailUnavailable("The guardrail engine failed; the stream was ended.")
                )
            interaction.evaluations.append(
                Evaluation("*", "engine", "output", "bypass", "bypassed", {}, (), 0.0).as_dict()
            )
            return guard.bypass(assembler.pending())

    def _output_context(self, interaction: Interaction) -> Context:
        return _context(interaction, interaction.model_used)

    def _scan(
        self,
        interaction: Interaction,
        slots: list[Slot],
        direction: str,
        context: Context,
        redactor: Redactor,
        rules: Sequence[Rule] | None = None,
        *,
        after_the_fact: bool = False,
    ) -> Verdict:
        """The engine's verdict on the slots' texts; if the engine fails, GuardrailUnavailable
        (fail-closed) or a bypass on the record (fail-open, or `after_the_fact`: what was scanned
        has already left, so there is nothing left to refuse)."""
        segments = [container[key] for container, key in slots]
        try:
            verdict = self.engine.scan(segments, direction, context, redactor, rules)
        except Exception as exc:
            log.error(
                "guardrail engine failed",
                extra={
                    "request_id": interaction.id,
                    "error": type(exc).__name__,
                    "failure_mode": "open" if self._is_fail_open else "closed",
                },
            )
            if not self._is_fail_open and not after_the_fact:
                raise GuardrailUnavailable(
                    "The guardrail engine failed; the request was refused (fail-closed)."
                ) from None
            verdict = Verdict()
            verdict.evaluations.append(
                Evaluation("*", "engine", direction, "bypass", "bypassed", {}, (), 0.0)
            )
        interaction.evaluations.extend(e.as_dict() for e in verdict.evaluations)
        return verdict

    def _apply(
        self, verdict: Verdict, slots: list[Slot], payload: dict[str, Any], body: bytes, what: str
    ) -> Screened:
        if verdict.decision == "block":
            blocked = verdict.blocked_by
            rules = sorted({e.rule for e in blocked})
            kinds = sorted({k for e in blocked for k in e.kinds})
            message = (
                f"{what} was blocked by guardrail rule(s) {', '.join(rules)}: "
                f"found {', '.join(kinds)}."
            )
            masked = self.engine.mask([c[k] for c, k in slots], verdict)
            for (container, key), text in zip(slots, masked, strict=True):
                container[key] = text
            return Screened(
                body,
                safe_json.dumps(payload),
                GuardrailBlocked(message, rules=rules, kinds=kinds),
                slots,
                verdict,
            )
        if verdict.texts is not None:
            for (container, key), text in zip(slots, verdict.texts, strict=True):
                container[key] = text
            body = safe_json.dumps(payload)
        return Screened(body, body, None, slots, verdict)


def _context(interaction: Interaction, model: str | None, max_output: int | None = None) -> Context:
    key = interaction.key
    if key is None:
        return Context(None, None, None, model, max_output)
    # Positional (project, key_id, environment, model, max_output_tokens): keywords to a class
    # call build a dict of them for its __init__, and this runs three times per request.
    return Context(key.project, key.id, key.environment, model, max_output)

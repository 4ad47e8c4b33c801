"""Change control for guardrail policies: versions are proposed, shown as a diff against the
active version, and approved by a different account before they take effect (two-person
review), or rejected. A rollback is a new proposal restoring an earlier version's rules.

Every step is an audit event (`policy_proposed`, `policy_approved`, `policy_rejected`,
`policy_activated`, the first version's too: `how` = `bootstrap`) naming version, digest, actor,
base version and which rules changed and in which fields, never option values (an `allow` list
or a custom keyword may itself be sensitive). Who may propose or approve (roles) is the admin
API's and the CLI's check (signalvault.control.api.authz); this module enforces that the
approver is not the proposer and that a proposal is decided once, against the version it was
proposed on.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from signalvault.console import iso
from signalvault.errors import ConfigError, Forbidden, HTTPError, NotFound
from signalvault.guardrails.engine import Engine
from signalvault.guardrails.policy import DEFAULT_RULES, Policy, Rule, parse_rules, rules_digest
from signalvault.store import Store
from signalvault.store.policy_queries import (
    ACTIVE,
    PROPOSED,
    PolicyStateChanged,
    PolicyVersion,
)
from signalvault.trail.audit import AuditTrail

log = logging.getLogger("signalvault.policies")

PROPOSED_EVENT = "policy_proposed"
APPROVED_EVENT = "policy_approved"
REJECTED_EVENT = "policy_rejected"
ACTIVATED_EVENT = "policy_activated"
MAX_REASON = 1000
RULE_FIELDS = ("detector", "action", "direction", "scope")


class PolicyConflict(HTTPError):
    """The proposal is not in a state that allows the decision (decided, or stale)."""

    status_code = 409
    code = "policy_conflict"


class SelfApproval(Forbidden):
    code = "self_approval"


@dataclass(frozen=True, slots=True)
class RuleChange:
    name: str
    change: str  # added | removed | changed
    fields: tuple[str, ...] = ()  # for `changed`: e.g. action, options.types

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "change": self.change, "fields": list(self.fields)}


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """What a version changes relative to its base (None: there was no policy before)."""

    base_version: int | None
    version: int
    changes: tuple[RuleChange, ...]
    reordered: bool  # same rules, different order (order decides which block is reported)
    text: str = field(repr=False)  # unified diff of the canonical JSON

    def summary(self) -> dict[str, Any]:
        """Rule names and changed field names only: safe for the audit trail."""
        return {
            "added": [c.name for c in self.changes if c.change == "added"],
            "removed": [c.name for c in self.changes if c.change == "removed"],
            "changed": {c.name: list(c.fields) for c in self.changes if c.change == "changed"},
            "reordered": self.reordered,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "base_version": self.base_version,
            "version": self.version,
            "changes": [c.as_dict() for c in self.changes],
            "reordered": self.reordered,
            "text": self.text,
        }


def canonical_json(rules: Sequence[Rule]) -> str:
    return orjson.dumps([r.as_dict() for r in rules]).decode()


def stored_rules(version: PolicyVersion) -> tuple[Rule, ...]:
    return parse_rules(orjson.loads(version.rules))


def diff_rules(
    base: Sequence[Rule], new: Sequence[Rule], base_version: int | None, version: int
) -> PolicyDiff:
    before = {r.name: r.as_dict() for r in base}
    after = {r.name: r.as_dict() for r in new}
    changes: list[RuleChange] = []
    for name, rule in after.items():
        if name not in before:
            changes.append(RuleChange(name, "added"))
            continue
        old = before[name]
        fields = [f for f in RULE_FIELDS if old[f] != rule[f]]
        keys = sorted(set(old["options"]) | set(rule["options"]))
        fields += [f"options.{k}" for k in keys if old["options"].get(k) != rule["options"].get(k)]
        if fields:
            changes.append(RuleChange(name, "changed", tuple(fields)))
    changes += [RuleChange(name, "removed") for name in before if name not in after]
    common = [n for n in after if n in before]
    reordered = common != [n for n in before if n in after]
    text = "".join(
        difflib.unified_diff(
            _pretty(base),
            _pretty(new),
            fromfile=f"version {base_version}" if base_version else "no policy",
            tofile=f"version {version}",
        )
    )
    return PolicyDiff(base_version, version, tuple(changes), reordered, text)


def _pretty(rules: Sequence[Rule]) -> list[str]:
    dumped = orjson.dumps(
        [r.as_dict() for r in rules], option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    )
    return dumped.decode().splitlines(keepends=True) if rules else []


def validate(raw: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """Parse rule tables and compile them, so an approved policy always builds.

    Raises:
        ConfigError: a rule is malformed, or a pattern does not compile.
    """
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise ConfigError("a policy is a list of rules")
    rules = parse_rules(raw)
    if not rules:
        raise ConfigError("a policy needs at least one rule")
    try:
        Engine(Policy(0, rules), lambda _text, _model: 0)
    except Exception as exc:  # a custom pattern that does not compile, say
        raise ConfigError(f"the rules do not compile: {type(exc).__name__}: {exc}") from None
    return rules


class PolicyService:
    """Propose, approve, reject and roll back guardrail policy versions.

    `review`: two-person review on (`[guardrails] two_person_review`). Off, a proposal is
    activated at once, still recorded as proposed and activated.
    """

    def __init__(self, store: Store, trail: AuditTrail, *, review: bool) -> None:
        self.store = store
        self.trail = trail
        self.review = review

    # -- reading -------------------------------------------------------------------------------
    def versions(self) -> list[PolicyVersion]:
        """Every version, oldest first."""
        return self.store.list_policies()

    def get(self, version: int) -> PolicyVersion:
        """Raises NotFound."""
        found = self.store.get_policy(version)
        if found is None:
            raise NotFound(f"no policy version {version}")
        return found

    def active(self) -> PolicyVersion | None:
        return self.store.current_policy()

    def diff(self, version: int) -> PolicyDiff:
        """The change `version` makes to its base (the version active when it was proposed)."""
        target = self.get(version)
        base = self.store.get_policy(target.base_version) if target.base_version else None
        base_rules = stored_rules(base) if base is not None else ()
        return diff_rules(base_rules, stored_rules(target), target.base_version, version)

    # -- changing ------------------------------------------------------------------------------
    def propose(
        self,
        raw: Sequence[Mapping[str, Any]],
        proposer: str,
        reason: str | None = None,
        *,
        source: str = "api",
        rollback_of: int | None = None,
    ) -> PolicyVersion:
        """A new version with these rules: `proposed`, or `active` at once with review off.

        Raises:
            ConfigError: invalid rules or reason, or the rules equal the active policy.
        """
        rules = validate(raw)
        reason = _reason(reason)
        digest = rules_digest(rules)
        active = self.store.current_policy()
        if active is not None and active.digest == digest:
            raise ConfigError(
                f"these rules are already the active policy (version {active.version})"
            )
        activate = not self.review
        added = self.store.add_policy(
            rules=canonical_json(rules),
            digest=digest,
            source=source,
            created_by=proposer,
            reason=reason,
            rollback_of=rollback_of,
            activate=activate,
        )
        diff = self.diff(added.version)
        details = _details(added, diff)
        details["review"] = self.review
        if reason:
            details["reason"] = reason
        if rollback_of is not None:
            details["rollback_of"] = rollback_of
        self.trail.record_event(PROPOSED_EVENT, proposer, details)
        if activate:
            self._record_activation(added, proposer, "review off")
        return added

    def approve(self, version: int, approver: str) -> PolicyVersion:
        """Activate a proposal. The approver must not be its proposer.

        Raises:
            NotFound, SelfApproval, PolicyConflict (decided already, or its base is no longer
            active: the reviewed diff is not the change it would make; reject and re-propose).
        """
        proposal = self.get(version)
        if proposal.status != PROPOSED:
            raise PolicyConflict(f"policy version {version} is {proposal.status}, not proposed")
        if approver == proposal.created_by:
            raise SelfApproval(
                "a policy change must be approved by a different account than its proposer"
            )
        try:
            approved = self.store.decide_policy(version, approve=True, actor=approver, reason=None)
        except PolicyStateChanged as exc:
            raise PolicyConflict(str(exc)) from None
        details = _details(approved, self.diff(version))
        details["proposed_by"] = approved.created_by
        self.trail.record_event(APPROVED_EVENT, approver, details)
        self._record_activation(approved, approver, "approved")
        return approved

    def reject(self, version: int, reviewer: str, reason: str | None = None) -> PolicyVersion:
        """Reject a proposal (its proposer may withdraw it this way too).

        Raises:
            NotFound, PolicyConflict (decided already), ConfigError (reason too long).
        """
        reason = _reason(reason)
        self.get(version)
        try:
            rejected = self.store.decide_policy(
                version, approve=False, actor=reviewer, reason=reason
            )
        except PolicyStateChanged as exc:
            raise PolicyConflict(str(exc)) from None
        details = _details(rejected, self.diff(version))
        details["proposed_by"] = rejected.created_by
        if reason:
            details["reason"] = reason
        self.trail.record_event(REJECTED_EVENT, reviewer, details)
        return rejected

    def rollback(self, to_version: int, proposer: str, reason: str | None = None) -> PolicyVersion:
        """Propose the rules of an earlier version again (reviewed like any change).

        Raises:
            NotFound, ConfigError (it is the active policy, or it was never active).
        """
        earlier = self.get(to_version)
        if earlier.status not in (ACTIVE, "superseded"):
            raise ConfigError(
                f"policy version {to_version} was never active ({earlier.status}); "
                "propose its rules as a new change instead"
            )
        raw = orjson.loads(earlier.rules)
        return self.propose(
            raw,
            proposer,
            reason or f"rollback to version {to_version}",
            source="rollback",
            rollback_of=to_version,
        )

    def sync_config(self, configured: Sequence[Mapping[str, Any]]) -> PolicyVersion:
        """At start: the config file's rules (or the default policy) become the first version
        of an empty store. Later, config rules that differ from the active policy are proposed
        (with review on: they do not bypass it; a warning says so) or activated (review off).
        No rules in the config keeps the active policy. Returns the version in force.

        Raises:
            ConfigError: the configured rules are invalid.
        """
        # Parsed only: compiling is left to the caller building the engine (or to propose).
        rules = parse_rules(configured) if configured else None
        active = self.store.current_policy()
        if active is None:
            return self.ensure_active(configured)
        if rules is None or rules_digest(rules) == active.digest:
            return active
        if not self.review:
            return self.propose(configured, "config", source="config")
        digest = rules_digest(rules)
        pending = [v for v in self.versions() if v.status == PROPOSED and v.digest == digest]
        proposal = pending[0] if pending else None
        if proposal is None:
            proposal = self.propose(
                configured,
                "config",
                "[guardrails] rules in the config file differ from the active policy",
                source="config",
            )
        log.warning(
            "the configured guardrail rules differ from the active policy; they are proposed "
            "for review and take effect only when approved",
            extra={"active_version": active.version, "proposed_version": proposal.version},
        )
        return active

    def ensure_active(self, configured: Sequence[Mapping[str, Any]]) -> PolicyVersion:
        """The version in force. On an empty store the config file's rules (or the default
        policy) become it first, as at a gateway's first start, so that a proposal made before
        any gateway ran is reviewed against what will be in force.

        Raises:
            ConfigError: the configured rules are invalid.
        """
        active = self.store.current_policy()
        if active is not None:
            return active
        source = "config" if configured else "default"
        try:
            # Compiled before it is stored: a bad first policy must not block every start.
            return self._bootstrap(validate(configured) if configured else DEFAULT_RULES, source)
        except PolicyStateChanged:  # another process started first
            active = self.store.current_policy()
            assert active is not None
            return active

    def _bootstrap(self, rules: Sequence[Rule], source: str) -> PolicyVersion:
        added = self.store.add_policy(
            rules=canonical_json(rules),
            digest=rules_digest(rules),
            source=source,
            created_by=source,
            reason=None,
            rollback_of=None,
            activate=True,
            first=True,
        )
        # Version 1 is in force before any review could happen (someone has to set the first
        # rules), so the trail says what put it there: the config file or the built-in default,
        # at a gateway start, with the digest an auditor can match against the rules.
        self._record_activation(added, source, "bootstrap")
        log.info("guardrail policy initialised", extra={"version": added.version, "source": source})
        return added

    def _record_activation(self, version: PolicyVersion, actor: str, how: str) -> None:
        """`how`: approved, review off, or bootstrap (the first policy of an empty store)."""
        details: dict[str, Any] = {
            "version": version.version,
            "digest": version.digest,
            "base_version": version.base_version,
            "proposed_by": version.created_by,
            "approved_by": version.decided_by if how == "approved" else None,
            "how": how,
        }
        if how == "bootstrap":
            details["source"] = version.source
            details["review"] = self.review
        self.trail.record_event(ACTIVATED_EVENT, actor, details)


def _details(version: PolicyVersion, diff: PolicyDiff) -> dict[str, Any]:
    return {
        "version": version.version,
        "digest": version.digest,
        "base_version": version.base_version,
        "source": version.source,
        "changes": diff.summary(),
    }


def _reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    if len(reason) > MAX_REASON:
        raise ConfigError(f"a reason is at most {MAX_REASON} characters")
    return reason.strip()


def version_json(version: PolicyVersion) -> dict[str, Any]:
    """One version for `policies list --json` and the admin API (rules as a list)."""
    return {
        "version": version.version,
        "status": version.status,
        "digest": version.digest,
        "source": version.source,
        "base_version": version.base_version,
        "rollback_of": version.rollback_of,
        "proposed_by": version.created_by,
        "proposed_at": iso(version.created_at),
        "reason": version.reason,
        "decided_by": version.decided_by,
        "decided_at": iso(version.decided_at),
        "decision_reason": version.decision_reason,
        "superseded_at": iso(version.superseded_at),
        "rules": orjson.loads(version.rules),
    }

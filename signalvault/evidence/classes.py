"""Data classification (SPEC §7c): the class of a record from its findings, its project's
default and its key's declared class, whichever is highest; and who may read content per class.

Pure functions over settings and the record as the gateway knows it; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from signalvault.config import CLASSES, ClassificationSettings

PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED = CLASSES
_RANK = {name: rank for rank, name in enumerate(CLASSES)}
# Detector whose finding (any outcome but `pass`) makes a record at least this class: a secret
# is restricted, personal data confidential. A redacted finding counts too: the interaction
# handled the data even if the provider never saw it.
FINDING_CLASSES = {"secrets": RESTRICTED, "pii": CONFIDENTIAL}
_NOT_FOUND = (None, "pass", "error")  # outcomes that found nothing
# Roles that read content when a class names none (SPEC §5: owner and auditor).
DEFAULT_CONTENT_ROLES = ("owner", "auditor")
# The CLI holds the master key: it reads content as the owner would.
CLI_ROLE = "owner"


def rank(name: str | None) -> int:
    """Position of a class, lowest first (-1 for none or an unknown name)."""
    return _RANK.get(name or "", -1)


def highest(names: Iterable[str | None]) -> str | None:
    best: str | None = None
    best_rank = -1
    for name in names:  # runs several times per request: one rank lookup per name
        name_rank = _RANK.get(name or "", -1)
        if name_rank > best_rank:
            best, best_rank = name, name_rank
    return best


def finding_class(evaluations: Iterable[Mapping[str, Any]]) -> str | None:
    """The class the guardrail findings call for (None: they call for none)."""
    # A loop, not highest() over a generator: this runs several times per request, over every
    # evaluation, and most evaluations pass.
    best: str | None = None
    best_rank = -1
    for e in evaluations:
        if e.get("outcome") in _NOT_FOUND:
            continue
        name = FINDING_CLASSES.get(str(e.get("detector")))
        name_rank = _RANK.get(name or "", -1)
        if name_rank > best_rank:
            best, best_rank = name, name_rank
    return best


class _Key(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def project(self) -> str | None: ...


class _Classified(Protocol):
    """What classification reads from an interaction (trail.audit.Interaction has it)."""

    @property
    def key(self) -> _Key | None: ...
    @property
    def classification(self) -> str | None: ...
    @property
    def evaluations(self) -> list[dict[str, Any]]: ...


class Classifier:
    """Classifies interactions per `[classification]`; never lowers a class already given."""

    def __init__(self, settings: ClassificationSettings) -> None:
        self._settings = settings
        # (project, key id) -> baseline: read several times per request, and the settings
        # are frozen. Bounded: key ids come from the store, and a gateway may hold many.
        self._baselines: dict[tuple[str | None, str | None], str] = {}

    def baseline(self, project: str | None, key_id: str | None) -> str:
        """The class before findings: the deployment default, raised by the project's default
        and the key's declared class."""
        known = self._baselines.get((project, key_id))
        if known is not None:
            return known
        settings = self._settings
        candidates: list[str | None] = [settings.default]
        if project is not None:
            candidates.append(settings.projects.get(project))
        if key_id is not None:
            candidates.append(settings.keys.get(key_id))
        found = highest(candidates) or INTERNAL
        if len(self._baselines) >= 10_000:
            self._baselines.clear()
        self._baselines[(project, key_id)] = found
        return found

    def __call__(self, interaction: _Classified) -> str:
        key = interaction.key
        base = self.baseline(key.project if key else None, key.id if key else None)
        found = finding_class(interaction.evaluations)
        return highest((base, found, interaction.classification)) or base

    def alerts_for(self, classification: str | None) -> bool:
        """Whether a record of this class raises a `classified_data` alert."""
        return classification is not None and classification in self._settings.alert_classes

    def content_roles(self, classification: str | None) -> tuple[str, ...]:
        """Roles that may read the decrypted content of a record of this class."""
        roles = self._settings.content_roles.get(classification or INTERNAL)
        return DEFAULT_CONTENT_ROLES if roles is None else roles

    def may_read_content(self, role: str | None, classification: str | None) -> bool:
        return role is not None and role in self.content_roles(classification)

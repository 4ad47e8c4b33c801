"""Who may read decrypted content per data class (SPEC §7c), for every admin-API path that
returns content: a record's detail, exports with content, data-subject exports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signalvault.control.accounts.principal import Principal
from signalvault.control.api.deps import Context
from signalvault.errors import Forbidden
from signalvault.evidence.classes import Classifier


def _classifier(api: Context) -> Classifier:
    return Classifier(api.settings.classification)


def require_class(api: Context, who: Principal, row: dict[str, Any]) -> None:
    """Raise Forbidden unless the principal's role in the record's project may read content of
    the record's class."""
    classification = row.get("classification")
    if not _classifier(api).may_read_content(who.role_in(row.get("project")), classification):
        raise Forbidden(
            f"your role may not read the content of `{classification}` records",
            code="classification_forbidden",
        )


def readable_by(api: Context, who: Principal) -> Callable[[dict[str, Any]], bool]:
    """Per record: may the principal read its content (an export withholds the rest)?"""
    classifier = _classifier(api)
    return lambda row: classifier.may_read_content(
        who.role_in(row.get("project")), row.get("classification")
    )

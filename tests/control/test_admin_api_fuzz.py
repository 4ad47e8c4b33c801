"""The admin API fuzzed from its own OpenAPI document: every operation, a bounded and
deterministic number of generated requests as an owner; no 5xx, every response as documented."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from signalvault.control.accounts.principal import Principal
from signalvault.control.api import OPENAPI_PATH, create_admin_api
from signalvault.control.services import open_services
from tests.control.test_admin_api import FakeAccounts

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
OWNER = Principal("acc-owner", "owner@example.com", {None: "owner"})


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The admin API over real services in a fresh data directory, with some keys and events."""
    from tests.conftest import make_settings

    settings = make_settings(tmp_path_factory.mktemp("fuzz"), "http://127.0.0.1:9/v1")
    services = open_services(settings)
    accounts = FakeAccounts()
    token = accounts.add(OWNER)
    for project in ("alpha", "beta"):
        services.keyring.create(name=f"k-{project}", environment="dev", project=project)
        services.trail.record_event("admin", OWNER.actor, {"note": "seed"}, project=project)
    try:
        yield create_admin_api(services, settings, accounts), token
    finally:
        services.store.close()


def test_every_operation_answers_as_documented(fuzzed: tuple[Any, str]) -> None:
    app, token = fuzzed
    schema = schemathesis.openapi.from_asgi(OPENAPI_PATH, app)
    headers = {"Authorization": f"Bearer {token}"}
    labels = []
    statuses: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=int(os.environ.get("SIGNALVAULT_FUZZ_EXAMPLES", "12")),
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            statuses.setdefault(case.operation.label, set()).add(response.status_code)

        run()
    assert len(labels) >= 18, labels
    print(statuses)
    # Every operation was called, and the owner's token was accepted (not all 401s).
    assert set(statuses) == set(labels)
    assert all(401 not in codes or "login" in label for label, codes in statuses.items())

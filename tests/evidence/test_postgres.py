"""Incidents, samples and the report on PostgreSQL (the same SQLAlchemy Core as on SQLite)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from signalvault.config import Secret
from signalvault.evidence.report.build import build_report, default_period
from signalvault.evidence.sample import SampleRequest, draw_sample
from signalvault.evidence.sample_check import check_sample
from signalvault.trail.integrity.sealer import seal_now
from signalvault.trail.signing import load_signer
from tests.conftest import running_gateway
from tests.evidence.helpers import AWS_KEY, EMAIL, PATHS, auth, body

pytestmark = pytest.mark.anyio


async def test_incidents_samples_and_the_report_on_postgres(settings, pg_url, mock):
    on_pg = replace(settings, store=replace(settings.store, database_url=Secret(pg_url)))
    async with running_gateway(on_pg) as (app, client, key):
        await client.post(PATHS["chat"], json=body("chat", f"k {AWS_KEY}"), headers=auth(key))
        await client.post(PATHS["chat"], json=body("chat", f"mail {EMAIL}"), headers=auth(key))
        assert app.services is not None and app.evidence.desk is not None
        app.evidence.desk.drain()
        services = app.services
        [incident] = services.incidents.list()
        services.incidents.acknowledge(incident.id, "test", "on it")
        resolved = services.incidents.resolve(incident.id, "test", "done")
        services.store.flush()
        seal_now(services)
        signer = load_signer(services.store, services.trail.master_keys)
        sample = draw_sample(
            services.store,
            services.trail,
            signer,
            SampleRequest(n=3, seed=5),
            "test",
            lambda row: True,
        )
        report = build_report(
            services.store,
            services.trail,
            on_pg,
            services.incidents,
            signer,
            default_period(),
            "test",
        )
    assert resolved.status == "resolved" and len(resolved.record_ids) == 1
    assert all(check.is_ok for check in check_sample(sample)), check_sample(sample)
    assert len(report["criteria"]) == 24
    statuses = {c["id"]: c["status"] for c in report["criteria"]}
    assert statuses["PI1.5"] == "met" and statuses["P6.2"] == "met"

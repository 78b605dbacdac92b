"""The worker's lease heartbeat (issue #18): leases are short, and renewed while a worker holds the claim.

A claim is held from its hand-over to the pipeline until it is stored; the
heartbeat renews exactly those, and only while the claim is still the
asset's current one (fencing). The thread runs its own connection, so these
tests commit (committed_db) and call `renew()` as the thread would.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from audit.services import Actor
from embeddings.indexing import claims as job_claims
from embeddings.indexing import pipeline
from embeddings.models import IndexJobAsset
from tenants import services as tenant_services
from tests.conftest import find, update
from tests.embeddings.indexing.conftest import complete, now, submit, url_spec


@pytest.fixture
def committed_tenant(committed_db):
    return tenant_services.create_tenant(name=f"hb-{uuid.uuid4().hex[:10]}", actor=Actor.operator("tests"))


def leases(job) -> dict[str, object]:
    return {r.asset_id: r.lease_expires_at for r in find(IndexJobAsset, job_id=job.id)}


def test_the_lease_is_short_and_the_heartbeat_beats_four_times_per_lease(settings):
    assert settings.INDEX_ASSET_LEASE_SECONDS == 30  # recovery after a SIGKILL: a lease and a sweep
    assert settings.INDEX_REQUEUE_AFTER_SECONDS == 30 and settings.INDEX_SWEEP_INTERVAL_SECONDS == 10


def test_the_heartbeat_renews_the_claims_held_until_they_are_released(committed_tenant, published):
    job = submit(committed_tenant, [url_spec("a"), url_spec("b"), url_spec("c")])
    claims = job_claims.claim_assets(tenant_id=committed_tenant.id,
                                     job_asset_ids=[r.id for r in find(IndexJobAsset, job_id=job.id)])
    by_asset = {claim.asset_id: claim for claim in claims}
    heartbeat = pipeline.Heartbeat()
    try:
        heartbeat.hold(claims)
        heartbeat.release([by_asset["a"]])  # stored: no longer the worker's to keep
        complete(by_asset["c"])  # still held, but finished: nothing to renew
        soon = now() + timedelta(seconds=2)
        update(IndexJobAsset, {"job_id": job.id, "state": "processing"}, lease_expires_at=soon)
        assert heartbeat.renew() == 1
    finally:
        heartbeat.stop()
    renewed = leases(job)
    assert renewed["a"] == soon and renewed["c"] is None
    assert renewed["b"] > soon + timedelta(seconds=20)


def test_a_claim_taken_over_is_not_renewed_by_its_old_holder(committed_tenant, published):
    job = submit(committed_tenant, [url_spec("a")])
    row = find(IndexJobAsset, job_id=job.id)[0]
    stale = job_claims.claim_asset(tenant_id=committed_tenant.id, job_asset_id=row.id)
    update(IndexJobAsset, {"id": row.id}, lease_expires_at=now() - timedelta(seconds=1))
    current = job_claims.claim_asset(tenant_id=committed_tenant.id, job_asset_id=row.id)  # another worker's
    assert current is not None and current.attempt == stale.attempt + 1
    heartbeat = pipeline.Heartbeat()
    try:
        heartbeat.hold([stale])
        assert heartbeat.renew() == 0
    finally:
        heartbeat.stop()

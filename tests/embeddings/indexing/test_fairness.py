"""Fairness: a tenant's huge job does not starve another tenant's small one.

The broker is simulated by a FIFO list and one worker that takes the oldest
message, as a real worker with prefetch 1 does; everything else (dispatch,
claim, complete, refill) is the real code against the real database.
"""

from __future__ import annotations

from embeddings.indexing import claims as job_claims
from tests.embeddings.indexing.conftest import complete, refreshed, rows, submit, url_spec


def drain(published, tenant_by_id, stop=None, limit=500) -> list[str]:
    """Process messages oldest first; returns the tenant names in completion order."""
    finished = []
    while published and len(finished) < limit:
        tenant_id, job_asset_id, _ = published.pop(0)
        claim = job_claims.claim_asset(tenant_id=tenant_id, job_asset_id=job_asset_id)
        if claim is None:
            continue
        complete(claim, faces=[])
        finished.append(tenant_by_id[tenant_id])
        if stop and stop():
            break
    return finished


def run_race(make_tenant, published, settings, limit: int) -> tuple[int, list[str]]:
    settings.INDEX_MAX_INFLIGHT_PER_TENANT = limit
    big_tenant, small_tenant = make_tenant(), make_tenant()
    submit(big_tenant, [url_spec(f"big-{i}") for i in range(30)])
    small = submit(small_tenant, [url_spec(f"small-{i}") for i in range(3)])
    names = {str(big_tenant.id): "big", str(small_tenant.id): "small"}
    order = drain(published, names, stop=lambda: refreshed(small).is_finished)
    assert refreshed(small).state == "succeeded"
    return order.count("big"), order


def test_a_small_job_finishes_after_a_bounded_number_of_the_big_jobs_assets(make_tenant, published, settings):
    big_done, order = run_race(make_tenant, published, settings, limit=2)
    # The big tenant never has more than 2 messages ahead: the small job's 3
    # assets finish while the big job has done only a handful of its 30.
    assert big_done <= 4, order
    assert order[:4].count("small") >= 1


def test_without_the_limit_the_small_job_waits_for_the_whole_big_one(make_tenant, published, settings):
    # The control experiment: one FIFO queue with no per-tenant cap.
    big_done, _ = run_race(make_tenant, published, settings, limit=10_000)
    assert big_done == 30


def test_a_tenants_own_jobs_take_turns(tenant, published, settings):
    settings.INDEX_MAX_INFLIGHT_PER_TENANT = 2
    submit(tenant, [url_spec(f"first-{i}") for i in range(10)])
    second = submit(tenant, [url_spec(f"second-{i}") for i in range(2)])
    order = []
    while published:
        tenant_id, job_asset_id, _ = published.pop(0)
        claim = job_claims.claim_asset(tenant_id=tenant_id, job_asset_id=job_asset_id)
        complete(claim)
        order.append(claim.asset_id.split("-")[0])
        if refreshed(second).is_finished:
            break
    # Round-robin between the tenant's active jobs: the later, small job is not
    # stuck behind the first one's remaining eight assets.
    assert order.count("first") <= 3, order
    assert [r.state for r in rows(second)] == ["succeeded", "succeeded"]

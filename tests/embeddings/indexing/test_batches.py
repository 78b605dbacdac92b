"""Batches: one message per INDEX_BATCH_SIZE assets, one claim, a pipelined worker, one commit.

The state machine parts run in the test's transaction; the pipeline runs on
a committed database because its store and fetch threads have connections
of their own (as in a worker process).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from audit.models import AuditEvent
from audit.services import Actor
from embeddings.image_sources import ImageSource
from embeddings.indexing import claims as job_claims
from embeddings.indexing import completion, pipeline
from embeddings.indexing import sweep as sweeper
from embeddings.indexing.completion import Finished
from embeddings.indexing.services import AssetSpec
from embeddings.models import Face, IndexJob, IndexJobAsset
from embeddings.store.services import replace_asset_faces
from faceservice.tenancy import platform_scope
from tenants import data_keys
from tenants import services as tenant_services
from tenants.models import TenantKey
from tests.conftest import FACES_DIR, count, find, update
from tests.embeddings.indexing.conftest import MODEL, fake_faces, now, refreshed, rows, submit, url_spec

A = IndexJobAsset.State
PHOTOS = sorted((FACES_DIR / "lfw-devtrain").glob("*/*_0001.jpg"))[:5]


def finished(claim, faces=None) -> Finished:
    return Finished(claim=claim, faces=faces if faces is not None else fake_faces(1, seed=hash(claim.asset_id) % 97),
                    left_out=[], model_id=MODEL, timings={"fetch_ms": 1.0})


def test_dispatch_sends_one_message_per_batch_in_round_robin_order(tenant, published, settings):
    settings.INDEX_MAX_INFLIGHT_PER_TENANT, settings.INDEX_BATCH_SIZE = 8, 3
    job = submit(tenant, [url_spec(f"a-{i}") for i in range(10)])
    ids = [str(r.id) for r in rows(job)]
    assert [m[1] for m in published.messages] == [ids[0:3], ids[3:6], ids[6:8]]
    assert [r.state for r in rows(job)] == [A.QUEUED] * 8 + [A.PENDING] * 2


def test_batch_size_one_is_one_asset_per_message(tenant, published, settings):
    settings.INDEX_BATCH_SIZE = 1
    job = submit(tenant, [url_spec("a"), url_spec("b")])
    assert [m[1] for m in published.messages] == [[str(r.id)] for r in rows(job)]


def test_a_batch_claim_takes_only_what_is_claimable_each_with_its_own_fencing_token(tenant, published):
    job = submit(tenant, [url_spec(f"a-{i}") for i in range(4)])
    first, second, third, fourth = rows(job)
    taken = job_claims.claim_asset(tenant_id=tenant.id, job_asset_id=second.id)  # another worker holds it
    update(IndexJobAsset, {"id": third.id}, state=A.SUCCEEDED)  # finished already: a duplicate message
    claims = job_claims.claim_assets(tenant_id=tenant.id, job_asset_ids=[fourth.id, first.id, second.id, third.id])
    assert [c.asset_id for c in claims] == ["a-3", "a-0"]  # in the message's order
    assert all(c.attempt == 1 for c in claims) and taken.attempt == 1
    assert refreshed(job).state == IndexJob.State.RUNNING
    assert {r.asset_id: r.state for r in rows(job)} == {
        "a-0": A.PROCESSING, "a-1": A.PROCESSING, "a-2": A.SUCCEEDED, "a-3": A.PROCESSING}
    assert job_claims.claim_assets(tenant_id=tenant.id, job_asset_ids=[first.id]) == []  # the lease holds


def test_a_batch_claim_of_another_tenants_assets_takes_nothing(tenant, other_tenant, published):
    job = submit(tenant, [url_spec("a")])
    assert job_claims.claim_assets(tenant_id=other_tenant.id, job_asset_ids=[rows(job)[0].id]) == []
    assert rows(job)[0].state == A.QUEUED


def test_a_micro_batch_commits_every_asset_with_its_own_event_and_the_counters_once(tenant, published, settings):
    settings.INDEX_BATCH_SIZE = 4
    job = submit(tenant, [url_spec(f"a-{i}", subject_id=f"s-{i}") for i in range(4)])
    claims = job_claims.claim_assets(tenant_id=tenant.id, job_asset_ids=[r.id for r in rows(job)])
    published.clear()
    outcome = completion.complete_assets(finished=[finished(c, fake_faces(i + 1, seed=i))
                                                   for i, c in enumerate(claims)])
    assert set(outcome.values()) == {"succeeded"}
    job = refreshed(job)
    assert job.state == IndexJob.State.SUCCEEDED and job.assets_done == 4 and job.faces_indexed == 1 + 2 + 3 + 4
    for i, row in enumerate(rows(job)):
        stored = find(Face, order_by="id", tenant_id=tenant.id, asset_id=f"a-{i}")
        assert sorted(f["face_id"] for f in row.faces) == sorted(str(f.id) for f in stored)
        assert len(stored) == i + 1 and {f.subject_id for f in stored} == {f"s-{i}"}
    assert count(AuditEvent, tenant_id=tenant.id, action="faces.indexed") == 4
    assert count(AuditEvent, tenant_id=tenant.id, action="index_job.finished") == 1


def test_a_stale_claim_in_a_micro_batch_is_skipped_and_the_rest_commit(tenant, published, settings):
    job = submit(tenant, [url_spec("a"), url_spec("b")])
    claims = job_claims.claim_assets(tenant_id=tenant.id, job_asset_ids=[r.id for r in rows(job)])
    # The lease on "b" expired and another worker took it over: our claim on it is stale.
    update(IndexJobAsset, {"asset_id": "b", "job_id": job.id}, lease_expires_at=now() - timedelta(seconds=1))
    newer = job_claims.claim_asset(tenant_id=tenant.id, job_asset_id=claims[1].job_asset_id)
    outcome = completion.complete_assets(finished=[finished(c) for c in claims])
    assert outcome == {claims[0].job_asset_id: "succeeded", claims[1].job_asset_id: "stale"}
    assert count(Face, tenant_id=tenant.id, asset_id="b") == 0
    assert completion.complete_assets(finished=[finished(newer)]) == {newer.job_asset_id: "succeeded"}
    assert refreshed(job).state == IndexJob.State.SUCCEEDED and count(Face, tenant_id=tenant.id) == 2


def test_a_crash_between_the_claim_and_the_commit_of_a_batch_recovers_every_asset(tenant, published, settings):
    settings.INDEX_MAX_INFLIGHT_PER_TENANT = settings.INDEX_BATCH_SIZE = 3
    job = submit(tenant, [url_spec(f"a-{i}") for i in range(3)])
    claims = job_claims.claim_assets(tenant_id=tenant.id, job_asset_ids=[r.id for r in rows(job)])
    assert len(claims) == 3
    # The worker process dies here: nothing committed, three leases run out.
    update(IndexJobAsset, {"job_id": job.id}, lease_expires_at=now() - timedelta(seconds=1))
    published.clear()
    assert sweeper.sweep().leases_recovered == 3
    assert [r.state for r in rows(job)] == [A.QUEUED] * 3 and sorted(published.ids()) == sorted(
        c.job_asset_id for c in claims)
    # The dead worker's claims can no longer commit; the new ones do, once each.
    assert set(completion.complete_assets(finished=[finished(c) for c in claims]).values()) == {"stale"}
    again = job_claims.claim_assets(tenant_id=tenant.id, job_asset_ids=published.ids())
    assert [c.attempt for c in again] == [2, 2, 2]
    completion.complete_assets(finished=[finished(c) for c in again])
    assert refreshed(job).state == IndexJob.State.SUCCEEDED
    assert count(Face, tenant_id=tenant.id) == 3
    assert count(AuditEvent, tenant_id=tenant.id, action="faces.indexed") == 3


def test_if_one_asset_of_a_micro_batch_cannot_be_written_nothing_of_it_is(tenant, published):
    job = submit(tenant, [url_spec("a"), url_spec("b")])
    claims = job_claims.claim_assets(tenant_id=tenant.id, job_asset_ids=[r.id for r in rows(job)])
    broken = Finished(claim=claims[1], faces=fake_faces(2), left_out=[], model_id=MODEL, timings={})
    broken.faces[1].embedding = None  # cannot be encrypted
    with pytest.raises(Exception):  # noqa: B017 - whatever the write raises, the transaction is undone
        completion.complete_assets(finished=[finished(claims[0]), broken])
    assert count(Face, tenant_id=tenant.id) == 0 and [r.state for r in rows(job)] == [A.PROCESSING] * 2
    assert count(AuditEvent, tenant_id=tenant.id, action="faces.indexed") == 0


def test_renewing_leases_extends_only_claims_still_held(tenant, published):
    job = submit(tenant, [url_spec("a"), url_spec("b")])
    claims = job_claims.claim_assets(tenant_id=tenant.id, job_asset_ids=[r.id for r in rows(job)])
    soon = now() + timedelta(seconds=5)
    update(IndexJobAsset, {"job_id": job.id}, lease_expires_at=soon)
    completion.complete_assets(finished=[finished(claims[0])])
    assert job_claims.renew_leases(tenant_id=tenant.id, claims=claims) == 1
    a, b = rows(job)
    assert a.lease_expires_at is None and b.lease_expires_at > soon + timedelta(seconds=20)


def test_faces_written_after_a_key_rotation_use_the_new_version(tenant):
    def write(asset_id):
        replace_asset_faces(tenant_id=tenant.id, asset_id=asset_id, faces=fake_faces(1), model_id=MODEL,
                            submitted_at=now(), actor=Actor.system("tests"))
        return find(Face, order_by="id", tenant_id=tenant.id, asset_id=asset_id)[0].key_version

    assert write("before") == 1  # the first key, made on first use
    data_keys.start_key_rotation(tenant_id=tenant.id, actor=Actor.operator("tests"))
    assert write("after") == 2
    # Another process rotated (this process's key cache knows nothing of it).
    data_keys.key_cache().invalidate(tenant.id)
    update(TenantKey, {"tenant_id": tenant.id, "version": 2}, status=TenantKey.Status.RETIRING)
    with platform_scope():  # active, but its wrapped key is gone: must not be bypassed
        TenantKey.objects.create(tenant_id=tenant.id, version=3, provider="local", master_key_id="x", wrapped_key=None)
    with pytest.raises(data_keys.NoDataKey):
        write("unusable")
    assert count(Face, tenant_id=tenant.id, asset_id="unusable") == 0


def test_after_a_purge_new_faces_get_a_new_key_never_the_shredded_one(tenant):
    from embeddings.store.services import purge_tenant_face_data

    actor = Actor.system("tests")
    replace_asset_faces(tenant_id=tenant.id, asset_id="a", faces=fake_faces(1), model_id=MODEL,
                        submitted_at=now(), actor=actor)
    purge_tenant_face_data(tenant_id=tenant.id, actor=actor)
    replace_asset_faces(tenant_id=tenant.id, asset_id="b", faces=fake_faces(1), model_id=MODEL,
                        submitted_at=now(), actor=actor)
    (face,) = find(Face, order_by="id", tenant_id=tenant.id)
    assert face.key_version == 2
    assert find(TenantKey, order_by="version", tenant_id=tenant.id)[0].status == TenantKey.Status.DESTROYED


# --- The pipeline in-process (its own threads and connections: committed data) --------------

@pytest.fixture
def committed_tenant(committed_db):
    yield tenant_services.create_tenant(name=f"batch-{uuid.uuid4().hex[:10]}", actor=Actor.operator("tests"))
    pipeline.drain_pipeline()  # stop the threads before the database is blocked again


def test_a_batch_is_pipelined_committed_and_refilled(committed_tenant, images, published, settings):
    tenant = committed_tenant
    settings.INDEX_MAX_INFLIGHT_PER_TENANT, settings.INDEX_BATCH_SIZE = 4, 4
    specs = [AssetSpec(asset_id=p.stem, source=ImageSource(url=images.serve(f"/{p.name}", (200, p.read_bytes()))))
             for p in PHOTOS[:4]]
    specs.insert(2, AssetSpec(asset_id="gone", source=ImageSource(url=images.serve("/gone.jpg", (404, b"")))))
    job = submit(tenant, specs)
    (first, *rest) = published.messages
    assert len(first[1]) == 4 and not rest
    published.clear()
    assert pipeline.run_batch(tenant_id=first[0], job_asset_ids=first[1], wait=True) == "4 claimed"
    by_id = {r.asset_id: r for r in rows(job)}
    assert by_id["gone"].state == A.FAILED and by_id["gone"].error_code == "fetch_failed"
    done = [r for r in by_id.values() if r.state == A.SUCCEEDED]
    assert len(done) == 3 and all(len(r.faces) >= 1 for r in done)
    assert all(set(r.timings) >= {"fetch_ms", "analyze_ms", "store_ms", "queue_ms"} for r in done)
    for row in done:
        stored = find(Face, order_by="id", tenant_id=tenant.id, asset_id=row.asset_id)
        assert sorted(str(f.id) for f in stored) == sorted(f["face_id"] for f in row.faces)
    # The batch's end refilled the tenant's slots: the fifth asset is on its way, in one message.
    assert [m[1] for m in published.messages] == [[str(by_id[specs[-1].asset_id].id)]]
    pipeline.run_batch(tenant_id=str(tenant.id), job_asset_ids=published.messages[0][1], wait=True)
    job = refreshed(job)
    assert job.state == IndexJob.State.PARTIALLY_FAILED and (job.assets_done, job.assets_failed) == (4, 1)
    assert count(AuditEvent, tenant_id=tenant.id, action="faces.indexed") == 4


def test_a_duplicate_message_for_a_committed_batch_changes_nothing(committed_tenant, images, published):
    tenant = committed_tenant
    photo = PHOTOS[0]
    job = submit(tenant, [AssetSpec(asset_id="a", source=ImageSource(
        url=images.serve("/a.jpg", (200, photo.read_bytes()))))])
    ids = [str(r.id) for r in rows(job)]
    pipeline.run_batch(tenant_id=str(tenant.id), job_asset_ids=ids, wait=True)
    faces = count(Face, tenant_id=tenant.id)
    assert pipeline.run_batch(tenant_id=str(tenant.id), job_asset_ids=ids, wait=True) == "skipped"
    assert count(Face, tenant_id=tenant.id) == faces and images.routes["/a.jpg"].hits == 1


def test_a_pipeline_whose_thread_died_is_replaced():
    first = pipeline.pipeline()
    first.batches.put(None)  # the model thread ends, as if it had died
    first.model_thread.join(10)
    try:
        second = pipeline.pipeline()
        assert second is not first and second.model_thread.is_alive() and second.thread.is_alive()
    finally:
        pipeline.drain_pipeline()
        first.queue.put(None)
        first.thread.join(10)

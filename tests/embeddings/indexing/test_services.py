"""The life of a job and its assets, driven through the services (no worker, no engine)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from audit.models import AuditEvent
from embeddings.indexing import claims as job_claims
from embeddings.indexing import completion, failures
from embeddings.indexing import dispatch as job_dispatch
from embeddings.indexing import services as job_services
from embeddings.indexing import sweep as sweeper
from embeddings.models import Asset, Face, IndexJob, IndexJobAsset
from faceservice.tenancy import tenant_context
from tenants.models import WebhookDelivery
from tenants.webhooks import services as webhooks
from tests.conftest import count, find, update
from tests.embeddings.indexing.conftest import FakeLeftOut, complete, fake_faces, now, refreshed, rows, submit, url_spec

A = IndexJobAsset.State
J = IndexJob.State


@pytest.fixture
def hook(tenant, settings):
    """An endpoint subscribed to every job event, so finishing jobs makes deliveries."""
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return webhooks.create_endpoint(tenant_id=tenant.id, url="http://127.0.0.1:9/hook",
                                    events=list(webhooks.EVENT_TYPES), actor=completion.WORKER_ACTOR).endpoint


def claim(tenant, row):
    return job_claims.claim_asset(tenant_id=tenant.id, job_asset_id=row.id)


def dispatch(tenant):
    return job_dispatch.dispatch_tenant(tenant_id=tenant.id)


def test_submission_is_audited_and_dispatched_up_to_the_tenant_limit(tenant, published, settings):
    settings.INDEX_MAX_INFLIGHT_PER_TENANT = 1
    job = submit(tenant, [url_spec("a"), url_spec("b")])
    assert job.state == J.QUEUED and job.assets_total == 2
    # Dispatched after the commit, one slot: the second asset waits in PostgreSQL.
    assert [r.state for r in rows(job)] == [A.QUEUED, A.PENDING]
    event = find(AuditEvent, order_by="seq", tenant_id=tenant.id, action="index_job.submitted")[0]
    assert event.target == {"job_id": str(job.id)} and event.details["sources"] == {"url": 2}


def test_the_broker_gets_only_ids(tenant, published):
    job = submit(tenant, [url_spec("a"), url_spec("b")])
    assert [r.state for r in rows(job)] == [A.QUEUED, A.QUEUED]
    assert [(t, i) for t, i, _ in published] == [(str(tenant.id), str(r.id)) for r in rows(job)]
    assert dispatch(tenant) == []  # nothing left to dispatch


def test_claim_then_complete_indexes_faces_and_finishes_the_job(tenant, published, hook):
    job = submit(tenant, [url_spec("photo-1", subject_id="alice")])
    dispatch(tenant)
    (row,) = rows(job)
    taken = claim(tenant, row)
    assert taken.attempt == 1 and taken.asset_id == "photo-1"
    assert refreshed(job).state == J.RUNNING
    assert complete(taken, faces=fake_faces(2), left_out=[FakeLeftOut()]) == "succeeded"

    (row,) = rows(job)
    job = refreshed(job)
    assert row.state == A.SUCCEEDED and len(row.faces) == 2 and row.left_out[0]["reason"] == "too_small"
    assert row.source == {"host": "images.example"}  # the URL itself is not kept
    assert job.state == J.SUCCEEDED and job.finished_at is not None
    assert (job.assets_done, job.assets_failed, job.faces_indexed, job.faces_left_out) == (1, 0, 2, 1)
    faces = find(Face, order_by="id", tenant_id=tenant.id, asset_id="photo-1")
    assert sorted(str(f.id) for f in faces) == sorted(f["face_id"] for f in row.faces)
    assert {f.subject_id for f in faces} == {"alice"} and {f.job_id for f in faces} == {job.id}
    assert count(AuditEvent, tenant_id=tenant.id, action="faces.indexed") == 1
    finished = find(AuditEvent, order_by='seq', tenant_id=tenant.id, action="index_job.finished")[0]
    assert finished.details["state"] == "succeeded"
    delivery = find(WebhookDelivery, order_by='created_at', tenant_id=tenant.id)[0]
    assert delivery.event_type == "job.succeeded" and delivery.payload["data"]["faces_indexed"] == 2


def test_a_duplicate_message_for_a_finished_asset_does_nothing(tenant, published):
    job = submit(tenant, [url_spec("a")])
    dispatch(tenant)
    (row,) = rows(job)
    complete(claim(tenant, row))
    assert claim(tenant, row) is None  # the same message delivered again
    assert count(Face, tenant_id=tenant.id) == 1


def test_a_second_claim_while_the_lease_holds_is_refused(tenant, published):
    job = submit(tenant, [url_spec("a")])
    dispatch(tenant)
    (row,) = rows(job)
    assert claim(tenant, row) is not None
    assert claim(tenant, row) is None


def test_a_worker_whose_lease_was_taken_over_cannot_commit(tenant, published):
    """Worker 1 stalls past its lease; worker 2 takes over: only worker 2's faces remain."""
    job = submit(tenant, [url_spec("a")])
    dispatch(tenant)
    (row,) = rows(job)
    first = claim(tenant, row)
    update(IndexJobAsset, {'id': row.id}, lease_expires_at=now() - timedelta(seconds=1))
    second = claim(tenant, row)
    assert second.attempt == 2
    assert complete(first, faces=fake_faces(3, seed=1)) == "stale"
    assert complete(second, faces=fake_faces(2, seed=2)) == "succeeded"
    (row,) = rows(job)
    assert count(Face, tenant_id=tenant.id) == 2 == len(row.faces)
    assert refreshed(job).assets_done == 1 and refreshed(job).faces_indexed == 2


def test_reindexing_an_asset_in_a_new_job_replaces_its_faces(tenant, published):
    first_job = submit(tenant, [url_spec("a")])
    dispatch(tenant)
    complete(claim(tenant, rows(first_job)[0]), faces=fake_faces(3, seed=1))
    second_job = submit(tenant, [url_spec("a", url="https://images.example/new.jpg")])
    dispatch(tenant)
    complete(claim(tenant, rows(second_job)[0]), faces=fake_faces(1, seed=2))
    faces = find(Face, order_by="id", tenant_id=tenant.id, asset_id="a")
    assert [str(f.id) for f in faces] == [rows(second_job)[0].faces[0]["face_id"]]
    assert find(Asset, order_by="id", tenant_id=tenant.id, asset_id="a")[0].face_count == 1


def test_a_late_retry_of_an_older_job_does_not_replace_a_newer_image(tenant, published):
    old_job = submit(tenant, [url_spec("a")])
    new_job = submit(tenant, [url_spec("a", url="https://images.example/new.jpg")])
    dispatch(tenant)
    old_claim, new_claim = claim(tenant, rows(old_job)[0]), claim(tenant, rows(new_job)[0])
    complete(new_claim, faces=fake_faces(1, seed=2))
    complete(old_claim, faces=fake_faces(4, seed=1))
    (old_row,) = rows(old_job)
    assert old_row.state == A.SUCCEEDED and old_row.superseded and old_row.faces == []
    assert count(Face, tenant_id=tenant.id, asset_id="a") == 1


def test_transient_failure_waits_with_backoff_then_retries(tenant, published, settings):
    settings.INDEX_RETRY_BASE_SECONDS = 10
    job = submit(tenant, [url_spec("a")])
    dispatch(tenant)
    (row,) = rows(job)
    first = claim(tenant, row)
    failure = failures.Failure("fetch_timeout", "slow server", transient=True)
    assert completion.retry_asset(claim=first, failure=failure) == "retrying"
    (row,) = rows(job)
    assert row.state == A.RETRY_WAIT and row.error_code == "fetch_timeout"
    wait = (row.next_attempt_at - now()).total_seconds()
    assert 4 < wait <= 10  # equal jitter: between half and all of the base delay
    assert published[-1][2] == pytest.approx(wait, abs=1)  # the retry message has a countdown
    assert claim(tenant, row) is None  # not due yet
    update(IndexJobAsset, {'id': row.id}, next_attempt_at=now())
    second = claim(tenant, row)
    assert second.attempt == 2
    complete(second)
    (row,) = rows(job)
    assert row.state == A.SUCCEEDED and row.error_code == "" and row.attempts == 2


def test_retries_stop_after_max_attempts(tenant, published, settings):
    settings.INDEX_MAX_ATTEMPTS = 2
    job = submit(tenant, [url_spec("a")])
    dispatch(tenant)
    failure = failures.Failure("fetch_failed", "connection refused", transient=True)
    for attempt in (1, 2):
        update(IndexJobAsset, {'job_id': job.id}, next_attempt_at=now())
        taken = claim(tenant, rows(job)[0])
        assert taken.attempt == attempt
        completion.retry_asset(claim=taken, failure=failure)
    (row,) = rows(job)
    assert row.state == A.FAILED and row.error_code == "fetch_failed"
    assert refreshed(job).state == J.FAILED


def test_permanent_failure_fails_the_asset_once_and_the_job_partially(tenant, published, hook):
    job = submit(tenant, [url_spec("good"), url_spec("bad")])
    dispatch(tenant)
    good, bad = rows(job)
    complete(claim(tenant, good))
    failure = failures.Failure("corrupt_image", "the image data is corrupt", transient=False)
    assert completion.fail_asset(claim=claim(tenant, bad), failure=failure) == "failed"
    job = refreshed(job)
    assert job.state == J.PARTIALLY_FAILED and (job.assets_done, job.assets_failed) == (1, 1)
    (_, bad) = rows(job)
    assert bad.attempts == 1 and bad.error_code == "corrupt_image"
    delivery = find(WebhookDelivery, order_by='created_at', tenant_id=tenant.id)[0]
    assert delivery.event_type == "job.failed"
    assert delivery.payload["data"]["failed_assets"] == [{"asset_id": "bad", "error_code": "corrupt_image"}]
    assert count(AuditEvent, tenant_id=tenant.id, action="index_job.asset_failed") == 1


def test_cancel_stops_open_assets_and_discards_a_result_in_flight(tenant, published, hook, settings):
    settings.INDEX_MAX_INFLIGHT_PER_TENANT = 2
    job = submit(tenant, [url_spec(f"a{i}") for i in range(4)])
    dispatch(tenant)
    first, second, *_ = rows(job)
    complete(claim(tenant, first))
    running = claim(tenant, second)
    cancelled = job_services.cancel_job(tenant_id=tenant.id, job_id=job.id, actor=completion.WORKER_ACTOR)
    assert cancelled.state == J.CANCELLED
    assert [r.state for r in rows(job)] == [A.SUCCEEDED, A.CANCELLED, A.CANCELLED, A.CANCELLED]
    assert complete(running) == "stale"  # the worker finishing after the cancel writes nothing
    assert count(Face, tenant_id=tenant.id) == 1  # the finished asset keeps its face
    job = refreshed(job)
    assert (job.assets_done, job.assets_cancelled, job.state) == (1, 3, J.CANCELLED)
    assert find(WebhookDelivery, order_by='created_at', tenant_id=tenant.id)[0].event_type == "job.cancelled"
    assert dispatch(tenant) == []  # nothing of a cancelled job is dispatched again
    # Cancelling again is a no-op; a job that finished otherwise cannot be cancelled.
    assert job_services.cancel_job(tenant_id=tenant.id, job_id=job.id, actor=completion.WORKER_ACTOR).state \
        == J.CANCELLED
    done = submit(tenant, [url_spec("z")])
    dispatch(tenant)
    complete(claim(tenant, rows(done)[0]))
    with pytest.raises(job_services.JobFinished):
        job_services.cancel_job(tenant_id=tenant.id, job_id=done.id, actor=completion.WORKER_ACTOR)


def test_cancel_of_a_foreign_job_is_not_found(tenant, other_tenant, published):
    job = submit(other_tenant, [url_spec("a")])
    with pytest.raises(job_services.JobNotFound):
        job_services.cancel_job(tenant_id=tenant.id, job_id=job.id, actor=completion.WORKER_ACTOR)


def test_sweeper_requeues_an_asset_whose_worker_died(tenant, published):
    job = submit(tenant, [url_spec("a")])
    dispatch(tenant)
    (row,) = rows(job)
    claim(tenant, row)
    update(IndexJobAsset, {'id': row.id}, lease_expires_at=now() - timedelta(seconds=1))
    published.clear()
    report = sweeper.sweep()
    assert report.leases_recovered == 1
    (row,) = rows(job)
    assert row.state == A.QUEUED and published.ids() == [str(row.id)]
    assert claim(tenant, row).attempt == 2


def test_sweeper_fails_an_asset_that_keeps_killing_workers(tenant, published, settings):
    settings.INDEX_MAX_ATTEMPTS = 2
    job = submit(tenant, [url_spec("a")])
    dispatch(tenant)
    (row,) = rows(job)
    for _ in range(2):
        claim(tenant, row)
        update(IndexJobAsset, {'id': row.id}, lease_expires_at=now() - timedelta(seconds=1))
        sweeper.sweep()
    (row,) = rows(job)
    assert row.state == A.FAILED and row.error_code == "worker_lost"


def test_sweeper_resends_lost_messages_and_due_retries(tenant, published, settings):
    settings.INDEX_MAX_INFLIGHT_PER_TENANT = 2
    job = submit(tenant, [url_spec("a"), url_spec("b")])
    dispatch(tenant)
    a, b = rows(job)
    completion.retry_asset(claim=claim(tenant, b), failure=failures.Failure("x", "y", transient=True))
    long_ago = now() - timedelta(hours=1)
    update(IndexJobAsset, {'id': a.id}, dispatched_at=long_ago)
    update(IndexJobAsset, {'id': b.id}, next_attempt_at=long_ago)
    published.clear()
    report = sweeper.sweep()
    assert (report.messages_resent, report.retries_resent) == (1, 1)
    assert sorted(published.ids()) == sorted([str(a.id), str(b.id)])
    published.clear()
    assert sweeper.sweep().messages_resent == 0  # not again until the timer runs out anew


@override_settings(INDEX_JOB_RETENTION_DAYS=1)
def test_sweeper_purges_finished_jobs_past_retention(tenant, published):
    job = submit(tenant, [url_spec("a")])
    dispatch(tenant)
    complete(claim(tenant, rows(job)[0]))
    update(IndexJob, {'id': job.id}, finished_at=now() - timedelta(days=2))
    assert sweeper.sweep().jobs_purged == 1
    assert not count(IndexJob, id=job.id) and not count(IndexJobAsset, job_id=job.id)
    assert count(Face, tenant_id=tenant.id) == 1  # faces are not the job's to delete


def test_a_suspended_tenant_gets_no_dispatch(tenant, published):
    submit(tenant, [url_spec("a")])
    tenant.status = "suspended"
    tenant.save()
    assert dispatch(tenant) == []


def test_rows_are_invisible_to_another_tenant(tenant, other_tenant, published):
    job = submit(tenant, [url_spec("a")])
    with tenant_context(other_tenant.id):
        assert not IndexJob.objects.filter(id=job.id).exists()
        assert not IndexJobAsset.objects.filter(job_id=job.id).exists()

"""Retention purges that keep chains verifiable, and anchoring chain heads (database and S3)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import boto3
import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from audit import verification
from audit.anchors import anchor_chain_heads
from audit.models import AuditAnchor, AuditEvent, AuditRetentionCheckpoint
from audit.retention import purge_expired_events
from audit.services import append_event, chain_of
from faceservice.tenancy import platform_scope, tenant_context
from tests.audit.conftest import as_superuser


def backdated(tenant_id, *ages_in_days: int) -> list[AuditEvent]:
    """Events that happened this many days ago, appended in that order."""
    now = timezone.now()
    with tenant_context(tenant_id):
        return [append_event(tenant_id=tenant_id, occurred_at=now - timedelta(days=age), values={
            "actor_type": "system", "actor_id": "", "actor_name": "tests", "role": "",
            "action": "search", "target": {"job_id": str(uuid.uuid4())}, "outcome": "success",
            "details": {"age": age}, "request_id": "", "client_ip": None, "receipt_id": None})
            for age in ages_in_days]


@pytest.mark.pure
def test_default_retention_is_seven_years(settings):
    assert settings.AUDIT_RETENTION_DAYS == 2557


def test_purge_removes_old_events_and_keeps_the_chain_verifiable(db):
    tenant_id = uuid.uuid4()
    events = backdated(tenant_id, 3000, 2900, 2800, 100, 10)
    results = purge_expired_events(chains=[chain_of(tenant_id)])
    assert [(r.through_seq, r.purged_events) for r in results] == [(3, 3)]
    with platform_scope():
        remaining = list(AuditEvent.objects.filter(chain=chain_of(tenant_id)).order_by("seq"))
        checkpoint = AuditRetentionCheckpoint.objects.get(chain=chain_of(tenant_id))
    assert [e.seq for e in remaining] == [4, 5, 6]
    assert remaining[-1].action == "audit.retention_purged"  # the purge is on the record
    assert remaining[-1].details["through_seq"] == 3
    assert (checkpoint.seq, checkpoint.hash, checkpoint.purged_events) == (3, events[2].hash, 3)
    report = verification.verify_chain(chain_of(tenant_id))
    assert report.ok, report.problems
    assert (report.start_seq, report.events_checked) == (3, 3)
    assert purge_expired_events(chains=[chain_of(tenant_id)]) == []  # idempotent


def test_purge_only_cuts_a_prefix(db):
    """An old event after a young one (clock skew) stays, so the rest is one unbroken run."""
    tenant_id = uuid.uuid4()
    backdated(tenant_id, 3000, 10, 3000)
    assert [(r.through_seq, r.purged_events) for r in purge_expired_events(chains=[chain_of(tenant_id)])] \
        == [(1, 1)]
    assert verification.verify_chain(chain_of(tenant_id)).ok


def test_database_refuses_deleting_events_no_checkpoint_covers(db):
    tenant_id = uuid.uuid4()
    old = backdated(tenant_id, 3000, 3000)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), tenant_context(tenant_id):
        AuditEvent.objects.filter(id=old[0].id).delete()


def test_database_refuses_a_checkpoint_for_young_events(db):
    tenant_id = uuid.uuid4()
    young = backdated(tenant_id, 30)[0]
    with pytest.raises(DatabaseError, match="may not be purged"), transaction.atomic(), \
            tenant_context(tenant_id):
        AuditRetentionCheckpoint.objects.create(
            chain=young.chain, tenant_id=tenant_id, seq=1, hash=young.hash,
            cutoff=timezone.now(), purged_events=1, key_id="x", mac="x")
    # A retention setting shorter than the floor cannot get past it either.
    with pytest.raises(DatabaseError, match="may not be purged"), transaction.atomic():
        purge_expired_events(retention_days=1, chains=[young.chain])


def test_a_forged_checkpoint_does_not_hide_deleted_events(committed_db):
    tenant_id = uuid.uuid4()
    events = backdated(tenant_id, 3000, 2000, 1000, 5)
    with as_superuser() as conn:  # triggers off: the checkpoint guard does not run
        conn.execute(
            "INSERT INTO audit_retention_checkpoint (chain, tenant_id, seq, hash, cutoff, purged_events, "
            "created_at, key_id, mac) VALUES (%s, %s, 2, %s, now() - interval '400 days', 2, now(), 'k', 'm')",
            [events[0].chain, str(tenant_id), events[1].hash])
        conn.execute("DELETE FROM audit_event WHERE chain = %s AND seq <= 2", [events[0].chain])
    report = verification.verify_chain(events[0].chain)
    assert report.first_problem.kind == "checkpoint_invalid"
    assert report.first_problem.seq == 2


def test_anchoring_is_idempotent_and_signed(db, write_events):
    events = write_events(n=3)
    chain = events[0].chain
    anchor_chain_heads()
    anchor_chain_heads()  # nothing moved: no second anchor
    with platform_scope():
        anchors = list(AuditAnchor.objects.filter(chain=chain))
    assert [(a.seq, a.hash) for a in anchors] == [(3, events[2].hash)]
    assert len(anchors[0].mac) == 64
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), platform_scope():
        AuditAnchor.objects.filter(chain=chain).update(seq=1)
    report = verification.verify_chain(chain)
    assert report.ok and report.anchors_checked == 1


def test_anchors_go_to_an_object_lock_bucket(db, write_events, settings):
    bucket = f"audit-anchors-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    settings.AUDIT_ANCHOR_S3_BUCKET = bucket
    settings.AUDIT_ANCHOR_S3_RETENTION_DAYS = 30
    events = write_events(n=2)
    chain = events[0].chain
    anchor_chain_heads()
    with platform_scope():
        anchor = AuditAnchor.objects.get(chain=chain)
    key = f"audit-anchors/{chain}/{2:020d}.json"
    assert anchor.external_ref.startswith(f"s3://{bucket}/{key}?versionId=")
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > timezone.now() + timedelta(days=29)
    version = anchor.external_ref.split("versionId=")[1]
    with pytest.raises(s3.exceptions.ClientError):  # locked: not even the owner may delete it
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    report = verification.verify_chain(chain, use_s3=True)
    assert report.ok and report.anchors_checked == 2  # the database copy and the S3 copy

"""Periodic audit work (Celery beat; schedules in settings.CELERY_BEAT_SCHEDULE).

Each task is idempotent: anchoring skips chains whose head has not moved, the
purge continues from its last checkpoint, verification overwrites its result,
anomaly detection does not raise what it raised within the cooldown.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from audit import anchors, retention, verification
from audit.anomalies import detector
from audit.console import auth
from faceservice import metrics


@shared_task(name="audit.anchor_chain_heads")
def anchor_chain_heads() -> int:
    return len(anchors.anchor_chain_heads())


@shared_task(name="audit.purge_expired_events")
def purge_expired_events() -> int:
    return sum(result.purged_events for result in retention.purge_expired_events())


@shared_task(name="audit.verify_chains")
def verify_chains() -> int:
    """Verify every chain; returns how many are broken (each is also logged by the console)."""
    broken = 0
    for chain in verification.all_chains():
        report = verification.verify_chain(chain, use_s3=True)
        verification.record_verification(report)
        broken += not report.ok
    metrics.audit_verification(ok=broken == 0)
    return broken


@shared_task(name="audit.detect_anomalies")
def detect_anomalies() -> int:
    """Raise what the anomaly rules find (audit event, metric, operator alert); returns how many."""
    now = timezone.now()
    auth.forget_stale_throttles(now=now)
    return len(detector.detect(now=now))

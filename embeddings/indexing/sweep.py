"""Recovery of index jobs: the sweeper, every INDEX_SWEEP_INTERVAL_SECONDS from beat.

Assets whose worker died (lease expired: durable.lease_expired; leases are
short and renewed by the worker's heartbeat) go back to the queue, or fail
after INDEX_MAX_ATTEMPTS; queued assets and due retries whose message nobody
claimed within INDEX_REQUEUE_AFTER_SECONDS are sent again; expired inline
images fail their asset; pending assets are dispatched; finished jobs past
retention are deleted. Safe to run anywhere, any number of times: a duplicate
message is harmless, as the claim decides.

Each sweep also reads the queue for the metrics (faceservice/metrics.py): the
unfinished assets by state and the age of the oldest one waiting in the broker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone

from embeddings.indexing import inline_images
from embeddings.indexing.claims import WORKING
from embeddings.indexing.completion import finish_failed
from embeddings.indexing.dispatch import dispatch_all, publish_after_commit
from embeddings.indexing.failures import Failure
from embeddings.indexing.models import IndexJob, IndexJobAsset, InlineImage
from embeddings.indexing.services import NOT_FINISHED, Asset
from faceservice import durable, metrics
from faceservice.tenancy import platform_scope, tenant_context

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    leases_recovered: int = 0
    messages_resent: int = 0
    retries_resent: int = 0
    inline_expired: int = 0
    dispatched: int = 0
    jobs_purged: int = 0


def sweep(*, now: datetime | None = None) -> SweepReport:
    """Periodic recovery; safe to run anywhere, any number of times (see the module docstring)."""
    now = now or timezone.now()
    report = SweepReport()
    report.leases_recovered = _recover_expired_leases(now)
    # A message nobody claimed for INDEX_REQUEUE_AFTER_SECONDS was lost (a broker restart, a worker
    # killed with it prefetched) or waits in a long queue: either way a second one is harmless.
    lost_before = now - timedelta(seconds=settings.INDEX_REQUEUE_AFTER_SECONDS)
    report.messages_resent = _resend(Asset.QUEUED, "dispatched_at", lost_before, now)
    report.retries_resent = _resend(Asset.RETRY_WAIT, "next_attempt_at", lost_before, now)
    report.inline_expired = _expire_inline_images(now)
    report.dispatched = dispatch_all()
    report.jobs_purged = purge_finished_jobs(now=now)
    metrics.INDEX_LEASE_RECOVERIES.inc(report.leases_recovered)
    metrics.INDEX_RESENT.labels(reason="never_picked_up").inc(report.messages_resent)
    metrics.INDEX_RESENT.labels(reason="retry_lost").inc(report.retries_resent)
    measure_queue(now)
    return report


def measure_queue(now: datetime) -> None:
    """The unfinished assets by state and the wait of the oldest queued one, for the queue gauges.

    One aggregate over the unfinished rows (their partial index, `indexjobasset_inflight`): the queue is bounded by
    INDEX_MAX_INFLIGHT_PER_TENANT per tenant, pending rows by the jobs themselves.
    """
    with platform_scope():
        rows = (IndexJobAsset.objects.filter(state__in=metrics.INDEX_QUEUE_STATES).values("state")
                .annotate(n=Count("id"), oldest=Min("dispatched_at")))
        by_state = {row["state"]: row for row in rows}
    queued = by_state.get(Asset.QUEUED, {}).get("oldest")
    metrics.set_index_queue({state: row["n"] for state, row in by_state.items()},
                            oldest_queued_seconds=max((now - queued).total_seconds(), 0.0) if queued else 0.0)


def _recover_expired_leases(now: datetime) -> int:
    expired_lease = durable.lease_expired(working=WORKING, now=now)
    with platform_scope():
        expired = list(IndexJobAsset.objects.filter(expired_lease).values_list("tenant_id", "id")[:1000])
    for tenant_id, job_asset_id in expired:
        with tenant_context(tenant_id):
            row = IndexJobAsset.objects.select_for_update().filter(expired_lease, id=job_asset_id).first()
            if row is None:
                continue
            if row.attempts >= settings.INDEX_MAX_ATTEMPTS:
                finish_failed(row, Failure("worker_lost", f"the worker processing this asset stopped "
                                           f"{row.attempts} times", transient=False), now)
                metrics.count_index_failure("worker_lost", transient=False)
                continue
            row.state, row.dispatched_at, row.lease_expires_at = Asset.QUEUED, now, None
            row.save(update_fields=["state", "dispatched_at", "lease_expires_at"])
        logger.warning("index asset lease expired; re-queued",
                       extra={"tenant_id": str(tenant_id), "job_asset_id": str(job_asset_id)})
        publish_after_commit(tenant_id, [job_asset_id])
    return len(expired)


def _resend(state: str, since_field: str, older_than: datetime, now: datetime) -> int:
    """Send again the messages of assets in `state` that nobody picked up in time."""
    with platform_scope():
        stuck = list(IndexJobAsset.objects.filter(state=state, **{f"{since_field}__lt": older_than})
                     .values_list("tenant_id", "id")[:1000])
        # Move the clock so the next sweep waits again before re-sending.
        IndexJobAsset.objects.filter(id__in=[i for _, i in stuck], state=state).update(**{since_field: now})
    for tenant_id, job_asset_id in stuck:
        publish_after_commit(tenant_id, [job_asset_id])
    return len(stuck)


def _expire_inline_images(now: datetime) -> int:
    with platform_scope():
        expired = list(InlineImage.objects.filter(expires_at__lte=now).values_list("tenant_id", "job_asset_id")[:1000])
    for tenant_id, job_asset_id in expired:
        with tenant_context(tenant_id):
            row = IndexJobAsset.objects.select_for_update().filter(id=job_asset_id, state__in=NOT_FINISHED).first()
            if row is not None:
                finish_failed(row, Failure(inline_images.InlineImageUnavailable.code,
                                           "the inline image expired before a worker processed it",
                                           transient=False), now)
            inline_images.discard(tenant_id=tenant_id, job_asset_ids=[job_asset_id])
    return len(expired)


def purge_finished_jobs(*, now: datetime | None = None, limit: int = 20) -> int:
    """Delete jobs (and their per-asset results) finished more than INDEX_JOB_RETENTION_DAYS ago.

    A few jobs per sweep (each may hold 1,000 asset rows): the backlog drains
    over successive sweeps without one long delete.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.INDEX_JOB_RETENTION_DAYS)
    with platform_scope():
        ids = list(IndexJob.objects.filter(finished_at__lt=cutoff).values_list("id", flat=True)[:limit])
        if ids:
            IndexJob.objects.filter(id__in=ids).delete()
    return len(ids)

"""Dispatch: which of a tenant's pending assets go to the broker, and when (fairness).

At most INDEX_MAX_INFLIGHT_PER_TENANT assets of a tenant are queued,
processing or waiting to retry; the rest stay `pending` here, not in the
broker. Each finished asset refills its tenant's slots, taking one pending
asset per active job in turn (round-robin, the least recently served job
first). The broker queue therefore never holds more than that many messages
per tenant, so a small job of another tenant waits behind at most (active
tenants x limit) messages, however large the first tenant's job is.

Messages carry only (tenant id, [job-asset id, ...]); they are published
after the commit, and the sweeper re-sends what a broker lost.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from embeddings.indexing.models import IndexJobAsset
from faceservice import durable, metrics
from faceservice.celery import app
from faceservice.tenancy import platform_scope

INDEX_TASK = "embeddings.index_asset"
MAX_JOBS_PER_DISPATCH = 50  # active jobs of one tenant considered per dispatch round


def _publish(tenant_id: UUID | str, job_asset_ids: Sequence[UUID | str], countdown: float | None = None) -> None:
    app.send_task(INDEX_TASK, args=[str(tenant_id), [str(i) for i in job_asset_ids]], countdown=countdown)


def publish_after_commit(tenant_id: UUID | str, ids: Sequence[UUID | str], countdown: float | None = None) -> None:
    """One message per INDEX_BATCH_SIZE assets, in order, once the transaction committed.

    A message's assets are claimed together and pipelined in one worker
    process (embeddings/indexing/pipeline.py); the tenant's in-flight limit still counts
    assets, so with the default 8 slots and batches of 4, two worker
    processes can work on one tenant at once.
    """
    size = max(1, settings.INDEX_BATCH_SIZE)
    for start in range(0, len(ids), size):
        chunk = list(ids[start:start + size])
        # robust: a broker hiccup must not fail committed work; the sweeper re-sends.
        transaction.on_commit(lambda c=chunk: _publish(tenant_id, c, countdown), robust=True)


# One statement (one round trip): the tenant's free slots, the next pending
# asset of each active job in turn (the least recently served job first),
# marked queued, and the jobs' last_dispatched_at moved. Runs under the
# tenant's advisory lock.
_DISPATCH_SQL = """
WITH free AS (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM tenants_tenant WHERE id = %(tenant)s AND status = 'active')
           THEN GREATEST(%(limit)s - (SELECT count(*) FROM embeddings_indexjobasset
                                      WHERE tenant_id = %(tenant)s
                                        AND state IN ('queued', 'processing', 'retry_wait')), 0)
           ELSE 0 END AS n
),
picked AS (
    SELECT p.id AS asset_id, j.id AS job_id,
           row_number() OVER (ORDER BY p.turn, j.last_dispatched_at ASC NULLS FIRST, j.created_at, j.id) AS ord
    FROM (
        SELECT id, created_at, last_dispatched_at FROM embeddings_indexjob
        WHERE tenant_id = %(tenant)s AND state IN ('queued', 'running')
        ORDER BY created_at, id LIMIT %(jobs)s
    ) j
    CROSS JOIN LATERAL (
        SELECT a.id, row_number() OVER (ORDER BY a.position) AS turn
        FROM embeddings_indexjobasset a
        WHERE a.job_id = j.id AND a.state = 'pending'
        ORDER BY a.position LIMIT (SELECT n FROM free)
    ) p
    ORDER BY ord LIMIT (SELECT n FROM free)
),
queued AS (
    UPDATE embeddings_indexjobasset a SET state = 'queued', dispatched_at = %(now)s
    FROM picked WHERE a.id = picked.asset_id AND a.state = 'pending'
    RETURNING a.id, picked.job_id, picked.ord
),
served AS (
    UPDATE embeddings_indexjob SET last_dispatched_at = %(now)s WHERE id IN (SELECT job_id FROM queued)
)
SELECT id FROM queued ORDER BY ord
"""


def dispatch_tenant(*, tenant_id: UUID | str, now: datetime | None = None) -> list[UUID]:
    """Top the tenant's in-flight assets up to the limit, one per active job in turn.

    Turns: each job's first pending asset, then each job's second, ...; among
    equal turns the job served least recently goes first, so even one free
    slot at a time alternates between the tenant's jobs. A suspended tenant's
    jobs wait.
    """
    now = now or timezone.now()
    with durable.bound_transaction(tenant_id, synchronous_commit=False), connection.cursor() as cursor:
        durable.advisory_lock(f"index-dispatch:{tenant_id}")
        cursor.execute(_DISPATCH_SQL, {"tenant": str(tenant_id), "limit": settings.INDEX_MAX_INFLIGHT_PER_TENANT,
                                       "jobs": MAX_JOBS_PER_DISPATCH, "now": now})
        queued = [row[0] for row in cursor.fetchall()]
    publish_after_commit(tenant_id, queued)  # in round-robin order
    metrics.INDEX_DISPATCHED.inc(len(queued))
    return queued


def dispatch_all() -> int:
    """Dispatch for every tenant with pending assets, starting at a random tenant."""
    with platform_scope():
        tenants = list(IndexJobAsset.objects.filter(state=IndexJobAsset.State.PENDING)
                       .values_list("tenant_id", flat=True).distinct())
    random.shuffle(tenants)
    return sum(len(dispatch_tenant(tenant_id=tenant_id)) for tenant_id in tenants)


def refill_after_commit(tenant_id: UUID | str) -> None:
    """Dispatch the tenant once the transaction committed (its finished assets freed slots)."""
    # robust: the commit stands whatever the refill meets; the sweeper dispatches what is left.
    transaction.on_commit(lambda: dispatch_tenant(tenant_id=tenant_id), robust=True)

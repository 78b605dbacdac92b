"""A worker's claim on index assets: lease, fencing token, heartbeat (faceservice/durable.py).

Claimable: `queued`; `retry_wait` and due (durable.CLOCK_SLACK: the clocks of
workers and the database differ); `processing` with an expired lease (its
worker died) and attempts left — the sweeper fails one without. Anything else
means a duplicate or late message, and the asset is left out.

The claim sets `processing`, a lease of INDEX_ASSET_LEASE_SECONDS and
`attempts + 1`: the fencing token. Whatever finishes the asset
(completion.py) first checks, under the row's lock, that the claim still
`held`s it, so a worker whose lease was taken over, or whose job was
cancelled, cannot commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection

from embeddings.image_sources import ImageSource
from embeddings.indexing.models import IndexJob, IndexJobAsset
from embeddings.indexing.services import Job, JobOptions
from faceservice import durable

WORKING = IndexJobAsset.State.PROCESSING


@dataclass(frozen=True)
class Claim:
    """What a worker needs to process one asset, and the fencing token it holds."""

    tenant_id: str
    job_id: str
    job_asset_id: str
    attempt: int
    asset_id: str
    subject_id: str | None
    source_kind: str
    source: dict[str, Any] = field(repr=False)
    options: JobOptions
    submitted_at: datetime
    faces_expire_at: datetime | None
    queued_ms: float
    collection_id: str | None = None

    def image_source(self) -> ImageSource:
        if self.source_kind == IndexJobAsset.SourceKind.URL:
            return ImageSource(url=self.source["url"])
        return ImageSource(s3_bucket=self.source["bucket"], s3_key=self.source["key"])


# --- Claiming --------------------------------------------------------------------------

# The message's assets in one statement (the workers' hot path: no ORM), each
# with its own fencing token (attempts) and lease: durable.claimable's rule in
# SQL. SKIP LOCKED, in id order: an asset that another transaction holds right
# now (a worker finishing it, a cancel, the sweeper) is not ours to process,
# and two overlapping claims never deadlock.
_CLAIM_SQL = """
WITH free AS (
    SELECT id FROM embeddings_indexjobasset
    WHERE id = ANY(%(ids)s::uuid[]) AND tenant_id = %(tenant)s
    ORDER BY id FOR UPDATE SKIP LOCKED
)
UPDATE embeddings_indexjobasset a
SET state = 'processing', attempts = a.attempts + 1, lease_expires_at = %(lease)s,
    started_at = COALESCE(a.started_at, %(now)s)
FROM free, embeddings_indexjob j
WHERE a.id = free.id AND j.id = a.job_id AND j.state <> 'cancelled'
  AND (a.state = 'queued'
       OR (a.state = 'retry_wait' AND (a.next_attempt_at IS NULL OR a.next_attempt_at <= %(due)s))
       OR (a.state = 'processing' AND a.lease_expires_at < %(now)s AND a.attempts < %(max_attempts)s))
RETURNING a.id, a.attempts, a.asset_id, a.subject_id, a.source_kind, a.source, a.dispatched_at,
          j.id, j.state, j.options, j.created_at, j.faces_expire_at, j.collection_id
"""


def claim_assets(*, tenant_id: UUID | str, job_asset_ids: Sequence[UUID | str]) -> list[Claim]:
    """Claim a message's assets at once; those not ours to process are left out (module docstring).

    In the order given (the dispatch's round-robin order).
    """
    times = durable.claim_times(settings.INDEX_ASSET_LEASE_SECONDS)
    now = times.now
    with durable.bound_transaction(tenant_id, synchronous_commit=False), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {
            "ids": [str(i) for i in job_asset_ids], "tenant": str(tenant_id), "now": now,
            "due": times.due, "lease": times.lease_expires_at, "max_attempts": settings.INDEX_MAX_ATTEMPTS})
        found = {str(row[0]): row[1:] for row in cursor.fetchall()}
        starting = sorted({str(row[6]) for row in found.values() if row[7] == Job.QUEUED})
        if starting:
            IndexJob.objects.filter(id__in=starting, state=Job.QUEUED).update(state=Job.RUNNING, started_at=now)
    return [_claim_of(tenant_id, str(i), found[str(i)], now) for i in job_asset_ids if str(i) in found]


def claim_asset(*, tenant_id: UUID | str, job_asset_id: UUID | str) -> Claim | None:
    """claim_assets for one asset: its claim, or None when it is not ours to process."""
    claims = claim_assets(tenant_id=tenant_id, job_asset_ids=[job_asset_id])
    return claims[0] if claims else None


def _claim_of(tenant_id: UUID | str, job_asset_id: str, row: tuple, now: datetime) -> Claim:
    attempts, asset_id, subject_id, kind, source, dispatched_at, job_id, _, options, created_at, \
        faces_expire_at, collection_id = row
    queued_since = dispatched_at or created_at
    return Claim(tenant_id=str(tenant_id), job_id=str(job_id), job_asset_id=job_asset_id, attempt=attempts,
                 asset_id=asset_id, subject_id=subject_id, source_kind=kind, source=json_value(source),
                 options=JobOptions.from_dict(json_value(options)), submitted_at=created_at,
                 faces_expire_at=faces_expire_at, collection_id=str(collection_id),
                 queued_ms=max(0.0, (now - queued_since).total_seconds() * 1000))


# --- Holding -------------------------------------------------------------------------------

def renew_leases(*, tenant_id: UUID | str, claims: Sequence[Claim]) -> int:
    """Extend the leases of claims still held (a heartbeat for a long batch). How many were renewed."""
    if not claims:
        return 0
    lease = durable.claim_times(settings.INDEX_ASSET_LEASE_SECONDS).lease_expires_at
    with durable.bound_transaction(tenant_id, synchronous_commit=False), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE embeddings_indexjobasset a SET lease_expires_at = %s "
            "FROM unnest(%s::uuid[], %s::int[]) AS held(id, attempts) "
            "WHERE a.id = held.id AND a.tenant_id = %s AND a.state = 'processing' AND a.attempts = held.attempts",
            [lease, [c.job_asset_id for c in claims], [c.attempt for c in claims], str(tenant_id)])
        return cursor.rowcount


def json_value(value: Any) -> Any:
    # Django hands jsonb to the JSONField as text; a raw cursor sees the same.
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class HeldRow:
    """The few columns of a claimed asset that finishing it needs."""

    id: UUID
    tenant_id: UUID
    job_id: UUID
    asset_id: str
    subject_id: str | None
    source_kind: str
    source: dict
    attempts: int


def held(tenant_id: str, claim: Claim) -> HeldRow | None:
    """The asset row, locked, if this claim still holds it (else a newer attempt or cancel won)."""
    found = (IndexJobAsset.objects.select_for_update()
             .filter(durable.held(working=WORKING, token=claim.attempt), tenant_id=tenant_id, id=claim.job_asset_id)
             .values_list("id", "tenant_id", "job_id", "asset_id", "subject_id", "source_kind", "source",
                          "attempts").first())
    return HeldRow(*found) if found else None


def held_many(tenant_id: str, claims: Sequence[Claim]) -> dict[str, HeldRow]:
    """held() for several claims in one statement, locked in id order (the order cancel_job locks in)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.id, a.tenant_id, a.job_id, a.asset_id, a.subject_id, a.source_kind, a.source, a.attempts "
            "FROM embeddings_indexjobasset a JOIN unnest(%s::uuid[], %s::int[]) AS held(id, attempts) "
            "ON a.id = held.id AND a.attempts = held.attempts "
            "WHERE a.tenant_id = %s AND a.state = 'processing' ORDER BY a.id FOR UPDATE OF a",
            [[c.job_asset_id for c in claims], [c.attempt for c in claims], str(tenant_id)])
        rows = [HeldRow(*found[:6], json_value(found[6]), found[7]) for found in cursor.fetchall()]
    return {str(row.id): row for row in rows}

"""Writes of index jobs: submit, dispatch (fairness), claim / complete / fail / retry, cancel, sweep.

PostgreSQL holds every job's and asset's state; Celery messages carry only
(tenant id, job-asset id). The life of an asset (see IndexJobAsset):

    pending --dispatch--> queued --claim--> processing --complete--> succeeded
                                               |  \\--permanent error--> failed
                                               \\--transient error--> retry_wait --claim--> ...

Exactly-once effect: completing writes the faces (replace_asset_faces) and
marks the asset succeeded in ONE transaction, under the asset's row lock, and
only if the worker still holds the claim (`attempts` is a fencing token). A
duplicate message finds the asset finished and does nothing; a worker whose
lease was taken over cannot commit; a re-run of the same image replaces its
own faces, never adds to them.

Fairness: at most INDEX_MAX_INFLIGHT_PER_TENANT assets of a tenant are queued,
processing or waiting to retry; the rest stay `pending` here, not in the
broker. Each finished asset refills its tenant's slots, taking one pending
asset per active job in turn (round-robin, the least recently served job
first). The broker
queue therefore never holds more than that many messages per tenant, so a
small job of another tenant waits behind at most (active tenants x limit)
messages, however large the first tenant's job is.

Recovery (the sweeper, every INDEX_SWEEP_INTERVAL_SECONDS from beat): assets
whose worker died (lease expired) go back to the queue (or fail after
INDEX_MAX_ATTEMPTS), messages that never arrived are sent again, due retries
whose message was lost are sent again, expired inline images fail their
asset, pending assets are dispatched, finished jobs past retention are deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.services import Actor, record_event
from embeddings.engine import AnalyzeOptions
from embeddings.image_sources import ImageSource
from embeddings.indexing import inline_images
from embeddings.models import IndexJob, IndexJobAsset, InlineImage
from embeddings.store.services import write_asset_faces
from faceservice.tenancy import platform_scope, set_tenant_for_transaction, tenant_context, tenant_transaction
from tenants import data_keys
from tenants.webhooks import services as webhooks

logger = logging.getLogger(__name__)

INDEX_TASK = "embeddings.index_asset"
WORKER_ACTOR = Actor.system("index-worker")
Asset = IndexJobAsset.State
Job = IndexJob.State
NOT_FINISHED = (Asset.PENDING, Asset.QUEUED, Asset.PROCESSING, Asset.RETRY_WAIT)
MAX_JOBS_PER_DISPATCH = 50  # active jobs of one tenant considered per dispatch round


class JobNotFound(Exception):
    """No such job of this tenant (a foreign id reads exactly the same)."""


class JobFinished(Exception):
    """The job already finished; it cannot be cancelled."""


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was used before with a different request."""


@dataclass(frozen=True)
class JobOptions:
    """What to keep of each image (AnalyzeOptions, as the client gave them)."""

    max_faces: int | None = None
    min_face_size: float = 0.0
    min_det_score: float = 0.5

    def as_dict(self) -> dict[str, Any]:
        return {"max_faces": self.max_faces, "min_face_size": self.min_face_size,
                "min_det_score": self.min_det_score}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> JobOptions:
        return cls(**{k: v for k, v in values.items() if k in ("max_faces", "min_face_size", "min_det_score")})

    def analyze_options(self) -> AnalyzeOptions:
        return AnalyzeOptions(max_faces=self.max_faces, min_face_size=float(self.min_face_size),
                              min_det_score=float(self.min_det_score),
                              low_score_floor=min(0.3, float(self.min_det_score)))


@dataclass(frozen=True)
class AssetSpec:
    asset_id: str
    source: ImageSource
    subject_id: str | None = None


@dataclass(frozen=True)
class SubmittedJob:
    job: IndexJob
    created: bool  # False: an earlier submission with the same Idempotency-Key


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

    def image_source(self) -> ImageSource:
        if self.source_kind == IndexJobAsset.SourceKind.URL:
            return ImageSource(url=self.source["url"])
        return ImageSource(s3_bucket=self.source["bucket"], s3_key=self.source["key"])


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    transient: bool


# --- Submitting ----------------------------------------------------------------------

def request_fingerprint(*, tenant_id: UUID | str, body: Any) -> str:
    """HMAC-SHA256 of the canonical request, keyed from SECRET_KEY.

    Keyed, not a bare hash: the stored value must not let anyone test whether
    a given image was submitted.
    """
    key = hashlib.sha256(b"faceservice/idempotency/v1|" + settings.SECRET_KEY.encode()).digest()
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, f"{tenant_id}|{canonical}".encode(), hashlib.sha256).hexdigest()


@contextmanager
def _bound(tenant_id: UUID | str, *, durable: bool = True) -> Iterator[None]:
    """A transaction bound to the tenant (row-level security), cheaply.

    Outermost (a worker's task): BEGIN + one set_config in a
    tenant_transaction, so tenant scopes of this tenant inside it cost
    nothing, and the binding ends with the transaction. Nested:
    tenant_context, which restores the outer binding. This is the workers'
    hot path, where round trips add up.

    durable=False: asynchronous commit (no wait for the WAL flush) for pure
    bookkeeping that the sweeper rebuilds if a database crash loses it — a
    claim (the asset is queued again, its lease never taken) or a dispatch
    (the assets are pending again). Never for writing faces.
    """
    if connection.in_atomic_block:
        with tenant_context(tenant_id):
            yield
        return
    with tenant_transaction():
        set_tenant_for_transaction(tenant_id)
        if not durable:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('synchronous_commit', 'off', true)")
        yield


def _advisory_lock(name: str) -> None:
    # Transaction-scoped: released at commit or rollback, never leaked to a pooled connection.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])


def submit_index_job(*, tenant_id: UUID | str, assets: Sequence[AssetSpec], options: JobOptions,
                     actor: Actor, fingerprint: str, idempotency_key: str | None = None,
                     faces_expire_at: datetime | None = None) -> SubmittedJob:
    """Create a job (or return the one made earlier under the same Idempotency-Key).

    Inline images are sealed here, in the web process, before anything is
    stored or sent. Dispatch happens after the commit.
    """
    _check_assets(assets)
    key = (data_keys.active_key(tenant_id=tenant_id, actor=actor)
           if any(spec.source.data is not None for spec in assets) else None)
    with tenant_context(tenant_id):
        if idempotency_key:
            _advisory_lock(f"index-job-idempotency:{tenant_id}:{idempotency_key}")
            existing = IndexJob.objects.filter(tenant_id=tenant_id, idempotency_key=idempotency_key).first()
            if existing is not None:
                if not hmac.compare_digest(existing.request_fingerprint, fingerprint):
                    raise IdempotencyKeyReused()
                return SubmittedJob(job=existing, created=False)
        job = _create_job(tenant_id, assets, options, actor, fingerprint, idempotency_key, faces_expire_at, key)
    transaction.on_commit(lambda: dispatch_tenant(tenant_id=tenant_id), robust=True)
    return SubmittedJob(job=job, created=True)


def _check_assets(assets: Sequence[AssetSpec]) -> None:
    if not assets:
        raise ValueError("a job needs at least one asset")
    if len(assets) > settings.INDEX_JOB_MAX_ASSETS:
        raise ValueError(f"a job may hold at most {settings.INDEX_JOB_MAX_ASSETS} assets")
    seen: set[str] = set()
    for spec in assets:
        if spec.asset_id in seen:
            raise ValueError(f"asset_id {spec.asset_id!r} appears more than once")
        seen.add(spec.asset_id)


def _source_of(source: ImageSource) -> tuple[str, dict[str, Any]]:
    if source.data is not None:
        return IndexJobAsset.SourceKind.INLINE, {}
    if source.url:
        return IndexJobAsset.SourceKind.URL, {"url": source.url}
    return IndexJobAsset.SourceKind.S3, {"bucket": source.s3_bucket, "key": source.s3_key}


def _create_job(tenant_id, assets, options, actor, fingerprint, idempotency_key, faces_expire_at,
                key) -> IndexJob:
    now = timezone.now()
    job = IndexJob.objects.create(
        tenant_id=tenant_id, idempotency_key=idempotency_key or None, request_fingerprint=fingerprint,
        options=options.as_dict(), faces_expire_at=faces_expire_at, assets_total=len(assets),
        submitted_by={"type": actor.type, "id": actor.id, "name": actor.name}, created_at=now)
    rows = []
    for position, spec in enumerate(assets):
        kind, source = _source_of(spec.source)
        rows.append(IndexJobAsset(id=uuid.uuid4(), tenant_id=tenant_id, job=job, position=position,
                                  asset_id=spec.asset_id, subject_id=spec.subject_id, source_kind=kind,
                                  source=source))
    IndexJobAsset.objects.bulk_create(rows, batch_size=500)
    inline = {row.id: spec.source.data for row, spec in zip(rows, assets, strict=True)
              if spec.source.data is not None}
    if inline:
        InlineImage.objects.bulk_create(
            inline_images.sealed_rows(tenant_id=tenant_id, job_id=job.id, images=inline, key=key, now=now),
            batch_size=50)
    kinds = [row.source_kind for row in rows]
    record_event(tenant_id=tenant_id, actor=actor, action="index_job.submitted", target={"job_id": str(job.id)},
                 details={"assets": len(rows), "options": options.as_dict(),
                          "sources": {kind: kinds.count(kind) for kind in sorted(set(kinds))},
                          "idempotency_key": bool(idempotency_key)})
    return job


# --- Dispatching (fairness) ------------------------------------------------------------

def _publish(tenant_id: UUID | str, job_asset_ids: Sequence[UUID | str], countdown: float | None = None) -> None:
    from faceservice.celery import app

    app.send_task(INDEX_TASK, args=[str(tenant_id), [str(i) for i in job_asset_ids]], countdown=countdown)


def _publish_after_commit(tenant_id: UUID | str, ids: Sequence[UUID | str], countdown: float | None = None):
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
    with _bound(tenant_id, durable=False), connection.cursor() as cursor:
        _advisory_lock(f"index-dispatch:{tenant_id}")
        cursor.execute(_DISPATCH_SQL, {"tenant": str(tenant_id), "limit": settings.INDEX_MAX_INFLIGHT_PER_TENANT,
                                       "jobs": MAX_JOBS_PER_DISPATCH, "now": now})
        queued = [row[0] for row in cursor.fetchall()]
    _publish_after_commit(tenant_id, queued)  # in round-robin order
    return queued


def dispatch_all() -> int:
    """Dispatch for every tenant with pending assets, starting at a random tenant."""
    with platform_scope():
        tenants = list(IndexJobAsset.objects.filter(state=Asset.PENDING)
                       .values_list("tenant_id", flat=True).distinct())
    random.shuffle(tenants)
    return sum(len(dispatch_tenant(tenant_id=tenant_id)) for tenant_id in tenants)


# --- Claiming and finishing one asset ---------------------------------------------------

# One statement: the claim is the row lock, the state check and the change at
# once (READ COMMITTED re-checks the WHERE after waiting for a lock), so two
# workers can never both claim an asset. The worker's hot path: no ORM here.
_CLAIM_SQL = """
UPDATE embeddings_indexjobasset a
SET state = 'processing', attempts = a.attempts + 1, lease_expires_at = %(lease)s,
    started_at = COALESCE(a.started_at, %(now)s)
FROM embeddings_indexjob j
WHERE a.id = %(id)s AND a.tenant_id = %(tenant)s AND j.id = a.job_id AND j.state <> 'cancelled'
  AND (a.state = 'queued'
       OR (a.state = 'retry_wait' AND (a.next_attempt_at IS NULL OR a.next_attempt_at <= %(due)s))
       OR (a.state = 'processing' AND a.lease_expires_at < %(now)s AND a.attempts < %(max_attempts)s))
RETURNING a.attempts, a.asset_id, a.subject_id, a.source_kind, a.source, a.dispatched_at,
          j.id, j.state, j.options, j.created_at, j.faces_expire_at
"""


def claim_asset(*, tenant_id: UUID | str, job_asset_id: UUID | str) -> Claim | None:
    """Take the asset for processing, or None when it is not ours to process.

    Claimable: queued; waiting to retry and due (a little slack: the clocks of
    workers and the database differ); processing with an expired lease (its
    worker died) and attempts left — the sweeper fails one without. Anything
    else means a duplicate or late message.
    """
    now = timezone.now()
    with _bound(tenant_id, durable=False), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {
            "id": str(job_asset_id), "tenant": str(tenant_id), "now": now, "due": now + timedelta(seconds=2),
            "lease": now + timedelta(seconds=settings.INDEX_ASSET_LEASE_SECONDS),
            "max_attempts": settings.INDEX_MAX_ATTEMPTS})
        found = cursor.fetchone()
        if found is None:
            return None
        attempts, asset_id, subject_id, kind, source, dispatched_at, job_id, job_state, options, created_at, \
            faces_expire_at = found
        if job_state == Job.QUEUED:
            IndexJob.objects.filter(id=job_id, state=Job.QUEUED).update(state=Job.RUNNING, started_at=now)
    queued_since = dispatched_at or created_at
    return Claim(tenant_id=str(tenant_id), job_id=str(job_id), job_asset_id=str(job_asset_id), attempt=attempts,
                 asset_id=asset_id, subject_id=subject_id, source_kind=kind, source=_json(source),
                 options=JobOptions.from_dict(_json(options)), submitted_at=created_at,
                 faces_expire_at=faces_expire_at,
                 queued_ms=max(0.0, (now - queued_since).total_seconds() * 1000))


# The batch form: the message's assets in one statement, each with its own
# fencing token (attempts) and lease. SKIP LOCKED, in id order: an asset that
# another transaction holds right now (a worker finishing it, a cancel, the
# sweeper) is not ours to process, and two overlapping claims never deadlock.
_CLAIM_MANY_SQL = """
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
          j.id, j.state, j.options, j.created_at, j.faces_expire_at
"""


def claim_assets(*, tenant_id: UUID | str, job_asset_ids: Sequence[UUID | str]) -> list[Claim]:
    """Claim a message's assets at once (see claim_asset); those not ours to process are left out.

    In the order given (the dispatch's round-robin order).
    """
    now = timezone.now()
    with _bound(tenant_id, durable=False), connection.cursor() as cursor:
        cursor.execute(_CLAIM_MANY_SQL, {
            "ids": [str(i) for i in job_asset_ids], "tenant": str(tenant_id), "now": now,
            "due": now + timedelta(seconds=2), "lease": now + timedelta(seconds=settings.INDEX_ASSET_LEASE_SECONDS),
            "max_attempts": settings.INDEX_MAX_ATTEMPTS})
        found = {str(row[0]): row[1:] for row in cursor.fetchall()}
        starting = sorted({str(row[6]) for row in found.values() if row[7] == Job.QUEUED})
        if starting:
            IndexJob.objects.filter(id__in=starting, state=Job.QUEUED).update(state=Job.RUNNING, started_at=now)
    return [_claim_of(tenant_id, str(i), found[str(i)], now) for i in job_asset_ids if str(i) in found]


def _claim_of(tenant_id: UUID | str, job_asset_id: str, row: tuple, now: datetime) -> Claim:
    attempts, asset_id, subject_id, kind, source, dispatched_at, job_id, _, options, created_at, \
        faces_expire_at = row
    queued_since = dispatched_at or created_at
    return Claim(tenant_id=str(tenant_id), job_id=str(job_id), job_asset_id=job_asset_id, attempt=attempts,
                 asset_id=asset_id, subject_id=subject_id, source_kind=kind, source=_json(source),
                 options=JobOptions.from_dict(_json(options)), submitted_at=created_at,
                 faces_expire_at=faces_expire_at,
                 queued_ms=max(0.0, (now - queued_since).total_seconds() * 1000))


def renew_leases(*, tenant_id: UUID | str, claims: Sequence[Claim]) -> int:
    """Extend the leases of claims still held (a heartbeat for a long batch). How many were renewed."""
    if not claims:
        return 0
    lease = timezone.now() + timedelta(seconds=settings.INDEX_ASSET_LEASE_SECONDS)
    with _bound(tenant_id, durable=False), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE embeddings_indexjobasset a SET lease_expires_at = %s "
            "FROM unnest(%s::uuid[], %s::int[]) AS held(id, attempts) "
            "WHERE a.id = held.id AND a.tenant_id = %s AND a.state = 'processing' AND a.attempts = held.attempts",
            [lease, [c.job_asset_id for c in claims], [c.attempt for c in claims], str(tenant_id)])
        return cursor.rowcount


def _json(value: Any) -> Any:
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


def _held(tenant_id: str, claim: Claim) -> HeldRow | None:
    """The asset row, locked, if this claim still holds it (else a newer attempt or cancel won)."""
    found = (IndexJobAsset.objects.select_for_update()
             .filter(tenant_id=tenant_id, id=claim.job_asset_id, state=Asset.PROCESSING, attempts=claim.attempt)
             .values_list("id", "tenant_id", "job_id", "asset_id", "subject_id", "source_kind", "source",
                          "attempts").first())
    return HeldRow(*found) if found else None


def complete_asset(*, claim: Claim, faces: Sequence[Any], left_out: Sequence[Any], model_id: str,
                   timings: dict[str, float], refill: bool = True) -> str:
    """Write the asset's faces and mark it succeeded, in one transaction. 'stale' if we lost it."""
    now = timezone.now()
    with _bound(claim.tenant_id):
        row = _held(claim.tenant_id, claim)
        if row is None:
            return "stale"
        indexed, left = _store(row, claim, faces, left_out, model_id, timings, now)
        _count(row.job_id, now, assets_done=1, faces_indexed=indexed, faces_left_out=left)
    if refill:
        transaction.on_commit(lambda: dispatch_tenant(tenant_id=claim.tenant_id), robust=True)
    return "succeeded"


def _store(row: HeldRow, claim: Claim, faces: Sequence[Any], left_out: Sequence[Any], model_id: str,
           timings: dict[str, float], now: datetime) -> tuple[int, int]:
    """The faces and the asset's result, in the caller's transaction (bound, row locked). (indexed, left out)"""
    started, cpu = timezone.now(), time.thread_time()
    indexed = write_asset_faces(
        tenant_id=claim.tenant_id, asset_id=row.asset_id, faces=faces, model_id=model_id,
        submitted_at=claim.submitted_at, actor=WORKER_ACTOR, subject_id=row.subject_id,
        job_id=row.job_id, expires_at=claim.faces_expire_at)
    results = [] if indexed.superseded else [
        {"face_id": str(face_id), "bbox": _box(face.bbox), "det_score": round(float(face.det_score), 4)}
        for face_id, face in zip(indexed.face_ids, faces, strict=True)]
    left = [{"bbox": _box(f.bbox), "det_score": round(float(f.det_score), 4),
             "size": round(float(f.size), 1), "reason": f.reason} for f in left_out]
    _finish(row, Asset.SUCCEEDED, now, faces=results, left_out=left, superseded=indexed.superseded,
            error_code="", error_message="",
            timings={**timings, "store_ms": _ms_since(started), "queue_ms": round(claim.queued_ms, 1),
                     "store_cpu_ms": round((time.thread_time() - cpu) * 1000, 1)})
    return len(results), len(left)


@dataclass(frozen=True)
class Finished:
    """One analysed asset, ready to be stored."""

    claim: Claim
    faces: Sequence[Any]
    left_out: Sequence[Any]
    model_id: str
    timings: dict[str, float]


def complete_assets(*, finished: Sequence[Finished], refill: bool = True) -> dict[str, str]:
    """complete_asset for several assets of one tenant in ONE transaction (a micro-batch).

    Each asset is still fenced by its own claim, gets its own faces.indexed
    event and its own result; the row locks, the job counters and the COMMIT
    are paid once. All or nothing: if one asset's write raises, none is
    stored and the caller completes them one by one. {job_asset_id: outcome}.
    """
    if not finished:
        return {}
    tenant_id = finished[0].claim.tenant_id
    if any(item.claim.tenant_id != tenant_id for item in finished):
        raise ValueError("a micro-batch holds one tenant's assets")
    now = timezone.now()
    outcomes: dict[str, str] = {}
    with _bound(tenant_id):
        held = _held_many(tenant_id, [item.claim for item in finished])
        counts: dict[UUID, dict[str, int]] = {}
        for item in finished:
            row = held.get(item.claim.job_asset_id)
            if row is None:
                outcomes[item.claim.job_asset_id] = "stale"
                continue
            stored = _store(row, item.claim, item.faces, item.left_out, item.model_id, item.timings, now)
            job = counts.setdefault(row.job_id, {"assets_done": 0, "faces_indexed": 0, "faces_left_out": 0})
            job["assets_done"] += 1
            job["faces_indexed"] += stored[0]
            job["faces_left_out"] += stored[1]
            outcomes[item.claim.job_asset_id] = "succeeded"
        for job_id in sorted(counts, key=str):  # one lock order for every micro-batch
            _count(job_id, now, **counts[job_id])
    if refill:
        transaction.on_commit(lambda: dispatch_tenant(tenant_id=tenant_id), robust=True)
    return outcomes


def _held_many(tenant_id: str, claims: Sequence[Claim]) -> dict[str, HeldRow]:
    """The rows these claims still hold, locked in id order (the order cancel_job locks in)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.id, a.tenant_id, a.job_id, a.asset_id, a.subject_id, a.source_kind, a.source, a.attempts "
            "FROM embeddings_indexjobasset a JOIN unnest(%s::uuid[], %s::int[]) AS held(id, attempts) "
            "ON a.id = held.id AND a.attempts = held.attempts "
            "WHERE a.tenant_id = %s AND a.state = 'processing' ORDER BY a.id FOR UPDATE OF a",
            [[c.job_asset_id for c in claims], [c.attempt for c in claims], str(tenant_id)])
        rows = [HeldRow(*found[:6], _json(found[6]), found[7]) for found in cursor.fetchall()]
    return {str(row.id): row for row in rows}


def fail_asset(*, claim: Claim, failure: Failure, refill: bool = True) -> str:
    """Fail the asset for good (a permanent error, or retries exhausted)."""
    now = timezone.now()
    with _bound(claim.tenant_id):
        row = _held(claim.tenant_id, claim)
        if row is None:
            return "stale"
        _finish_failed(row, failure, now)
    if refill:
        transaction.on_commit(lambda: dispatch_tenant(tenant_id=claim.tenant_id), robust=True)
    return "failed"


def retry_asset(*, claim: Claim, failure: Failure, refill: bool = True) -> str:
    """Schedule another attempt after a transient failure (backoff + jitter), or fail when out of attempts."""
    if claim.attempt >= settings.INDEX_MAX_ATTEMPTS:
        return fail_asset(claim=claim, failure=failure, refill=refill)
    now = timezone.now()
    delay = retry_delay(claim.attempt)
    with _bound(claim.tenant_id):
        row = _held(claim.tenant_id, claim)
        if row is None:
            return "stale"
        IndexJobAsset.objects.filter(id=row.id).update(
            state=Asset.RETRY_WAIT, lease_expires_at=None, next_attempt_at=now + timedelta(seconds=delay),
            error_code=failure.code, error_message=failure.message[:500])
        _publish_after_commit(claim.tenant_id, [row.id], countdown=delay)
    return "retrying"


def retry_delay(failed_attempts: int) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random."""
    ceiling = min(settings.INDEX_RETRY_MAX_SECONDS, settings.INDEX_RETRY_BASE_SECONDS * 2 ** (failed_attempts - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _box(bbox: Sequence[float]) -> list[float]:
    return [round(float(v), 1) for v in bbox]


def _ms_since(started: datetime) -> float:
    return round((timezone.now() - started).total_seconds() * 1000, 1)


def redacted_source(kind: str, source: dict[str, Any]) -> dict[str, Any]:
    """What is kept once an asset finished: the host or bucket, never a path, query or key."""
    if kind == IndexJobAsset.SourceKind.URL and source.get("url"):
        return {"host": webhooks._host(source["url"])}
    if kind == IndexJobAsset.SourceKind.S3 and source.get("bucket"):
        return {"bucket": source["bucket"]}
    return {}


def _finish(row: HeldRow | IndexJobAsset, state: str, now: datetime, **results: Any) -> None:
    """Mark a (locked) asset finished with its results; forget its source and sealed image."""
    IndexJobAsset.objects.filter(id=row.id).update(
        state=state, finished_at=now, lease_expires_at=None, next_attempt_at=None,
        source=redacted_source(row.source_kind, row.source), **results)
    if row.source_kind == IndexJobAsset.SourceKind.INLINE:
        inline_images.discard(tenant_id=row.tenant_id, job_asset_ids=[row.id])


def _finish_failed(row: HeldRow | IndexJobAsset, failure: Failure, now: datetime) -> None:
    _finish(row, Asset.FAILED, now, error_code=failure.code, error_message=failure.message[:500])
    record_event(tenant_id=row.tenant_id, actor=WORKER_ACTOR, action="index_job.asset_failed",
                 target={"job_id": str(row.job_id), "asset_id": row.asset_id}, outcome="failure",
                 details={"error_code": failure.code, "attempts": row.attempts})
    _count(row.job_id, now, assets_failed=1)


_COUNTERS = ("assets_done", "assets_failed", "assets_cancelled", "faces_indexed", "faces_left_out")


def _count(job_id: UUID, now: datetime, **increments: int) -> None:
    """Add to the job's counters; the update that finishes the last asset finishes the job.

    One UPDATE ... RETURNING: it takes the job row's lock, so exactly one
    caller sees the last asset finished.
    """
    if not set(increments) <= set(_COUNTERS):
        raise ValueError(f"unknown counters: {sorted(set(increments) - set(_COUNTERS))}")
    assignments = ", ".join(f"{name} = {name} + %s" for name in increments)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE embeddings_indexjob SET {assignments} WHERE id = %s "  # noqa: S608 - fixed names
                       "RETURNING state, assets_done + assets_failed + assets_cancelled, assets_total",
                       [*increments.values(), job_id])
        state, finished, total = cursor.fetchone()
    if state not in IndexJob.TERMINAL_STATES and finished >= total:
        _finish_job(IndexJob.objects.get(id=job_id), now)


def _finish_job(job: IndexJob, now: datetime) -> None:
    if job.assets_failed == 0:
        job.state = Job.SUCCEEDED
    else:
        job.state = Job.PARTIALLY_FAILED if job.assets_done else Job.FAILED
    job.finished_at = now
    job.started_at = job.started_at or now
    job.save(update_fields=["state", "finished_at", "started_at", "updated_at"])
    summary = job_summary(job)
    record_event(tenant_id=job.tenant_id, actor=WORKER_ACTOR, action="index_job.finished",
                 target={"job_id": str(job.id)}, outcome="success" if job.state == Job.SUCCEEDED else "failure",
                 details={k: v for k, v in summary.items() if k != "failed_assets"})
    event = webhooks.JOB_SUCCEEDED if job.state == Job.SUCCEEDED else webhooks.JOB_FAILED
    webhooks.emit_event(tenant_id=job.tenant_id, event_type=event, payload=summary)


def job_summary(job: IndexJob) -> dict[str, Any]:
    """What webhooks and the audit log say about a finished job: ids, counts, timings."""
    failed = list(IndexJobAsset.objects.filter(job_id=job.id, state=Asset.FAILED).order_by("position")
                  .values("asset_id", "error_code")[:100])
    duration = (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else None
    return {
        "job_id": str(job.id), "state": job.state, "assets_total": job.assets_total,
        "assets_done": job.assets_done, "assets_failed": job.assets_failed,
        "assets_cancelled": job.assets_cancelled, "faces_indexed": job.faces_indexed,
        "faces_left_out": job.faces_left_out, "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at,
        "duration_ms": round(duration * 1000) if duration is not None else None,
        "failed_assets": failed,
    }


# --- Cancelling --------------------------------------------------------------------------

def cancel_job(*, tenant_id: UUID | str, job_id: UUID | str, actor: Actor) -> IndexJob:
    """Cancel a job: its unfinished assets stop (one being processed is discarded at commit).

    Assets that already succeeded keep their faces. Cancelling a cancelled job
    is a no-op; a job that finished otherwise raises JobFinished.
    """
    now = timezone.now()
    with tenant_context(tenant_id):
        _advisory_lock(f"index-dispatch:{tenant_id}")
        if not IndexJob.objects.filter(tenant_id=tenant_id, id=job_id).exists():
            raise JobNotFound()
        # Lock order everywhere: asset rows, then the job row (see complete_asset).
        open_rows = list(IndexJobAsset.objects.select_for_update()
                         .filter(tenant_id=tenant_id, job_id=job_id, state__in=NOT_FINISHED).order_by("id"))
        job = IndexJob.objects.select_for_update().get(tenant_id=tenant_id, id=job_id)
        if job.state == Job.CANCELLED:
            return job
        if job.is_finished:
            raise JobFinished()
        for row in open_rows:
            row.state, row.finished_at, row.lease_expires_at, row.next_attempt_at = Asset.CANCELLED, now, None, None
            row.source = redacted_source(row.source_kind, row.source)
        IndexJobAsset.objects.bulk_update(open_rows, ["state", "finished_at", "lease_expires_at",
                                                      "next_attempt_at", "source"], batch_size=500)
        inline_images.discard(tenant_id=tenant_id, job_asset_ids=[row.id for row in open_rows])
        job.assets_cancelled += len(open_rows)
        job.state, job.finished_at = Job.CANCELLED, now
        job.save(update_fields=["assets_cancelled", "state", "finished_at", "updated_at"])
        summary = job_summary(job)
        record_event(tenant_id=tenant_id, actor=actor, action="index_job.cancelled", target={"job_id": str(job.id)},
                     details={k: v for k, v in summary.items() if k != "failed_assets"})
        webhooks.emit_event(tenant_id=tenant_id, event_type=webhooks.JOB_CANCELLED, payload=summary)
    transaction.on_commit(lambda: dispatch_tenant(tenant_id=tenant_id), robust=True)
    return job


# --- Sweeping ------------------------------------------------------------------------------

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
    report.messages_resent = _resend(Asset.QUEUED, "dispatched_at",
                                     now - timedelta(seconds=settings.INDEX_REQUEUE_AFTER_SECONDS), now)
    grace = max(60.0, 2 * settings.INDEX_SWEEP_INTERVAL_SECONDS)
    report.retries_resent = _resend(Asset.RETRY_WAIT, "next_attempt_at", now - timedelta(seconds=grace), now)
    report.inline_expired = _expire_inline_images(now)
    report.dispatched = dispatch_all()
    report.jobs_purged = purge_finished_jobs(now=now)
    return report


def _recover_expired_leases(now: datetime) -> int:
    with platform_scope():
        expired = list(IndexJobAsset.objects.filter(state=Asset.PROCESSING, lease_expires_at__lt=now)
                       .values_list("tenant_id", "id")[:1000])
    for tenant_id, job_asset_id in expired:
        with tenant_context(tenant_id):
            row = (IndexJobAsset.objects.select_for_update()
                   .filter(id=job_asset_id, state=Asset.PROCESSING, lease_expires_at__lt=now).first())
            if row is None:
                continue
            if row.attempts >= settings.INDEX_MAX_ATTEMPTS:
                _finish_failed(row, Failure("worker_lost", f"the worker processing this asset stopped "
                                            f"{row.attempts} times", transient=False), now)
                continue
            row.state, row.dispatched_at, row.lease_expires_at = Asset.QUEUED, now, None
            row.save(update_fields=["state", "dispatched_at", "lease_expires_at"])
        logger.warning("index asset lease expired; re-queued",
                       extra={"tenant_id": str(tenant_id), "job_asset_id": str(job_asset_id)})
        _publish_after_commit(tenant_id, [job_asset_id])
    return len(expired)


def _resend(state: str, since_field: str, older_than: datetime, now: datetime) -> int:
    """Send again the messages of assets in `state` that nobody picked up in time."""
    with platform_scope():
        stuck = list(IndexJobAsset.objects.filter(state=state, **{f"{since_field}__lt": older_than})
                     .values_list("tenant_id", "id")[:1000])
        # Move the clock so the next sweep waits again before re-sending.
        IndexJobAsset.objects.filter(id__in=[i for _, i in stuck], state=state).update(**{since_field: now})
    for tenant_id, job_asset_id in stuck:
        _publish_after_commit(tenant_id, [job_asset_id])
    return len(stuck)


def _expire_inline_images(now: datetime) -> int:
    with platform_scope():
        expired = list(InlineImage.objects.filter(expires_at__lte=now).values_list("tenant_id", "job_asset_id")[:1000])
    for tenant_id, job_asset_id in expired:
        with tenant_context(tenant_id):
            row = IndexJobAsset.objects.select_for_update().filter(id=job_asset_id, state__in=NOT_FINISHED).first()
            if row is not None:
                _finish_failed(row, Failure(inline_images.InlineImageUnavailable.code,
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

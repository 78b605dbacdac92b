"""How a worker's claim on an index asset ends: faces stored, failed for good, or retried.

Exactly-once effect: completing writes the faces (write_asset_faces) and
marks the asset succeeded in ONE transaction, under the asset's row lock, and
only if the worker still holds the claim (claims.held: `attempts` is the
fencing token). A duplicate message finds the asset finished and does
nothing; a worker whose lease was taken over cannot commit; a re-run of the
same image replaces its own faces, never adds to them.

Each finished asset moves its job's counters; the update that finishes the
last asset finishes the job (audit + webhook), and the tenant's freed slots
are refilled after the commit (dispatch.py).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit.services import Actor, record_event
from embeddings.indexing import inline_images
from embeddings.indexing.claims import Claim, HeldRow, held, held_many
from embeddings.indexing.dispatch import publish_after_commit, refill_after_commit
from embeddings.indexing.failures import Failure
from embeddings.indexing.models import IndexJob, IndexJobAsset
from embeddings.indexing.services import Asset, Job, job_summary, redacted_source
from embeddings.store import rounding
from embeddings.store.face_quality import shown_quality
from embeddings.store.services import write_asset_faces
from faceservice import durable, metrics
from tenants.webhooks import services as webhooks

WORKER_ACTOR = Actor.system("index-worker")


def counted(finish_claims):
    """Count the outcomes a completion function returns (`succeeded`, `failed`, `retrying`, `stale`)."""
    @functools.wraps(finish_claims)
    def run(*args, **kwargs):
        result = finish_claims(*args, **kwargs)
        for outcome in (result.values() if isinstance(result, dict) else [result]):
            metrics.count_index_assets(outcome)
        return result
    return run


@counted
def complete_asset(*, claim: Claim, faces: Sequence[Any], left_out: Sequence[Any], model_id: str,
                   timings: dict[str, float], refill: bool = True) -> str:
    """Write the asset's faces and mark it succeeded, in one transaction. 'stale' if we lost it."""
    now = timezone.now()
    with durable.bound_transaction(claim.tenant_id):
        row = held(claim.tenant_id, claim)
        if row is None:
            return "stale"
        indexed, left = _store(row, claim, faces, left_out, model_id, timings, now)
        _count(row.job_id, now, assets_done=1, faces_indexed=indexed, faces_left_out=left)
    if refill:
        refill_after_commit(claim.tenant_id)
    return "succeeded"


def _store(row: HeldRow, claim: Claim, faces: Sequence[Any], left_out: Sequence[Any], model_id: str,
           timings: dict[str, float], now: datetime) -> tuple[int, int]:
    """The faces and the asset's result, in the caller's transaction (bound, row locked). (indexed, left out)"""
    started, cpu = timezone.now(), time.thread_time()
    indexed = write_asset_faces(
        tenant_id=claim.tenant_id, asset_id=row.asset_id, faces=faces, model_id=model_id,
        submitted_at=claim.submitted_at, actor=WORKER_ACTOR, subject_id=row.subject_id,
        job_id=row.job_id, expires_at=claim.faces_expire_at, collection_id=claim.collection_id)
    results = [] if indexed.superseded else [
        {"face_id": str(face_id), "bbox": rounding.box(face.bbox), "det_score": rounding.score(face.det_score),
         **shown_quality(getattr(face, "quality", None))}
        for face_id, face in zip(indexed.face_ids, faces, strict=True)]
    left = [{"bbox": rounding.box(f.bbox), "det_score": rounding.score(f.det_score),
             "size": round(float(f.size), 1), "reason": f.reason, **shown_quality(getattr(f, "quality", None))}
            for f in left_out]
    finish(row, Asset.SUCCEEDED, now, faces=results, left_out=left, superseded=indexed.superseded,
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


@counted
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
    with durable.bound_transaction(tenant_id):
        rows = held_many(tenant_id, [item.claim for item in finished])
        counts: dict[UUID, dict[str, int]] = {}
        for item in finished:
            row = rows.get(item.claim.job_asset_id)
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
        refill_after_commit(tenant_id)
    return outcomes


@counted
def fail_asset(*, claim: Claim, failure: Failure, refill: bool = True) -> str:
    """Fail the asset for good (a permanent error, or retries exhausted)."""
    now = timezone.now()
    with durable.bound_transaction(claim.tenant_id):
        row = held(claim.tenant_id, claim)
        if row is None:
            return "stale"
        finish_failed(row, failure, now)
    if refill:
        refill_after_commit(claim.tenant_id)
    return "failed"


@counted
def retry_asset(*, claim: Claim, failure: Failure, refill: bool = True) -> str:
    """Schedule another attempt after a transient failure (backoff + jitter), or fail when out of attempts."""
    if claim.attempt >= settings.INDEX_MAX_ATTEMPTS:
        return fail_asset(claim=claim, failure=failure, refill=refill)
    now = timezone.now()
    delay = durable.retry_delay(claim.attempt, backoff())
    with durable.bound_transaction(claim.tenant_id):
        row = held(claim.tenant_id, claim)
        if row is None:
            return "stale"
        IndexJobAsset.objects.filter(id=row.id).update(
            state=Asset.RETRY_WAIT, lease_expires_at=None, next_attempt_at=now + timedelta(seconds=delay),
            error_code=failure.code, error_message=failure.message[:500])
        publish_after_commit(claim.tenant_id, [row.id], countdown=delay)
    return "retrying"


def backoff() -> durable.Backoff:
    """Doubling from INDEX_RETRY_BASE_SECONDS, with 'equal jitter': half of the delay fixed, half random."""
    return durable.Backoff(base_seconds=settings.INDEX_RETRY_BASE_SECONDS, factor=2,
                           max_seconds=settings.INDEX_RETRY_MAX_SECONDS, jitter=(0.5, 1.0))


def _ms_since(started: datetime) -> float:
    return round((timezone.now() - started).total_seconds() * 1000, 1)


def finish(row: HeldRow | IndexJobAsset, state: str, now: datetime, **results: Any) -> None:
    """Mark a (locked) asset finished with its results; forget its source and sealed image."""
    IndexJobAsset.objects.filter(id=row.id).update(
        state=state, finished_at=now, lease_expires_at=None, next_attempt_at=None,
        source=redacted_source(row.source_kind, row.source), **results)
    if row.source_kind == IndexJobAsset.SourceKind.INLINE:
        inline_images.discard(tenant_id=row.tenant_id, job_asset_ids=[row.id])


def finish_failed(row: HeldRow | IndexJobAsset, failure: Failure, now: datetime) -> None:
    finish(row, Asset.FAILED, now, error_code=failure.code, error_message=failure.message[:500])
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

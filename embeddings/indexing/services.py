"""Index jobs, the web side: submit and cancel, and what a job's results say.

PostgreSQL holds every job's and asset's state; Celery messages carry only
(tenant id, job-asset ids). The life of an asset (see IndexJobAsset):

    pending --dispatch--> queued --claim--> processing --complete--> succeeded
                                               |  \\--permanent error--> failed
                                               \\--transient error--> retry_wait --claim--> ...

- dispatch.py: which pending assets go to the broker (fairness between
  tenants and between a tenant's jobs).
- claims.py: a worker's claim on assets (lease + fencing token, on
  faceservice/durable.py); completion.py: how a claim ends (faces stored,
  failed, retried), exactly once.
- sweep.py: recovery from dead workers and lost messages, retention.
- pipeline.py: the worker's fetch / model / store threads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from audit.services import Actor, record_event
from embeddings.engine import AnalyzeOptions, ModelsUnavailable
from embeddings.engine.quality import AUTO, NONE
from embeddings.face_engine import current_model_id, model_status
from embeddings.image_sources import ImageSource
from embeddings.indexing import inline_images
from embeddings.indexing.dispatch import refill_after_commit
from embeddings.indexing.models import IndexJob, IndexJobAsset, InlineImage
from embeddings.indexing.selectors import JobNotFound
from embeddings.store.collections import check_model, collection_named
from faceservice import durable
from faceservice.errors import Conflict, Unprocessable
from faceservice.tenancy import tenant_context
from tenants import data_keys
from tenants.webhooks import services as webhooks

Asset = IndexJobAsset.State
Job = IndexJob.State
NOT_FINISHED = (Asset.PENDING, Asset.QUEUED, Asset.PROCESSING, Asset.RETRY_WAIT)
SUBJECT_FACES_LARGEST, SUBJECT_FACES_ALL = "largest", "all"


class JobFinished(Conflict):
    """The job already finished; it cannot be cancelled."""

    code = "job_finished"
    default_message = "The job already finished."


class IdempotencyKeyReused(Unprocessable):
    """The Idempotency-Key was used before with a different request."""

    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was used with a different request."


@dataclass(frozen=True)
class JobOptions:
    """What to keep of each image (AnalyzeOptions, as the client gave them)."""

    max_faces: int | None = None
    min_face_size: float = 0.0
    min_det_score: float = 0.5
    # With a subject id, "largest": only the photo's largest face is that subject's, the
    # others are left out as not_largest_face (labelling bystanders as the subject cost
    # 0.7 points of rank-1 on LFW, issue #14); "all": every face gets the subject id.
    subject_faces: str = SUBJECT_FACES_LARGEST
    # AUTO (= LOW, embeddings/engine/quality.py): a face no recognizer can use only adds
    # look-alike chances to every later search, so it is left out unless asked otherwise.
    quality_filter: str = AUTO

    def as_dict(self) -> dict[str, Any]:
        return {"max_faces": self.max_faces, "min_face_size": self.min_face_size,
                "min_det_score": self.min_det_score, "subject_faces": self.subject_faces,
                "quality_filter": self.quality_filter}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> JobOptions:
        names = ("max_faces", "min_face_size", "min_det_score", "subject_faces", "quality_filter")
        # A job stored before quality_filter existed was submitted without a filter: it keeps that.
        return cls(**{"quality_filter": NONE, **{k: v for k, v in values.items() if k in names}})

    def analyze_options(self, subject_id: str | None = None) -> AnalyzeOptions:
        """What the engine keeps of an asset's photo; `subject_id` is the asset's."""
        return AnalyzeOptions(max_faces=self.max_faces, min_face_size=float(self.min_face_size),
                              min_det_score=float(self.min_det_score),
                              low_score_floor=min(0.3, float(self.min_det_score)),
                              largest_only=subject_id is not None and self.subject_faces == SUBJECT_FACES_LARGEST,
                              quality_filter=self.quality_filter)


@dataclass(frozen=True)
class AssetSpec:
    asset_id: str
    source: ImageSource
    subject_id: str | None = None


@dataclass(frozen=True)
class SubmittedJob:
    job: IndexJob
    created: bool  # False: an earlier submission with the same Idempotency-Key


# --- Submitting ----------------------------------------------------------------------

def request_fingerprint(*, tenant_id: UUID | str, body: Any) -> str:
    """HMAC-SHA256 of the canonical request, keyed from SECRET_KEY.

    Keyed, not a bare hash: the stored value must not let anyone test whether
    a given image was submitted.
    """
    key = hashlib.sha256(b"faceservice/idempotency/v1|" + settings.SECRET_KEY.encode()).digest()
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, f"{tenant_id}|{canonical}".encode(), hashlib.sha256).hexdigest()


def submit_index_job(*, tenant_id: UUID | str, assets: Sequence[AssetSpec], options: JobOptions,
                     actor: Actor, fingerprint: str, idempotency_key: str | None = None,
                     faces_expire_at: datetime | None = None, collection: str | None = None) -> SubmittedJob:
    """Create a job (or return the one made earlier under the same Idempotency-Key).

    Inline images are sealed here, in the web process, before anything is
    stored or sent. Dispatch happens after the commit. Without the face models
    the job is refused (503) rather than accepted to sit in retry, and so is a
    job for a collection of another model (409). `collection` None: the default one.
    """
    _check_assets(assets)
    _require_models()
    model_id = current_model_id()
    key = (data_keys.active_key(tenant_id=tenant_id, actor=actor)
           if any(spec.source.data is not None for spec in assets) else None)
    with tenant_context(tenant_id):
        if idempotency_key:
            durable.advisory_lock(f"index-job-idempotency:{tenant_id}:{idempotency_key}")
            existing = IndexJob.objects.filter(tenant_id=tenant_id, idempotency_key=idempotency_key).first()
            if existing is not None:
                if not hmac.compare_digest(existing.request_fingerprint, fingerprint):
                    raise IdempotencyKeyReused()
                return SubmittedJob(job=existing, created=False)
        target = collection_named(tenant_id, collection)
        check_model(target, model_id)
        job = _create_job(tenant_id, target, assets, options, actor, fingerprint, idempotency_key,
                          faces_expire_at, key)
    refill_after_commit(tenant_id)
    return SubmittedJob(job=job, created=True)


def _require_models() -> None:
    # Workers read the same pack as this process: present here, present there. Only
    # looked for, not loaded (the web process may not have loaded it yet).
    present, detail = model_status()
    if not present:
        raise ModelsUnavailable(detail)


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


def _create_job(tenant_id, collection, assets, options, actor, fingerprint, idempotency_key, faces_expire_at,
                key) -> IndexJob:
    now = timezone.now()
    job = IndexJob.objects.create(
        tenant_id=tenant_id, collection=collection, idempotency_key=idempotency_key or None,
        request_fingerprint=fingerprint,
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
                 details={"collection_id": str(collection.id), "assets": len(rows), "options": options.as_dict(),
                          "sources": {kind: kinds.count(kind) for kind in sorted(set(kinds))},
                          "idempotency_key": bool(idempotency_key)})
    return job


# --- Results -----------------------------------------------------------------------------

def redacted_source(kind: str, source: dict[str, Any]) -> dict[str, Any]:
    """What is kept once an asset finished: the host or bucket, never a path, query or key."""
    if kind == IndexJobAsset.SourceKind.URL and source.get("url"):
        return {"host": webhooks.host_of(source["url"])}
    if kind == IndexJobAsset.SourceKind.S3 and source.get("bucket"):
        return {"bucket": source["bucket"]}
    return {}


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


def cancel_job(*, tenant_id: UUID | str, job_id: UUID | str, actor: Actor) -> IndexJob:
    """Cancel a job: its unfinished assets stop (one being processed is discarded at commit).

    Assets that already succeeded keep their faces. Cancelling a cancelled job
    is a no-op; a job that finished otherwise raises JobFinished.
    """
    now = timezone.now()
    with tenant_context(tenant_id):
        durable.advisory_lock(f"index-dispatch:{tenant_id}")
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
    refill_after_commit(tenant_id)
    return job

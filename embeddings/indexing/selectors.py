"""Reads of index jobs and their per-asset results. Callers run inside the tenant's context."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from uuid import UUID

from django.db.models import QuerySet

from embeddings.indexing.models import IndexJob, IndexJobAsset
from faceservice.errors import NotFound


class JobNotFound(NotFound):
    """No such job of this tenant (a foreign id reads exactly the same)."""

    default_message = "No such index job."


def job_of(*, tenant_id: UUID | str, job_id: UUID | str) -> IndexJob:
    """The tenant's job; JobNotFound for a missing id and for another tenant's id alike."""
    job = IndexJob.objects.select_related("collection").filter(tenant_id=tenant_id, id=job_id).first()
    if job is None:
        raise JobNotFound()
    return job


def jobs_of(*, tenant_id: UUID | str, states: Collection[str] = (), created_after: datetime | None = None,
            created_before: datetime | None = None) -> QuerySet[IndexJob]:
    jobs = IndexJob.objects.select_related("collection").filter(tenant_id=tenant_id)
    if states:
        jobs = jobs.filter(state__in=list(states))
    if created_after is not None:
        jobs = jobs.filter(created_at__gte=created_after)
    if created_before is not None:
        jobs = jobs.filter(created_at__lt=created_before)
    return jobs


def job_assets_of(*, tenant_id: UUID | str, job_id: UUID | str,
                  states: Collection[str] = ()) -> QuerySet[IndexJobAsset]:
    """The job's assets in submission order (raises JobNotFound first, for a clean 404)."""
    job_of(tenant_id=tenant_id, job_id=job_id)
    assets = IndexJobAsset.objects.filter(tenant_id=tenant_id, job_id=job_id)
    if states:
        assets = assets.filter(state__in=list(states))
    return assets.order_by("position")

"""Tenant statistics without personal data: counts and sizes only."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from django.db import connection
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.models import AuditEvent
from embeddings.store.collections import collection_named
from embeddings.store.models import Asset, Collection, Face
from faceservice.tenancy import tenant_context

ACTIVITY = {"faces.searched": "searches", "faces.compared": "compares", "index_job.submitted": "index_jobs"}


def tenant_statistics(*, tenant_id: UUID | str, days: int = 30, collection: str | None = None) -> dict:
    """The tenant's counts, or one collection's (`collection`); activity is the tenant's either way."""
    since = timezone.now() - timedelta(days=days)
    with tenant_context(tenant_id):
        faces = Face.objects.filter(tenant_id=tenant_id)
        assets = Asset.objects.filter(tenant_id=tenant_id)
        if collection is not None:
            collection_id = collection_named(tenant_id, collection).id
            faces, assets = faces.filter(collection_id=collection_id), assets.filter(collection_id=collection_id)
        per_day = (AuditEvent.objects.filter(tenant_id=tenant_id, action__in=list(ACTIVITY),
                                             occurred_at__gte=since)
                   .annotate(day=TruncDate("occurred_at")).values("day", "action")
                   .annotate(n=Count("id")).order_by("day"))
        activity: dict[str, dict[str, int]] = {}
        for row in per_day:
            activity.setdefault(row["day"].isoformat(), {})[ACTIVITY[row["action"]]] = row["n"]
        return {
            "faces": faces.count(),
            "assets": assets.count(),
            "collections": Collection.objects.filter(tenant_id=tenant_id, status=Collection.Status.ACTIVE).count(),
            "subjects": faces.exclude(subject_id=None).values("subject_id").distinct().count(),
            "models": sorted(faces.values_list("model_id", flat=True).distinct()),
            "face_storage_bytes": _face_bytes(tenant_id, None if collection is None else collection_id),
            "activity_per_day": activity,
            "activity_days": days,
        }


def _face_bytes(tenant_id, collection_id) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(pg_column_size(f.*)), 0) FROM embeddings_face f "
                       "WHERE tenant_id = %s AND (%s::uuid IS NULL OR collection_id = %s::uuid)",
                       [str(tenant_id), collection_id, collection_id])
        return int(cursor.fetchone()[0])

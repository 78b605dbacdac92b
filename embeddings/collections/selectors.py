"""Reads of collections: one by name, and the tenant's list, with their counts."""

from __future__ import annotations

from uuid import UUID

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from embeddings.store.collections import collection_named
from embeddings.store.models import Collection, Face
from faceservice.tenancy import tenant_context


def _count_of(faces: QuerySet, *, distinct_subjects: bool = False) -> Subquery:
    counted = (faces.filter(collection_id=OuterRef("id")).order_by().values("collection_id")
               .annotate(n=Count("subject_id", distinct=True) if distinct_subjects else Count("id"))
               .values("n"))
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def with_counts(collections: QuerySet[Collection], tenant_id: UUID | str) -> QuerySet[Collection]:
    """Each collection with `face_count` and `subject_count` (faces without a subject are not a subject)."""
    faces = Face.objects.filter(tenant_id=tenant_id)
    return collections.annotate(face_count=_count_of(faces),
                                subject_count=_count_of(faces.exclude(subject_id=None), distinct_subjects=True))


def collections_of(*, tenant_id: UUID | str) -> QuerySet[Collection]:
    """The tenant's active collections with their counts (for a page of the newest first)."""
    return with_counts(Collection.objects.filter(tenant_id=tenant_id, status=Collection.Status.ACTIVE), tenant_id)


def collection_detail(*, tenant_id: UUID | str, name: str) -> Collection:
    """One active collection with its counts (CollectionNotFound: absent, deleting, or another tenant's)."""
    with tenant_context(tenant_id):
        found = collection_named(tenant_id, name)
        return with_counts(Collection.objects.filter(pk=found.pk), tenant_id).get()

"""Reads of subjects: a collection's subjects with their face counts, and one subject's faces."""

from __future__ import annotations

from uuid import UUID

from django.db.models import Count, Max, QuerySet

from embeddings.store.collections import collection_named
from embeddings.store.models import Face
from embeddings.store.selectors import SubjectNotFound
from faceservice.tenancy import tenant_context


def subjects_of(*, tenant_id: UUID | str, collection: str | None) -> QuerySet:
    """{subject_id, face_count, last_indexed_at} per subject of the collection, by subject id."""
    collection_id = collection_named(tenant_id, collection).id
    return (Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id).exclude(subject_id=None)
            .values("subject_id").annotate(face_count=Count("id"), last_indexed_at=Max("created_at"))
            .order_by("subject_id"))


def subject_detail(*, tenant_id: UUID | str, collection: str | None, subject_id: str) -> dict:
    """One subject: its face count, when it was last indexed, and its faces' metadata (never embeddings)."""
    with tenant_context(tenant_id):
        collection_id = collection_named(tenant_id, collection).id
        faces = list(Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id, subject_id=subject_id)
                     .defer("embedding_ciphertext", "search_vector").order_by("-created_at", "-id"))
    if not faces:
        raise SubjectNotFound()
    return {"subject_id": subject_id, "face_count": len(faces), "last_indexed_at": faces[0].created_at,
            "faces": faces}

"""Writes of collections: create, change, delete (with a receipt, like every deletion of faces)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction

from audit.services import Actor, record_event
from embeddings.engine import ModelsUnavailable
from embeddings.face_engine import current_model_id
from embeddings.store import deletion as deletions
from embeddings.store.collections import check_name, collection_named
from embeddings.store.models import Collection, DeletionRequest, Face
from embeddings.store.receipts import DeletionReceipt
from embeddings.store.services import delete_collection_now
from faceservice.errors import Conflict
from faceservice.tenancy import tenant_context


class CollectionExists(Conflict):
    code = "collection_exists"
    default_message = "The tenant already has a collection of that name."


def create_collection(*, tenant_id: UUID | str, name: str, actor: Actor,
                      face_retention_days: int | None = None) -> Collection:
    """A new, empty collection, tied to the installed face model (or to the first one it indexes with)."""
    check_name(name)
    try:
        model_id = current_model_id()
    except ModelsUnavailable:
        model_id = None  # bound by its first indexed face
    with tenant_context(tenant_id):
        try:
            with transaction.atomic():
                collection = Collection.objects.create(tenant_id=tenant_id, name=name, model_id=model_id,
                                                       face_retention_days=face_retention_days)
        except IntegrityError:
            raise CollectionExists() from None
        record_event(tenant_id=tenant_id, actor=actor, action="collection.created",
                     target={"collection_id": str(collection.id)},
                     details={"name": name, "model_id": model_id, "face_retention_days": face_retention_days})
    return collection


def update_collection(*, tenant_id: UUID | str, name: str, actor: Actor,
                      face_retention_days: int | None) -> Collection:
    """Change a collection's retention (None: the tenant's). It applies to faces indexed from now on."""
    with tenant_context(tenant_id):
        collection = collection_named(tenant_id, name)
        Collection.objects.filter(pk=collection.pk).update(face_retention_days=face_retention_days)
        collection.face_retention_days = face_retention_days
        record_event(tenant_id=tenant_id, actor=actor, action="collection.updated",
                     target={"collection_id": str(collection.id)},
                     details={"face_retention_days": face_retention_days})
    return collection


@dataclass(frozen=True)
class CollectionDeletion:
    """A collection's deletion: a receipt now, or a deletion a worker runs (too many faces for one request)."""

    receipt: DeletionReceipt | None = None
    queued: DeletionRequest | None = None


def delete_collection(*, tenant_id: UUID | str, name: str, actor: Actor) -> CollectionDeletion:
    """Delete a collection: its faces, assets and index jobs, then the collection itself.

    The name is free again at once: the collection is marked `deleting`, which
    every route treats as gone, and an index worker that was writing into it
    finishes first (it holds the row) or fails its asset with `collection_deleted`.
    """
    with tenant_context(tenant_id):
        collection = collection_named(tenant_id, name)
        Collection.objects.filter(pk=collection.pk).update(status=Collection.Status.DELETING)
        faces = Face.objects.filter(tenant_id=tenant_id, collection_id=collection.id).count()
        if faces > settings.DELETE_SYNC_MAX_FACES:
            return CollectionDeletion(queued=deletions.request_deletion(
                tenant_id=tenant_id, requested={"collection": name}, actor=actor, collection_id=collection.id))
    return CollectionDeletion(receipt=delete_collection_now(tenant_id=tenant_id, collection_id=collection.id,
                                                            name=name, actor=actor))

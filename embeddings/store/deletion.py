"""Deletions too large for one request: queued, run in batches by a worker, then receipted.

Each batch is its own transaction, so a crash loses at most one batch of work
and the next run continues (the task is idempotent). The receipt, its audit
event and the `faces.deleted` webhook come with the last batch.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet

from audit.services import Actor, record_event
from embeddings.store import vector_index
from embeddings.store.collections import collection_named
from embeddings.store.generations import next_generation
from embeddings.store.models import Asset, DeletionRequest, Face
from embeddings.store.receipts import DeletionReceipt
from embeddings.store.services import (
    delete_emptied_assets,
    notify_deleted,
    refresh_asset_counts,
    remove_collection_rows,
)
from embeddings.store.signals import send_deleted
from faceservice.celery import app
from faceservice.tenancy import tenant_context
from tenants import data_keys

DELETION_TASK = "embeddings.run_deletion"
logger = logging.getLogger(__name__)


def whole_collection(requested: dict[str, Any]) -> bool:
    """The request deletes a collection itself: {"collection": name} and nothing else."""
    return set(requested) == {"collection"}


def matching_faces(deletion: DeletionRequest) -> QuerySet[Face]:
    requested = deletion.requested
    faces = Face.objects.filter(tenant_id=deletion.tenant_id)
    if requested.get("purge"):
        return faces
    faces = faces.filter(collection_id=deletion.collection_id)
    if requested.get("face_ids"):
        return faces.filter(id__in=requested["face_ids"])
    if requested.get("asset_ids"):
        return faces.filter(asset_id__in=requested["asset_ids"])
    if requested.get("subject_ids"):
        return faces.filter(subject_id__in=requested["subject_ids"])
    return faces  # the whole collection


def _collection_of(tenant_id: UUID | str, requested: dict[str, Any], collection_id: UUID | None) -> UUID | None:
    """The collection a deletion works in: given, or named in the request (the default one if none); None: a purge."""
    if requested.get("purge"):
        return None
    return collection_id or collection_named(tenant_id, requested.get("collection")).id


def count_matching(*, tenant_id: UUID | str, requested: dict[str, Any], collection_id: UUID | None = None) -> int:
    with tenant_context(tenant_id):
        collection_id = _collection_of(tenant_id, requested, collection_id)
        return matching_faces(DeletionRequest(tenant_id=tenant_id, requested=requested,
                                              collection_id=collection_id)).count()


def request_deletion(*, tenant_id: UUID | str, requested: dict[str, Any], actor: Actor,
                     collection_id: UUID | None = None) -> DeletionRequest:
    """Queue a deletion (of the collection given, else the one named in `requested`)."""
    with tenant_context(tenant_id):
        collection_id = _collection_of(tenant_id, requested, collection_id)
        deletion = DeletionRequest.objects.create(tenant_id=tenant_id, requested=requested,
                                                  collection_id=collection_id)
        record_event(tenant_id=tenant_id, actor=actor, action="faces.deletion_requested", target=requested,
                     details={"deletion_id": str(deletion.id)}, receipt_id=deletion.receipt_id)
        transaction.on_commit(lambda: app.send_task(DELETION_TASK, args=[str(tenant_id), str(deletion.id)]))
    return deletion


def _delete_one_batch(deletion: DeletionRequest, batch_size: int) -> int:
    with tenant_context(deletion.tenant_id):
        ids = list(matching_faces(deletion).values_list("id", flat=True)[:batch_size])
        deleted, _ = Face.objects.filter(tenant_id=deletion.tenant_id, id__in=ids).delete()
        if deleted:
            next_generation(deletion.tenant_id, removes=True)
            send_deleted(tenant_id=deletion.tenant_id, collection_id=deletion.collection_id, face_ids=ids)
        DeletionRequest.objects.filter(pk=deletion.pk).update(
            status=DeletionRequest.Status.RUNNING, faces_deleted=deletion.faces_deleted + deleted)
        deletion.faces_deleted += deleted
    return deleted


def _delete_assets(deletion: DeletionRequest) -> int:
    requested, tenant_id = deletion.requested, deletion.tenant_id
    if requested.get("purge"):
        return Asset.objects.filter(tenant_id=tenant_id).delete()[0]
    in_collection = Asset.objects.filter(tenant_id=tenant_id, collection_id=deletion.collection_id)
    if requested.get("asset_ids"):
        return in_collection.filter(asset_id__in=requested["asset_ids"]).delete()[0]
    if requested.get("subject_ids"):
        return delete_emptied_assets(tenant_id, deletion.collection_id, subject_ids=requested["subject_ids"])
    if whole_collection(requested):
        return in_collection.delete()[0]
    # Deleting single faces keeps their assets, with their counts brought down.
    refresh_asset_counts(tenant_id, deletion.collection_id,
                         in_collection.values_list("asset_id", flat=True))
    return 0


def _finish(deletion: DeletionRequest, actor: Actor) -> None:
    tenant_id = deletion.tenant_id
    with tenant_context(tenant_id):
        deletion.assets_deleted = _delete_assets(deletion)
        requested = deletion.requested
        send_deleted(tenant_id=tenant_id, collection_id=deletion.collection_id, purge=bool(requested.get("purge")),
                     asset_ids=requested.get("asset_ids", ()), subject_ids=requested.get("subject_ids", ()))
        if whole_collection(deletion.requested):
            remove_collection_rows(tenant_id, deletion.collection_id)
        if deletion.requested.get("purge"):
            deletion.keys_destroyed = data_keys.shred_keys(tenant_id=tenant_id, actor=actor)
        counts = DeletionReceipt.of_deletion(deletion)
        event = record_event(tenant_id=tenant_id, actor=actor, action=counts.action, target=deletion.requested,
                             details=counts.audit_details(), receipt_id=deletion.receipt_id)
        # The receipt's time is its audit event's, so GET /v1/receipts/<id> reads the same instant.
        deletion.status, deletion.finished_at = DeletionRequest.Status.SUCCEEDED, event.occurred_at
        deletion.save()
        notify_deleted(tenant_id=tenant_id, receipt=DeletionReceipt.of_deletion(deletion))


def run_deletion(*, tenant_id: UUID | str, deletion_id: UUID | str, batch_size: int = 5000) -> DeletionRequest:
    """Delete in batches until nothing matches, then write the receipt. Idempotent."""
    actor = Actor.system("deletion-worker")
    with tenant_context(tenant_id):
        deletion = DeletionRequest.objects.get(tenant_id=tenant_id, id=deletion_id)
    if deletion.status == DeletionRequest.Status.SUCCEEDED:
        return deletion
    while _delete_one_batch(deletion, batch_size):
        pass
    _finish(deletion, actor)
    if deletion.requested.get("purge"):
        _drop_vector_indexes(lambda: vector_index.drop_tenant_indexes(tenant_id))
    elif whole_collection(deletion.requested):
        _drop_vector_indexes(lambda: vector_index.drop_collection_indexes(deletion.collection_id))
    return deletion


def _drop_vector_indexes(drop) -> None:
    """A purged tenant's or deleted collection's own HNSW indexes go at once, not at the next maintenance tick.

    (Collections with an index are above EXACT_SEARCH_MAX_FACES, so their
    deletions take this queued path; a synchronous deletion of a smaller one
    leaves it to vector_index.maintain_tenant_indexes.) Outside any transaction: CONCURRENTLY.
    """
    if connection.in_atomic_block:
        return  # called inside a caller's transaction: the maintenance task will drop them
    try:
        drop()
    except DatabaseError:
        logger.warning("could not drop the purged tenant's vector indexes; maintenance will", exc_info=True)

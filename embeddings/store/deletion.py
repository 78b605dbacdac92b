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
from embeddings.store.generations import next_generation
from embeddings.store.models import Asset, DeletionRequest, Face
from embeddings.store.receipts import DeletionReceipt
from embeddings.store.services import notify_deleted
from faceservice.celery import app
from faceservice.tenancy import tenant_context
from tenants import data_keys

DELETION_TASK = "embeddings.run_deletion"
logger = logging.getLogger(__name__)


def matching_faces(tenant_id: UUID | str, requested: dict[str, Any]) -> QuerySet[Face]:
    faces = Face.objects.filter(tenant_id=tenant_id)
    if requested.get("purge"):
        return faces
    if requested.get("face_ids"):
        return faces.filter(id__in=requested["face_ids"])
    if requested.get("asset_ids"):
        return faces.filter(asset_id__in=requested["asset_ids"])
    return faces.filter(subject_id__in=requested["subject_ids"])


def matching_assets(tenant_id: UUID | str, requested: dict[str, Any]) -> QuerySet[Asset]:
    assets = Asset.objects.filter(tenant_id=tenant_id)
    if requested.get("purge"):
        return assets
    if requested.get("asset_ids"):
        return assets.filter(asset_id__in=requested["asset_ids"])
    if requested.get("subject_ids"):
        return assets.filter(subject_id__in=requested["subject_ids"])
    return assets.none()  # deleting single faces keeps their assets


def count_matching(*, tenant_id: UUID | str, requested: dict[str, Any]) -> int:
    with tenant_context(tenant_id):
        return matching_faces(tenant_id, requested).count()


def request_deletion(*, tenant_id: UUID | str, requested: dict[str, Any], actor: Actor) -> DeletionRequest:
    with tenant_context(tenant_id):
        deletion = DeletionRequest.objects.create(tenant_id=tenant_id, requested=requested)
        record_event(tenant_id=tenant_id, actor=actor, action="faces.deletion_requested", target=requested,
                     details={"deletion_id": str(deletion.id)}, receipt_id=deletion.receipt_id)
        transaction.on_commit(lambda: app.send_task(DELETION_TASK, args=[str(tenant_id), str(deletion.id)]))
    return deletion


def _delete_one_batch(deletion: DeletionRequest, batch_size: int) -> int:
    with tenant_context(deletion.tenant_id):
        ids = list(matching_faces(deletion.tenant_id, deletion.requested).values_list("id", flat=True)[:batch_size])
        deleted, _ = Face.objects.filter(tenant_id=deletion.tenant_id, id__in=ids).delete()
        if deleted:
            next_generation(deletion.tenant_id, removes=True)
        DeletionRequest.objects.filter(pk=deletion.pk).update(
            status=DeletionRequest.Status.RUNNING, faces_deleted=deletion.faces_deleted + deleted)
        deletion.faces_deleted += deleted
    return deleted


def _finish(deletion: DeletionRequest, actor: Actor) -> None:
    tenant_id = deletion.tenant_id
    with tenant_context(tenant_id):
        deletion.assets_deleted, _ = matching_assets(tenant_id, deletion.requested).delete()
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
        _drop_vector_indexes(tenant_id)
    return deletion


def _drop_vector_indexes(tenant_id: UUID | str) -> None:
    """A purged tenant's own HNSW indexes go at once, not at the next maintenance tick.

    (Tenants with an index are above EXACT_SEARCH_MAX_FACES, so their purges
    take this queued path; a synchronous purge of a smaller tenant leaves it to
    vector_index.maintain_tenant_indexes.) Outside any transaction: CONCURRENTLY.
    """
    if connection.in_atomic_block:
        return  # called inside a caller's transaction: the maintenance task will drop them
    try:
        vector_index.drop_tenant_indexes(tenant_id)
    except DatabaseError:
        logger.warning("could not drop the purged tenant's vector indexes; maintenance will", exc_info=True)

"""Celery tasks of the face store: expiry, large deletions, per-tenant vector indexes. Thin and idempotent."""

from __future__ import annotations

import logging

from celery import shared_task

from embeddings.store import deletion, services, vector_index

logger = logging.getLogger(__name__)


@shared_task(name="embeddings.purge_expired_faces", ignore_result=True)
def purge_expired_faces() -> int:
    return services.purge_expired_faces()


@shared_task(name="embeddings.run_deletion", ignore_result=True, acks_late=True)
def run_deletion(tenant_id: str, deletion_id: str) -> int:
    return deletion.run_deletion(tenant_id=tenant_id, deletion_id=deletion_id).faces_deleted


@shared_task(name="embeddings.maintain_tenant_indexes", ignore_result=True)
def maintain_tenant_indexes() -> dict:
    # Can run for minutes (a 500k-face build); a second run while it does returns at once.
    work = vector_index.maintain_tenant_indexes()
    if work.skipped:
        logger.info("per-tenant vector indexes: %s", work.skipped)
    return {"built": work.built, "dropped": work.dropped, "skipped": work.skipped}

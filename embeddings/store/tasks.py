"""Celery tasks of the face store: expiry and large deletions. Thin and idempotent."""

from __future__ import annotations

from celery import shared_task

from embeddings.store import deletion, services


@shared_task(name="embeddings.purge_expired_faces", ignore_result=True)
def purge_expired_faces() -> int:
    return services.purge_expired_faces()


@shared_task(name="embeddings.run_deletion", ignore_result=True, acks_late=True)
def run_deletion(tenant_id: str, deletion_id: str) -> int:
    return deletion.run_deletion(tenant_id=tenant_id, deletion_id=deletion_id).faces_deleted

"""Key rotation in the background: thin, idempotent, resumable Celery tasks."""

from __future__ import annotations

import time

from celery import shared_task

from audit.services import Actor
from embeddings.store.services import reencrypt_batch
from faceservice.tenancy import platform_scope
from tenants import data_keys
from tenants.models import TenantKey

ROTATION_ACTOR = Actor.system("key-rotation")
TIME_BUDGET_SECONDS = 60  # re-enqueue rather than hold a worker for hours


@shared_task(name="tenants.reencrypt_tenant_faces", acks_late=True, ignore_result=True)
def reencrypt_tenant_faces(tenant_id: str, batch_size: int = 500) -> int:
    """Move the tenant's faces to its active key, batch by batch.

    Safe to run twice or after a crash: each batch is one transaction and
    picks only faces still under an old version.
    """
    started, moved = time.monotonic(), 0
    while time.monotonic() - started < TIME_BUDGET_SECONDS:
        count = reencrypt_batch(tenant_id=tenant_id, batch_size=batch_size, actor=ROTATION_ACTOR)
        moved += count
        if count == 0:
            return moved
    reencrypt_tenant_faces.delay(tenant_id, batch_size)
    return moved


@shared_task(name="tenants.resume_key_rotations", acks_late=True, ignore_result=True)
def resume_key_rotations() -> int:
    """Beat: restart re-encryption for every tenant with a key still retiring (crash recovery)."""
    with platform_scope():
        tenant_ids = set(TenantKey.objects.filter(status=TenantKey.Status.RETIRING)
                         .values_list("tenant_id", flat=True))
    for tenant_id in tenant_ids:
        reencrypt_tenant_faces.delay(str(tenant_id))
    return len(tenant_ids)


@shared_task(name="tenants.rotate_tenant_key", acks_late=True, ignore_result=True)
def rotate_tenant_key(tenant_id: str) -> None:
    data_keys.start_key_rotation(tenant_id=tenant_id, actor=ROTATION_ACTOR)
    reencrypt_tenant_faces.delay(tenant_id)


@shared_task(name="tenants.rewrap_tenant_keys", acks_late=True, ignore_result=True)
def rewrap_tenant_keys(destination_key_id: str) -> int:
    """Re-wrap every tenant key under a new master key (resumable: skips done rows)."""
    return data_keys.rewrap_all(destination_key_id=destination_key_id, actor=ROTATION_ACTOR)

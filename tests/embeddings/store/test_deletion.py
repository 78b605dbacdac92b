"""Deletions larger than DELETE_SYNC_MAX_FACES: 202, batches in a worker task, then a receipt."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor
from embeddings.models import Face
from embeddings.store import deletion as deletions
from embeddings.store import services
from faceservice.tenancy import tenant_context
from tenants.models import TenantKey, WebhookDelivery
from tenants.webhooks import services as webhooks

HOOK_URL = "http://127.0.0.1:9/hook"  # never called here: deliveries are only queued


@dataclass
class Detection:
    embedding: np.ndarray
    bbox: tuple = (0.0, 0.0, 40.0, 40.0)
    det_score: float = 0.9


def index(tenant, asset_id, n, subject_id=None, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    services.replace_asset_faces(tenant_id=tenant.id, asset_id=asset_id, faces=[Detection(v) for v in x],
                                 model_id="test-model:del", submitted_at=timezone.now(), subject_id=subject_id,
                                 actor=Actor.system("tests"))


def test_large_subject_deletion_is_queued_then_receipted(tenant, client_for, settings,
                                                         django_capture_on_commit_callbacks):
    settings.DELETE_SYNC_MAX_FACES = 5
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    index(tenant, "a1", 4, subject_id="alice", seed=1)
    index(tenant, "a2", 4, subject_id="alice", seed=2)
    index(tenant, "b1", 2, subject_id="bob", seed=3)
    webhooks.create_endpoint(tenant_id=tenant.id, url=HOOK_URL, events=["faces.deleted"],
                             actor=Actor.system("tests"))
    client = client_for(tenant, ("admin",))
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post("/v1/faces/delete", {"subject_ids": ["alice"]}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["receipt"] is None and len(queued) == 1
    # What the worker task runs (in batches smaller than the set):
    deletions.run_deletion(tenant_id=tenant.id, deletion_id=body["id"], batch_size=3)
    done = client_for(tenant, ("auditor",)).get(body["status_url"]).json()
    assert done["status"] == "succeeded"
    assert done["receipt"]["faces_deleted"] == 8 and done["receipt"]["assets_deleted"] == 2
    # Idempotent: running again changes nothing.
    again = deletions.run_deletion(tenant_id=tenant.id, deletion_id=body["id"])
    assert again.faces_deleted == 8
    with tenant_context(tenant.id):
        assert list(Face.objects.filter(tenant_id=tenant.id).values_list("subject_id", flat=True)) == ["bob"] * 2
        event = AuditEvent.objects.get(tenant_id=tenant.id, action="faces.deleted")
        delivery = WebhookDelivery.objects.get(tenant_id=tenant.id, event_type="faces.deleted")
    assert str(event.receipt_id) == done["receipt"]["receipt_id"]
    assert delivery.payload["data"]["faces_deleted"] == 8
    receipt = client_for(tenant, ("admin",)).get(f"/v1/receipts/{event.receipt_id}").json()
    assert receipt["faces_deleted"] == 8
    # Issue #14: one instant, one format, wherever the receipt is read.
    assert done["receipt"]["deleted_at"] == receipt["deleted_at"] == delivery.payload["data"]["deleted_at"]
    assert receipt["deleted_at"].endswith("Z")


def test_a_receipt_reads_the_same_instant_everywhere(tenant, client_for, settings):
    """Issue #14: the delete answer, its webhook and GET /v1/receipts/<id> give one time, ending in Z."""
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    index(tenant, "a1", 2, subject_id="alice", seed=1)
    webhooks.create_endpoint(tenant_id=tenant.id, url=HOOK_URL, events=["faces.deleted"],
                             actor=Actor.system("tests"))
    client = client_for(tenant, ("admin",))
    answer = client.post("/v1/faces/delete", {"subject_ids": ["alice"]}, format="json").json()
    read_back = client.get(f"/v1/receipts/{answer['receipt_id']}").json()
    with tenant_context(tenant.id):
        delivery = WebhookDelivery.objects.get(tenant_id=tenant.id, event_type="faces.deleted")
        event = AuditEvent.objects.get(tenant_id=tenant.id, action="faces.deleted")
    webhook = delivery.payload
    assert answer["deleted_at"] == read_back["deleted_at"] == webhook["data"]["deleted_at"]
    assert answer["deleted_at"] == event.occurred_at.isoformat().replace("+00:00", "Z")
    assert answer["deleted_at"].endswith("Z") and webhook["timestamp"].endswith("Z")


def test_large_purge_is_queued_and_shreds_keys(tenant, client_for, settings, django_capture_on_commit_callbacks):
    settings.DELETE_SYNC_MAX_FACES = 2
    index(tenant, "a", 3)
    with django_capture_on_commit_callbacks(execute=False):
        body = client_for(tenant, ("admin",)).post("/v1/faces/purge", {"confirm": "delete all face data"},
                                                   format="json").json()
    deletion = deletions.run_deletion(tenant_id=tenant.id, deletion_id=body["id"])
    assert deletion.faces_deleted == 3 and deletion.keys_destroyed == 1
    with tenant_context(tenant.id):
        assert not TenantKey.objects.filter(tenant_id=tenant.id, wrapped_key__isnull=False).exists()


def test_small_deletion_sends_the_webhook_too(tenant, client_for, settings):
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    index(tenant, "a", 2, subject_id="carol")
    webhooks.create_endpoint(tenant_id=tenant.id, url=HOOK_URL, events=["faces.deleted"],
                             actor=Actor.system("tests"))
    receipt = client_for(tenant, ("admin",)).post("/v1/faces/delete", {"subject_ids": ["carol"]},
                                                  format="json").json()
    with tenant_context(tenant.id):
        delivery = WebhookDelivery.objects.get(tenant_id=tenant.id, event_type="faces.deleted")
    assert delivery.payload["data"]["receipt_id"] == receipt["receipt_id"]
    assert "embedding" not in str(delivery.payload)


def test_foreign_deletion_id_is_404(tenant, other_tenant, client_for):
    deletion = deletions.request_deletion(tenant_id=tenant.id, requested={"subject_ids": ["x"]},
                                          actor=Actor.system("tests"))
    assert client_for(other_tenant, ("admin",)).get(f"/v1/deletions/{deletion.id}").status_code == 404

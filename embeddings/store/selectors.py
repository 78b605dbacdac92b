"""Reads of the face store: one face's embedding, face listings, deletions and their receipts."""

from __future__ import annotations

from uuid import UUID

import numpy as np
from django.db.models import QuerySet

from audit.models import AuditEvent
from embeddings.store.models import DeletionRequest, Face
from embeddings.store.protection import decrypt_embedding
from embeddings.store.receipts import RECEIPT_ACTIONS, DeletionReceipt
from faceservice.errors import NotFound
from faceservice.tenancy import tenant_context
from tenants import data_keys


class FaceNotFound(NotFound):
    default_message = "No such face."


class ReceiptNotFound(NotFound):
    default_message = "No such receipt."


class DeletionNotFound(NotFound):
    default_message = "No such deletion."


def face_embedding(*, tenant_id: UUID | str, face_id: UUID) -> tuple[np.ndarray, str]:
    """The decrypted canonical embedding of one of the tenant's faces, and its model (FaceNotFound)."""
    with tenant_context(tenant_id):
        face = Face.objects.filter(tenant_id=tenant_id, id=face_id).first()
    if face is None:
        raise FaceNotFound()
    key = data_keys.data_key(tenant_id=tenant_id, version=face.key_version)
    embedding = decrypt_embedding(dek=key, ciphertext=bytes(face.embedding_ciphertext),
                                  tenant_id=str(tenant_id), face_id=str(face.id),
                                  key_version=face.key_version, model_id=face.model_id)
    return embedding, face.model_id


def faces_for(*, tenant_id: UUID | str, asset_id: str | None = None,
              subject_id: str | None = None) -> QuerySet[Face]:
    """Face metadata of the tenant (never embeddings), optionally of one asset or subject."""
    faces = Face.objects.filter(tenant_id=tenant_id).defer("embedding_ciphertext", "search_vector")
    if asset_id is not None:
        faces = faces.filter(asset_id=asset_id)
    if subject_id is not None:
        faces = faces.filter(subject_id=subject_id)
    return faces


def deletion_receipt(*, tenant_id: UUID | str, receipt_id: UUID) -> DeletionReceipt:
    """A deletion receipt, rebuilt from its audit event (deletions never delete audit events)."""
    with tenant_context(tenant_id):
        event = AuditEvent.objects.filter(tenant_id=tenant_id, receipt_id=receipt_id,
                                          action__in=RECEIPT_ACTIONS).first()
    if event is None:
        raise ReceiptNotFound()
    return DeletionReceipt.of_audit_event(event)


def deletion_request(*, tenant_id: UUID | str, deletion_id: UUID) -> DeletionRequest:
    with tenant_context(tenant_id):
        deletion = DeletionRequest.objects.filter(tenant_id=tenant_id, id=deletion_id).first()
    if deletion is None:
        raise DeletionNotFound()
    return deletion

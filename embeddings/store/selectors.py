"""Reads of the face store: one face's embedding, face listings, deletions and their receipts."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import numpy as np
from django.db.models import QuerySet

from audit.models import AuditEvent
from embeddings.store.collections import collection_named
from embeddings.store.models import DeletionRequest, Face
from embeddings.store.protection import decrypt_embedding, decrypt_embeddings
from embeddings.store.receipts import RECEIPT_ACTIONS, DeletionReceipt
from faceservice.errors import NotFound
from faceservice.tenancy import tenant_context
from tenants import data_keys


class FaceNotFound(NotFound):
    default_message = "No such face."


class SubjectNotFound(NotFound):
    default_message = "No such subject in this collection."


class ReceiptNotFound(NotFound):
    default_message = "No such receipt."


class DeletionNotFound(NotFound):
    default_message = "No such deletion."


@dataclass(frozen=True)
class StoredFace:
    embedding: np.ndarray  # decrypted, canonical
    model_id: str
    collection_id: UUID
    quality: dict | None = None  # as stored (embeddings/store/face_quality.py); None: not measured


def stored_face(*, tenant_id: UUID | str, face_id: UUID) -> StoredFace:
    """One of the tenant's faces with its decrypted canonical embedding (FaceNotFound)."""
    with tenant_context(tenant_id):
        face = Face.objects.filter(tenant_id=tenant_id, id=face_id).first()
    if face is None:
        raise FaceNotFound()
    key = data_keys.data_key(tenant_id=tenant_id, version=face.key_version)
    embedding = decrypt_embedding(dek=key, ciphertext=bytes(face.embedding_ciphertext),
                                  tenant_id=str(tenant_id), face_id=str(face.id),
                                  key_version=face.key_version, model_id=face.model_id)
    return StoredFace(embedding=embedding, model_id=face.model_id, collection_id=face.collection_id,
                      quality=face.quality)


def face_embedding(*, tenant_id: UUID | str, face_id: UUID) -> tuple[np.ndarray, str]:
    """The decrypted canonical embedding of one of the tenant's faces, and its model (FaceNotFound)."""
    face = stored_face(tenant_id=tenant_id, face_id=face_id)
    return face.embedding, face.model_id


def subject_embeddings(*, tenant_id: UUID | str, collection_id: UUID, subject_id: str
                       ) -> tuple[list[UUID], np.ndarray, str | None]:
    """A subject's face ids, their decrypted canonical embeddings (k x d) and model (None: no faces)."""
    with tenant_context(tenant_id):
        rows = list(Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id, subject_id=subject_id)
                    .order_by("id").values_list("id", "key_version", "model_id", "embedding_ciphertext"))
    if not rows:
        return [], np.empty((0, 0), dtype=np.float32), None
    embeddings: list[np.ndarray] = []
    for version in sorted({row[1] for row in rows}):
        of_version = [row for row in rows if row[1] == version]
        key = data_keys.data_key(tenant_id=tenant_id, version=version)
        embeddings += decrypt_embeddings(dek=key, ciphertexts=[bytes(row[3]) for row in of_version],
                                         face_ids=[str(row[0]) for row in of_version], tenant_id=str(tenant_id),
                                         key_version=version, model_id=of_version[0][2])
    face_ids = [row[0] for version in sorted({row[1] for row in rows}) for row in rows if row[1] == version]
    return face_ids, np.stack(embeddings), rows[0][2]


def faces_for(*, tenant_id: UUID | str, asset_id: str | None = None, subject_id: str | None = None,
              collection: str | None = None) -> QuerySet[Face]:
    """Face metadata of a collection (never embeddings), optionally of one asset or subject."""
    faces = (Face.objects.filter(tenant_id=tenant_id, collection_id=collection_named(tenant_id, collection).id)
             .defer("embedding_ciphertext", "search_vector"))
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

"""Writes of face data: index an asset's faces, delete, purge, re-encrypt.

Every write runs inside `tenant_context` (row-level security) and records its
audit event in the same transaction, so no change happens without its event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.services import Actor, record_event
from embeddings.store import rounding
from embeddings.store.collections import collection_id_of, collection_named, lock_for_write
from embeddings.store.face_quality import stored_quality
from embeddings.store.generations import next_generation
from embeddings.store.models import Asset, Collection, Face
from embeddings.store.protection import (
    decrypt_embedding,
    encrypt_embedding,
    project,
    projection_matrix,
)
from embeddings.store.receipts import PURGE, DeletionReceipt
from embeddings.store.signals import send_deleted
from faceservice.durable import advisory_lock
from faceservice.errors import Unprocessable
from faceservice.tenancy import tenant_context
from tenants import data_keys
from tenants.models import Tenant
from tenants.webhooks import services as webhooks


class DetectedFace(Protocol):
    """What the store needs of a face; an engine Face also has `quality` (stored when present)."""

    bbox: Sequence[float]
    det_score: float
    embedding: np.ndarray


@dataclass(frozen=True)
class IndexedAsset:
    asset_id: str
    face_ids: list[UUID]
    superseded: bool = False  # a newer submission of this asset was indexed already
    replaced: int = 0  # faces of an earlier image of the asset that were removed


def protect_faces(*, tenant_id: UUID | str, faces: Sequence[DetectedFace], model_id: str,
                  key: data_keys.DataKeyRef) -> list[tuple[UUID, bytes, np.ndarray]]:
    """(face id, encrypted canonical embedding, protected search vector) per face."""
    if not faces:
        return []
    embeddings = np.stack([np.asarray(face.embedding, dtype=np.float32) for face in faces])
    matrix = projection_matrix(dek=key.key, key_version=key.version,
                               dimension=embeddings.shape[1], model_id=model_id)
    vectors = project(matrix, embeddings)
    protected = []
    for embedding, vector in zip(embeddings, vectors, strict=True):
        face_id = uuid.uuid4()
        ciphertext = encrypt_embedding(dek=key.key, embedding=embedding, tenant_id=str(tenant_id),
                                       face_id=str(face_id), key_version=key.version, model_id=model_id)
        protected.append((face_id, ciphertext, vector))
    return protected


def replace_asset_faces(*, tenant_id: UUID | str, asset_id: str, faces: Sequence[DetectedFace],
                        model_id: str, submitted_at: datetime, actor: Actor,
                        subject_id: str | None = None, job_id: UUID | None = None,
                        expires_at: datetime | None = None, collection_id: UUID | None = None) -> IndexedAsset:
    """Make the asset's faces exactly `faces`, atomically.

    Idempotent and ordered: re-running the same submission replaces its own
    faces again (no duplicates), and a submission older than the one already
    indexed changes nothing (`superseded`).
    """
    with tenant_context(tenant_id):
        return write_asset_faces(tenant_id=tenant_id, asset_id=asset_id, faces=faces, model_id=model_id,
                                 submitted_at=submitted_at, actor=actor, subject_id=subject_id, job_id=job_id,
                                 expires_at=expires_at, collection_id=collection_id)


class SubjectFaceLimitExceeded(Unprocessable):
    """A subject holds at most SUBJECT_MAX_FACES faces (Rekognition's users hold 100)."""

    code = "subject_face_limit"
    default_message = "The subject would hold more faces than the per-subject limit."


# The tenant's retention and its active key version in one round trip, read
# inside the write's transaction: a rotation that committed before it is seen
# here, so new faces never go out under a version that is already retiring.
_TENANT_AND_KEY_SQL = """
SELECT t.face_retention_days, k.version
FROM tenants_tenant t LEFT JOIN tenants_tenantkey k ON k.tenant_id = t.id AND k.status = 'active'
WHERE t.id = %s
"""

# Insert the asset or lock and update it, in one statement and without a
# savepoint. The conflicting row is locked even when the WHERE refuses the
# update, so "no row back" means: a newer submission of this asset was
# indexed already (superseded), and nobody changes it until we commit.
_UPSERT_ASSET_SQL = """
INSERT INTO embeddings_asset AS a (id, tenant_id, collection_id, asset_id, subject_id, face_count,
                                   source_submitted_at, indexed_at)
VALUES (%(id)s, %(tenant)s, %(collection)s, %(asset)s, %(subject)s, %(count)s, %(submitted)s, %(now)s)
ON CONFLICT (tenant_id, collection_id, asset_id) DO UPDATE
SET subject_id = EXCLUDED.subject_id, face_count = EXCLUDED.face_count,
    source_submitted_at = EXCLUDED.source_submitted_at, indexed_at = EXCLUDED.indexed_at
WHERE a.source_submitted_at <= EXCLUDED.source_submitted_at
RETURNING a.id
"""


def write_asset_faces(*, tenant_id: UUID | str, asset_id: str, faces: Sequence[DetectedFace], model_id: str,
                      submitted_at: datetime, actor: Actor, subject_id: str | None = None,
                      job_id: UUID | None = None, expires_at: datetime | None = None,
                      collection_id: UUID | None = None) -> IndexedAsset:
    """replace_asset_faces for a caller whose open transaction is already bound to the tenant.

    The index workers' hot path: one tenant scope (the caller's), no
    savepoints, eight statements plus the audit append. `collection_id` None:
    the tenant's default collection.
    """
    now = timezone.now()
    collection_id = collection_id_of(tenant_id, collection_id)
    collection_retention = lock_for_write(tenant_id, collection_id, model_id)
    if subject_id is not None:
        check_subject_room(tenant_id, collection_id, subject_id, adding=len(faces), replacing_asset=asset_id)
    with connection.cursor() as cursor:
        cursor.execute(_TENANT_AND_KEY_SQL, [str(tenant_id)])
        found = cursor.fetchone()
        if found is None:
            raise Tenant.DoesNotExist(f"no tenant {tenant_id}")
        retention_days, version = found
        key = (data_keys.key_ref(tenant_id=tenant_id, version=version) if version is not None
               else data_keys.active_key(tenant_id=tenant_id, actor=actor))  # the tenant's first key
        protected = protect_faces(tenant_id=tenant_id, faces=faces, model_id=model_id, key=key)
        cursor.execute(_UPSERT_ASSET_SQL, {
            "id": uuid.uuid4(), "tenant": str(tenant_id), "collection": str(collection_id), "asset": asset_id,
            "subject": subject_id, "count": len(protected), "submitted": submitted_at, "now": now})
        if cursor.fetchone() is None:
            current = list(Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id, asset_id=asset_id)
                           .values_list("id", flat=True))
            return IndexedAsset(asset_id=asset_id, face_ids=current, superseded=True)
        cursor.execute("DELETE FROM embeddings_face WHERE tenant_id = %s AND collection_id = %s AND asset_id = %s",
                       [str(tenant_id), str(collection_id), asset_id])
        replaced = cursor.rowcount
    generation = next_generation(tenant_id, removes=replaced > 0)
    expiry = _expiry(collection_retention or retention_days, now, expires_at)
    Face.objects.bulk_create([
        Face(id=face_id, tenant_id=tenant_id, collection_id=collection_id, asset_id=asset_id,
             subject_id=subject_id, job_id=job_id,
             bbox=rounding.box(face.bbox), det_score=rounding.score(face.det_score),
             quality=stored_quality(getattr(face, "quality", None)),
             model_id=model_id, key_version=key.version, embedding_ciphertext=ciphertext,
             search_vector=vector, created_at=now, expires_at=expiry, gallery_generation=generation)
        for face, (face_id, ciphertext, vector) in zip(faces, protected, strict=True)
    ])
    face_ids = [face_id for face_id, _, _ in protected]
    record_event(tenant_id=tenant_id, actor=actor, action="faces.indexed",
                 target={"asset_id": asset_id, "subject_id": subject_id, "job_id": str(job_id) if job_id else None},
                 details={"collection_id": str(collection_id), "faces": len(face_ids), "replaced": replaced,
                          "key_version": key.version,
                          "model_id": model_id})
    return IndexedAsset(asset_id=asset_id, face_ids=face_ids, replaced=replaced)


def subject_face_limit() -> int:
    return settings.SUBJECT_MAX_FACES


def check_subject_room(tenant_id: UUID | str, collection_id: UUID, subject_id: str, *, adding: int,
                       replacing_asset: str | None = None, lock: bool = True) -> None:
    """Refuse a write that would give the subject more than SUBJECT_MAX_FACES faces.

    Writers of one subject take its lock first (`lock`: unless the caller
    holds it), so two at once cannot both fit in the last free place.
    `replacing_asset`: that asset's faces are being replaced (not counted).
    """
    if lock:
        advisory_lock(f"subject:{collection_id}:{subject_id}")
    faces = Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id, subject_id=subject_id)
    if replacing_asset is not None:
        faces = faces.exclude(asset_id=replacing_asset)
    if faces.count() + adding > subject_face_limit():
        raise SubjectFaceLimitExceeded(details={"limit": subject_face_limit()})


def _expiry(retention_days: int | None, now: datetime, expires_at: datetime | None) -> datetime | None:
    if retention_days:
        retention_end = now + timedelta(days=retention_days)
        return min(expires_at, retention_end) if expires_at else retention_end
    return expires_at


def _delete_matching(tenant_id: UUID | str, collection_id: UUID, *, face_ids: Iterable[UUID] = (),
                     asset_ids: Iterable[str] = (), subject_ids: Iterable[str] = ()) -> tuple[list[str], int]:
    faces = Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id)
    face_ids, asset_ids, subject_ids = list(face_ids), list(asset_ids), list(subject_ids)
    if face_ids:
        faces = faces.filter(id__in=face_ids)
    elif asset_ids:
        faces = faces.filter(asset_id__in=asset_ids)
    elif subject_ids:
        faces = faces.filter(subject_id__in=subject_ids)
    deleted = list(faces.values_list("id", "asset_id"))
    faces.delete()
    touched = {asset_id for _, asset_id in deleted}
    assets_deleted = 0
    if asset_ids:
        assets_deleted, _ = Asset.objects.filter(tenant_id=tenant_id, collection_id=collection_id,
                                                 asset_id__in=asset_ids).delete()
    elif subject_ids:
        # The subject's assets go with its faces, unless some of their faces
        # were moved to another subject since (those keep their asset).
        assets_deleted = delete_emptied_assets(tenant_id, collection_id, subject_ids=subject_ids)
    refresh_asset_counts(tenant_id, collection_id, touched)
    if deleted:
        next_generation(tenant_id, removes=True)
    send_deleted(tenant_id=tenant_id, collection_id=collection_id, face_ids=[face_id for face_id, _ in deleted],
                 asset_ids=asset_ids, subject_ids=subject_ids)
    return [str(face_id) for face_id, _ in deleted], assets_deleted


def delete_emptied_assets(tenant_id: UUID | str, collection_id: UUID, *, subject_ids: Sequence[str]) -> int:
    """Delete the subjects' assets that have no face left; how many went."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM embeddings_asset a WHERE a.tenant_id = %s AND a.collection_id = %s "
            "AND a.subject_id = ANY(%s) AND NOT EXISTS (SELECT 1 FROM embeddings_face f WHERE "
            "f.tenant_id = a.tenant_id AND f.collection_id = a.collection_id AND f.asset_id = a.asset_id)",
            [str(tenant_id), str(collection_id), list(subject_ids)])
        return cursor.rowcount


def refresh_asset_counts(tenant_id: UUID | str, collection_id: UUID, asset_ids: Iterable[str]) -> None:
    """Set these assets' face counts to the faces they still have."""
    asset_ids = list(asset_ids)
    if not asset_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE embeddings_asset a SET face_count = (SELECT count(*) FROM embeddings_face f WHERE "
            "f.tenant_id = a.tenant_id AND f.collection_id = a.collection_id AND f.asset_id = a.asset_id) "
            "WHERE a.tenant_id = %s AND a.collection_id = %s AND a.asset_id = ANY(%s)",
            [str(tenant_id), str(collection_id), asset_ids])


def delete_faces(*, tenant_id: UUID | str, actor: Actor, face_ids: Sequence[UUID] = (),
                 asset_ids: Sequence[str] = (), subject_ids: Sequence[str] = (),
                 collection: str | None = None) -> DeletionReceipt:
    """Delete faces of a collection by ids, by asset ids or by subject ids (exactly one kind).

    Rows are deleted, not flagged. Deleting what is already gone is not an
    error: the receipt says zero. `collection` None: the default collection.
    """
    kinds = [bool(face_ids), bool(asset_ids), bool(subject_ids)]
    if sum(kinds) != 1:
        raise ValueError("give exactly one of face_ids, asset_ids, subject_ids")
    requested = {name: [str(v) for v in values] for name, values in
                 (("face_ids", face_ids), ("asset_ids", asset_ids), ("subject_ids", subject_ids)) if values}
    if collection is not None:
        requested = {"collection": collection, **requested}
    receipt_id = uuid.uuid4()
    with tenant_context(tenant_id):
        collection_id = collection_named(tenant_id, collection).id
        deleted_ids, assets_deleted = _delete_matching(
            tenant_id, collection_id, face_ids=face_ids, asset_ids=asset_ids, subject_ids=subject_ids)
        event = record_event(tenant_id=tenant_id, actor=actor, action="faces.deleted", target=requested,
                             details={"faces_deleted": len(deleted_ids), "assets_deleted": assets_deleted},
                             receipt_id=receipt_id)
        receipt = DeletionReceipt(receipt_id=receipt_id, requested=requested, faces_deleted=len(deleted_ids),
                                  assets_deleted=assets_deleted, deleted_at=event.occurred_at, face_ids=deleted_ids)
        notify_deleted(tenant_id=tenant_id, receipt=receipt)
    return receipt


def remove_collection_rows(tenant_id: UUID | str, collection_id: UUID) -> None:
    """The collection's own row, with its index jobs (their results name its assets and faces).

    Its faces and assets must be gone first: they PROTECT the row, so a residue fails loudly.
    """
    Collection.objects.filter(tenant_id=tenant_id, id=collection_id).delete()


def delete_collection_now(*, tenant_id: UUID | str, collection_id: UUID, name: str,
                          actor: Actor) -> DeletionReceipt:
    """Delete a (small) collection in one transaction: faces, assets, jobs, the row; receipted."""
    receipt_id = uuid.uuid4()
    requested = {"collection": name}
    with transaction.atomic(), tenant_context(tenant_id):
        Collection.objects.select_for_update().filter(tenant_id=tenant_id, id=collection_id).first()
        faces_deleted, _ = Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id).delete()
        assets_deleted, _ = Asset.objects.filter(tenant_id=tenant_id, collection_id=collection_id).delete()
        remove_collection_rows(tenant_id, collection_id)
        next_generation(tenant_id, removes=True)
        event = record_event(tenant_id=tenant_id, actor=actor, action="faces.deleted", target=requested,
                             details={"faces_deleted": faces_deleted, "assets_deleted": assets_deleted},
                             receipt_id=receipt_id)
        receipt = DeletionReceipt(receipt_id=receipt_id, requested=requested, faces_deleted=faces_deleted,
                                  assets_deleted=assets_deleted, deleted_at=event.occurred_at)
        notify_deleted(tenant_id=tenant_id, receipt=receipt)
    return receipt


def notify_deleted(*, tenant_id: UUID | str, receipt: DeletionReceipt) -> None:
    """The faces.deleted webhook: ids and counts only."""
    webhooks.emit_event(tenant_id=tenant_id, event_type=webhooks.FACES_DELETED, payload=receipt.payload())


def purge_tenant_face_data(*, tenant_id: UUID | str, actor: Actor) -> DeletionReceipt:
    """Delete every face and asset of the tenant and destroy its data keys."""
    receipt_id = uuid.uuid4()
    with transaction.atomic(), tenant_context(tenant_id):
        faces_deleted, _ = Face.objects.filter(tenant_id=tenant_id).delete()
        assets_deleted, _ = Asset.objects.filter(tenant_id=tenant_id).delete()
        next_generation(tenant_id, removes=True)
        send_deleted(tenant_id=tenant_id, purge=True)
        keys_destroyed = data_keys.shred_keys(tenant_id=tenant_id, actor=actor)
        event = record_event(tenant_id=tenant_id, actor=actor, action="faces.purged",
                             target={"tenant_id": str(tenant_id)}, receipt_id=receipt_id,
                             details={"faces_deleted": faces_deleted, "assets_deleted": assets_deleted,
                                      "keys_destroyed": keys_destroyed})
        receipt = DeletionReceipt(receipt_id=receipt_id, requested=PURGE, faces_deleted=faces_deleted,
                                  assets_deleted=assets_deleted, deleted_at=event.occurred_at,
                                  keys_destroyed=keys_destroyed)
        notify_deleted(tenant_id=tenant_id, receipt=receipt)
    return receipt


def purge_expired_faces(*, now: datetime | None = None, actor: Actor | None = None) -> int:
    """Delete faces past their expiry, tenant by tenant (retention)."""
    now = now or timezone.now()
    actor = actor or Actor.system("retention")
    total = 0
    for tenant_id in Tenant.objects.values_list("id", flat=True):
        with tenant_context(tenant_id):
            expired = Face.objects.filter(tenant_id=tenant_id, expires_at__lte=now)
            touched: dict[UUID, set[str]] = {}
            expired_ids = []
            for face_id, collection_id, asset_id in expired.values_list("id", "collection_id", "asset_id"):
                touched.setdefault(collection_id, set()).add(asset_id)
                expired_ids.append(face_id)
            count, _ = expired.delete()
            if count:
                send_deleted(tenant_id=tenant_id, face_ids=expired_ids)
                for collection_id, asset_ids in touched.items():
                    refresh_asset_counts(tenant_id, collection_id, asset_ids)
                next_generation(tenant_id, removes=True)
                record_event(tenant_id=tenant_id, actor=actor, action="faces.retention_purged",
                             details={"faces_deleted": count})
                total += count
    return total


def reencrypt_batch(*, tenant_id: UUID | str, batch_size: int = 500, actor: Actor) -> int:
    """Move up to `batch_size` faces from retiring key versions to the active one.

    Each batch is one transaction, so a crash loses at most a batch's work and
    the next run picks up where it stopped (rows still carry the old version).
    Searches keep working throughout: they query every readable version.
    """
    active = data_keys.active_key(tenant_id=tenant_id, actor=actor)
    with tenant_context(tenant_id):
        faces = list(Face.objects.select_for_update(skip_locked=True)
                     .filter(tenant_id=tenant_id).exclude(key_version=active.version)[:batch_size])
        # A template moved to another key version counts as removed from the
        # old version's in-memory galleries (embeddings/search/gallery.py).
        generation = next_generation(tenant_id, removes=True) if faces else 0
        for face in faces:
            old_key = data_keys.data_key(tenant_id=tenant_id, version=face.key_version)
            embedding = decrypt_embedding(dek=old_key, ciphertext=bytes(face.embedding_ciphertext),
                                          tenant_id=str(tenant_id), face_id=str(face.id),
                                          key_version=face.key_version, model_id=face.model_id)
            matrix = projection_matrix(dek=active.key, key_version=active.version,
                                       dimension=embedding.shape[0], model_id=face.model_id)
            face.embedding_ciphertext = encrypt_embedding(
                dek=active.key, embedding=embedding, tenant_id=str(tenant_id), face_id=str(face.id),
                key_version=active.version, model_id=face.model_id)
            face.search_vector = project(matrix, embedding)
            face.key_version = active.version
            face.gallery_generation = generation
        Face.objects.bulk_update(faces, ["embedding_ciphertext", "search_vector", "key_version",
                                         "gallery_generation"])
        if not faces:
            in_use = set(Face.objects.filter(tenant_id=tenant_id).values_list("key_version", flat=True))
            data_keys.finish_retired_keys(tenant_id=tenant_id, in_use_versions=in_use, actor=actor)
        else:
            record_event(tenant_id=tenant_id, actor=actor, action="key.faces_reencrypted",
                         details={"faces": len(faces), "to_version": active.version})
    return len(faces)

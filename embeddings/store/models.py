"""The face store's tables: assets (the tenant's images, by the tenant's own id),
their faces, and deletions too large for one request.

No image is ever stored. A face keeps its box, score, which model and key
version made it, its canonical embedding encrypted with AES-256-GCM, and its
protected search vector y = R·x (R: the tenant's secret rotation, see
embeddings/store/protection.py).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from pgvector.django import VectorField

from tenants.models import Tenant

COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"


class Collection(models.Model):
    """A tenant's named set of faces: searched, listed, retained and deleted on its own.

    Tied to one face model: `model_id` is set when the collection is created
    (or by its first indexed face) and never changes, so moving to a new model
    is re-indexing into a new collection while the old one goes on answering.
    A collection being deleted keeps its row (status `deleting`) until its
    last face is gone; its name is free again at once.
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        DELETING = "deleting"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    model_id = models.CharField(max_length=100, null=True, blank=True)
    face_retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides the tenant's retention for this collection's faces")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "embeddings_collection"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="collection_name_per_tenant",
                                    condition=models.Q(status="active")),
        ]


class Asset(models.Model):
    """One of the tenant's images, known by the tenant's own asset id.

    `source_submitted_at` orders re-indexing: a late, stale retry of an older
    submission never replaces the faces of a newer one.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # PROTECT: a collection goes only once its faces and assets are gone (no residue).
    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="+", db_index=False)
    asset_id = models.CharField(max_length=255)
    subject_id = models.CharField(max_length=255, null=True, blank=True)
    face_count = models.PositiveIntegerField(default=0)
    source_submitted_at = models.DateTimeField()
    indexed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "embeddings_asset"
        constraints = [models.UniqueConstraint(fields=["tenant", "collection", "asset_id"],
                                               name="asset_unique_per_collection")]
        indexes = [models.Index(fields=["tenant", "collection", "subject_id"], name="asset_collection_subject")]


class Face(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="+", db_index=False)
    asset_id = models.CharField(max_length=255)
    subject_id = models.CharField(max_length=255, null=True, blank=True)
    job_id = models.UUIDField(null=True, blank=True)
    bbox = models.JSONField(help_text="[x1, y1, x2, y2] in pixels of the oriented image")
    det_score = models.FloatField()
    # sharpness, brightness, yaw, pitch, roll, size (embeddings/engine/quality.py); null before it was measured
    quality = models.JSONField(null=True, blank=True)
    model_id = models.CharField(max_length=100)
    key_version = models.PositiveIntegerField()
    embedding_ciphertext = models.BinaryField()
    # Untyped: the dimension comes from the model. Each model gets its own
    # partial HNSW index over (search_vector::vector(d)) WHERE model_id = ...
    search_vector = VectorField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The tenant's GalleryState.generation of the transaction that wrote this
    # row: web processes holding the tenant's templates in memory fetch only
    # the rows above the generation they hold (embeddings/search/gallery.py).
    gallery_generation = models.BigIntegerField(db_default=0)

    class Meta:
        db_table = "embeddings_face"
        indexes = [
            models.Index(fields=["tenant", "collection", "gallery_generation"], name="face_collection_generation"),
            models.Index(fields=["tenant", "collection", "asset_id"], name="face_collection_asset"),
            models.Index(fields=["tenant", "collection", "subject_id"], name="face_collection_subject"),
            models.Index(fields=["tenant", "collection", "created_at", "id"], name="face_collection_created"),
            models.Index(fields=["expires_at"], name="face_expires",
                         condition=models.Q(expires_at__isnull=False)),
        ]


class DeletionRequest(models.Model):
    """A deletion too large for one request: run by a worker in batches, then receipted.

    The receipt (counts, time, receipt id) is written here and in the audit
    log when the last batch is gone; until then `status` says how far it is.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    requested = models.JSONField(help_text="{collection?, face_ids | asset_ids | subject_ids: [...]}, "
                                           "{collection} (the whole collection) or {purge: true}")
    # Not a foreign key: a collection's own deletion outlives its row. None: a purge.
    collection_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    faces_deleted = models.PositiveIntegerField(default=0)
    assets_deleted = models.PositiveIntegerField(default=0)
    keys_destroyed = models.PositiveIntegerField(default=0)
    receipt_id = models.UUIDField(default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "embeddings_deletionrequest"


class GalleryState(models.Model):
    """A counter of the writes to a tenant's faces, for the in-memory search galleries.

    Every transaction that inserts, changes or deletes faces takes the next
    generation first thing after its own row locks and holds this row's lock
    until it commits. So a generation G seen committed means every row written
    at or below G is visible: a reader that holds the tenant's templates up to
    G needs only the rows above it. Deletions also set `removed_generation`,
    which tells readers to load the tenant again (embeddings/search/gallery.py;
    writers take generations through embeddings/store/generations.py).
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="+")
    generation = models.BigIntegerField(default=0)
    removed_generation = models.BigIntegerField(default=0)

    class Meta:
        db_table = "embeddings_gallerystate"

"""Face data: assets (the tenant's images, by the tenant's own id) and their faces.

No image is ever stored. A face keeps its box, score, which model and key
version made it, its canonical embedding encrypted with AES-256-GCM, and its
protected search vector y = R·x (R: the tenant's secret rotation, see
embeddings/protection.py).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from pgvector.django import VectorField

from tenants.models import Tenant


class Asset(models.Model):
    """One of the tenant's images, known by the tenant's own asset id.

    `source_submitted_at` orders re-indexing: a late, stale retry of an older
    submission never replaces the faces of a newer one.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    asset_id = models.CharField(max_length=255)
    subject_id = models.CharField(max_length=255, null=True, blank=True)
    face_count = models.PositiveIntegerField(default=0)
    source_submitted_at = models.DateTimeField()
    indexed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "embeddings_asset"
        constraints = [models.UniqueConstraint(fields=["tenant", "asset_id"], name="asset_unique_per_tenant")]


class Face(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    asset_id = models.CharField(max_length=255)
    subject_id = models.CharField(max_length=255, null=True, blank=True)
    job_id = models.UUIDField(null=True, blank=True)
    bbox = models.JSONField(help_text="[x1, y1, x2, y2] in pixels of the oriented image")
    det_score = models.FloatField()
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
    # the rows above the generation they hold (embeddings/gallery.py).
    gallery_generation = models.BigIntegerField(db_default=0)

    class Meta:
        db_table = "embeddings_face"
        indexes = [
            models.Index(fields=["tenant", "gallery_generation"], name="face_tenant_generation"),
            models.Index(fields=["tenant", "asset_id"], name="face_tenant_asset"),
            models.Index(fields=["tenant", "subject_id"], name="face_tenant_subject"),
            models.Index(fields=["tenant", "created_at", "id"], name="face_tenant_created"),
            models.Index(fields=["expires_at"], name="face_expires",
                         condition=models.Q(expires_at__isnull=False)),
        ]


class GalleryState(models.Model):
    """A counter of the writes to a tenant's faces, for the in-memory search galleries.

    Every transaction that inserts, changes or deletes faces takes the next
    generation first thing after its own row locks and holds this row's lock
    until it commits. So a generation G seen committed means every row written
    at or below G is visible: a reader that holds the tenant's templates up to
    G needs only the rows above it. Deletions also set `removed_generation`,
    which tells readers to load the tenant again (embeddings/gallery.py).
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="+")
    generation = models.BigIntegerField(default=0)
    removed_generation = models.BigIntegerField(default=0)

    class Meta:
        db_table = "embeddings_gallerystate"


# --- Index jobs -------------------------------------------------------------------
# PostgreSQL is the source of truth for jobs: Celery messages carry only ids,
# and a lost message or a dead worker is recovered from these rows by the
# sweeper (see embeddings/job_services.py and docs/JOBS.md).


class IndexJob(models.Model):
    """One submission of assets to index, with its counters and timings."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued: no asset has started yet"
        RUNNING = "running", "Running: at least one asset has started"
        SUCCEEDED = "succeeded", "Succeeded: every asset was indexed"
        PARTIALLY_FAILED = "partially_failed", "Partially failed: some assets failed, some were indexed"
        FAILED = "failed", "Failed: every asset failed"
        CANCELLED = "cancelled", "Cancelled"

    TERMINAL_STATES = frozenset({"succeeded", "partially_failed", "failed", "cancelled"})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # HMAC of the request body: a reused Idempotency-Key with another body is refused.
    request_fingerprint = models.CharField(max_length=64)
    options = models.JSONField(default=dict, help_text="max_faces, min_face_size, min_det_score")
    faces_expire_at = models.DateTimeField(null=True, blank=True)
    submitted_by = models.JSONField(default=dict, help_text="The actor: type, id, name")
    assets_total = models.PositiveIntegerField(default=0)
    assets_done = models.PositiveIntegerField(default=0)
    assets_failed = models.PositiveIntegerField(default=0)
    assets_cancelled = models.PositiveIntegerField(default=0)
    faces_indexed = models.PositiveIntegerField(default=0)
    faces_left_out = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When an asset of this job was last dispatched: the least recently served
    # job goes first, so a tenant's jobs take turns (job_services.dispatch_tenant).
    last_dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "embeddings_indexjob"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "idempotency_key"], name="indexjob_idempotency_key",
                                    condition=models.Q(idempotency_key__isnull=False)),
        ]
        indexes = [
            models.Index(fields=["tenant", "created_at", "id"], name="indexjob_tenant_created"),
            models.Index(fields=["tenant", "state"], name="indexjob_tenant_active",
                         condition=models.Q(state__in=["queued", "running"])),
            models.Index(fields=["finished_at"], name="indexjob_finished",
                         condition=models.Q(finished_at__isnull=False)),
        ]

    @property
    def is_finished(self) -> bool:
        return self.state in self.TERMINAL_STATES

    @property
    def assets_finished(self) -> int:
        return self.assets_done + self.assets_failed + self.assets_cancelled


class IndexJobAsset(models.Model):
    """One asset of a job: its source, where it is in its life, and its result.

    pending -> queued (a task message was sent) -> processing (a worker holds the
    lease) -> succeeded | failed, with retry_wait between attempts after a
    transient failure; cancelled from any non-terminal state. `attempts` is also
    the fencing token: a worker whose lease was taken over cannot commit.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending: waiting for a dispatch slot of its tenant"
        QUEUED = "queued", "Queued: a task was sent to the workers"
        PROCESSING = "processing", "Processing: a worker holds the lease"
        RETRY_WAIT = "retry_wait", "Waiting to retry after a transient failure"
        SUCCEEDED = "succeeded", "Succeeded: its faces are indexed"
        FAILED = "failed", "Failed: see error_code"
        CANCELLED = "cancelled", "Cancelled with its job"

    IN_FLIGHT_STATES = ("queued", "processing", "retry_wait")
    TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})

    class SourceKind(models.TextChoices):
        URL = "url"
        S3 = "s3"
        INLINE = "inline"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    job = models.ForeignKey(IndexJob, on_delete=models.CASCADE, related_name="assets")
    position = models.PositiveIntegerField()
    asset_id = models.CharField(max_length=255)
    subject_id = models.CharField(max_length=255, null=True, blank=True)
    source_kind = models.CharField(max_length=8, choices=SourceKind.choices)
    # {"url"} or {"bucket", "key"} until the asset finishes; then only the host
    # or bucket is kept (URLs may carry tokens). Inline images live in InlineImage.
    source = models.JSONField(default=dict)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.CharField(max_length=500, blank=True, default="")
    faces = models.JSONField(default=list, help_text="[{face_id, bbox, det_score}]: never embeddings")
    left_out = models.JSONField(default=list, help_text="[{bbox, det_score, size, reason}]")
    superseded = models.BooleanField(default=False, help_text="A newer submission of the asset won")
    timings = models.JSONField(default=dict, help_text="fetch_ms, analyze_ms, store_ms, queue_ms")

    class Meta:
        db_table = "embeddings_indexjobasset"
        constraints = [
            models.UniqueConstraint(fields=["job", "asset_id"], name="indexjobasset_asset_once"),
            models.UniqueConstraint(fields=["job", "position"], name="indexjobasset_position"),
        ]
        indexes = [
            models.Index(fields=["job", "state", "position"], name="indexjobasset_job_state"),
            models.Index(fields=["tenant", "state"], name="indexjobasset_inflight",
                         condition=models.Q(state__in=["pending", "queued", "processing", "retry_wait"])),
        ]


class InlineImage(models.Model):
    """An inline image waiting for its worker: AES-256-GCM ciphertext only.

    Encrypted in the web process under a key derived from the tenant's data key
    (embeddings/inline_images.py), deleted when its asset finishes, purged by
    the sweeper when it outlives `expires_at`.
    """

    job_asset = models.OneToOneField(IndexJobAsset, on_delete=models.CASCADE, primary_key=True,
                                     related_name="inline_image")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    key_version = models.PositiveIntegerField()
    ciphertext = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "embeddings_inlineimage"


# --- Large deletions ----------------------------------------------------------------


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
    requested = models.JSONField(help_text="{face_ids | asset_ids | subject_ids: [...]} or {purge: true}")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    faces_deleted = models.PositiveIntegerField(default=0)
    assets_deleted = models.PositiveIntegerField(default=0)
    keys_destroyed = models.PositiveIntegerField(default=0)
    receipt_id = models.UUIDField(default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "embeddings_deletionrequest"

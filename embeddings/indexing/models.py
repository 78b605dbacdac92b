"""Index jobs: a job, one row per asset it indexes, and inline images sealed until a worker reads them."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from embeddings.store.models import Collection
from tenants.models import Tenant


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
    # Deleting a collection deletes its jobs too: their results name its assets and faces.
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+", db_index=False)
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
    # job goes first, so a tenant's jobs take turns (dispatch.dispatch_tenant).
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
    (embeddings/indexing/inline_images.py), deleted when its asset finishes, purged by
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

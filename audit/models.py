"""The append-only audit log: one hash chain per tenant (and one for the platform).

Besides the events themselves:
- AuditChainHead: the last event of each chain, locked while appending.
- AuditAnchor: HMAC-signed copies of chain heads, written periodically (and
  mirrored to an S3 object-lock bucket when configured), so that cutting off
  the tail of a chain and rewinding its head is detected.
- AuditRetentionCheckpoint: where a retention purge cut a chain; verification
  starts from there. The database lets an event be deleted only under one.
- AuditVerification: the last verification result of each chain (for the console).
- StaffLoginThrottle: failed console sign-ins per name and address, for the lock-out.
"""

from __future__ import annotations

from uuid import UUID

from django.contrib.postgres.indexes import BrinIndex, GinIndex
from django.db import models
from django.utils import timezone

PLATFORM_CHAIN = "platform"


def chain_of(tenant_id: UUID | str | None) -> str:
    """The audit chain an event of this tenant (or of the platform, for None) belongs to."""
    return str(tenant_id) if tenant_id else PLATFORM_CHAIN

class AuditEvent(models.Model):
    """Who did what to which face data, when, and how it ended.

    Never holds images, embeddings, API keys or request bodies: only ids,
    counts and outcomes. Rows are never updated or deleted by the service
    (the database refuses it; see the migrations).
    """

    id = models.BigAutoField(primary_key=True)
    tenant_id = models.UUIDField(null=True, blank=True, db_index=True)
    chain = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    occurred_at = models.DateTimeField(default=timezone.now)
    actor_type = models.CharField(max_length=16)  # api_key | staff | system | operator
    actor_id = models.CharField(max_length=64, blank=True)
    actor_name = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=64)
    target = models.JSONField(default=dict)
    outcome = models.CharField(max_length=16, default="success")
    details = models.JSONField(default=dict)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    receipt_id = models.UUIDField(null=True, blank=True, db_index=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "audit_event"
        ordering = ["-occurred_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["chain", "seq"], name="audit_chain_seq_unique")]
        indexes = [
            models.Index(fields=["tenant_id", "occurred_at"], name="audit_tenant_time"),
            models.Index(fields=["tenant_id", "action", "occurred_at"], name="audit_tenant_action"),
            # jsonb_ops (not jsonb_path_ops): it serves `target @@ '$.* == "id"'`, a
            # search for an id under any key (job_id, asset_id, face_id, ...).
            GinIndex(fields=["target"], name="audit_target_gin"),
            # The anomaly detector reads the last hour of every tenant's events: a BRIN
            # index on the time is a few pages, costs appends next to nothing, and
            # suits a table written in time order.
            BrinIndex(fields=["occurred_at"], name="audit_event_time_brin"),
        ]
        permissions = [("view_console", "Can use the auditors' console (read-only, all tenants)")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.action} ({self.outcome})"


class AuditChainHead(models.Model):
    """The last event of each chain: locked while appending, so the chain stays linear."""

    chain = models.CharField(max_length=40, primary_key=True)
    tenant_id = models.UUIDField(null=True, blank=True)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "audit_chainhead"


class AuditAnchor(models.Model):
    """A signed statement "chain C had seq S with hash H at time T". Append-only."""

    id = models.BigAutoField(primary_key=True)
    chain = models.CharField(max_length=40)
    tenant_id = models.UUIDField(null=True, blank=True)
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    anchored_at = models.DateTimeField()
    key_id = models.CharField(max_length=16)
    mac = models.CharField(max_length=64)
    # Where the anchor was also written, e.g. s3://bucket/key?versionId=...; empty: database only.
    external_ref = models.CharField(max_length=500, blank=True)

    class Meta:
        db_table = "audit_anchor"
        ordering = ["chain", "-seq"]
        indexes = [models.Index(fields=["chain", "seq"], name="audit_anchor_chain_seq")]

    def __str__(self) -> str:
        return f"anchor {self.chain}#{self.seq}"


class AuditRetentionCheckpoint(models.Model):
    """A retention purge removed events 1..seq of a chain; `hash` is the last one's.

    Verification of what remains starts from here. The database allows deleting
    an event only when a checkpoint covers it (see migration 0003).
    """

    id = models.BigAutoField(primary_key=True)
    chain = models.CharField(max_length=40)
    tenant_id = models.UUIDField(null=True, blank=True)
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    cutoff = models.DateTimeField()
    purged_events = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    # Signed like anchors, so a checkpoint slipped in by hand cannot hide a deletion.
    key_id = models.CharField(max_length=16)
    mac = models.CharField(max_length=64)

    class Meta:
        db_table = "audit_retention_checkpoint"
        ordering = ["chain", "-seq"]
        constraints = [models.UniqueConstraint(fields=["chain", "seq"], name="audit_checkpoint_chain_seq")]


class AuditVerification(models.Model):
    """The latest verification of one chain. A cache for the console, not evidence."""

    chain = models.CharField(max_length=40, primary_key=True)
    tenant_id = models.UUIDField(null=True, blank=True)
    verified_at = models.DateTimeField()
    ok = models.BooleanField()
    events_checked = models.BigIntegerField(default=0)
    anchors_checked = models.IntegerField(default=0)
    head_seq = models.BigIntegerField(default=0)
    first_bad_seq = models.BigIntegerField(null=True, blank=True)
    first_bad_event_id = models.BigIntegerField(null=True, blank=True)
    problem = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "audit_verification"


class StaffLoginThrottle(models.Model):
    """Failed console sign-ins per user name and client address; `locked_until` after too many.

    Per address, so that someone who knows an auditor's name cannot keep them
    locked out from elsewhere. `lockouts` counts the lock-outs in a row: each
    one lasts twice as long as the one before (CONSOLE_LOCKOUT_MAX_SECONDS at most).
    """

    id = models.BigAutoField(primary_key=True)
    username = models.CharField(max_length=150)
    address = models.CharField(max_length=45, blank=True)  # the client's IP; empty when unknown
    failures = models.PositiveIntegerField(default=0)
    lockouts = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "audit_staff_login_throttle"
        constraints = [models.UniqueConstraint(fields=["username", "address"], name="audit_login_throttle_name_addr")]

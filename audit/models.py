"""The append-only audit log: one hash chain per tenant (and one for the platform)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

PLATFORM_CHAIN = "platform"


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
        ]

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

"""Tenants, their API keys and roles."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    ADMIN = "admin", "Admin: manage keys and webhooks, delete face data"
    INDEXER = "indexer", "Indexer: submit index jobs, list faces"
    SEARCHER = "searcher", "Searcher: search and compare"
    COMPARER = "comparer", "Comparer: stateless compare only"
    AUDITOR = "auditor", "Auditor: read the audit log and statistics"


class Tenant(models.Model):
    """A company using the service. The root of isolation: not itself tenant-scoped."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    face_retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Faces older than this are purged; empty keeps them."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "tenants_tenant"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class ApiKey(models.Model):
    """An API key. Only a SHA-256 digest of the secret is stored, never the key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part, for lookup")
    digest = models.CharField(max_length=64)
    roles = ArrayField(models.CharField(max_length=16, choices=Role.choices))
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tenants_apikey"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


class TenantKey(models.Model):
    """A tenant's data key (DEK), stored only wrapped by the KMS master key.

    Versions let a tenant's key rotate online: faces carry the version they
    were encrypted under, and both versions stay readable until re-encryption
    finishes. `destroyed_at` marks crypto-shredding: the wrapped key is gone.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active: new faces use it"
        RETIRING = "retiring", "Retiring: still readable while faces are re-encrypted"
        RETIRED = "retired", "Retired: no faces use it"
        DESTROYED = "destroyed", "Destroyed (crypto-shredded)"

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="data_keys")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    provider = models.CharField(max_length=16)
    master_key_id = models.CharField(max_length=300)
    wrapped_key = models.BinaryField(null=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    retired_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tenants_tenantkey"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "version"], name="tenantkey_version_unique"),
            models.UniqueConstraint(fields=["tenant"], condition=models.Q(status="active"),
                                    name="tenantkey_one_active"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} v{self.version} ({self.status})"


# --- Webhooks ---------------------------------------------------------------------


class WebhookEndpoint(models.Model):
    """Where a tenant wants to hear about events, signed per Standard Webhooks.

    The signing secret is stored only encrypted (tenants/webhooks.py). After a
    rotation the previous secret keeps signing too until it expires, so
    receivers can switch without losing a message.
    """

    class DisabledReason(models.TextChoices):
        NONE = "", "Enabled"
        MANUAL = "manual", "Disabled by the tenant"
        FAILING = "failing", "Disabled automatically after persistent failure"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2048)
    description = models.CharField(max_length=200, blank=True, default="")
    events = ArrayField(models.CharField(max_length=64))
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=16, choices=DisabledReason.choices, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    secret_ciphertext = models.BinaryField(editable=False)
    previous_secret_ciphertext = models.BinaryField(null=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "tenants_webhookendpoint"
        indexes = [models.Index(fields=["tenant", "created_at", "id"], name="webhook_tenant_created")]

    def __str__(self) -> str:
        return f"webhook {self.id} ({'enabled' if self.enabled else 'disabled'})"


class WebhookDelivery(models.Model):
    """One event for one endpoint, with its retry schedule. Attempts are logged apart.

    `event_id` is the Standard Webhooks `webhook-id`: the same for every attempt
    and for a manual redelivery, so receivers can drop duplicates.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending: waiting for its next attempt"
        DELIVERING = "delivering", "Delivering: an attempt is under way"
        SUCCEEDED = "succeeded", "Succeeded: the endpoint answered 2xx"
        FAILED = "failed", "Failed: attempts exhausted or endpoint disabled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=64)
    payload = models.JSONField(help_text="The body sent: {type, timestamp, data}. Ids and counts only.")
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=64, blank=True, default="")
    redelivery_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tenants_webhookdelivery"
        indexes = [
            models.Index(fields=["endpoint", "created_at", "id"], name="webhookdelivery_endpoint"),
            models.Index(fields=["state", "next_attempt_at"], name="webhookdelivery_due",
                         condition=models.Q(state__in=["pending", "delivering"])),
        ]


class WebhookDeliveryAttempt(models.Model):
    """The log of one HTTP attempt: when, status code, latency, error. No bodies."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    succeeded = models.BooleanField(default=False)
    error = models.CharField(max_length=64, blank=True, default="")
    error_message = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        db_table = "tenants_webhookdeliveryattempt"
        ordering = ["delivery", "number"]

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


# Webhook tables live with the webhooks package; imported here so that Django
# registers them under the `tenants` app label.
from tenants.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint  # noqa: E402

__all__ = ["ApiKey", "Role", "Tenant", "TenantKey", "WebhookDelivery", "WebhookDeliveryAttempt", "WebhookEndpoint"]

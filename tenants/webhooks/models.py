"""Webhook endpoints, the events delivered to them, and each delivery attempt."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

# Tenant by its label, not imported: tenants/models.py imports this module.
TENANT = "tenants.Tenant"


class WebhookEndpoint(models.Model):
    """Where a tenant wants to hear about events, signed per Standard Webhooks.

    The signing secret is stored only encrypted (tenants/webhooks/). After a
    rotation the previous secret keeps signing too until it expires, so
    receivers can switch without losing a message.
    """

    class DisabledReason(models.TextChoices):
        NONE = "", "Enabled"
        MANUAL = "manual", "Disabled by the tenant"
        FAILING = "failing", "Disabled automatically after persistent failure"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(TENANT, on_delete=models.CASCADE, related_name="webhook_endpoints")
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
    tenant = models.ForeignKey(TENANT, on_delete=models.CASCADE, related_name="+", db_index=False)
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
    tenant = models.ForeignKey(TENANT, on_delete=models.CASCADE, related_name="+", db_index=False)
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

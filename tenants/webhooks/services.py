"""Webhooks, the web side: endpoints (CRUD, secret rotation) and events (emit, test, redeliver).

- `emit_event(tenant_id=, event_type=, payload=)` is the one way to send an
  event. It writes one delivery row per subscribed, enabled endpoint inside the
  caller's transaction (an event exists exactly when the change that caused it
  committed) and hands the ids to Celery after the commit (`enqueue`).
- Sending, retries and the sweeper: delivery.py. Secrets and signatures:
  signing.py. Reads: selectors.py.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, record_event
from faceservice.celery import app
from faceservice.errors import Conflict, ImageError, InvalidRequest
from faceservice.outbound.http import check_url
from faceservice.tenancy import tenant_context
from faceservice.timestamps import iso_utc
from tenants.models import WebhookDelivery, WebhookEndpoint
from tenants.webhooks.selectors import DeliveryNotFound, EndpointNotFound, endpoint_of
from tenants.webhooks.signing import new_secret, seal_secret

JOB_SUCCEEDED = "job.succeeded"
JOB_FAILED = "job.failed"  # any asset failed (the job is failed or partially_failed)
JOB_CANCELLED = "job.cancelled"
FACES_DELETED = "faces.deleted"
CLUSTERING_FINISHED = "clustering.finished"
TEST_EVENT = "webhook.test"  # sent on request to one endpoint, whatever it subscribed to
EVENT_TYPES = (JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED, FACES_DELETED, CLUSTERING_FINISHED)

DELIVER_TASK = "tenants.deliver_webhook"


class EndpointDisabled(Conflict):
    """The endpoint is disabled: enable it before asking for a redelivery."""

    code = "endpoint_disabled"
    default_message = "The endpoint is disabled; enable it first."


class InvalidEndpoint(InvalidRequest):
    """The URL or the event list may not be used."""

    # Answered like a validation error: the generic message, the problem under details.webhook.
    message_is_public = False

    def __init__(self, problem: str) -> None:
        super().__init__(problem, details={"webhook": [problem]})


# --- Endpoints -----------------------------------------------------------------------

@dataclass(frozen=True)
class IssuedSecret:
    """An endpoint and its signing secret as shown to its owner exactly once."""

    endpoint: WebhookEndpoint
    secret: str = field(repr=False)


def validate_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown or not events:
        raise InvalidEndpoint(f"events must be a non-empty subset of {list(EVENT_TYPES)}; unknown: {unknown}")
    return sorted(set(events))


def validate_url(url: str) -> str:
    """https (http only where settings allow it), and a host the SSRF guard accepts.

    Checked again on every delivery: DNS may change after registration.
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme != "https" and not (scheme == "http" and settings.WEBHOOK_ALLOW_HTTP):
        raise InvalidEndpoint("the webhook URL must use https")
    try:
        check_url(url, allowed_networks=settings.FETCH_ALLOWED_NETWORKS, timeout=3.0)
    except ImageError as exc:
        raise InvalidEndpoint(f"the webhook URL cannot be used: {exc.message}") from exc
    return url


def audit_target(endpoint: WebhookEndpoint) -> dict[str, str]:
    return {"webhook_endpoint_id": str(endpoint.id)}


def host_of(url: str) -> str:
    # Audit and logs name the host only: paths and query strings may carry tokens.
    return url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]


def create_endpoint(*, tenant_id: UUID | str, url: str, events: list[str], actor: Actor,
                    description: str = "", enabled: bool = True) -> IssuedSecret:
    events, url = validate_events(events), validate_url(url)
    secret = new_secret()
    with tenant_context(tenant_id):
        endpoint = WebhookEndpoint(tenant_id=tenant_id, url=url, events=events, description=description,
                                   enabled=enabled, disabled_reason="" if enabled else "manual")
        endpoint.secret_ciphertext = seal_secret(secret, tenant_id=tenant_id, endpoint_id=endpoint.id)
        endpoint.save()
        record_event(tenant_id=tenant_id, actor=actor, action="webhook_endpoint.created",
                     target=audit_target(endpoint),
                     details={"host": host_of(url), "events": events, "enabled": enabled})
    return IssuedSecret(endpoint=endpoint, secret=secret)


def update_endpoint(*, tenant_id: UUID | str, endpoint_id: UUID | str, actor: Actor,
                    url: str | None = None, events: list[str] | None = None,
                    description: str | None = None, enabled: bool | None = None) -> WebhookEndpoint:
    """Change what is given. Enabling again clears the failure record."""
    with tenant_context(tenant_id):
        endpoint = endpoint_of(tenant_id=tenant_id, endpoint_id=endpoint_id, lock=True)
        changes: dict[str, Any] = {}
        if url is not None and url != endpoint.url:
            endpoint.url, changes["host"] = validate_url(url), host_of(url)
        if events is not None:
            endpoint.events = changes["events"] = validate_events(events)
        if description is not None:
            endpoint.description, changes["description"] = description, True
        if enabled is not None and enabled != endpoint.enabled:
            set_enabled(endpoint, enabled, reason="manual")
            changes["enabled"] = enabled
        endpoint.save()
        record_event(tenant_id=tenant_id, actor=actor, action="webhook_endpoint.updated",
                     target=audit_target(endpoint), details=changes)
    return endpoint


def set_enabled(endpoint: WebhookEndpoint, enabled: bool, *, reason: str) -> None:
    endpoint.enabled = enabled
    if enabled:
        endpoint.disabled_reason, endpoint.disabled_at = "", None
        endpoint.consecutive_failures, endpoint.failing_since = 0, None
    else:
        endpoint.disabled_reason, endpoint.disabled_at = reason, timezone.now()


def delete_endpoint(*, tenant_id: UUID | str, endpoint_id: UUID | str, actor: Actor) -> None:
    """Delete the endpoint with its delivery log; deliveries under way are dropped."""
    with tenant_context(tenant_id):
        endpoint = endpoint_of(tenant_id=tenant_id, endpoint_id=endpoint_id, lock=True)
        record_event(tenant_id=tenant_id, actor=actor, action="webhook_endpoint.deleted",
                     target=audit_target(endpoint), details={"host": host_of(endpoint.url)})
        endpoint.delete()


def rotate_secret(*, tenant_id: UUID | str, endpoint_id: UUID | str, actor: Actor) -> IssuedSecret:
    """A new secret; the old one keeps signing for WEBHOOK_SECRET_ROTATION_GRACE_SECONDS."""
    secret = new_secret()
    now = timezone.now()
    with tenant_context(tenant_id):
        endpoint = endpoint_of(tenant_id=tenant_id, endpoint_id=endpoint_id, lock=True)
        grace = settings.WEBHOOK_SECRET_ROTATION_GRACE_SECONDS
        endpoint.previous_secret_ciphertext = endpoint.secret_ciphertext if grace > 0 else None
        endpoint.previous_secret_expires_at = now + timedelta(seconds=grace) if grace > 0 else None
        endpoint.secret_ciphertext = seal_secret(secret, tenant_id=tenant_id, endpoint_id=endpoint.id)
        endpoint.secret_rotated_at = now
        endpoint.save()
        record_event(tenant_id=tenant_id, actor=actor, action="webhook_endpoint.secret_rotated",
                     target=audit_target(endpoint),
                     details={"previous_valid_until": endpoint.previous_secret_expires_at})
    return IssuedSecret(endpoint=endpoint, secret=secret)


# --- Events ---------------------------------------------------------------------------

def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def _json_value(value: Any) -> Any:
    # Ids, counts, timestamps: yes. Bytes, arrays (images, embeddings): refused.
    if isinstance(value, (UUID, datetime)):
        return iso_utc(value) if isinstance(value, datetime) else str(value)
    raise TypeError(f"a webhook payload may not hold {type(value).__name__} values")


def event_body(*, event_type: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    data = json.loads(json.dumps(payload, default=_json_value, allow_nan=False))
    return {"type": event_type, "timestamp": iso_utc(now), "data": data}


def emit_event(*, tenant_id: UUID | str, event_type: str, payload: dict[str, Any]) -> list[UUID]:
    """Queue `event_type` for every enabled endpoint of the tenant that subscribed to it.

    Call it inside the transaction of the change it reports: the deliveries
    commit (and are sent) only with that change. `payload` must hold ids,
    counts and timings only — never images or embeddings (bytes and arrays are
    refused). Returns the ids of the deliveries made.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; known: {EVENT_TYPES}")
    now = timezone.now()
    body = event_body(event_type=event_type, payload=payload, now=now)
    event_id = new_event_id()
    with tenant_context(tenant_id):
        endpoints = WebhookEndpoint.objects.filter(tenant_id=tenant_id, enabled=True,
                                                   events__contains=[event_type])
        deliveries = WebhookDelivery.objects.bulk_create([
            WebhookDelivery(tenant_id=tenant_id, endpoint=endpoint, event_id=event_id, event_type=event_type,
                            payload=body, next_attempt_at=now, created_at=now)
            for endpoint in endpoints
        ])
    enqueue_after_commit(tenant_id, [d.id for d in deliveries])
    return [d.id for d in deliveries]


def send_test_event(*, tenant_id: UUID | str, endpoint_id: UUID | str, actor: Actor) -> WebhookDelivery:
    """A `webhook.test` event to one endpoint, to check the receiver and its signature check."""
    now = timezone.now()
    with tenant_context(tenant_id):
        endpoint = endpoint_of(tenant_id=tenant_id, endpoint_id=endpoint_id)
        if not endpoint.enabled:
            raise EndpointDisabled()
        body = event_body(event_type=TEST_EVENT, payload={"webhook_endpoint_id": endpoint.id}, now=now)
        delivery = WebhookDelivery.objects.create(
            tenant_id=tenant_id, endpoint=endpoint, event_id=new_event_id(), event_type=TEST_EVENT,
            payload=body, next_attempt_at=now, created_at=now)
        record_event(tenant_id=tenant_id, actor=actor, action="webhook_endpoint.test_sent",
                     target={**audit_target(endpoint), "delivery_id": str(delivery.id)})
    enqueue_after_commit(tenant_id, [delivery.id])
    return delivery


def redeliver(*, tenant_id: UUID | str, endpoint_id: UUID | str, delivery_id: UUID | str,
              actor: Actor) -> WebhookDelivery:
    """Send a delivery's event again, as a new delivery with a fresh attempt budget.

    The webhook-id stays the event's, so a receiver that already handled it can
    recognise the duplicate.
    """
    now = timezone.now()
    with tenant_context(tenant_id):
        try:
            endpoint = endpoint_of(tenant_id=tenant_id, endpoint_id=endpoint_id)
        except EndpointNotFound:
            raise DeliveryNotFound() from None
        original = WebhookDelivery.objects.filter(tenant_id=tenant_id, endpoint=endpoint, id=delivery_id).first()
        if original is None:
            raise DeliveryNotFound()
        if not endpoint.enabled:
            raise EndpointDisabled()
        again = WebhookDelivery.objects.create(
            tenant_id=tenant_id, endpoint=endpoint, event_id=original.event_id, event_type=original.event_type,
            payload=original.payload, next_attempt_at=now, created_at=now, redelivery_of=original)
        record_event(tenant_id=tenant_id, actor=actor, action="webhook_delivery.redelivery_requested",
                     target={**audit_target(endpoint), "delivery_id": str(original.id)},
                     details={"new_delivery_id": str(again.id), "event_id": original.event_id})
    enqueue_after_commit(tenant_id, [again.id])
    return again


# --- Messages ---------------------------------------------------------------------------

def enqueue(tenant_id: UUID | str, delivery_id: UUID | str, countdown: float | None = None) -> None:
    # The message carries ids only; the body is read from the database by the worker.
    app.send_task(DELIVER_TASK, args=[str(tenant_id), str(delivery_id)], countdown=countdown)


def enqueue_after_commit(tenant_id: UUID | str, delivery_ids: list[UUID],
                          countdown: float | None = None) -> None:
    for delivery_id in delivery_ids:
        # robust: a broker outage must not undo or fail the committed change;
        # the sweeper sends what was not sent.
        transaction.on_commit(lambda d=delivery_id: enqueue(tenant_id, d, countdown), robust=True)

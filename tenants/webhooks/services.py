"""Webhooks: endpoints, events, signed delivery with retries (Standard Webhooks).

- `emit_event(tenant_id=, event_type=, payload=)` is the one way to send an
  event. It writes one delivery row per subscribed, enabled endpoint inside the
  caller's transaction (an event exists exactly when the change that caused it
  committed) and hands the ids to Celery after the commit.
- A delivery is signed per the Standard Webhooks specification (webhook-id,
  webhook-timestamp, webhook-signature = v1,base64(HMAC-SHA256(secret,
  "id.timestamp.body"))) with the `standardwebhooks` package, and POSTed
  through the same SSRF guard as image URLs, with short timeouts and without
  following redirects.
- Failures retry with exponential backoff and jitter for more than a day
  (`retry_delays()`); every attempt is logged (status, latency, error). An
  endpoint that keeps failing for long enough is disabled automatically.
- Signing secrets are stored only AES-GCM-encrypted under a key derived from
  the settings (WEBHOOK_SECRETS_KEY, else SECRET_KEY), bound to the tenant and
  endpoint. Not under the tenant's data key: key rotation retires old data
  keys once no face uses them, which would silently orphan these secrets.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import random
import secrets
import ssl
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from standardwebhooks import Webhook

from audit.services import Actor, record_event
from embeddings.engine.errors import ImageError
from faceservice.outbound.http import Timeouts, check_url, safe_request
from faceservice.tenancy import platform_scope, tenant_context
from tenants.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint

logger = logging.getLogger(__name__)

JOB_SUCCEEDED = "job.succeeded"
JOB_FAILED = "job.failed"  # any asset failed (the job is failed or partially_failed)
JOB_CANCELLED = "job.cancelled"
FACES_DELETED = "faces.deleted"
TEST_EVENT = "webhook.test"  # sent on request to one endpoint, whatever it subscribed to
EVENT_TYPES = (JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED, FACES_DELETED)

DELIVER_TASK = "tenants.deliver_webhook"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret
SECRET_BYTES = 32
_SECRET_BLOB_VERSION = b"\x01"
_NONCE_BYTES = 12
USER_AGENT = "faceservice-webhooks/1"
ERROR_CODES = {  # the SSRF-safe client's codes, in the words of a webhook log
    "fetch_refused": "url_refused", "fetch_failed": "connection_failed",
    "fetch_timeout": "timeout", "image_too_large": "response_too_large",
}


class EndpointNotFound(Exception):
    """No such endpoint of this tenant (a foreign id reads the same)."""


class DeliveryNotFound(Exception):
    """No such delivery of this endpoint and tenant."""


class EndpointDisabled(Exception):
    """The endpoint is disabled: enable it before asking for a redelivery."""


class InvalidEndpoint(ValueError):
    """The URL or the event list may not be used."""


# --- Secrets ------------------------------------------------------------------------

def _secrets_key() -> bytes:
    configured = getattr(settings, "WEBHOOK_SECRETS_KEY", "")
    material = base64.b64decode(configured) if configured else settings.SECRET_KEY.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"faceservice/webhook-secrets/v1",
                info=b"webhook signing secrets").derive(material)


def _secret_aad(tenant_id: UUID | str, endpoint_id: UUID | str) -> bytes:
    return f"webhook-secret|{tenant_id}|{endpoint_id}".encode()


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def seal_secret(secret: str, *, tenant_id: UUID | str, endpoint_id: UUID | str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_secrets_key()).encrypt(nonce, secret.encode(), _secret_aad(tenant_id, endpoint_id))
    return _SECRET_BLOB_VERSION + nonce + sealed


def open_secret(blob: bytes, *, tenant_id: UUID | str, endpoint_id: UUID | str) -> str:
    blob = bytes(blob)
    if blob[:1] != _SECRET_BLOB_VERSION:
        raise ValueError("unknown webhook secret format")
    nonce, sealed = blob[1:1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES:]
    return AESGCM(_secrets_key()).decrypt(nonce, sealed, _secret_aad(tenant_id, endpoint_id)).decode()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while its rotation grace lasts."""
    found = [open_secret(endpoint.secret_ciphertext, tenant_id=endpoint.tenant_id, endpoint_id=endpoint.id)]
    if (endpoint.previous_secret_ciphertext and endpoint.previous_secret_expires_at
            and endpoint.previous_secret_expires_at > now):
        found.append(open_secret(endpoint.previous_secret_ciphertext, tenant_id=endpoint.tenant_id,
                                 endpoint_id=endpoint.id))
    return found


# --- Signing --------------------------------------------------------------------------

def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON with sorted keys."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signed_headers(*, event_id: str, body: bytes, secrets_: list[str], now: datetime) -> dict[str, str]:
    """Standard Webhooks headers; several `v1,` signatures while a rotation is in grace."""
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(event_id, now, text) for secret in secrets_)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


# --- Retry policy ----------------------------------------------------------------------

def retry_delay(failed_attempts: int, *, jitter: bool = True) -> float:
    """Seconds to wait after the n-th failed attempt: exponential, capped, ±20 % jitter."""
    base = settings.WEBHOOK_RETRY_BASE_SECONDS * settings.WEBHOOK_RETRY_FACTOR ** (failed_attempts - 1)
    delay = min(float(base), float(settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS))
    return delay * random.uniform(0.8, 1.2) if jitter else delay


def retry_delays() -> list[float]:
    """The nominal schedule (no jitter): one delay after each failed attempt but the last."""
    return [retry_delay(n, jitter=False) for n in range(1, settings.WEBHOOK_MAX_ATTEMPTS)]


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


def _endpoint(tenant_id: UUID | str, endpoint_id: UUID | str, *, lock: bool = False) -> WebhookEndpoint:
    rows = WebhookEndpoint.objects.filter(tenant_id=tenant_id, id=endpoint_id)
    endpoint = (rows.select_for_update() if lock else rows).first()
    if endpoint is None:
        raise EndpointNotFound()
    return endpoint


def _audit_target(endpoint: WebhookEndpoint) -> dict[str, str]:
    return {"webhook_endpoint_id": str(endpoint.id)}


def _host(url: str) -> str:
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
                     target=_audit_target(endpoint),
                     details={"host": _host(url), "events": events, "enabled": enabled})
    return IssuedSecret(endpoint=endpoint, secret=secret)


def update_endpoint(*, tenant_id: UUID | str, endpoint_id: UUID | str, actor: Actor,
                    url: str | None = None, events: list[str] | None = None,
                    description: str | None = None, enabled: bool | None = None) -> WebhookEndpoint:
    """Change what is given. Enabling again clears the failure record."""
    with tenant_context(tenant_id):
        endpoint = _endpoint(tenant_id, endpoint_id, lock=True)
        changes: dict[str, Any] = {}
        if url is not None and url != endpoint.url:
            endpoint.url, changes["host"] = validate_url(url), _host(url)
        if events is not None:
            endpoint.events = changes["events"] = validate_events(events)
        if description is not None:
            endpoint.description, changes["description"] = description, True
        if enabled is not None and enabled != endpoint.enabled:
            _set_enabled(endpoint, enabled, reason="manual")
            changes["enabled"] = enabled
        endpoint.save()
        record_event(tenant_id=tenant_id, actor=actor, action="webhook_endpoint.updated",
                     target=_audit_target(endpoint), details=changes)
    return endpoint


def _set_enabled(endpoint: WebhookEndpoint, enabled: bool, *, reason: str) -> None:
    endpoint.enabled = enabled
    if enabled:
        endpoint.disabled_reason, endpoint.disabled_at = "", None
        endpoint.consecutive_failures, endpoint.failing_since = 0, None
    else:
        endpoint.disabled_reason, endpoint.disabled_at = reason, timezone.now()


def delete_endpoint(*, tenant_id: UUID | str, endpoint_id: UUID | str, actor: Actor) -> None:
    """Delete the endpoint with its delivery log; deliveries under way are dropped."""
    with tenant_context(tenant_id):
        endpoint = _endpoint(tenant_id, endpoint_id, lock=True)
        record_event(tenant_id=tenant_id, actor=actor, action="webhook_endpoint.deleted",
                     target=_audit_target(endpoint), details={"host": _host(endpoint.url)})
        endpoint.delete()


def rotate_secret(*, tenant_id: UUID | str, endpoint_id: UUID | str, actor: Actor) -> IssuedSecret:
    """A new secret; the old one keeps signing for WEBHOOK_SECRET_ROTATION_GRACE_SECONDS."""
    secret = new_secret()
    now = timezone.now()
    with tenant_context(tenant_id):
        endpoint = _endpoint(tenant_id, endpoint_id, lock=True)
        grace = settings.WEBHOOK_SECRET_ROTATION_GRACE_SECONDS
        endpoint.previous_secret_ciphertext = endpoint.secret_ciphertext if grace > 0 else None
        endpoint.previous_secret_expires_at = now + timedelta(seconds=grace) if grace > 0 else None
        endpoint.secret_ciphertext = seal_secret(secret, tenant_id=tenant_id, endpoint_id=endpoint.id)
        endpoint.secret_rotated_at = now
        endpoint.save()
        record_event(tenant_id=tenant_id, actor=actor, action="webhook_endpoint.secret_rotated",
                     target=_audit_target(endpoint),
                     details={"previous_valid_until": endpoint.previous_secret_expires_at})
    return IssuedSecret(endpoint=endpoint, secret=secret)


# --- Events ---------------------------------------------------------------------------

def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def _json_value(value: Any) -> Any:
    # Ids, counts, timestamps: yes. Bytes, arrays (images, embeddings): refused.
    if isinstance(value, (UUID, datetime)):
        return value.isoformat() if isinstance(value, datetime) else str(value)
    raise TypeError(f"a webhook payload may not hold {type(value).__name__} values")


def event_body(*, event_type: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    data = json.loads(json.dumps(payload, default=_json_value, allow_nan=False))
    return {"type": event_type, "timestamp": now.isoformat(), "data": data}


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
    _enqueue_after_commit(tenant_id, [d.id for d in deliveries])
    return [d.id for d in deliveries]


def send_test_event(*, tenant_id: UUID | str, endpoint_id: UUID | str, actor: Actor) -> WebhookDelivery:
    """A `webhook.test` event to one endpoint, to check the receiver and its signature check."""
    now = timezone.now()
    with tenant_context(tenant_id):
        endpoint = _endpoint(tenant_id, endpoint_id)
        if not endpoint.enabled:
            raise EndpointDisabled()
        body = event_body(event_type=TEST_EVENT, payload={"webhook_endpoint_id": endpoint.id}, now=now)
        delivery = WebhookDelivery.objects.create(
            tenant_id=tenant_id, endpoint=endpoint, event_id=new_event_id(), event_type=TEST_EVENT,
            payload=body, next_attempt_at=now, created_at=now)
        record_event(tenant_id=tenant_id, actor=actor, action="webhook_endpoint.test_sent",
                     target={**_audit_target(endpoint), "delivery_id": str(delivery.id)})
    _enqueue_after_commit(tenant_id, [delivery.id])
    return delivery


def redeliver(*, tenant_id: UUID | str, endpoint_id: UUID | str, delivery_id: UUID | str,
              actor: Actor) -> WebhookDelivery:
    """Send a delivery's event again, as a new delivery with a fresh attempt budget.

    The webhook-id stays the event's, so a receiver that already handled it can
    recognise the duplicate.
    """
    now = timezone.now()
    with tenant_context(tenant_id):
        endpoint = _endpoint(tenant_id, endpoint_id)
        original = WebhookDelivery.objects.filter(tenant_id=tenant_id, endpoint=endpoint, id=delivery_id).first()
        if original is None:
            raise DeliveryNotFound()
        if not endpoint.enabled:
            raise EndpointDisabled()
        again = WebhookDelivery.objects.create(
            tenant_id=tenant_id, endpoint=endpoint, event_id=original.event_id, event_type=original.event_type,
            payload=original.payload, next_attempt_at=now, created_at=now, redelivery_of=original)
        record_event(tenant_id=tenant_id, actor=actor, action="webhook_delivery.redelivery_requested",
                     target={**_audit_target(endpoint), "delivery_id": str(original.id)},
                     details={"new_delivery_id": str(again.id), "event_id": original.event_id})
    _enqueue_after_commit(tenant_id, [again.id])
    return again


# --- Delivery ---------------------------------------------------------------------------

def _enqueue(tenant_id: UUID | str, delivery_id: UUID | str, countdown: float | None = None) -> None:
    # The message carries ids only; the body is read from the database by the worker.
    from faceservice.celery import app

    app.send_task(DELIVER_TASK, args=[str(tenant_id), str(delivery_id)], countdown=countdown)


def _enqueue_after_commit(tenant_id: UUID | str, delivery_ids: list[UUID],
                          countdown: float | None = None) -> None:
    for delivery_id in delivery_ids:
        # robust: a broker outage must not undo or fail the committed change;
        # the sweeper sends what was not sent.
        transaction.on_commit(lambda d=delivery_id: _enqueue(tenant_id, d, countdown), robust=True)


@dataclass(frozen=True)
class AttemptPlan:
    delivery_id: UUID
    number: int
    url: str
    event_id: str
    body: bytes = field(repr=False)
    secrets: list[str] = field(repr=False)


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: int
    error: str = ""
    error_message: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and not self.error


def deliver(*, tenant_id: UUID | str, delivery_id: UUID | str) -> str:
    """One attempt at a delivery, if it is due and nobody else holds it. Idempotent."""
    plan = _start_attempt(tenant_id, delivery_id)
    if plan is None:
        return "skipped"
    result = send(plan)
    return _finish_attempt(tenant_id, plan, result)


def _start_attempt(tenant_id: UUID | str, delivery_id: UUID | str) -> AttemptPlan | None:
    now = timezone.now()
    slack = timedelta(seconds=2)  # clocks of web, workers and database differ a little
    with tenant_context(tenant_id):
        delivery = (WebhookDelivery.objects.select_for_update(skip_locked=True).select_related("endpoint")
                    .filter(tenant_id=tenant_id, id=delivery_id).first())
        if delivery is None:
            return None
        claimable = (
            (delivery.state == WebhookDelivery.State.PENDING
             and (delivery.next_attempt_at is None or delivery.next_attempt_at <= now + slack))
            or (delivery.state == WebhookDelivery.State.DELIVERING
                and delivery.lease_expires_at is not None and delivery.lease_expires_at < now)
        )
        if not claimable:
            return None
        endpoint = delivery.endpoint
        if not endpoint.enabled:
            _give_up(delivery, now, error="endpoint_disabled")
            return None
        if delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:  # its attempts died with their workers
            _give_up(delivery, now, error=delivery.last_error or "worker_lost")
            return None
        delivery.state, delivery.attempts = WebhookDelivery.State.DELIVERING, delivery.attempts + 1
        delivery.lease_expires_at = now + timedelta(seconds=settings.WEBHOOK_ATTEMPT_LEASE_SECONDS)
        delivery.save(update_fields=["state", "attempts", "lease_expires_at"])
        return AttemptPlan(delivery_id=delivery.id, number=delivery.attempts, url=endpoint.url,
                           event_id=delivery.event_id, body=body_bytes(delivery.payload),
                           secrets=signing_secrets(endpoint, now))


@functools.cache
def tls_context() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of ms: once per process, not per attempt.
    return httpx.create_ssl_context()


def send(plan: AttemptPlan) -> AttemptResult:
    """POST the signed body through the SSRF guard. Never raises for network trouble."""
    headers = signed_headers(event_id=plan.event_id, body=plan.body, secrets_=plan.secrets, now=timezone.now())
    timeout = Timeouts(connect=settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS,
                       read=settings.WEBHOOK_READ_TIMEOUT_SECONDS,
                       total=settings.WEBHOOK_TOTAL_TIMEOUT_SECONDS)
    started = time.perf_counter()
    try:
        response = safe_request("POST", plan.url, body=plan.body, headers=headers, timeout=timeout,
                                max_bytes=settings.WEBHOOK_MAX_RESPONSE_BYTES,
                                allowed_networks=settings.FETCH_ALLOWED_NETWORKS, follow_redirects=False,
                                ssl_context=tls_context())
    except ImageError as exc:
        return AttemptResult(None, _ms(started), ERROR_CODES.get(exc.code, exc.code), exc.message[:300])
    except Exception:  # our bug, not the endpoint's: log it, count it as a failed attempt
        logger.exception("webhook attempt failed unexpectedly", extra={"delivery_id": str(plan.delivery_id)})
        return AttemptResult(None, _ms(started), "internal_error", "the attempt failed on our side")
    latency = _ms(started)
    if 300 <= response.status_code < 400:
        return AttemptResult(response.status_code, latency, "redirect_not_followed",
                             "the endpoint answered with a redirect; redirects are not followed")
    if not response.is_success:
        return AttemptResult(response.status_code, latency, "http_error",
                             f"the endpoint answered HTTP {response.status_code}")
    return AttemptResult(response.status_code, latency)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _finish_attempt(tenant_id: UUID | str, plan: AttemptPlan, result: AttemptResult) -> str:
    now = timezone.now()
    retry_in: float | None = None
    with tenant_context(tenant_id):
        WebhookDeliveryAttempt.objects.create(
            tenant_id=tenant_id, delivery_id=plan.delivery_id, number=plan.number, attempted_at=now,
            status_code=result.status_code, latency_ms=result.latency_ms, succeeded=result.succeeded,
            error=result.error, error_message=result.error_message)
        delivery = (WebhookDelivery.objects.select_for_update().select_related("endpoint")
                    .filter(tenant_id=tenant_id, id=plan.delivery_id).first())
        if delivery is None or delivery.state != WebhookDelivery.State.DELIVERING \
                or delivery.attempts != plan.number:
            return "stale"  # our lease was taken over; the newer attempt decides
        delivery.last_status_code, delivery.last_error = result.status_code, result.error
        if result.succeeded:
            _succeed(delivery, now)
            outcome = "succeeded"
        else:
            retry_in = _fail_attempt(delivery, now)
            outcome = "retrying" if retry_in is not None else "failed"
    if retry_in is not None and retry_in <= settings.WEBHOOK_COUNTDOWN_MAX_SECONDS:
        _enqueue(tenant_id, plan.delivery_id, countdown=retry_in)  # longer waits: the sweeper
    logger.info("webhook attempt", extra={"delivery_id": str(plan.delivery_id), "attempt": plan.number,
                                          "status": result.status_code, "error": result.error,
                                          "latency_ms": result.latency_ms, "outcome": outcome})
    return outcome


def _succeed(delivery: WebhookDelivery, now: datetime) -> None:
    delivery.state, delivery.finished_at, delivery.lease_expires_at = WebhookDelivery.State.SUCCEEDED, now, None
    delivery.save(update_fields=["state", "finished_at", "lease_expires_at", "last_status_code", "last_error"])
    WebhookEndpoint.objects.filter(id=delivery.endpoint_id).update(
        consecutive_failures=0, failing_since=None, last_success_at=now)


def _fail_attempt(delivery: WebhookDelivery, now: datetime) -> float | None:
    """Count the failure; schedule the next attempt (its delay) or give up (None)."""
    WebhookEndpoint.objects.filter(id=delivery.endpoint_id).update(
        consecutive_failures=F("consecutive_failures") + 1, failing_since=Coalesce("failing_since", now))
    endpoint = WebhookEndpoint.objects.select_for_update().get(id=delivery.endpoint_id)
    if _should_disable(endpoint, now):
        _auto_disable(endpoint, now)
        _give_up(delivery, now, error=delivery.last_error or "endpoint_disabled")
        return None
    if delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        _give_up(delivery, now, error=delivery.last_error)
        return None
    delay = retry_delay(delivery.attempts)
    delivery.state, delivery.lease_expires_at = WebhookDelivery.State.PENDING, None
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    delivery.save(update_fields=["state", "next_attempt_at", "lease_expires_at", "last_status_code",
                                 "last_error"])
    return delay


def _give_up(delivery: WebhookDelivery, now: datetime, *, error: str) -> None:
    delivery.state, delivery.finished_at, delivery.lease_expires_at = WebhookDelivery.State.FAILED, now, None
    delivery.last_error = error
    delivery.save(update_fields=["state", "finished_at", "lease_expires_at", "last_status_code", "last_error"])


def _should_disable(endpoint: WebhookEndpoint, now: datetime) -> bool:
    """Persistent failure: many failed attempts in a row AND no success for a long time."""
    return (endpoint.enabled
            and endpoint.consecutive_failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES
            and endpoint.failing_since is not None
            and endpoint.failing_since <= now - timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_SECONDS))


def _auto_disable(endpoint: WebhookEndpoint, now: datetime) -> None:
    _set_enabled(endpoint, False, reason=WebhookEndpoint.DisabledReason.FAILING)
    endpoint.save(update_fields=["enabled", "disabled_reason", "disabled_at", "updated_at"])
    dropped = (WebhookDelivery.objects.filter(endpoint=endpoint, state=WebhookDelivery.State.PENDING)
               .update(state=WebhookDelivery.State.FAILED, finished_at=now, last_error="endpoint_disabled"))
    record_event(tenant_id=endpoint.tenant_id, actor=Actor.system("webhooks"),
                 action="webhook_endpoint.auto_disabled", target=_audit_target(endpoint), outcome="failure",
                 details={"consecutive_failures": endpoint.consecutive_failures,
                          "failing_since": endpoint.failing_since, "pending_deliveries_dropped": dropped})
    logger.warning("webhook endpoint disabled after persistent failure",
                   extra={"webhook_endpoint_id": str(endpoint.id), "tenant_id": str(endpoint.tenant_id)})


# --- Sweeper -----------------------------------------------------------------------------

def sweep_deliveries(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Send due deliveries that no message is carrying; take back attempts whose worker died.

    Runs from beat. A pending delivery is sent again at most every
    WEBHOOK_REQUEUE_AFTER_SECONDS (lease_expires_at guards it meanwhile); a
    duplicate message is harmless, as the worker claims the row first.
    """
    now = now or timezone.now()
    with platform_scope():
        WebhookDelivery.objects.filter(state=WebhookDelivery.State.DELIVERING, lease_expires_at__lt=now).update(
            state=WebhookDelivery.State.PENDING, next_attempt_at=now, lease_expires_at=None,
            last_error="worker_lost")
        due = list(WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now)
                   .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
                   .order_by("next_attempt_at").values_list("id", "tenant_id")[:limit])
        WebhookDelivery.objects.filter(id__in=[d for d, _ in due]).update(
            lease_expires_at=now + timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS))
    for delivery_id, tenant_id in due:
        transaction.on_commit(lambda d=delivery_id, t=tenant_id: _enqueue(t, d), robust=True)
    return len(due)


# --- Reads (selectors) ------------------------------------------------------------------

def endpoints_of(*, tenant_id: UUID | str):
    return WebhookEndpoint.objects.filter(tenant_id=tenant_id)


def endpoint_of(*, tenant_id: UUID | str, endpoint_id: UUID | str) -> WebhookEndpoint:
    """The tenant's endpoint; EndpointNotFound for a missing and a foreign id alike."""
    return _endpoint(tenant_id, endpoint_id)


def deliveries_of(*, tenant_id: UUID | str, endpoint_id: UUID | str, state: str | None = None,
                  event_type: str | None = None):
    endpoint = _endpoint(tenant_id, endpoint_id)
    deliveries = WebhookDelivery.objects.filter(tenant_id=tenant_id, endpoint=endpoint)
    if state:
        deliveries = deliveries.filter(state=state)
    if event_type:
        deliveries = deliveries.filter(event_type=event_type)
    return deliveries


def delivery_of(*, tenant_id: UUID | str, endpoint_id: UUID | str, delivery_id: UUID | str) -> WebhookDelivery:
    delivery = (deliveries_of(tenant_id=tenant_id, endpoint_id=endpoint_id).prefetch_related("attempt_log")
                .filter(id=delivery_id).first())
    if delivery is None:
        raise DeliveryNotFound()
    return delivery

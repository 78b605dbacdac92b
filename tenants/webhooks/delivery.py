"""Webhook delivery, the worker side: one attempt at a time, retries, the sweeper.

A delivery is durable work (faceservice/durable.py): an attempt claims the row
(state `delivering`, a lease of WEBHOOK_ATTEMPT_LEASE_SECONDS, `attempts` + 1
as the fencing token), POSTs the signed body through the same SSRF guard as
image URLs (short timeouts, no redirects followed), and records the outcome
only if it still holds the row. Failures retry with exponential backoff and
jitter for more than a day (`retry_delays()`); every attempt is logged
(status, latency, error). An endpoint that keeps failing for long enough is
disabled automatically.

Metrics (faceservice/metrics.py): attempts by outcome, errors by code, POST time,
endpoints disabled, and from the sweeper the deliveries due and the longest wait;
traces get a `webhook.post` span per attempt.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.services import Actor, record_event
from faceservice import durable, metrics, tracing
from faceservice.errors import ImageError
from faceservice.outbound.http import Timeouts, safe_request
from faceservice.tenancy import platform_scope, tenant_context
from tenants.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from tenants.webhooks import services as webhooks
from tenants.webhooks.signing import body_bytes, signed_headers, signing_secrets

logger = logging.getLogger(__name__)

ERROR_CODES = {  # the SSRF-safe client's codes, in the words of a webhook log
    "fetch_refused": "url_refused", "fetch_failed": "connection_failed",
    "fetch_timeout": "timeout", "image_too_large": "response_too_large",
}
DELIVERING, PENDING = WebhookDelivery.State.DELIVERING, WebhookDelivery.State.PENDING


# --- Retry policy ----------------------------------------------------------------------

def backoff() -> durable.Backoff:
    """The settings' schedule (read at each call: tests and operators change them), ±20 % jitter."""
    return durable.Backoff(base_seconds=settings.WEBHOOK_RETRY_BASE_SECONDS, factor=settings.WEBHOOK_RETRY_FACTOR,
                           max_seconds=settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS, jitter=(0.8, 1.2))


def retry_delay(failed_attempts: int, *, jitter: bool = True) -> float:
    """Seconds to wait after the n-th failed attempt: durable.retry_delay on this schedule."""
    return durable.retry_delay(failed_attempts, backoff(), jitter=jitter)


def retry_delays() -> list[float]:
    """The nominal schedule (no jitter): one delay after each failed attempt but the last."""
    return [retry_delay(n, jitter=False) for n in range(1, settings.WEBHOOK_MAX_ATTEMPTS)]


# --- Attempts ----------------------------------------------------------------------------

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
    """Claim the delivery (durable.claimable: due, or its attempt's worker died), or None."""
    times = durable.claim_times(settings.WEBHOOK_ATTEMPT_LEASE_SECONDS)
    now = times.now
    with tenant_context(tenant_id):
        delivery = (WebhookDelivery.objects.select_for_update(skip_locked=True).select_related("endpoint")
                    .filter(durable.claimable(waiting=PENDING, working=DELIVERING, times=times),
                            tenant_id=tenant_id, id=delivery_id).first())
        if delivery is None:
            return None
        endpoint = delivery.endpoint
        if not endpoint.enabled:
            _give_up(delivery, now, error="endpoint_disabled")
            return None
        if delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:  # its attempts died with their workers
            _give_up(delivery, now, error=delivery.last_error or "worker_lost")
            return None
        delivery.state, delivery.attempts = DELIVERING, delivery.attempts + 1
        delivery.lease_expires_at = times.lease_expires_at
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
        with tracing.span("webhook.post", attempt=plan.number) as span:
            response = safe_request("POST", plan.url, body=plan.body, headers=headers, timeout=timeout,
                                    max_bytes=settings.WEBHOOK_MAX_RESPONSE_BYTES,
                                    allowed_networks=settings.FETCH_ALLOWED_NETWORKS, follow_redirects=False,
                                    ssl_context=tls_context())
            if span is not None:
                span.set_attribute("http.response.status_code", response.status_code)
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
                    .filter(durable.held(working=DELIVERING, token=plan.number),
                            tenant_id=tenant_id, id=plan.delivery_id).first())
        if delivery is None:
            metrics.observe_webhook_attempt(outcome="stale", error=result.error, seconds=result.latency_ms / 1000)
            return "stale"  # our lease was taken over; the newer attempt decides
        delivery.last_status_code, delivery.last_error = result.status_code, result.error
        if result.succeeded:
            _succeed(delivery, now)
            outcome = "succeeded"
        else:
            retry_in = _fail_attempt(delivery, now)
            outcome = "retrying" if retry_in is not None else "failed"
    if retry_in is not None and retry_in <= settings.WEBHOOK_COUNTDOWN_MAX_SECONDS:
        webhooks.enqueue(tenant_id, plan.delivery_id, countdown=retry_in)  # longer waits: the sweeper
    metrics.observe_webhook_attempt(outcome=outcome, error=result.error, seconds=result.latency_ms / 1000)
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
    metrics.WEBHOOK_DISABLED.inc()
    webhooks.set_enabled(endpoint, False, reason=WebhookEndpoint.DisabledReason.FAILING)
    endpoint.save(update_fields=["enabled", "disabled_reason", "disabled_at", "updated_at"])
    dropped = (WebhookDelivery.objects.filter(endpoint=endpoint, state=WebhookDelivery.State.PENDING)
               .update(state=WebhookDelivery.State.FAILED, finished_at=now, last_error="endpoint_disabled"))
    record_event(tenant_id=endpoint.tenant_id, actor=Actor.system("webhooks"),
                 action="webhook_endpoint.auto_disabled", target=webhooks.audit_target(endpoint), outcome="failure",
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
        WebhookDelivery.objects.filter(durable.lease_expired(working=DELIVERING, now=now)).update(
            state=PENDING, next_attempt_at=now, lease_expires_at=None, last_error="worker_lost")
        due = list(WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now)
                   .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
                   .order_by("next_attempt_at").values_list("id", "tenant_id")[:limit])
        WebhookDelivery.objects.filter(id__in=[d for d, _ in due]).update(
            lease_expires_at=now + timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS))
        _measure_backlog(now)
    for delivery_id, tenant_id in due:
        transaction.on_commit(lambda d=delivery_id, t=tenant_id: webhooks.enqueue(t, d), robust=True)
    return len(due)


def _measure_backlog(now: datetime) -> None:
    """Deliveries due (pending, their time come) and how long the oldest has waited: the backlog gauges."""
    backlog = WebhookDelivery.objects.filter(state=PENDING, next_attempt_at__lte=now).aggregate(
        due=Count("id"), oldest=Min("next_attempt_at"))
    oldest = backlog["oldest"]
    metrics.set_webhook_backlog(due=backlog["due"],
                                oldest_due_seconds=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)

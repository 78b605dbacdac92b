"""Webhooks: endpoints, encrypted secrets, Standard Webhooks signatures, retries, auto-disable, redelivery, SSRF."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from audit.models import AuditEvent
from audit.services import Actor
from tenants.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from tenants.webhooks import delivery as webhook_delivery
from tenants.webhooks import services as webhooks
from tenants.webhooks import signing
from tests.conftest import count, find, update

ACTOR = Actor.system("tests")


def make_endpoint(tenant, url, events=("job.succeeded",), **kwargs) -> webhooks.IssuedSecret:
    return webhooks.create_endpoint(tenant_id=tenant.id, url=url, events=list(events), actor=ACTOR, **kwargs)


def verifier(secret: str):
    def check(request):
        try:
            return Webhook(secret).verify(request.body, request.headers)
        except WebhookVerificationError as exc:
            return exc

    return check


def emit(tenant, event="job.succeeded", **data):
    return webhooks.emit_event(tenant_id=tenant.id, event_type=event, payload={"job_id": "j-1", **data})


def deliver(tenant, delivery_id) -> str:
    return webhook_delivery.deliver(tenant_id=tenant.id, delivery_id=delivery_id)


def delivery(delivery_id) -> WebhookDelivery:
    return find(WebhookDelivery, order_by="id", id=delivery_id)[0]


def attempts(delivery_id) -> list[WebhookDeliveryAttempt]:
    return find(WebhookDeliveryAttempt, order_by="number", delivery_id=delivery_id)


def endpoint(endpoint_id) -> WebhookEndpoint:
    return find(WebhookEndpoint, order_by="id", id=endpoint_id)[0]


# --- Signing ------------------------------------------------------------------------------

def test_a_delivery_is_signed_per_standard_webhooks(tenant, receiver, enqueued):
    issued = make_endpoint(tenant, receiver.serve("/hook", (200, b"ok")))
    receiver.on_request = verifier(issued.secret)
    (delivery_id,) = emit(tenant, faces_indexed=3)
    assert enqueued == [(str(tenant.id), str(delivery_id), None)]  # the message carries ids only
    assert deliver(tenant, delivery_id) == "succeeded"

    (request,) = receiver.received
    assert request.verified["type"] == "job.succeeded" and request.verified["data"]["faces_indexed"] == 3
    assert request.headers["webhook-id"].startswith("evt_") and request.headers["content-type"] == "application/json"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert delivery(delivery_id).state == "succeeded"
    (attempt,) = attempts(delivery_id)
    assert attempt.status_code == 200 and attempt.succeeded and attempt.latency_ms >= 0 and attempt.error == ""


def test_a_wrong_secret_or_a_changed_body_fails_verification(tenant, receiver, enqueued):
    issued = make_endpoint(tenant, receiver.serve("/hook", (200, b"ok")))
    (delivery_id,) = emit(tenant)
    deliver(tenant, delivery_id)
    (request,) = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(issued.secret).verify(request.body.replace(b"j-1", b"j-2"), request.headers)


def test_secrets_are_stored_encrypted_and_bound_to_their_endpoint(tenant, receiver, enqueued):
    issued = make_endpoint(tenant, receiver.url("/hook"))
    stored = bytes(endpoint(issued.endpoint.id).secret_ciphertext)
    assert issued.secret.encode() not in stored and issued.secret[6:].encode() not in stored
    assert signing.open_secret(stored, tenant_id=tenant.id, endpoint_id=issued.endpoint.id) == issued.secret
    with pytest.raises(Exception):  # noqa: B017 - AES-GCM's InvalidTag: another endpoint's id
        signing.open_secret(stored, tenant_id=tenant.id, endpoint_id=tenant.id)


def test_rotation_signs_with_both_secrets_during_the_grace_period(tenant, receiver, enqueued):
    old = make_endpoint(tenant, receiver.serve("/hook", (200, b"ok")))
    new = webhooks.rotate_secret(tenant_id=tenant.id, endpoint_id=old.endpoint.id, actor=ACTOR)
    assert new.secret != old.secret
    (delivery_id,) = emit(tenant)
    deliver(tenant, delivery_id)
    request = receiver.received[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old.secret, new.secret):  # receivers on either secret accept it
        Webhook(secret).verify(request.body, request.headers)
    update(WebhookEndpoint, {"id": old.endpoint.id}, previous_secret_expires_at=timezone.now())
    (delivery_id,) = emit(tenant)
    deliver(tenant, delivery_id)
    request = receiver.received[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    Webhook(new.secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old.secret).verify(request.body, request.headers)
    assert count(AuditEvent, tenant_id=tenant.id, action="webhook_endpoint.secret_rotated") == 1


# --- Events -----------------------------------------------------------------------------

def test_events_go_only_to_enabled_subscribed_endpoints_of_the_tenant(tenant, other_tenant, receiver, enqueued):
    wanted = make_endpoint(tenant, receiver.url("/a"), events=("job.succeeded", "job.failed"))
    make_endpoint(tenant, receiver.url("/b"), events=("faces.deleted",))
    make_endpoint(tenant, receiver.url("/c"), events=("job.succeeded",), enabled=False)
    make_endpoint(other_tenant, receiver.url("/d"), events=("job.succeeded",))
    (delivery_id,) = emit(tenant)
    assert delivery(delivery_id).endpoint_id == wanted.endpoint.id


def test_payloads_hold_ids_and_counts_never_bytes(tenant, receiver, enqueued):
    make_endpoint(tenant, receiver.url("/a"), events=("faces.deleted",))
    with pytest.raises(TypeError):
        webhooks.emit_event(tenant_id=tenant.id, event_type="faces.deleted", payload={"image": b"\xff\xd8"})
    with pytest.raises(ValueError):
        webhooks.emit_event(tenant_id=tenant.id, event_type="faces.exploded", payload={})
    (delivery_id,) = webhooks.emit_event(tenant_id=tenant.id, event_type="faces.deleted",
                                         payload={"receipt_id": tenant.id, "faces_deleted": 2,
                                                  "deleted_at": timezone.now()})
    data = delivery(delivery_id).payload["data"]
    assert data["receipt_id"] == str(tenant.id) and data["faces_deleted"] == 2


# --- Retries, backoff, auto-disable --------------------------------------------------------

@pytest.mark.pure
def test_the_backoff_schedule_grows_exponentially_and_spans_more_than_a_day(settings):
    delays = webhook_delivery.retry_delays()
    assert len(delays) == settings.WEBHOOK_MAX_ATTEMPTS - 1
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert delays[1] / delays[0] == settings.WEBHOOK_RETRY_FACTOR  # exponential before the cap
    assert sum(delays) >= 24 * 3600
    assert max(delays) <= settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS
    for _ in range(50):  # jitter: within ±20 %
        assert 0.8 * delays[2] <= webhook_delivery.retry_delay(3) <= 1.2 * delays[2]


def test_a_failed_attempt_is_logged_and_retried_later(tenant, receiver, enqueued):
    issued = make_endpoint(tenant, receiver.serve("/hook", (500, b"oops"), (200, b"ok")))
    (delivery_id,) = emit(tenant)
    enqueued.clear()
    assert deliver(tenant, delivery_id) == "retrying"
    row = delivery(delivery_id)
    wait = (row.next_attempt_at - timezone.now()).total_seconds()
    assert row.state == "pending" and 3 < wait <= 6 and row.last_status_code == 500
    assert enqueued and enqueued[0][2] == pytest.approx(wait, abs=1)  # short waits: a countdown message
    assert deliver(tenant, delivery_id) == "skipped"  # not due yet
    assert endpoint(issued.endpoint.id).consecutive_failures == 1
    update(WebhookDelivery, {"id": delivery_id}, next_attempt_at=timezone.now())
    assert deliver(tenant, delivery_id) == "succeeded"
    log = attempts(delivery_id)
    assert [(a.number, a.status_code, a.error) for a in log] == [(1, 500, "http_error"), (2, 200, "")]
    hook = endpoint(issued.endpoint.id)
    assert hook.consecutive_failures == 0 and hook.failing_since is None and hook.last_success_at


def test_a_delivery_gives_up_after_its_last_attempt(tenant, receiver, enqueued, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    make_endpoint(tenant, receiver.serve("/hook", (503, b"")))
    (delivery_id,) = emit(tenant)
    deliver(tenant, delivery_id)
    update(WebhookDelivery, {"id": delivery_id}, next_attempt_at=timezone.now())
    assert deliver(tenant, delivery_id) == "failed"
    row = delivery(delivery_id)
    assert row.state == "failed" and row.finished_at and row.attempts == 2


def test_an_endpoint_failing_for_long_is_disabled(tenant, receiver, enqueued, settings):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 3600
    issued = make_endpoint(tenant, receiver.serve("/hook", (500, b"")))
    first, second, third = (emit(tenant)[0] for _ in range(3))
    deliver(tenant, first)
    deliver(tenant, second)
    # Many failures, but not yet for long: still enabled.
    assert endpoint(issued.endpoint.id).enabled
    update(WebhookEndpoint, {"id": issued.endpoint.id}, failing_since=timezone.now() - timedelta(hours=2))
    assert deliver(tenant, third) == "failed"
    hook = endpoint(issued.endpoint.id)
    assert not hook.enabled and hook.disabled_reason == "failing"
    assert {delivery(d).state for d in (first, second, third)} == {"failed"}  # pending ones dropped
    assert count(AuditEvent, tenant_id=tenant.id, action="webhook_endpoint.auto_disabled") == 1
    assert emit(tenant) == []  # a disabled endpoint gets no new deliveries
    webhooks.update_endpoint(tenant_id=tenant.id, endpoint_id=issued.endpoint.id, actor=ACTOR, enabled=True)
    hook = endpoint(issued.endpoint.id)
    assert hook.enabled and hook.consecutive_failures == 0 and hook.failing_since is None


def test_redirects_are_not_followed(tenant, receiver, enqueued):
    make_endpoint(tenant, receiver.serve("/hook", (302, b"")))
    (delivery_id,) = emit(tenant)
    deliver(tenant, delivery_id)
    (attempt,) = attempts(delivery_id)
    assert attempt.status_code == 302 and attempt.error == "redirect_not_followed" and not attempt.succeeded
    assert [r.path for r in receiver.received] == ["/hook"]


def test_a_private_address_is_refused_at_registration_and_at_delivery(tenant, receiver, enqueued, settings):
    issued = make_endpoint(tenant, receiver.serve("/hook", (200, b"ok")))
    settings.FETCH_ALLOWED_NETWORKS = []
    with pytest.raises(webhooks.InvalidEndpoint):
        make_endpoint(tenant, receiver.url("/other"))
    for url in ("http://169.254.169.254/latest/meta-data", "http://10.0.0.7/hook", "ftp://example.com/x"):
        with pytest.raises(webhooks.InvalidEndpoint):
            make_endpoint(tenant, url)
    (delivery_id,) = emit(tenant)
    deliver(tenant, delivery_id)  # the address was allowed when registered, not any more
    (attempt,) = attempts(delivery_id)
    assert attempt.error == "url_refused" and attempt.status_code is None
    assert receiver.received == []
    assert issued.endpoint.id


def test_a_slow_receiver_times_out(tenant, receiver, enqueued, settings):
    settings.WEBHOOK_READ_TIMEOUT_SECONDS = 0.3
    receiver.delay_seconds = 1.5
    make_endpoint(tenant, receiver.serve("/hook", (200, b"ok")))
    (delivery_id,) = emit(tenant)
    deliver(tenant, delivery_id)
    (attempt,) = attempts(delivery_id)
    assert attempt.error == "timeout" and attempt.latency_ms < 1400


def test_https_is_required_where_http_is_not_allowed(tenant, settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    with pytest.raises(webhooks.InvalidEndpoint, match="https"):
        make_endpoint(tenant, "http://hooks.example.com/x")


def test_the_sweeper_resends_due_deliveries_and_takes_back_dead_attempts(tenant, receiver, enqueued):
    make_endpoint(tenant, receiver.url("/hook"))
    (lost,) = emit(tenant)
    (stuck,) = emit(tenant)
    update(WebhookDelivery, {"id": stuck}, state="delivering", attempts=1,
           lease_expires_at=timezone.now() - timedelta(seconds=1))
    enqueued.clear()
    assert webhook_delivery.sweep_deliveries() == 2
    assert sorted(d for _, d, _ in enqueued) == sorted([str(lost), str(stuck)])
    assert delivery(stuck).state == "pending"
    enqueued.clear()
    assert webhook_delivery.sweep_deliveries() == 0  # guarded until the requeue timer runs out


# --- API ------------------------------------------------------------------------------------

@pytest.fixture
def admin(tenant, client_for):
    return client_for(tenant, roles=("admin",))


def test_endpoint_api_shows_the_secret_once_and_audits_changes(admin, tenant, receiver, enqueued):
    created = admin.post("/v1/webhooks", {"url": receiver.url("/hook"), "events": ["job.succeeded"],
                                          "description": "prod"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["enabled"] is True
    path = f"/v1/webhooks/{body['id']}"
    shown = admin.get(path).json()
    assert "secret" not in shown and shown["events"] == ["job.succeeded"]
    assert [e["id"] for e in admin.get("/v1/webhooks").json()["results"]] == [body["id"]]
    changed = admin.patch(path, {"events": ["job.failed", "job.cancelled"], "enabled": False}, format="json")
    assert changed.json()["events"] == ["job.cancelled", "job.failed"] and changed.json()["disabled_reason"] == "manual"
    rotated = admin.post(f"{path}/rotate-secret").json()
    assert rotated["secret"] != body["secret"] and rotated["previous_secret_expires_at"]
    assert admin.delete(path).status_code == 204
    assert admin.get(path).status_code == 404
    actions = [e.action for e in find(AuditEvent, order_by="seq", tenant_id=tenant.id)
               if e.action.startswith("webhook_endpoint.")]
    assert actions == ["webhook_endpoint.created", "webhook_endpoint.updated", "webhook_endpoint.secret_rotated",
                       "webhook_endpoint.deleted"]
    secret_texts = str([e.details for e in find(AuditEvent, order_by="seq", tenant_id=tenant.id)])
    assert body["secret"] not in secret_texts and "/hook" not in secret_texts  # host only, no path or secret


def test_endpoint_api_validates(admin, receiver):
    assert admin.post("/v1/webhooks", {"url": receiver.url("/h"), "events": []}, format="json").status_code == 400
    bad = admin.post("/v1/webhooks", {"url": receiver.url("/h"), "events": ["nope"]}, format="json")
    assert bad.status_code == 400
    private = admin.post("/v1/webhooks", {"url": "http://192.168.1.10/h", "events": ["job.failed"]}, format="json")
    assert private.status_code == 400 and "webhook" in private.json()["error"]["details"]


def test_delivery_log_redelivery_and_test_event_through_the_api(admin, tenant, receiver, enqueued):
    issued = make_endpoint(tenant, receiver.serve("/hook", (500, b""), (200, b"ok")))
    receiver.on_request = verifier(issued.secret)
    (delivery_id,) = emit(tenant)
    deliver(tenant, delivery_id)
    base = f"/v1/webhooks/{issued.endpoint.id}/deliveries"
    listed = admin.get(base).json()["results"]
    assert [d["id"] for d in listed] == [str(delivery_id)] and listed[0]["last_status_code"] == 500
    detail = admin.get(f"{base}/{delivery_id}").json()
    assert detail["attempt_log"][0]["status_code"] == 500 and detail["payload"]["type"] == "job.succeeded"

    again = admin.post(f"{base}/{delivery_id}/redeliver")
    assert again.status_code == 202
    assert again.json()["event_id"] == detail["event_id"] and again.json()["redelivery_of"] == str(delivery_id)
    assert deliver(tenant, again.json()["id"]) == "succeeded"
    assert receiver.received[-1].headers["webhook-id"] == detail["event_id"]  # same message id
    assert not isinstance(receiver.received[-1].verified, Exception)

    test = admin.post(f"/v1/webhooks/{issued.endpoint.id}/test")
    assert test.status_code == 202 and test.json()["event_type"] == "webhook.test"
    assert admin.get(f"{base}?state=succeeded").json()["results"][0]["id"] == again.json()["id"]

    admin.patch(f"/v1/webhooks/{issued.endpoint.id}", {"enabled": False}, format="json")
    refused = admin.post(f"{base}/{delivery_id}/redeliver")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "endpoint_disabled"


def test_another_tenants_endpoint_is_404(tenant, other_tenant, client_for, receiver, enqueued):
    theirs = make_endpoint(other_tenant, receiver.url("/hook"))
    (delivery_id,) = webhooks.emit_event(tenant_id=other_tenant.id, event_type="job.succeeded", payload={})
    mine = client_for(tenant, roles=("admin",))
    base = f"/v1/webhooks/{theirs.endpoint.id}"
    for response in (mine.get(base), mine.patch(base, {"enabled": False}, format="json"), mine.delete(base),
                     mine.post(f"{base}/rotate-secret"), mine.get(f"{base}/deliveries"),
                     mine.get(f"{base}/deliveries/{delivery_id}"),
                     mine.post(f"{base}/deliveries/{delivery_id}/redeliver")):
        assert response.status_code == 404, response.content
    assert endpoint(theirs.endpoint.id).enabled


def test_a_delivery_whose_workers_keep_dying_gives_up(tenant, receiver, enqueued, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    make_endpoint(tenant, receiver.serve("/hook", (200, b"ok")))
    (delivery_id,) = emit(tenant)
    update(WebhookDelivery, {"id": delivery_id}, state="delivering", attempts=3,
           lease_expires_at=timezone.now() - timedelta(seconds=1))
    webhook_delivery.sweep_deliveries()
    assert deliver(tenant, delivery_id) == "skipped"
    row = delivery(delivery_id)
    assert row.state == "failed" and row.last_error == "worker_lost" and receiver.received == []

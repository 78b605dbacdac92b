"""Anomalous access: each rule replayed from a crafted audit history (real PostgreSQL and Valkey).

Events are appended with `append_event` at times in the past, as the audit log
would hold them; the detector then runs as beat runs it, and runs again to show
that the same anomaly is not raised twice.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from standardwebhooks import Webhook

from audit.anomalies import detector, refusals
from audit.anomalies.rules import baseline_median
from audit.models import PLATFORM_CHAIN, AuditEvent
from audit.services import append_event
from audit.tasks import detect_anomalies
from faceservice.tenancy import platform_scope
from tests.audit.conftest import totp_now
from tests.conftest import local_server


def address() -> str:
    """A documentation address no other test uses."""
    return f"2001:db8::{random.randrange(1, 0xFFFF):x}:{random.randrange(1, 0xFFFF):x}"


def past(tenant_id, action: str, *, minutes: float, n: int = 1, actor_type: str = "api_key", actor_id: str = "",
         client_ip: str | None = None, details: dict | None = None, actor_name: str = "k") -> None:
    """n events `minutes` ago, appended to the tenant's chain (or the platform's) like record_event would."""
    occurred_at = timezone.now() - timedelta(minutes=minutes)
    for _ in range(n):
        append_event(tenant_id=tenant_id, occurred_at=occurred_at, values={
            "actor_type": actor_type, "actor_id": actor_id, "actor_name": actor_name, "role": "", "action": action,
            "target": {}, "outcome": "refused" if "refused" in action else "success", "details": details or {},
            "request_id": "", "client_ip": client_ip, "receipt_id": None})


def new_key(tenant, roles=("admin",)):
    from audit.services import Actor
    from tenants.services import create_api_key

    return create_api_key(tenant_id=tenant.id, name="anomalies", roles=list(roles),
                          actor=Actor.operator("tests")).api_key


def detect() -> list[detector.Raised]:
    return detector.detect(now=timezone.now())


def raised(runs: list[detector.Raised], rule: str) -> list[detector.Raised]:
    return [r for r in runs if r.anomaly.rule == rule]


def only(runs: list[detector.Raised], rule: str, **subject) -> detector.Raised:
    matching = [r for r in raised(runs, rule) if subject.items() <= r.anomaly.subject.items()]
    assert len(matching) == 1, [r.anomaly for r in raised(runs, rule)]
    return matching[0]


def none_of(runs: list[detector.Raised], rule: str, **subject) -> bool:
    return not [r for r in raised(runs, rule) if subject.items() <= r.anomaly.subject.items()]


@pytest.mark.pure
def test_the_detector_is_on_the_beat_schedule():
    entry = settings.CELERY_BEAT_SCHEDULE["audit-detect-anomalies"]
    assert entry == {"task": "audit.detect_anomalies", "schedule": settings.ANOMALY_DETECT_INTERVAL_SECONDS}


def test_refused_requests_per_key_and_per_address(db, tenant, settings):
    settings.ANOMALY_REFUSED_PER_KEY, settings.ANOMALY_REFUSED_PER_ADDRESS = 5, 8
    key = new_key(tenant, roles=["searcher"])
    key_id, ip, quiet_ip = str(key.id), address(), address()
    past(tenant.id, "api_key.role_refused", minutes=2, n=4, actor_id=key_id, client_ip=ip)  # 403s, audited
    past(tenant.id, "api_key.role_refused", minutes=30, n=9, actor_id=key_id, client_ip=ip)  # outside the window
    refusals.count_refusal(status=429, client_ip=ip, api_key_id=key_id)  # counted in Valkey
    for _ in range(3):
        refusals.count_refusal(status=401, client_ip=ip)
    refusals.count_refusal(status=200, client_ip=ip)  # not a refusal: not counted
    for _ in range(7):
        refusals.count_refusal(status=401, client_ip=quiet_ip)

    runs = detect()
    by_key = only(runs, "refused_by_key", api_key_id=key_id)
    assert by_key.anomaly.count == 5 and by_key.event.chain == str(tenant.id)
    by_address = only(runs, "refused_by_address", address=ip)
    assert by_address.anomaly.count == 8 and by_address.event.chain == PLATFORM_CHAIN
    assert by_address.event.action == "anomaly.detected" and by_address.event.target == {"address": ip}
    assert none_of(runs, "refused_by_address", address=quiet_ip)  # 7 < 8

    refusals.count_refusal(status=401, client_ip=ip)
    again = detect()
    assert none_of(again, "refused_by_key", api_key_id=key_id)
    assert none_of(again, "refused_by_address", address=ip)


def test_a_key_with_only_429s_is_raised_on_its_tenants_chain(db, tenant, settings):
    settings.ANOMALY_REFUSED_PER_KEY = 3
    key = new_key(tenant)
    for _ in range(3):
        refusals.count_refusal(status=429, client_ip=None, api_key_id=str(key.id))
    assert only(detect(), "refused_by_key", api_key_id=str(key.id)).event.chain == str(tenant.id)


def test_a_key_used_from_many_addresses(db, settings):
    settings.ANOMALY_KEY_MAX_ADDRESSES = 3
    tenant_id, roaming, steady = uuid.uuid4(), str(uuid.uuid4()), str(uuid.uuid4())
    for minutes in (5, 15, 25, 50):
        past(tenant_id, "faces.searched", minutes=minutes, actor_id=roaming, client_ip=address())
    past(tenant_id, "faces.searched", minutes=90, actor_id=roaming, client_ip=address())  # outside the hour
    for ip in (address(), address(), address()):
        past(tenant_id, "faces.searched", minutes=5, n=3, actor_id=steady, client_ip=ip)

    runs = detect()
    found = only(runs, "key_many_addresses", api_key_id=roaming)
    assert found.anomaly.count == 4 and len(found.event.details["addresses"]) == 4
    assert found.event.chain == str(tenant_id)
    assert none_of(runs, "key_many_addresses", api_key_id=steady)  # 3 addresses: not more than 3
    assert none_of(detect(), "key_many_addresses", api_key_id=roaming)


def test_searches_and_exports_far_above_the_tenants_own_baseline(db, settings):
    settings.ANOMALY_VOLUME_BASELINE_DAYS = 1
    settings.ANOMALY_VOLUME_FACTOR, settings.ANOMALY_VOLUME_MIN_SEARCHES = 3.0, 5
    settings.ANOMALY_VOLUME_MIN_EXPORTS = 3
    busy, usual, quiet, exporter = (uuid.uuid4() for _ in range(4))
    for tenant_id in (busy, usual):
        for hour in range(2, 16):  # 14 of the 24 hours before this one: 2 searches each, so the median is 2
            past(tenant_id, "faces.searched", minutes=hour * 60 + 5, n=2)
    past(busy, "faces.searched", minutes=10, n=7)  # >= max(5, 3 x 2)
    past(usual, "faces.compared", minutes=10, n=5)  # over the minimum, under 3 x its median
    past(quiet, "faces.searched", minutes=10, n=4)  # no history, under the minimum
    past(exporter, "audit.exported", minutes=20, n=3)  # no exports before: the minimum decides
    with platform_scope():
        start = timezone.now() - timedelta(hours=1)
        assert baseline_median(tenant_id=busy, actions=("faces.searched",), before=start, window=3600) == 2

    runs = detect()
    found = only(runs, "search_volume", tenant_id=str(busy))
    assert found.anomaly.count == 7 and found.event.details["baseline_median"] == 2
    assert found.event.details["threshold"] == 6 and found.event.chain == str(busy)
    assert none_of(runs, "search_volume", tenant_id=str(usual))
    assert none_of(runs, "search_volume", tenant_id=str(quiet))
    assert only(runs, "export_volume", tenant_id=str(exporter)).anomaly.count == 3
    again = detect()
    assert none_of(again, "search_volume", tenant_id=str(busy))
    assert none_of(again, "export_volume", tenant_id=str(exporter))


def test_deletions_in_bulk(db, settings):
    settings.ANOMALY_BULK_DELETE_FACES, settings.ANOMALY_BULK_DELETE_REQUESTS = 1000, 3
    many_faces, many_requests, ordinary = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    past(many_faces, "faces.deleted", minutes=10, n=2, details={"faces_deleted": 600, "assets_deleted": 3})
    past(many_requests, "faces.deleted", minutes=10, n=3, details={"faces_deleted": 1, "assets_deleted": 1})
    past(ordinary, "faces.deleted", minutes=10, details={"faces_deleted": 10, "assets_deleted": 1})
    past(ordinary, "faces.retention_purged", minutes=10, actor_type="system", details={"faces_deleted": 50000})
    past(ordinary, "faces.deleted", minutes=120, n=5, details={"faces_deleted": 900})  # long before the window

    runs = detect()
    assert only(runs, "bulk_deletion", tenant_id=str(many_faces)).anomaly.count == 1200
    assert only(runs, "bulk_deletion", tenant_id=str(many_requests)).event.details["requests"] == 3
    assert none_of(runs, "bulk_deletion", tenant_id=str(ordinary))
    assert none_of(detect(), "bulk_deletion", tenant_id=str(many_faces))


def console_sign_in(client, user, password, code, ip):
    return client.post("/console/login", {"username": user.username, "password": password, "otp_token": code},
                       REMOTE_ADDR=ip)


def test_console_failures_and_lockouts_through_the_real_sign_in(db, client, make_auditor, settings):
    settings.CONSOLE_LOCKOUT_THRESHOLD, settings.ANOMALY_CONSOLE_FAILURES = 3, 4
    user, device, password = make_auditor()
    guesser, own_desk = address(), address()
    for _ in range(3):
        assert console_sign_in(client, user, "wrong", "000000", guesser).status_code == 400
    device.refresh_from_db()
    device.throttle_reset()  # django-otp's own back-off after the wrong codes (per device, seconds)
    response = console_sign_in(client, user, password, totp_now(device), own_desk)  # not locked out from here
    assert response.status_code == 302
    client.logout()
    console_sign_in(client, user, "wrong again", "000000", own_desk)

    runs = detect()
    lockout = only(runs, "console_lockout", username=user.username)
    assert lockout.anomaly.subject["address"] == guesser and lockout.event.chain == PLATFORM_CHAIN
    assert only(runs, "console_failures_user", user_id=str(user.pk)).anomaly.count == 4
    assert none_of(runs, "console_failures_address", address=guesser)  # 3 < 4 from one address
    again = detect()
    assert none_of(again, "console_lockout", username=user.username)
    assert none_of(again, "console_failures_user", user_id=str(user.pk))


def test_failures_from_one_address_across_user_names(db, settings):
    settings.ANOMALY_CONSOLE_FAILURES = 5
    ip = address()
    for name in ("(unknown user)", "alice", "bob", "carol", "dave"):
        past(None, "console.login_failed", minutes=3, actor_type="staff", actor_name=name, client_ip=ip)
    found = only(detect(), "console_failures_address", address=ip)
    assert found.anomaly.count == 5 and found.event.chain == PLATFORM_CHAIN


def test_the_operator_is_alerted_with_a_signed_webhook(db, settings):
    settings.ANOMALY_BULK_DELETE_REQUESTS = 1
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    tenant_id = uuid.uuid4()
    past(tenant_id, "faces.purged", minutes=1, details={"faces_deleted": 40, "keys_destroyed": 1})
    with local_server(settings) as server:
        settings.OPERATOR_ALERT_WEBHOOK_URL = server.serve("/alerts", (204, b""))
        settings.OPERATOR_ALERT_WEBHOOK_SECRET = secret
        runs = detect()
        assert detect_anomalies() == 0  # the beat task: raised a moment ago, so not again
    mine = only(runs, "bulk_deletion", tenant_id=str(tenant_id))
    alerts = [json.loads(r.body) for r in server.received if r.path == "/alerts"]
    alert = next(a for a in alerts if a["subject"] == {"tenant_id": str(tenant_id)})
    assert alert["type"] == "anomaly.detected" and alert["rule"] == "bulk_deletion"
    assert alert["audit_event"] == {"id": mine.event.id, "chain": str(tenant_id), "seq": mine.event.seq,
                                    "hash": mine.event.hash}
    request = next(r for r in server.received if json.loads(r.body) == alert)
    Webhook(secret).verify(request.body, request.headers)  # raises when the signature is wrong
    assert len(alerts) == len(runs)  # one alert per anomaly raised, none from the second run


def test_each_anomaly_raised_is_counted_in_the_metrics(db, settings):
    from prometheus_client import REGISTRY

    def counted() -> float:
        return REGISTRY.get_sample_value("faceservice_anomalies_total", {"rule": "bulk_deletion"}) or 0.0

    settings.ANOMALY_BULK_DELETE_REQUESTS = 1
    before = counted()
    past(uuid.uuid4(), "faces.deleted", minutes=1, details={"faces_deleted": 1})
    runs = detect()
    assert counted() - before == len(raised(runs, "bulk_deletion")) >= 1
    detect()
    assert counted() - before == len(raised(runs, "bulk_deletion"))


def test_an_unreachable_operator_webhook_loses_no_event(db, settings):
    settings.ANOMALY_BULK_DELETE_REQUESTS = 1
    settings.OPERATOR_ALERT_WEBHOOK_URL = "http://127.0.0.1:9/alerts"  # refused by the SSRF guard here
    tenant_id = uuid.uuid4()
    past(tenant_id, "faces.deleted", minutes=1, details={"faces_deleted": 1})
    found = only(detect(), "bulk_deletion", tenant_id=str(tenant_id))
    with platform_scope():
        assert AuditEvent.objects.filter(id=found.event.id, action="anomaly.detected").exists()


def test_a_401_answered_by_the_api_is_counted_for_the_rules(db, client):
    """The access-log middleware counts every 401 it answers (refusals write no audit event)."""
    import time

    started = time.time()
    client.get("/v1/tenant", HTTP_AUTHORIZATION="Bearer fsk_000000000000_not-a-key", REMOTE_ADDR="198.51.100.77")
    counts = refusals.counts_since(since=started - 60, until=time.time() + 60)
    assert counts.by_address["198.51.100.77"] >= 1

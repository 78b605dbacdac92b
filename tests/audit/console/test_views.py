"""The auditors' console through Django's test client: sign-in, lock-out, read-only, audited."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from audit.models import PLATFORM_CHAIN, AuditEvent
from audit.services import Actor, record_event
from faceservice.tenancy import platform_scope, tenant_context
from tests.audit.conftest import totp_now

LOGIN = "/console/login"


def sign_in(client, user, device, password, code=None):
    return client.post(LOGIN, {"username": user.username, "password": password,
                               "otp_token": code or totp_now(device)})


def platform_events(user, action: str | None = None) -> list[AuditEvent]:
    with platform_scope():
        events = AuditEvent.objects.filter(chain=PLATFORM_CHAIN, actor_id=str(user.pk))
        if action:
            events = events.filter(action=action)
        return list(events.order_by("seq"))


@pytest.fixture
def signed_in(db, client, make_auditor):
    user, device, password = make_auditor()
    response = sign_in(client, user, device, password)
    assert response.status_code == 302, response.content
    return client, user


def test_pages_need_a_signed_in_auditor(db, client):
    for url in ["/console/", "/console/receipts", "/console/keys", "/console/chains", "/console/export/events.csv"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(LOGIN), url


def test_sign_in_needs_password_and_totp(db, client, make_auditor):
    user, device, password = make_auditor()
    assert sign_in(client, user, device, "wrong password").status_code == 400
    assert sign_in(client, user, device, password, code="000000").status_code == 400
    assert client.get("/console/").status_code == 302
    device.refresh_from_db()
    device.throttle_reset()  # django-otp's own back-off after a wrong code (1 s, doubling)
    response = sign_in(client, user, device, password)
    assert response.status_code == 302 and response["Location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200 and b"Audit events" in page.content
    assert client.session.get_expiry_age() <= 900  # the short idle timeout
    actions = [e.action for e in platform_events(user)]
    assert actions[:3] == ["console.login_failed", "console.login_failed", "console.login"]
    assert actions[-1] == "console.viewed"


def test_password_alone_is_not_enough_without_a_device(db, client):
    from audit.console.auth import ensure_auditor_group

    user = get_user_model().objects.create_user(username=f"nodevice-{uuid.uuid4().hex[:6]}",
                                                password="correct horse battery staple")
    user.groups.add(ensure_auditor_group())
    response = client.post(LOGIN, {"username": user.username, "password": "correct horse battery staple",
                                   "otp_token": "123456"})
    assert response.status_code == 400


def test_staff_without_the_auditor_permission_is_refused(db, client):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = get_user_model().objects.create_user(username=f"ops-{uuid.uuid4().hex[:6]}",
                                                password="correct horse battery staple", is_staff=True)
    device = TOTPDevice.objects.create(user=user, name="x", confirmed=True)
    assert sign_in(client, user, device, "correct horse battery staple").status_code == 400


def test_repeated_failures_lock_the_account(db, client, make_auditor, settings):
    user, device, password = make_auditor()
    for _ in range(settings.CONSOLE_LOCKOUT_THRESHOLD - 1):
        response = sign_in(client, user, device, password, code="000000")
        assert b"not right" in response.content
    response = sign_in(client, user, device, password, code="000000")
    assert b"locked" in response.content
    response = sign_in(client, user, device, password)  # even the right code, now
    assert response.status_code == 400 and b"locked" in response.content
    assert client.get("/console/").status_code == 302
    actions = [e.action for e in platform_events(user)]
    assert "console.locked_out" in actions and actions[-1] == "console.login_refused"


def test_unknown_user_names_are_not_written_down(db, client):
    client.post(LOGIN, {"username": "hunter2-typed-in-the-wrong-box", "password": "x", "otp_token": "123456"})
    with platform_scope():
        assert not AuditEvent.objects.filter(actor_name__contains="hunter2").exists()


def test_console_reads_across_tenants_and_audits_each_view(signed_in, make_tenant):
    client, user = signed_in
    first, second = make_tenant(), make_tenant()
    for tenant in (first, second):
        with tenant_context(tenant.id):
            record_event(tenant_id=tenant.id, actor=Actor.system("tests"), action="search",
                         target={"job_id": f"job-{tenant.name}"})
    page = client.get("/console/", {"action": "search", "q": ""}).content.decode()
    assert first.name in page and second.name in page
    page = client.get("/console/", {"chain": str(first.id), "action": "search"}).content.decode()
    assert f"job-{first.name}" in page and f"job-{second.name}" not in page
    page = client.get("/console/", {"q": f"job-{first.name}"}).content.decode()  # free text finds ids
    assert f"job-{first.name}" in page and f"job-{second.name}" not in page
    page = client.get("/console/", {"target_id": f"job-{second.name}"}).content.decode()
    assert f"job-{second.name}" in page and f"job-{first.name}" not in page
    viewed = platform_events(user, "console.viewed")
    assert viewed[-1].details == {"view": "events", "query": {"target_id": f"job-{second.name}"}}
    assert viewed[-1].actor_type == "staff" and viewed[-1].tenant_id is None


def test_receipts_keys_chains_and_detail_pages(signed_in, tenant):
    client, user = signed_in
    receipt = uuid.uuid4()
    with tenant_context(tenant.id):
        deleted = record_event(tenant_id=tenant.id, actor=Actor.system("tests"), action="faces.deleted",
                               target={"subject_id": "s-9"}, details={"faces": 4}, receipt_id=receipt)
        record_event(tenant_id=tenant.id, actor=Actor.system("tests"), action="key.rotated",
                     target={"key_version": 3})
    assert str(receipt) in client.get("/console/receipts").content.decode()
    keys = client.get("/console/keys", {"chain": str(tenant.id)}).content.decode()
    assert "key.rotated" in keys and "faces.deleted" not in keys
    detail = client.get(f"/console/events/{deleted.id}").content.decode()
    assert deleted.hash in detail and str(receipt) in detail
    call_command("verify_audit_chain", "--tenant", str(tenant.id), stdout=io.StringIO())
    chains = client.get("/console/chains").content.decode()
    assert tenant.name in chains and "intact" in chains
    response = client.post(f"/console/chains/{tenant.id}/verify")
    assert response.status_code == 302
    assert platform_events(user, "console.chain_verified")[-1].details["chain"] == str(tenant.id)


def test_console_is_read_only(signed_in, tenant):
    client, _ = signed_in
    with tenant_context(tenant.id):
        event = record_event(tenant_id=tenant.id, actor=Actor.system("tests"), action="search")
    for url in [f"/console/events/{event.id}", "/console/", "/console/receipts", "/console/export/events.csv"]:
        assert client.post(url, {"action": "changed"}).status_code == 405, url
        assert client.delete(url).status_code == 405, url
    page = client.get(f"/console/events/{event.id}").content.decode().lower()
    for word in (">add", ">change", ">delete", ">edit", ">save"):
        assert word not in page
    # The Django admin is not a back door: auditors are not is_staff, events not registered.
    response = client.post(f"/staff/audit/auditevent/{event.id}/change/", {"action": "changed"})
    assert response.status_code in (302, 404)
    with platform_scope():
        assert AuditEvent.objects.get(id=event.id).action == "search"


def test_console_export_is_streamed_and_audited(signed_in, tenant, other_tenant):
    client, user = signed_in
    for t in (tenant, other_tenant):
        with tenant_context(t.id):
            record_event(tenant_id=t.id, actor=Actor.system("tests"), action="compare")
    response = client.get("/console/export/events.csv", {"action": "compare"})
    assert response.status_code == 200 and response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {str(tenant.id), str(other_tenant.id)} <= {r["tenant_id"] for r in rows}
    response = client.get("/console/export/receipts.jsonl")
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert all(line["receipt_id"] for line in lines)
    exported = platform_events(user, "console.exported")
    assert [e.details["view"] for e in exported][-2:] == ["export-events", "export-receipts"]


def test_idle_and_absolute_session_limits(signed_in, settings):
    client, _ = signed_in
    session = client.session
    session["console_signed_in_at"] -= settings.CONSOLE_MAX_SESSION_SECONDS + 1
    session.save()
    assert client.get("/console/").status_code == 302


def test_security_headers(signed_in):
    client, _ = signed_in
    response = client.get("/console/")
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "no-store" in response["Cache-Control"]
    assert response["X-Frame-Options"] == "DENY"


def test_create_staff_auditor_command_prints_a_provisioning_uri(db):
    out = io.StringIO()
    name = f"cli-{uuid.uuid4().hex[:6]}"
    call_command("create_staff_auditor", name, "--qr", stdout=out)
    text = out.getvalue()
    assert "otpauth://totp/" in text and "secret=" in text and "password (shown once):" in text
    assert "█" in text or "▀" in text  # the QR code, drawn with block characters
    user = get_user_model().objects.get(username=name)
    assert user.has_perm("audit.view_console") and not user.is_staff and not user.is_superuser


def test_a_lockout_holds_for_one_address_only_and_grows_with_each(db, client, make_auditor, settings):
    from datetime import timedelta

    from django.utils import timezone

    from audit.models import StaffLoginThrottle

    settings.CONSOLE_LOCKOUT_THRESHOLD, settings.CONSOLE_LOCKOUT_SECONDS = 2, 60
    user, device, password = make_auditor()

    def attempt(code, ip):
        return client.post(LOGIN, {"username": user.username, "password": password, "otp_token": code},
                           REMOTE_ADDR=ip)

    for _ in range(2):
        attempt("000000", "192.0.2.66")
    assert b"locked" in attempt(totp_now(device), "192.0.2.66").content  # locked from the guesser's address
    device.refresh_from_db()
    device.throttle_reset()  # django-otp's own back-off after the wrong codes (per device, seconds)
    assert attempt(totp_now(device), "192.0.2.10").status_code == 302  # not from the auditor's own
    throttle = StaffLoginThrottle.objects.get(username=user.username, address="192.0.2.66")
    first = throttle.locked_until - throttle.last_failure_at
    assert first == timedelta(seconds=60) and throttle.lockouts == 1
    StaffLoginThrottle.objects.filter(pk=throttle.pk).update(locked_until=timezone.now())  # let it run out
    for _ in range(2):
        device.refresh_from_db()
        device.throttle_reset()  # django-otp's own back-off after a wrong code
        attempt("000000", "192.0.2.66")
    throttle.refresh_from_db()
    assert throttle.locked_until - throttle.last_failure_at == 2 * first and throttle.lockouts == 2
    locked = platform_events(user, "console.locked_out")
    assert [e.details for e in locked] == [{"seconds": 60, "lockouts": 1}, {"seconds": 120, "lockouts": 2}]
    assert {e.client_ip for e in locked} == {"192.0.2.66"}


def test_the_chains_page_is_paged(signed_in, make_tenant, monkeypatch):
    from audit.console import views

    client, _ = signed_in
    tenants = [make_tenant() for _ in range(3)]
    for tenant in tenants:
        with tenant_context(tenant.id):
            record_event(tenant_id=tenant.id, actor=Actor.system("tests"), action="search")
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    seen, url, pages = [], "/console/chains", 0
    while url and pages < 100:
        page = client.get(url).content.decode()
        seen += [t.name for t in tenants if t.name in page]
        assert ("Platform (staff, operator)" in page) == (pages == 0)  # first on the first page only
        found = [part.split('"')[0] for part in page.split('href="?after=')[1:]]
        url = f"/console/chains?after={found[0]}" if found else ""
        pages += 1
    assert sorted(seen) == sorted(t.name for t in tenants) and pages >= 2

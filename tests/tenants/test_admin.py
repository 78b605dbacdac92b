"""The operator's Django admin: TOTP required, cross-tenant reads, audited status changes."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from faceservice.tenancy import tenant_context
from tenants.models import Tenant


@pytest.fixture
def staff(db):
    user = get_user_model().objects.create_user("operator", password="a long staff password", is_staff=True,
                                                is_superuser=True)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user, device


def test_password_alone_does_not_open_the_admin(client, staff):
    user, _ = staff
    client.force_login(user)
    response = client.get("/staff/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_verified_staff_sees_keys_of_all_tenants_and_suspends(client, staff, tenant, other_tenant, make_key):
    from django_otp import login as otp_login
    user, device = staff
    make_key(tenant)
    make_key(other_tenant)
    client.force_login(user)
    session_request = type("R", (), {"session": client.session, "user": user})()
    otp_login(session_request, device)
    session_request.session.save()
    page = client.get("/staff/tenants/apikey/")
    assert page.status_code == 200
    assert tenant.name in page.content.decode() and other_tenant.name in page.content.decode()
    response = client.post("/staff/tenants/tenant/", {"action": "suspend", "_selected_action": [str(tenant.id)]})
    assert response.status_code == 302
    assert Tenant.objects.get(id=tenant.id).status == "suspended"
    with tenant_context(tenant.id):
        event = AuditEvent.objects.filter(tenant_id=tenant.id, action="tenant.status_changed").get()
    assert event.actor_type == "staff" and event.actor_name == "operator"

"""API keys: shown once, stored hashed, and one 401 for every way a key stops working."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from audit.services import Actor
from faceservice.tenancy import platform_scope
from tenants import services
from tenants.models import ApiKey
from tests.conftest import assert_json_error


def _client(key: str | None = None, *, header: str = "bearer") -> APIClient:
    client = APIClient()
    if key and header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    elif key:
        client.credentials(HTTP_X_API_KEY=key)
    return client


def _create_key_via_api(admin: APIClient, **body) -> dict:
    response = admin.post("/v1/api-keys", {"name": "made by api", "roles": ["searcher"], **body},
                          format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _stored_row_text(api_key_id) -> str:
    """Every column of the key's row, as the database holds it."""
    with platform_scope(), connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(k)::text FROM tenants_apikey k WHERE id = %s", [api_key_id])
        return cursor.fetchone()[0]


def test_new_key_is_shown_once_and_works(tenant, client_for):
    admin = client_for(tenant, roles=("admin",))
    created = _create_key_via_api(admin)
    assert created["key"].startswith("fsk_")
    assert _client(created["key"]).get("/v1/tenant").status_code == 200
    listing = admin.get("/v1/api-keys")
    assert listing.status_code == 200
    assert created["key"] not in listing.content.decode()
    for shown in listing.json()["results"]:
        assert "key" not in shown and "digest" not in shown, shown


def test_key_is_stored_only_as_a_hash(tenant, client_for):
    created = _create_key_via_api(client_for(tenant))
    plaintext = created["key"]
    secret = plaintext.split("_", 2)[2]
    row = _stored_row_text(created["id"])
    assert plaintext not in row and secret not in row
    with platform_scope():
        assert ApiKey.objects.get(id=created["id"]).digest == services.digest_secret(plaintext)


def test_x_api_key_header_works_as_well_as_bearer(tenant, make_key):
    assert _client(make_key(tenant), header="x-api-key").get("/v1/tenant").status_code == 200


def test_missing_key_is_unauthenticated_with_a_challenge(db):
    response = _client().get("/v1/tenant")
    assert_json_error(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def _refusal(key: str) -> dict:
    response = _client(key).get("/v1/tenant")
    error = assert_json_error(response, 401, "invalid_api_key")
    assert response["WWW-Authenticate"].startswith("Bearer")
    return {"status": response.status_code, "code": error["code"], "message": error["message"]}


def test_revoked_key_is_refused(tenant, client_for, make_key):
    key = make_key(tenant, roles=("searcher",))
    key_id = _client(key).get("/v1/tenant").wsgi_request.api_key_id
    assert client_for(tenant).delete(f"/v1/api-keys/{key_id}").status_code == 204
    _refusal(key)


def test_expired_key_is_refused(tenant, make_key):
    _refusal(make_key(tenant, expires_at=timezone.now() - timedelta(seconds=1)))


def test_key_of_a_suspended_tenant_is_refused_until_reactivated(tenant, make_key):
    key = make_key(tenant)
    services.set_tenant_status(tenant=tenant, status="suspended", actor=Actor.operator("tests"))
    _refusal(key)
    services.set_tenant_status(tenant=tenant, status="active", actor=Actor.operator("tests"))
    assert _client(key).get("/v1/tenant").status_code == 200


@pytest.mark.parametrize("garbage", ["nonsense", "fsk_000000000000_" + "x" * 43, "fsk__"])
def test_unknown_key_gets_the_same_answer_as_a_revoked_one(tenant, make_key, garbage):
    expired = make_key(tenant, expires_at=timezone.now() - timedelta(days=1))
    assert _refusal(garbage) == _refusal(expired)


def test_right_prefix_with_wrong_secret_is_refused(tenant, make_key):
    key = make_key(tenant)
    scheme, prefix, secret = key.split("_", 2)
    _refusal(f"{scheme}_{prefix}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}")


def test_use_sets_last_used_at(tenant, make_key):
    key = make_key(tenant)
    prefix = key.split("_")[1]
    with platform_scope():
        assert ApiKey.objects.get(prefix=prefix).last_used_at is None
    before = timezone.now()
    assert _client(key).get("/v1/tenant").status_code == 200
    with platform_scope():
        assert ApiKey.objects.get(prefix=prefix).last_used_at >= before


def test_foreign_key_id_answers_exactly_like_a_missing_one(tenant, other_tenant, client_for, make_key):
    admin = client_for(tenant)
    other_key = make_key(other_tenant, roles=("searcher",))
    other_key_id = _client(other_key).get("/v1/tenant").wsgi_request.api_key_id

    foreign = admin.delete(f"/v1/api-keys/{other_key_id}")
    missing = admin.delete(f"/v1/api-keys/{uuid.uuid4()}")
    foreign_error = assert_json_error(foreign, 404, "not_found")
    missing_error = assert_json_error(missing, 404, "not_found")
    assert foreign_error["message"] == missing_error["message"]
    assert _client(other_key).get("/v1/tenant").status_code == 200  # and it was not revoked


def test_key_listing_holds_only_the_callers_tenant(tenant, other_tenant, client_for, make_key):
    make_key(other_tenant, name="not yours")
    listing = client_for(tenant).get("/v1/api-keys").json()["results"]
    assert listing and all(shown["name"] != "not yours" for shown in listing)


def test_roles_outside_the_known_set_are_refused(tenant, client_for):
    response = client_for(tenant).post("/v1/api-keys", {"name": "x", "roles": ["root"]}, format="json")
    error = assert_json_error(response, 400, "invalid_request")
    assert "roles" in error["details"]


def _revoke_as_another_process_would(key_id) -> None:
    # A revocation made elsewhere: straight in the database, this process's cache untouched.
    with platform_scope():
        ApiKey.objects.filter(id=key_id).update(revoked_at=timezone.now())


def test_verified_keys_are_cached_for_api_key_cache_seconds(tenant, make_key, settings):
    settings.API_KEY_CACHE_SECONDS = 1
    key = make_key(tenant, roles=("searcher",))
    key_id = _client(key).get("/v1/tenant").wsgi_request.api_key_id
    from django.test.utils import CaptureQueriesContext
    with CaptureQueriesContext(connection) as queries:
        assert _client(key).get("/v1/tenant").status_code == 200
    assert not [q for q in queries.captured_queries if "tenants_apikey" in q["sql"]]
    _revoke_as_another_process_would(key_id)
    time.sleep(1.1)
    _refusal(key)


def test_without_the_cache_a_revocation_elsewhere_is_immediate(tenant, make_key, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    key = make_key(tenant, roles=("searcher",))
    key_id = _client(key).get("/v1/tenant").wsgi_request.api_key_id
    _revoke_as_another_process_would(key_id)
    _refusal(key)


def test_an_expiry_in_the_past_is_refused(tenant, client_for):
    """Issue #14: a key born expired is a mistake, not a request."""
    admin = client_for(tenant, ("admin",))
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = admin.post("/v1/api-keys", {"name": "late", "roles": ["searcher"], "expires_at": past},
                          format="json")
    error = assert_json_error(response, 400, "invalid_request")
    assert "expires_at" in error["details"]
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert _create_key_via_api(admin, expires_at=future)["expires_at"]


def test_a_key_issued_before_routing_tags_still_authenticates(db, tenant):
    """New keys carry the tenant's routing tag in a 16-character prefix; keys with the old 12-character
    prefix keep authenticating."""
    from audit.services import Actor
    from faceservice.tenancy import tenant_context
    from tenants import api_keys, selectors, services
    from tenants.models import ApiKey

    old = "fsk_0123456789ab_" + "s" * 43
    with tenant_context(tenant.id):
        ApiKey.objects.create(tenant_id=tenant.id, name="old", prefix="0123456789ab",
                              digest=api_keys.digest_secret(old), roles=["searcher"])
    new = services.create_api_key(tenant_id=tenant.id, name="new", roles=["searcher"],
                                  actor=Actor.operator("tests"))
    assert len(new.api_key.prefix) == 16 and new.api_key.prefix.startswith(api_keys.routing_tag(tenant.id))
    assert selectors.api_key_for_secret(old).name == "old"
    assert selectors.api_key_for_secret(new.plaintext).name == "new"

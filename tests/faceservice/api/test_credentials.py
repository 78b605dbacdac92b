"""What a refused request says (issue #14): which roles would do, and no guessing between two keys."""

from __future__ import annotations

from rest_framework.test import APIClient

from tests.conftest import assert_json_error


def test_a_403_names_the_roles_that_would_be_allowed(tenant, client_for):
    response = client_for(tenant, ("auditor",)).post("/v1/search", {}, format="json")
    error = assert_json_error(response, 403, "forbidden")
    assert error["details"] == {"allowed_roles": ["admin", "searcher"]}
    per_method = client_for(tenant, ("searcher",)).post("/v1/api-keys", {}, format="json")
    assert assert_json_error(per_method, 403, "forbidden")["details"] == {"allowed_roles": ["admin"]}


def test_two_different_keys_are_refused(tenant, make_key):
    bearer, other = make_key(tenant, ("admin",)), make_key(tenant, ("auditor",))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {bearer}", HTTP_X_API_KEY=other)
    error = assert_json_error(client.get("/v1/tenant"), 400, "conflicting_credentials")
    assert bearer not in str(error) and other not in str(error)


def test_the_same_key_in_both_headers_is_served(tenant, make_key):
    key = make_key(tenant, ("admin",))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_X_API_KEY=key)
    assert client.get("/v1/tenant").status_code == 200

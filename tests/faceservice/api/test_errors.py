"""One JSON error shape for every failure: stable code, message, request id; never HTML."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.test import APIClient

from tests.conftest import assert_json_error

KEY_BODY = {"name": "key", "roles": ["searcher"]}


@pytest.fixture
def admin(tenant, client_for) -> APIClient:
    return client_for(tenant, roles=("admin",))


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/api-keys/not-a-uuid", "/api/nope/"])
def test_unknown_route_is_a_json_404(db, path):
    assert_json_error(APIClient().get(path), 404, "not_found")


def test_unknown_route_is_a_json_404_even_for_a_post_without_csrf_token(db):
    # A browser-style client with CSRF checks on: no HTML CSRF page for API paths.
    client = APIClient(enforce_csrf_checks=True)
    assert_json_error(client.post("/v1/nope", {}, format="json"), 404, "not_found")


def test_wrong_method_is_405(admin):
    assert_json_error(admin.put("/v1/api-keys", KEY_BODY, format="json"), 405, "method_not_allowed")


@pytest.mark.parametrize("role", ["admin", "searcher"])
def test_wrong_method_is_405_not_403_whatever_the_role(tenant, client_for, role):
    # /v1/tenant names roles per method; a method it lacks is still "not allowed", not "forbidden".
    response = client_for(tenant, roles=(role,)).delete("/v1/tenant")
    assert_json_error(response, 405, "method_not_allowed")


def test_head_is_allowed_wherever_get_is(tenant, client_for):
    response = client_for(tenant, roles=("searcher",)).head("/v1/tenant")
    assert response.status_code == 200


def test_malformed_json_is_400(admin):
    response = admin.post("/v1/api-keys", '{"name": "x", "roles": [', content_type="application/json")
    assert_json_error(response, 400, "malformed_request")


def test_validation_error_is_400_with_details(admin):
    response = admin.post("/v1/api-keys", {"roles": []}, format="json")
    error = assert_json_error(response, 400, "invalid_request")
    assert set(error["details"]) == {"name", "roles"}


def test_unsupported_content_type_is_415(admin):
    response = admin.post("/v1/api-keys", "name=x", content_type="text/plain")
    assert_json_error(response, 415, "unsupported_media_type")


def test_unauthenticated_error_has_the_shape_too(db):
    assert_json_error(APIClient().get("/v1/api-keys"), 401, "unauthenticated")


def test_caller_request_id_is_echoed_when_plain(admin):
    response = admin.get("/v1/nope", HTTP_X_REQUEST_ID="trace-1234abcd")
    assert assert_json_error(response, 404, "not_found")["request_id"] == "trace-1234abcd"


def test_unsafe_caller_request_id_is_replaced(admin):
    response = admin.get("/v1/nope", HTTP_X_REQUEST_ID="<script>alert(1)</script>")
    assert "<" not in assert_json_error(response, 404, "not_found")["request_id"]


# --- request size ----------------------------------------------------------------------

def _padded_key_body(size: int) -> dict:
    return {**KEY_BODY, "name": "x" * size}


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_json_body_over_the_limit_is_413(admin):
    # A valid body: without the limit it would create a key (201).
    response = admin.post("/v1/api-keys", _padded_key_body(5000), format="json")
    assert_json_error(response, 413, "request_too_large")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_json_body_under_the_limit_passes(admin):
    assert admin.post("/v1/api-keys", KEY_BODY, format="json").status_code == 201


@override_settings(MAX_IMAGE_BYTES=1000)
def test_multipart_file_over_the_image_limit_is_413(admin):
    upload = SimpleUploadedFile("face.jpg", b"\xff" * 5000, content_type="image/jpeg")
    response = admin.post("/v1/api-keys", {**KEY_BODY, "image": upload}, format="multipart")
    assert_json_error(response, 413, "image_too_large")


@override_settings(MAX_REQUEST_BYTES=4000)
def test_multipart_request_over_the_request_limit_is_413(admin):
    # Each file is under the per-image limit; together they are over the per-request one.
    files = {f"image{i}": SimpleUploadedFile(f"{i}.jpg", b"\xff" * 1500, content_type="image/jpeg")
             for i in range(4)}
    response = admin.post("/v1/api-keys", {**KEY_BODY, **files}, format="multipart")
    assert_json_error(response, 413, "request_too_large")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_multipart_form_fields_over_the_limit_are_413(admin):
    response = admin.post("/v1/api-keys", _padded_key_body(5000), format="multipart")
    assert_json_error(response, 413, "request_too_large")

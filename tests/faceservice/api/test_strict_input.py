"""A JSON body's values must have the types the schema documents; a form's text fields are parsed as before.

Through the real API: one test per kind of field (string, integer, number,
boolean, UUID), nested objects and lists, and the JSON inside a multipart
index job, each refused with 400 invalid_request naming the field.
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import assert_json_error, local_server

NO_SUCH_FACE = "00000000-0000-4000-8000-000000000000"
URL_IMAGE = {"url": "https://example.com/a.jpg"}


def refused(response, *path: str):
    """The 400 invalid_request, and the field error found in `details` under `path`."""
    details = assert_json_error(response, 400, "invalid_request")["details"]
    for key in path:
        assert key in details, (path, details)
        details = details[key]
    return details


@pytest.fixture
def admin(tenant, client_for):
    return client_for(tenant, ("admin",))


@pytest.mark.parametrize("name", [5, 1.5, True])
def test_a_string_field_refuses_a_number_or_a_boolean(admin, name):
    response = admin.post("/v1/api-keys", {"name": name, "roles": ["searcher"]}, format="json")
    assert refused(response, "name") == ["Must be a string."]
    assert admin.post("/v1/api-keys", {"name": "5", "roles": ["searcher"]}, format="json").status_code == 201


@pytest.mark.parametrize("days", ["365", True, 36.5])
def test_an_integer_field_refuses_a_string_a_boolean_or_a_fraction(admin, days):
    response = admin.patch("/v1/tenant", {"face_retention_days": days}, format="json")
    assert refused(response, "face_retention_days") == ["Must be an integer."]


def test_an_integer_field_takes_an_integer_or_null(admin):
    # 365.0 is an integer in JSON Schema's terms (a number without a fraction).
    for days, kept in [(365, 365), (365.0, 365), (None, None)]:
        response = admin.patch("/v1/tenant", {"face_retention_days": days}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["face_retention_days"] == kept


@pytest.mark.parametrize("threshold", ["0.5", False])
def test_a_number_field_refuses_a_string_or_a_boolean(admin, threshold):
    response = admin.post("/v1/search", {"face_id": NO_SUCH_FACE, "threshold": threshold}, format="json")
    assert refused(response, "threshold") == ["Must be a number."]


def test_a_number_field_takes_an_integer(admin):
    response = admin.post("/v1/search", {"face_id": NO_SUCH_FACE, "threshold": 1, "top_k": 3}, format="json")
    assert response.status_code != 400, response.content


@pytest.mark.parametrize("enabled", [1, 0, "true", "false"])
def test_a_boolean_field_refuses_numbers_and_strings(admin, enabled):
    body = {"url": "https://example.com/hook", "events": ["job.succeeded"], "enabled": enabled}
    assert refused(admin.post("/v1/webhooks", body, format="json"), "enabled") == ["Must be true or false."]


def test_a_boolean_field_takes_a_boolean(admin, settings):
    with local_server(settings) as receiver:
        body = {"url": receiver.url("/hook"), "events": ["job.succeeded"], "enabled": False}
        response = admin.post("/v1/webhooks", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["enabled"] is False


def test_a_uuid_field_refuses_a_number(admin):
    # DRF would read 5 as the UUID 00000000-...-000000000005.
    assert refused(admin.post("/v1/search", {"face_id": 5}, format="json"), "face_id") == ["Must be a string."]
    response = admin.post("/v1/faces/delete", {"face_ids": [NO_SUCH_FACE, 5]}, format="json")
    assert refused(response, "face_ids", "1") == ["Must be a string."]


def test_nested_objects_and_lists_are_checked_too(admin):
    body = {"assets": [{"asset_id": "a", "image": URL_IMAGE},
                       {"asset_id": "b", "subject_id": 7, "image": {"s3": {"bucket": 5, "key": "k"}}}],
            "options": {"max_faces": "3", "min_det_score": "0.5"}}
    details = refused(admin.post("/v1/index-jobs", body, format="json"))
    assert details["options"] == {"max_faces": ["Must be an integer."], "min_det_score": ["Must be a number."]}
    assert details["assets"] == {"1": {"subject_id": ["Must be a string."],
                                       "image": {"s3": {"bucket": ["Must be a string."]}}}}


def test_a_compare_reference_is_checked(admin):
    body = {"target": URL_IMAGE, "references": [{"name": 5, "image": URL_IMAGE}]}
    assert refused(admin.post("/v1/compare", body, format="json"), "name") == ["Must be a string."]


def test_a_type_error_comes_with_the_bodys_other_errors(admin):
    details = refused(admin.post("/v1/api-keys", {"name": 5, "roles": []}, format="json"))
    assert set(details) == {"name", "roles"}


def test_a_multipart_index_jobs_json_manifest_is_checked(admin):
    manifest = {"assets": [{"asset_id": 5, "file": "a"}]}
    response = admin.post("/v1/index-jobs", {"manifest": json.dumps(manifest),
                                             "a": SimpleUploadedFile("a.jpg", b"\xff\xd8\xff")},
                          format="multipart")
    assert refused(response, "manifest", "assets", "0", "asset_id") == ["Must be a string."]


def test_a_forms_text_fields_are_parsed_as_before(admin):
    # Multipart fields are text by nature: "5" is the form's way to say 5.
    form = {"face_id": NO_SUCH_FACE, "top_k": "5", "max_faces": "3", "threshold": "0.5", "faces": "largest",
            "subject_ids": ["alice", "bob"]}
    response = admin.post("/v1/search", form, format="multipart")
    assert response.status_code != 400, response.content

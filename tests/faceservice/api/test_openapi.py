"""The OpenAPI document: valid, complete for /v1, and it names the bearer scheme."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.faceservice.api.routes import v1_routes


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    return response.json()


def test_schema_is_a_valid_openapi_3_document(schema):
    from openapi_spec_validator import validate

    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_schema_holds_every_v1_route(schema):
    documented = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    missing = [f"{route.method} {route.path}" for route in v1_routes()
               if (route.method, route.path) not in documented]
    assert not missing, f"routes missing from /api/schema/: {missing}"


def test_schema_names_the_bearer_api_key_scheme_on_every_v1_operation(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiKey"]["type"] == "http" and schemes["ApiKey"]["scheme"] == "bearer"
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if path.startswith("/v1/"):
                assert {"ApiKey": []} in operation.get("security", []), f"{method} {path}"


def test_api_docs_render_as_html(db):
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"/api/schema/" in response.content


def _v1_operations(schema):
    for path, item in schema["paths"].items():
        if path.startswith("/v1/"):
            for method, operation in item.items():
                yield f"{method.upper()} {path}", operation


def test_every_v1_operation_documents_the_errors_any_request_can_get(schema):
    error_ref = "#/components/schemas/ErrorOutput"
    for name, operation in _v1_operations(schema):
        responses = operation["responses"]
        for code in ("401", "403", "429", "500"):
            assert code in responses, f"{name} does not document {code}"
        for code, response in responses.items():
            assert "X-Request-ID" in response.get("headers", {}), f"{name} {code}: no X-Request-ID"
            if code >= "400":
                assert response["content"]["application/json"]["schema"] == {"$ref": error_ref}, f"{name} {code}"
        assert "Retry-After" in responses["429"]["headers"], name
        if "202" in responses:
            assert responses["202"]["headers"]["Location"]["required"], name


def test_the_error_body_is_a_component(schema):
    error = schema["components"]["schemas"]["ErrorDetailOutput"]
    assert set(error["required"]) == {"code", "message", "request_id"}
    assert "details" in error["properties"]


def test_lists_are_documented_as_cursor_pages(schema):
    lists = ["/v1/api-keys", "/v1/faces", "/v1/index-jobs", "/v1/index-jobs/{job_id}/assets", "/v1/webhooks",
             "/v1/webhooks/{endpoint_id}/deliveries", "/v1/audit/events"]
    components = schema["components"]["schemas"]
    for path in lists:
        operation = schema["paths"][path]["get"]
        reference = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        page = components[reference.rsplit("/", 1)[1]]
        assert set(page["required"]) == {"next", "previous", "results"}, path
        assert page["properties"]["results"]["type"] == "array", path
        parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
        assert parameters["cursor"]["type"] == "string", path
        assert parameters["limit"]["minimum"] == 1 and parameters["limit"]["maximum"] >= 500, path


def test_descriptions_are_written_for_tenants_and_name_the_roles(schema):
    for name, operation in _v1_operations(schema):
        description = operation.get("description", "")
        assert "RLS" not in description and "transaction" not in description, name
        assert "**Roles:**" in description, name
        assert len(description) > 60, f"{name}: too short to tell a developer what it does"


def test_uploads_are_documented_as_multipart_and_the_rest_as_json_only(schema):
    components = schema["components"]["schemas"]
    for path, files in {"/v1/search": ["image"], "/v1/compare": ["target", "reference"]}.items():
        content = schema["paths"][path]["post"]["requestBody"]["content"]
        form = components[content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]]
        for field in files:
            field_schema = form["properties"][field]
            assert "binary" in (field_schema.get("format"), field_schema.get("items", {}).get("format")), field
    for path, method in [("/v1/api-keys", "post"), ("/v1/faces/delete", "post"), ("/v1/tenant", "patch"),
                         ("/v1/webhooks", "post")]:
        assert list(schema["paths"][path][method]["requestBody"]["content"]) == ["application/json"], path


def test_the_rules_the_server_enforces_are_in_the_schema(schema):
    components = schema["components"]["schemas"]
    assert [b["required"] for b in components["SearchInputRequest"]["oneOf"]] == [["image"], ["face_id"]]
    assert [b["required"] for b in components["ImageSourceInputRequest"]["oneOf"]] == [
        ["base64"], ["url"], ["s3"]]
    assert components["ImageSourceInputRequest"]["properties"]["url"]["maxLength"] == 2048
    confirm = components["PurgeInputRequest"]["properties"]["confirm"]["allOf"][0]["$ref"].rsplit("/", 1)[1]
    assert components[confirm]["enum"] == ["delete all face data"]
    assert components["SubmitInputRequest"]["properties"]["assets"]["minItems"] == 1
    key = next(p for p in schema["paths"]["/v1/index-jobs"]["post"]["parameters"] if p["name"] == "Idempotency-Key")
    assert key["schema"]["pattern"] == r"^[\x21-\x7e]{1,255}$"


def test_revoking_a_key_is_documented_as_the_204_it_answers(schema):
    responses = schema["paths"]["/v1/api-keys/{api_key_id}"]["delete"]["responses"]
    assert "204" in responses and "200" not in responses


@pytest.mark.parametrize("query", ["cursor=0", "cursor=", "cursor=cD1ub3QtYS10aW1l", "limit=0", "limit=x",
                                   "limit=501"])
def test_a_cursor_or_limit_the_server_would_not_honour_is_a_400(tenant, client_for, query):
    response = client_for(tenant).get(f"/v1/api-keys?{query}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and set(error["details"]) <= {"cursor", "limit"}


@pytest.mark.parametrize("path, body", [
    ("/v1/faces/delete", {"asset_ids": [0]}),
    ("/v1/search", {"face_id": "4b5cf3f4-4f5f-4a53-9d2b-6f0e0e0e0e0e", "subject_ids": [7]}),
    ("/v1/index-jobs", {"assets": [{"asset_id": 1, "image": {"url": "https://example.com/a.jpg"}}]}),
])
def test_a_number_where_the_schema_says_string_is_refused(tenant, client_for, path, body):
    response = client_for(tenant, ("admin",)).post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("path, roles", [("/v1/audit/events?until=", ("auditor",)),
                                         ("/v1/audit/events/export.csv?action=", ("auditor",)),
                                         ("/v1/faces?subject_id=", ("admin",))])
def test_an_empty_filter_value_is_refused_not_ignored(tenant, client_for, path, roles):
    response = client_for(tenant, roles).get(path)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"


def test_every_negotiated_operation_documents_406_and_none_documents_405(schema):
    # DRF refuses an Accept without JSON on every /v1 operation but the audit export, which ignores
    # Accept. A 405 answers a method a path does not document: no documented operation can get it.
    for name, operation in _v1_operations(schema):
        responses = operation["responses"]
        assert ("406" in responses) == (name != "GET /v1/audit/events/export.{file_format}"), name
        assert "405" not in responses, name


def test_a_406_is_answered_as_documented(tenant, client_for):
    response = client_for(tenant, ("admin",)).get("/v1/tenant", HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json" and response["X-Request-ID"]
    assert response.json()["error"]["code"] == "not_acceptable"


def test_the_audit_export_ignores_accept(tenant, client_for):
    response = client_for(tenant, ("auditor",)).get("/v1/audit/events/export.csv", HTTP_ACCEPT="text/html")
    assert response.status_code == 200

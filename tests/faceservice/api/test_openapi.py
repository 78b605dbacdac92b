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

"""Liveness and readiness probes: their answers, and their place in the OpenAPI schema."""

from __future__ import annotations

from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient


def test_healthz_is_ok(db):
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_with_database_redis_and_models(db):
    response = APIClient().get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "redis": True, "models": True}


@override_settings(FACE_MODEL_PACK="no-such-pack")
def test_readyz_is_503_naming_a_missing_model_pack(db):
    response = APIClient().get("/readyz")
    body = response.json()
    assert response.status_code == 503, body
    assert body["status"] == "not_ready"
    assert body["checks"]["models"]["ok"] is False
    assert "no-such-pack" in body["checks"]["models"]["detail"]
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


def test_readyz_is_503_when_redis_is_down(db):
    unreachable = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}}
    with override_settings(CACHES=unreachable):
        response = APIClient().get("/readyz")
    body = response.json()
    assert response.status_code == 503, body
    assert body["checks"]["redis"]["ok"] is False


def _details(body: dict) -> list[str]:
    return [check["detail"] for check in body["checks"].values()]


def test_readyz_names_the_model_pack_never_a_server_path(db):
    body = APIClient().get("/readyz").json()
    assert body["checks"]["models"]["detail"] == settings.FACE_MODEL_PACK
    assert not [detail for detail in _details(body) if "/" in detail]


@override_settings(FACE_MODEL_PACK="no-such-pack")
def test_readyz_says_missing_and_logs_where_it_looked(db, caplog):
    with caplog.at_level("WARNING", logger="faceservice.health"):
        body = APIClient().get("/readyz").json()
    assert body["checks"]["models"] == {"ok": False, "detail": "no-such-pack missing"}
    assert not [detail for detail in _details(body) if "/" in detail]
    # The full detail, with the folders searched, is for the operator's log only.
    assert [record.detail for record in caplog.records if "model pack missing" in record.getMessage()]


def test_probes_are_documented_in_the_openapi_schema(db):
    paths = APIClient().get("/api/schema/", {"format": "json"}).json()["paths"]
    healthz, readyz = paths["/healthz"]["get"], paths["/readyz"]["get"]
    assert set(healthz["responses"]) == {"200"}
    assert set(readyz["responses"]) == {"200", "503"}
    for answer in readyz["responses"].values():
        assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ReadinessOutput"}
    # No API key: an orchestrator calls them.
    assert healthz["security"] == readyz["security"] == [{}]

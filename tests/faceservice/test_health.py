"""Liveness and readiness probes."""

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

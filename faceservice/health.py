"""Liveness and readiness probes (no authentication, no tenant data)."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

from embeddings.face_engine import model_status


def healthz(request) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, "ok"
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise
        return False, type(exc).__name__


def _redis() -> tuple[bool, str]:
    try:
        cache.get("readyz")
        client = cache._cache.get_client(write=False)  # the same Redis the throttles use
        client.ping()
        return True, "ok"
    except Exception as exc:  # noqa: BLE001
        return False, type(exc).__name__


def _models() -> tuple[bool, str]:
    return model_status()


def readyz(request) -> JsonResponse:
    checks = {"database": _database(), "redis": _redis(), "models": _models()}
    ready = all(ok for ok, _ in checks.values())
    body = {"status": "ready" if ready else "not_ready",
            "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()}}
    return JsonResponse(body, status=200 if ready else 503)

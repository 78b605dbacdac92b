"""Liveness and readiness probes (no authentication, no tenant data).

DRF views only so that the OpenAPI schema documents them with their bodies, like
every other answer of the service. They carry no authentication, role or rate
limit: an orchestrator calls them every few seconds, and /readyz checks the very
Redis the rate limits count in.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from embeddings.face_engine import model_status

logger = logging.getLogger(__name__)


class Probe(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = ()


class LivenessOutput(serializers.Serializer):
    status = serializers.CharField(help_text="Always `ok`: the process answers.")


class CheckOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField(help_text=(
        "`ok`, or the error's class name (database, redis); the face model pack's name, then "
        "` missing` when it is not installed (models). Never a server path: the log has the full detail."))


class ChecksOutput(serializers.Serializer):
    database = CheckOutput()
    redis = CheckOutput()
    models = CheckOutput()


class ReadinessOutput(serializers.Serializer):
    status = serializers.CharField(help_text="`ready` (HTTP 200) or `not_ready` (HTTP 503).")
    checks = ChecksOutput()


def _check(ok: bool, detail: str) -> dict[str, object]:
    return {"ok": ok, "detail": detail}


READY_EXAMPLE = {"status": "ready", "checks": {
    "database": _check(True, "ok"), "redis": _check(True, "ok"), "models": _check(True, "buffalo_l")}}
NOT_READY_EXAMPLE = {"status": "not_ready", "checks": {
    "database": _check(True, "ok"), "redis": _check(True, "ok"), "models": _check(False, "buffalo_l missing")}}


class HealthzApi(Probe):
    @extend_schema(
        operation_id="healthz", tags=["health"], summary="Liveness: the process answers",
        description="For a liveness probe: answers 200 as long as the web process runs. It checks "
                    "nothing else (see `/readyz`). No API key needed.",
        responses={200: LivenessOutput})
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


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
    # The detail names the folders searched: for the log, not for an unauthenticated caller.
    ok, detail = model_status()
    if ok:
        return True, settings.FACE_MODEL_PACK
    logger.warning("readiness: face model pack missing", extra={"detail": detail})
    return False, f"{settings.FACE_MODEL_PACK} missing"


class ReadyzApi(Probe):
    @extend_schema(
        operation_id="readyz", tags=["health"], summary="Readiness: database, Redis and face models",
        description="For a readiness probe: 200 when the database and Redis answer and the face model "
                    "pack is installed, 503 otherwise, with the check that failed. No API key needed.",
        responses={
            200: OpenApiResponse(ReadinessOutput, description="Ready to serve.",
                                 examples=[OpenApiExample("ready", READY_EXAMPLE)]),
            503: OpenApiResponse(ReadinessOutput, description="Not ready: a check failed.",
                                 examples=[OpenApiExample("not ready", NOT_READY_EXAMPLE, status_codes=["503"])]),
        })
    def get(self, request: Request) -> Response:
        checks = {"database": _database(), "redis": _redis(), "models": _models()}
        ready = all(ok for ok, _ in checks.values())
        body = {"status": "ready" if ready else "not_ready",
                "checks": {name: _check(ok, detail) for name, (ok, detail) in checks.items()}}
        return Response(body, status=200 if ready else 503)

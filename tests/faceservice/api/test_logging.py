"""Logs hold no API keys and no request bodies, and every access line has the request id."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from django.conf import settings
from pythonjsonlogger.json import JsonFormatter
from rest_framework.test import APIClient

from faceservice.request_id import RequestIdFilter

# Loggers that do not propagate to the root get a handler of their own.
NON_PROPAGATING = ["django.request", "django.server"]


@pytest.fixture
def log_lines():
    """Every line the service logs during the test, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    json_format = settings.LOGGING["formatters"]["json"]
    handler.setFormatter(JsonFormatter(json_format["fmt"], rename_fields=json_format["rename_fields"]))
    handler.addFilter(RequestIdFilter())
    loggers = [logging.getLogger(), *map(logging.getLogger, NON_PROPAGATING)]
    for logger in loggers:
        logger.addHandler(handler)
    own = logging.getLogger("faceservice")
    previous_level = own.level
    own.setLevel(logging.DEBUG)  # our own debug lines too
    try:
        yield lambda: [line for line in stream.getvalue().splitlines() if line]
    finally:
        own.setLevel(previous_level)
        for logger in loggers:
            logger.removeHandler(handler)


def _marker() -> str:
    return f"BODY-MARKER-{uuid.uuid4().hex}"


def _requests_with_secrets(tenant, make_key, marker):
    """A mix of successes and failures, each carrying a key and a body with the marker."""
    key = make_key(tenant, roles=("admin",))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    created = client.post("/v1/api-keys", {"name": marker, "roles": ["searcher"]}, format="json")
    responses = [
        created,
        client.post("/v1/api-keys", {"name": marker, "roles": ["nope"]}, format="json"),
        client.post("/v1/api-keys", '{"name": "' + marker + '", ', content_type="application/json"),
        client.post(f"/v1/nope?secret={marker}", {"name": marker}, format="json"),
        APIClient().post("/v1/api-keys", {"name": marker}, format="json", HTTP_X_API_KEY=key + "x"),
    ]
    secrets = [key, key.split("_", 2)[2], created.json()["key"], marker]
    return responses, secrets


def test_logs_hold_no_api_keys_and_no_request_bodies(tenant, make_key, log_lines):
    marker = _marker()
    responses, secrets = _requests_with_secrets(tenant, make_key, marker)
    assert [r.status_code for r in responses] == [201, 400, 400, 404, 401]
    lines = log_lines()
    assert lines, "nothing was logged: the capture is broken"
    for secret in secrets:
        leaking = [line for line in lines if secret in line]
        assert not leaking, f"a secret or body reached the logs: {leaking}"


def test_every_access_line_carries_its_request_id(tenant, make_key, log_lines):
    responses, _ = _requests_with_secrets(tenant, make_key, _marker())
    access = [json.loads(line) for line in log_lines() if '"faceservice.access"' in line]
    assert [line["request_id"] for line in access] == [r["X-Request-ID"] for r in responses]
    assert [line["status"] for line in access] == [r.status_code for r in responses]

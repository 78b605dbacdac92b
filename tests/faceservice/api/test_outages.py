"""A backing service that goes away answers 503 `service_unavailable` (retryable), never a 500, and the
service recovers by itself once it is back: PostgreSQL refusing connections (every session cut, as a
restart does), Valkey not answering."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import psycopg
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIClient

from tests.conftest import FACES_DIR, assert_json_error

PROBE = FACES_DIR / "known-people" / "probe" / "obama1.jpg"


@pytest.fixture
def api(committed_db):
    from audit.services import Actor
    from tenants import services

    operator = Actor.operator("tests")
    tenant = services.create_tenant(name=f"outage-{uuid.uuid4().hex[:10]}", actor=operator)
    key = services.create_api_key(tenant_id=tenant.id, name="t", roles=["admin", "searcher"], actor=operator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
    return client


def search(client):
    return client.post("/v1/search", {"image": SimpleUploadedFile("p.jpg", PROBE.read_bytes())}, format="multipart")


@contextmanager
def database_away():
    """No new session is allowed and every open one is cut, as while PostgreSQL restarts."""
    name = connection.settings_dict["NAME"]
    maintenance = os.environ["DATABASE_SUPERUSER_URL"].rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", [name])
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_searches_answer_503_while_the_database_is_away_and_recover_after(api):
    assert search(api).status_code == 200
    with database_away():
        for response in (search(api), api.get("/v1/tenant")):
            assert_json_error(response, 503, "service_unavailable")
            assert response["Retry-After"] == "5"
    assert search(api).status_code == 200  # the next request reconnects by itself
    assert api.get("/v1/tenant").status_code == 200


def test_searches_answer_503_while_valkey_does_not_answer_and_recover_after(api, settings):
    import redis

    assert search(api).status_code == 200
    valkey = redis.Redis.from_url(settings.REDIS_URL)
    # Every client's commands wait for 3 s: past the 2 s socket timeout the rate limiter gives Valkey.
    valkey.execute_command("CLIENT", "PAUSE", "3000", "ALL")
    response = search(api)
    assert_json_error(response, 503, "service_unavailable")
    valkey.execute_command("CLIENT", "UNPAUSE")
    assert search(api).status_code == 200

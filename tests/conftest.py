"""Shared fixtures. The suite runs against real servers started by `./dev test`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
FACES_DIR = SHARED_DIR / "faces"
MODELS_DIR = SHARED_DIR / "models"


@pytest.fixture(autouse=True)
def _fresh_search_galleries():
    """Each test starts with no in-memory gallery: a rolled-back test's faces must not linger."""
    from embeddings.search.gallery import clear_galleries

    clear_galleries()
    yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    """Migrate the throw-away database that `./dev test` started.

    pytest-django would create a second database; ours is already fresh for
    each run and its role may not create databases (it is deliberately weak).
    """
    if not os.environ.get("FACESERVICE_TESTING"):
        pytest.exit("Run the suite with `./dev test` (it starts throw-away servers).", returncode=2)
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("migrate", "--noinput", verbosity=0)


@pytest.fixture
def committed_db(django_db_setup, django_db_blocker):
    """Database access without the per-test transaction, for tests whose data
    another process (a Celery worker, a second connection) must see.
    Tests using it create their own tenants, so no flush is needed."""
    with django_db_blocker.unblock():
        yield


def unique_name(prefix: str = "tenant") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_tenant(db) -> Callable:
    from audit.services import Actor
    from tenants import services

    def make(name: str | None = None, **kwargs):
        return services.create_tenant(name=name or unique_name(), actor=Actor.operator("tests"), **kwargs)

    return make


@pytest.fixture
def make_key(db) -> Callable:
    from audit.services import Actor
    from tenants import services

    def make(tenant, roles=("admin",), **kwargs) -> str:
        issued = services.create_api_key(tenant_id=tenant.id, name=kwargs.pop("name", "test key"),
                                         roles=list(roles), actor=Actor.operator("tests"), **kwargs)
        return issued.plaintext

    return make


@pytest.fixture
def client_for(make_key) -> Callable:
    """An API client authenticated with a new key of the tenant holding the roles."""
    from rest_framework.test import APIClient

    def make(tenant, roles=("admin",)) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(tenant, roles)}")
        return client

    return make


@pytest.fixture
def tenant(make_tenant):
    return make_tenant()


@pytest.fixture
def other_tenant(make_tenant):
    return make_tenant()

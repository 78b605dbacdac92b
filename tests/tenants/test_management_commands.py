"""Operator commands: create a tenant (key shown once), suspend and reactivate it."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.conftest import assert_json_error


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _keys_in(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("fsk_")]


def _get_tenant(key: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get("/v1/tenant")


@pytest.fixture
def created(db) -> tuple[str, str]:
    """A tenant made by the command, and the one key it printed."""
    name = f"cmd-{uuid.uuid4().hex[:10]}"
    keys = _keys_in(_run("create_tenant", name))
    assert len(keys) == 1
    return name, keys[0]


def test_create_tenant_prints_a_key_that_works(created):
    name, key = created
    response = _get_tenant(key)
    assert response.status_code == 200, response.content
    assert response.json()["name"] == name


def test_create_tenant_if_missing_prints_no_key_the_second_time(created):
    name, _ = created
    output = _run("create_tenant", name, "--if-missing")
    assert _keys_in(output) == [] and "fsk_" not in output


def test_create_tenant_twice_without_if_missing_is_an_error(created):
    name, _ = created
    with pytest.raises(CommandError, match="exists"):
        _run("create_tenant", name)


def test_create_tenant_gives_the_first_key_the_roles_asked_for(db):
    key = _keys_in(_run("create_tenant", f"cmd-{uuid.uuid4().hex[:10]}", "--roles", "auditor"))[0]
    assert _get_tenant(key).status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert_json_error(client.get("/v1/api-keys"), 403, "forbidden")


def test_set_tenant_status_suspends_and_reactivates(created):
    name, key = created
    assert "suspended" in _run("set_tenant_status", name, "suspended")
    assert_json_error(_get_tenant(key), 401, "invalid_api_key")
    _run("set_tenant_status", name, "active")
    assert _get_tenant(key).status_code == 200


def test_set_tenant_status_accepts_the_tenant_id(created):
    _, key = created
    tenant_id = _get_tenant(key).json()["id"]
    _run("set_tenant_status", tenant_id, "suspended")
    assert_json_error(_get_tenant(key), 401, "invalid_api_key")


def test_set_tenant_status_of_an_unknown_tenant_is_an_error(db):
    with pytest.raises(CommandError, match="no tenant"):
        _run("set_tenant_status", "no-such-tenant", "suspended")


def test_issue_api_key_prints_a_working_key_with_its_roles(created):
    name, _ = created
    keys = _keys_in(_run("issue_api_key", name, "--name", "ci", "--roles", "searcher"))
    assert len(keys) == 1
    assert _get_tenant(keys[0]).status_code == 200

"""Roles: every /v1 endpoint is in the role table, and the table is what the API enforces."""

from __future__ import annotations

import pytest

from tests.conftest import PROJECT_DIR, assert_json_error
from tests.faceservice.api.render_role_matrix import REGENERATE, render
from tests.faceservice.api.role_matrix import ALL_ROLES, ENDPOINTS, ROLE_PURPOSES, Endpoint
from tests.faceservice.api.routes import v1_routes

ROLES_DOC = PROJECT_DIR / "docs" / "ROLES.md"
METHODS_WITH_BODY = {"POST", "PUT", "PATCH"}


def _send(client, endpoint: Endpoint):
    url = endpoint.example_url()
    if endpoint.method in METHODS_WITH_BODY:
        return client.generic(endpoint.method, url, "{}", content_type="application/json")
    return client.generic(endpoint.method, url)


@pytest.mark.parametrize("role", ALL_ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_role_is_allowed_or_refused_as_the_table_says(endpoint, role, tenant, client_for):
    response = _send(client_for(tenant, roles=(role,)), endpoint)
    if role in endpoint.roles:
        # Any answer but 401/403 will do: the empty body may well be invalid.
        assert response.status_code not in (401, 403), response.content
    else:
        assert_json_error(response, 403, "forbidden")


def _row_for(route) -> str:
    names = [role.upper() for role in route.declared_roles]
    roles = f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"
    return f'Endpoint("{route.method}", "{route.path}", {roles}, "<what it does>"),'


@pytest.mark.pure
def test_every_v1_route_has_a_row_in_the_role_table():
    table = {(endpoint.method, endpoint.path) for endpoint in ENDPOINTS}
    missing = [route for route in v1_routes() if (route.method, route.path) not in table]
    assert not missing, (
        "These /v1 routes have no row in tests/faceservice/api/role_matrix.py. Add each to ENDPOINTS "
        "(roles as the view declares them; check they are what you mean; a path parameter that "
        "is not a uuid needs examples={'name': 'value'}), then run "
        f"`{REGENERATE}`:\n"
        + "\n".join(f"    {_row_for(route)}  # {route.view_name}" for route in missing))


@pytest.mark.pure
def test_every_row_of_the_role_table_is_a_real_route():
    routes = {(route.method, route.path) for route in v1_routes()}
    stale = [str(endpoint) for endpoint in ENDPOINTS if (endpoint.method, endpoint.path) not in routes]
    assert not stale, f"rows in tests/faceservice/api/role_matrix.py with no such route: {stale}"


@pytest.mark.pure
def test_role_table_matches_the_roles_each_view_declares():
    declared = {(route.method, route.path): route for route in v1_routes()}
    differing = [
        f"{endpoint}: table {sorted(endpoint.roles)}, {route.view_name} {list(route.declared_roles)}"
        for endpoint in ENDPOINTS
        if (route := declared.get((endpoint.method, endpoint.path)))
        and sorted(endpoint.roles) != list(route.declared_roles)
    ]
    assert not differing, "\n".join(differing)


@pytest.mark.pure
def test_role_table_names_exactly_the_roles_a_key_can_hold():
    from tenants.models import Role

    assert set(ALL_ROLES) == set(Role.values) == set(ROLE_PURPOSES)
    for endpoint in ENDPOINTS:
        assert endpoint.roles and set(endpoint.roles) <= set(ALL_ROLES), endpoint


@pytest.mark.pure
def test_roles_doc_is_current():
    assert ROLES_DOC.read_text() == render(), f"docs/ROLES.md is out of date; run `{REGENERATE}`"

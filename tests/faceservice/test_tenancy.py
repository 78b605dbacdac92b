"""PostgreSQL row-level security: a query that forgets its tenant filter still sees one tenant."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection

from audit.services import Actor
from faceservice.tenancy import platform_scope, tenant_context
from tenants import services
from tenants.models import ApiKey

TABLES_WITH_TENANT_ID = """
    SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
           EXISTS (SELECT 1 FROM pg_policies p
                   WHERE p.schemaname = n.nspname AND p.tablename = c.relname
                     AND concat(p.qual, ' ', p.with_check) LIKE '%%app.tenant_id%%') AS has_tenant_policy
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE a.attname = 'tenant_id' AND NOT a.attisdropped
      AND c.relkind IN ('r', 'p') AND n.nspname = current_schema()
    ORDER BY c.relname
"""


@pytest.fixture
def two_tenants_with_keys(tenant, other_tenant, make_key):
    make_key(tenant, name="a-1")
    make_key(tenant, name="a-2")
    make_key(other_tenant, name="b-1")
    return tenant, other_tenant


def _tenant_ids_of_all_keys() -> set:
    # Deliberately no tenant filter: the database alone must keep tenants apart.
    return set(ApiKey.objects.values_list("tenant_id", flat=True))


def test_unfiltered_query_inside_a_tenant_sees_only_that_tenant(two_tenants_with_keys):
    tenant, other = two_tenants_with_keys
    with tenant_context(tenant.id):
        assert ApiKey.objects.count() == 2
        assert _tenant_ids_of_all_keys() == {tenant.id}
    with tenant_context(other.id):
        assert _tenant_ids_of_all_keys() == {other.id}


def test_unfiltered_query_with_no_tenant_set_sees_nothing(two_tenants_with_keys):
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(current_setting('app.tenant_id', true), '')")
        assert cursor.fetchone()[0] == ""
    assert ApiKey.objects.count() == 0


def test_platform_scope_sees_every_tenant(two_tenants_with_keys):
    tenant, other = two_tenants_with_keys
    with platform_scope():
        assert {tenant.id, other.id} <= _tenant_ids_of_all_keys()


def test_insert_for_another_tenant_is_refused_by_the_policy(two_tenants_with_keys):
    tenant, other = two_tenants_with_keys
    with pytest.raises(DatabaseError, match="row-level security"), tenant_context(tenant.id):
        ApiKey.objects.create(tenant_id=other.id, name="smuggled", prefix="smuggled0000",
                              digest="0" * 64, roles=["admin"])
    with platform_scope():
        assert not ApiKey.objects.filter(name="smuggled").exists()


def test_update_and_delete_cannot_reach_another_tenant(two_tenants_with_keys):
    tenant, other = two_tenants_with_keys
    with tenant_context(tenant.id):
        assert ApiKey.objects.filter(tenant_id=other.id).update(name="hijacked") == 0
        deleted, _ = ApiKey.objects.filter(tenant_id=other.id).delete()
        assert deleted == 0
    with platform_scope():
        assert ApiKey.objects.filter(tenant_id=other.id).exclude(name="hijacked").count() == 1


def test_moving_a_row_to_another_tenant_is_refused(two_tenants_with_keys):
    tenant, other = two_tenants_with_keys
    with pytest.raises(DatabaseError, match="row-level security"), tenant_context(tenant.id):
        ApiKey.objects.filter(tenant_id=tenant.id).update(tenant_id=other.id)


def test_tenant_setting_does_not_outlive_its_context(tenant):
    services.create_api_key(tenant_id=tenant.id, name="k", roles=["admin"], actor=Actor.operator("tests"))
    with tenant_context(tenant.id):
        pass
    assert ApiKey.objects.count() == 0


def test_app_role_cannot_bypass_row_level_security(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)
        # Nor may it act through a role that can (SET ROLE to a member role).
        cursor.execute("SELECT rolname FROM pg_roles WHERE (rolsuper OR rolbypassrls) "
                       "AND pg_has_role(current_user, oid, 'MEMBER')")
        assert cursor.fetchall() == []


def test_every_table_with_a_tenant_id_forces_row_level_security(db):
    """Guards tables added later too: a tenant_id column means a forced tenant policy."""
    with connection.cursor() as cursor:
        cursor.execute(TABLES_WITH_TENANT_ID)
        tables = cursor.fetchall()
    names = {name for name, *_ in tables}
    assert {"tenants_apikey", "audit_event"} <= names, names  # the query itself works
    unprotected = [
        f"{name} (enabled={enabled}, forced={forced}, tenant policy={policy})"
        for name, enabled, forced, policy in tables if not (enabled and forced and policy)
    ]
    assert not unprotected, (
        "tables with a tenant_id column but no forced tenant policy; add "
        "faceservice.db.enable_tenant_rls('<table>') to their migration: " + ", ".join(unprotected))


def test_request_binding_is_masked_by_a_nested_tenant_context(two_tenants_with_keys):
    """Inside a request bound to A, a nested scope of B must not let a scope of A reuse the stale binding."""
    from django.db import transaction

    from faceservice.tenancy import set_tenant_for_transaction, tenant_transaction

    a, b = two_tenants_with_keys
    with transaction.atomic(), tenant_transaction():
        set_tenant_for_transaction(a.id)
        with tenant_context(a.id):  # the fast path: bound already
            assert _tenant_ids_of_all_keys() == {a.id}
        with tenant_context(b.id):
            assert _tenant_ids_of_all_keys() == {b.id}
            with tenant_context(a.id):  # masked: must bind A again
                assert _tenant_ids_of_all_keys() == {a.id}
            assert _tenant_ids_of_all_keys() == {b.id}
        assert _tenant_ids_of_all_keys() == {a.id}
        with transaction.atomic():
            set_tenant_for_transaction(b.id)  # in a savepoint: not a request-wide binding
            with tenant_context(b.id):
                assert _tenant_ids_of_all_keys() == {b.id}
        with tenant_context(a.id):
            assert _tenant_ids_of_all_keys() == {a.id}

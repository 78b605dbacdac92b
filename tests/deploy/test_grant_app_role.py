"""deploy/grant_app_role.py against the real database: the production role split works."""

from __future__ import annotations

import importlib.util
import os
import secrets

import psycopg
import pytest
from psycopg import errors
from psycopg.conninfo import make_conninfo

from tests.conftest import PROJECT_DIR

GRANT_SCRIPT = PROJECT_DIR / "deploy" / "grant_app_role.py"

pytestmark = pytest.mark.skipif(not os.environ.get("DATABASE_SUPERUSER_URL"),
                                reason="needs DATABASE_SUPERUSER_URL to create roles (./dev test sets it)")


def _load_grant_script():
    spec = importlib.util.spec_from_file_location("grant_app_role", GRANT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _superuser():
    # The superuser URL names the same database as DATABASE_URL (see devservices.py).
    return psycopg.connect(os.environ["DATABASE_SUPERUSER_URL"], autocommit=True)


@pytest.fixture
def new_role(django_db_setup):
    """A fresh login role, as deploy/postgres/init-roles.sql makes faceservice_app."""
    name, password = f"fs_probe_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    with _superuser() as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT PASSWORD '{password}'")
    yield name, password
    with _superuser() as admin:
        admin.execute(f"DROP OWNED BY {name}")
        admin.execute(f"DROP ROLE {name}")


@pytest.fixture
def app_role(new_role):
    """The new role after the migrate job's grants, and a connection as it."""
    name, password = new_role
    _load_grant_script().grant(os.environ["DATABASE_URL"], name)
    conninfo = make_conninfo(os.environ["DATABASE_URL"], user=name, password=password)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn


def _refused(conn, statement: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_app_role_reads_and_writes_rows_under_row_level_security(app_role):
    row = app_role.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    assert row.fetchone() == (False, False)
    # Not the owner, and no tenant set: the policy shows nothing (and the grant let us ask).
    assert app_role.execute("SELECT count(*) FROM tenants_apikey").fetchone() == (0,)
    app_role.execute("UPDATE tenants_apikey SET name = name WHERE false")


def test_app_role_cannot_switch_row_level_security_off(app_role):
    _refused(app_role, "ALTER TABLE tenants_apikey NO FORCE ROW LEVEL SECURITY")
    _refused(app_role, "ALTER TABLE tenants_apikey DISABLE ROW LEVEL SECURITY")
    _refused(app_role, "DROP POLICY tenant_isolation ON tenants_apikey")


def test_app_role_cannot_rewrite_audit_events_or_migration_history(app_role):
    _refused(app_role, "UPDATE audit_event SET action = 'x' WHERE false")
    _refused(app_role, "TRUNCATE audit_event")
    _refused(app_role, "ALTER TABLE audit_event DISABLE TRIGGER ALL")
    _refused(app_role, "DELETE FROM django_migrations WHERE false")
    assert app_role.execute("SELECT count(*) > 0 FROM django_migrations").fetchone() == (True,)


def test_grant_refuses_a_role_that_bypasses_row_level_security(new_role):
    name, _ = new_role
    with _superuser() as admin:
        admin.execute(f"ALTER ROLE {name} BYPASSRLS")
    with pytest.raises(SystemExit, match="BYPASSRLS"):
        _load_grant_script().grant(os.environ["DATABASE_URL"], name)

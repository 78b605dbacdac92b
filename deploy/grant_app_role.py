"""Give the application role what it needs, after migrations ran as the owner role.

In production two database roles split the work:
- the owner role owns the schema and runs migrations (the migrate job);
- the application role (web, worker, beat) owns nothing: it cannot ALTER a
  table, switch row-level security off or drop the audit triggers, even through
  an injected statement. Neither role is a superuser or has BYPASSRLS.

Row-level security binds the application role because it is not the owner;
FORCE (see faceservice/db.py) binds the owner too.

Run after every migration, since new tables need grants (the migrate job does):

    DATABASE_URL=<owner url> APP_DB_ROLE=faceservice_app python deploy/grant_app_role.py
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.hardening import grant_statements as audit_grant_statements

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def general_statements(app_role: str) -> list[sql.Composed]:
    """Read and write rows on every table; the audit tables are narrowed afterwards."""
    role = sql.Identifier(app_role)
    return [sql.SQL(text).format(role) for text in (
        "GRANT USAGE ON SCHEMA public TO {}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}",
        # The service never migrates: it may read the migration history, not write it.
        "REVOKE INSERT, UPDATE, DELETE ON TABLE django_migrations FROM {}",
    )]


def statements(app_role: str) -> list[sql.Composed]:
    if not ROLE_NAME.match(app_role):
        raise ValueError(f"not a plain PostgreSQL role name: {app_role!r}")
    # Order matters: the audit statements REVOKE ALL on their tables, then grant less.
    return [*general_statements(app_role), *audit_grant_statements(app_role)]


def grant(conninfo: str, app_role: str) -> int:
    with psycopg.connect(conninfo) as conn, conn.cursor() as cursor:  # one transaction
        cursor.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", [app_role])
        found = cursor.fetchone()
        if found is None:
            raise SystemExit(f"role {app_role!r} does not exist (see deploy/postgres/init-roles.sql)")
        if found[0]:
            raise SystemExit(f"role {app_role!r} is a superuser or has BYPASSRLS: refusing")
        for statement in statements(app_role):
            cursor.execute(statement)
    return len(statements(app_role))


def main() -> None:
    conninfo = os.environ["DATABASE_URL"]
    app_role = os.environ.get("APP_DB_ROLE", "faceservice_app")
    count = grant(conninfo, app_role)
    print(f"granted the application role {app_role!r} its privileges ({count} statements)")


if __name__ == "__main__":
    main()

"""Database helpers for migrations: row-level security on tenant tables."""

from __future__ import annotations

from django.db import migrations

POLICY_CONDITION = (
    "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid "
    "OR current_setting('app.platform_scope', true) = 'on'"
)


def enable_tenant_rls(table: str) -> migrations.RunSQL:
    """Force row-level security on a table with a `tenant_id uuid` column.

    FORCE makes the policy apply to the table owner too, so the application
    role is bound by it even though it ran the migrations.
    """
    return migrations.RunSQL(
        sql=[
            f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
            f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
            f'CREATE POLICY tenant_isolation ON "{table}" '
            f"USING ({POLICY_CONDITION}) WITH CHECK ({POLICY_CONDITION})",
        ],
        reverse_sql=[
            f'DROP POLICY IF EXISTS tenant_isolation ON "{table}"',
            f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY',
            f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY',
        ],
    )

"""Production database roles for the audit tables.

In development and tests one role owns the tables and runs the service; the
append-only triggers then stop the application's code, but not the owner, who
may `ALTER TABLE ... DISABLE TRIGGER`. In production, migrations run as a
separate owner role and the service connects as a role that owns nothing and
holds only the privileges below: it cannot UPDATE or TRUNCATE audit rows, cannot
touch the triggers, and its DELETE on audit_event is still limited by the
trigger to events under a signed retention checkpoint.
"""

from __future__ import annotations

import re

from psycopg import sql

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# table: privileges for the application role (never UPDATE on events, anchors, checkpoints).
AUDIT_TABLE_PRIVILEGES = {
    "audit_event": ("SELECT", "INSERT", "DELETE"),
    "audit_chainhead": ("SELECT", "INSERT", "UPDATE"),
    "audit_anchor": ("SELECT", "INSERT"),
    "audit_retention_checkpoint": ("SELECT", "INSERT"),
    "audit_verification": ("SELECT", "INSERT", "UPDATE"),
    "audit_staff_login_throttle": ("SELECT", "INSERT", "UPDATE", "DELETE"),
}
AUDIT_SEQUENCES = ("audit_event_id_seq", "audit_anchor_id_seq", "audit_retention_checkpoint_id_seq",
                   "audit_staff_login_throttle_id_seq")


def grant_statements(app_role: str) -> list[sql.Composed]:
    """The statements the owner runs after each migration, for the audit tables."""
    if not ROLE_NAME.match(app_role):
        raise ValueError("not a plain PostgreSQL role name")
    role = sql.Identifier(app_role)
    statements = []
    for table, privileges in AUDIT_TABLE_PRIVILEGES.items():
        statements.append(sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(sql.Identifier(table), role))
        statements.append(sql.SQL("GRANT {} ON TABLE {} TO {}").format(
            sql.SQL(", ").join(sql.SQL(p) for p in privileges), sql.Identifier(table), role))
    for sequence in AUDIT_SEQUENCES:
        statements.append(sql.SQL("GRANT USAGE, SELECT ON SEQUENCE {} TO {}").format(
            sql.Identifier(sequence), role))
    return statements


def grants_script(app_role: str) -> str:
    return "\n".join(s.as_string() + ";" for s in grant_statements(app_role)) + "\n"

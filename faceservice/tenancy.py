"""Which tenant the database session acts for (PostgreSQL row-level security).

Every tenant-owned table has a policy that shows a row only when its tenant_id
equals the transaction's `app.tenant_id` setting, so a query that forgets its
tenant filter still sees nothing of another tenant. Settings are made with
`set_config(..., is_local => true)`: they last until the transaction (or the
savepoint they were made in) ends, so they cannot leak into a pooled
connection's next request.

`platform_scope` is the one deliberate way past the policies, for work that is
by nature cross-tenant (API key lookup before the tenant is known, sweepers,
the auditors' console). Grep for it when reviewing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from django.db import connection, transaction

TENANT_SETTING = "app.tenant_id"
PLATFORM_SETTING = "app.platform_scope"


def _set(name: str, value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


def _get(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s, true)", [name])
        return cursor.fetchone()[0] or ""


def set_tenant_for_transaction(tenant_id: UUID | str) -> None:
    """Bind the current transaction to a tenant (must be inside atomic())."""
    if not connection.in_atomic_block:
        raise RuntimeError("set_tenant_for_transaction needs an open transaction")
    _set(TENANT_SETTING, str(tenant_id))


def current_tenant_id() -> str:
    return _get(TENANT_SETTING)


def restore_tenant(previous: str) -> None:
    """Put back the binding that was in force before set_tenant_for_transaction."""
    _set(TENANT_SETTING, previous)


@contextmanager
def _scoped_setting(name: str, value: str) -> Iterator[None]:
    with transaction.atomic():
        previous = _get(name)
        _set(name, value)
        yield
        # On success put the outer value back; on an exception the savepoint
        # rollback undoes our set_config by itself.
        _set(name, previous)


@contextmanager
def tenant_context(tenant_id: UUID | str) -> Iterator[None]:
    """Run the block in a transaction that can see only this tenant's rows."""
    with _scoped_setting(TENANT_SETTING, str(tenant_id)):
        yield


@contextmanager
def platform_scope() -> Iterator[None]:
    """Run the block past the tenant policies. Use for cross-tenant system work only."""
    with _scoped_setting(PLATFORM_SETTING, "on"):
        yield

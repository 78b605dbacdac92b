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
from contextvars import ContextVar
from uuid import UUID

from django.db import connection, transaction

TENANT_SETTING = "app.tenant_id"
PLATFORM_SETTING = "app.platform_scope"

# Inside a `tenant_transaction`: (its savepoint depth, the tenant it is bound
# to, "" until set_tenant_for_transaction binds it). It lets `tenant_context`
# for that same tenant skip its savepoint and four round trips: a binding made
# at the top level of the transaction lasts until the transaction ends. Any
# other scoped binding in between masks it.
_binding: ContextVar[tuple[int, str] | None] = ContextVar("tenant_binding", default=None)


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
    binding = _binding.get()
    if binding is not None:
        depth = binding[0]
        # Only a top-level binding outlives what runs inside the transaction.
        _binding.set((depth, str(tenant_id)) if len(connection.savepoint_ids) == depth else None)


@contextmanager
def tenant_transaction() -> Iterator[None]:
    """A transaction that set_tenant_for_transaction binds once for all it runs.

    An API request (TenantAPIView, which learns the tenant when it
    authenticates) and a worker's unit of work (job_services) run in one.
    """
    with transaction.atomic():
        token = _binding.set((len(connection.savepoint_ids), ""))
        try:
            yield
        finally:
            _binding.reset(token)


def current_tenant_id() -> str:
    return _get(TENANT_SETTING)


def restore_tenant(previous: str) -> None:
    """Put back the binding that was in force before set_tenant_for_transaction."""
    _set(TENANT_SETTING, previous)


@contextmanager
def _scoped_setting(name: str, value: str) -> Iterator[None]:
    masked = _binding.set(None) if name == TENANT_SETTING else None
    try:
        with transaction.atomic():
            previous = _get(name)
            _set(name, value)
            yield
            # On success put the outer value back; on an exception the savepoint
            # rollback undoes our set_config by itself.
            _set(name, previous)
    finally:
        if masked is not None:
            _binding.reset(masked)


@contextmanager
def tenant_context(tenant_id: UUID | str) -> Iterator[None]:
    """Run the block in a transaction that can see only this tenant's rows."""
    binding = _binding.get()
    if binding is not None and binding[1] == str(tenant_id):
        yield  # the tenant_transaction is bound to this tenant already
        return
    with _scoped_setting(TENANT_SETTING, str(tenant_id)):
        yield


@contextmanager
def platform_scope() -> Iterator[None]:
    """Run the block past the tenant policies. Use for cross-tenant system work only."""
    with _scoped_setting(PLATFORM_SETTING, "on"):
        yield
